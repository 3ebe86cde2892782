"""Verification figures from genuine and impostor scores: pure numpy, no engine.

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
  decimals, as recommended below) whose FAR ≤ f. Reported
  only with at least ⌈1/f⌉ impostor pairs: with fewer, one false accept
  already exceeds f and the figure would not be measured, only guessed.
- **Best-accuracy threshold**: the single threshold with the highest accuracy;
  the middle of the best gap between consecutive distinct scores (ties: the
  widest gap, then the higher threshold).
- **Recommended `cosine_threshold_high`** for a target FAR: the lowest
  threshold (rounded up to 4 decimals) with at most ⌊target × N_impostor⌋
  impostor pairs at or above it. **Recommended `cosine_threshold_low`** for a
  target FRR: the highest threshold (rounded down to 4 decimals) with at most
  ⌊target × N_genuine⌋ genuine pairs below it (failed genuine pairs count
  against this budget first); clamped to the high threshold, since
  facer.toml needs low ≤ high.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

DEFAULT_FAR_POINTS = (1e-2, 1e-3)
DECIMALS = 4  # recommended thresholds, ready to paste into facer.toml
_EPS = 1e-9  # guards floor(target × n) against 0.29 × 100 = 28.999…


def as_scores(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """float64 1-D array; NaN = no score."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if np.isinf(array).any():
        raise ValueError("scores must be finite (NaN marks a pair without a score)")
    return array


def needed_pairs(rate: float) -> int | float:
    """Pairs needed before a rate this small is measured rather than guessed: ⌈1 / rate⌉ (∞ for 0)."""
    if rate <= 0:
        return math.inf
    return math.ceil(1.0 / rate - _EPS)


def _needs(rate: float, kind: str, have: int) -> str:
    needed = needed_pairs(rate)
    if needed == math.inf:
        return f"cannot be measured with any number of {kind} pairs"
    return f"needs ≥ {needed} {kind} pairs, have {have}"


def _budget(target: float, n: int) -> int:
    return math.floor(target * n + _EPS)


def _rate(count: int, total: int) -> float | None:
    return None if total == 0 else count / total


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


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
        return _rate(self.impostor.match, self.impostor.total)

    @property
    def frr(self) -> float | None:
        return _rate(self.genuine.no_match, self.genuine.total)

    @property
    def genuine_uncertain(self) -> float | None:
        return _rate(self.genuine.uncertain, self.genuine.total)

    @property
    def impostor_uncertain(self) -> float | None:
        return _rate(self.impostor.uncertain, self.impostor.total)

    @property
    def accuracy(self) -> float | None:
        correct = self.genuine.match + (self.impostor.no_match - self.impostor.no_score)
        return _rate(correct, self.genuine.total + self.impostor.total)

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold_high": self.threshold_high,
            "threshold_low": self.threshold_low,
            "accuracy": _round(self.accuracy),
            "far": _round(self.far),
            "frr": _round(self.frr),
            "genuine_uncertain": _round(self.genuine_uncertain),
            "impostor_uncertain": _round(self.impostor_uncertain),
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
        return {"rate": _round(self.rate), "threshold": _round(self.threshold), "note": self.note}


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
        return {k: _round(v) for k, v in asdict(self).items()}


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
        return _needs(self.far, "impostor", self.impostor_pairs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "far": self.far,
            "tar": _round(self.tar),
            "threshold": _round(self.threshold),
            "supported": self.supported,
            "impostor_pairs": self.impostor_pairs,
            "needed_impostor_pairs": self.needed if self.needed != math.inf else None,
            "note": self.note,
        }


def threshold_for_far(impostor: np.ndarray, target: float) -> float:
    """The unrounded boundary: accept iff score > this keeps FAR ≤ target (−∞ when anything goes)."""
    valid = np.sort(impostor[~np.isnan(impostor)])[::-1]
    allowed = _budget(target, len(impostor))
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


# -- recommendations ------------------------------------------------------------------------------


