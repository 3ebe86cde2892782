"""How long `facer verify USER one.jpg` takes, and whether verify grows with the store.

    python benchmarks/bench_verify.py [--runs 5] [--sizes 10,10000,100000]

1. Process start to exit of the real command (wall clock, median of --runs), and the same
   run split into phases inside one fresh process: imports, store open, model load,
   inference on the one image, and the verify itself (compare + audit row).
2. verify_probe (the store read, the decision, the audit row) with 10, 10 000 and 100 000 users in the store (synthetic unit vectors,
   written in one transaction), median of many calls, plus open + verify and the whole
   command on the smallest and largest store; ratios against the 10-user store.

Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FACES, REPO  # noqa: E402

PROBE = FACES / "people" / "obama" / "obama_4.jpg"
ENROLL = [FACES / "people" / "obama" / f"obama_{i}.jpg" for i in (1, 2, 3)]

PHASES = r"""
import json, sys, time
t0 = time.perf_counter()
from facer_cli.cli import app  # noqa: F401  everything the command imports
from facer_cli.service import Facer
from facer_cli.settings import load_settings
t1 = time.perf_counter()
facer = Facer(load_settings(overrides={"db": sys.argv[1]}).settings)
store = facer.open_store()
store.templates(sys.argv[2], with_vectors=False)
t2 = time.perf_counter()
name = facer.prepare_verify(store, sys.argv[2])  # loads the models; the user's templates come from this model
t3 = time.perf_counter()
frames = facer.frames_from_paths([sys.argv[3]])
t4 = time.perf_counter()
result = facer.verify(name, frames, store=store)
store.close()
t5 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "store open": t2 - t1, "model load": t3 - t2,
                  "decode + inference": t4 - t3, "verify + audit": t5 - t4, "band": result.band.value}))
