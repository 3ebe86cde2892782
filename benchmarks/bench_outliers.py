"""Outlier rejection: the original cubic `find_outliers` against the current one.

    python benchmarks/bench_outliers.py [--frames 61 122 244 500] [--rounds 3]

Frames are synthetic float32 unit 512-d embeddings like a video's: 70 % of one
person, the rest of three others (so about a third of the rounds drop a frame),
with quality-like weights, at the default threshold 0.45. The cubic loop is
timed once per size (it takes close to a minute at 500 frames); the current one
best of `--rounds`. Both must drop the same frames (cosines within 1e-9); nothing is asserted
about time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common import print_ratio_table, time_call
from test_aggregate_outliers import find_outliers_cubic  # the original implementation, kept by its test

from facer_cli.templates.aggregate import find_outliers

THRESHOLD = 0.45
DIMENSION = 512


def same_drops(found: dict[int, float], expected: dict[int, float]) -> bool:
    """Same rows in the same order, cosines within 1e-9."""
    return list(found) == list(expected) and all(abs(found[r] - expected[r]) <= 1e-9 for r in expected)


def video_like_frames(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`count` embeddings, mostly of one person, and their quality weights."""
    rng = np.random.default_rng(seed)
    people = rng.standard_normal((4, DIMENSION))
    owner = rng.choice(4, size=count, p=[0.7, 0.1, 0.1, 0.1])
    rows = people[owner] + 0.7 * rng.standard_normal((count, DIMENSION))
    embeddings = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    return embeddings, rng.uniform(0.5, 1.0, count)


def time_both(embeddings: np.ndarray, weights: np.ndarray, rounds: int) -> tuple[float, float, dict[int, float]]:
    """Seconds of the cubic loop (once) and of the current one (best of `rounds`), and what they dropped."""
    results: list[dict[int, float]] = []
    old = time_call(lambda: results.append(find_outliers_cubic(embeddings, weights, THRESHOLD)))
    new = time_call(lambda: results.append(find_outliers(embeddings, weights, THRESHOLD)), repeat=rounds)
    if not all(same_drops(result, results[0]) for result in results):
        raise SystemExit(f"{len(embeddings)} frames: the two implementations disagree")
    return old, new, results[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[61, 122, 244, 500])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for count in args.frames:
        embeddings, weights = video_like_frames(count)
        old, new, expected = time_both(embeddings, weights, args.rounds)
        rows.append((f"{count} frames, {len(expected)} dropped", old, new))
        print(f"{count} frames done", file=sys.stderr, flush=True)
    print(f"find_outliers, threshold {THRESHOLD}, {DIMENSION}-d float32 embeddings")
    print_ratio_table(rows, old="cubic", new="current", unit="ms")


if __name__ == "__main__":
    main()
