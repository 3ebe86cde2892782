"""Encryption at rest: what it costs verify, identify's cold start and `facer store encrypt`.

    python benchmarks/bench_encryption.py [--templates 100000] [--verifies 2000] [--rounds 3]

One SQLite store of --templates users (one 512-d template each) is made in the clear, copied, and
the copy encrypted in place with `convert_users(True)` (what `facer store encrypt` runs): its rate
in templates per second. Then, alternating plain and encrypted, median of --rounds:

1. verify's store part: a store opened as a command opens it (the key file read, the store
   opened), then `templates_of_model` of --verifies random users (each user's data key unwrapped
   and their template opened: no cache helps) and the cosine with a probe. The engine's part of a
   verify (detection and embedding) is the same with and without: `Facer.verify` of one real
   photo (../shared/faces/people/obama, three photos enrolled) is timed end to end too.
2. identify's cold start: a new `GalleryIndex` over the store — plain with no sidecar (built from
   the store and written beside it), plain with its sidecar there (mapped), and encrypted (built
   from the store, every template decrypted, in memory only: no sidecar with a key).

Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODEL = "bundled:benchencryption0000"


def make_store(path: Path, templates: int, dim: int = 512) -> None:
    """A plain store of `templates` users with one template each, written in one transaction."""
    from facer_cli.store.records import now
    from facer_cli.store.repository import Store

    rng = np.random.default_rng(7)
    with Store(path) as store:
        created = now()
        with store.transaction("fill") as conn:
            conn.executemany(
                "INSERT INTO users (id, name, name_key, created, updated) VALUES (?, ?, ?, ?, ?)",
                ((i, f"user{i:06d}", f"user{i:06d}", created, created) for i in range(1, templates + 1)),
            )
            for start in range(1, templates + 1, 10_000):
                stop = min(start + 10_000, templates + 1)
                vectors = rng.standard_normal((stop - start, dim)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                conn.executemany(
                    "INSERT INTO templates (id, user_id, vector, dimension, model, source, created,"
                    " model_unverified) VALUES (?, ?, ?, ?, ?, 'bench', ?, 0)",
                    (
                        (i, i, vectors[i - start].astype("<f4").tobytes(), dim, MODEL, created)
                        for i in range(start, stop)
                    ),
                )


def verify_time(db: Path, key: Path | None, users: list[str], probe: np.ndarray) -> float:
    """Seconds per verify's store part (open, read the user's template, compare)."""
    from facer_cli.settings import Settings
    from facer_cli.store.contract import open_store

    settings = Settings(db=str(db), key_file=None if key is None else str(key))
    started = time.perf_counter()
    with open_store(settings, "read") as store:
        for user in users:
            (template,) = store.templates_of_model(user, MODEL)
            assert template.vector is not None
            float(template.vector @ probe)
    return (time.perf_counter() - started) / len(users)


def end_to_end(plain: Path, sealed: Path, key: Path, rounds: int) -> dict[str, float] | None:
    """`Facer.verify` of a real photo (engine included), plain and encrypted store alternated: median
    seconds; None without the test photos."""
    from facer_cli.service import Facer
    from facer_cli.settings import Settings

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import FACES

    photos = sorted((FACES / "people" / "obama").glob("*.jpg"))
    if len(photos) < 4:
        return None
    facers = {
        "plain": Facer(Settings(db=str(plain))),
        "encrypted": Facer(Settings(db=str(sealed), key_file=str(key))),
    }
    for facer in facers.values():
        facer.enroll("obama", [str(p) for p in photos[:3]])
    times: dict[str, list[float]] = {name: [] for name in facers}
    for _ in range(max(rounds, 5)):
        for name, facer in facers.items():
            started = time.perf_counter()
            facer.verify("obama", [str(photos[3])])
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def cold_start(db: Path, key: Path | None) -> float:
    from facer_cli.gallery.index import GalleryIndex
    from facer_cli.settings import Settings
    from facer_cli.store.contract import open_store

    with open_store(Settings(db=str(db), key_file=None if key is None else str(key)), "read") as store:
        started = time.perf_counter()
        with GalleryIndex.open(store.gallery_source(), MODEL) as index:
            took = time.perf_counter() - started
            assert len(index) > 0
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--templates", type=int, default=100_000)
    parser.add_argument("--verifies", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from facer_cli.settings import Settings
    from facer_cli.store.contract import open_store
    from facer_cli.store.crypto import write_key_file
    from facer_cli.store.gallery_source import erase_sidecars

    folder = Path(tempfile.mkdtemp(prefix="facer-bench-enc-"))
    try:
        plain, sealed, key = folder / "plain.db", folder / "sealed.db", folder / "master.key"
        write_key_file(key)
        started = time.perf_counter()
        make_store(plain, args.templates)
        print(f"store of {args.templates} templates made in {time.perf_counter() - started:.1f} s")
        shutil.copy(plain, sealed)
        with open_store(Settings(db=str(sealed), key_file=str(key))) as store:
            started = time.perf_counter()
            rewritten = store.convert_users(True)
            took = time.perf_counter() - started
            state = store.encryption()
        assert state["templates_plain"] == 0 and rewritten == args.templates
        print(
            f"store encrypt: {rewritten} templates in {took:.1f} s = {rewritten / took:,.0f} templates/s "
            f"({state['users_with_keys']} data keys)"
        )

        rng = np.random.default_rng(1)
        users = [f"user{i:06d}" for i in rng.choice(np.arange(1, args.templates + 1), args.verifies, replace=False)]
        probe = rng.standard_normal(512).astype(np.float32)
        probe /= np.linalg.norm(probe)
        verify: dict[str, list[float]] = {"plain": [], "encrypted": []}
        cold: dict[str, list[float]] = {"plain, built (no sidecar)": [], "plain, sidecar mapped": [], "encrypted": []}
        for _ in range(args.rounds):
            verify["plain"].append(verify_time(plain, None, users, probe))
            verify["encrypted"].append(verify_time(sealed, key, users, probe))
            erase_sidecars(plain)
            cold["plain, built (no sidecar)"].append(cold_start(plain, None))
            cold["plain, sidecar mapped"].append(cold_start(plain, None))
            cold["encrypted"].append(cold_start(sealed, key))
        base = statistics.median(verify["plain"])
        print(f"\nverify's store part ({args.verifies} random users, median of {args.rounds}):")
        for name, times in verify.items():
            median = statistics.median(times)
            print(f"  {name:<28} {median * 1e6:8.1f} µs   {median / base:5.2f}×")
        whole = end_to_end(plain, sealed, key, args.rounds)
        if whole is not None:
            print("\nverify end to end (Facer.verify of one photo, engine included, median):")
            for name, took in whole.items():
                print(f"  {name:<28} {took * 1e3:8.1f} ms   {took / whole['plain']:5.2f}×")
        base = statistics.median(cold["plain, built (no sidecar)"])
        print(f"\nidentify cold start at {args.templates} templates (median of {args.rounds}):")
        for name, times in cold.items():
            median = statistics.median(times)
            print(f"  {name:<28} {median:8.3f} s    {median / base:5.2f}×")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
