"""Image input: formats, orientation, and every bad file gives one clear error."""

from __future__ import annotations

import io
import re

import cv2
import numpy as np
import pytest
from PIL import Image

from facer_cli.errors import ImageError, ImageTooLargeError
from facer_cli.sources.images import decode_image, load_image

LIMIT = 50_000_000


@pytest.fixture(scope="module")
def photo(bundled_images):
    return cv2.imread(str(bundled_images / "yaoming.jpg"))


def test_png_rgba_16bit_and_grayscale_decode_to_bgr8(tmp_path, photo):
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    cv2.imwrite(str(tmp_path / "deep.png"), photo.astype(np.uint16) * 257)
    rgba = cv2.cvtColor(photo, cv2.COLOR_BGR2BGRA)
    rgba[:10, :, 3] = 0
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba)
    for name in ("gray.png", "deep.png", "alpha.png"):
        image = load_image(tmp_path / name, LIMIT)
        assert image.dtype == np.uint8 and image.shape == photo.shape, name
    np.testing.assert_array_equal(load_image(tmp_path / "deep.png", LIMIT), photo)
    alpha = load_image(tmp_path / "alpha.png", LIMIT)
    assert (alpha[:10] == 255).all() and (alpha[10:] == photo[10:]).all()


def test_exif_orientation_is_honoured(tmp_path, photo):
    rgb = Image.fromarray(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers rotate 90° clockwise
    rgb.save(tmp_path / "sideways.jpg", exif=exif, quality=95)
    image = load_image(tmp_path / "sideways.jpg", LIMIT)
    assert image.shape[:2] == (photo.shape[1], photo.shape[0])


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file (0 bytes)"),
        (b"hello, this is text\n", "not an image facer can decode"),
    ],
)
def test_non_images(tmp_path, content, message):
    path = tmp_path / "x.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=re.escape(message)):
        load_image(path, LIMIT)


def test_truncated_jpeg_and_png(tmp_path, photo):
    for suffix in (".jpg", ".png"):
        _, data = cv2.imencode(suffix, photo)
        path = tmp_path / f"cut{suffix}"
        path.write_bytes(data.tobytes()[: len(data) // 2])
        with pytest.raises(ImageError, match="truncated"):
            load_image(path, LIMIT)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg", LIMIT)
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path, LIMIT)


@pytest.mark.slow
def test_decompression_bomb_is_refused_before_decoding():
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, format="PNG")  # tiny file, 400 Mpx
    assert len(buffer.getvalue()) < 200_000
    with pytest.raises(ImageTooLargeError, match="400,000,000 pixels is over the max_image_pixels limit"):
        decode_image(buffer.getvalue(), "bomb.png", LIMIT)
