"""Recommended thresholds for facer.toml, whether the data support them, and every figure at once.

- **Recommended `cosine_threshold_high`** for a target FAR: just above the highest
  impostor score seen (rounded up to 4 decimals), and never below the model's safe
  floor `SAFE_FLOOR` (0.30). It is measured on the *acquired* impostor pairs (its FMR:
  an impostor pair that was not acquired says nothing about a threshold, and
  FAR = FMR × (1 − FTA) can only be lower). It is *supported* — printed as a
  paste-ready facer.toml line — only when the upper end of the 95 % interval of that
  FMR is within the target; otherwise facer says how many impostor pairs the target
  needs (`pairs_needed`: with none accepted, ⌈ln 0.025 / ln(1 − target)⌉) and what the
  data do support (that upper end). With `allow_below_floor`, it is instead the lowest
  threshold whose FMR interval still ends within the target — it may let in impostors
  that were seen, and go below the floor.
- **Recommended `cosine_threshold_low`** for a target FRR: the highest threshold
  (rounded down to 4 decimals) with at most k genuine pairs below it, k the most
  errors whose 95 % FRR interval still ends within the target; genuine pairs not
  acquired are rejections a threshold cannot help (the FTA part of the FRR), so they
  count against k first. Never above the recommended high (nor, when that high is
  not supported, the high in force), since facer.toml needs low ≤ high. Supported
  on the same rule, with genuine pairs.

`evaluate_scores` gives every figure for one set of scores (`Metrics`): the bands, the
model's FMR/FNMR, the FTA and the system's FAR/FRR at the configured thresholds and the
curves (`facer_cli.evaluation.curves`, where the figures are defined), with their
intervals (`facer_cli.evaluation.intervals`), and the recommendation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from facer_cli.evaluation.curves import (
    DECIMALS,
    DEFAULT_FAR_POINTS,
    BestAccuracy,
    Curve,
    EqualErrorRate,
    OperatingPoint,
    TarAtFar,
    as_scores,
    best_accuracy,
    equal_error_rate,
    operating_point,
    roc_curve,
    round_down_to,
    round_up_above,
    tar_at_far,
)
from facer_cli.evaluation.intervals import binomial_ci, interval_list, most_errors_within, pairs_needed, rounded

# The lowest cosine_threshold_high facer recommends without `allow_below_floor`. With the bundled
# w600k_mbf model, impostor pairs of ../shared/faces stay below 0.14 (91 pairs) and its README puts
# different identities below about 0.15: 0.30 (the default cosine_threshold_low) leaves twice that margin.
SAFE_FLOOR = 0.30


# -- recommendations ------------------------------------------------------------------------------


@dataclass
class Recommendation:
    """Thresholds for facer.toml, with what they achieve on these pairs and whether the data support them.

    `far_at_high` and `far_ci_at_high` are measured on the acquired impostor pairs (the FMR at the
    recommended high, which bounds the FAR); `frr_at_low` and `frr_ci_at_low` on every genuine pair."""

    target_far: float
    target_frr: float
    threshold_high: float | None
    far_at_high: float | None
    tar_at_high: float | None
    far_supported: bool
    threshold_low: float | None
    frr_at_low: float | None
    frr_supported: bool
    high_notes: list[str] = field(default_factory=list)
    low_notes: list[str] = field(default_factory=list)

    impostor_pairs: int = 0
    genuine_pairs: int = 0
    impostor_acquired: int = 0
    genuine_acquired: int = 0
    accepted_at_high: int = 0  # acquired impostor pairs at or above the recommended high
    genuine_at_high: int = 0  # acquired genuine pairs at or above it
    rejected_at_low: int = 0  # genuine pairs below the recommended low or not acquired
    low_clamped: bool = False
    low_ceiling: float | None = None  # what the low was clamped to
    far_ci_at_high: tuple[float, float] | None = None
    frr_ci_at_low: tuple[float, float] | None = None
    floor: float = SAFE_FLOOR
    raised_to_floor: bool = False
    allow_below_floor: bool = False
    # The low line is pasted without the high one only when it fits under the high in force.
    current_high: float | None = None

    @property
    def notes(self) -> list[str]:
        """Every note: the high's, then the low's."""
        return [*self.high_notes, *self.low_notes]

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
            if self.low_clamped and (self.high_line or self.low_ceiling == self.current_high):
                line += "  # set to high: no uncertain band needed"
            elif self.low_clamped:
                line += "  # no higher than the recommended high, which these pairs do not support"
            lines.append(line)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_far": self.target_far,
            "target_frr": self.target_frr,
            "cosine_threshold_high": self.threshold_high,
            "fmr_at_high": rounded(self.far_at_high),
            "fmr_ci95_at_high": interval_list(self.far_ci_at_high),
            "far_at_high": rounded(self.far_at_high),
            "far_ci95_at_high": interval_list(self.far_ci_at_high),
            "impostor_acquired_at_high": [self.accepted_at_high, self.impostor_acquired],
            "tar_at_high": rounded(self.tar_at_high),
            "far_supported": self.far_supported,
            "needed_impostor_pairs": _finite(self.needed_impostor_pairs),
            "cosine_threshold_low": self.threshold_low,
            "frr_at_low": rounded(self.frr_at_low),
            "frr_ci95_at_low": interval_list(self.frr_ci_at_low),
            "genuine_rejected_at_low": [self.rejected_at_low, self.genuine_pairs],
            "frr_supported": self.frr_supported,
            "needed_genuine_pairs": _finite(self.needed_genuine_pairs),
            "low_clamped": self.low_clamped,
            "safe_floor": self.floor,
            "raised_to_floor": self.raised_to_floor,
            "allow_below_floor": self.allow_below_floor,
            "notes": self.notes,
            "high_notes": list(self.high_notes),
            "low_notes": list(self.low_notes),
            "toml": self.toml(),
        }


def _finite(value: int | float) -> int | None:
    return None if value == math.inf else int(value)


def percent(rate: float) -> str:
    """A target as the reports print it, a percentage as short as it is exact: 0.001 → "0.1%"."""
    return f"{rate * 100:.3g}%"


def support_note(
    kind: str, rate: str, target: float, n: int, errors: int, ci: tuple[float, float] | None, what: str = "pairs"
) -> str:
    """Why a target is not supported: the pairs (or searches) it needs, and what these support."""
    needed = pairs_needed(target)
    if needed == math.inf:
        need = f"{rate} {percent(target)} cannot be shown with any number of {kind} {what}"
    else:
        need = f"{rate} ≤ {percent(target)} needs ≥ {needed} {kind} {what} with no error"
    supported = "" if ci is None else f"; these {n} support {rate} ≤ {ci[1]:.2%} (95% upper bound, {errors} of {n})"
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
    high_notes: list[str] = []
    low_notes: list[str] = []
    high = far_at = tar_at = None
    far_ci = None
    far_supported = raised = False
    accepted = genuine_at_high = 0
    valid_i = impostor[~np.isnan(impostor)]
    valid = np.sort(genuine[~np.isnan(genuine)])
    if len(valid_i):
        allowed = most_errors_within(target_far, len(valid_i)) if allow_below_floor else None
        if allowed is not None and allowed > 0:
            boundary = float(np.sort(valid_i)[::-1][allowed]) if allowed < len(valid_i) else -np.inf
            high = -1.0 if boundary == -np.inf else round_up_above(boundary)
        else:  # above every impostor seen
            high = round_up_above(float(valid_i.max()))
        unfloored = high
        if not allow_below_floor and high < floor:
            high, raised = floor, True
        accepted = int(np.sum(valid_i >= high))
        far_at = accepted / len(valid_i)
        far_ci = binomial_ci(accepted, len(valid_i))
        far_supported = far_ci[1] <= target_far
        if len(valid):
            genuine_at_high = int(np.sum(valid >= high))
            tar_at = genuine_at_high / len(valid)
        if not far_supported:
            high_notes.append(
                support_note("acquired impostor", "FAR", target_far, len(valid_i), accepted, far_ci)
                + ": no cosine_threshold_high to paste"
            )
        if raised:
            high_notes.append(
                f"cosine_threshold_high raised from {unfloored:.{DECIMALS}f} (above every impostor seen) to the "
                f"model's safe floor {floor:g} (--allow-below-floor keeps it lower)"
            )
    elif len(impostor):
        high_notes.append("no impostor pair was acquired: cannot recommend cosine_threshold_high")
    else:
        high_notes.append("no impostor pairs: cannot recommend cosine_threshold_high")
    low = frr_at = None
    frr_ci = None
    clamped = frr_supported = False
    ceiling = None
    rejected = 0
    if len(genuine) == 0:
        low_notes.append("no genuine pairs: cannot recommend cosine_threshold_low")
    elif len(valid) == 0:
        low_notes.append("no genuine pair was acquired: cannot recommend cosine_threshold_low")
    else:
        failed = len(genuine) - len(valid)
        errors = most_errors_within(target_frr, len(genuine))
        budget = (0 if errors is None else errors) - failed
        if errors is not None and budget < 0:
            low_notes.append(
                f"more genuine pairs not acquired ({failed}) than FRR ≤ {percent(target_frr)} allows: "
                "cosine_threshold_low cannot reach it"
            )
        low = round_down_to(float(valid[max(budget, 0)])) if budget < len(valid) else -1.0
        # low ≤ high: the recommended high when it is pasted; else also the high in force, which stays.
        ceilings = [h for h in ((high,) if far_supported else (high, current_high)) if h is not None]
        ceiling = min(ceilings) if ceilings else None
        if ceiling is not None and low > ceiling:
            which = "the recommended cosine_threshold_high" if ceiling == high else "the cosine_threshold_high in force"
            low_notes.append(
                f"the FRR target allows a low threshold of {low:.{DECIMALS}f}, above {which} "
                f"{ceiling:.{DECIMALS}f}: low set to it (no uncertain band is needed on these pairs)"
            )
            low, clamped = ceiling, True
        rejected = int(len(genuine) - np.sum(valid >= low))
        frr_at = rejected / len(genuine)
        frr_ci = binomial_ci(rejected, len(genuine))
        frr_supported = frr_ci[1] <= target_frr
        if not frr_supported:
            low_notes.append(
                support_note("genuine", "FRR", target_frr, len(genuine), rejected, frr_ci)
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
        high_notes,
        low_notes,
        impostor_pairs=len(impostor),
        genuine_pairs=len(genuine),
        impostor_acquired=len(valid_i),
        genuine_acquired=len(valid),
        accepted_at_high=accepted,
        genuine_at_high=genuine_at_high,
        rejected_at_low=rejected,
        low_clamped=clamped,
        low_ceiling=ceiling if clamped else None,
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
        return {k: (rounded(v) if isinstance(v, float) else v) for k, v in asdict(self).items()}


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
        """The ROC on acquired pairs (None without acquired pairs of both kinds)."""
        if self.genuine.count == self.genuine.no_score or self.impostor.count == self.impostor.no_score:
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
    """All figures; NaN scores are pairs not acquired (see `curves`' definitions)."""
    g, i = as_scores(genuine), as_scores(impostor)
    if (~np.isnan(g)).any() and (~np.isnan(i)).any():
        eer = equal_error_rate(roc_curve(g, i))
    else:
        eer = EqualErrorRate(None, None, "needs acquired genuine and impostor pairs")
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