"""


def facer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facer_cli", *args], capture_output=True, text=True, cwd=REPO)


def timed_command(args: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = facer(*args)
        times.append(time.perf_counter() - started)
        if result.returncode not in (0, 1, 3):
            raise SystemExit(f"facer {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return times


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def process_start_to_exit(db: Path, runs: int) -> None:
    print(f"\n1. `facer verify obama {PROBE.name}`: process start to exit (median of {runs})")
    result = facer("enroll", "obama", *map(str, ENROLL), "--db", str(db))
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    command = ["verify", "obama", str(PROBE), "--db", str(db)]
    wall = timed_command(command, runs)
    print(f"   whole command (python -m facer_cli): {ms(statistics.median(wall))}  "
          f"(min {ms(min(wall)).strip()}, max {ms(max(wall)).strip()})")
    python_only = timed_command_raw([sys.executable, "-c", "pass"], runs)
    print(f"   of which a bare Python start/exit:    {ms(statistics.median(python_only))}")
    phases: dict[str, list[float]] = {}
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", PHASES, str(db), "obama", str(PROBE)], capture_output=True,
                             text=True, cwd=REPO)
        if out.returncode != 0:
            raise SystemExit(out.stderr)
        for key, value in json.loads(out.stdout).items():
            if key != "band":
                phases.setdefault(key, []).append(value)
    print("   phases inside one process (median):")
    total = 0.0
    for key, values in phases.items():
        median = statistics.median(values)
        total += median
        print(f"     {key:<20}{ms(median)}")
    print(f"     {'sum':<20}{ms(total)}")
    print("   the rest of the whole command (interpreter start and exit with the model sessions, argument")
    print(f"   parsing, tables): {ms(statistics.median(wall) - total).strip()}")


def timed_command_raw(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, cwd=REPO)
        times.append(time.perf_counter() - started)
    return times


def fill(store, users: int, model: str, seed: int = 0) -> None:
    """`users` synthetic users with one unit-vector template each, in one transaction."""
    from facer_cli.store.records import now, vector_to_blob

    rng = np.random.default_rng(seed)
    created = now()
    with store.transaction("fill the benchmark store") as conn:  # bulk load: one transaction
        for start in range(0, users, 10_000):
            count = min(10_000, users - start)
            vectors = rng.standard_normal((count, 512), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            first = conn.execute("SELECT coalesce(max(id), 0) FROM users").fetchone()[0] + 1
            conn.executemany(
                "INSERT INTO users (id, name, created, updated) VALUES (?, ?, ?, ?)",
                ((first + i, f"synthetic {start + i:06d}", created, created) for i in range(count)),
            )
            conn.executemany(
                "INSERT INTO templates (user_id, vector, dimension, model, frames_seen, frames_used, outliers,"
                " mean_quality, source, created) VALUES (?, ?, 512, ?, 3, 3, 0, 0.9, 'benchmark', ?)",
                ((first + i, vector_to_blob(vectors[i]), model, created) for i in range(count)),
            )


def verify_vs_store_size(folder: Path, sizes: list[int], model: str, probe: np.ndarray, runs: int) -> None:
    from facer_cli.service.verification import verify_probe
    from facer_cli.settings import Settings
    from facer_cli.store import Store
    from facer_cli.templates.matching import Thresholds

    thresholds = Thresholds.of(Settings())
    print("\n2. verify against a store of N users (median; the verified user is one of the N)")
    print("   verify_probe: look up the user, compare with their templates, commit one audit row;")
    print("     'no fsync' with synchronous=OFF (the work itself), 'fsync' as facer runs (synchronous=FULL)")
    print("   open+verify: Store() + verify + close (the close checkpoints the WAL); whole command: facer verify")
    print(f"   {'users':>8} {'fill':>7} {'file':>9} {'no fsync':>10} {'ratio':>6} {'fsync':>10} {'ratio':>6}"
          f" {'middle user':>12} {'open+verify':>12} {'ratio':>6} {'whole command':>14} {'ratio':>6}")
    base: dict[str, float] = {}
    for size in sizes:
        db = folder / f"store-{size}.db"
        started = time.perf_counter()
        with Store(db) as store:
            fill(store, size, model)
            store.import_vector("obama", probe, model=model, source="benchmark")
        fill_s = time.perf_counter() - started
        os.sync()  # the fill's writeback would otherwise slow the fsyncs of the commits timed below
        with Store(db) as store:
            verify_probe(store, "obama", probe, model=model, thresholds=thresholds, source="warm-up")
            # without the commit's fsync: what verify itself costs, free of the disk's moods
            store.conn.execute("PRAGMA synchronous = OFF")
            compute = []
            for _ in range(300):
                started = time.perf_counter()
                verify_probe(store, "obama", probe, model=model, thresholds=thresholds, source="benchmark")
                compute.append(time.perf_counter() - started)
            store.conn.execute("PRAGMA synchronous = FULL")  # facer's own setting
            calls = []
            for _ in range(300):
                started = time.perf_counter()
                verify_probe(store, "obama", probe, model=model, thresholds=thresholds, source="benchmark")
                calls.append(time.perf_counter() - started)
            middle = []
            for _ in range(100):  # a synthetic user in the middle of the table
                started = time.perf_counter()
                verify_probe(store, f"synthetic {size // 2:06d}", probe, model=model, thresholds=thresholds, source="benchmark")
                middle.append(time.perf_counter() - started)
        opens = []
        for _ in range(50):
            started = time.perf_counter()
            with Store(db) as store:
                verify_probe(store, "obama", probe, model=model, thresholds=thresholds, source="benchmark")
            opens.append(time.perf_counter() - started)
        figures = {"compute": statistics.median(compute), "verify": statistics.median(calls),
                   "middle": statistics.median(middle),
                   "open": statistics.median(opens)}
        if size in (sizes[0], sizes[-1]):
            figures["command"] = statistics.median(timed_command(["verify", "obama", str(PROBE), "--db", str(db)], runs))
        base = base or figures
        command = (f"{ms(figures['command'])} {figures['command'] / base['command']:6.2f}"
                   if "command" in figures else f"{'–':>14} {'':>6}")
        print(f"   {size:>8} {fill_s:6.1f}s {db.stat().st_size / 2**20:7.1f}MB"
              f" {ms(figures['compute']):>10} {figures['compute'] / base['compute']:6.2f}"
              f" {ms(figures['verify']):>10} {figures['verify'] / base['verify']:6.2f} {ms(figures['middle']):>12}"
              f" {ms(figures['open']):>12} {figures['open'] / base['open']:6.2f} {command}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="process runs per figure (default 5)")
    parser.add_argument("--sizes", default="10,10000,100000", help="store sizes (default 10,10000,100000)")
    args = parser.parse_args()
    if not PROBE.is_file():
        raise SystemExit(f"test photos not found at {FACES} (set FACER_TEST_FACES)")
    sizes = [int(s) for s in args.sizes.split(",")]

    import platform

    import onnxruntime

    print(f"facer verify benchmark: Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}, "
          f"{os.cpu_count()} CPU(s), providers {onnxruntime.get_available_providers()}")
    with tempfile.TemporaryDirectory(prefix="facer-bench-") as tmp:
        folder = Path(tmp)
        os.environ["XDG_CONFIG_HOME"] = str(folder / "config")  # no developer facer.toml
        for name in [n for n in os.environ if n.startswith("FACER_") and n != "FACER_TEST_FACES"]:
            del os.environ[name]
        process_start_to_exit(folder / "command.db", args.runs)

        from facer_cli.store import Store

        with Store(folder / "command.db") as store:
            enrolled = store.export("obama")
        verify_vs_store_size(folder, sizes, enrolled.model, enrolled.vector, args.runs)


if __name__ == "__main__":
    main()
