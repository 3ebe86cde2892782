""".npy template vectors, parsed by facer itself so that no hostile file costs memory.

`np.load` trusts the header: a 128-byte file claiming shape (10**13,) raises
MemoryError, and its messages say little about what the file really is. Here
the header is read with `struct` and `ast.literal_eval` (size-capped), every
field is checked, and the data length must match the shape before an array
is made; the array is then a view of the bytes, never a copy of a claimed size.
"""

from __future__ import annotations

import ast
import struct
from pathlib import Path

import numpy as np

from facer_cli.errors import VectorError
from facer_cli.files.reading import read_regular_file

NPY_MAGIC = b"\x93NUMPY"
DEFAULT_MAX_DIMENSION = 65536
MAX_HEADER_BYTES = 4096  # numpy writes about 128; its own reader stops at 10,000
_PREAMBLE = {1: ("<H", 10), 2: ("<I", 12), 3: ("<I", 12)}  # version: (header length field, header start)
_NUMERIC_KINDS = {"f": (2, 4, 8), "i": (1, 2, 4, 8), "u": (1, 2, 4, 8)}
_BYTE_ORDERS = "<>|="


def max_npy_bytes(max_dimension: int = DEFAULT_MAX_DIMENSION) -> int:
    """The largest a valid .npy vector of `max_dimension` float64 values can be."""
    return _PREAMBLE[2][1] + MAX_HEADER_BYTES + max_dimension * 8


def load_npy_vector(path: Path | str, max_dimension: int = DEFAULT_MAX_DIMENSION) -> np.ndarray:
    """A `.npy` template file as a float32 unit vector; special and oversize files refused unread."""
    data = read_regular_file(path, max_npy_bytes(max_dimension), VectorError)
    return vector_from_npy_bytes(data, str(path), max_dimension)


def vector_from_npy_bytes(data: bytes, name: str, max_dimension: int = DEFAULT_MAX_DIMENSION) -> np.ndarray:
    """One 1-D numeric vector from `.npy` bytes, as a float32 unit vector, or a `VectorError`."""
    if not data.startswith(NPY_MAGIC):
        raise VectorError(f"{name}: {_what_it_is(data)}")
    header, data_start = _read_header(data, name)
    dtype, length = _check_header(header, name, max_dimension)
    stored = len(data) - data_start
    if stored != length * dtype.itemsize:
        raise VectorError(
            f"{name}: the header promises {length:,} values ({length * dtype.itemsize:,} bytes), "
            f"the file holds {stored:,} bytes of data"
        )
    return unit_vector(np.frombuffer(data, dtype=dtype, count=length, offset=data_start), name)


def unit_vector(array: np.ndarray, name: str) -> np.ndarray:
    """A finite, non-zero 1-D numeric vector as a float32 unit vector; `VectorError` otherwise.

    Overflow-safe: values are scaled by the largest magnitude before the norm,
    so 1e200 (whose square overflows) normalises like 1.0 would.
    """
    if array.dtype.kind not in "fiu":
        raise VectorError(f"{name}: holds {array.dtype} values, not numbers")
    if array.ndim != 1:
        raise VectorError(f"{name}: shape {array.shape} is not a 1-D vector")
    if array.shape[0] < 2:
        raise VectorError(f"{name}: a vector of {array.shape[0]} value(s) is not a template")
    vector = array.astype(np.float64)
    if not np.isfinite(vector).all():
        raise VectorError(f"{name}: contains NaN or infinite values")
    largest = float(np.max(np.abs(vector)))
    if largest == 0.0:
        raise VectorError(f"{name}: zero vector (norm 0)")
    scaled = vector / largest
    unit = (scaled / np.linalg.norm(scaled)).astype(np.float32)
    if not np.isfinite(unit).all() or not np.any(unit):  # cannot happen after scaling; never let NaN out
        raise VectorError(f"{name}: values cannot be normalised")
    return unit


def _what_it_is(data: bytes) -> str:
    """Name what a file that is not a .npy array really is."""
    if not data:
        return "empty file (0 bytes)"
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "an .npz archive of several arrays; give one vector as .npy"
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle, which facer never loads"
    if len(data) < len(NPY_MAGIC) and NPY_MAGIC.startswith(data):
        return "not a .npy array (the file is cut short)"
    if _is_text(data[:4096]):
        return "a text file, not a .npy array"
    return "not a .npy array (it does not start with the .npy signature)"


def _is_text(sample: bytes) -> bool:
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        # A cut in the middle of a multi-byte character at the sample's end is still text.
        try:
            text = sample[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(char.isprintable() or char in "\t\r\n\f" for char in text)


def _read_header(data: bytes, name: str) -> tuple[dict[str, object], int]:
    """The header dict and where the data starts."""
    if len(data) < 10:
        raise VectorError(f"{name}: not a .npy array (the file is cut short)")
    version = data[6]
    if version not in _PREAMBLE or data[7] != 0:
        raise VectorError(f"{name}: .npy format version {data[6]}.{data[7]}, which facer does not read")
    length_format, header_start = _PREAMBLE[version]
    if len(data) < header_start:
        raise VectorError(f"{name}: not a .npy array (the file is cut short)")
    (header_length,) = struct.unpack_from(length_format, data, 8)
    if header_length > MAX_HEADER_BYTES:
        raise VectorError(f"{name}: .npy header of {header_length:,} bytes, over facer's limit of {MAX_HEADER_BYTES:,}")
    data_start = header_start + header_length
    if len(data) < data_start:
        raise VectorError(f"{name}: not a .npy array (the file ends inside its header)")
    return _parse_header_text(data[header_start:data_start], version, name), data_start


def _parse_header_text(raw: bytes, version: int, name: str) -> dict[str, object]:
    try:
        text = raw.decode("utf-8" if version == 3 else "latin-1")
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, UnicodeDecodeError):
        raise VectorError(f"{name}: damaged .npy header (not a Python dict literal)") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise VectorError(f"{name}: damaged .npy header (it needs exactly descr, fortran_order and shape)")
    return header


def _check_header(header: dict[str, object], name: str, max_dimension: int) -> tuple[np.dtype, int]:
    """The dtype and the number of values, checked before anything is allocated."""
    dtype = _numeric_dtype(header["descr"], name)
    if not isinstance(header["fortran_order"], bool):
        raise VectorError(f"{name}: damaged .npy header (fortran_order is not True or False)")
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(side, int) and side >= 0 for side in shape):
        raise VectorError(f"{name}: damaged .npy header (shape {shape!r})")
    if len(shape) != 1:
        raise VectorError(f"{name}: shape {shape} is not a 1-D vector")
    if shape[0] > max_dimension:
        raise VectorError(f"{name}: {shape[0]:,} values, over the {max_dimension:,} a template may hold")
    return dtype, shape[0]


def _numeric_dtype(descr: object, name: str) -> np.dtype:
    if isinstance(descr, list) or (isinstance(descr, str) and "O" in descr):
        # Structured dtypes may hold object fields; either way no template is one.
        raise VectorError(f"{name}: holds Python objects (pickled), which facer never loads")
    if not isinstance(descr, str) or len(descr) < 3 or descr[0] not in _BYTE_ORDERS:
        raise VectorError(f"{name}: damaged .npy header (dtype {descr!r})")
    kind, size_text = descr[1], descr[2:]
    if not size_text.isdigit() or int(size_text) not in _NUMERIC_KINDS.get(kind, ()):
        raise VectorError(f"{name}: holds {descr} values, not plain numbers (facer reads floats and integers)")
    return np.dtype(descr)
