"""Geometric cues of a live face, from the 2d106det landmarks: parallax, eye aspect ratio, box continuity,
and the aligned face that tells a turn from the mirror image of the opposite turn.

Pure functions on numpy arrays; no model is run here.
"""

from __future__ import annotations

import cv2
import numpy as np

from facer_cli.engine.pose import IBUG68_FROM_2D106
from facer_cli.engine.quality import ARCFACE_KEYPOINTS, similarity_transform

Box = tuple[float, float, float, float]

# The six iBUG eye points (outer corner, two upper-lid points, inner corner, two lower-lid points)
# as 2d106det indices, from `facer_cli.engine.pose.IBUG68_FROM_2D106` (iBUG 36-41 and 42-47).
LEFT_EYE_2D106 = (35, 41, 42, 39, 37, 36)  # the eye on the image's left
RIGHT_EYE_2D106 = (89, 95, 96, 93, 91, 90)  # the eye on the image's right
# 2d106det's jaw contour. On a turned head its far side is the silhouette, which slides over the
# head; left out of the parallax fit so that the residual measures the rigid face only.
CONTOUR_2D106 = tuple(range(33))
PARALLAX_POINTS_2D106 = tuple(i for i in range(106) if i not in CONTOUR_2D106)
# Nose tip and mouth corners (iBUG 30, 48, 54) as 2d106det indices: with the eye centres, ArcFace's 5 points.
NOSE_MOUTH_2D106 = (IBUG68_FROM_2D106[30], IBUG68_FROM_2D106[48], IBUG68_FROM_2D106[54])
# The aligned face compared for mirror images: ArcFace's crop at this size, grey.
ALIGNED_SIZE = 64


def _as_points(landmarks: np.ndarray) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] != 106 or points.shape[1] < 2:
        raise ValueError(f"expected (106, 2) landmarks, got shape {points.shape}")
    return points[:, :2]


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The centres of the image-left and image-right eyes (means of their six contour points)."""
    points = _as_points(landmarks)
    return points[list(LEFT_EYE_2D106)].mean(axis=0), points[list(RIGHT_EYE_2D106)].mean(axis=0)


def inter_ocular_distance(landmarks: np.ndarray) -> float:
    """Distance between the eye centres, in pixels: the unit of the parallax residual."""
    left, right = eye_centres(landmarks)
    return float(np.linalg.norm(left - right))


def parallax_residual(landmarks_a: np.ndarray, landmarks_b: np.ndarray, iod: float) -> float:
    """What one homography cannot explain of the landmarks' motion from a to b: RMS, in units of `iod`.

    Every point of a flat print or screen moves from one view to another by a single plane-to-plane
    mapping, so a least-squares homography leaves only landmark noise. The points of a real head lie
    at different depths (nose tip, eyes, mouth) and move with parallax when it turns, which no
    homography reproduces. Least squares, not a robust fit: a robust fit would call the nose an
    outlier and hide exactly the points that carry the parallax.
    """
    if not iod > 0:
        raise ValueError(f"inter-ocular distance must be positive, got {iod}")
    index = list(PARALLAX_POINTS_2D106)
    a, b = _as_points(landmarks_a)[index], _as_points(landmarks_b)[index]
    homography, _ = cv2.findHomography(a, b, 0)
    if homography is None:
        return float("inf")  # degenerate (collapsed points): nothing a plane could explain
    mapped = cv2.perspectiveTransform(a.reshape(-1, 1, 2), homography).reshape(-1, 2)
    return float(np.sqrt(np.mean(np.sum((mapped - b) ** 2, axis=1))) / iod)


def _eye_ratio(points: np.ndarray, eye: tuple[int, ...]) -> float:
    outer, upper_1, upper_2, inner, lower_2, lower_1 = (points[i] for i in eye)
    width = np.linalg.norm(outer - inner)
    if width <= 0:
        return 0.0
    height = np.linalg.norm(upper_1 - lower_1) + np.linalg.norm(upper_2 - lower_2)
    return float(height / (2.0 * width))


def eye_aspect_ratio(landmarks: np.ndarray) -> float:
    """Soukupová and Čech's eye aspect ratio, averaged over both eyes: about 0.3 open, under 0.15 shut."""
    points = _as_points(landmarks)
    return (_eye_ratio(points, LEFT_EYE_2D106) + _eye_ratio(points, RIGHT_EYE_2D106)) / 2.0


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def centre_shift(a: Box, b: Box) -> float:
    """How far the box centre moved from a to b, in units of a's larger side."""
    size = max(a[2] - a[0], a[3] - a[1])
    if size <= 0:
        return float("inf")
    dx = (b[0] + b[2] - a[0] - a[2]) / 2.0
    dy = (b[1] + b[3] - a[1] - a[3]) / 2.0
    return float(np.hypot(dx, dy) / size)


def aligned_face(image: np.ndarray, landmarks: np.ndarray, size: int = ALIGNED_SIZE) -> np.ndarray:
    """The face in `image` aligned by its landmarks onto ArcFace's 5 reference points, `size` × `size`, grey
    (float32): the same part of the face at the same place in every frame, whatever the head's position."""
    points = _as_points(landmarks)
    left, right = eye_centres(points)
    five = np.vstack([left, right, points[list(NOSE_MOUTH_2D106)]])
    matrix = similarity_transform(five, ARCFACE_KEYPOINTS * size / 112.0)
    crop = cv2.warpAffine(np.ascontiguousarray(image), matrix, (size, size), borderMode=cv2.BORDER_REPLICATE)
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    return np.asarray(grey, dtype=np.float32)


def _standardised(face: np.ndarray) -> np.ndarray:
    """The inner face (forehead edge, cheeks and chin margin cut off), smoothed a little, zero mean, unit spread:
    brightness, contrast and sensor noise do not count, where the light falls on the face does."""
    height, width = face.shape[:2]
    inner = face[height // 8 : height - height // 16, width * 5 // 32 : width - width * 5 // 32]
    inner = cv2.GaussianBlur(inner, (0, 0), 1.0)
    return (inner - inner.mean()) / (float(inner.std()) + 1e-6)


def mirror_difference(face_a: np.ndarray, face_b: np.ndarray) -> float:
    """How unlike `face_a` is the mirror image of `face_b` (aligned faces, `aligned_face`): mean absolute
    difference of the standardised pixels. Near 0 when one is the other flipped (a turn to one side
    mirrored to fake the opposite turn); clearly above it for a real head turned each way, since the
    room's light, the hair's parting and the face's own asymmetries do not flip sides with the head."""
    return float(np.mean(np.abs(_standardised(face_a) - _standardised(cv2.flip(face_b, 1)))))
