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
- **Confidence intervals**: every FAR and FRR comes with its exact two-sided 95 %
  Clopper–Pearson interval for k errors in n pairs (`binomial_ci`; with k = 0 its
  upper end is 1 − 0.025^(1/n) ≈ 3.7 / n, a little above the one-sided "rule of
  three" 3 / n).
- **Recommended `cosine_threshold_high`** for a target FAR: just above the highest
  impostor score seen (rounded up to 4 decimals), and never below the model's safe
  floor `SAFE_FLOOR` (0.30). It is *supported* — printed as a paste-ready facer.toml
  line — only when the upper end of the 95 % interval of FAR at it is within the
  target; otherwise facer says how many impostor pairs the target needs
  (`pairs_needed`: with none accepted, ⌈ln 0.025 / ln(1 − target)⌉) and what FAR the
  data do support (that upper end). With `allow_below_floor`, it is instead the
  lowest threshold whose FAR interval still ends within the target — it may let in
  impostors that were seen, and go below the floor.
- **Recommended `cosine_threshold_low`** for a target FRR: the highest threshold
  (rounded down to 4 decimals) with at most k genuine pairs below it, k the most
  errors whose 95 % FRR interval still ends within the target (failed genuine pairs
  count against k first); clamped to the high threshold, since facer.toml needs
  low ≤ high. Supported on the same rule, with genuine pairs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

DEFAULT_FAR_POINTS = (1e-2, 1e-3)
DECIMALS = 4  # recommended thresholds, ready to paste into facer.toml
_EPS = 1e-9  # guards floor(target × n) against 0.29 × 100 = 28.999…
CONFIDENCE = 0.95
# The lowest cosine_threshold_high facer recommends without `allow_below_floor`. With the bundled
# w600k_mbf model, impostor pairs of ../shared/faces stay below 0.14 (91 pairs) and its README puts
# different identities below about 0.15: 0.30 (the default cosine_threshold_low) leaves twice that margin.
SAFE_FLOOR = 0.30


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


# -- confidence intervals (pure Python: no SciPy import) ------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-15:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function (the Beta(a, b) CDF at x)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def beta_quantile(q: float, a: float, b: float) -> float:
    """x with I_x(a, b) = q, by bisection (monotone in x)."""
    low, high = 0.0, 1.0
    for _ in range(200):
        middle = (low + high) / 2
        if regularized_beta(a, b, middle) < q:
            low = middle
        else:
            high = middle
        if high - low < 1e-15:
            break
    return (low + high) / 2


def binomial_ci(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact two-sided Clopper–Pearson interval of a rate with k events in n trials ((0, 1) for n = 0)."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"k must be between 0 and n ({n}), got {k}")
    alpha = 1.0 - confidence
    if k == 0:
        low = 0.0
        high = 1.0 - (alpha / 2) ** (1.0 / n)
    else:
        low = beta_quantile(alpha / 2, k, n - k + 1)
        high = 1.0 if k == n else beta_quantile(1.0 - alpha / 2, k + 1, n - k)
    if k == n:
        low = (alpha / 2) ** (1.0 / n)
    return low, high


def pairs_needed(target: float, confidence: float = CONFIDENCE) -> int | float:
    """Fewest pairs whose 95 % upper bound can reach `target`, with no error at all (∞ for 0)."""
    if target <= 0:
        return math.inf
    if target >= 1:
        return 1
    alpha = 1.0 - confidence
    n = math.ceil(math.log(alpha / 2) / math.log1p(-target) - _EPS)
    while binomial_ci(0, n, confidence)[1] > target:  # guard the rounding
        n += 1
    return n


def most_errors_within(target: float, n: int, confidence: float = CONFIDENCE) -> int | None:
    """The most errors in n pairs whose 95 % upper bound stays within `target` (None: not even 0)."""
    if n <= 0 or binomial_ci(0, n, confidence)[1] > target:
        return None
    low, high = 0, n  # the upper bound rises with k: bisect for the last k within the target
    while low < high:
        middle = (low + high + 1) // 2
        if binomial_ci(middle, n, confidence)[1] <= target:
            low = middle
        else:
            high = middle - 1
    return low


def _ci(count: int, total: int) -> tuple[float, float] | None:
    return None if total == 0 else binomial_ci(count, total)


def _ci_list(ci: tuple[float, float] | None) -> list[float | None] | None:
    return None if ci is None else [_round(ci[0]), _round(ci[1])]


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
    def far_ci(self) -> tuple[float, float] | None:
        """95 % Clopper–Pearson interval of the FAR."""
        return _ci(self.impostor.match, self.impostor.total)

    @property
    def frr_ci(self) -> tuple[float, float] | None:
        """95 % Clopper–Pearson interval of the FRR."""
        return _ci(self.genuine.no_match, self.genuine.total)

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
            "far_ci95": _ci_list(self.far_ci),
            "frr": _round(self.frr),
            "frr_ci95": _ci_list(self.frr_ci),
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
    """Thresholds for facer.toml, with what they achieve on these pairs and whether the data support them."""

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
    far_ci_at_high: tuple[float, float] | None = None
    frr_ci_at_low: tuple[float, float] | None = None
    floor: float = SAFE_FLOOR
    raised_to_floor: bool = False
    allow_below_floor: bool = False
    # The low line is pasted without the high one only when it fits under the high in force.
    current_high: float | None = None

    @property
    def needed_impostor_pairs(self) -> int | float:
        return pairs_needed(self.target_far)

    @property
    def needed_genuine_pairs(self) -> int | float:
        return pairs_needed(self.target_frr)

    @property
    def high_line(self) -> bool:
        return self.threshold_high is not None and self.far_supported

    @property
    def low_line(self) -> bool:
        if self.threshold_low is None or not self.frr_supported:
            return False
        if self.high_line:
            return True
        return self.current_high is not None and self.threshold_low <= self.current_high

    def toml(self) -> str:
        """Paste-ready facer.toml lines: only the thresholds the data support (may be empty)."""
        lines = []
        if self.high_line:
            line = f"cosine_threshold_high = {self.threshold_high:.{DECIMALS}f}"
            if self.raised_to_floor:
                line += f"  # the model's safe floor ({self.floor:g})"
            lines.append(line)
        if self.low_line:
            line = f"cosine_threshold_low = {self.threshold_low:.{DECIMALS}f}"
            if self.low_clamped:
                line += "  # set to high: no uncertain band needed"
            lines.append(line)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_far": self.target_far,
            "target_frr": self.target_frr,
            "cosine_threshold_high": self.threshold_high,
            "far_at_high": _round(self.far_at_high),
            "far_ci95_at_high": _ci_list(self.far_ci_at_high),
            "tar_at_high": _round(self.tar_at_high),
            "far_supported": self.far_supported,
            "needed_impostor_pairs": _finite(self.needed_impostor_pairs),
            "cosine_threshold_low": self.threshold_low,
            "frr_at_low": _round(self.frr_at_low),
            "frr_ci95_at_low": _ci_list(self.frr_ci_at_low),
            "frr_supported": self.frr_supported,
            "needed_genuine_pairs": _finite(self.needed_genuine_pairs),
            "safe_floor": self.floor,
            "raised_to_floor": self.raised_to_floor,
            "allow_below_floor": self.allow_below_floor,
            "notes": list(self.notes),
            "toml": self.toml(),
        }


def _finite(value: int | float) -> int | None:
    return None if value == math.inf else int(value)


def _support_note(kind: str, rate: str, target: float, n: int, errors: int, ci: tuple[float, float] | None) -> str:
    needed = pairs_needed(target)
    if needed == math.inf:
        need = f"{rate} {target:g} cannot be shown with any number of {kind} pairs"
    else:
        need = f"{rate} ≤ {target:g} needs ≥ {needed} {kind} pairs with no error"
    supported = "" if ci is None else f"; these {n} support {rate} ≤ {ci[1]:.4g} (95 % upper bound, {errors} of {n})"
    return need + supported


def recommend(
    genuine: np.ndarray,
    impostor: np.ndarray,
    target_far: float,
    target_frr: float,
    allow_below_floor: bool = False,
    current_high: float | None = None,
    floor: float = SAFE_FLOOR,
) -> Recommendation:
    notes: list[str] = []
    high = far_at = tar_at = None
    far_ci = None
    far_supported = raised = False
    valid_i = impostor[~np.isnan(impostor)]
    if len(impostor):
        allowed = most_errors_within(target_far, len(impostor)) if allow_below_floor else None
        if allowed is not None and allowed > 0:
            boundary = float(np.sort(valid_i)[::-1][allowed]) if allowed < len(valid_i) else -np.inf
            high = -1.0 if boundary == -np.inf else round_up_above(boundary)
        else:  # above every impostor seen
            high = round_up_above(float(valid_i.max())) if len(valid_i) else -1.0
        unfloored = high
        if not allow_below_floor and high < floor:
            high, raised = floor, True
        accepted = int(np.sum(valid_i >= high))
        far_at = accepted / len(impostor)
        far_ci = binomial_ci(accepted, len(impostor))
        far_supported = far_ci[1] <= target_far
        if len(genuine):
            tar_at = float(np.sum(genuine[~np.isnan(genuine)] >= high) / len(genuine))
        if not far_supported:
            notes.append(
                _support_note("impostor", "FAR", target_far, len(impostor), accepted, far_ci)
                + ": no cosine_threshold_high to paste"
            )
        if raised:
            notes.append(
                f"cosine_threshold_high raised from {unfloored:.{DECIMALS}f} (above every impostor seen) to the "
                f"model's safe floor {floor:g} (--allow-below-floor keeps it lower)"
            )
    else:
        notes.append("no impostor pairs: cannot recommend cosine_threshold_high")
    low = frr_at = None
    frr_ci = None
    clamped = frr_supported = False
    valid = np.sort(genuine[~np.isnan(genuine)])
    if len(genuine) == 0:
        notes.append("no genuine pairs: cannot recommend cosine_threshold_low")
    elif len(valid) == 0:
        notes.append("no genuine pair has a score: cannot recommend cosine_threshold_low")
    else:
        failed = len(genuine) - len(valid)
        errors = most_errors_within(target_frr, len(genuine))
        budget = (0 if errors is None else errors) - failed
        if errors is not None and budget < 0:
            notes.append(
                f"more genuine pairs without a score ({failed}) than FRR {target_frr:g} allows: "
                "cosine_threshold_low cannot reach it"
            )
        low = round_down_to(float(valid[max(budget, 0)])) if budget < len(valid) else -1.0
        ceiling = high if high is not None and (far_supported or current_high is None) else current_high
        if ceiling is not None and low > ceiling:
            notes.append(
                f"the FRR target allows a low threshold of {low:.{DECIMALS}f}, above cosine_threshold_high "
                f"{ceiling:.{DECIMALS}f}: low set to it (no uncertain band is needed on these pairs)"
            )
            low, clamped = ceiling, True
        rejected = int(len(genuine) - np.sum(valid >= low))
        frr_at = rejected / len(genuine)
        frr_ci = binomial_ci(rejected, len(genuine))
        frr_supported = frr_ci[1] <= target_frr
        if not frr_supported:
            notes.append(
                _support_note("genuine", "FRR", target_frr, len(genuine), rejected, frr_ci)
                + ": no cosine_threshold_low to paste"
            )
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
        far_ci_at_high=far_ci,
        frr_ci_at_low=frr_ci,
        floor=floor,
        raised_to_floor=raised,
        allow_below_floor=allow_below_floor,
        current_high=current_high,
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
    allow_below_floor: bool = False,
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
        recommendation=recommend(g, i, target_far, target_frr, allow_below_floor, current_high=threshold_high),
        genuine_scores=g,
        impostor_scores=i,
    )
