"""Exact 1:N search over every template of one model: the core of `facer identify`.

**The scan.** Every template is kept as int8 codes (512 bytes a template, 512 MB at one million)
and scanned through ONNX Runtime's `MatMulInteger`, whose prepacked AVX2 kernel is the fastest
exact integer dot product this package already depends on (numpy has no integer BLAS; float16
matmul in numpy is slower than float32; simsimd's and usearch's exact int8 scans measured slower
on this machine, see benchmarks/bench_identify.py). The probe is quantised twice — its codes and
the codes of what they miss — so both go through the same scan (two rows cost about what one
does: the gallery's memory is the bottleneck) and the probe's own rounding hardly counts.

**The bound.** Every row gets a rigorous bound on how far its int8 score can be from the exact
one (Cauchy–Schwarz on what the codes lose, see `RowBounds`), so the rows that could still be
in the answer are known exactly; they, and only they, are re-scored in float64 from the float32
vectors **read from the database** (a few dozen rows by primary key). The answer equals exact
float32 search — the same people, the same order, the same similarities.

**Freshness.** The database is the only truth. A per-model counter (`gallery_version`, kept by
triggers on `templates`) tells in one look-up whether and how the templates changed. New
templates join a small float32 delta scanned with numpy; removed ones are masked; only when the
delta or the mask grows large is the index rebuilt. Every search reads its rows in one read
transaction with the counter, so it never mixes two states of the store.

**The sidecar** (`<db>.gallery-<hash>.bin`, 0600, written to a temp file and renamed) holds the
codes, ids, scales and error bounds, with a CRC-32, so a cold `facer identify` maps it instead of
reading every template. A missing, truncated, corrupt or foreign sidecar is rebuilt, never
trusted; a stale one is brought up to date from the store like a running index (or rebuilt).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import sqlite3
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np

Decision = Literal["identified", "unknown", "ambiguous"]

FORMAT_VERSION = 2
MAGIC = b"FACER-GALLERY\n"
HEADER_BYTES = 4096
ALIGN = 4096
# Codes of the gallery use the full int8 range; the probe's only 7 bits, because AVX2's
# u8 x s8 multiply-add saturates at 16 bits: 2 * 127 * 127 = 32258 still fits, 2 * 255 * 127 does not.
GALLERY_LEVELS = 127
PROBE_LEVELS = 63
PROBE_ZERO_POINT = 64
# Covers the float32 rounding of the approximate scores and bounds (below 1e-6 for unit vectors),
# so a bound stays a bound; re-scoring is float64.
SCORE_SLACK = 1e-5
READ_CHUNK = 65_536
VERSION_TABLE = "gallery_version"
# The delta (new templates, scanned exactly) and the masked (removed) rows may grow to this
# before the index is rebuilt and its sidecar rewritten.
DELTA_MIN = 4096
DELTA_FRACTION = 0.05
DEAD_FRACTION = 0.10
# A process that opens the index and finds more new templates than this since the sidecar was
# written rewrites it, so the next cold start maps them instead of reading them from the store.
REWRITE_MIN = 1024
REWRITE_FRACTION = 0.01
SQL_VARIABLES = 500


class GalleryError(Exception):
    """The store cannot be indexed (a malformed template row)."""


class _Resync(GalleryError):
    """The index and the store disagree: rebuild from the store and search again."""


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
    peak = np.abs(rows).max(axis=1) if rows.size else np.zeros(len(rows))
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
    """q ≈ a + b: a = scales[0] * (codes[0] - 64), b = scales[1] * (codes[1] - 64), b coding q - a."""

    codes: np.ndarray  # uint8 [2, dimension], zero point 64, values in [1, 127]
    scales: tuple[float, float]
    norm: float  # |a + b|
    error_norm: float  # |q - a - b|


def _codes7(values: np.ndarray) -> tuple[np.ndarray, float]:
    peak = float(np.abs(values).max()) if values.size else 0.0
    scale = peak / PROBE_LEVELS if peak > 0 else 1.0
    return np.clip(np.rint(values / scale), -PROBE_LEVELS, PROBE_LEVELS), scale


def quantise_probe(probe: np.ndarray) -> QuantisedProbe:
    values = np.asarray(probe, dtype=np.float64).ravel()
    first, first_scale = _codes7(values)
    residual = values - first * first_scale
    second, second_scale = _codes7(residual)
    dequantised = first * first_scale + second * second_scale
    return QuantisedProbe(
        codes=(np.stack([first, second]) + PROBE_ZERO_POINT).astype(np.uint8),
        scales=(first_scale, second_scale),
        norm=float(np.linalg.norm(dequantised)),
        error_norm=float(np.linalg.norm(values - dequantised)),
    )


def approximate_scores(
    integer_dots: np.ndarray,
    probe: QuantisedProbe,
    scales: np.ndarray,
    out: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """<p, x^> per row (float32): scale * (scale_a * <A, C> + scale_b * <B, C>) from the integer dots
    of the probe's two code rows (`integer_dots` [2, rows], below 2^24 in size, so exact in float32).
    `out`: two float32 [rows] arrays, the result and a scratch (no allocation per query)."""
    rows = scales.shape[0]
    approx, part = out if out is not None else (np.empty(rows, np.float32), np.empty(rows, np.float32))
    np.multiply(integer_dots[0], np.float32(probe.scales[0]), out=approx, dtype=np.float32, casting="unsafe")
    np.multiply(integer_dots[1], np.float32(probe.scales[1]), out=part, dtype=np.float32, casting="unsafe")
    approx += part
    approx *= scales
    return approx


@dataclass(frozen=True)
class RowBounds:
    """Per row, a bound on |exact - approximate| score: with x = x^ + e (x^ = scale * codes) and
    q = p + g (p = a + b, the probe's two code rows),
        <q, x> = <p, x^> + <p, e> + <g, x>,
    so |<q, x> - <p, x^>| <= |p| |e| + |g| |x|  (Cauchy-Schwarz, twice) = probe_norm * e_i + constant.

    A search needs the bounds of a few rows only: `near` rules the rest out with the largest
    bound over all rows (from the gallery's largest |e|), so no bound is computed for a million rows."""

    error_norms: np.ndarray  # float32 [rows]: |e| per row, rounded up
    probe_norm: np.float32
    constant: np.float32
    largest: float  # the bound of the row with the largest |e|: no row's is larger

    @classmethod
    def of(cls, probe: QuantisedProbe, error_norms: np.ndarray, largest_error: float, max_row_norm: float) -> RowBounds:
        probe_norm = np.float32(probe.norm)
        constant = np.float32(probe.error_norm * max_row_norm + SCORE_SLACK)
        largest = float(_scaled(np.array([largest_error], np.float32), probe_norm, constant)[0])
        return cls(error_norms, probe_norm, constant, largest)

    def at(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The bounds of these rows (float32, the same arithmetic for every caller)."""
        return _scaled(self.error_norms[rows], self.probe_norm, self.constant)

    def lower(self, approx: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return approx[rows] - self.at(rows)

    def upper(self, approx: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return approx[rows] + self.at(rows)

    def near(self, approx: np.ndarray, cut: float) -> np.ndarray:
        """Every row whose lower bound, or upper bound, could be at least `cut`: those whose approx
        clears cut - the largest bound (SCORE_SLACK covering float32 rounding), in row order."""
        return np.flatnonzero(approx >= cut - self.largest - SCORE_SLACK)


def _scaled(error_norms: np.ndarray, probe_norm: np.float32, constant: np.float32) -> np.ndarray:
    bound = np.multiply(error_norms, probe_norm, dtype=np.float32)
    bound += constant
    return bound


def score_bounds(
    integer_dots: np.ndarray, probe: QuantisedProbe, scales: np.ndarray, error_norms: np.ndarray, max_row_norm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate scores and every row's bound (`approximate_scores`, `RowBounds`), for checking the bound."""
    bounds = RowBounds.of(probe, error_norms, largest_error(error_norms), max_row_norm)
    return approximate_scores(integer_dots, probe, scales), bounds.at()


def largest_error(error_norms: np.ndarray) -> float:
    return float(error_norms.max()) if error_norms.size else 0.0


# -- the int8 scan (ONNX Runtime MatMulInteger) ---------------------------------------
class Int8Scanner:
    """probe codes [k, D] (uint8, zero point 64) x gallery codes [D, N] (int8) -> int32 [k, N], exactly.

    The gallery codes are a constant initializer, so ONNX Runtime prepacks them once into its
    kernel's layout (its own copy: the caller may drop the codes' pages afterwards)."""

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

    def dots(self, probe_codes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The integer dots; into `out` (int32 [k, N]) when given, which ONNX Runtime fills in place."""
        codes = np.ascontiguousarray(probe_codes, dtype=np.uint8)
        if out is None:
            return self.session.run(None, {"probe": codes})[0]
        binding = self.session.io_binding()
        binding.bind_cpu_input("probe", codes)
        binding.bind_output("dots", "cpu", 0, np.int32, list(out.shape), out.ctypes.data)
        self.session.run_with_iobinding(binding)
        return out


def _matmul_integer_model(dimension: int, rows: int) -> bytes:
    """The one-node ONNX model `dots = MatMulInteger(probe, codes, 64)`, serialised by hand (the
    protobuf wire format of onnx.proto3): importing the `onnx` package would cost a cold
    `facer identify` about 0.4 s. A test checks it against the model `onnx.helper` builds."""

    def varint(value: int) -> bytes:
        out = bytearray()
        value &= (1 << 64) - 1
        while True:
            byte = value & 0x7F
            value >>= 7
            if value:
                out.append(byte | 0x80)
            else:
                out.append(byte)
                return bytes(out)

    def number(field: int, value: int) -> bytes:
        return varint(field << 3) + varint(value)

    def text(field: int, value: bytes) -> bytes:
        return varint(field << 3 | 2) + varint(len(value)) + value

    def value_info(name: bytes, elem_type: int, dims: list[int | bytes]) -> bytes:
        shape = b"".join(text(1, text(2, d) if isinstance(d, bytes) else number(1, d)) for d in dims)
        return text(1, name) + text(2, text(1, number(1, elem_type) + text(2, shape)))

    uint8, int8, int32 = 2, 3, 6
    zero_point = number(2, uint8) + text(8, b"probe_zero_point") + text(9, bytes([PROBE_ZERO_POINT]))
    codes = (
        number(1, dimension)
        + number(1, rows)
        + number(2, int8)
        + text(8, b"codes")
        + text(13, text(1, b"location") + text(2, b"gallery-codes"))
        + number(14, 1)  # EXTERNAL: supplied by add_external_initializers, never copied here
    )
    node = text(1, b"probe") + text(1, b"codes") + text(1, b"probe_zero_point") + text(2, b"dots")
    node += text(4, b"MatMulInteger")
    graph = (
        text(1, node)
        + text(2, b"gallery_scan")
        + text(5, zero_point)
        + text(5, codes)
        + text(11, value_info(b"probe", uint8, [b"probes", dimension]))
        + text(12, value_info(b"dots", int32, [b"probes", rows]))
    )
    return number(1, 8) + text(7, graph) + text(8, text(1, b"") + number(2, 13))


# -- search ---------------------------------------------------------------------------
Fetch = Callable[[np.ndarray], np.ndarray]  # row numbers (sorted) -> their float32 vectors


class ScanWork(threading.local):
    """One probe's buffers over N rows, per thread, reused by every query: at a million rows,
    fresh 4-8 MB arrays per query cost more in page faults (~15 ms) than the arithmetic."""

    def __init__(self) -> None:
        self.rows = -1
        self.dots = self.approx = self.part = np.empty(0)

    def for_rows(self, rows: int) -> ScanWork:
        if rows != self.rows:
            self.dots = np.empty((2, rows), np.int32)
            self.approx = np.empty(rows, np.float32)
            self.part = np.empty(rows, np.float32)
            self.rows = rows
        return self


@dataclass
class QuantisedGallery:
    """What `search` needs: ids, int8 codes (dimension-major, for the scanner) with their scales
    and error bounds, which rows are alive, and where the exact vectors come from."""

    template_ids: np.ndarray  # int64 [N]
    user_ids: np.ndarray  # int64 [N]
    scales: np.ndarray  # float32 [N]
    error_norms: np.ndarray  # float32 [N]
    codes_by_dimension: np.ndarray  # int8 [D, N]
    max_row_norm: float
    vectors: np.ndarray | None = None  # float32 [N, D], when held in memory (tests, small galleries)
    alive: np.ndarray | None = None  # bool [N]; None: every row
    scanner: Int8Scanner | None = None
    work: ScanWork = field(default_factory=ScanWork, repr=False, compare=False)

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
            max_row_norm=max_norm(rows),
            vectors=rows,
        )

    def __len__(self) -> int:
        return int(self.template_ids.shape[0])

    @property
    def live(self) -> int:
        return len(self) if self.alive is None else int(self.alive.sum())

    def scan(self, probe_codes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if self.scanner is None:
            self.scanner = Int8Scanner(self.codes_by_dimension)
        return self.scanner.dots(probe_codes, out)

    @cached_property
    def largest_error(self) -> float:
        """The largest |e| over the rows (`RowBounds`), found once per gallery."""
        return largest_error(self.error_norms)

    def fetch(self, rows: np.ndarray) -> np.ndarray:
        assert self.vectors is not None, "a gallery without vectors needs a fetch function"
        return np.asarray(self.vectors[rows], dtype=np.float32)


@dataclass
class Delta:
    """Templates added since the quantised part was built: float32, scanned exactly."""

    template_ids: np.ndarray
    user_ids: np.ndarray
    vectors: np.ndarray  # float32 [m, D]

    @classmethod
    def empty(cls, dimension: int) -> Delta:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, dimension), np.float32))

    def __len__(self) -> int:
        return int(self.template_ids.shape[0])


@dataclass
class SearchStats:
    """How much work the last search did: rows scanned, and rows re-scored exactly."""

    scanned: int = 0
    delta: int = 0
    rescored: int = 0


def max_norm(rows: np.ndarray) -> float:
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64)) if len(rows) else np.zeros(1)
    return float(norms.max()) * (1 + 1e-6)


def search(gallery: QuantisedGallery, probe: np.ndarray, top_k: int = 5) -> list[Candidate]:
    """The top_k people (best template each) by exact similarity to `probe`."""
    return search_batch(gallery, np.asarray(probe, dtype=np.float32)[None, :], top_k)[0]


def search_batch(
    gallery: QuantisedGallery | None,
    probes: np.ndarray,
    top_k: int = 5,
    *,
    delta: Delta | None = None,
    fetch: Fetch | None = None,
    stats: SearchStats | None = None,
) -> list[list[Candidate]]:
    """One int8 scan for all probes (two code rows each), then each probe's exact re-score of
    the rows its bounds keep, together with the exact scores of the delta."""
    probes = np.atleast_2d(np.asarray(probes, dtype=np.float32))
    stats = stats if stats is not None else SearchStats()
    base = gallery if gallery is not None and len(gallery) and gallery.live else None
    has_delta = delta is not None and len(delta) > 0
    if top_k <= 0 or (base is None and not has_delta):
        return [[] for _ in probes]
    all_dots = None
    quantised: list[QuantisedProbe] = []
    work = None
    if base is not None:
        quantised = [quantise_probe(p) for p in probes]
        work = base.work.for_rows(len(base)) if len(probes) == 1 else None
        all_dots = base.scan(np.concatenate([q.codes for q in quantised]), None if work is None else work.dots)
        stats.scanned += len(base) * len(probes)
    delta_scores = None
    if has_delta:
        assert delta is not None
        delta_scores = delta.vectors.astype(np.float64) @ probes.astype(np.float64).T  # [m, k]
        stats.delta += len(delta) * len(probes)
    results = []
    for index, probe in enumerate(probes):
        extra: dict[int, tuple[float, int]] = {}  # user -> (exact score, template id), from the delta
        if delta_scores is not None and delta is not None:
            for user, template, score in zip(delta.user_ids, delta.template_ids, delta_scores[:, index], strict=True):
                key = (float(score), -int(template))
                if int(user) not in extra or key > (extra[int(user)][0], -extra[int(user)][1]):
                    extra[int(user)] = (float(score), int(template))
        found: list[tuple[float, int, int]] = [(s, t, u) for u, (s, t) in extra.items()]
        if base is not None and all_dots is not None:
            approx = approximate_scores(
                all_dots[2 * index : 2 * index + 2],
                quantised[index],
                base.scales,
                None if work is None else (work.approx, work.part),
            )
            bounds = RowBounds.of(quantised[index], base.error_norms, base.largest_error, base.max_row_norm)
            if base.alive is not None:
                approx[~base.alive] = -np.inf
            rows = candidate_rows(approx, bounds, base.user_ids, top_k, {u: s for u, (s, _) in extra.items()})
            vectors = fetch(rows) if fetch is not None else base.fetch(rows)
            exact = vectors.astype(np.float64) @ probe.astype(np.float64)
            stats.rescored += len(rows)
            # A row outside its own bound: the codes do not describe the row the store holds.
            if np.any(np.abs(exact - approx[rows]) > bounds.at(rows) + SCORE_SLACK):
                raise _Resync("a template's codes do not match the store")
            found += zip(exact.tolist(), base.template_ids[rows].tolist(), base.user_ids[rows].tolist(), strict=True)
        results.append(best_per_person(found, top_k))
    return results


def best_per_person(scored: Sequence[tuple[float, int, int]], top_k: int) -> list[Candidate]:
    """(score, template id, user id) -> the top_k people, best template each; ties to the older template."""
    seen: set[int] = set()
    found: list[Candidate] = []
    for score, template, user in sorted(scored, key=lambda item: (-item[0], item[1])):
        if user in seen:
            continue
        seen.add(user)
        found.append(Candidate(user_id=int(user), template_id=int(template), similarity=float(score)))
        if len(found) == top_k:
            break
    return found


def candidate_rows(
    approx: np.ndarray,
    bounds: RowBounds,
    user_ids: np.ndarray,
    top_k: int,
    known: dict[int, float] | None = None,
) -> np.ndarray:
    """Every row that could hold the best template of one of the top_k people, in row order.

    Let T be the top_k-th largest, over distinct people, of a person's best lower bound (`known`:
    exact scores of people outside these rows, the delta). Then top_k people score at least T, so
    a row whose upper bound is below T is either not its person's best or its person is not in
    the top_k: dropping it changes nothing. (Masked rows have approx -inf.)

    T is found without sorting the gallery: the rows whose lower bound reaches a cut near the top
    are taken, the cut lowered until they hold top_k people; T over them is exact, since every
    person whose best lower bound is at least the cut (so at least T) is among them."""
    known = known or {}
    total = approx.shape[0]
    # The cut is guessed from a sample of the lower bounds (so that at least 64 rows, and top_k + 1
    # sampled ones, reach it), checked on every row, and lowered while the rows that reach it hold
    # fewer than top_k people. `near` the cut are also all the rows whose upper bound reaches T
    # (T >= cut), so one pass over the gallery usually serves both.
    stride = max(1, total // 8192)
    sampled = np.arange(0, total, stride)
    lower = bounds.lower(approx, sampled)
    sample = np.sort(lower[np.isfinite(lower)])[::-1]
    position = max(max(64, 16 * top_k) // stride, top_k)
    while True:
        everything = position >= sample.shape[0]
        cut = -np.inf if everything else float(sample[position])
        near = bounds.near(approx, cut) if not everything else np.flatnonzero(np.isfinite(approx))
        lowers = bounds.lower(approx, near)
        reaching = lowers >= cut
        users = user_ids[near[reaching]]
        present = set(np.unique(users).tolist())
        people = len(present) + sum(1 for u, v in known.items() if v >= cut and u not in present)
        if people >= top_k or everything:
            break
        position *= 4
    threshold = _kth_person_lower_bound(lowers[reaching], users, top_k, {u: v for u, v in known.items() if v >= cut})
    if threshold is None:  # fewer than top_k people in the whole gallery: all of them
        return np.flatnonzero(np.isfinite(approx))
    return near[bounds.upper(approx, near) >= threshold]


def _kth_person_lower_bound(
    lower: np.ndarray, user_ids: np.ndarray, top_k: int, known: dict[int, float]
) -> float | None:
    if known:
        lower = np.concatenate([lower, np.fromiter(known.values(), np.float64, len(known))])
        user_ids = np.concatenate([user_ids, np.fromiter(known.keys(), np.int64, len(known))])
    if lower.shape[0] < top_k:
        return None
    order = np.lexsort((-lower, user_ids))  # per person, best lower bound first
    users = user_ids[order]
    first_of_person = np.ones(order.shape[0], dtype=bool)
    first_of_person[1:] = users[1:] != users[:-1]
    per_person = lower[order][first_of_person]
    if per_person.shape[0] < top_k:
        return None
    return float(np.partition(per_person, per_person.shape[0] - top_k)[per_person.shape[0] - top_k])


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
def store_stamp(conn: sqlite3.Connection, model: str) -> dict[str, Any]:
    """A durable stamp of the model's templates, the same in every process.

    With the `gallery_version` table (m005: per model, inserts, deletes and inserts that reused an
    id, counted by triggers) it is one look-up and says how much changed:
    {"inserts": i, "deletes": d, "reused": r}. Without it (a
    read-only store of an earlier facer), an aggregate over the model's templates — count, max/sum
    of ids, sum of user ids, the newest `created` — exact but a scan: {"scan": "..."}."""
    if _has_counter(conn):
        row = conn.execute(f"SELECT inserts, deletes, reused FROM {VERSION_TABLE} WHERE model = ?", (model,)).fetchone()
        inserts, deletes, reused = (int(v) for v in row) if row else (0, 0, 0)
        return {"inserts": inserts, "deletes": deletes, "reused": reused}
    count, newest, id_sum, user_sum, created = conn.execute(
        "SELECT count(*), coalesce(max(id), 0), total(id), total(user_id), coalesce(max(created), '')"
        " FROM templates WHERE model = ?",
        (model,),
    ).fetchone()
    return {"scan": f"{count}:{newest}:{id_sum:.0f}:{user_sum:.0f}:{created}"}


def _has_counter(conn: sqlite3.Connection) -> bool:
    return bool(
        conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)).fetchone()
    )


def connect_read_only(db_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        f"{db_path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None, timeout=30.0, check_same_thread=False
    )
    conn.execute("PRAGMA query_only = ON")
    return conn


@contextmanager
def read_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Every read inside sees one state of the store (joins a transaction already open)."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


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
        ]
        offset = HEADER_BYTES
        placed = {}
        for name, dtype, shape in shapes:
            placed[name] = (offset, np.dtype(dtype), shape)
            offset = _aligned(offset + np.dtype(dtype).itemsize * int(np.prod(shape)))
        return placed

    def total_bytes(self) -> int:
        offset, dtype, shape = self.sections()["codes_by_dimension"]
        return _aligned(offset + dtype.itemsize * int(np.prod(shape)))


def _aligned(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


def _views(buffer: Any, layout: Layout) -> dict[str, np.ndarray]:
    return {
        name: np.frombuffer(buffer, dtype=dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)
        for name, (offset, dtype, shape) in layout.sections().items()
    }


def _payload_crc(fd: int, start: int, end: int) -> int:
    """CRC-32 read with pread, not through the map: checking must not pull the file into our RSS."""
    crc, position = 0, start
    while position < end:
        block = os.pread(fd, min(16 << 20, end - position), position)
        if not block:
            break
        crc = zlib.crc32(block, crc)
        position += len(block)
    return crc


def write_gallery(conn: sqlite3.Connection, model: str, fd: int) -> dict[str, Any]:
    """The sidecar's content for `model` into the open file `fd`; returns its header.

    Rows and stamp come from one read transaction, so they describe the same snapshot."""
    with read_transaction(conn):
        stamp = store_stamp(conn, model)
        rows, dimension = conn.execute(
            "SELECT count(*), coalesce(max(dimension), 0) FROM templates WHERE model = ?", (model,)
        ).fetchone()
        layout = Layout(rows, dimension)
        os.ftruncate(fd, layout.total_bytes())
        max_row_norm, max_id = _fill(fd, conn, model, layout) if rows else (0.0, 0)
    header = {
        "format": FORMAT_VERSION,
        "model": model,
        "dimension": dimension,
        "rows": rows,
        "stamp": stamp,
        "max_id": max_id,
        "max_row_norm": max_row_norm,
        "crc32": _payload_crc(fd, HEADER_BYTES, layout.total_bytes()),
    }
    os.pwrite(fd, _encode_header(header), 0)
    return header


def build_sidecar(conn: sqlite3.Connection, model: str, target: Path) -> dict[str, Any]:
    """Write the sidecar for `model` atomically (temp file + rename, 0600); return its header."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        header = write_gallery(conn, model, fd)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temp_name)
        raise
    os.close(fd)
    os.replace(temp_name, target)
    return header


def _fill(fd: int, conn: sqlite3.Connection, model: str, layout: Layout) -> tuple[float, int]:
    with mmap.mmap(fd, layout.total_bytes()) as buffer:
        views = _views(buffer, layout)
        cursor = conn.execute(
            "SELECT id, user_id, dimension, vector FROM templates WHERE model = ? ORDER BY id", (model,)
        )
        start, largest, newest = 0, 0.0, 0
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
            largest = max(largest, max_norm(vectors))
            newest = int(batch[-1][0])
            start = stop
        del views
        buffer.flush()
    if start != layout.rows:
        raise GalleryError("the store changed while it was read")
    return largest, newest


def _decode(batch: Sequence[tuple[Any, ...]], dimension: int) -> np.ndarray:
    """float32 vectors of (id, user_id, dimension, vector) rows, each checked."""
    for row in batch:
        if row[2] != dimension or not isinstance(row[3], bytes) or len(row[3]) != 4 * dimension:
            raise GalleryError(f"template {row[0]} does not hold {dimension} float32 values: the store is corrupt")
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


def sidecar_problem(fd: int, model: str) -> str | None:
    """Why the sidecar cannot be used for `model` at all, or None when it can (it may be stale)."""
    header = read_header(fd)
    if header is None:
        return "no valid header"
    if header.get("model") != model:
        return "made for another model"
    try:
        layout = Layout(int(header["rows"]), int(header["dimension"]))
        size = os.fstat(fd).st_size
        if size != layout.total_bytes():
            return f"truncated or padded: {size} bytes instead of {layout.total_bytes()}"
        if _payload_crc(fd, HEADER_BYTES, size) != header["crc32"]:
            return "checksum mismatch: corrupt"
        if not isinstance(header["stamp"], dict):
            return "malformed header"
        int(header["max_id"]), float(header["max_row_norm"])
    except (KeyError, TypeError, ValueError):
        return "malformed header"
    return None


def map_gallery(fd: int, header: dict[str, Any], threads: int | None) -> QuantisedGallery:
    """The gallery of a checked sidecar: the scanner packs its own copy of the codes, the small
    per-row arrays are copied, and the map is closed — the process keeps nothing of the file, so
    `erase_sidecars` can wipe it under a running index."""
    layout = Layout(int(header["rows"]), int(header["dimension"]))
    with mmap.mmap(fd, layout.total_bytes(), access=mmap.ACCESS_READ) as buffer:
        views = _views(buffer, layout)
        gallery = QuantisedGallery(
            template_ids=views["template_ids"].copy(),
            user_ids=views["user_ids"].copy(),
            scales=views["scales"].copy(),
            error_norms=views["error_norms"].copy(),
            codes_by_dimension=np.empty((layout.dimension, 0), np.int8),  # held by the scanner only
            max_row_norm=float(header["max_row_norm"]),
        )
        if layout.rows:
            gallery.scanner = Int8Scanner(views["codes_by_dimension"], threads)
        del views
    return gallery


def erase_sidecars(db_path: Path) -> int:
    """Overwrite with zeros, then delete, every gallery sidecar (and leftover temporary file) of the
    store: they hold int8 codes of templates, so a removed person's must not outlive the removal.
    Running indexes keep nothing of the files (see `map_gallery`); the next one rebuilds from the
    store. Returns how many files were erased."""
    db_path = Path(db_path)
    erased = 0
    for path in [
        *db_path.parent.glob(f"{glob_escape(db_path.name)}.gallery-*.bin"),
        *db_path.parent.glob(f".{glob_escape(db_path.name)}.gallery-*.tmp"),
    ]:
        try:
            with open(path, "r+b") as f:
                size = os.fstat(f.fileno()).st_size
                zeros = bytes(min(size, 16 << 20))
                written = 0
                while written < size:
                    written += f.write(zeros[: size - written])
                f.flush()
                os.fsync(f.fileno())
            path.unlink()
            erased += 1
        except FileNotFoundError:
            continue
    return erased


def glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


# -- the index --------------------------------------------------------------------
class GalleryIndex:
    """The current model's templates, searchable, kept in step with the store. Thread-safe.

    >>> index = GalleryIndex.open("facer.db", engine.fingerprint)
    >>> people = index.search(probe, top_k=5)          # catches up with the store first (cheap)
    >>> decision, reason = decide(people, threshold, margin)
    """

    def __init__(self, db_path: Path, model: str, threads: int | None = None):
        self.db_path = Path(db_path).expanduser()
        self.model = model
        self.threads = threads
        self.sidecar = sidecar_path(self.db_path, model)
        self.conn = connect_read_only(self.db_path)
        self.lock = threading.RLock()
        self.stamp: dict[str, Any] = {}
        self.rebuilds = 0  # how many times this process built the quantised part from the store
        self.catch_ups = 0  # how many times it applied the store's changes incrementally
        self.gallery: QuantisedGallery | None = None
        self.delta = Delta.empty(0)
        self.dimension = 0
        self.max_id = 0
        self.persistent = True  # False: the sidecar could not be written beside the store
        self.stats = SearchStats()

    @classmethod
    def open(cls, db_path: Path | str, model: str, threads: int | None = None) -> GalleryIndex:
        index = cls(Path(db_path), model, threads)
        try:
            with index.lock, read_transaction(index.conn):
                index._sync(store_stamp(index.conn, model))
        except BaseException:
            index.conn.close()
            raise
        return index

    def close(self) -> None:
        with self.lock:
            self._release()
            self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        """Live templates: the quantised part less the removed rows, plus the delta."""
        return (0 if self.gallery is None else self.gallery.live) + len(self.delta)

    # -- keeping up with the store ----------------------------------------------
    def refresh(self) -> bool:
        """Catch up with the store; True when the templates had changed."""
        with self.lock, read_transaction(self.conn):
            return self._refresh()

    def _refresh(self) -> bool:
        stamp = store_stamp(self.conn, self.model)
        if stamp == self.stamp:
            return False
        self._sync(stamp)
        return True

    def _sync(self, stamp: dict[str, Any]) -> None:
        """Bring the index to `stamp` (inside a read transaction): the sidecar when it is valid,
        then the changes since it was written; a rebuild when that cannot be done exactly."""
        cold = self.gallery is None
        if cold:
            self._map_sidecar()
        if self.gallery is not None and self._catch_up(stamp):
            if not cold or len(self.delta) <= max(REWRITE_MIN, REWRITE_FRACTION * len(self.gallery)):
                return
        self._rebuild()

    def _map_sidecar(self) -> bool:
        try:
            fd = os.open(self.sidecar, os.O_RDONLY)
        except OSError:
            return False
        try:
            if sidecar_problem(fd, self.model) is not None:
                return False
            header = read_header(fd)
            assert header is not None
            self._install(fd, header)
        finally:
            os.close(fd)  # the map keeps the inode; a later rename does not disturb it
        return True

    def _install(self, fd: int, header: dict[str, Any]) -> None:
        gallery = map_gallery(fd, header, self.threads)
        self._release()
        self.gallery = gallery
        self.dimension = int(header["dimension"])
        self.delta = Delta.empty(self.dimension)
        self.stamp = dict(header["stamp"])
        self.max_id = int(header["max_id"])

    def _rebuild(self) -> None:
        """Write the sidecar from the store (in the current read transaction) and map it. Where no
        file can be written beside the store, the same content goes to an unnamed temporary file."""
        self._release()
        self.rebuilds += 1
        try:
            build_sidecar(self.conn, self.model, self.sidecar)
            self.persistent = True
            if self._map_sidecar():
                return
        except OSError:
            pass
        self.persistent = False
        with tempfile.TemporaryFile() as scratch:
            header = write_gallery(self.conn, self.model, scratch.fileno())
            self._install(scratch.fileno(), header)

    def _catch_up(self, stamp: dict[str, Any]) -> bool:
        """Apply the store's inserts and deletes since `self.stamp`; False when that cannot be done
        exactly (no counter, an id reused, a row updated) or is too much: the caller rebuilds.

        With no reused id, every template inserted since has an id above `max_id`: those still
        there are read; the others were inserted and deleted in between. So the deletes counted
        must be the known rows now missing plus those: anything else means a rebuild."""
        if stamp == self.stamp:
            return True
        if "inserts" not in stamp or "inserts" not in self.stamp or self.gallery is None:
            return False
        inserted = stamp["inserts"] - self.stamp["inserts"]
        deleted = stamp["deletes"] - self.stamp["deletes"]
        if inserted < 0 or deleted < 0 or stamp.get("reused") != self.stamp.get("reused"):
            return False
        gallery = self.gallery
        limit = max(DELTA_MIN, int(DELTA_FRACTION * len(gallery)))
        if len(self.delta) + inserted > limit:
            return False
        new_rows = self.conn.execute(
            "SELECT id, user_id, dimension, vector FROM templates WHERE model = ? AND id > ? ORDER BY id",
            (self.model, self.max_id),
        ).fetchmany(inserted + 1)
        if len(new_rows) > inserted:
            return False
        transient = inserted - len(new_rows)  # inserted and deleted again since
        alive, delta = gallery.alive, self.delta
        if deleted > transient:
            # The ids still there, as one text joined inside SQLite and parsed by numpy: iterating a
            # million rows in Python would take seconds.
            joined = self.conn.execute(
                "SELECT group_concat(id) FROM templates WHERE model = ? AND id <= ?", (self.model, self.max_id)
            ).fetchone()[0]
            present = np.fromstring(joined, dtype=np.int64, sep=",") if joined else np.empty(0, np.int64)
            alive_base = np.isin(gallery.template_ids, present, assume_unique=True)
            was_alive = gallery.alive if gallery.alive is not None else np.ones(len(gallery), bool)
            gone_base = int((was_alive & ~alive_base).sum())
            alive_base &= was_alive
            keep = np.isin(delta.template_ids, present, assume_unique=True)
            if gone_base + int((~keep).sum()) + transient != deleted:
                return False
            if len(gallery) - int(alive_base.sum()) > DEAD_FRACTION * len(gallery):
                return False
            alive = None if alive_base.all() else alive_base
            delta = Delta(delta.template_ids[keep], delta.user_ids[keep], delta.vectors[keep])
        elif deleted != transient:
            return False
        if new_rows:
            dimension = self.dimension or int(new_rows[0][2])
            vectors = _decode(new_rows, dimension)
            self.dimension = dimension
            delta = Delta(
                np.concatenate([delta.template_ids, [row[0] for row in new_rows]]).astype(np.int64),
                np.concatenate([delta.user_ids, [row[1] for row in new_rows]]).astype(np.int64),
                np.concatenate([delta.vectors.reshape(-1, dimension), vectors]),
            )
            self.max_id = int(new_rows[-1][0])
        gallery.alive, self.delta = alive, delta
        self.stamp = dict(stamp)
        self.catch_ups += 1
        return True

    def _release(self) -> None:
        self.gallery = None

    # -- searching ---------------------------------------------------------------
    def search(self, probe: np.ndarray, top_k: int = 5, refresh: bool = True) -> list[Candidate]:
        return self.search_batch(np.asarray(probe, dtype=np.float32)[None, :], top_k, refresh)[0]

    def search_batch(self, probes: np.ndarray, top_k: int = 5, refresh: bool = True) -> list[list[Candidate]]:
        """The top_k people for each probe, exactly, named as the store names them now."""
        with self.lock, read_transaction(self.conn):
            if refresh:
                self._refresh()
            self.stats = SearchStats()
            try:
                results = search_batch(
                    self.gallery, probes, top_k, delta=self.delta, fetch=self._fetch, stats=self.stats
                )
            except _Resync:
                self._rebuild()
                results = search_batch(
                    self.gallery, probes, top_k, delta=self.delta, fetch=self._fetch, stats=self.stats
                )
            names = self._names({c.user_id for found in results for c in found})
        return [[_named(c, names) for c in found] for found in results]

    def _fetch(self, rows: np.ndarray) -> np.ndarray:
        """The float32 vectors of these rows of the quantised part, from the store itself."""
        assert self.gallery is not None
        ids = self.gallery.template_ids[rows].tolist()
        found: dict[int, bytes] = {}
        for start in range(0, len(ids), SQL_VARIABLES):
            part = ids[start : start + SQL_VARIABLES]
            marks = ",".join("?" * len(part))
            found.update(
                self.conn.execute(
                    f"SELECT id, vector FROM templates WHERE model = ? AND id IN ({marks})", (self.model, *part)
                ).fetchall()
            )
        if len(found) != len(ids) or any(len(found[i]) != 4 * self.dimension for i in ids):
            raise _Resync("a template of the index is missing from the store")
        return np.frombuffer(b"".join(found[i] for i in ids), dtype="<f4").reshape(len(ids), self.dimension)

    def _names(self, user_ids: set[int]) -> dict[int, str]:
        """Names are read at answer time, so a rename never needs a rebuild."""
        if not user_ids:
            return {}
        marks = ",".join("?" * len(user_ids))
        return dict(self.conn.execute(f"SELECT id, name FROM users WHERE id IN ({marks})", sorted(user_ids)))


def _named(candidate: Candidate, names: dict[int, str]) -> Candidate:
    return Candidate(candidate.user_id, candidate.template_id, candidate.similarity, names.get(candidate.user_id))
