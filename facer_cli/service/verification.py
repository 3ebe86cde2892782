"""The verification decision on a probe: the best of a user's templates, its band, and the audit row.

`Facer.verify` builds the probe from frames and calls `verify_probe`; a caller that already
holds a probe vector (an integration, a benchmark) calls it directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from facer_cli.store import AttemptRecord, validate_user_name
from facer_cli.store.contract import StoreContract
from facer_cli.store.records import now
from facer_cli.templates.matching import Comparison, Thresholds, best_match

if TYPE_CHECKING:
    from facer_cli.liveness import LivenessResult


@dataclass
class Verification:
    """A probe against the best of a user's templates, and the audit record written."""

    user: str
    comparison: Comparison
    template_id: int
    templates_compared: int
    attempt_id: int | None
    created: str

    @property
    def similarity(self) -> float:
        return self.comparison.similarity

    @property
    def band(self) -> Any:
        return self.comparison.band


def verify_probe(
    store: StoreContract,
    user: str,
    probe: Any,
    *,
    model: str,
    thresholds: Thresholds,
    source: str,
    frames_seen: int | None = None,
    frames_used: int | None = None,
    liveness: "LivenessResult | None" = None,
) -> Verification:
    """Compare a probe vector with every template of the user made by `model`, keep the best, decide
    the band and record the attempt — read, decide and record in one transaction. `liveness`: the
    challenge the probe's frames answered, kept in the attempt's row."""
    from facer_cli.files.vectors import validate_vector
    from facer_cli.service.liveness_policy import audit_fields

    name = validate_user_name(user)
    probe = validate_vector(probe, "probe")
    with store.transaction(f"verify {name!r}"):
        templates = store.templates_of_model(name, model)
        match = best_match(
            probe,
            [t.vector for t in templates if t.vector is not None],
            [f"{name!r}'s template {t.id}" for t in templates],
        )
        comparison = Comparison.from_similarity(match.similarity, thresholds)
        best = templates[match.index]
        attempt_id = store.record_attempt(
            AttemptRecord(
                name,
                model,
                source,
                comparison.band.value,
                frames_seen,
                frames_used,
                match.similarity,
                thresholds.high,
                thresholds.low,
                best.id,
                **audit_fields(liveness),
            )
        )
    return Verification(name, comparison, best.id, match.compared, attempt_id, now())


__all__ = ["Verification", "verify_probe"]
