"""Opening a new store from many processes at once, and removal with and without a reader.

    python benchmarks/bench_store.py [--rounds 15] [--processes 8]

1. 8 processes (started and imported beforehand, then released by a barrier) open one new
   store at once; every open must succeed. Time from the release to the last one open, against
   one process opening a new store alone (the baseline). Median of --rounds.
2. `facer users remove NAME --yes` as a real command, and `Store.remove` in-process, with and
   without another process holding a read transaction (which makes the removal wait
   `ERASURE_WAIT_S` for it and then report that erasure is pending). Median of --rounds.

Prints figures; asserts nothing about time (it exits 1 if any open failed).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, print_ratio_table, subprocess_env  # noqa: E402

READER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN")
conn.execute("SELECT count(*) FROM templates").fetchall()
print("reading", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


def opener(barrier, results, paths: list[str]) -> None:
    from facer_cli.store import Store

    for path in paths:
        barrier.wait()
        released = time.time()
        try:
            with Store(path) as store:
                store.count()
            results.put((released, time.time(), ""))
        except Exception as exc:
            results.put((released, time.time(), f"{type(exc).__name__}: {exc}"))


def time_simultaneous_opens(processes: int, rounds: int, folder: Path) -> tuple[float, int]:
    """Median seconds from the barrier's release to the last process having the store open; failures."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    paths = [str(folder / f"{processes}-{r}" / "facer.db") for r in range(rounds)]
    workers = [context.Process(target=opener, args=(barrier, results, paths)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    spans, failures = [], 0
    for _ in range(rounds):
        outcomes = [results.get(timeout=300) for _ in range(processes)]
        failures += sum(1 for o in outcomes if o[2])
        spans.append(max(o[1] for o in outcomes) - min(o[0] for o in outcomes))
    for worker in workers:
        worker.join()
    return statistics.median(spans), failures


def fill(path: Path, users: int) -> None:
    from facer_cli.store import Store

    rng = np.random.default_rng(0)
    with Store(path) as store:
        for i in range(users):
            vector = rng.normal(size=512).astype(np.float32)
            store.import_vector(f"u{i}", vector / np.linalg.norm(vector), model="bench:0123456789abcdef", source="b")


class Reader:
    """Another process holding a read transaction on the store while it lives."""

    def __init__(self, path: Path):
        self.process = subprocess.Popen(
            [sys.executable, "-c", READER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "reading"

    def close(self) -> None:
        self.process.communicate("\n", timeout=60)


def time_removals(rounds: int, folder: Path) -> list[tuple[str, float, float]]:
    from facer_cli.store import Store

    path = folder / "remove.db"
    fill(path, 4 * rounds + 10)
    samples: dict[str, list[float]] = {"cli reader": [], "cli alone": [], "lib reader": [], "lib alone": []}
    pending = {"reader": 0, "alone": 0}
    user = iter(range(10_000))
    for _ in range(rounds):
        for with_reader in (True, False):  # alternated, so drift hits both alike
            key = "reader" if with_reader else "alone"
            reader = Reader(path) if with_reader else None
            try:
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "facer_cli", "users", "remove", f"u{next(user)}", "--yes", "--json",
                     "--db", str(path)],
                    capture_output=True, text=True, cwd=REPO, env=subprocess_env(),
                )
                samples[f"cli {key}"].append(time.perf_counter() - started)
                assert done.returncode == 0, done.stderr
                pending[key] += '"erasure_pending": true' in done.stdout
                with Store(path, access="write") as store:
                    started = time.perf_counter()
                    store.remove(f"u{next(user)}")
                    samples[f"lib {key}"].append(time.perf_counter() - started)
            finally:
                if reader is not None:
                    reader.close()
    print(f"   erasure pending: {pending['reader']} of {rounds} CLI removals with a reader, "
          f"{pending['alone']} of {rounds} without")
    median = {name: statistics.median(values) for name, values in samples.items()}
    return [
        ("facer users remove (whole command)", median["cli reader"], median["cli alone"]),
        ("Store.remove (in-process)", median["lib reader"], median["lib alone"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--processes", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        print(f"1. {args.processes} processes opening one new store at once (median of {args.rounds})")
        alone, alone_failures = time_simultaneous_opens(1, args.rounds, folder)
        together, failures = time_simultaneous_opens(args.processes, args.rounds, folder)
        print_ratio_table(
            [(f"new store: last of {args.processes} open vs 1 alone", together, alone)],
            old=f"{args.processes} at once",
            new="1 alone",
        )
        print(f"   failed opens: {failures} of {args.processes * args.rounds} (alone: {alone_failures})")
        print(f"\n2. users remove with and without a reader holding a transaction (median of {args.rounds})")
        print_ratio_table(time_removals(args.rounds, folder), old="with reader", new="without")
    if failures or alone_failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
