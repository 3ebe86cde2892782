"""Image files and bytes in, 8-bit BGR arrays out, or one clear `ImageError`.

Hostile input is the normal case here (uploads, folders of unknown files), so:

* The format is told from the first bytes, never the name, and only formats whose
  size facer can read from the header are passed to a decoder: JPEG, PNG, GIF,
  BMP/DIB, WebP, TIFF (one page), PNM (P1-P6) and Sun raster. Radiance HDR (OpenCV
  decodes it through a temp file in /tmp), JPEG 2000, AVIF/HEIF, OpenEXR, PFM and
  PAM are refused: their sizes live in nested boxes or codestreams that facer
  would have to trust blindly.
* Width and height come from small `struct` parsers of the header, checked against
  `max_pixels` and `MAX_IMAGE_SIDE` before a single pixel is decoded.
* A small file cannot claim a large image, because decoders allocate the whole image
  before they find the data missing: raw formats (BMP, PNM, Sun raster) must hold
  every row; compressed ones must have enough data for their codec's best possible
  ratio (Deflate 1032:1, LZW and PackBits bounded, Huffman JPEG one bit per block).
  Every PNG chunk must fit in the file (OpenCV 5 trusts chunk lengths).
* Decoder chatter (libjpeg's "Corrupt JPEG data", libpng warnings, OpenCV's
  `[ERROR]` lines) is written by C code straight to file descriptor 2. Decoding
  runs with fd 2 pointed at an in-memory file (`facer_cli.sources.decoder_chatter`, which
  lets decodes run side by side and still gives each its own words); what the
  decoder said is turned into facer's own error ("damaged JPEG data: ...")
  instead of reaching the terminal. The decode itself stays OpenCV's.
* EXIF orientation is read from the JPEG APP1 segment by hand; Pillow is not used.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facer_cli.errors import ImageError, ImageTooLargeError
from facer_cli.files.reading import DEFAULT_MAX_FILE_BYTES, read_regular_file
from facer_cli.sources.decoder_chatter import run_captured

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".dib", ".webp", ".tif", ".tiff", ".pbm", ".pgm", ".ppm", ".pnm"}
    | {".sr", ".ras"}
)
ACCEPTED_FORMATS = "JPEG, PNG, GIF, BMP, WebP, TIFF, PNM and Sun raster"

# OpenCV raises cv2.error above 1,048,576 per side (CV_IO_MAX_IMAGE_WIDTH/HEIGHT),
# JPEG stops at 65,500 and WebP at 16,383. 32,767 (signed 16-bit) is far beyond any
# face photo; a 118-byte BMP claiming 10×2,000,000 passes the pixel limit, not this.
MAX_IMAGE_SIDE = 32767
# A progressive JPEG has about 10 scans; thousands of tiny ones make libjpeg spin.
MAX_JPEG_SCANS = 100
_EXIF_ORIENTATION = 0x0112

__all__ = [
    "ACCEPTED_FORMATS",
    "DEFAULT_MAX_FILE_BYTES",
    "IMAGE_SUFFIXES",
    "MAX_IMAGE_SIDE",
    "ImageHeader",
    "decode_image",
    "is_image_path",
    "load_image",
    "read_header",
    "to_bgr8",
]


@dataclass(frozen=True)
class ImageHeader:
    """What the header says, before any decoding."""

    format: str
    width: int
    height: int
    orientation: int = 1  # EXIF orientation, JPEG only
    # Raw formats: the file length the header's pixel data needs (0: compressed, unknown).
    # OpenCV allocates the whole image before noticing that the data is missing.
    data_needed: int = 0
    # Compressed formats: why the data is too small to hold the claimed image ('' when it can).
    too_little_data: str = ""


class _Refused(Exception):
    """Raised by a header parser with the reason; `read_header` adds the file name."""


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def load_image(path: Path | str, max_pixels: int, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> np.ndarray:
    """A regular file of at most `max_bytes`, decoded as `decode_image` does."""
    data = read_regular_file(path, max_bytes, ImageError)
    return decode_image(data, str(path), max_pixels)


def decode_image(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    """Decode an encoded image held in memory (uploads never touch the disk)."""
    header = read_header(data, name)
    _check_size(header, name, max_pixels)
    if header.data_needed > len(data):
        raise ImageError(
            f"{name}: truncated image (the {header.format} header needs {header.data_needed:,} bytes, "
            f"the file has {len(data):,})"
        )
    if header.too_little_data:
        raise ImageError(f"{name}: damaged {header.format} data ({header.too_little_data})")
    if _looks_truncated(data):
        raise ImageError(f"{name}: truncated image (the file ends before the image data does)")
    image, chatter = _decode_quietly(data)
    damage = _damage_in(chatter)
    if damage:
        raise ImageError(f"{name}: damaged {header.format} data ({damage})")
    if image is None or image.size == 0:
        raise ImageError(f"{name}: damaged {header.format} data (the decoder could not read it)")
    if image.shape[0] * image.shape[1] > max_pixels:  # a decoder that disagrees with the header
        raise ImageTooLargeError(f"{name}: {image.shape[1]}×{image.shape[0]} pixels is over max_image_pixels")
    return _apply_orientation(to_bgr8(image), header.orientation)


def read_header(data: bytes, name: str) -> ImageHeader:
    """Format, size and orientation from the first bytes alone, or an `ImageError` saying why not."""
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    parser = _parser_for(data)
    if parser is None:
        refused = _refused_format(data)
        if refused:
            raise ImageError(f"{name}: not a supported image format: {refused} (facer reads {ACCEPTED_FORMATS})")
        raise ImageError(f"{name}: not an image facer can decode (facer reads {ACCEPTED_FORMATS})")
    format_name, parse = parser
    try:
        return parse(data)
    except _Refused as exc:
        raise ImageError(f"{name}: {exc}") from None
    except (struct.error, IndexError, ValueError):
        raise ImageError(f"{name}: damaged {format_name} header") from None


def _check_size(header: ImageHeader, name: str, max_pixels: int) -> None:
    width, height = header.width, header.height
    if width <= 0 or height <= 0:
        raise ImageError(f"{name}: damaged {header.format} header (size {width}×{height})")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {width}×{height} = {width * height:,} pixels is over the max_image_pixels limit of {max_pixels:,}"
        )
    if max(width, height) > MAX_IMAGE_SIDE:
        raise ImageTooLargeError(
            f"{name}: {width}×{height} has a side over {MAX_IMAGE_SIDE:,} pixels, the largest facer decodes"
        )


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any decoded array (gray, BGRA, 16-bit, float) as 8-bit 3-channel BGR."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(np.nan_to_num(image * 255.0), 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)  # type: ignore[call-overload]
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if channels == 4:
        # Transparent areas become white, as an image viewer shows them.
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        composite = image[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return composite.astype(np.uint8)
    return np.ascontiguousarray(image[:, :, :3])


# ---------------------------------------------------------------- format detection


def _parser_for(data: bytes) -> tuple[str, Callable[[bytes], ImageHeader]] | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG", _jpeg_header
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG", _png_header
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF", _gif_header
    if data.startswith(b"BM"):
        return "BMP", _bmp_header
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WebP", _webp_header
    if data[:4] in (b"II*\0", b"MM\0*"):
        return "TIFF", _tiff_header
    if len(data) > 2 and data[0:1] == b"P" and data[1:2] in b"123456" and data[2:3] in b" \t\r\n#":
        return "PNM", _pnm_header
    if data.startswith(b"\x59\xa6\x6a\x95"):
        return "Sun raster", _sun_header
    return None


_REFUSED_SIGNATURES = (
    (re.compile(rb"#\?(RADIANCE|RGBE)"), "Radiance HDR (OpenCV decodes it through a temp file)"),
    (re.compile(rb"\0\0\0\x0cjP  \r\n\x87\n"), "JPEG 2000"),
    (re.compile(rb"\xff\x4f\xff\x51"), "JPEG 2000 codestream"),
    (re.compile(rb"....ftyp(avi[fs]|hei[cfmsx]|mif1|msf1)", re.DOTALL), "AVIF/HEIF"),
    (re.compile(rb"\x76\x2f\x31\x01"), "OpenEXR"),
    (re.compile(rb"P[Ff][\r\n\t ]"), "PFM (floating-point map)"),
    (re.compile(rb"P7[\r\n\t ]"), "PAM"),
    (re.compile(rb"II\+\0|MM\0\+"), "BigTIFF"),
    (re.compile(rb"RIFF....WEBP", re.DOTALL), "WebP with an unknown chunk"),
)


def _refused_format(data: bytes) -> str | None:
    head = data[:32]
    for signature, description in _REFUSED_SIGNATURES:
        if signature.match(head):
            return description
    return None


def _read(fmt: str, data: bytes, offset: int) -> tuple[Any, ...]:
    """`struct.unpack_from` that reports a short file as a damaged header."""
    if offset < 0 or offset + struct.calcsize(fmt) > len(data):
        raise struct.error("header ends early")
    return struct.unpack_from(fmt, data, offset)


# ---------------------------------------------------------------- JPEG

_JPEG_FRAME_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3})  # Huffman: baseline, extended, progressive, lossless
# Arithmetic-coded and hierarchical frames: rare, not shown by browsers, and arithmetic
# coding can squeeze a huge blank image into a few bytes, so no size bound holds.
_JPEG_REFUSED_FRAME_MARKERS = frozenset({0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, payload start, payload length) of each segment up to the first scan."""
    pos = 2
    while True:
        if data[pos] != 0xFF:
            raise _Refused("damaged JPEG header (a marker is missing)")
        while data[pos] == 0xFF:  # fill bytes may pad a marker
            pos += 1
        marker = data[pos]
        pos += 1
        if marker in _JPEG_STANDALONE_MARKERS:
            continue
        if marker == 0xD9:
            raise _Refused("damaged JPEG header (the file ends before any image data)")
        (length,) = _read(">H", data, pos)
        if length < 2:
            raise _Refused("damaged JPEG header (a segment of negative length)")
        yield marker, pos + 2, length - 2
        if marker == 0xDA:
            return
        pos += length


