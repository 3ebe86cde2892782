"""1:N identify: the int8 gallery index against float32 numpy brute force.

    python benchmarks/bench_identify.py                 # 10k, 100k, 1M
    python benchmarks/bench_identify.py --sizes 10000   # quicker

Galleries are synthetic but shaped like real ones: the real embeddings of the test photos
(cached in the temp folder), each person a noisy copy of one of them
(same-person cosines about 0.5-0.8, different people low). A store of that size would take
minutes to fill through SQLite, so the sidecar is written directly (gallery.Layout), as
`build_sidecar` would; build time is measured on the 10k and 100k stores through SQLite.
Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import mmap
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
CACHE = Path(tempfile.gettempdir()) / "facer-identify-embeddings.npy"  # biometric: never in the repo
PER_PERSON = 4
CHUNK = 50_000
MODEL = "bench-model"


def real_embeddings() -> np.ndarray:
    if CACHE.exists():
        return np.load(CACHE)
    from facer_cli.api import get_engine
    from facer_cli.modelpack import bundled_folder
    from facer_cli.settings import Settings

    engine = get_engine(Settings.model_validate({}))
    faces = Path(os.environ.get("FACER_TEST_FACES", HERE.parent.parent / "shared" / "faces"))
    photos = sorted((faces / "people").glob("*/*")) + sorted(bundled_folder().glob("*.jpg"))
    found = []
    for photo in photos:
        try:
            found.append(engine.analyze_path(photo).embedding)
        except Exception as exc:  # noqa: BLE001 - a photo without a usable face: skip it
            print(f"  skipped {photo.name}: {exc}", file=sys.stderr)
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


def write_sidecar(path: Path, real: np.ndarray, rows: int, seed: int = 0) -> tuple[float, np.ndarray]:
    """The synthetic gallery straight into a sidecar file, in chunks; returns (seconds, some probes)."""
    started = time.perf_counter()
    layout = g.Layout(rows, real.shape[1])
    probes = []
    with open(path, "w+b") as f:
        f.truncate(layout.total_bytes())
        with mmap.mmap(f.fileno(), layout.total_bytes()) as buffer:
            views = g._views(buffer, layout)
            largest = 0.0
            for start in range(0, rows, CHUNK):
                people = min(CHUNK, rows - start) // PER_PERSON
                centres = person_centres(real, start, people, seed)
                vectors = templates_of(centres, seed, start)
                stop = start + len(vectors)
                quantised = g.quantise_rows(vectors)
                views["template_ids"][start:stop] = np.arange(start, stop) + 1
                views["user_ids"][start:stop] = np.repeat(np.arange(start // PER_PERSON, stop // PER_PERSON) + 1, 4)
                views["scales"][start:stop] = quantised.scales
                views["error_norms"][start:stop] = quantised.error_norms
                views["codes_by_dimension"][:, start:stop] = quantised.codes.T
                views["vectors"][start:stop] = vectors
                largest = max(largest, g.max_norm(vectors))
                probes.append(templates_of(centres[:4], seed + 1, start))  # new photos of enrolled people
            del views
        crc = g._payload_crc(f.fileno(), g.HEADER_BYTES, layout.total_bytes())
        header = {"format": g.FORMAT_VERSION, "model": MODEL, "dimension": real.shape[1], "rows": rows,
                  "stamp": "bench", "max_row_norm": largest, "crc32": crc}
        os.pwrite(f.fileno(), g._encode_header(header), 0)
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


class MappedIndex(g.GalleryIndex):
    """The index over a written sidecar, with no store behind it (the 1M case)."""

    def __init__(self, sidecar: Path):
        self.sidecar, self.model, self.threads, self.gallery, self._buffer = sidecar, MODEL, None, None, None

    def load(self) -> None:
        if not self._try_map("bench"):
            raise SystemExit(f"{self.sidecar} is not a valid sidecar")


COLD = """
import sys, time, numpy as np
sys.path.insert(0, sys.argv[3])
from benchmarks.bench_identify import MappedIndex
from facer_cli import gallery as g
from pathlib import Path
imported = time.time() - float(sys.argv[4])
index = MappedIndex(Path(sys.argv[1])); index.load()
probe = np.frombuffer(bytes.fromhex(sys.argv[2]), '<f4')
found = g.search(index.gallery, probe, 5)
print(found[0].template_id, round(imported, 3))
"""

COLD_NUMPY = """
import sys, time, numpy as np
from pathlib import Path
from facer_cli import gallery as g
imported = time.time() - float(sys.argv[4])
path = Path(sys.argv[1]); handle = open(path, 'rb')
header = g.read_header(handle.fileno()); layout = g.Layout(header['rows'], header['dimension'])
offset, dtype, shape = layout.sections()['vectors']
vectors = np.fromfile(path, dtype=dtype, count=shape[0] * shape[1], offset=offset).reshape(shape)
probe = np.frombuffer(bytes.fromhex(sys.argv[2]), '<f4')
print(int(np.argmax(vectors @ probe)) + 1, round(imported, 3))
"""


def cold_start_s(script: str, sidecar: Path, probe: np.ndarray) -> tuple[float, str, float]:
    """Process start to answer, and how much of it was importing (facer_cli's package imports)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script, str(sidecar), probe.astype("<f4").tobytes().hex(),
                           str(HERE.parent), repr(time.time())], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    answer, import_s = done.stdout.split()
    return time.perf_counter() - started, answer, float(import_s)


