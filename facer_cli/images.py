"""Image files and bytes in, 8-bit BGR arrays out, or one clear `ImageError`.

Handles every format OpenCV decodes, grayscale, 16-bit and alpha channels,
and EXIF orientation. The pixel count is read from the header before decoding,
so a decompression bomb is refused without allocating it.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np

from facer_cli.errors import ImageError, ImageTooLargeError

IMAGE_SUFFIXES = frozenset(
    ".jpg .jpeg .jpe .png .bmp .dib .webp .tif .tiff .pbm .pgm .ppm .pnm .sr .ras .jp2 .exr .hdr .pic .avif".split()
)
_EXIF_ORIENTATION = 0x0112


def _pillow_without_its_own_limit():
    """Pillow only reads headers here; facer applies `max_image_pixels` itself."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    return Image


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def load_image(path: Path | str, max_pixels: int) -> np.ndarray:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror})") from None
    return decode_image(data, str(path), max_pixels)


def decode_image(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    """Decode an encoded image held in memory (uploads never touch the disk)."""
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    size, orientation = _header(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {size[0]}×{size[1]} = {size[0] * size[1]:,} pixels is over the "
            f"max_image_pixels limit of {max_pixels:,}"
        )
    if _looks_truncated(data):
        raise ImageError(f"{name}: truncated image (the file ends before the image data does)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None or image.size == 0:
        raise ImageError(f"{name}: not an image facer can decode")
    if size is None and image.shape[0] * image.shape[1] > max_pixels:
        raise ImageTooLargeError(f"{name}: {image.shape[1]}×{image.shape[0]} pixels is over max_image_pixels")
    return _apply_orientation(to_bgr8(image), orientation)


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any decoded array (gray, BGRA, 16-bit, float) as 8-bit 3-channel BGR."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(image * 255.0, 0, 255).astype(np.uint8)
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


def _header(data: bytes) -> tuple[tuple[int, int] | None, int]:
    """(width, height) and EXIF orientation from the header alone, when Pillow knows the format."""
    Image = _pillow_without_its_own_limit()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                size = image.size
                try:
                    orientation = int(image.getexif().get(_EXIF_ORIENTATION, 1))
                except Exception:  # a broken EXIF block must not lose the image
                    orientation = 1
                return size, orientation
    except Exception:
        return None, 1


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
