"""The identify protocol: open-set 1:N figures in NIST FRTE 1:N terms, and identify_* settings.

Identity folders are split. Of the identities with more than k images, every third (in name
order: the 3rd, 6th, …) is **kept out**; the others are **enrolled**, one template each from
their first k images by facer's template rule. Identities with k images or fewer are kept out
too. Then every remaining image of an enrolled identity is a **mated** search and every image of
a kept-out identity a **non-mated** search, each against the whole gallery (exact search: the
best template of each person).

- **Rank-1 identification rate**: mated searches whose best person is their mate (no threshold).
- **FPIR(T)**: non-mated searches whose best similarity is ≥ T (someone would be named).
- **FNIR(T)**: mated searches where the mate is not the best person at ≥ T (an image without a
  usable face is a miss).
- **FNIR @ FPIR f**: FNIR at the lowest threshold (4 decimals) whose FPIR ≤ f; reported only with
  at least ⌈1/f⌉ non-mated searches (one false positive would already exceed f).
- **At the current settings** (identify_threshold, identify_margin): each search's decision —
  identified (right or wrong person), unknown, ambiguous — and the ambiguous rate.
- **Recommended identify_threshold** for a target FPIR, on the rule of the pairs protocol's
  cosine_threshold_high: just above the best similarity of every non-mated search (rounded up to
  4 decimals; with `allow_below_floor`, the lowest threshold whose FPIR interval still ends within
  the target), and **never below cosine_threshold_high** (nor, without `allow_below_floor`, the
  safe floor 0.30): a 1:N threshold under the 1:1 one would name people 1:1 turns away. It is
  *supported* — a paste-ready facer.toml line — only when the upper end of the 95 % interval of
  FPIR at it, over the acquired non-mated searches, is within the target; otherwise there is no
  line, and a note says how many searches the target needs and what these support.
  **Recommended identify_margin**: the smallest margin (4 decimals) that makes the mated searches
  named as the wrong person at the threshold that will be in force (the recommended one when it
  is supported, else the current one) ambiguous instead, all but the most errors whose 95 % bound
  stays within the target, never below the current margin; pasted on the same rule, over the
  acquired mated searches. **identify_calibrated_for**: the number of templates in this gallery —
  FPIR grows about linearly with it — pasted only with a supported threshold.
- A search whose probe image was not acquired names nobody: it is a miss for a mated search
  (FNIR) and a correct "unknown" for a non-mated one, and it is no evidence for a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from facer_cli.errors import TooFewFramesError, UsageError
from facer_cli.evaluation.curves import DECIMALS, round_up_above
from facer_cli.evaluation.intervals import (
    binomial_ci,
    error_budget,
    fraction,
    interval_list,
    most_errors_within,
    needed_pairs,
    needs_note,
    pairs_needed,
    rounded,
)
from facer_cli.evaluation.recommend import SAFE_FLOOR, support_note

if TYPE_CHECKING:
    from facer_cli.engine.reports import FrameReport
    from facer_cli.evaluation.dataset import Dataset
    from facer_cli.settings import Settings

DEFAULT_FPIR_POINTS = (1e-1, 1e-2, 1e-3)
KEEP_OUT_EVERY = 3


@dataclass
class Search:
    """One probe image against the gallery: its best person and score, and the next person's."""

    probe: str
    mate: int | None  # the enrolled identity's index; None for a non-mated search
    best: int | None  # best person's index (None: no score: no usable face, or an empty gallery)
    best_score: float
    second_score: float  # -inf with fewer than two people

    @property
    def scored(self) -> bool:
        return self.best is not None

    def decision(self, threshold: float, margin: float) -> str:
        if self.best is None or self.best_score < threshold:
            return "unknown"
        return "ambiguous" if self.best_score - self.second_score < margin else "identified"


@dataclass
class FnirAtFpir:
    fpir: float
    fnir: float | None
    threshold: float | None
    non_mated: int

    @property
    def supported(self) -> bool:
        return self.fnir is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "fpir": self.fpir,
            "fnir": rounded(self.fnir),
            "threshold": rounded(self.threshold),
            "supported": self.supported,
            "needed_non_mated": needed_pairs(self.fpir) if self.fpir > 0 else None,
            "note": ""
            if self.supported
            else needs_note(self.fpir, "non-mated", self.non_mated).replace("pairs", "searches"),
        }


