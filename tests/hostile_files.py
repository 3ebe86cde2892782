"""Hostile files for tests: size-lying headers, real bombs, damaged and mutated images.

Every builder is deterministic. `claiming(fmt, width, height)` encodes a real
16×16 image and then writes the claimed size into its header, so the same
builder at 16×16 gives a file that decodes (the tests check that) and at a
huge size gives a tiny file that lies.
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zlib
from collections.abc import Callable, Iterator

import cv2
import numpy as np
from PIL import Image

SMALL = 16
CLAIM_FORMATS = ("jpeg", "png", "gif", "bmp", "webp-vp8", "webp-vp8l", "webp-vp8x", "tiff", "pnm", "sun")


def small_image(size: int = SMALL, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def claiming(fmt: str, width: int, height: int) -> bytes:
    """A real small image of format `fmt` whose header says width×height."""
    return _CLAIMERS[fmt](small_image(), width, height)


def _jpeg(image: np.ndarray, width: int, height: int) -> bytes:
    data = bytearray(cv2.imencode(".jpg", image)[1].tobytes())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(image: np.ndarray, width: int, height: int) -> bytes:
    data = bytearray(cv2.imencode(".png", image)[1].tobytes())
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _gif(image: np.ndarray, width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="GIF")
    data = bytearray(buffer.getvalue())
    struct.pack_into("<HH", data, 6, width, height)
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while data[pos] == 0x21:  # skip extensions to the image descriptor
        pos += 2
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    struct.pack_into("<HH", data, pos + 5, width, height)
    return bytes(data)


def bmp(width: int, height: int, pixels: bytes, bit_count: int = 24) -> bytes:
    """A BMP with a 40-byte info header; negative height means rows top-down."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bit_count, 0, len(pixels), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + len(pixels), 0, 0, 54) + info + pixels


def _bmp(image: np.ndarray, width: int, height: int) -> bytes:
    return bmp(width, -height, image.tobytes())  # 16×3 bytes per row: already 4-aligned


def _webp_vp8(image: np.ndarray, width: int, height: int) -> bytes:
    data = bytearray(cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, 90])[1].tobytes())
    assert data[12:16] == b"VP8 "
    struct.pack_into("<HH", data, 26, width & 0x3FFF, height & 0x3FFF)
    return bytes(data)


def _webp_vp8l(image: np.ndarray, width: int, height: int) -> bytes:
    data = bytearray(cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes())
    assert data[12:16] == b"VP8L"
    (bits,) = struct.unpack_from("<I", data, 21)
    bits = (bits & ~0xFFFFFFF) | ((width - 1) & 0x3FFF) | (((height - 1) & 0x3FFF) << 14)
    struct.pack_into("<I", data, 21, bits)
    return bytes(data)


def _webp_vp8x(image: np.ndarray, width: int, height: int) -> bytes:
    exif = Image.Exif()
    exif[0x010E] = "hostile"
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="WEBP", exif=exif, quality=90)
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"VP8X"
    data[24:27] = (width - 1).to_bytes(3, "little")
    data[27:30] = (height - 1).to_bytes(3, "little")
    return bytes(data)


