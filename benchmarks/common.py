"""Helpers shared by the benchmarks: fresh-subprocess timing, medians, ratio lines.

Benchmarks print figures and assert nothing about time: the machines they run
on are shared and noisy, so only medians of alternated runs are reported.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FACES = Path(os.environ.get("FACER_TEST_FACES", REPO.parent / "shared" / "faces"))


def benchmark_photos() -> list[Path]:
    """The photos every benchmark uses: the bundled ones, plus ../shared/faces/people where it exists."""
    from facer_cli.engine.modelpack import bundled_folder

    paths = [bundled_folder() / name for name in ("yaoming.jpg", "gdp.jpg", "players.jpg")]
    if (FACES / "people").is_dir():
        paths += sorted(p for p in (FACES / "people").rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    return paths


# One engine thread in a fresh process over the photos named in argv: models loaded and every photo
# touched once, it prints "ready" and waits for a line on stdin (several processes can start their
# clocks together), then times one pass and prints a JSON line: wall ms, kernel ms and page faults
# per photo, and what `facer_cli.engine.heap` did.
ONE_THREAD = r"""
import json, resource, sys, time
from facer_cli.engine.face_engine import get_engine
from facer_cli.settings import Settings
photos = sys.argv[1:]
engine = get_engine(Settings())
for path in photos:
    engine.analyze_path(path)
print("ready", flush=True)
sys.stdin.readline()
before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for path in photos:
    engine.analyze_path(path)
after, n = resource.getrusage(resource.RUSAGE_SELF), len(photos)
print(json.dumps({"heap": engine.heap, "wall": (time.perf_counter() - started) / n * 1000,
                  "kernel": (after.ru_stime - before.ru_stime) / n * 1000,
                  "faults": (after.ru_minflt - before.ru_minflt) / n}), flush=True)
"""


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def subprocess_env() -> dict[str, str]:
    """The current environment with this checkout first on PYTHONPATH, so its facer_cli is the one imported."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def time_subprocess(code: str, python: str = sys.executable) -> float:
    """Wall-clock seconds of `python -c code` in a fresh interpreter, start to exit."""
    started = time.perf_counter()
    subprocess.run([python, "-c", code], check=True, env=subprocess_env(), cwd=REPO)
    return time.perf_counter() - started


def alternated_medians(candidates: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median time of each candidate, running them in turn each round so drift hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, run_once in candidates.items():
            samples[name].append(run_once())
    return {name: statistics.median(values) for name, values in samples.items()}


def time_call(function: Callable[[], object], repeat: int = 1) -> float:
    """Best of `repeat` wall-clock seconds of one in-process call (best: least disturbed by neighbours)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def print_ratio_table(rows: Sequence[tuple[str, float, float]], old: str, new: str, unit: str = "ms") -> None:
    """One line per row: label, old time, new time, old / new."""
    scale = {"s": 1.0, "ms": 1e3}[unit]
    width = max(len(label) for label, _, _ in rows)
    print(f"{'':{width}}  {old:>12}  {new:>12}  {'ratio':>8}")
    for label, old_seconds, new_seconds in rows:
        ratio = old_seconds / new_seconds if new_seconds > 0 else float("inf")
        old_text, new_text = f"{old_seconds * scale:.1f}{unit}", f"{new_seconds * scale:.1f}{unit}"
        print(f"{label:{width}}  {old_text:>12}  {new_text:>12}  {ratio:>7.2f}×")
