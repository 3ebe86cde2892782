"""Exact 1:N search over every template of one model: the core of `facer identify`.

The scan is int8 (512 bytes a template, 512 MB at one million) through ONNX Runtime's
`MatMulInteger`, whose prepacked AVX2/VNNI kernel is the fastest exact integer dot product
this package already depends on (numpy has no integer BLAS; float16 matmul in numpy is
slower than float32). Every row gets a rigorous bound on how far its int8 score can be
from the real one, so the rows that could still be in the answer are known exactly; they,
and only they, are re-scored from the float32 vectors, which come from the memory-mapped
sidecar file (the OS pages in just those rows). The answer equals exact float32 search.

The database is the only truth. The sidecar (`<db>.gallery-<hash>.bin`) is a cache of it,
stamped with the store's content stamp; a missing, stale, truncated, corrupt or foreign
sidecar is rebuilt (temp file + rename, mode 0600), never trusted.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import sqlite3
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np

Decision = Literal["identified", "unknown", "ambiguous"]

FORMAT_VERSION = 1
MAGIC = b"FACER-GALLERY\n"
HEADER_BYTES = 4096
ALIGN = 4096
# Codes of the gallery use the full int8 range; the probe's only 7 bits, because AVX2's
# u8 x s8 multiply-add saturates at 16 bits: 2 * 127 * 127 = 32258 still fits, 2 * 255 * 127 does not.
GALLERY_LEVELS = 127
PROBE_LEVELS = 63
PROBE_ZERO_POINT = 64
# Rounding of the float64 arithmetic that turns integer dot products into scores, and of the
# reference float32 search itself, is far below this; it only keeps ties on the safe side.
SCORE_SLACK = 1e-5
READ_CHUNK = 65_536
VERSION_TABLE = "gallery_version"


class GalleryError(Exception):
    """The store cannot be indexed (a malformed template row)."""


# -- results and the open-set decision ------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """A person's best template against the probe."""

    user_id: int
    template_id: int
    similarity: float
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.name,
            "user_id": self.user_id,
            "template_id": self.template_id,
            "similarity": round(self.similarity, 6),
        }


def decide(candidates: Sequence[Candidate], threshold: float, margin: float) -> tuple[Decision, str]:
    """Open-set rule: identified when the best is >= threshold and beats the best *other* person
    by >= margin; unknown below threshold; ambiguous when another person comes too close.
    Candidates are one per person (best first), so a second template of the same person never
    counts as a competitor."""
    if not candidates:
        return "unknown", "the gallery holds no template of this model"
    best = candidates[0]
    who = best.name if best.name is not None else f"user {best.user_id}"
    if best.similarity < threshold:
        return "unknown", f"best similarity {best.similarity:.3f} ({who}) is below the threshold {threshold:.3f}"
    others = [c for c in candidates[1:] if c.user_id != best.user_id]
    if not others:
        return "identified", f"{who} at {best.similarity:.3f}; no other person in the gallery"
    runner = others[0]
    runner_name = runner.name if runner.name is not None else f"user {runner.user_id}"
    gap = best.similarity - runner.similarity
    if gap < margin:
        return "ambiguous", (
            f"{who} at {best.similarity:.3f} but {runner_name} at {runner.similarity:.3f}: "
            f"margin {gap:.3f} is below {margin:.3f}"
        )
    return "identified", f"{who} at {best.similarity:.3f}, {gap:.3f} ahead of {runner_name}"


# -- quantisation and its error bound ----------------------------------------------
@dataclass(frozen=True)
class Quantised:
    """int8 codes of a row block (codes * scale approximates the rows) and, per row, an upper
    bound on the norm of what the codes lose."""

    codes: np.ndarray  # int8 [rows, dimension]
    scales: np.ndarray  # float32 [rows]
    error_norms: np.ndarray  # float32 [rows], rounded up