@dataclass
class IdentifyOutcome:
    """Every figure of the identify protocol."""

    k: int
    enrolled: list[str]
    kept_out: list[str]
    templates: int
    failures: list[str]  # enrolled identities whose template could not be built (kept out instead)
    threshold: float
    margin: float
    target_fpir: float
    searches: list[Search] = field(repr=False)
    fnir_at_fpir: list[FnirAtFpir] = field(default_factory=list)
    recommended_threshold: float | None = None
    threshold_supported: bool = False
    recommended_margin: float | None = None
    margin_supported: bool = False
    threshold_notes: list[str] = field(default_factory=list)
    margin_notes: list[str] = field(default_factory=list)
    floor: float = SAFE_FLOOR  # identify_threshold is never recommended below it
    raised_to_floor: bool = False
    allow_below_floor: bool = False
    fpir_ci_at_threshold: tuple[float, float] | None = None
    named_at_threshold: int = 0  # acquired non-mated searches at or above the recommended threshold
    wrong_at_margin: int = 0  # acquired mated searches still named wrongly with the recommended margin
    margin_at_threshold: float | None = None  # the threshold the margin was measured at

    @property
    def notes(self) -> list[str]:
        return [*self.threshold_notes, *self.margin_notes]

    @property
    def mated_acquired(self) -> list[Search]:
        return [s for s in self.mated if s.scored]

    @property
    def non_mated_acquired(self) -> list[Search]:
        return [s for s in self.non_mated if s.scored]

    @property
    def mated(self) -> list[Search]:
        return [s for s in self.searches if s.mate is not None]

    @property
    def non_mated(self) -> list[Search]:
        return [s for s in self.searches if s.mate is None]

    @property
    def rank1(self) -> float | None:
        mated = self.mated
        return fraction(sum(s.best == s.mate for s in mated), len(mated))

    def counts(self, threshold: float, margin: float) -> dict[str, dict[str, int]]:
        """Decisions at these settings: mated (right, wrong, unknown, ambiguous), non-mated."""
        mated = {"identified_right": 0, "identified_wrong": 0, "unknown": 0, "ambiguous": 0}
        for s in self.mated:
            decision = s.decision(threshold, margin)
            if decision == "identified":
                decision = "identified_right" if s.best == s.mate else "identified_wrong"
            mated[decision] += 1
        non_mated = {"identified": 0, "unknown": 0, "ambiguous": 0}
        for s in self.non_mated:
            non_mated[s.decision(threshold, margin)] += 1
        return {"mated": mated, "non_mated": non_mated}

    def fpir(self, threshold: float) -> float | None:
        return fraction(sum(s.scored and s.best_score >= threshold for s in self.non_mated), len(self.non_mated))

    def fnir(self, threshold: float) -> float | None:
        hits = sum(s.best == s.mate and s.best_score >= threshold for s in self.mated)
        return fraction(len(self.mated) - hits, len(self.mated))

    def ambiguous_rate(self, threshold: float, margin: float) -> float | None:
        return fraction(sum(s.decision(threshold, margin) == "ambiguous" for s in self.searches), len(self.searches))

    @property
    def threshold_line(self) -> bool:
        return self.recommended_threshold is not None and self.threshold_supported

    @property
    def margin_line(self) -> bool:
        return self.recommended_margin is not None and self.margin_supported

    def toml(self) -> str:
        """Paste-ready facer.toml lines: only what these searches support (may be empty)."""
        lines = []
        if self.threshold_line:
            line = f"identify_threshold = {self.recommended_threshold:.{DECIMALS}f}"
            if self.raised_to_floor:
                line += "  # raised to cosine_threshold_high (or the safe floor)"
            lines.append(line)
        if self.margin_line:
            lines.append(f"identify_margin = {self.recommended_margin:.{DECIMALS}f}")
        if self.threshold_line:
            lines.append(f"identify_calibrated_for = {max(self.templates, 1)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        current = self.counts(self.threshold, self.margin)
        return {
            "k": self.k,
            "enrolled_identities": self.enrolled,
            "kept_out_identities": self.kept_out,
            "templates": self.templates,
            "failed_templates": self.failures,
            "mated_searches": len(self.mated),
            "non_mated_searches": len(self.non_mated),
            "rank1_identification_rate": rounded(self.rank1),
            "fnir_at_fpir": [point.to_dict() for point in self.fnir_at_fpir],
            "current": {
                "identify_threshold": self.threshold,
                "identify_margin": self.margin,
                "fpir": rounded(self.fpir(self.threshold)),
                "fnir": rounded(self.fnir(self.threshold)),
                "ambiguous_rate": rounded(self.ambiguous_rate(self.threshold, self.margin)),
                **current,
            },
            "mated_not_acquired": len(self.mated) - len(self.mated_acquired),
            "non_mated_not_acquired": len(self.non_mated) - len(self.non_mated_acquired),
            "recommendation": {
                "target_fpir": self.target_fpir,
                "identify_threshold": self.recommended_threshold,
                "threshold_supported": self.threshold_supported,
                "fpir_at_threshold": rounded(
                    fraction(self.named_at_threshold, len(self.non_mated_acquired))
                    if self.recommended_threshold is not None
                    else None
                ),
                "fpir_ci95_at_threshold": interval_list(self.fpir_ci_at_threshold),
                "needed_non_mated": needed_pairs_finite(self.target_fpir),
                "floor": self.floor,
                "raised_to_floor": self.raised_to_floor,
                "identify_margin": self.recommended_margin,
                "margin_supported": self.margin_supported,
                "margin_measured_at": self.margin_at_threshold,
                "identify_calibrated_for": self.templates if self.threshold_line else None,
                "notes": self.notes,
                "toml": self.toml(),
            },
        }


def needed_pairs_finite(target: float) -> int | None:
    """Searches a target needs with no error (the 95 % bound), None when no number is enough."""
    needed = pairs_needed(target)
    return None if needed == float("inf") else int(needed)


def split_identities(dataset: "Dataset", k: int) -> tuple[list[str], list[str]]:
    """(enrolled, kept out): every third identity with more than k images is kept out, and every
    identity with k images or fewer."""
    eligible = [name for name, rows in dataset.by_identity.items() if len(rows) > k]
    enrolled = [name for i, name in enumerate(eligible) if i % KEEP_OUT_EVERY != KEEP_OUT_EVERY - 1]
    kept_out = [name for name in dataset.by_identity if name not in enrolled]
    return enrolled, kept_out


def identify_scores(
    dataset: "Dataset",
    frames: Sequence["FrameReport"],
    embeddings: np.ndarray,
    settings: "Settings",
    k: int,
    target_fpir: float,
    fpir_points: Sequence[float] = DEFAULT_FPIR_POINTS,
    allow_below_floor: bool = False,
) -> IdentifyOutcome:
    from facer_cli.service.inputs import Frames
    from facer_cli.service.rules import Purpose, template_for

    if dataset.labels is None:
        raise UsageError("the identify protocol needs identity folders (a CSV of pairs has no identities)")
    if k < 1:
        raise UsageError(f"images per enrolled template must be at least 1, got {k}")
    if not 0.0 <= target_fpir < 1.0:
        raise UsageError(f"target FPIR must be at least 0 and below 1, got {target_fpir:g}")
    enrolled, kept_out = split_identities(dataset, k)
    gallery: list[np.ndarray] = []
    people: list[str] = []
    failures: list[str] = []
    probe_rows: list[tuple[int, int | None]] = []
    for name in enrolled:
        rows = dataset.by_identity[name]
        chosen = Frames([frames[i] for i in rows[:k]], "identify protocol", explicit_images=True)
        try:
            vector = template_for(chosen, settings, Purpose.PROBE).vector.astype(np.float32)
        except TooFewFramesError:
            failures.append(name)
            continue
        gallery.append(vector)
        people.append(name)
        probe_rows += [(row, len(people) - 1) for row in rows[k:]]
    kept_out += failures
    for name in kept_out:
        probe_rows += [(row, None) for row in dataset.by_identity[name]]
    matrix = np.stack(gallery) if gallery else np.empty((0, embeddings.shape[1]), np.float32)
    searches = []
    for row, mate in probe_rows:
        probe = embeddings[row]
        if not np.isfinite(probe).all() or len(matrix) == 0:
            searches.append(Search(frames[row].source, mate, None, -np.inf, -np.inf))
            continue
        scores = matrix.astype(np.float64) @ probe.astype(np.float64)
        order = np.argsort(-scores, kind="stable")
        second = float(scores[order[1]]) if len(order) > 1 else -np.inf
        searches.append(Search(frames[row].source, mate, int(order[0]), float(scores[order[0]]), second))
    outcome = IdentifyOutcome(
        k,
        people,
        kept_out,
        len(gallery),
        failures,
        settings.identify_threshold,
        settings.identify_margin,
        target_fpir,
        searches,
        floor=settings.cosine_threshold_high if allow_below_floor else max(settings.cosine_threshold_high, SAFE_FLOOR),
        allow_below_floor=allow_below_floor,
    )
    outcome.fnir_at_fpir = [_fnir_at(outcome, f) for f in fpir_points]
    _recommend(outcome)
    return outcome


def _threshold_for_fpir(outcome: IdentifyOutcome, fpir: float) -> float | None:
    """The lowest 4-decimal threshold with at most ⌊fpir × N_non-mated⌋ non-mated searches at or above it."""
    non_mated = outcome.non_mated
    if not non_mated:
        return None
    scores = np.sort([s.best_score for s in non_mated if s.scored])[::-1]
    allowed = error_budget(fpir, len(non_mated))
    if allowed >= len(scores):
        return -1.0
    return round_up_above(float(scores[allowed]))


def _fnir_at(outcome: IdentifyOutcome, fpir: float) -> FnirAtFpir:
    n = len(outcome.non_mated)
    if n < needed_pairs(fpir) or not outcome.mated:
        return FnirAtFpir(fpir, None, None, n)
    threshold = _threshold_for_fpir(outcome, fpir)
    assert threshold is not None
    return FnirAtFpir(fpir, outcome.fnir(threshold), threshold, n)


def _recommend(outcome: IdentifyOutcome) -> None:
    """identify_threshold and identify_margin on the pairs protocol's support rule (see the module)."""
    target = outcome.target_fpir
    strangers = np.sort([s.best_score for s in outcome.non_mated_acquired])[::-1]
    if not outcome.non_mated:
        outcome.threshold_notes.append("no non-mated searches: cannot recommend identify_threshold")
    elif len(strangers) == 0:
        outcome.threshold_notes.append("no non-mated search was acquired: cannot recommend identify_threshold")
    else:
        allowed = most_errors_within(target, len(strangers)) if outcome.allow_below_floor else None
        if allowed is not None and allowed > 0:
            threshold = -1.0 if allowed >= len(strangers) else round_up_above(float(strangers[allowed]))
        else:  # above every stranger seen
            threshold = round_up_above(float(strangers[0]))
        if threshold < outcome.floor:
            outcome.threshold_notes.append(
                f"identify_threshold raised from {threshold:.{DECIMALS}f} to {outcome.floor:.{DECIMALS}f}: never "
                "below cosine_threshold_high" + ("" if outcome.allow_below_floor else " or the safe floor (0.3)")
            )
            threshold, outcome.raised_to_floor = outcome.floor, True
        named = int(np.sum(strangers >= threshold))
        ci = binomial_ci(named, len(strangers))
        outcome.recommended_threshold = threshold
        outcome.named_at_threshold = named
        outcome.fpir_ci_at_threshold = ci
        outcome.threshold_supported = ci[1] <= target
        if not outcome.threshold_supported:
            outcome.threshold_notes.append(
                support_note("non-mated", "FPIR", target, len(strangers), named, ci, "searches")
                + ": no identify_threshold to paste"
            )
    mated = outcome.mated_acquired
    if not mated:
        outcome.margin_notes.append("no mated search was acquired: cannot recommend identify_margin")
        return
    in_force = outcome.recommended_threshold if outcome.threshold_line else outcome.threshold
    assert in_force is not None
    outcome.margin_at_threshold = in_force
    wrong_gaps = np.sort(
        [s.best_score - s.second_score for s in mated if s.best != s.mate and s.best_score >= in_force]
    )[::-1]
    allowed = most_errors_within(target, len(mated))
    budget = 0 if allowed is None else allowed
    needed = 0.0 if budget >= len(wrong_gaps) else round_up_above(float(wrong_gaps[budget]))
    outcome.recommended_margin = max(needed, outcome.margin)
    outcome.wrong_at_margin = int(np.sum(wrong_gaps >= outcome.recommended_margin))
    ci = binomial_ci(outcome.wrong_at_margin, len(mated))
    outcome.margin_supported = ci[1] <= target
    if not outcome.margin_supported:
        outcome.margin_notes.append(
            support_note("mated", "wrong names", target, len(mated), outcome.wrong_at_margin, ci, "searches")
            + f": no identify_margin to paste (measured at identify_threshold {in_force:.{DECIMALS}f})"
        )
