"""The protobuf wire format, the little of it facer needs to read and write ONNX models by hand.

Importing the `onnx` package (or protobuf's runtime) costs a cold command hundreds of
milliseconds; facer only reads the first node names of a model (`engine.onnx_models`) and
writes one one-node model (the gallery's scan, `gallery.scanner`). Standard library only:
this module is imported on those commands' start-up path.

A message is a sequence of fields, each a key (field number << 3 | wire type) then its value:
a varint (wire type 0), 8 or 4 fixed bytes (1, 5), or a length and that many bytes (2: bytes,
strings, embedded messages, packed repeated scalars).
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


# -- writing ------------------------------------------------------------------------
def encode_varint(value: int) -> bytes:
    """Base-128, least significant group first; a negative value as its 64-bit two's complement."""
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint_field(field: int, value: int) -> bytes:
    """An integer field (int32, int64, uint64, enum, bool)."""
    return encode_varint(field << 3 | VARINT) + encode_varint(value)


def bytes_field(field: int, value: bytes) -> bytes:
    """A length-delimited field: bytes, a UTF-8 string, or an embedded message already encoded."""
    return encode_varint(field << 3 | LENGTH_DELIMITED) + encode_varint(len(value)) + value


# -- reading ------------------------------------------------------------------------
def read_varint(data: memoryview, position: int) -> tuple[int, int]:
    """The varint at `position`, and the position after it."""
    value, shift = 0, 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def fields(data: memoryview) -> Iterator[tuple[int, memoryview | None]]:
    """(field number, bytes of a length-delimited field or None) for each field of one message, in order."""
    position = 0
    while position < len(data):
        key, position = read_varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            _, position = read_varint(data, position)
            yield number, None
        elif wire_type == FIXED64:
            position += 8
            yield number, None
        elif wire_type == FIXED32:
            position += 4
            yield number, None
        elif wire_type == LENGTH_DELIMITED:
            length, position = read_varint(data, position)
            yield number, data[position : position + length]
            position += length
        else:  # groups (3, 4) are deprecated and never written by ONNX exporters
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
