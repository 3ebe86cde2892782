"""Head pose on real photos: reference angles, in-plane rotation, mirror images, the yaw filter.

Convention: yaw > 0 when the face points toward the image's right, pitch > 0
looking up, roll > 0 clockwise in the image.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facer_cli.engine.face_engine import FaceEngine
from facer_cli.settings import Settings

# Measured with an independent model (MediaPipe Face Landmarker): ../shared/faces/README.md
REFERENCE = {
    "alex_lacamoire_1": (-0.9, -10.7, 1.6), "alex_lacamoire_2": (0.1, -6.3, -2.2), "alex_lacamoire_3": (8.4, -2.4, -3.0),
    "biden_1": (11.1, -2.7, 8.6), "biden_2": (0.9, -4.5, 2.3), "kit_harington_1": (-9.4, -6.9, 1.8),
    "kit_harington_2": (-23.5, -6.9, -6.3), "kit_harington_3": (13.8, 4.4, -9.7), "lin_manuel_miranda_1": (8.7, -5.1, -0.4),
    "obama_1": (1.2, -3.2, -1.0), "obama_2": (-14.9, -2.6, 6.6), "obama_3": (11.9, 7.5, 3.8), "obama_4": (16.7, 0.4, -4.5),
    "rose_leslie_1": (-4.6, -7.8, -4.1), "rose_leslie_2": (2.8, -7.0, 0.2),
}


def photo(faces, stem):
    person = stem.rsplit("_", 1)[0]
    return next((faces / "people" / person).glob(stem + ".*"))


def rotate(image, degrees):
    """Rotate the content by `degrees` clockwise on a canvas big enough to keep it whole."""
    h, w = image.shape[:2]
    side = int(np.hypot(h, w)) + 2
    canvas = np.zeros((side, side, 3), np.uint8)
    y, x = (side - h) // 2, (side - w) // 2
    canvas[y:y + h, x:x + w] = image
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), -degrees, 1.0)  # OpenCV: positive = counter-clockwise
    return cv2.warpAffine(canvas, matrix, (side, side))


@pytest.fixture(scope="module", params=[320, 640], ids=["det320", "det640"])
def pose_engine(request):
    return FaceEngine(Settings(det_size=request.param))


@pytest.mark.slow
def test_yaw_and_pitch_agree_with_an_independent_model(pose_engine, faces):
    errors = {"yaw": [], "pitch": []}
    for stem, (yaw, pitch, _roll) in REFERENCE.items():
        face = pose_engine.analyze_path(photo(faces, stem)).subject
        errors["yaw"].append(abs(face.yaw - yaw))
        errors["pitch"].append(abs(face.pitch - pitch))
    for angle, values in errors.items():
        assert np.mean(values) <= 6.0, (angle, np.round(values, 1))
        assert np.max(values) <= 12.0, (angle, np.round(values, 1))


@pytest.mark.slow
@pytest.mark.parametrize("stem", ["obama_1", "biden_2", "rose_leslie_2"])
@pytest.mark.parametrize("degrees", [-30, -15, 15, 30])
def test_in_plane_rotation_changes_roll_by_the_same_angle(engine, faces, stem, degrees):
    image = cv2.imread(str(photo(faces, stem)))
    upright = engine.analyze(rotate(image, 0)).subject
    turned = engine.analyze(rotate(image, degrees)).subject
    assert turned.roll - upright.roll == pytest.approx(degrees, abs=3.0)
    assert turned.yaw == pytest.approx(upright.yaw, abs=4.0)


@pytest.mark.parametrize("stem", ["obama_2", "obama_4", "kit_harington_2", "biden_1"])
def test_mirror_image_negates_yaw(engine, faces, stem):
    image = cv2.imread(str(photo(faces, stem)))
    face = engine.analyze(image).subject
    mirrored = engine.analyze(cv2.flip(image, 1)).subject
    assert mirrored.yaw == pytest.approx(-face.yaw, abs=3.0)
    assert mirrored.roll == pytest.approx(-face.roll, abs=3.0)


def test_yaw_limit_rejects_turned_faces(faces):
    engine = FaceEngine(Settings(pose_yaw_limit=10))
    assert engine.analyze_path(photo(faces, "obama_1")).accepted
    for stem in ("kit_harington_2", "obama_2"):
        frame = engine.analyze_path(photo(faces, stem))
        assert not frame.accepted and "yaw -" in frame.reason and "beyond ±10°" in frame.reason