def quantise_rows(vectors: np.ndarray) -> Quantised:
    """Symmetric per-row int8: scale = max|x| / 127, so no code clips."""
    rows = np.asarray(vectors, dtype=np.float64)
    peak = np.abs(rows).max(axis=1)
    scales = np.where(peak > 0, peak / GALLERY_LEVELS, 1.0).astype(np.float32)
    codes = np.clip(np.rint(rows / scales[:, None]), -GALLERY_LEVELS, GALLERY_LEVELS).astype(np.int8)
    residual = rows - codes.astype(np.float64) * scales.astype(np.float64)[:, None]
    error_norms = _round_up(np.sqrt(np.einsum("ij,ij->i", residual, residual)))
    return Quantised(codes, scales, error_norms)


def _round_up(values: np.ndarray) -> np.ndarray:
    """float64 -> float32 never smaller than the input (bounds must stay bounds)."""
    narrowed = values.astype(np.float32)
    return np.where(narrowed.astype(np.float64) < values, np.nextafter(narrowed, np.float32(np.inf)), narrowed)


@dataclass(frozen=True)
class QuantisedProbe:
    codes: np.ndarray  # uint8 [dimension], code - 64 in [-63, 63]
    scale: float
    norm: float  # of the dequantised probe
    error_norm: float  # of probe - dequantised probe


def quantise_probe(probe: np.ndarray) -> QuantisedProbe:
    values = np.asarray(probe, dtype=np.float64).ravel()
    peak = float(np.abs(values).max()) if values.size else 0.0
    scale = peak / PROBE_LEVELS if peak > 0 else 1.0
    signed = np.clip(np.rint(values / scale), -PROBE_LEVELS, PROBE_LEVELS)
    dequantised = signed * scale
    return QuantisedProbe(
        codes=(signed + PROBE_ZERO_POINT).astype(np.uint8),
        scale=scale,
        norm=float(np.linalg.norm(dequantised)),
        error_norm=float(np.linalg.norm(values - dequantised)),
    )


def score_bounds(
    integer_dots: np.ndarray, probe: QuantisedProbe, scales: np.ndarray, error_norms: np.ndarray, max_row_norm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate scores and, per row, a bound on |exact - approximate|.

    With x = x^ + e (x^ = scale * codes) and q = q^ + f:
        <q, x> = <q^, x^> + <q^, e> + <f, x>,
    so |<q, x> - <q^, x^>| <= |q^| |e| + |f| |x|  (Cauchy-Schwarz, twice).
    <q^, x^> = probe.scale * scale * (integer dot), exact up to float64 rounding.
    """
    approx = integer_dots.astype(np.float64) * (probe.scale * scales.astype(np.float64))
    bound = probe.norm * error_norms.astype(np.float64) + probe.error_norm * max_row_norm + SCORE_SLACK
    return approx, bound


# -- the int8 scan (ONNX Runtime MatMulInteger) ---------------------------------------
class Int8Scanner:
    """probe codes [k, D] (uint8, zero point 64) x gallery codes [D, N] (int8) -> int32 [k, N], exactly.

    The gallery codes are a constant initializer, so ONNX Runtime prepacks them once into its
    kernel's layout; the caller keeps `codes_by_dimension` alive as long as the scanner."""

    def __init__(self, codes_by_dimension: np.ndarray, threads: int | None = None):
        import onnxruntime as ort  # deferred: only a non-empty gallery needs it

        self.dimension, self.rows = codes_by_dimension.shape
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
        options.log_severity_level = 3
        options.add_external_initializers(["codes"], [ort.OrtValue.ortvalue_from_numpy(codes_by_dimension)])
        self.session = ort.InferenceSession(
            _matmul_integer_model(self.dimension, self.rows), options, providers=["CPUExecutionProvider"]
        )

    def dots(self, probe_codes: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"probe": np.ascontiguousarray(probe_codes, dtype=np.uint8)})[0]


