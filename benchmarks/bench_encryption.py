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
2. identify's cold start: a new `GalleryIndex` over the store, plain and encrypted side by side —
   built from the store with no sidecar there (every template read, and with a key decrypted: each
   user's data key unwrapped; the sidecar then written, sealed with a key), with its sidecar there
   (plain: mapped; encrypted: decrypted into memory), and the first open after a removal (`users
   remove` of one user, timed too: it erases the sidecars and, with a key, replaces the sidecar
   key, so that open builds from the store again and rewrites the sidecar).
3. the memory of a cold start with its sidecar there, plain and sealed, each in a fresh process:
   the peak and the resident memory it added (modules imported before), and its time there.

Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
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


def cold_start(db: Path, key: Path | None, rebuilt: bool) -> float:
    """Seconds to open the index; `rebuilt`: whether it must have been built from the store (else
    opened from its sidecar)."""
    from facer_cli.gallery.index import GalleryIndex
    from facer_cli.settings import Settings
    from facer_cli.store.contract import open_store

    with open_store(Settings(db=str(db), key_file=None if key is None else str(key)), "read") as store:
        started = time.perf_counter()
        with GalleryIndex.open(store.gallery_source(), MODEL) as index:
            took = time.perf_counter() - started
            assert len(index) > 0 and index.rebuilds == int(rebuilt) and index.persistent
    return took


def removal(db: Path, key: Path | None, user: str) -> float:
    """Seconds of `users remove` (the store's part: the rows, the data key, the sidecar key, the
    sidecars erased)."""
    from facer_cli.settings import Settings
    from facer_cli.store.contract import open_store

    with open_store(Settings(db=str(db), key_file=None if key is None else str(key))) as store:
        started = time.perf_counter()
        assert store.remove(user).templates == 1
        return time.perf_counter() - started


# A cold start with its sidecar there, in a fresh process: its seconds, and the memory it added
# (peak and resident, MiB) over the modules' own.
MEMORY = r"""
import json, sys, time
import numpy, onnxruntime, cryptography.hazmat.primitives.ciphers.aead
from facer_cli.gallery.index import GalleryIndex
from facer_cli.settings import Settings
from facer_cli.store.contract import open_store

def status(name):
    for line in open("/proc/self/status"):
        if line.startswith(name + ":"):
            return int(line.split()[1]) / 1024

db, key, model = sys.argv[1], sys.argv[2] or None, sys.argv[3]
with open_store(Settings(db=db, key_file=key), "read") as store:
    source = store.gallery_source()
    before = status("VmRSS")
    started = time.perf_counter()
    with GalleryIndex.open(source, model) as index:
        took = time.perf_counter() - started
        assert index.rebuilds == 0, "the sidecar was not used"
        print(json.dumps({"s": took, "peak": status("VmHWM") - before, "rss": status("VmRSS") - before}))
"""


def fresh_cold_start(db: Path, key: Path | None) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", MEMORY, str(db), "" if key is None else str(key), MODEL],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


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
        # the users removed, one a round, are not among those verified
        removed = [f"user{args.templates - i:06d}" for i in range(args.rounds)]
        users = [
            f"user{i:06d}"
            for i in rng.choice(np.arange(1, args.templates - args.rounds + 1), args.verifies, replace=False)
        ]
        probe = rng.standard_normal(512).astype(np.float32)
        probe /= np.linalg.norm(probe)
        verify: dict[str, list[float]] = {"plain": [], "encrypted": []}
        kinds = ("built from the store (no sidecar)", "its sidecar there", "first open after a removal")
        cold: dict[str, dict[str, list[float]]] = {kind: {"plain": [], "encrypted": []} for kind in kinds}
        removals: dict[str, list[float]] = {"plain": [], "encrypted": []}
        fresh: dict[str, list[dict[str, float]]] = {"plain": [], "encrypted": []}
        for round_ in range(args.rounds):
            verify["plain"].append(verify_time(plain, None, users, probe))
            verify["encrypted"].append(verify_time(sealed, key, users, probe))
            for name, db, with_key in (("plain", plain, None), ("encrypted", sealed, key)):
                erase_sidecars(db)
                cold[kinds[0]][name].append(cold_start(db, with_key, rebuilt=True))
                cold[kinds[1]][name].append(cold_start(db, with_key, rebuilt=False))
            for name, db, with_key in (("plain", plain, None), ("encrypted", sealed, key)):
                fresh[name].append(fresh_cold_start(db, with_key))
            for name, db, with_key in (("plain", plain, None), ("encrypted", sealed, key)):
                removals[name].append(removal(db, with_key, removed[round_]))
                cold[kinds[2]][name].append(cold_start(db, with_key, rebuilt=True))
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
        print(f"\nidentify cold start at {args.templates} templates (median of {args.rounds}; encrypted / plain):")
        print(f"  {'':<36} {'plain':>9} {'encrypted':>10}  ratio")
        for kind in kinds:
            p, e = (statistics.median(cold[kind][name]) for name in ("plain", "encrypted"))
            print(f"  {kind:<36} {p:7.3f} s {e:8.3f} s  {e / p:5.2f}×")
        built = statistics.median(cold[kinds[0]]["plain"])
        sealed_open = statistics.median(cold[kinds[1]]["encrypted"])
        print(f"  encrypted with its sidecar / plain built from the store: {sealed_open / built:5.2f}×")
        p, e = (statistics.median(removals[name]) for name in ("plain", "encrypted"))
        print(f"  users remove (rows, keys, sidecars erased) {p:7.3f} s {e:8.3f} s  {e / p:5.2f}×")
        print(
            f"\ncold start with its sidecar there, in a fresh process (modules imported before; median of {args.rounds}):"
        )
        medians = {
            name: {figure: statistics.median(run[figure] for run in runs) for figure in ("s", "peak", "rss")}
            for name, runs in fresh.items()
        }
        for name, figures in medians.items():
            print(
                f"  {name:<10} {figures['s']:7.3f} s  {figures['s'] / medians['plain']['s']:5.2f}×   "
                f"peak +{figures['peak']:6.1f} MiB   resident after +{figures['rss']:6.1f} MiB"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
