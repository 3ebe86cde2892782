"""Accepted frames in, one template out.

1. Outliers: a frame whose embedding has a cosine below
   `outlier_cosine_threshold` to the quality-weighted mean of the *other* kept
   frames is dropped, the worst first, and the mean is taken again. Leaving
   the frame out of its own mean keeps one wrong face from pulling the mean
   towards itself.
2. Fewer than `min_valid_frames` frames left: `TooFewFramesError`, saying how
   many frames were seen, accepted and why the others were rejected.
3. The quality-weighted mean, L2-renormalised, so cosine similarity is a dot product.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facer_cli.engine.reports import FrameReport
from facer_cli.errors import TooFewFramesError, VectorError


@dataclass
class Template:
    """A template and how it was made (indexes point into the frames given)."""

    vector: np.ndarray
    frames_seen: int
    accepted: list[int]
    used: list[int]
    outliers: list[int] = field(default_factory=list)
    outlier_cosines: dict[int, float] = field(default_factory=dict)
    mean_quality: float = 0.0

    @property
    def dimension(self) -> int:
        return int(self.vector.shape[0])

    def to_dict(self, with_vector: bool = False) -> dict:
        data: dict[str, Any] = {
            "dimension": self.dimension,
            "frames_seen": self.frames_seen,
            "frames_accepted": len(self.accepted),
            "frames_used": len(self.used),
            "outliers": len(self.outliers),
            "mean_quality": round(self.mean_quality, 4),
        }
        if with_vector:
            data["vector"] = [float(v) for v in self.vector]
        return data


def normalize(vector: np.ndarray) -> np.ndarray:
    """float32 unit vector (norm 1 within 1e-6)."""
    vector = np.asarray(vector, np.float64)
    unit = (vector / np.linalg.norm(vector)).astype(np.float32)
    return unit / np.float32(np.linalg.norm(unit))


def weighted_mean(embeddings: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return normalize((embeddings * weights[:, None]).sum(axis=0))


# Decisions closer than this (two cosines, or a cosine and the threshold) are settled by re-computing the cosines
# the original way; the fast ones are trusted only where their rounding-error bound is below a quarter of it.
TIE_TOLERANCE = 1e-9
# Safety factor on the textbook bound n·ε·Σ|x·y| of a sum's rounding error.
ERROR_BOUND_FACTOR = 4.0


def _exact_cosine(embeddings: np.ndarray, weights: np.ndarray, alive: np.ndarray, i: int) -> float:
    """Row i's cosine to the weighted sum of the other kept rows, computed exactly as the original loop did."""
    others = np.flatnonzero(alive)
    others = others[others != i]
    total = (embeddings[others] * weights[others, None]).sum(axis=0)
    norm = np.linalg.norm(total)
    return float(embeddings[i] @ total / norm) if norm > 0 else -1.0


