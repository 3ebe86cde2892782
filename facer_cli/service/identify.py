"""1:N identification: who, of everyone enrolled, is this — or nobody, or too close to call.

The probe is built as `verify` builds it (the template rule for probes, the same gates and
aggregation), searched exactly against every template of the current model
(`facer_cli.gallery`), and decided by the open-set rule:

- **identified** as the best person when their similarity is at or above `identify_threshold`
  **and** they beat the best *other* person by at least `identify_margin`;
- **unknown** when nobody reaches `identify_threshold`;
- **ambiguous** when someone does, but another person is within `identify_margin`.

From a camera, with `identify_frames` N > 1, a person is named only when at least N accepted
frames each identify them on their own (otherwise: ambiguous when a frame named someone else,
unknown when none did). Every attempt goes to the identify audit log: the probe's source, the
candidates' names and scores, the decision — never an embedding.

Why 1:N needs a stricter threshold than 1:1: a probe of someone who is not enrolled meets all
N templates, and is falsely identified when any one of them scores above the threshold, so the
false positive identification rate is FPIR ≈ N × FAR (for small FAR). The threshold that keeps
FAR at 1e-4 for `verify` lets about one stranger in a hundred be named in a gallery of 100.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Sequence

from facer_cli.gallery import Candidate

if TYPE_CHECKING:
    from facer_cli.service.inputs import Frames
    from facer_cli.templates.aggregate import Template

Decision = Literal["identified", "unknown", "ambiguous"]


@dataclass
class IdentifyResult:
    """The decision, the top candidates (one per person, best first) and how it was reached."""

    decision: Decision
    reason: str
    candidates: list[Candidate]  # the top ones asked for
    gap: float | None  # best person's lead over the next person (None with fewer than two)
    threshold: float
    margin: float
    gallery_size: int  # templates of the current model searched
    calibrated_for: int
    model: str
    attempt_id: int | None
    created: str
    probe: "Template"
    frames: "Frames"
    frames_needed: int = 1
    frames_agreeing: int | None = None  # camera with identify_frames > 1: accepted frames naming the person
    warnings: list[str] = field(default_factory=list)

    @property
    def user(self) -> str | None:
        """The person identified; None when unknown or ambiguous."""
        return self.candidates[0].name if self.decision == "identified" and self.candidates else None

    @property
    def similarity(self) -> float | None:
        return self.candidates[0].similarity if self.candidates else None

    def to_dict(self) -> dict[str, Any]:
        from facer_cli.service.results import template_details

        margin = self.gap
        return {
            "decision": self.decision,
            "user": self.user,
            "similarity": None if self.similarity is None else round(self.similarity, 6),
            "margin": None if margin is None else round(margin, 6),
            "reason": self.reason,
            "candidates": [c.to_dict() for c in self.candidates],
            "identify_threshold": self.threshold,
            "identify_margin": self.margin,
            "identify_frames": self.frames_needed,
            "frames_agreeing": self.frames_agreeing,
            "gallery_size": self.gallery_size,
            "calibrated_for": self.calibrated_for,
            "warnings": list(self.warnings),
            "model": self.model,
            "attempt_id": self.attempt_id,
            "created": self.created,
            "probe": template_details(self.probe, self.frames.frames),
            **self.frames.to_dict(),
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


def decide_with_frames(
    candidates: Sequence[Candidate],
    per_frame: Sequence[Sequence[Candidate]],
    threshold: float,
    margin: float,
    frames_needed: int,
) -> tuple[Decision, str, int | None]:
    """The open-set decision on the probe, then — when `frames_needed` > 1 — the agreement of the
    accepted frames, each decided on its own. Returns (decision, reason, frames agreeing)."""
    decision, reason = decide(candidates, threshold, margin)
    if frames_needed <= 1 or not per_frame:
        return decision, reason, None
    # Each frame's own verdict: the user id it identifies, or None.
    votes = [found[0].user_id if decide(found, threshold, margin)[0] == "identified" else None for found in per_frame]
    best = candidates[0] if candidates else None
    agreeing = sum(1 for vote in votes if best is not None and vote == best.user_id)
    if decision != "identified" or best is None:
        return decision, reason, agreeing
    if agreeing >= frames_needed:
        return decision, f"{reason}; {agreeing} of {len(per_frame)} accepted frames agree", agreeing
    others = {vote for vote in votes if vote is not None and vote != best.user_id}
    who = best.name if best.name is not None else f"user {best.user_id}"
    text = (
        f"only {agreeing} of {len(per_frame)} accepted frames identify {who} on their own; "
        f"identify_frames asks for {frames_needed}"
    )
    if others:
        return "ambiguous", f"{text}, and {len(others)} other person(s) were named by some frames", agreeing
    return "unknown", text, agreeing


def gallery_warning(size: int, calibrated_for: int, threshold: float) -> str | None:
    """Said when the gallery has outgrown what identify_threshold was calibrated for."""
    if size <= calibrated_for:
        return None
    return (
        f"the gallery holds {size} templates, more than the {calibrated_for} identify_threshold "
        f"({threshold:g}) was calibrated for (identify_calibrated_for): false identifications grow "
        "with the gallery (FPIR ≈ N × FAR); re-run `facer evaluate DATA --protocol identify`"
    )


def audit_candidates(candidates: Sequence[Candidate]) -> list[dict[str, Any]]:
    """What the audit log keeps of the candidates: names and scores, nothing else."""
    return [{"user": c.name, "similarity": round(c.similarity, 6)} for c in candidates]
