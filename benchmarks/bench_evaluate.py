"""Images per second of `facer evaluate`'s runner against one process analysing image by image.

    /tmp/venv/bin/python benchmarks/bench_evaluate.py [--repeats 8] [--rounds 2] [--variants] [--inspect]

Builds a folder of a few hundred images in a temporary directory: the 15
photos of ../shared/faces/people (or $FACER_TEST_FACES), the bundled
yaoming.jpg and gdp.jpg and insightface's t1.jpg, each repeated and also
flipped left-right, in identity subfolders. Then it times:

- baseline: one process, one engine, `engine.analyze_path` image after image
  (what `facer inspect` does), ONNX Runtime with its default threads;
- evaluate: `facer_cli.evaluation.runner.embed_images` with one worker per
  core (pool start and model loading included: it is what a user waits for);
- with --inspect, the real `facer inspect FOLDER --json` in a subprocess
  (its start-up included);
- with --variants, the runner with other worker/thread splits.

Baseline and runner alternate for --rounds rounds and the best rate of each is
kept, so other work on the machine skews them less. It prints the figures and
the ratio; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from facer_cli.engine.face_engine import FaceEngine
from facer_cli.engine.modelpack import bundled_folder, load_models
from facer_cli.evaluation.runner import available_cores, embed_images
from facer_cli.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FACES  # noqa: E402


def source_images() -> dict[str, list[Path]]:
    import insightface

    found: dict[str, list[Path]] = {}
    people = FACES / "people"
    if people.is_dir():
        for folder in sorted(people.iterdir()):
            found[folder.name] = sorted(p for p in folder.iterdir() if p.is_file())
    else:
        print(f"note: {people} not found; using the packaged photos only", file=sys.stderr)
    bundled = bundled_folder()
    found["yaoming"] = [bundled / "yaoming.jpg"]
    found["gdp"] = [bundled / "gdp.jpg"]
    found["t1"] = [Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"]
    return found


def build_folder(root: Path, repeats: int) -> list[Path]:
    written = []
    for identity, paths in source_images().items():
        folder = root / identity
        folder.mkdir(parents=True)
        for path in paths:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            flipped = cv2.flip(image, 1)
            for r in range(repeats):
                target = folder / f"{path.stem}_r{r}{path.suffix}"
                shutil.copyfile(path, target)
                flipped_target = folder / f"{path.stem}_r{r}_flip.png"
                cv2.imwrite(str(flipped_target), flipped)
                written += [target, flipped_target]
    return written


def baseline(paths: list[Path], settings: Settings, threads: int | None = None) -> tuple[float, float]:
    """(images/s, model load + warm-up seconds): one engine, image after image."""
    started = time.perf_counter()
    engine = FaceEngine(settings, load_models(settings, intra_op_threads=threads))
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    for path in paths:
        engine.analyze_path(path)
    return len(paths) / (time.perf_counter() - started), loaded


def runner(paths: list[Path], settings: Settings, workers: int, threads: int | None = None) -> float:
    started = time.perf_counter()
    frames = embed_images(paths, settings, workers=workers, threads_per_worker=threads)
    seconds = time.perf_counter() - started
    assert len(frames) == len(paths)
    return len(paths) / seconds


def inspect_subprocess(folder: Path, count: int) -> float:
    facer = Path(sys.executable).with_name("facer")
    command = [str(facer)] if facer.exists() else [sys.executable, "-m", "facer_cli"]
    started = time.perf_counter()
    subprocess.run([*command, "inspect", str(folder), "--json"], check=False, stdout=subprocess.DEVNULL)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8, help="copies of each photo (each also flipped)")
    parser.add_argument("--rounds", type=int, default=2, help="baseline and runner alternate this many times")
    parser.add_argument("--variants", action="store_true", help="also time other worker/thread splits")
    parser.add_argument("--inspect", action="store_true", help="also time a `facer inspect` subprocess")
    args = parser.parse_args()
    settings = Settings.from_values({})
    cores = available_cores()
    with tempfile.TemporaryDirectory(prefix="facer-bench-") as tmp:
        paths = build_folder(Path(tmp), args.repeats)
        print(f"{len(paths)} images in {len(list(Path(tmp).iterdir()))} identity folders, {cores} core(s), "
              f"load average {os.getloadavg()[0]:.2f} before the run")
        bases, runs = [], []
        for _ in range(args.rounds):  # alternated, so a busy moment on the machine hits both
            rate, loaded = baseline(paths, settings)
            bases.append(rate)
            runs.append(runner(paths, settings, cores))
        base = max(bases)
        print(f"baseline, one process image by image (facer inspect's loop): {base:6.2f} images/s, best of "
              f"{' '.join(f'{r:.2f}' for r in bases)} (model load + warm-up {loaded:.2f} s, not counted)")
        best = max(runs)
        print(f"evaluate runner, {cores} workers (the default):  {best:6.2f} images/s, best of "
              f"{' '.join(f'{r:.2f}' for r in runs)}  → {best / base:.2f}× baseline")
        results = {}
        if args.variants:
            results["one process image by image, ONNX Runtime on 1 thread"] = baseline(paths, settings, 1)[0]
            results["evaluate runner, 1 worker (in-process engine, default threads)"] = runner(paths, settings, 1)
            if cores > 1:
                results[f"evaluate runner, {cores} workers × {cores} threads"] = runner(paths, settings, cores, cores)
                results[f"evaluate runner, {2 * cores} workers × 1 thread"] = runner(paths, settings, 2 * cores, 1)
        if args.inspect:
            results["`facer inspect FOLDER --json` subprocess (start-up included)"] = inspect_subprocess(Path(tmp), len(paths))
        for name, rate in results.items():
            print(f"{name}: {rate:6.2f} images/s  ({rate / base:.2f}× baseline)")
        print("(runner figures include starting the pool and loading one engine per worker; "
              f"load average {os.getloadavg()[0]:.2f} after the run)")


if __name__ == "__main__":
    main()
