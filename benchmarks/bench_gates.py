"""The quality gates: what they cost per frame, and the face-size curve behind `min_face_size`.

    python benchmarks/bench_gates.py [--rounds 5] [--skip-cost] [--skip-curve]

(a) Cost: per frame, the gates' own measurements (the aligned grey crop, its sharpness and
    exposure, eye distance, other faces' sizes) and `decide`, timed on the subject of each
    benchmark photo, beside the engine's whole per-frame time (`FaceEngine.analyze`).
    The gates must stay under 1 ms a frame.
(b) Face-size curve: each photo of ../shared/faces/people is shrunk step by step (area
    averaging) so the eyes are N pixels apart, analysed, and its embedding compared with the
    person's full-resolution template (the L2-normalised mean of all their full-resolution
    photos) and with the same photo at full resolution. Where similarity starts to fall is
    where `min_face_size` belongs.
Prints tables; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from facer_cli.engine import quality
from facer_cli.engine.face_engine import decide, get_engine
from facer_cli.settings import Settings
from facer_cli.sources.images import load_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FACES, benchmark_photos  # noqa: E402

EYE_STEPS = (8, 10, 12, 14, 16, 18, 20, 22, 24, 28, 32, 40, 48, 64)


def gates_once(image: np.ndarray, keypoints: np.ndarray, boxes: np.ndarray, face, settings) -> None:
    """Everything the gates add to a frame, as the engine runs it (the alignment matrix is then reused
    by the embedding, so it is not new work, but it is counted here)."""
    quality.eye_distance(keypoints)
    sizes = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    _ = sizes[1:] / sizes[0]
    region = quality.measured_region(image, keypoints, quality.alignment(keypoints))
    quality.sharpness(region)
    quality.exposure(region)
    decide(face, settings)


def old_sharpness(image: np.ndarray, box) -> float:
    """What the engine measured before the gates (and no longer does): Laplacian variance of the face box."""
    height, width = image.shape[:2]
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
    gray = cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
    _, std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_32F))
    return float(std[0, 0] ** 2)


def per_call(function, repeat: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeat):
            function()
        best = min(best, (time.perf_counter() - started) / repeat)
    return best


def cost(rounds: int) -> None:
    settings = Settings()
    engine = get_engine(settings)
    rows = []
    for path in benchmark_photos():
        image = load_image(path, settings.max_image_pixels)
        frame = engine.analyze(image)
        subject = frame.subject
        if subject is None:
            continue
        boxes = np.array([[*face.box, face.det_score] for face in frame.faces])
        keypoints = np.array(subject.keypoints)
        gates = per_call(partial(gates_once, image, keypoints, boxes, subject, settings.engine), 50, rounds)
        old = per_call(partial(old_sharpness, image, subject.box), 50, rounds)
        frame_times = []
        for _ in range(rounds):
            started = time.perf_counter()
            engine.analyze(image)
            frame_times.append(time.perf_counter() - started)
        rows.append((path.name, subject.eye_distance or 0.0, statistics.median(frame_times), gates, old))
    print("(a) the gates' cost per frame (subject only), beside the engine's whole per-frame time and the")
    print("    old face-box sharpness they replace; best of rounds of 50 calls, milliseconds")
    print(f"{'photo':26} {'eyes px':>8} {'frame':>7} {'gates':>7} {'old':>7} {'net':>7} {'gates/frame':>12}")
    for name, eyes, frame_s, gate_s, old_s in rows:
        print(
            f"{name:26} {eyes:8.0f} {frame_s * 1e3:7.1f} {gate_s * 1e3:7.3f} {old_s * 1e3:7.3f} "
            f"{(gate_s - old_s) * 1e3:7.3f} {gate_s / frame_s:12.2%}"
        )
    gates = [r[3] for r in rows]
    net = [r[3] - r[4] for r in rows]
    frames = [r[2] for r in rows]
    print(
        f"median: frame {statistics.median(frames) * 1e3:.1f} ms, gates {statistics.median(gates) * 1e3:.3f} ms "
        f"(max {max(gates) * 1e3:.3f}), net of the old sharpness {statistics.median(net) * 1e3:.3f} ms "
        f"(max {max(net) * 1e3:.3f}); budget 1 ms\n"
    )


def face_size_curve() -> None:
    settings = Settings(min_face_size=0)  # measure every size: the gate under study must not interfere
    engine = get_engine(settings)
    people = sorted(d for d in (FACES / "people").iterdir() if d.is_dir()) if (FACES / "people").is_dir() else []
    if not people:
        print(f"(b) skipped: no photos at {FACES / 'people'}")
        return
    full: dict[str, list[tuple[Path, np.ndarray, np.ndarray, float]]] = defaultdict(list)
    for folder in people:
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            image = load_image(path, settings.max_image_pixels)
            frame = engine.analyze(image)
            assert frame.subject is not None and frame.embedding is not None, path
            full[folder.name].append((path, image, frame.embedding, frame.subject.eye_distance or 0.0))
    templates = {}
    for name, items in full.items():
        mean = np.mean([item[2] for item in items], axis=0)
        templates[name] = mean / np.linalg.norm(mean)
    to_template: dict[int, list[float]] = defaultdict(list)
    to_self: dict[int, list[float]] = defaultdict(list)
    missed: dict[int, int] = defaultdict(int)
    baseline = []
    for name, items in full.items():
        for _path, image, embedding, eyes in items:
            baseline.append(float(embedding @ templates[name]))
            for target in EYE_STEPS:
                factor = target / eyes
                if factor >= 1:
                    continue
                small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
                frame = engine.analyze(small)
                if frame.embedding is None:
                    missed[target] += 1
                    continue
                to_template[target].append(float(frame.embedding @ templates[name]))
                to_self[target].append(float(frame.embedding @ embedding))
    print("(b) face-size curve: similarity to the person's full-resolution template vs the distance between the eyes")
    print(
        f"    {len(baseline)} photos; at full resolution: median {statistics.median(baseline):.3f}, "
        f"min {min(baseline):.3f}"
    )
    print(
        f"{'eyes px':>8} {'photos':>7} {'no face':>8} {'template med':>13} {'template min':>13} "
        f"{'drop med':>9} {'self med':>9} {'self min':>9}"
    )
    base = statistics.median(baseline)
    for target in EYE_STEPS:
        values = to_template[target]
        if not values:
            continue
        print(
            f"{target:8d} {len(values):7d} {missed[target]:8d} {statistics.median(values):13.3f} {min(values):13.3f} "
            f"{base - statistics.median(values):9.3f} {statistics.median(to_self[target]):9.3f} "
            f"{min(to_self[target]):9.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--skip-curve", action="store_true")
    args = parser.parse_args()
    if not args.skip_cost:
        cost(args.rounds)
    if not args.skip_curve:
        face_size_curve()


if __name__ == "__main__":
    main()
