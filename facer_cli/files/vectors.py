"""`.npy` templates: read safely (never unpickled, header checked before any allocation), validate, write.

One reader (`facer_cli.files.npy`) serves files on disk and uploads held in memory.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from facer_cli.files.npy import NPY_MAGIC, unit_vector
from facer_cli.files.npy import load_npy_vector as load_vector  # a .npy file: regular file, never unpickled
from facer_cli.files.npy import vector_from_npy_bytes as vector_from_bytes  # .npy bytes (an upload), checked alike

__all__ = [
    "NPY_MAGIC",
    "load_vector",
    "looks_like_npy",
    "save_vector",
    "validate_vector",
    "vector_bytes",
    "vector_from_bytes",
]


def looks_like_npy(name: str, data: bytes) -> bool:
    return name.lower().endswith(".npy") or data.startswith(NPY_MAGIC)


def validate_vector(array: np.ndarray, name: str) -> np.ndarray:
    """A finite, non-zero 1-D numeric vector, returned as a float32 unit vector (overflow-safe)."""
    return unit_vector(np.asarray(array), name)


def vector_bytes(vector: np.ndarray) -> bytes:
    """A template as the bytes of a `.npy` file (1-D float32)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(vector, dtype=np.float32).reshape(-1), allow_pickle=False)
    return buffer.getvalue()


def save_vector(path: Path | str, vector: np.ndarray) -> None:
    """Write a template as `.npy` (0600, atomically; see `facer_cli.files.writing`)."""
    from facer_cli.files.writing import write_private

    write_private(path, vector_bytes(vector), overwrite=True)