def _fast_cosines(
    vectors: np.ndarray, weights: np.ndarray, squared_norms: np.ndarray, alive: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every kept row's cosine to S − w_i·e_i (S: the weighted sum of the kept rows), and which are unsure.

    e_i·(S − w_i e_i) = e_i·S − w_i‖e_i‖² and ‖S − w_i e_i‖² = ‖S‖² − 2 w_i e_i·S + w_i²‖e_i‖²: two matrix-vector
    products over all rows (dropped ones weigh 0, so nothing is copied) give everything in O(n·d). Unsure: the
    rounding-error bound exceeds TIE_TOLERANCE / 4 (a leave-one-out sum much shorter than its terms). Dropped
    rows get +inf.
    """
    live_weights = np.where(alive, weights, 0.0)
    total = live_weights @ vectors
    dots = vectors @ total
    total_norm = float(np.sqrt(total @ total))
    left_squared = total_norm**2 - 2.0 * weights * dots + weights**2 * squared_norms
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.sqrt(np.maximum(left_squared, 0.0))
        cosines = (dots - weights * squared_norms) / left
        magnitude = float(np.abs(live_weights) @ np.sqrt(squared_norms))  # Σ|w_j|‖e_j‖ bounds every partial sum
        bound = ERROR_BOUND_FACTOR * (len(vectors) + vectors.shape[1]) * np.finfo(np.float64).eps
        error = bound * np.sqrt(squared_norms) * (magnitude + total_norm) * (1.0 + total_norm / left) / left
    cosines[~alive] = np.inf
    return cosines, alive & ~(error <= TIE_TOLERANCE / 4)


def _worst_below(
    embeddings: np.ndarray,
    weights: np.ndarray,
    alive: np.ndarray,
    cosines: np.ndarray,
    exact: np.ndarray,
    threshold: float,
) -> tuple[int, float] | None:
    """The row the original loop drops next, with its cosine, or None when that loop stops.

    `cosines` are exact where `exact` is set, else within TIE_TOLERANCE / 4. The original loop takes the first
    kept row with the smallest cosine and drops it unless that cosine is ≥ threshold: only rows within
    TIE_TOLERANCE of the smallest can be it, so when there are several, or the smallest is that close to the
    threshold, they are re-computed exactly.
    """
    lowest = np.min(cosines)
    if lowest > threshold + TIE_TOLERANCE:  # every exact cosine is then ≥ threshold
        return None
    near = np.flatnonzero(alive & ~(cosines > lowest + TIE_TOLERANCE))  # NaN rows count as near, as argmin's
    if len(near) > 1 or abs(lowest - threshold) <= TIE_TOLERANCE:
        values = [float(cosines[r]) if exact[r] else _exact_cosine(embeddings, weights, alive, int(r)) for r in near]
    else:
        values = [float(cosines[near[0]])]
    best = int(np.argmin(values))
    if values[best] >= threshold:
        return None
    return int(near[best]), values[best]


def find_outliers(embeddings: np.ndarray, weights: np.ndarray, threshold: float) -> dict[int, float]:
    """Rows dropped as outliers, with their cosine to the mean of the rows kept at that point.

    Each round drops the row whose cosine to the weighted sum of the *other* kept rows is smallest, while it is
    below `threshold`. O(n·d) per round (see `_fast_cosines`) instead of the O(n²·d) of summing the others for
    every row; the rows dropped and their order are exactly those of that direct computation, and the cosines
    equal to ~1e-12 (exactly, where a decision needed them exact). Non-finite values take the direct way.
    """
    vectors = np.asarray(embeddings, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    squared_norms = np.einsum("ij,ij->i", vectors, vectors)
    finite = bool(np.isfinite(vectors).all() and np.isfinite(w).all())
    alive = np.ones(len(vectors), dtype=bool)
    dropped: dict[int, float] = {}
    while alive.sum() > 1:
        if finite:
            cosines, unsure = _fast_cosines(vectors, w, squared_norms, alive)
        else:
            cosines, unsure = np.where(alive, np.nan, np.inf), alive.copy()
        for unsure_row in np.flatnonzero(unsure):
            cosines[unsure_row] = _exact_cosine(embeddings, weights, alive, int(unsure_row))
        worst = _worst_below(embeddings, weights, alive, cosines, unsure, threshold)
        if worst is None:
            break
        row, cosine = worst
        alive[row] = False
        dropped[int(row)] = float(cosine)
    return dropped


def template_from_embeddings(
    embeddings: np.ndarray | Sequence[np.ndarray],
    weights: np.ndarray | Sequence[float] | None = None,
    outlier_threshold: float | None = None,
) -> tuple[np.ndarray, dict[int, float]]:
    """The weighted mean of unit-normalised embeddings, and the outliers left out of it."""
    matrix = np.asarray(embeddings, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise VectorError(f"embeddings must be a non-empty N×D array, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise VectorError("embeddings contain NaN or infinite values")
    norms = np.linalg.norm(matrix, axis=1)
    if (norms == 0).any():
        raise VectorError("an embedding has zero norm")
    matrix = matrix / norms[:, None]
    w = np.ones(len(matrix)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(matrix),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise VectorError("weights must be one finite, non-negative number per embedding, not all zero")
    outliers = {} if outlier_threshold is None else find_outliers(matrix, w, outlier_threshold)
    keep = [i for i in range(len(matrix)) if i not in outliers]
    return weighted_mean(matrix[keep], w[keep]), outliers


def build_template(
    frames: Sequence[FrameReport],
    min_valid_frames: int,
    outlier_cosine_threshold: float,
) -> Template:
    """The template of the accepted frames, or `TooFewFramesError` saying why not."""
    accepted = [i for i, frame in enumerate(frames) if frame.accepted]
    outliers: dict[int, float] = {}
    if len(accepted) >= 2:
        embeddings = np.stack([embedding_of(frames[i]) for i in accepted])
        weights = np.array([frames[i].quality for i in accepted])
        found = find_outliers(embeddings, weights, outlier_cosine_threshold)
        outliers = {accepted[row]: cosine for row, cosine in found.items()}
    used = [i for i in accepted if i not in outliers]
    if len(used) < min_valid_frames or not used:
        raise TooFewFramesError(explain_shortfall(frames, accepted, outliers, min_valid_frames))
    embeddings = np.stack([embedding_of(frames[i]) for i in used])
    weights = np.array([frames[i].quality for i in used])
    return Template(
        vector=weighted_mean(embeddings, weights),
        frames_seen=len(frames),
        accepted=accepted,
        used=used,
        outliers=sorted(outliers),
        outlier_cosines=outliers,
        mean_quality=float(weights.mean()),
    )


def embedding_of(frame: FrameReport) -> np.ndarray:
    """The embedding of an accepted frame (accepted frames always have one)."""
    if frame.embedding is None:
        raise ValueError(f"{frame.source}: accepted without an embedding")
    return frame.embedding


def explain_shortfall(
    frames: Sequence[FrameReport], accepted: list[int], outliers: dict[int, float], needed: int
) -> str:
    used = len(accepted) - len(outliers)
    parts = [
        f"too few usable frames: {used} of {len(frames)} (need {max(needed, 1)}); "
        f"{len(frames)} seen, {len(accepted)} accepted"
    ]
    rejected = [
        f"{Path(frame.source).name} ({frame.reason.removeprefix(frame.source + ': ')})"
        for frame in frames
        if not frame.accepted
    ]
    if rejected:
        shown = ", ".join(rejected[:5]) + (f" and {len(rejected) - 5} more" if len(rejected) > 5 else "")
        parts.append(f"rejected: {shown}")
    if outliers:
        names = ", ".join(Path(frames[i].source).name for i in sorted(outliers))
        parts.append(f"dropped as outliers (a different face from the others?): {names}")
    return "; ".join(parts)
