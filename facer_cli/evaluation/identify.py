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
- **Recommended identify_threshold** for a target FPIR: the lowest threshold (rounded up to 4
  decimals) with at most ⌊target × N_non-mated⌋ non-mated searches at or above it; marked "not
  measured" with fewer than ⌈1/target⌉ non-mated searches. **Recommended identify_margin**: the
  smallest margin (4 decimals) that makes every mated search named as the wrong person at that
  threshold ambiguous instead (at most ⌊target × N_mated⌋ left), never below the current one;
  marked "not measured" with fewer than ⌈1/target⌉ mated searches. **identify_calibrated_for**:
  the number of templates in this gallery — FPIR grows about linearly with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from facer_cli.errors import TooFewFramesError, UsageError
from facer_cli.evaluation.curves import DECIMALS, round_up_above
from facer_cli.evaluation.intervals import error_budget, fraction, needed_pairs, needs_note, rounded

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
    notes: list[str] = field(default_factory=list)

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

    def toml(self) -> str:
        lines = []
        if self.recommended_threshold is not None:
            line = f"identify_threshold = {self.recommended_threshold:.{DECIMALS}f}"
            if not self.threshold_supported:
                line += f"  # not measured: FPIR {self.target_fpir:g} needs ≥ {needed_pairs(self.target_fpir)} non-mated searches"
            lines.append(line)
        if self.recommended_margin is not None:
            line = f"identify_margin = {self.recommended_margin:.{DECIMALS}f}"
            if not self.margin_supported:
                line += f"  # not measured: needs ≥ {needed_pairs(self.target_fpir)} mated searches"
            lines.append(line)
        if self.recommended_threshold is not None and self.threshold_supported:
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
            "recommendation": {
                "target_fpir": self.target_fpir,
                "identify_threshold": self.recommended_threshold,
                "threshold_supported": self.threshold_supported,
                "identify_margin": self.recommended_margin,
                "margin_supported": self.margin_supported,
                "identify_calibrated_for": self.templates if self.threshold_supported else None,
                "notes": list(self.notes),
                "toml": self.toml(),
            },
        }


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
    target = outcome.target_fpir
    threshold = _threshold_for_fpir(outcome, target)
    if threshold is None:
        outcome.notes.append("no non-mated searches: cannot recommend identify_threshold")
        return
    outcome.recommended_threshold = threshold
    outcome.threshold_supported = len(outcome.non_mated) >= needed_pairs(target)
    if not outcome.threshold_supported:
        outcome.notes.append(
            f"FPIR {target:g} needs ≥ {needed_pairs(target)} non-mated searches, have {len(outcome.non_mated)}: "
            "identify_threshold is only 'above every stranger allowed', not a measured FPIR"
        )
    mated = outcome.mated
    if not mated:
        outcome.notes.append("no mated searches: cannot recommend identify_margin")
        return
    wrong_gaps = np.sort(
        [s.best_score - s.second_score for s in mated if s.scored and s.best != s.mate and s.best_score >= threshold]
    )[::-1]
    allowed = error_budget(target, len(mated))
    needed = 0.0 if allowed >= len(wrong_gaps) else round_up_above(float(wrong_gaps[allowed]))
    outcome.recommended_margin = max(needed, outcome.margin)
    outcome.margin_supported = len(mated) >= needed_pairs(target)
    if not outcome.margin_supported:
        outcome.notes.append(
            f"identify_margin needs ≥ {needed_pairs(target)} mated searches, have {len(mated)}: kept at "
            f"{outcome.recommended_margin:.{DECIMALS}f}, not measured"
        )
