"""Operating points and curves from genuine and impostor scores: pure numpy, no engine.

Scores are cosine similarities. A score of NaN means "no score": one image of
the pair had no usable face (or, in the enroll protocol, the template could
not be built).

Definitions (the same as `facer verify` and `facer_cli.compare.band_for`):

- **Bands.** A pair is a *match* when its score ≥ `cosine_threshold_high`, a
  *no match* when its score < `cosine_threshold_low`, *uncertain* in between.
  A pair without a score is a *no match* (a kiosk that cannot find a face lets
  nobody in).
- **FAR** (false accept rate) = impostor pairs in the match band / all
  impostor pairs. Depends on the high threshold only.
- **FRR** (false reject rate) = genuine pairs in the no-match band (including
  genuine pairs without a score) / all genuine pairs. Depends on the low
  threshold only.
- Pairs in the uncertain band are neither: they are counted and reported on
  their own (`uncertain` rates), and the site decides what happens to them
  (a second look, another factor).
- **Accuracy** = (genuine pairs in the match band + impostor pairs in the
  no-match band *with a score*) / all pairs. Uncertain pairs are not correct
  answers, and a pair without a score is never a correct answer, whatever its
  kind: the evaluation could not compare it.
  The FAR/FRR convention for failed pairs is ISO/IEC 19795-1's generalised
  rates: a failure to acquire is a rejection (a false reject for a genuine
  pair; for an impostor pair it is not a false accept, but it stays in the
  denominator).
- Single-threshold curves (ROC, EER, best accuracy): accept iff score ≥ t;
  FAR(t) = #(impostor ≥ t) / N_impostor, FRR(t) = #(genuine < t or no score) / N_genuine.
- **EER**: the ROC's vertices are (FAR(t), FRR(t)) at t = +∞ and at every
  distinct score; joined by straight lines, FAR − FRR rises strictly from
  −1, and the EER is where it crosses 0 (linear interpolation between the two
  vertices around the crossing; the threshold is interpolated the same way).
  Undefined (None) when failed pairs keep FRR above FAR everywhere.
- **TAR @ FAR f**: 1 − FRR(t) at t = the lowest threshold (rounded up to 4
  decimals, as the recommended thresholds are) whose FAR ≤ f. Reported
  only with at least ⌈1/f⌉ impostor pairs: with fewer, one false accept
  already exceeds f and the figure would not be measured, only guessed.
- **Best-accuracy threshold**: the single threshold with the highest accuracy;
  the middle of the best gap between consecutive distinct scores (ties: the
  widest gap, then the higher threshold).

Every FAR and FRR comes with its 95 % interval (`facer_cli.evaluation.intervals`);
the recommended thresholds are `facer_cli.evaluation.recommend`'s.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from facer_cli.evaluation.intervals import (
    error_budget,
    fraction,
    interval,
    interval_list,
    needed_pairs,
    needs_note,
    rounded,
)

DEFAULT_FAR_POINTS = (1e-2, 1e-3)
DECIMALS = 4  # recommended thresholds, ready to paste into facer.toml


def as_scores(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """float64 1-D array; NaN = no score."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if np.isinf(array).any():
        raise ValueError("scores must be finite (NaN marks a pair without a score)")
    return array


def round_up_above(value: float, decimals: int = DECIMALS) -> float:
    """The smallest number of `decimals` decimals strictly above `value` (at most 1)."""
    scale = 10**decimals
    result = math.floor(value * scale) / scale
    while result <= value:
        result = round(result + 1 / scale, decimals)
    return min(result, 1.0)


def round_down_to(value: float, decimals: int = DECIMALS) -> float:
    """The largest number of `decimals` decimals at or below `value` (at least −1)."""
    scale = 10**decimals
    result = math.ceil(value * scale) / scale
    while result > value:
        result = round(result - 1 / scale, decimals)
    return max(result, -1.0)


# -- counts at the configured thresholds ----------------------------------------------


