"""Templates side by side: cosine similarity, the match band, and the best of a user's templates.

The decision lives here, not in the store: the store keeps vectors, this module says
what a similarity means under the thresholds a caller passes in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Sequence

import numpy as np

from facer_cli.errors import ModelMismatchError, VectorError

if TYPE_CHECKING:
    from facer_cli.settings import Settings


class Band(str, Enum):
    MATCH = "match"
    UNCERTAIN = "uncertain"
    NO_MATCH = "no_match"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


@dataclass(frozen=True)
class Thresholds:
    """Match at or above `high`, no match below `low`, uncertain between."""

    high: float = 0.40
    low: float = 0.30

    @classmethod
    def of(cls, settings: "Settings") -> "Thresholds":
        return cls(settings.cosine_threshold_high, settings.cosine_threshold_low)

    def band(self, similarity: float) -> Band:
        if similarity >= self.high:
            return Band.MATCH
        if similarity < self.low:
            return Band.NO_MATCH
        return Band.UNCERTAIN


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise VectorError(
            f"templates have different dimensions ({a.shape[0]} and {b.shape[0]}): they come from different models"
        )
    # float64 and pre-scaled: vectors are validated unit vectors, but a caller's may not be.
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    a64 /= np.abs(a64).max() or 1.0
    b64 /= np.abs(b64).max() or 1.0
    return float(np.dot(a64, b64) / (np.linalg.norm(a64) * np.linalg.norm(b64)))


@dataclass
class Comparison:
    similarity: float
    band: Band
    threshold_high: float
    threshold_low: float

    @classmethod
    def of(cls, a: np.ndarray, b: np.ndarray, thresholds: Thresholds) -> "Comparison":
        similarity = cosine_similarity(a, b)
        return cls.from_similarity(similarity, thresholds)

    @classmethod
    def from_similarity(cls, similarity: float, thresholds: Thresholds) -> "Comparison":
        return cls(similarity, thresholds.band(similarity), thresholds.high, thresholds.low)

    def to_dict(self) -> dict:
        return {
            "similarity": round(self.similarity, 6),
            "band": self.band.value,
            "threshold_high": self.threshold_high,
            "threshold_low": self.threshold_low,
        }


@dataclass
class BestMatch:
    """The best of several templates against one probe."""

    index: int
    similarity: float
    compared: int


def best_match(probe: np.ndarray, templates: Sequence[np.ndarray], names: Sequence[str] = ()) -> BestMatch:
    """The template most similar to the probe (templates and probe are unit vectors of one model)."""
    if not templates:
        raise ValueError("no templates to compare with")
    for position, vector in enumerate(templates):
        if vector.shape != probe.shape:
            which = names[position] if position < len(names) else f"template {position}"
            raise ModelMismatchError(
                f"{which} has {vector.shape[0]} values, the probe {probe.shape[0]}: they come from different models"
            )
    matrix = np.stack(templates).astype(np.float64)
    similarities = matrix @ probe.astype(np.float64)
    best = int(np.argmax(similarities))
    return BestMatch(best, float(similarities[best]), len(templates))
