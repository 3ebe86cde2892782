"""Freed image memory kept for reuse (`facer_cli.engine.heap`) against glibc's own malloc, in the same run.

    python benchmarks/bench_heap.py [--rounds 6] [--large 30]

1. One engine thread (`engine.analyze_path` over large photos, each touched once first), in fresh
   processes alternated: facer's heap setting against glibc's defaults (the process started with
   `GLIBC_TUNABLES=glibc.malloc.perturb=0`, glibc's default value, which facer leaves alone);
   wall ms, kernel ms and page faults per photo.
2. `facer serve` (2 model slots), POST /token/generate, one large photo each, 4 at a time: two
   servers, one of each, load runs alternated; requests/s.

Prints medians and ratios; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server import free_port, load_run, running_server  # noqa: E402
from bench_speed import large_photos, load  # noqa: E402
from common import ONE_THREAD, REPO  # noqa: E402

GLIBC_DEFAULTS = {"GLIBC_TUNABLES": "glibc.malloc.perturb=0"}

def environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    return {**env, "PYTHONPATH": str(REPO), **extra}


def one_thread(folder: Path, rounds: int) -> None:
    print(f"1. one engine thread over {len(list(folder.iterdir()))} large photos ({load()})")
    found: dict[str, list[dict]] = {"facer": [], "glibc": []}
    for _ in range(rounds):
        for name, extra in (("facer", {}), ("glibc", GLIBC_DEFAULTS)):
            out = subprocess.run([sys.executable, "-c", ONE_THREAD, *map(str, sorted(folder.iterdir()))],
                                 env=environment(extra), input="\n", capture_output=True, text=True, check=True).stdout
            found[name].append(json.loads(out.splitlines()[-1]))
    for name, runs in found.items():
        print(f"  {name:5} ({runs[0]['heap']}): {statistics.median(r['wall'] for r in runs):.1f} ms per photo, "
              f"kernel {statistics.median(r['kernel'] for r in runs):.1f} ms, "
              f"{statistics.median(r['faults'] for r in runs):.0f} page faults")
    ratios = [a["wall"] / b["wall"] for a, b in zip(found["facer"], found["glibc"], strict=True)]
    print(f"  facer / glibc time per photo: median {statistics.median(ratios):.3f} over {rounds} pairs "
          f"({min(ratios):.3f}–{max(ratios):.3f})")


def server(photos: list[Path], folder: Path, rounds: int) -> None:
    print(f"2. facer serve, POST /token/generate, 4 at a time ({load()})")
    bodies = [(p.name, p.read_bytes()) for p in photos]
    rates: dict[str, list[float]] = {"facer": [], "glibc": []}
    with running_server(*serve("facer", {}, folder)) as (facer_base, _, _), \
            running_server(*serve("glibc", GLIBC_DEFAULTS, folder)) as (glibc_base, _, _):
        bases = {"facer": facer_base, "glibc": glibc_base}
        for base in bases.values():  # first touch of every photo
            asyncio.run(load_run(base, bodies, len(bodies), 4, 120))
        for _ in range(rounds):
            for name, base in bases.items():
                times, _, wall = asyncio.run(load_run(base, bodies, 120, 4, 300))
                rates[name].append(len(times) / wall)
    for name, runs in rates.items():
        print(f"  {name:5}: {statistics.median(runs):.1f} requests/s")
    ratios = [a / b for a, b in zip(rates["facer"], rates["glibc"], strict=True)]
    print(f"  facer / glibc throughput: median {statistics.median(ratios):.3f} over {rounds} pairs "
          f"({min(ratios):.3f}–{max(ratios):.3f})")


def serve(name: str, extra: dict[str, str], folder: Path) -> tuple[list[str], dict, Path, int]:
    port = free_port()
    (folder / name).mkdir(exist_ok=True)
    command = [sys.executable, "-m", "facer_cli", "serve", "--port", str(port), "--db",
               str(folder / name / "serve.db"), "--log-level", "warning"]
    return command, environment(extra), folder / name, port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--large", type=int, default=30, help="large photos to make")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photos = large_photos(folder / "large", args.large)
        one_thread(folder / "large", args.rounds)
        server(photos, folder, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
