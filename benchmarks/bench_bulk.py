"""Bulk enrollment and `identify --each` against `facer inspect` and against loops of single commands.

    python benchmarks/bench_bulk.py                       # 200 people x 5 photos, 500 probes
    python benchmarks/bench_bulk.py --people 40 --probes 100 --subset 5   # quicker

The photos: the real ones of ../shared/faces/people and the bundled yaoming.jpg and gdp.jpg (one face
each), and jittered variants of them made with a fixed seed (a crop of 80-100 %, a rotation within
±8°, brightness ×0.75-1.25, re-encoded as JPEG). Person i of the batch gets variants of real identity
i mod 8, so the 200 names hold only 8 real faces: variants of one real person under many names ARE
look-alikes of each other. The batch therefore runs with --allow-lookalike (every look-alike search
still runs, against the store and the batch, and the pairs are recorded: more writes than a real
organisation's batch would make), and that is said in the figures.

Every figure is a fresh `facer` process timed by the wall clock, model load included, all in the same
run on the same machine:

- `facer inspect DIR --json` over the batch's photos: photos per second (the analysis alone);
- `facer enroll --batch DIR --allow-lookalike --json` into a new store: photos per second, and the
  ratio to inspect's (target >= 0.9);
- a shell loop of single `facer enroll NAME PHOTOS…` over the first --subset people: photos per
  second, and the batch's ratio to it;
- `facer identify --each PROBES --json` over --probes probe photos (other variants of the enrolled
  identities): per-probe time against inspect's per-photo time, and against a loop of single
  `facer identify PHOTO` calls over the first --subset probes.

Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FACES, REPO  # noqa: E402

SEED = 20261207


def base_identities() -> dict[str, list[Path]]:
    from facer_cli.engine.modelpack import bundled_folder

    found: dict[str, list[Path]] = {}
    if (FACES / "people").is_dir():
        for folder in sorted((FACES / "people").iterdir()):
            found[folder.name] = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    for name in ("yaoming", "gdp"):
        found[name] = [bundled_folder() / f"{name}.jpg"]
    return found


def jitter(image, rng):  # type: ignore[no-untyped-def]
    import cv2
    import numpy as np

    h, w = image.shape[:2]
    scale = rng.uniform(0.8, 1.0)
    ch, cw = int(h * scale), int(w * scale)
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = image[y : y + ch, x : x + cw]
    matrix = cv2.getRotationMatrix2D((cw / 2, ch / 2), float(rng.uniform(-8, 8)), 1.0)
    turned = cv2.warpAffine(crop, matrix, (cw, ch), borderMode=cv2.BORDER_REFLECT)
    return np.clip(turned.astype(np.float32) * rng.uniform(0.75, 1.25), 0, 255).astype(np.uint8)


def make_photos(root: Path, people: int, per_person: int, probes: int) -> tuple[Path, Path, int]:
    """root/batch/<name>/*.jpg and root/probes/*.jpg, generated once per size (seeded)."""
    import cv2
    import numpy as np

    batch, probe_dir = root / "batch", root / "probes"
    marker = root / f"made-{people}-{per_person}-{probes}"
    bases = base_identities()
    names = sorted(bases)
    if marker.exists():
        return batch, probe_dir, len(names)
    rng = np.random.default_rng(SEED)
    images = {name: [cv2.imread(str(p)) for p in paths] for name, paths in bases.items()}
    for i in range(people):
        base = names[i % len(names)]
        folder = batch / f"person_{i:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(per_person):
            source = images[base][j % len(images[base])]
            cv2.imwrite(str(folder / f"{j}.jpg"), jitter(source, rng), [cv2.IMWRITE_JPEG_QUALITY, 92])
    probe_dir.mkdir(parents=True, exist_ok=True)
    for k in range(probes):
        base = names[k % len(names)]
        source = images[base][k % len(images[base])]
        cv2.imwrite(str(probe_dir / f"probe_{k:04d}.jpg"), jitter(source, rng), [cv2.IMWRITE_JPEG_QUALITY, 92])
    marker.touch()
    return batch, probe_dir, len(names)


def facer(*args: object, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "facer_cli", *map(str, args)], env=env, capture_output=True, text=True)
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--per-person", type=int, default=5)
    parser.add_argument("--probes", type=int, default=500)
    parser.add_argument("--subset", type=int, default=10, help="people and probes run as single commands")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "facer-bench-bulk")
    args = parser.parse_args()

    batch, probe_dir, identities = make_photos(args.workdir, args.people, args.per_person, args.probes)
    photos = sorted(batch.rglob("*.jpg"))
    n = len(photos)
    env = {**os.environ, "PYTHONPATH": str(REPO), "FACER_MIN_VALID_FRAMES": "3"}
    print(f"{args.people} people x {args.per_person} photos = {n} photos ({identities} real identities, seed {SEED})")
    print(f"cores: {len(os.sched_getaffinity(0))}, workers setting: {os.environ.get('FACER_WORKERS', 'default')}")

    t_inspect, done = facer("inspect", batch, "--json", env=env)
    assert done.returncode in (0, 4), done.stderr[-2000:]
    inspect_rate = n / t_inspect
    print(f"inspect DIR:                 {t_inspect:7.1f} s  {inspect_rate:6.1f} photos/s")

    db = args.workdir / "batch.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    t_batch, done = facer("enroll", "--batch", batch, "--allow-lookalike", "--json", "--db", db, env=env)
    assert done.returncode in (0, 17), done.stderr[-2000:]
    batch_rate = n / t_batch
    counts = json.loads(done.stdout)["counts"]
    print(
        f"enroll --batch (look-alikes allowed): {t_batch:7.1f} s  {batch_rate:6.1f} photos/s  "
        f"{batch_rate / inspect_rate:.2f}x inspect (exit {done.returncode}: {counts})"
    )

    loop_db = args.workdir / "loop.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{loop_db}{suffix}").unlink(missing_ok=True)
    folders = sorted(p for p in batch.iterdir() if p.is_dir())[: args.subset]
    loop_photos, t_loop = 0, 0.0
    for folder in folders:
        files = sorted(folder.glob("*.jpg"))
        seconds, done = facer("enroll", folder.name, *files, "--allow-lookalike", "--db", loop_db, env=env)
        t_loop += seconds
        loop_photos += len(files)
    loop_rate = loop_photos / t_loop
    print(
        f"loop of single enroll ({len(folders)} people, {loop_photos} photos): {t_loop:6.1f} s  "
        f"{loop_rate:6.1f} photos/s; batch is {batch_rate / loop_rate:.1f}x faster per photo"
    )

    probes = sorted(probe_dir.glob("*.jpg"))
    t_each, done = facer("identify", "--each", probe_dir, "--json", "--db", db, env=env)
    assert done.returncode in (0, 4, 15, 16), done.stderr[-2000:]
    decisions: dict[str, int] = {}
    for answer in json.loads(done.stdout):
        decisions[answer["decision"]] = decisions.get(answer["decision"], 0) + 1
    print(f"identify --each decisions: {decisions}")
    per_probe = t_each / len(probes)
    print(
        f"identify --each ({len(probes)} probes): {t_each:7.1f} s  {per_probe * 1000:6.1f} ms/probe  "
        f"(inspect: {1000 / inspect_rate:6.1f} ms/photo; {per_probe * inspect_rate:.2f}x)"
    )
    t_single = 0.0
    for probe in probes[: args.subset]:
        seconds, _ = facer("identify", probe, "--db", db, env=env)
        t_single += seconds
    single = t_single / min(args.subset, len(probes))
    print(
        f"loop of single identify ({min(args.subset, len(probes))} probes): {single * 1000:7.1f} ms/probe; "
        f"--each is {single / per_probe:.1f}x faster per probe"
    )


if __name__ == "__main__":
    main()
