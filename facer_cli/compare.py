"""Templates side by side: cosine similarity, the match band, and `.npy` templates."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from facer_cli.errors import VectorError
from facer_cli.settings import Settings


class Band(str, Enum):
    MATCH = "match"
    UNCERTAIN = "uncertain"
    NO_MATCH = "no_match"


def band_for(similarity: float, settings: Settings) -> Band:
    """Match at or above the high threshold, no match below the low one, uncertain between."""
    if similarity >= settings.cosine_threshold_high:
        return Band.MATCH
    if similarity < settings.cosine_threshold_low:
        return Band.NO_MATCH
    return Band.UNCERTAIN


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise VectorError(f"templates have different dimensions ({a.shape[0]} and {b.shape[0]}): they come from different models")
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@dataclass
class Comparison:
    similarity: float
    band: Band
    threshold_high: float
    threshold_low: float

    @classmethod
    def of(cls, a: np.ndarray, b: np.ndarray, settings: Settings) -> "Comparison":
        similarity = cosine_similarity(a, b)
        return cls(similarity, band_for(similarity, settings), settings.cosine_threshold_high, settings.cosine_threshold_low)

    def to_dict(self) -> dict:
        return {
            "similarity": round(self.similarity, 6),
            "band": self.band.value,
            "threshold_high": self.threshold_high,
            "threshold_low": self.threshold_low,
        }


def validate_vector(array: np.ndarray, name: str) -> np.ndarray:
    """A finite, non-zero 1-D float vector, returned as a float32 unit vector."""
    if array.dtype.kind not in "fiu":
        raise VectorError(f"{name}: holds {array.dtype} values, not numbers")
    if array.ndim != 1:
        raise VectorError(f"{name}: shape {array.shape} is not a 1-D vector")
    if array.shape[0] < 2:
        raise VectorError(f"{name}: a vector of {array.shape[0]} value(s) is not a template")
    vector = array.astype(np.float64)
    if not np.isfinite(vector).all():
        raise VectorError(f"{name}: contains NaN or infinite values")
    norm = np.linalg.norm(vector)
    if norm == 0:
        raise VectorError(f"{name}: zero vector (norm 0)")
    return (vector / norm).astype(np.float32)


def load_vector(path: Path | str) -> np.ndarray:
    """Read a `.npy` template file safely: no pickles, one 1-D numeric vector."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise VectorError(f"{path}: no such file") from None
    except OSError as exc:
        raise VectorError(f"{path}: cannot read ({exc.strerror})") from None
    return vector_from_bytes(data, str(path))


def vector_from_bytes(data: bytes, name: str) -> np.ndarray:
    """A `.npy` template held in memory (a file's bytes, an upload), checked as `load_vector` does."""
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise VectorError(f"{name}: holds pickled Python objects, which facer never loads") from None
        raise VectorError(f"{name}: not a valid .npy file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise VectorError(f"{name}: not a valid .npy file ({exc})") from None
    if not isinstance(array, np.ndarray):
        raise VectorError(f"{name}: holds several arrays (.npz); give one vector as .npy")
    return validate_vector(array, name)


def save_vector(path: Path | str, vector: np.ndarray) -> None:
    np.save(Path(path), np.asarray(vector, dtype=np.float32).reshape(-1), allow_pickle=False)