@dataclass
class BandCounts:
    """Pairs of one kind by band; `no_score` pairs are also in `no_match`."""

    total: int
    match: int
    uncertain: int
    no_match: int
    no_score: int

    @classmethod
    def of(cls, scores: np.ndarray, high: float, low: float) -> "BandCounts":
        valid = scores[~np.isnan(scores)]
        match = int((valid >= high).sum())
        no_match_scored = int((valid < low).sum())
        no_score = len(scores) - len(valid)
        return cls(
            total=len(scores),
            match=match,
            uncertain=len(valid) - match - no_match_scored,
            no_match=no_match_scored + no_score,
            no_score=no_score,
        )

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class OperatingPoint:
    """What the configured three-band thresholds do on these pairs."""

    threshold_high: float
    threshold_low: float
    genuine: BandCounts
    impostor: BandCounts

    @property
    def far(self) -> float | None:
        return fraction(self.impostor.match, self.impostor.total)

    @property
    def frr(self) -> float | None:
        return fraction(self.genuine.no_match, self.genuine.total)

    @property
    def far_ci(self) -> tuple[float, float] | None:
        """95 % Clopper–Pearson interval of the FAR."""
        return interval(self.impostor.match, self.impostor.total)

    @property
    def frr_ci(self) -> tuple[float, float] | None:
        """95 % Clopper–Pearson interval of the FRR."""
        return interval(self.genuine.no_match, self.genuine.total)

    @property
    def genuine_uncertain(self) -> float | None:
        return fraction(self.genuine.uncertain, self.genuine.total)

    @property
    def impostor_uncertain(self) -> float | None:
        return fraction(self.impostor.uncertain, self.impostor.total)

    @property
    def accuracy(self) -> float | None:
        correct = self.genuine.match + (self.impostor.no_match - self.impostor.no_score)
        return fraction(correct, self.genuine.total + self.impostor.total)

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold_high": self.threshold_high,
            "threshold_low": self.threshold_low,
            "accuracy": rounded(self.accuracy),
            "far": rounded(self.far),
            "far_ci95": interval_list(self.far_ci),
            "frr": rounded(self.frr),
            "frr_ci95": interval_list(self.frr_ci),
            "genuine_uncertain": rounded(self.genuine_uncertain),
            "impostor_uncertain": rounded(self.impostor_uncertain),
            "genuine": self.genuine.to_dict(),
            "impostor": self.impostor.to_dict(),
        }


def operating_point(genuine: np.ndarray, impostor: np.ndarray, high: float, low: float) -> OperatingPoint:
    return OperatingPoint(high, low, BandCounts.of(genuine, high, low), BandCounts.of(impostor, high, low))


# -- single-threshold curves --------------------------------------------------------------


@dataclass
class Curve:
    """FAR and FRR at t = +∞ and at every distinct score, highest threshold first."""

    thresholds: np.ndarray
    far: np.ndarray
    frr: np.ndarray

    @property
    def tar(self) -> np.ndarray:
        return 1.0 - self.frr


def roc_curve(genuine: np.ndarray, impostor: np.ndarray) -> Curve:
    """Vertices of the ROC for "accept iff score ≥ t" (needs pairs of both kinds)."""
    g = np.sort(genuine[~np.isnan(genuine)])
    i = np.sort(impostor[~np.isnan(impostor)])
    scores = np.unique(np.concatenate([g, i]))[::-1]
    thresholds = np.concatenate([[np.inf], scores])
    accepted_g = len(g) - np.searchsorted(g, thresholds, side="left")
    accepted_i = len(i) - np.searchsorted(i, thresholds, side="left")
    far = accepted_i / len(impostor)
    frr = 1.0 - accepted_g / len(genuine)
    return Curve(thresholds, far, frr)


@dataclass
class EqualErrorRate:
    rate: float | None
    threshold: float | None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"rate": rounded(self.rate), "threshold": rounded(self.threshold), "note": self.note}


