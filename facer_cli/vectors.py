"""`.npy` templates: read safely (never unpickled), validate, write.

One reader serves files on disk and uploads held in memory.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from facer_cli.errors import VectorError

NPY_MAGIC = b"\x93NUMPY"


def looks_like_npy(name: str, data: bytes) -> bool:
    return name.lower().endswith(".npy") or data.startswith(NPY_MAGIC)


def validate_vector(array: np.ndarray, name: str) -> np.ndarray:
    """A finite, non-zero 1-D numeric vector, returned as a float32 unit vector."""
    if array.dtype.kind not in "fiu":
        raise VectorError(f"{name}: holds {array.dtype} values, not numbers")
    if array.ndim != 1:
        raise VectorError(f"{name}: shape {array.shape} is not a 1-D vector")
    if array.shape[0] < 2:
        raise VectorError(f"{name}: a vector of {array.shape[0]} value(s) is not a template")
    vector = array.astype(np.float64)
    if not np.isfinite(vector).all():
        raise VectorError(f"{name}: contains NaN or infinite values")
    # Scaled by its largest value first, so the norm of huge values cannot overflow.
    largest = float(np.abs(vector).max())
    if largest == 0:
        raise VectorError(f"{name}: zero vector (norm 0)")
    vector = vector / largest
    return (vector / np.linalg.norm(vector)).astype(np.float32)


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


def vector_bytes(vector: np.ndarray) -> bytes:
    """A template as the bytes of a `.npy` file (1-D float32)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(vector, dtype=np.float32).reshape(-1), allow_pickle=False)
    return buffer.getvalue()


def save_vector(path: Path | str, vector: np.ndarray) -> None:
    np.save(Path(path), np.asarray(vector, dtype=np.float32).reshape(-1), allow_pickle=False)