def _matmul_integer_model(dimension: int, rows: int) -> bytes:
    from onnx import TensorProto, helper

    codes = TensorProto(name="codes", data_type=TensorProto.INT8, dims=[dimension, rows])
    codes.data_location = TensorProto.EXTERNAL  # supplied by add_external_initializers, never copied here
    codes.external_data.add(key="location", value="gallery-codes")
    zero_point = helper.make_tensor("probe_zero_point", TensorProto.UINT8, [], [PROBE_ZERO_POINT])
    node = helper.make_node("MatMulInteger", ["probe", "codes", "probe_zero_point"], ["dots"])
    graph = helper.make_graph(
        [node],
        "gallery_scan",
        [helper.make_tensor_value_info("probe", TensorProto.UINT8, ["probes", dimension])],
        [helper.make_tensor_value_info("dots", TensorProto.INT32, ["probes", rows])],
        initializer=[zero_point, codes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


# -- search ---------------------------------------------------------------------------
@dataclass
class QuantisedGallery:
    """What `search` needs: ids, int8 codes (dimension-major, for the scanner) with their scales
    and error bounds, and float32 rows (usually a memory map) for the exact re-score."""

    template_ids: np.ndarray  # int64 [N]
    user_ids: np.ndarray  # int64 [N]
    scales: np.ndarray  # float32 [N]
    error_norms: np.ndarray  # float32 [N]
    codes_by_dimension: np.ndarray  # int8 [D, N]
    vectors: np.ndarray  # float32 [N, D]
    max_row_norm: float
    scanner: Int8Scanner | None = None

    @classmethod
    def from_vectors(cls, template_ids: Any, user_ids: Any, vectors: np.ndarray) -> QuantisedGallery:
        """In memory, for tests and small galleries."""
        rows = np.ascontiguousarray(vectors, dtype=np.float32)
        quantised = quantise_rows(rows)
        return cls(
            template_ids=np.asarray(template_ids, dtype=np.int64),
            user_ids=np.asarray(user_ids, dtype=np.int64),
            scales=quantised.scales,
            error_norms=quantised.error_norms,
            codes_by_dimension=np.ascontiguousarray(quantised.codes.T),
            vectors=rows,
            max_row_norm=max_norm(rows),
        )

    def __len__(self) -> int:
        return int(self.template_ids.shape[0])

    def scan(self, probe_codes: np.ndarray) -> np.ndarray:
        if self.scanner is None:
            self.scanner = Int8Scanner(self.codes_by_dimension)
        return self.scanner.dots(probe_codes)


def max_norm(rows: np.ndarray) -> float:
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64)) if len(rows) else np.zeros(1)
    return float(norms.max()) * (1 + 1e-6)


def search(gallery: QuantisedGallery, probe: np.ndarray, top_k: int = 5) -> list[Candidate]:
    """The top_k people (best template each) by exact similarity to `probe`."""
    return search_batch(gallery, np.asarray(probe, dtype=np.float32)[None, :], top_k)[0]


def search_batch(gallery: QuantisedGallery, probes: np.ndarray, top_k: int = 5) -> list[list[Candidate]]:
    """One int8 scan for all probes (the kernel is faster per probe in batches), then each
    probe's exact re-score."""
    probes = np.atleast_2d(np.asarray(probes, dtype=np.float32))
    if len(gallery) == 0 or top_k <= 0:
        return [[] for _ in probes]
    quantised = [quantise_probe(p) for p in probes]
    all_dots = gallery.scan(np.stack([q.codes for q in quantised]))
    results = []
    for probe, probe_q, dots in zip(probes, quantised, all_dots, strict=True):
        approx, bound = score_bounds(dots, probe_q, gallery.scales, gallery.error_norms, gallery.max_row_norm)
        rows = candidate_rows(approx - bound, approx + bound, gallery.user_ids, top_k)
        results.append(rescore(gallery, probe, rows, top_k))
    return results


def candidate_rows(lower: np.ndarray, upper: np.ndarray, user_ids: np.ndarray, top_k: int) -> np.ndarray:
    """Every row that could hold the best template of one of the top_k people.

    Let T be the top_k-th largest, over distinct people, of a person's best lower bound. Then
    top_k people score at least T, so a row whose upper bound is below T is either not its
    person's best or its person is not in the top_k: dropping it changes nothing. T is taken
    from the rows with the best lower bounds only; a smaller T keeps more rows, never fewer."""
    total = lower.shape[0]
    pool = max(4 * top_k, 64)
    while True:
        if pool >= total:
            best_rows = np.arange(total)
        else:
            best_rows = np.argpartition(lower, total - pool)[total - pool :]
        threshold = _kth_person_lower_bound(lower[best_rows], user_ids[best_rows], top_k)
        if threshold is not None or pool >= total:
            break
        pool *= 8
    if threshold is None:  # fewer than top_k people in the whole gallery: all of them
        return np.arange(total)
    return np.flatnonzero(upper >= threshold)


