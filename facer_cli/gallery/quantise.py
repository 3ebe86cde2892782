"""Quantisation and its error bound: int8 codes of the gallery's rows, two 7-bit code rows of a
probe, the approximate scores their integer dots give, and a rigorous bound per row on how far
an approximate score can be from the exact one (`RowBounds`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Codes of the gallery use the full int8 range; the probe's only 7 bits, because AVX2's
# u8 x s8 multiply-add saturates at 16 bits: 2 * 127 * 127 = 32258 still fits, 2 * 255 * 127 does not.
GALLERY_LEVELS = 127
PROBE_LEVELS = 63
PROBE_ZERO_POINT = 64
# Covers the float32 rounding of the approximate scores and bounds (below 1e-6 for unit vectors),
# so a bound stays a bound; re-scoring is float64.
SCORE_SLACK = 1e-5


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


def max_norm(rows: np.ndarray) -> float:
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64)) if len(rows) else np.zeros(1)
    return float(norms.max()) * (1 + 1e-6)
