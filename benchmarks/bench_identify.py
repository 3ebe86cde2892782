"""1:N identify: the gallery index against float32 numpy brute force, on real stores.

    python benchmarks/bench_identify.py                          # 10k, 100k, 1M templates
    python benchmarks/bench_identify.py --sizes 10000 --repeats 10   # quicker

Galleries are synthetic but shaped like real ones: the real embeddings of the test photos
(cached in the temp folder), each person a noisy copy of one of them (same-person cosines
about 0.5-0.8, different people low), PER_PERSON templates each. Each size is a real facer
store (every migration, the triggers), filled directly through SQLite.

Per size: index build (no sidecar), cold open (sidecar mapped), incremental refresh after an
insert and after a removal by another connection, one query and batches of 32, the rows
re-scored per query (the bound's candidates), memory, `facer identify` cold start (a real
process: imports, models, one photo, the search, the audit row), and the same for numpy
brute force over the float32 matrix read from the store. Prints figures; asserts nothing
about time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from facer_cli import gallery as g

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = Path(tempfile.gettempdir()) / "facer-identify-embeddings.npy"  # biometric: never in the repo
PER_PERSON = 4
CHUNK = 20_000


def faces_folder() -> Path:
    return Path(os.environ.get("FACER_TEST_FACES", REPO.parent / "shared" / "faces"))


def real_embeddings() -> np.ndarray:
    if CACHE.exists():
        return np.load(CACHE)
    from facer_cli.engine.face_engine import get_engine
    from facer_cli.engine.modelpack import bundled_folder
    from facer_cli.settings import Settings

    engine = get_engine(Settings().engine)
    photos = sorted((faces_folder() / "people").glob("*/*")) + sorted(bundled_folder().glob("*.jpg"))
    found = []
    for photo in photos:
        frame = engine.analyze_path(photo)
        if frame.accepted and frame.embedding is not None:
            found.append(frame.embedding)
    embeddings = np.asarray(found, dtype=np.float32)
    np.save(CACHE, embeddings)
    return embeddings


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def person_centres(real: np.ndarray, start: int, count: int, seed: int) -> np.ndarray:
    """A person = a real face pushed far enough that different people stay low (like real ones)."""
    rng = np.random.default_rng([seed, start])
    bases = real[rng.integers(len(real), size=count)]
    return unit(bases + 1.6 * unit(rng.standard_normal((count, real.shape[1]), dtype=np.float32)))


def templates_of(centres: np.ndarray, seed: int, start: int) -> np.ndarray:
    """Photos of a person: same-person cosines about 0.5-0.8."""
    rng = np.random.default_rng([seed, start, 1])
    repeated = np.repeat(centres, PER_PERSON, axis=0)
    return unit(repeated + 0.8 * unit(rng.standard_normal(repeated.shape, dtype=np.float32)))


def model_fingerprint() -> str:
    from facer_cli.service import Facer

    return Facer().current_model()[0]


def make_store(db: Path, real: np.ndarray, rows: int, model: str, seed: int = 0) -> tuple[float, np.ndarray]:
    """A facer store with `rows` synthetic templates; returns (seconds, probes: new photos of enrolled people)."""
    from facer_cli.store import Store

    started = time.perf_counter()
    Store(db, access="create").close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA synchronous = OFF")
    probes = []
    for start in range(0, rows, CHUNK):
        people = min(CHUNK, rows - start) // PER_PERSON
        centres = person_centres(real, start, people, seed)
        vectors = templates_of(centres, seed, start)
        first = start // PER_PERSON + 1
        conn.executemany(
            "INSERT INTO users (id, name, created, updated) VALUES (?, ?, 'c', 'u')",
            [(u, f"person {u}") for u in range(first, first + people)],
        )
        conn.executemany(
            "INSERT INTO templates (user_id, vector, dimension, model, created) VALUES (?, ?, ?, ?, 'c')",
            [(first + i // PER_PERSON, v.tobytes(), real.shape[1], model) for i, v in enumerate(vectors)],
        )
        conn.commit()
        probes.append(templates_of(centres[:2], seed + 1, start))
    conn.close()
    return time.perf_counter() - started, np.concatenate(probes)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def median_ms(action, repeats: int) -> float:
    action()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1e3


def read_floor_ms(nbytes: int, repeats: int) -> float:
    """Reading `nbytes` once with both cores (two threads, each reducing half of an array that
    size): the floor under any exact scan of that many bytes of int8 codes, on this machine now."""
    from concurrent.futures import ThreadPoolExecutor

    words = np.ones(nbytes // 8, np.uint64)
    halves = [words[: len(words) // 2], words[len(words) // 2 :]]
    with ThreadPoolExecutor(2) as pool:
        return median_ms(lambda: list(pool.map(np.bitwise_xor.reduce, halves)), repeats)


def read_matrix(db: Path, model: str) -> tuple[np.ndarray, np.ndarray]:
    """Baseline's load: every template of the model from the store into one float32 matrix (in
    chunks, so the 1M case holds the matrix and one chunk, not every row twice)."""
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
        count, dimension = conn.execute(
            "SELECT count(*), max(dimension) FROM templates WHERE model = ?", (model,)
        ).fetchone()
        ids = np.empty(count, np.int64)
        matrix = np.empty((count, dimension), np.float32)
        cursor = conn.execute("SELECT id, vector FROM templates WHERE model = ? ORDER BY id", (model,))
        start = 0
        while rows := cursor.fetchmany(CHUNK):
            ids[start : start + len(rows)] = [r[0] for r in rows]
            matrix[start : start + len(rows)] = np.frombuffer(b"".join(r[1] for r in rows), "<f4").reshape(len(rows), -1)
            start += len(rows)
    return ids, matrix


NUMPY_COLD = """
import sys, sqlite3, numpy as np
from pathlib import Path
db, model, probe = Path(sys.argv[1]), sys.argv[2], np.load(sys.argv[3])
with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
    count = conn.execute("SELECT count(*) FROM templates WHERE model = ?", (model,)).fetchone()[0]
    ids, matrix = np.empty(count, np.int64), np.empty((count, probe.shape[0]), np.float32)
    cursor, start = conn.execute("SELECT id, vector FROM templates WHERE model = ? ORDER BY id", (model,)), 0
    while rows := cursor.fetchmany(20000):
        ids[start:start + len(rows)] = [r[0] for r in rows]
        matrix[start:start + len(rows)] = np.frombuffer(b"".join(r[1] for r in rows), "<f4").reshape(len(rows), -1)
        start += len(rows)