def _kth_person_lower_bound(lower: np.ndarray, user_ids: np.ndarray, top_k: int) -> float | None:
    order = np.lexsort((-lower, user_ids))  # per person, best lower bound first
    first_of_person = np.ones(order.shape[0], dtype=bool)
    first_of_person[1:] = user_ids[order][1:] != user_ids[order][:-1]
    per_person = np.sort(lower[order][first_of_person])[::-1]
    return float(per_person[top_k - 1]) if per_person.shape[0] >= top_k else None


def rescore(gallery: QuantisedGallery, probe: np.ndarray, rows: np.ndarray, top_k: int) -> list[Candidate]:
    """Exact scores of `rows` (float64 sums of the float32 values), best template per person."""
    rows = np.sort(rows)  # in file order: the memory map reads forwards
    exact = np.asarray(gallery.vectors[rows], dtype=np.float64) @ probe.astype(np.float64)
    template_ids = gallery.template_ids[rows]
    user_ids = gallery.user_ids[rows]
    order = np.lexsort((template_ids, -exact))  # best first; ties to the older template
    seen: set[int] = set()
    found: list[Candidate] = []
    for i in order:
        user = int(user_ids[i])
        if user in seen:
            continue
        seen.add(user)
        found.append(Candidate(user_id=user, template_id=int(template_ids[i]), similarity=float(exact[i])))
        if len(found) == top_k:
            break
    return found


def exact_search(
    template_ids: np.ndarray, user_ids: np.ndarray, vectors: np.ndarray, probe: np.ndarray, top_k: int
) -> list[Candidate]:
    """Reference: float64 brute force over float32 rows (for tests and the benchmark)."""
    scores = np.asarray(vectors, dtype=np.float64) @ np.asarray(probe, dtype=np.float64)
    order = np.lexsort((template_ids, -scores))
    seen: set[int] = set()
    found: list[Candidate] = []
    for i in order:
        if int(user_ids[i]) in seen:
            continue
        seen.add(int(user_ids[i]))
        found.append(Candidate(int(user_ids[i]), int(template_ids[i]), float(scores[i])))
        if len(found) == top_k:
            break
    return found


# -- the store's content stamp -----------------------------------------------------
def store_stamp(conn: sqlite3.Connection, model: str) -> str:
    """A durable stamp of the templates' content, the same in every process.

    With the `gallery_version` table (a counter that triggers bump in every transaction that
    inserts, deletes or updates a template; see VERSION_DDL) it costs two index look-ups.
    Without it, an aggregate over the model's templates: count, max/sum of ids, sum of user ids
    and the newest `created` (ids can be reused after the newest row is deleted, timestamps not);
    exact but a full scan of the table, so large stores want the migration."""
    has_counter = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)
    ).fetchone()
    if has_counter:
        version = conn.execute(f"SELECT version FROM {VERSION_TABLE} WHERE id = 1").fetchone()
        newest = conn.execute("SELECT coalesce(max(id), 0) FROM templates").fetchone()[0]
        return f"counter:{version[0] if version else 0}:{newest}"
    count, newest, id_sum, user_sum, created = conn.execute(
        "SELECT count(*), coalesce(max(id), 0), total(id), total(user_id), coalesce(max(created), '')"
        " FROM templates WHERE model = ?",
        (model,),
    ).fetchone()
    return f"scan:{count}:{newest}:{id_sum:.0f}:{user_sum:.0f}:{created}"