@dataclass
class Recommendation:
    """Thresholds for facer.toml, with what they achieve on these pairs."""

    target_far: float
    target_frr: float
    threshold_high: float | None
    far_at_high: float | None
    tar_at_high: float | None
    far_supported: bool
    threshold_low: float | None
    frr_at_low: float | None
    frr_supported: bool
    notes: list[str] = field(default_factory=list)

    impostor_pairs: int = 0
    genuine_pairs: int = 0
    low_clamped: bool = False

    def toml(self) -> str:
        """Lines for facer.toml; an inline comment says when a figure is not measured."""
        lines = []
        if self.threshold_high is not None:
            line = f"cosine_threshold_high = {self.threshold_high:.{DECIMALS}f}"
            if not self.far_supported:
                line += f"  # not measured: FAR {self.target_far:g} {_needs(self.target_far, 'impostor', self.impostor_pairs)}"
            lines.append(line)
        if self.threshold_low is not None:
            line = f"cosine_threshold_low = {self.threshold_low:.{DECIMALS}f}"
            comments = []
            if self.low_clamped:
                comments.append("set to high: no uncertain band needed")
            if not self.frr_supported:
                comments.append(
                    f"not measured: FRR {self.target_frr:g} {_needs(self.target_frr, 'genuine', self.genuine_pairs)}"
                )
            lines.append(line + ("  # " + "; ".join(comments) if comments else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_far": self.target_far,
            "target_frr": self.target_frr,
            "cosine_threshold_high": self.threshold_high,
            "far_at_high": _round(self.far_at_high),
            "tar_at_high": _round(self.tar_at_high),
            "far_supported": self.far_supported,
            "cosine_threshold_low": self.threshold_low,
            "frr_at_low": _round(self.frr_at_low),
            "frr_supported": self.frr_supported,
            "notes": list(self.notes),
            "toml": self.toml(),
        }


def recommend(genuine: np.ndarray, impostor: np.ndarray, target_far: float, target_frr: float) -> Recommendation:
    notes: list[str] = []
    high = far_at = tar_at = None
    far_supported = len(impostor) >= needed_pairs(target_far)
    if len(impostor):
        boundary = threshold_for_far(impostor, target_far)
        high = -1.0 if boundary == -np.inf else round_up_above(boundary)
        far_at = float(np.sum(impostor[~np.isnan(impostor)] >= high) / len(impostor))
        if len(genuine):
            tar_at = float(np.sum(genuine[~np.isnan(genuine)] >= high) / len(genuine))
        if not far_supported:
            notes.append(
                f"FAR {target_far:g} {_needs(target_far, 'impostor', len(impostor))}: "
                f"cosine_threshold_high is only 'above every impostor allowed', not a measured FAR"
            )
    else:
        notes.append("no impostor pairs: cannot recommend cosine_threshold_high")
    low = frr_at = None
    clamped = False
    frr_supported = len(genuine) >= needed_pairs(target_frr)
    valid = np.sort(genuine[~np.isnan(genuine)])
    if len(genuine) == 0:
        notes.append("no genuine pairs: cannot recommend cosine_threshold_low")
    elif len(valid) == 0:
        notes.append("no genuine pair has a score: cannot recommend cosine_threshold_low")
    else:
        failed = len(genuine) - len(valid)
        allowed = _budget(target_frr, len(genuine)) - failed
        if allowed < 0:
            notes.append(
                f"more genuine pairs without a score ({failed}) than FRR {target_frr:g} allows: "
                "cosine_threshold_low cannot reach it"
            )
        low = round_down_to(float(valid[max(allowed, 0)])) if allowed < len(valid) else -1.0
        if not frr_supported:
            notes.append(
                f"FRR {target_frr:g} {_needs(target_frr, 'genuine', len(genuine))}: "
                "cosine_threshold_low is only 'at or below every genuine pair allowed'"
            )
        if high is not None and low > high:
            notes.append(
                f"the FRR target allows a low threshold of {low:.{DECIMALS}f}, above the high one: "
                "low set to high (no uncertain band is needed on these pairs)"
            )
            low, clamped = high, True
        frr_at = float(1 - np.sum(valid >= low) / len(genuine))
    return Recommendation(
        target_far,
        target_frr,
        high,
        far_at,
        tar_at,
        far_supported,
        low,
        frr_at,
        frr_supported,
        notes,
        impostor_pairs=len(impostor),
        genuine_pairs=len(genuine),
        low_clamped=clamped,
    )


# -- everything at once ------------------------------------------------------------------------------


@dataclass
class ScoreSummary:
    count: int
    no_score: int
    min: float | None
    mean: float | None
    max: float | None

    @classmethod
    def of(cls, scores: np.ndarray) -> "ScoreSummary":
        valid = scores[~np.isnan(scores)]
        if len(valid) == 0:
            return cls(len(scores), len(scores), None, None, None)
        return cls(len(scores), len(scores) - len(valid), float(valid.min()), float(valid.mean()), float(valid.max()))

    def to_dict(self) -> dict[str, Any]:
        return {k: (_round(v) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class Metrics:
    """Every figure for one set of genuine and impostor scores."""

    genuine: ScoreSummary
    impostor: ScoreSummary
    current: OperatingPoint
    eer: EqualErrorRate
    tar_at_far: list[TarAtFar]
    best: BestAccuracy | None
    recommendation: Recommendation
    genuine_scores: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    impostor_scores: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))

    @property
    def pairs(self) -> int:
        return self.genuine.count + self.impostor.count

    def curve(self) -> Curve | None:
        if self.genuine.count == 0 or self.impostor.count == 0:
            return None
        return roc_curve(self.genuine_scores, self.impostor_scores)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "genuine_pairs": self.genuine.count,
            "impostor_pairs": self.impostor.count,
            "scores": {"genuine": self.genuine.to_dict(), "impostor": self.impostor.to_dict()},
            "current": self.current.to_dict(),
            "eer": self.eer.to_dict(),
            "tar_at_far": [point.to_dict() for point in self.tar_at_far],
            "best_accuracy": None if self.best is None else self.best.to_dict(),
            "recommendation": self.recommendation.to_dict(),
        }


def evaluate_scores(
    genuine: Sequence[float] | np.ndarray,
    impostor: Sequence[float] | np.ndarray,
    threshold_high: float,
    threshold_low: float,
    target_far: float = 1e-3,
    target_frr: float = 1e-2,
    far_points: Sequence[float] = DEFAULT_FAR_POINTS,
) -> Metrics:
    """All figures; NaN scores are pairs without a score (see the module's definitions)."""
    g, i = as_scores(genuine), as_scores(impostor)
    if len(g) and len(i):
        eer = equal_error_rate(roc_curve(g, i))
    else:
        eer = EqualErrorRate(None, None, "needs genuine and impostor pairs")
    return Metrics(
        genuine=ScoreSummary.of(g),
        impostor=ScoreSummary.of(i),
        current=operating_point(g, i, threshold_high, threshold_low),
        eer=eer,
        tar_at_far=[tar_at_far(g, i, far) for far in far_points],
        best=best_accuracy(g, i),
        recommendation=recommend(g, i, target_far, target_frr),
        genuine_scores=g,
        impostor_scores=i,
    )