print(ids[int(np.argmax(matrix @ probe))])
"""

INDEX_COLD = """
import sys, numpy as np
from facer_cli.gallery import GalleryIndex
index = GalleryIndex.open(sys.argv[1], sys.argv[2])
print(index.search(np.load(sys.argv[3]), 5)[0].template_id)
"""


def timed_process(args: list[str]) -> tuple[float, str, int]:
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    return time.perf_counter() - started, done.stdout.strip(), done.returncode


def identify_cold(db: Path, photo: Path, repeats: int = 3) -> tuple[float, int]:
    """`facer identify PHOTO`: process start to exit (median), and its exit code."""
    times, code = [], 0
    for _ in range(repeats):
        seconds, _, code = timed_process(
            [sys.executable, "-m", "facer_cli", "identify", str(photo), "--db", str(db), "--json", "--min-valid-frames", "1"]
        )
        times.append(seconds)
    return float(np.median(times)), code


def bench_size(rows: int, real: np.ndarray, folder: Path, model: str, repeats: int, photo: Path | None) -> dict:
    db = folder / f"store-{rows}.db"
    fill_s, probes = make_store(db, real, rows, model)
    probes = probes[:64]
    result: dict = {"rows": rows, "fill_s": fill_s}

    # Build from the store (no sidecar), then a cold open with the sidecar.
    base = rss_mb()
    started = time.perf_counter()
    index = g.GalleryIndex.open(db, model)
    result["build_s"] = time.perf_counter() - started
    index.close()
    base = rss_mb()
    started = time.perf_counter()
    index = g.GalleryIndex.open(db, model)
    result["open_s"] = time.perf_counter() - started
    result["index_rss_mb"] = rss_mb() - base
    assert index.rebuilds == 0
    result["sidecar_mb"] = index.sidecar.stat().st_size / 2**20

    # Queries, with the memory floor measured around them (the machine's memory speed drifts).
    floor = [read_floor_ms(rows * real.shape[1], 5)]
    result["one_ms"] = median_ms(lambda: index.search(probes[0], 5), repeats)
    floor.append(read_floor_ms(rows * real.shape[1], 5))
    result["floor_ms"] = sum(floor) / 2
    result["batch_ms"] = median_ms(lambda: index.search_batch(probes[:32], 5), max(3, repeats // 10)) / 32
    rescored, answers = [], []
    for probe in probes:
        answers.append(index.search(probe, 5)[0].template_id)
        rescored.append(index.stats.rescored)
    stranger = unit(np.random.default_rng(5).standard_normal((16, real.shape[1])).astype(np.float32))
    for probe in stranger:
        index.search(probe, 5)
        rescored.append(index.stats.rescored)
    result["rescored_mean"] = float(np.mean(rescored))
    result["rescored_max"] = int(np.max(rescored))
    result["search_rss_mb"] = rss_mb() - base

    # Freshness: another connection inserts one template, then removes one person.
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO templates (user_id, vector, dimension, model, created) VALUES (1, ?, ?, ?, 'd')",
                 (probes[0].tobytes(), real.shape[1], model))
    conn.commit()
    started = time.perf_counter()
    assert index.refresh()
    result["refresh_insert_ms"] = (time.perf_counter() - started) * 1e3
    conn.execute("DELETE FROM templates WHERE user_id = 2")
    conn.commit()
    started = time.perf_counter()
    assert index.refresh()
    result["refresh_delete_ms"] = (time.perf_counter() - started) * 1e3
    result["noop_refresh_ms"] = median_ms(index.refresh, 50)
    assert index.rebuilds == 0 and index.catch_ups == 2
    conn.close()
    answers = [index.search(probe, 5)[0].template_id for probe in probes]  # the store as the baseline reads it
    index.close()
    index = None  # type: ignore[assignment]

    # Baseline: the float32 matrix in RAM, numpy brute force.
    base = rss_mb()
    started = time.perf_counter()
    ids, matrix = read_matrix(db, model)
    result["np_load_s"] = time.perf_counter() - started
    result["numpy_rss_mb"] = rss_mb() - base
    result["np_one_ms"] = median_ms(lambda: int(np.argmax(matrix @ probes[0])), max(3, repeats // 5))
    result["np_batch_ms"] = median_ms(lambda: np.argmax(matrix @ probes[:32].T, axis=0), 3) / 32
    reference = [int(ids[int(np.argmax(matrix @ p))]) for p in probes]
    result["top1_same"] = f"{sum(a == b for a, b in zip(answers, reference, strict=True))}/{len(probes)}"
    ids = matrix = None  # type: ignore[assignment]  # 2 GB at 1M: gone before the cold starts

    # Cold starts: a process that opens the index (sidecar) and answers; numpy's that reads the store.
    probe_file = folder / "probe.npy"
    np.save(probe_file, probes[1])
    result["cold_index_s"], index_answer, _ = timed_process([sys.executable, "-c", INDEX_COLD, str(db), model, str(probe_file)])
    result["cold_numpy_s"], numpy_answer, _ = timed_process([sys.executable, "-c", NUMPY_COLD, str(db), model, str(probe_file)])
    result["cold_same"] = index_answer == numpy_answer
    if photo is not None:
        result["identify_cold_s"], result["identify_exit"] = identify_cold(db, photo)
    for leftover in folder.glob(f"store-{rows}.db*"):
        leftover.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    real = real_embeddings()
    model = model_fingerprint()
    people = faces_folder() / "people" / "obama"
    photo = next(iter(sorted(people.glob("obama_4.*"))), None) if people.is_dir() else None
    print(f"{len(real)} real embeddings; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}; "
          f"int8 MatMulInteger (two probe rows) + exact re-score from the store, vs numpy float32", flush=True)
    with tempfile.TemporaryDirectory(prefix="facer-bench-") as temp:
        for rows in map(int, args.sizes.split(",")):
            r = bench_size(rows, real, Path(temp), model, args.repeats, photo)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}), flush=True)
            print(
                f"  {rows:>9,}: one query {r['one_ms']:.1f} ms (numpy {r['np_one_ms']:.1f}; reading the codes' "
                f"bytes once with both cores, the floor of any exact int8 scan: {r['floor_ms']:.1f} ms); batch "
                f"{r['batch_ms']:.2f} ms/probe (numpy {r['np_batch_ms']:.2f}); re-scored rows mean "
                f"{r['rescored_mean']:.0f}, max {r['rescored_max']}; RSS {r['search_rss_mb']:.0f} MB "
                f"(numpy {r['numpy_rss_mb']:.0f} MB); build {r['build_s']:.2f} s, open {r['open_s']:.2f} s "
                f"(numpy load {r['np_load_s']:.2f} s); refresh +1 {r['refresh_insert_ms']:.1f} ms, -1 person "
                f"{r['refresh_delete_ms']:.1f} ms; cold index {r['cold_index_s']:.2f} s (numpy "
                f"{r['cold_numpy_s']:.2f} s); facer identify cold {r.get('identify_cold_s', float('nan')):.2f} s; "
                f"top-1 {r['top1_same']}",
                flush=True,
            )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