def equal_error_rate(curve: Curve) -> EqualErrorRate:
    diff = curve.far - curve.frr  # strictly rising from −1
    above = np.nonzero(diff >= 0)[0]
    if len(above) == 0:
        return EqualErrorRate(None, None, "FRR stays above FAR at every threshold (too many pairs without a score)")
    k = int(above[0])  # ≥ 1: the vertex at t = +∞ has FAR − FRR = −1
    if diff[k] == 0:
        return EqualErrorRate(float(curve.far[k]), float(curve.thresholds[k]))
    alpha = -diff[k - 1] / (diff[k] - diff[k - 1])
    rate = curve.far[k - 1] + alpha * (curve.far[k] - curve.far[k - 1])
    if k == 1:  # between +∞ and the highest score: no threshold to interpolate
        return EqualErrorRate(float(rate), float(curve.thresholds[1]))
    threshold = curve.thresholds[k - 1] + alpha * (curve.thresholds[k] - curve.thresholds[k - 1])
    return EqualErrorRate(float(rate), float(threshold))


@dataclass
class BestAccuracy:
    threshold: float
    accuracy: float
    far: float
    frr: float

    def to_dict(self) -> dict[str, Any]:
        return {k: rounded(v) for k, v in asdict(self).items()}


def best_accuracy(genuine: np.ndarray, impostor: np.ndarray) -> BestAccuracy | None:
    """The single threshold (accept iff score ≥ t) that gets the most pairs right."""
    total = len(genuine) + len(impostor)
    scores = np.unique(np.concatenate([genuine, impostor]))
    scores = scores[~np.isnan(scores)]
    if total == 0 or len(scores) == 0:
        return None
    # Candidates: the lowest score (accept every scored pair), the middle of each gap, above the highest.
    mids = (scores[:-1] + scores[1:]) / 2
    candidates = np.concatenate([[scores[0]], mids, [np.nextafter(scores[-1], np.inf)]])
    gaps = np.concatenate([[0.0], np.diff(scores), [0.0]])
    g = np.sort(genuine[~np.isnan(genuine)])
    i = np.sort(impostor[~np.isnan(impostor)])
    genuine_ok = len(g) - np.searchsorted(g, candidates, side="left")
    impostor_ok = np.searchsorted(i, candidates, side="left")
    correct = genuine_ok + impostor_ok
    # Most correct, then the widest gap, then the highest threshold.
    order = np.lexsort((candidates, gaps, correct))
    best = int(order[-1])
    return BestAccuracy(
        threshold=float(candidates[best]),
        accuracy=float(correct[best] / total),
        far=float((len(i) - impostor_ok[best]) / len(impostor)) if len(impostor) else 0.0,
        frr=float(1 - genuine_ok[best] / len(genuine)) if len(genuine) else 0.0,
    )


@dataclass
class TarAtFar:
    far: float
    tar: float | None
    threshold: float | None
    impostor_pairs: int
    needed: int | float

    @property
    def supported(self) -> bool:
        return self.tar is not None

    @property
    def note(self) -> str:
        if self.supported:
            return ""
        return needs_note(self.far, "impostor", self.impostor_pairs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "far": self.far,
            "tar": rounded(self.tar),
            "threshold": rounded(self.threshold),
            "supported": self.supported,
            "impostor_pairs": self.impostor_pairs,
            "needed_impostor_pairs": self.needed if self.needed != math.inf else None,
            "note": self.note,
        }


def threshold_for_far(impostor: np.ndarray, target: float) -> float:
    """The unrounded boundary: accept iff score > this keeps FAR ≤ target (−∞ when anything goes)."""
    valid = np.sort(impostor[~np.isnan(impostor)])[::-1]
    allowed = error_budget(target, len(impostor))
    if allowed >= len(valid):
        return -np.inf
    return float(valid[allowed])


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> TarAtFar:
    needed = needed_pairs(far)
    if len(impostor) < needed or len(genuine) == 0:
        return TarAtFar(far, None, None, len(impostor), needed)
    boundary = threshold_for_far(impostor, far)
    threshold = -1.0 if boundary == -np.inf else round_up_above(boundary)
    tar = float(np.sum(genuine[~np.isnan(genuine)] >= threshold) / len(genuine))
    return TarAtFar(far, tar, threshold, len(impostor), needed)