def tiff(
    width: int,
    height: int,
    strip: bytes,
    rows_per_strip: int,
    *,
    samples: int = 3,
    bits: int = 8,
    compression: int = 1,
    sample_format: int = 1,
    next_ifd: int = 0,
    extra_tags: tuple[tuple[int, int, int, int], ...] = (),
) -> bytes:
    """A little-endian one-IFD TIFF whose strips all point at the same `strip` bytes.

    Sharing one strip keeps a deflated bomb of any size a few kilobytes, and fast to build.
    """
    strips = -(-height // rows_per_strip)
    header_size = 8
    strip_offset = header_size
    offsets_at = strip_offset + len(strip)
    counts_at = offsets_at + 4 * strips
    bits_at = counts_at + 4 * strips
    ifd_at = bits_at + 2 * samples
    photometric = 2 if samples >= 3 else 1
    tags = sorted(
        [
            (256, 4, 1, width),
            (257, 4, 1, height),
            (258, 3, samples, bits_at if samples > 2 else bits | (bits << 16) if samples == 2 else bits),
            (259, 3, 1, compression),
            (262, 3, 1, photometric),
            (273, 4, strips, offsets_at if strips > 1 else strip_offset),
            (277, 3, 1, samples),
            (278, 4, 1, rows_per_strip),
            (279, 4, strips, counts_at if strips > 1 else len(strip)),
            (284, 3, 1, 1),
            (339, 3, 1, sample_format),
            *extra_tags,
        ]
    )
    body = b"II*\0" + struct.pack("<I", ifd_at) + strip
    body += struct.pack(f"<{strips}I", *([strip_offset] * strips)) + struct.pack(
        f"<{strips}I", *([len(strip)] * strips)
    )
    body += struct.pack(f"<{samples}H", *([bits] * samples))
    entries = b"".join(
        struct.pack("<HHII", tag, kind, count, value)
        if kind == 4 or count != 1
        else struct.pack("<HHIHH", tag, kind, count, value, 0)
        for tag, kind, count, value in tags
    )
    return body + struct.pack("<H", len(tags)) + entries + struct.pack("<I", next_ifd)


def _tiff(image: np.ndarray, width: int, height: int) -> bytes:
    # At 16×16 the one strip holds the real rows; a larger claim points every strip at 48 zero bytes.
    return tiff(width, height, image[:, :, ::-1].tobytes() if width == SMALL else b"\0" * 48, SMALL)


def _pnm(image: np.ndarray, width: int, height: int) -> bytes:
    return b"P6\n# hostile\n%d %d\n255\n" % (width, height) + image[:, :, ::-1].tobytes()


def _sun(image: np.ndarray, width: int, height: int) -> bytes:
    pixels = image.tobytes()  # type 1 stores BGR for 24-bit
    return struct.pack(">IIIIIIII", 0x59A66A95, width, height, 24, len(pixels), 1, 0, 0) + pixels


_CLAIMERS: dict[str, Callable[[np.ndarray, int, int], bytes]] = {
    "jpeg": _jpeg,
    "png": _png,
    "gif": _gif,
    "bmp": _bmp,
    "webp-vp8": _webp_vp8,
    "webp-vp8l": _webp_vp8l,
    "webp-vp8x": _webp_vp8x,
    "tiff": _tiff,
    "pnm": _pnm,
    "sun": _sun,
}


# ---------------------------------------------------------------- bombs


def size_bombs() -> dict[str, bytes]:
    """Tiny files whose headers claim sizes far over any limit, one per format (and refused ones)."""
    bombs = {f"{fmt}-claims-huge": claiming(fmt, *_huge_claim(fmt)) for fmt in CLAIM_FORMATS}
    bombs["bmp-tall-118-bytes"] = tall_bmp()
    bombs["bmp-bottom-up-huge"] = bmp(60000, 60000, b"\0" * 64)
    bombs["pnm-ascii-huge"] = b"P3\n30000 30000\n255\n" + b"0 " * 32
    bombs["radiance-hdr-30000"] = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 30000 +X 30000\n" + b"\0" * 64
    # Under the 50 Mpx limit, but far too little data for the size: refused before OpenCV allocates it.
    bombs["bmp-under-limit-no-data"] = bmp(4000, 4000, b"\0" * 64)
    bombs.update({f"{fmt}-under-limit-tiny": claiming(fmt, 7000, 7000) for fmt in CLAIM_FORMATS})
    bombs["png-chunk-claims-2GB"] = png_chunk_claiming(0x80808080)
    bombs["png-real-zero-bomb"] = png_zero_bomb()
    bombs["tiff-real-float-deflate-bomb"] = tiff_float_bomb()
    return bombs


@functools.cache
def size_bombs_cached() -> dict[str, bytes]:
    return size_bombs()


def _huge_claim(fmt: str) -> tuple[int, int]:
    if fmt.startswith("webp-vp8") and fmt != "webp-vp8x":
        return 16383, 16383  # the most VP8/VP8L can say: 268 Mpx
    if fmt in ("jpeg", "gif"):
        return 65000, 65000
    return 100000, 100000


def png_chunk_claiming(length: int) -> bytes:
    """A real small PNG whose IDAT chunk claims `length` bytes (OpenCV 5 allocated 2 GB for 0x80808080)."""
    data = bytearray(claiming("png", SMALL, SMALL))
    struct.pack_into(">I", data, data.index(b"IDAT") - 4, length)
    return bytes(data)


def tall_bmp() -> bytes:
    """118 bytes claiming 10×2,000,000: under a 50 Mpx pixel limit, over every decoder's side limit."""
    return bmp(10, 2_000_000, b"\0" * 64)


def png_zero_bomb(side: int = 20000) -> bytes:
    """A real, valid 1-bit PNG of side×side zeros (400 Mpx for 20000): about 50 KB on disk."""
    row = b"\0" * (1 + (side + 7) // 8)
    compressor = zlib.compressobj(9)
    rows_per_block = 200
    block = row * rows_per_block
    parts = [compressor.compress(block) for _ in range(side // rows_per_block)]
    parts.append(compressor.compress(row * (side % rows_per_block)))
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b"")
    )


def tiff_float_bomb(side: int = 8000, rows_per_strip: int = 16) -> bytes:
    """A real deflated 32-bit float RGB TIFF of zeros, side×side (64 Mpx, 768 MB decoded)."""
    strip = zlib.compress(b"\0" * (side * 3 * 4 * rows_per_strip), 9)
    return tiff(side, side, strip, rows_per_strip, bits=32, compression=8, sample_format=3)


# ---------------------------------------------------------------- damage and fuzzing


def jpeg_cut_with_end_marker(data: bytes) -> bytes:
    """A JPEG cut in the middle of its scan data with the end marker put back."""
    return data[: len(data) // 2] + b"\xff\xd9"


def png_with_bad_idat_crc(data: bytes) -> bytes:
    idat = data.index(b"IDAT")
    damaged = bytearray(data)
    damaged[idat + 20] ^= 0xFF
    return bytes(damaged)


def fuzz_seeds(photo_bgr: np.ndarray) -> dict[str, bytes]:
    """One real photo in every format and the usual variants of each."""
    rgb = Image.fromarray(cv2.cvtColor(photo_bgr, cv2.COLOR_BGR2RGB))

    def pillow(fmt: str, **options: object) -> bytes:
        buffer = io.BytesIO()
        rgb.save(buffer, format=fmt, **options)
        return buffer.getvalue()

    return {
        "jpeg-baseline.jpg": cv2.imencode(".jpg", photo_bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes(),
        "jpeg-progressive.jpg": pillow("JPEG", progressive=True, quality=80),
        "png.png": cv2.imencode(".png", photo_bgr)[1].tobytes(),
        "png-palette.png": _palette_png(rgb),
        "webp-lossy.webp": cv2.imencode(".webp", photo_bgr, [cv2.IMWRITE_WEBP_QUALITY, 80])[1].tobytes(),
        "webp-lossless.webp": cv2.imencode(".webp", photo_bgr, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes(),
        "tiff-lzw.tif": pillow("TIFF", compression="tiff_lzw"),
        "tiff-deflate.tif": pillow("TIFF", compression="tiff_adobe_deflate"),
        "tiff-raw.tif": pillow("TIFF"),
        "bmp.bmp": cv2.imencode(".bmp", photo_bgr)[1].tobytes(),
        "gif.gif": pillow("GIF"),
    }


def _palette_png(rgb: Image.Image) -> bytes:
    buffer = io.BytesIO()
    rgb.convert("P").save(buffer, format="PNG")
    return buffer.getvalue()


def mutations(seeds: dict[str, bytes], count: int, seed: int = 1234) -> Iterator[tuple[str, bytes]]:
    """`count` mutated files, spread evenly over the seeds: bit flips, cuts, header fields, splices."""
    rng = random.Random(seed)
    names = sorted(seeds)
    for index in range(count):
        name = names[index % len(names)]
        data = seeds[name]
        kind = rng.choice(_MUTATORS)
        yield f"{index:04d}-{name}-{kind.__name__.lstrip('_')}", kind(data, rng)


def _bit_flips(data: bytes, rng: random.Random) -> bytes:
    mutated = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        position = rng.randrange(min(len(data), 256)) if rng.random() < 0.5 else rng.randrange(len(data))
        mutated[position] ^= 1 << rng.randrange(8)
    return bytes(mutated)


def _truncation(data: bytes, rng: random.Random) -> bytes:
    cut = data[: rng.randrange(1, len(data))]
    return cut + data[-2:] if rng.random() < 0.5 else cut  # half keep their end marker


def _header_field(data: bytes, rng: random.Random) -> bytes:
    """Overwrite 1-4 bytes with extreme values: sizes, counts, offsets.

    Headers sit in the first 128 bytes, or in the last 256 (a TIFF directory written after its strips).
    """
    mutated = bytearray(data)
    position = (
        rng.randrange(min(len(data), 128)) if rng.random() < 0.7 else rng.randrange(max(0, len(data) - 256), len(data))
    )
    width = rng.randint(1, 4)
    value = rng.choice([b"\xff", b"\x00", b"\x7f", b"\x80", bytes([rng.randrange(256)])]) * width
    mutated[position : position + width] = value
    return bytes(mutated)


def _splice(data: bytes, rng: random.Random) -> bytes:
    """Duplicate or drop a random slice: repeated or missing chunks and segments."""
    start = rng.randrange(len(data))
    end = min(len(data), start + rng.randint(1, 512))
    if rng.random() < 0.5:
        return data[:end] + data[start:end] + data[end:]
    return data[:start] + data[end:]


_MUTATORS = (_bit_flips, _truncation, _header_field, _splice)