# The store change that makes the stamp O(1): one new migration step.
VERSION_DDL = """
CREATE TABLE gallery_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
INSERT INTO gallery_version (id, version) VALUES (1, 0);
CREATE TRIGGER gallery_version_on_insert AFTER INSERT ON templates
BEGIN UPDATE gallery_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER gallery_version_on_delete AFTER DELETE ON templates
BEGIN UPDATE gallery_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER gallery_version_on_update AFTER UPDATE ON templates
BEGIN UPDATE gallery_version SET version = version + 1 WHERE id = 1; END;
"""


def connect_read_only(db_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None, timeout=30.0)
    conn.execute("PRAGMA query_only = ON")
    return conn


# -- the sidecar file ------------------------------------------------------------
def sidecar_path(db_path: Path, model: str) -> Path:
    tag = hashlib.sha256(model.encode()).hexdigest()[:16]
    return db_path.with_name(f"{db_path.name}.gallery-{tag}.bin")


@dataclass(frozen=True)
class Layout:
    """Byte offsets of the sections after the header, each page-aligned."""

    rows: int
    dimension: int

    def sections(self) -> dict[str, tuple[int, np.dtype, tuple[int, ...]]]:
        shapes: list[tuple[str, str, tuple[int, ...]]] = [
            ("template_ids", "<i8", (self.rows,)),
            ("user_ids", "<i8", (self.rows,)),
            ("scales", "<f4", (self.rows,)),
            ("error_norms", "<f4", (self.rows,)),
            ("codes_by_dimension", "i1", (self.dimension, self.rows)),
            ("vectors", "<f4", (self.rows, self.dimension)),
        ]
        offset = HEADER_BYTES
        placed = {}
        for name, dtype, shape in shapes:
            placed[name] = (offset, np.dtype(dtype), shape)
            offset = _aligned(offset + np.dtype(dtype).itemsize * int(np.prod(shape)))
        return placed

    def total_bytes(self) -> int:
        offset, dtype, shape = self.sections()["vectors"]
        return _aligned(offset + dtype.itemsize * int(np.prod(shape)))