def _jpeg_header(data: bytes) -> ImageHeader:
    size: tuple[int, int] | None = None
    orientation = 1
    for marker, start, length in _jpeg_segments(data):
        if marker in _JPEG_REFUSED_FRAME_MARKERS:
            raise _Refused("arithmetic-coded or hierarchical JPEG, which facer does not decode")
        if marker in _JPEG_FRAME_MARKERS and size is None:
            _, height, width, _ = _read(">BHHB", data, start)
            if height == 0:
                raise _Refused("JPEG whose height is given after the image data (DNL), which facer does not read")
            size = (width, height)
        elif marker == 0xE1 and data[start : start + 6] == b"Exif\0\0" and orientation == 1:
            orientation = _exif_orientation(data[start + 6 : start + length])
        elif marker == 0xDA:
            break
    if size is None:
        raise _Refused("damaged JPEG header (no frame header before the image data)")
    if data.count(b"\xff\xda") > MAX_JPEG_SCANS:
        raise _Refused(f"JPEG with more than {MAX_JPEG_SCANS} scans, which facer does not decode")
    return ImageHeader("JPEG", size[0], size[1], orientation, too_little_data=_jpeg_too_little_data(data, *size))


def _jpeg_too_little_data(data: bytes, width: int, height: int) -> str:
    """Huffman coding spends at least one bit on every 8×8 block (its DC value), so
    a small file cannot hold a large image; libjpeg would allocate it all first."""
    blocks = -(-width // 8) * -(-height // 8)
    if len(data) * 8 < blocks:
        return f"{len(data):,} bytes cannot hold the {blocks:,} blocks of a {width}×{height} JPEG"
    return ""


def _exif_orientation(tiff: bytes) -> int:
    """Tag 0x0112 of IFD0 in an EXIF block; 1 (as stored) when absent or unreadable."""
    try:
        order = {b"II": "<", b"MM": ">"}[tiff[:2]]
        (ifd,) = _read(order + "I", tiff, 4)
        (count,) = _read(order + "H", tiff, ifd)
        for index in range(min(count, 512)):
            tag, kind, _, value = _read(order + "HHIH", tiff, ifd + 2 + 12 * index)
            if tag == _EXIF_ORIENTATION and kind == 3:
                return value if 1 <= value <= 8 else 1
    except (KeyError, struct.error):
        pass  # a broken EXIF block must not lose the image
    return 1


# ---------------------------------------------------------------- PNG

# Deflate codes at best 258 bytes in 2 bits: no stream expands more than 1032 times.
_DEFLATE_MAX_RATIO = 1032
_PNG_MAX_CHUNKS = 100_000  # bounds the walk; real files have at most a few thousand IDAT chunks
_PNG_BIT_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


def _png_header(data: bytes) -> ImageHeader:
    length, chunk, width, height, depth, colour = _read(">I4sIIBB", data, 8)
    if chunk != b"IHDR" or length != 13:
        raise _Refused("damaged PNG header (IHDR is not the first chunk)")
    if depth not in _PNG_BIT_DEPTHS.get(colour, ()):
        raise _Refused(f"damaged PNG header (colour type {colour} with bit depth {depth})")
    compressed = _png_idat_bytes(data)
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    raw = height * (1 + (width * channels * depth + 7) // 8)
    too_little = ""
    if raw > _DEFLATE_MAX_RATIO * compressed + 65536:
        too_little = f"{compressed:,} bytes of compressed pixels cannot hold a {width}×{height} image"
    return ImageHeader("PNG", width, height, too_little_data=too_little)


def _png_idat_bytes(data: bytes) -> int:
    """The length of all IDAT chunks, after checking every chunk fits in the file.

    OpenCV 5 trusts a chunk's length: a 25 KB PNG whose PLTE claimed 2 GB cost
    2 GB of memory and 5 s before this check.
    """
    idat = 0
    pos = 8
    for _ in range(_PNG_MAX_CHUNKS):
        if pos + 12 > len(data):
            raise _Refused("truncated image (the file ends before the PNG's IEND chunk)")
        length, kind = struct.unpack_from(">I4s", data, pos)
        if pos + 12 + length > len(data):
            raise _Refused(
                f"damaged PNG data (chunk {kind.decode('latin-1')!r} claims {length:,} bytes, "
                f"the file has {len(data) - pos - 12:,} left)"
            )
        if kind == b"IEND":
            return idat
        if kind == b"IDAT":
            idat += length
        pos += 12 + length
    raise _Refused(f"PNG of more than {_PNG_MAX_CHUNKS:,} chunks, which facer does not decode")


# ---------------------------------------------------------------- GIF


def _gif_header(data: bytes) -> ImageHeader:
    screen_width, screen_height, flags = _read("<HHB", data, 6)
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while True:
        block = data[pos]
        if block == 0x2C:  # image descriptor: the first frame may reach past the screen
            left, top, width, height, frame_flags = _read("<HHHHB", data, pos + 1)
            size = (max(screen_width, left + width), max(screen_height, top + height))
            table = 3 << ((frame_flags & 7) + 1) if frame_flags & 0x80 else 0
            too_little = _gif_too_little_data(data, pos + 10 + table, width * height)
            return ImageHeader("GIF", *size, too_little_data=too_little)
        if block != 0x21:
            raise _Refused("damaged GIF header (no image before the end of the file)")
        pos = _skip_gif_sub_blocks(data, pos + 2)


def _gif_too_little_data(data: bytes, pos: int, pixels: int) -> str:
    """LZW codes take at least min_code_size + 1 bits; code k of a table spells at most
    k + 1 pixels, and no code more than 4096. So n codes give at most `_lzw_max_output(n)`."""
    min_code_size = data[pos]
    compressed = 0
    pos += 1
    while pos < len(data) and data[pos]:
        compressed += data[pos]
        pos += data[pos] + 1
    codes = compressed * 8 // (min(min_code_size, 11) + 1)
    if _lzw_max_output(codes) < pixels:
        return f"{compressed:,} bytes of compressed pixels cannot hold a frame of {pixels:,} pixels"
    return ""


def _lzw_max_output(codes: int) -> int:
    if codes <= 4096:
        return codes * (codes + 3) // 2
    return 4096 * 4099 // 2 + (codes - 4096) * 4096


def _skip_gif_sub_blocks(data: bytes, pos: int) -> int:
    while data[pos]:
        pos += data[pos] + 1
    return pos + 1


# ---------------------------------------------------------------- BMP / DIB

_BMP_BIT_COUNTS = frozenset({1, 4, 8, 16, 24, 32})
_BMP_COMPRESSIONS = {0: "none", 1: "RLE8", 2: "RLE4", 3: "bit fields"}


def _bmp_header(data: bytes) -> ImageHeader:
    (pixel_offset,) = _read("<I", data, 10)
    (info_size,) = _read("<I", data, 14)
    if info_size == 12:  # OS/2 BITMAPCOREHEADER: unsigned 16-bit sides
        width, height, _, bit_count = _read("<HHHH", data, 18)
        compression = 0
    elif 40 <= info_size <= 124:
        width, height, _, bit_count, compression = _read("<iiHHI", data, 18)
    else:
        raise _Refused(f"damaged BMP header (info header of {info_size} bytes)")
    if bit_count not in _BMP_BIT_COUNTS:
        raise _Refused(f"damaged BMP header ({bit_count} bits per pixel)")
    if compression not in _BMP_COMPRESSIONS:
        raise _Refused(f"BMP with compression {compression} (JPEG/PNG inside BMP), which facer does not decode")
    height = abs(height)  # negative height: rows stored top-down
    needed = 0
    if width > 0 and compression in (0, 3):
        needed = pixel_offset + (width * bit_count + 31) // 32 * 4 * height
    return ImageHeader("BMP", width, height, data_needed=needed)


# ---------------------------------------------------------------- WebP


def _webp_header(data: bytes) -> ImageHeader:
    chunk = data[12:16]
    payload = 20
    if chunk == b"VP8 ":
        if data[payload + 3 : payload + 6] != b"\x9d\x01\x2a":
            raise _Refused("damaged WebP header (no VP8 start code)")
        width, height = _read("<HH", data, payload + 6)
        return ImageHeader("WebP", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":
        signature, bits = _read("<BI", data, payload)
        if signature != 0x2F:
            raise _Refused("damaged WebP header (no VP8L signature)")
        return ImageHeader("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        width_bytes, height_bytes = data[payload + 4 : payload + 7], data[payload + 7 : payload + 10]
        if len(height_bytes) < 3:
            raise struct.error("header ends early")
        return ImageHeader(
            "WebP", int.from_bytes(width_bytes, "little") + 1, int.from_bytes(height_bytes, "little") + 1
        )
    raise _Refused(f"damaged WebP header (unknown first chunk {chunk!r})")


# ---------------------------------------------------------------- TIFF

_TIFF_TAGS = {
    256: "width",
    257: "height",
    258: "bits",
    259: "compression",
    277: "samples",
    284: "planar",
    322: "tile_width",
    323: "tile_height",
    339: "sample_format",
}
_TIFF_COMPRESSIONS = {1: "none", 5: "LZW", 7: "JPEG", 8: "Deflate", 32946: "Deflate", 32773: "PackBits"}
# How many times each compression can expand its data at most: PackBits 2 bytes to 128,
# Deflate 1032, LZW a 4096-byte string per 9-bit code, JPEG a 64-pixel block per bit.
_TIFF_MAX_EXPANSION = {1: 1, 32773: 64, 8: 1032, 32946: 1032, 5: 4096 * 8 // 9, 7: 64 * 4 * 2 * 8}
_TIFF_BITS = frozenset({1, 2, 4, 8, 16, 32})
_TIFF_MAX_ENTRIES = 1024


def _tiff_header(data: bytes) -> ImageHeader:
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = _read(order + "I", data, 4)
    (count,) = _read(order + "H", data, ifd)
    if count > _TIFF_MAX_ENTRIES:
        raise _Refused(f"damaged TIFF header ({count} tags in the first directory)")
    fields = dict(_tiff_fields(data, order, ifd, count))
    (next_ifd,) = _read(order + "I", data, ifd + 2 + 12 * count)
    if next_ifd:
        raise _Refused("multi-page TIFF; facer reads one image per file (save the page you want on its own)")
    if "width" not in fields or "height" not in fields:
        raise _Refused("damaged TIFF header (no image width or height)")
    _check_tiff_layout(fields)
    width, height = fields["width"], fields["height"]
    return ImageHeader("TIFF", width, height, too_little_data=_tiff_too_little_data(fields, len(data)))


def _tiff_too_little_data(fields: dict[str, int], file_bytes: int) -> str:
    """Each compression expands its data a bounded number of times; libtiff cannot find more pixels."""
    compressed = fields.get("byte_counts", file_bytes)  # without byte counts, libtiff reads to the end
    raw = fields["height"] * -(-fields["width"] * fields.get("samples", 1) * fields.get("bits", 1) // 8)
    if raw > _TIFF_MAX_EXPANSION[fields.get("compression", 1)] * compressed + 65536:
        return f"{compressed:,} bytes of strips cannot hold a {fields['width']}×{fields['height']} image"
    return ""


def _tiff_fields(data: bytes, order: str, ifd: int, count: int) -> Iterator[tuple[str, int]]:
    """The first value of each tag facer needs (for BitsPerSample: the largest)."""
    type_formats = {1: "B", 3: "H", 4: "I"}
    for index in range(count):
        tag, kind, values, inline = _read(order + "HHI4s", data, ifd + 2 + 12 * index)
        if tag in (279, 325) and kind in (3, 4):  # StripByteCounts, TileByteCounts: their sum
            yield "byte_counts", _tiff_sum(data, order, type_formats[kind], values, inline)
            continue
        if tag not in _TIFF_TAGS:
            continue
        if kind not in type_formats or values == 0:
            raise _Refused(f"damaged TIFF header (tag {tag} of type {kind})")
        value_format = type_formats[kind]
        size = struct.calcsize(value_format)
        wanted = min(values, 4)
        if values * size <= 4:
            numbers = struct.unpack_from(order + value_format * wanted, inline)
        else:
            (offset,) = struct.unpack_from(order + "I", inline)
            numbers = _read(order + value_format * wanted, data, offset)
        yield _TIFF_TAGS[tag], max(numbers) if tag == 258 else numbers[0]


def _tiff_sum(data: bytes, order: str, value_format: str, values: int, inline: bytes) -> int:
    size = struct.calcsize(value_format)
    if values * size <= 4:
        return sum(struct.unpack_from(order + value_format * values, inline))
    (offset,) = struct.unpack_from(order + "I", inline)
    if offset + values * size > len(data):
        raise struct.error("byte counts beyond the end of the file")
    return int(np.frombuffer(data, np.dtype(order + value_format), values, offset).sum(dtype=np.uint64))


def _check_tiff_layout(fields: dict[str, int]) -> None:
    """Refuse layouts facer cannot bound from the header: OpenCV then trusts libtiff's own sizes."""
    compression = fields.get("compression", 1)
    if compression not in _TIFF_COMPRESSIONS:
        raise _Refused(f"TIFF with compression {compression}, which facer does not decode")
    if not 1 <= fields.get("samples", 1) <= 4:
        raise _Refused(f"TIFF with {fields['samples']} samples per pixel, which facer does not decode")
    if fields.get("bits", 1) not in _TIFF_BITS:
        raise _Refused(f"TIFF with {fields['bits']} bits per sample, which facer does not decode")
    if fields.get("planar", 1) != 1:
        raise _Refused("TIFF with separate colour planes, which facer does not decode")
    for side, tile_side in (("width", "tile_width"), ("height", "tile_height")):
        if tile_side in fields and not 0 < fields[tile_side] <= max(16, -(-fields[side] // 16) * 16):
            raise _Refused(f"damaged TIFF header ({tile_side.replace('_', ' ')} {fields[tile_side]})")


# ---------------------------------------------------------------- PNM (P1-P6)

_PNM_TOKEN = re.compile(rb"(?:\s|#[^\r\n]*[\r\n])*(\d{1,10})")


def _pnm_header(data: bytes) -> ImageHeader:
    kind = data[1] - ord("0")
    numbers: list[int] = []
    pos = 2
    for _ in range(2 if kind in (1, 4) else 3):
        match = _PNM_TOKEN.match(data, pos, pos + 4096)
        if not match:
            raise _Refused("damaged PNM header")
        numbers.append(int(match.group(1)))
        pos = match.end()
    width, height = numbers[0], numbers[1]
    max_value = numbers[2] if len(numbers) == 3 else 1
    if not 1 <= max_value <= 65535:
        raise _Refused(f"damaged PNM header (maximum value {max_value})")
    needed = pos + 1 + _pnm_raster_bytes(kind, width, height, max_value)
    return ImageHeader("PNM", width, height, data_needed=needed)


def _pnm_raster_bytes(kind: int, width: int, height: int, max_value: int) -> int:
    """The fewest bytes a raster of that size can take."""
    samples = width * height * (3 if kind in (3, 6) else 1)
    if kind == 4:
        needed = (width + 7) // 8 * height
    elif kind in (5, 6):
        needed = samples * (2 if max_value > 255 else 1)
    elif kind == 1:
        needed = samples  # '0'/'1' need no separator in plain PBM
    else:
        needed = samples * 2 - 1  # each plain sample is a digit and a separator at least
    return needed


# ---------------------------------------------------------------- Sun raster


def _sun_header(data: bytes) -> ImageHeader:
    width, height, depth, _, kind, _, map_length = _read(">IIIIIII", data, 4)
    if depth not in (1, 8, 24, 32):
        raise _Refused(f"damaged Sun raster header ({depth} bits per pixel)")
    if kind not in (0, 1, 2, 3):
        raise _Refused(f"Sun raster of type {kind}, which facer does not decode")
    needed = 0
    if kind != 2:  # every type but 2 (run-length) stores raw rows padded to 16 bits
        needed = 32 + map_length + (width * depth + 15) // 16 * 2 * height
    return ImageHeader("Sun raster", width, height, data_needed=needed)


# ---------------------------------------------------------------- decoding


def _looks_truncated(data: bytes) -> bool:
    """A JPEG without its end marker or a PNG without IEND was cut short.

    OpenCV decodes such files with a grey or black remainder and only a
    warning, which would give a wrong embedding silently.
    """
    if data[:3] == b"\xff\xd8\xff":
        return b"\xff\xd9" not in data[-4096:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-64:]
    return False


def _decode_quietly(data: bytes) -> tuple[np.ndarray | None, str]:
    """OpenCV's decode with whatever its C libraries print to fd 2 captured, not shown
    (`facer_cli.sources.decoder_chatter`: decodes still run side by side)."""
    flags = cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION

    def decode() -> tuple[np.ndarray | None, str | None]:
        try:
            return cv2.imdecode(np.frombuffer(data, np.uint8), flags), None
        except cv2.error as exc:  # a decoder's assertion: report it as damage
            return None, f"[ERROR] {exc}"

    (image, failure), chatter = run_captured(decode)
    return image, "\n".join(chatter + ([failure] if failure else []))


_DAMAGE = re.compile(
    r"Corrupt JPEG data[^\n]*|Premature end of JPEG file|Inconsistent progression sequence[^\n]*|"
    r"libpng error: [^\n]*|libpng warning: [^\n]*(CRC|IDAT|image data|Extra compressed data)[^\n]*|"
    r"\[ ?ERROR[^\n]*"
)


def _damage_in(chatter: str) -> str:
    """The decoder's words for damage to the pixel data, shortened; '' when the data was whole.

    Any libjpeg warning counts: libjpeg prints only its first one, so a harmless
    first warning could hide a premature end of data behind it. libpng warnings
    about ancillary chunks (a known-bad sRGB profile) are harmless and ignored.
    """
    match = _DAMAGE.search(chatter)
    if not match:
        return ""
    text = match.group(0)
    for noise in _NOISE:
        text = noise.sub("", text)
    return text.strip()[:160]


# Source locations and prefixes that mean nothing to a person reading the error.
_NOISE = (
    re.compile(r"^(libpng (error|warning): |\[ ?ERROR[^\]]*\]\s*)"),
    re.compile(r"global \S+:\d+ "),
    re.compile(r"imdecode_ imdecode_\(''\): "),
    re.compile(r"OpenCV\([^)]*\) \S+:\d+: error: \(-?\d+:[^)]*\) "),
    re.compile(r"TIFF_(Error|Warning) "),
    re.compile(r" in function '[^']*'"),
)


def _apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    if orientation == 2:
        return cv2.flip(image, 1)
    if orientation == 3:
        return cv2.rotate(image, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(image, 0)
    if orientation == 5:
        return cv2.flip(cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE), 1)
    if orientation == 6:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.flip(cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE), 1)
    if orientation == 8:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return image
