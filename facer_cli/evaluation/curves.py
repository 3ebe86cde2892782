"""Operating points and curves from genuine and impostor scores: pure numpy, no engine.

Scores are cosine similarities. A score of NaN means "no score": the pair was
*not acquired* — one of its images had no usable face (or, in the enroll
protocol, the template could not be built).

Definitions, in ISO/IEC 19795-1's terms (the bands are `facer verify`'s):

- **Bands.** A pair is a *match* when its score ≥ `cosine_threshold_high`, a
  *no match* when its score < `cosine_threshold_low`, *uncertain* in between.
- **FTA** (failure to acquire) of a kind of pairs = pairs not acquired / all
  pairs of that kind. 19795-1 counts FTA per transaction; a pair is one
  transaction, and it fails to acquire when either of its images does (the
  evaluation has no separate enrolment side, so 19795-1's FTE and FTA of a pair
  fold into this one rate: 1 − (1 − FTE)(1 − FTA)).
- **Model (algorithm) figures, on acquired pairs only** — how often the model errs:
  **FMR** = acquired impostor pairs in the match band / acquired impostor pairs
  (depends on the high threshold only); **FNMR** = acquired genuine pairs in the
  no-match band / acquired genuine pairs (the low threshold only); the
  *uncertain* rates (neither: the site decides, a second look or another factor);
  **accuracy** = (genuine matches + impostor no-matches) / acquired pairs.
- **System figures, on every pair** — how often a person is let in or turned away
  (19795-1's single-attempt FAR and FRR):
  **FAR** = FMR × (1 − FTA_impostor) = impostor pairs matched / all impostor pairs;
  **FRR** = FTA_genuine + FNMR × (1 − FTA_genuine)
  = (genuine pairs not acquired + acquired ones in the no-match band) / all genuine pairs.
  An impostor pair that is not acquired is an error in no figure: it lets nobody
  in (FAR), and the model never compared it (FMR, accuracy).
- Single-threshold curves (ROC, EER, best accuracy), on acquired pairs: accept iff
  score ≥ t; FMR(t) = #(impostor ≥ t) / acquired impostors, FNMR(t) = #(genuine < t) /
  acquired genuine pairs.
- **EER**: the ROC's vertices are (FMR(t), FNMR(t)) at t = +∞ and at every
  distinct score; joined by straight lines, FMR − FNMR rises strictly from
  −1 to +1, and the EER is where it crosses 0 (linear interpolation between the
  two vertices around the crossing; the threshold is interpolated the same way).
- **TAR @ FMR f**: 1 − FNMR(t) at t = the lowest threshold (rounded up to 4
  decimals, as the recommended thresholds are) whose FMR ≤ f. Reported
  only with at least ⌈1/f⌉ acquired impostor pairs: with fewer, one false match
  already exceeds f and the figure would not be measured, only guessed.
- **Best-accuracy threshold**: the single threshold with the highest accuracy on
  acquired pairs; the middle of the best gap between consecutive distinct scores
  (ties: the widest gap, then the higher threshold).

Every rate comes with its 95 % interval (`facer_cli.evaluation.intervals`);
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
    """Pairs of one kind by band; `no_score` pairs (not acquired) are also in `no_match`."""

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

    @property
    def acquired(self) -> int:
        """Pairs with a score: both images acquired (and, enrolling, the template built)."""
        return self.total - self.no_score

    @property
    def no_match_acquired(self) -> int:
        return self.no_match - self.no_score

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "acquired": self.acquired}


@dataclass
class OperatingPoint:
    """What the configured three-band thresholds do on these pairs: model and system figures."""

    threshold_high: float
    threshold_low: float
    genuine: BandCounts
    impostor: BandCounts

    # -- failure to acquire (per pair: either image failed) ----------------------------------------
    @property
    def fta_genuine(self) -> float | None:
        return fraction(self.genuine.no_score, self.genuine.total)

    @property
    def fta_impostor(self) -> float | None:
        return fraction(self.impostor.no_score, self.impostor.total)

    # -- the model: acquired pairs only --------------------------------------------------------------
    @property
    def fmr(self) -> float | None:
        return fraction(self.impostor.match, self.impostor.acquired)

    @property
    def fnmr(self) -> float | None:
        return fraction(self.genuine.no_match_acquired, self.genuine.acquired)

    @property
    def fmr_ci(self) -> tuple[float, float] | None:
        """95 % Clopper–Pearson interval of the FMR."""
        return interval(self.impostor.match, self.impostor.acquired)

    @property
    def fnmr_ci(self) -> tuple[float, float] | None:
        """95 % Clopper–Pearson interval of the FNMR."""
        return interval(self.genuine.no_match_acquired, self.genuine.acquired)

    @property
    def genuine_uncertain(self) -> float | None:
        return fraction(self.genuine.uncertain, self.genuine.acquired)

    @property
    def impostor_uncertain(self) -> float | None:
        return fraction(self.impostor.uncertain, self.impostor.acquired)

    @property
    def correct(self) -> int:
        """Acquired pairs answered right: genuine matches and impostor no-matches."""
        return self.genuine.match + self.impostor.no_match_acquired

    @property
    def acquired(self) -> int:
        return self.genuine.acquired + self.impostor.acquired

    @property
    def accuracy(self) -> float | None:
        return fraction(self.correct, self.acquired)

    # -- the system: every pair (FAR = FMR × (1 − FTA), FRR = FTA + FNMR × (1 − FTA)) -------------------
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold_high": self.threshold_high,
            "threshold_low": self.threshold_low,
            # the model, on acquired pairs
            "fmr": rounded(self.fmr),
            "fmr_ci95": interval_list(self.fmr_ci),
            "fnmr": rounded(self.fnmr),
            "fnmr_ci95": interval_list(self.fnmr_ci),
            "accuracy": rounded(self.accuracy),
            "genuine_uncertain": rounded(self.genuine_uncertain),
            "impostor_uncertain": rounded(self.impostor_uncertain),
            # failure to acquire, per pair
            "fta_genuine_pairs": rounded(self.fta_genuine),
            "fta_impostor_pairs": rounded(self.fta_impostor),
            # the system, on every pair
            "far": rounded(self.far),
            "far_ci95": interval_list(self.far_ci),
            "frr": rounded(self.frr),
            "frr_ci95": interval_list(self.frr_ci),
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
    """Vertices of the ROC for "accept iff score ≥ t", on acquired pairs (needs acquired pairs of both
    kinds): `far` is the FMR and `frr` the FNMR at each threshold."""
    g = np.sort(genuine[~np.isnan(genuine)])
    i = np.sort(impostor[~np.isnan(impostor)])
    scores = np.unique(np.concatenate([g, i]))[::-1]
    thresholds = np.concatenate([[np.inf], scores])
    accepted_g = len(g) - np.searchsorted(g, thresholds, side="left")
    accepted_i = len(i) - np.searchsorted(i, thresholds, side="left")
    far = accepted_i / len(i)
    frr = 1.0 - accepted_g / len(g)
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
        return EqualErrorRate(None, None, "FNMR stays above FMR at every threshold")
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
    """On acquired pairs: `far` is the FMR and `frr` the FNMR at `threshold`."""

    threshold: float
    accuracy: float
    far: float
    frr: float
    correct: int = 0
    acquired: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: (v if isinstance(v, int) else rounded(v)) for k, v in asdict(self).items()}


def best_accuracy(genuine: np.ndarray, impostor: np.ndarray) -> BestAccuracy | None:
    """The single threshold (accept iff score ≥ t) that gets the most acquired pairs right."""
    scores = np.unique(np.concatenate([genuine, impostor]))
    scores = scores[~np.isnan(scores)]
    if len(scores) == 0:
        return None
    # Candidates: the lowest score (accept every scored pair), the middle of each gap, above the highest.
    mids = (scores[:-1] + scores[1:]) / 2
    candidates = np.concatenate([[scores[0]], mids, [np.nextafter(scores[-1], np.inf)]])
    gaps = np.concatenate([[0.0], np.diff(scores), [0.0]])
    g = np.sort(genuine[~np.isnan(genuine)])
    i = np.sort(impostor[~np.isnan(impostor)])
    total = len(g) + len(i)
    genuine_ok = len(g) - np.searchsorted(g, candidates, side="left")
    impostor_ok = np.searchsorted(i, candidates, side="left")
    correct = genuine_ok + impostor_ok
    # Most correct, then the widest gap, then the highest threshold.
    order = np.lexsort((candidates, gaps, correct))
    best = int(order[-1])
    return BestAccuracy(
        threshold=float(candidates[best]),
        accuracy=float(correct[best] / total),
        correct=int(correct[best]),
        acquired=total,
        far=float((len(i) - impostor_ok[best]) / len(i)) if len(i) else 0.0,
        frr=float(1 - genuine_ok[best] / len(g)) if len(g) else 0.0,
    )


@dataclass
class TarAtFar:
    """TAR at the lowest threshold whose FMR ≤ `far`, on acquired pairs (`far` names the FMR point)."""

    far: float
    tar: float | None
    threshold: float | None
    impostor_pairs: int  # acquired impostor pairs
    needed: int | float
    accepted: int = 0  # acquired genuine pairs at or above the threshold
    genuine_pairs: int = 0  # acquired genuine pairs

    @property
    def supported(self) -> bool:
        return self.tar is not None

    @property
    def note(self) -> str:
        if self.supported:
            return ""
        return needs_note(self.far, "acquired impostor", self.impostor_pairs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "far": self.far,
            "fmr": self.far,
            "tar": rounded(self.tar),
            "threshold": rounded(self.threshold),
            "supported": self.supported,
            "impostor_pairs": self.impostor_pairs,
            "needed_impostor_pairs": self.needed if self.needed != math.inf else None,
            "genuine_accepted": self.accepted,
            "genuine_pairs": self.genuine_pairs,
            "note": self.note,
        }


def threshold_for_far(impostor: np.ndarray, target: float) -> float:
    """The unrounded boundary: accept iff score > this keeps the FMR (acquired impostor pairs) ≤ target
    (−∞ when anything goes)."""
    valid = np.sort(impostor[~np.isnan(impostor)])[::-1]
    allowed = error_budget(target, len(valid))
    if allowed >= len(valid):
        return -np.inf
    return float(valid[allowed])


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> TarAtFar:
    """TAR @ FMR `far` on acquired pairs; unsupported with fewer than ⌈1/far⌉ acquired impostor pairs."""
    needed = needed_pairs(far)
    valid_g = genuine[~np.isnan(genuine)]
    acquired_i = int(np.sum(~np.isnan(impostor)))
    if acquired_i < needed or len(valid_g) == 0:
        return TarAtFar(far, None, None, acquired_i, needed, 0, len(valid_g))
    boundary = threshold_for_far(impostor, far)
    threshold = -1.0 if boundary == -np.inf else round_up_above(boundary)
    accepted = int(np.sum(valid_g >= threshold))
    return TarAtFar(far, accepted / len(valid_g), threshold, acquired_i, needed, accepted, len(valid_g))