def _aligned(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


def _views(buffer: Any, layout: Layout) -> dict[str, np.ndarray]:
    return {
        name: np.frombuffer(buffer, dtype=dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)
        for name, (offset, dtype, shape) in layout.sections().items()
    }


def _payload_crc(fd: int, start: int, end: int) -> int:
    """CRC-32 read with pread, not through the map: checking must not pull 2 GB into our RSS."""
    crc, position = 0, start
    while position < end:
        block = os.pread(fd, min(16 << 20, end - position), position)
        if not block:
            break
        crc = zlib.crc32(block, crc)
        position += len(block)
    return crc


def build_sidecar(conn: sqlite3.Connection, model: str, target: Path) -> str:
    """Write the sidecar for `model` atomically (temp file + rename, 0600); return its stamp.

    Rows and stamp come from one read transaction, so they describe the same snapshot."""
    conn.execute("BEGIN")
    try:
        stamp = store_stamp(conn, model)
        rows, dimension = conn.execute(
            "SELECT count(*), coalesce(max(dimension), 0) FROM templates WHERE model = ?", (model,)
        ).fetchone()
        layout = Layout(rows, dimension)
        fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            os.ftruncate(fd, layout.total_bytes())
            max_row_norm = _fill(fd, conn, model, layout) if rows else 0.0
            header = {
                "format": FORMAT_VERSION,
                "model": model,
                "dimension": dimension,
                "rows": rows,
                "stamp": stamp,
                "max_row_norm": max_row_norm,
                "crc32": _payload_crc(fd, HEADER_BYTES, layout.total_bytes()),
            }
            os.pwrite(fd, _encode_header(header), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(temp_name)
            raise
        os.close(fd)
        os.replace(temp_name, target)
    finally:
        conn.execute("COMMIT")
    return stamp


def _fill(fd: int, conn: sqlite3.Connection, model: str, layout: Layout) -> float:
    with mmap.mmap(fd, layout.total_bytes()) as buffer:
        views = _views(buffer, layout)
        cursor = conn.execute(
            "SELECT id, user_id, dimension, vector FROM templates WHERE model = ? ORDER BY id", (model,)
        )
        start, largest = 0, 0.0
        while batch := cursor.fetchmany(READ_CHUNK):
            stop = start + len(batch)
            if stop > layout.rows:
                raise GalleryError("the store changed while it was read")
            vectors = _decode(batch, layout.dimension)
            quantised = quantise_rows(vectors)
            views["template_ids"][start:stop] = [row[0] for row in batch]
            views["user_ids"][start:stop] = [row[1] for row in batch]
            views["scales"][start:stop] = quantised.scales
            views["error_norms"][start:stop] = quantised.error_norms
            views["codes_by_dimension"][:, start:stop] = quantised.codes.T
            views["vectors"][start:stop] = vectors
            largest = max(largest, max_norm(vectors))
            start = stop
        del views
        buffer.flush()
    if start != layout.rows:
        raise GalleryError("the store changed while it was read")
    return largest


def _decode(batch: list[tuple[Any, ...]], dimension: int) -> np.ndarray:
    if any(row[2] != dimension or not isinstance(row[3], bytes) or len(row[3]) != 4 * dimension for row in batch):
        bad = next(row[0] for row in batch if row[2] != dimension or len(row[3] or b"") != 4 * dimension)
        raise GalleryError(f"template {bad} does not hold {dimension} float32 values: the store is corrupt")
    vectors = np.frombuffer(b"".join(row[3] for row in batch), dtype="<f4").reshape(len(batch), dimension)
    if not np.isfinite(vectors).all():
        raise GalleryError("a template holds NaN or infinity: the store is corrupt")
    return vectors.astype(np.float32)


def _encode_header(header: dict[str, Any]) -> bytes:
    text = MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n"
    if len(text) > HEADER_BYTES:
        raise GalleryError("the model fingerprint is too long for the sidecar header")
    return text.ljust(HEADER_BYTES, b"\0")


def read_header(fd: int) -> dict[str, Any] | None:
    """The header, or None when it is not one this version wrote."""
    raw = os.pread(fd, HEADER_BYTES, 0)
    if len(raw) != HEADER_BYTES or not raw.startswith(MAGIC):
        return None
    try:
        header = json.loads(raw[len(MAGIC) :].split(b"\n", 1)[0])
    except ValueError:
        return None
    return header if isinstance(header, dict) and header.get("format") == FORMAT_VERSION else None


def sidecar_problem(fd: int, model: str, stamp: str) -> str | None:
    """Why the sidecar cannot be used for (model, stamp), or None when it can."""
    header = read_header(fd)
    if header is None:
        return "no valid header"
    if header.get("model") != model:
        return "made for another model"
    if header.get("stamp") != stamp:
        return "stale: the store changed"
    try:
        layout = Layout(int(header["rows"]), int(header["dimension"]))
        size = os.fstat(fd).st_size
        if size != layout.total_bytes():
            return f"truncated or padded: {size} bytes instead of {layout.total_bytes()}"
        if _payload_crc(fd, HEADER_BYTES, size) != header["crc32"]:
            return "checksum mismatch: corrupt"
    except (KeyError, TypeError, ValueError):
        return "malformed header"
    return None


# -- the index --------------------------------------------------------------------
class GalleryIndex:
    """The current model's templates, searchable, kept in step with the store.

    >>> index = GalleryIndex.open("facer.db", engine.fingerprint)
    >>> people = index.search(probe, top_k=5)          # refreshes first (cheap when nothing changed)
    >>> decision, reason = decide(people, threshold, margin)
    """

    def __init__(self, db_path: Path, model: str, threads: int | None = None):
        self.db_path = Path(db_path).expanduser()
        self.model = model
        self.threads = threads
        self.sidecar = sidecar_path(self.db_path, model)
        self.conn = connect_read_only(self.db_path)
        self.stamp = ""
        self.rebuilds = 0  # how many times this process wrote the sidecar
        self.gallery: QuantisedGallery | None = None
        self._buffer: mmap.mmap | None = None
        self._data_version = -1

    @classmethod
    def open(cls, db_path: Path | str, model: str, threads: int | None = None) -> GalleryIndex:
        index = cls(Path(db_path), model, threads)
        index._data_version = index._read_data_version()
        index._load(store_stamp(index.conn, model))
        return index

    def close(self) -> None:
        self._release()
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return 0 if self.gallery is None else len(self.gallery)

    # -- keeping up with the store ----------------------------------------------
    def refresh(self) -> bool:
        """Reload when another connection changed the templates; True when it did.

        `PRAGMA data_version` (per connection, changes when another one commits) makes the
        common case a no-op; only then is the durable stamp read and compared."""
        data_version = self._read_data_version()
        if data_version == self._data_version:
            return False
        self._data_version = data_version
        stamp = store_stamp(self.conn, self.model)
        if stamp == self.stamp:
            return False
        self._load(stamp)
        return True

    def _read_data_version(self) -> int:
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def _load(self, stamp: str) -> None:
        """Map the sidecar if it is valid for `stamp`; otherwise rebuild it first."""
        if not self._try_map(stamp):
            stamp = build_sidecar(self.conn, self.model, self.sidecar)
            self.rebuilds += 1
            if not self._try_map(stamp):
                raise GalleryError(f"the gallery file {self.sidecar} was replaced while it was being opened")
        self.stamp = stamp

    def _try_map(self, stamp: str) -> bool:
        try:
            fd = os.open(self.sidecar, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            if sidecar_problem(fd, self.model, stamp) is not None:
                return False
            header = read_header(fd)
            assert header is not None
            layout = Layout(int(header["rows"]), int(header["dimension"]))
            buffer = mmap.mmap(fd, layout.total_bytes(), access=mmap.ACCESS_READ)
        finally:
            os.close(fd)  # the map keeps the inode; a later rename does not disturb it
        self._install(buffer, layout, float(header["max_row_norm"]))
        return True

    def _install(self, buffer: mmap.mmap, layout: Layout, max_row_norm: float) -> None:
        views = _views(buffer, layout)
        gallery = QuantisedGallery(
            template_ids=views["template_ids"],
            user_ids=views["user_ids"],
            scales=views["scales"],
            error_norms=views["error_norms"],
            codes_by_dimension=views["codes_by_dimension"],
            vectors=views["vectors"],
            max_row_norm=max_row_norm,
        )
        if layout.rows:
            gallery.scanner = Int8Scanner(views["codes_by_dimension"], self.threads)
            # The scanner holds its own packed copy: drop the codes' pages from our RSS (clean,
            # file-backed pages; touching them again would just read the file).
            buffer.madvise(mmap.MADV_DONTNEED)
        self._release()
        self.gallery, self._buffer = gallery, buffer

    def _release(self) -> None:
        self.gallery = None
        self._buffer = None  # the map closes when the last numpy view of it is gone

    # -- searching ---------------------------------------------------------------
    def search(self, probe: np.ndarray, top_k: int = 5, refresh: bool = True) -> list[Candidate]:
        return self.search_batch(np.asarray(probe, dtype=np.float32)[None, :], top_k, refresh)[0]

    def search_batch(self, probes: np.ndarray, top_k: int = 5, refresh: bool = True) -> list[list[Candidate]]:
        if refresh:
            self.refresh()
        if self.gallery is None or len(self.gallery) == 0:
            return [[] for _ in np.atleast_2d(probes)]
        results = search_batch(self.gallery, probes, top_k)
        names = self._names({c.user_id for found in results for c in found})
        return [[_named(c, names) for c in found] for found in results]

    def _names(self, user_ids: set[int]) -> dict[int, str]:
        """Names are read at answer time, so a rename never needs a rebuild."""
        if not user_ids:
            return {}
        marks = ",".join("?" * len(user_ids))
        return dict(self.conn.execute(f"SELECT id, name FROM users WHERE id IN ({marks})", sorted(user_ids)))


def _named(candidate: Candidate, names: dict[int, str]) -> Candidate:
    return Candidate(candidate.user_id, candidate.template_id, candidate.similarity, names.get(candidate.user_id))