def bench_size(rows: int, real: np.ndarray, folder: Path, repeats: int) -> dict:
    sidecar = folder / f"bench-{rows}.bin"
    write_s, probes = write_sidecar(sidecar, real, rows)
    base_rss = rss_mb()
    index = MappedIndex(sidecar)
    started = time.perf_counter()
    index.load()
    open_s = time.perf_counter() - started
    index_rss = rss_mb() - base_rss
    gallery = index.gallery
    assert gallery is not None
    probes = probes[:64]
    one_ms = median_ms(lambda: g.search(gallery, probes[0], 5), repeats)
    batch_ms = median_ms(lambda: g.search_batch(gallery, probes[:32], 5), max(3, repeats // 10)) / 32
    answers = [g.search(gallery, p, 5)[0].template_id for p in probes]
    search_rss = rss_mb() - base_rss
    index_bytes = sum(a.nbytes for a in (gallery.template_ids, gallery.user_ids, gallery.scales,
                                         gallery.error_norms, gallery.codes_by_dimension))
    index = gallery = None  # type: ignore[assignment]  # the maps go

    # Baseline: the float32 matrix in RAM, numpy brute force.
    base_rss = rss_mb()
    started = time.perf_counter()
    layout = g.Layout(rows, real.shape[1])
    offset, dtype, shape = layout.sections()["vectors"]
    vectors = np.fromfile(sidecar, dtype=dtype, count=shape[0] * shape[1], offset=offset).reshape(shape)
    load_s = time.perf_counter() - started
    numpy_rss = rss_mb() - base_rss
    np_one_ms = median_ms(lambda: int(np.argmax(vectors @ probes[0])), max(3, repeats // 5))
    np_batch_ms = median_ms(lambda: np.argmax(vectors @ probes[:32].T, axis=0), 3) / 32
    reference = [int(np.argmax(vectors @ p)) + 1 for p in probes]
    same_top1 = sum(a == b for a, b in zip(answers, reference))
    same_person_cos = float(np.mean(np.sum(vectors[0:PER_PERSON * 50:PER_PERSON] * vectors[1:PER_PERSON * 50:PER_PERSON], axis=1)))
    other_cos = float(np.mean(np.abs(vectors[0:2000:PER_PERSON] @ vectors[PER_PERSON:2000 + PER_PERSON:PER_PERSON].T)))
    vectors = None  # type: ignore[assignment]

    cold_s, cold_answer, cold_import_s = cold_start_s(COLD, sidecar, probes[0])
    np_cold_s, np_cold_answer, np_import_s = cold_start_s(COLD_NUMPY, sidecar, probes[0])
    sidecar.unlink()
    return {
        "rows": rows, "write_s": write_s, "open_s": open_s, "load_s": load_s,
        "one_ms": one_ms, "np_one_ms": np_one_ms, "batch_ms": batch_ms, "np_batch_ms": np_batch_ms,
        "index_rss_mb": index_rss, "search_rss_mb": search_rss, "index_bytes_mb": index_bytes / 2**20,
        "numpy_rss_mb": numpy_rss, "numpy_bytes_mb": rows * real.shape[1] * 4 / 2**20,
        "top1": f"{same_top1}/{len(probes)}", "cold_s": cold_s, "np_cold_s": np_cold_s,
        "cold_same": cold_answer == np_cold_answer, "cold_import_s": cold_import_s, "np_import_s": np_import_s, "same_person_cos": same_person_cos, "other_abs_cos": other_cos,
    }


def bench_store(rows: int, real: np.ndarray, folder: Path) -> dict:
    """Build and refresh through a real SQLite store (the counter stamp)."""
    db = folder / f"store-{rows}.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, created TEXT, updated TEXT);"
        "CREATE TABLE templates (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, vector BLOB NOT NULL,"
        " dimension INTEGER NOT NULL, model TEXT NOT NULL, created TEXT NOT NULL);"
        "CREATE INDEX idx_templates_model ON templates (model);" + g.VERSION_DDL
    )
    conn.execute("PRAGMA journal_mode = WAL")
    for start in range(0, rows, CHUNK):
        people = min(CHUNK, rows - start) // PER_PERSON
        vectors = templates_of(person_centres(real, start, people, 0), 0, start)
        first = start // PER_PERSON + 1
        conn.executemany("INSERT INTO users (id, name) VALUES (?, ?)", [(u, f"p{u}") for u in range(first, first + people)])
        conn.executemany("INSERT INTO templates (user_id, vector, dimension, model, created) VALUES (?, ?, ?, ?, 'c')",
                         [(first + i // PER_PERSON, v.tobytes(), real.shape[1], MODEL) for i, v in enumerate(vectors)])
    conn.commit()
    started = time.perf_counter()
    index = g.GalleryIndex.open(db, MODEL)
    build_s = time.perf_counter() - started
    noop_ms = median_ms(index.refresh, 50)
    conn.execute("INSERT INTO templates (user_id, vector, dimension, model, created) VALUES (1, ?, ?, ?, 'd')",
                 (vectors[0].tobytes(), real.shape[1], MODEL))
    conn.commit()
    started = time.perf_counter()
    changed = index.refresh()
    refresh_s = time.perf_counter() - started
    index.close()
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as ro:
        started = time.perf_counter()
        g.store_stamp(ro, MODEL)
        counter_stamp_ms = (time.perf_counter() - started) * 1e3
    conn.execute("DROP TABLE gallery_version")
    conn.commit()
    started = time.perf_counter()
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as ro:
        g.store_stamp(ro, MODEL)
    scan_stamp_ms = (time.perf_counter() - started) * 1e3
    conn.close()
    for leftover in folder.glob(f"store-{rows}.db*"):
        leftover.unlink()
    return {"rows": rows, "build_s": build_s, "noop_refresh_ms": noop_ms, "refresh_s": refresh_s,
            "refreshed": changed, "counter_stamp_ms": counter_stamp_ms, "scan_stamp_ms": scan_stamp_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--store-sizes", default="10000,100000")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    real = real_embeddings()
    print(f"{len(real)} real embeddings; {os.cpu_count()} cores; onnxruntime int8 MatMulInteger vs numpy float32")
    with tempfile.TemporaryDirectory(dir=HERE) as temp:
        folder = Path(temp)
        for rows in map(int, args.store_sizes.split(",")) if args.store_sizes else []:
            print(json.dumps(bench_store(rows, real, folder)), flush=True)
        for rows in map(int, args.sizes.split(",")):
            r = bench_size(rows, real, folder, args.repeats)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}), flush=True)
            print(f"  {rows:>9,}: one query {r['one_ms']:.1f} ms (numpy {r['np_one_ms']:.1f}, "
                  f"x{r['np_one_ms'] / r['one_ms']:.1f}); batch {r['batch_ms']:.2f} ms/probe (numpy "
                  f"{r['np_batch_ms']:.2f}); memory RSS {r['search_rss_mb']:.0f} MB, arrays {r['index_bytes_mb']:.0f} MB "
                  f"(numpy {r['numpy_rss_mb']:.0f} MB); cold {r['cold_s']:.2f} s (numpy {r['np_cold_s']:.2f}); "
                  f"of which imports {r['cold_import_s']:.2f}; open {r['open_s']:.2f} s; top-1 {r['top1']}", flush=True)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
