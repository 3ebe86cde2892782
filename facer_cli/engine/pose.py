"""Head pose (yaw, pitch, roll in degrees) from face landmarks.

Convention, for the person seen in the image:

* yaw > 0 when the face points toward the image's right side (the person
  turns to their left);
* pitch > 0 when the person looks up;
* roll > 0 when the face is rotated clockwise in the image.

All three are in (-180, 180] and near 0 for an upright face looking into the
lens. They are measured from the line of sight between the camera and the
face, so a face looking straight at the camera reads 0 wherever it sits in
the frame (this is what the face looks like, and what a quality filter wants).

In camera coordinates (x right, y down, z away from the camera) the head's
rotation is ``R = Rz(roll) @ Ry(-yaw) @ Rx(-pitch)``. Roll is the outermost
rotation, so turning the image in its own plane changes roll alone, and a
mirror image negates yaw and roll and keeps pitch.

Two sources:

* ``pose_from_landmarks_2d106``: the 106 points of InsightFace's
  ``2d106det``. 54 of them, mapped onto the 68-point iBUG scheme, are fitted
  with a 3-D mean face by ``cv2.solvePnP``.
* ``pose_from_landmarks_3d68``: the 68×3 points of InsightFace's ``1k3d68``,
  fitted with an affine camera as InsightFace's own ``Landmark.get`` does.
  ``pose_from_insightface`` converts the ``face['pose']`` that InsightFace
  computes from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "HeadPose",
    "IBUG68_FROM_2D106",
    "MEAN_FACE_68",
    "POINTS_2D106",
    "pose_from_insightface",
    "pose_from_landmarks_2d106",
    "pose_from_landmarks_3d68",
]


@dataclass(frozen=True)
class HeadPose:
    """Head pose in degrees; see the module docstring for the signs."""

    yaw: float
    pitch: float
    roll: float


# InsightFace's 68-point mean shape (insightface/data/objects/meanshape_68.pkl,
# the one its 1k3d68 pose is computed against), averaged with its own mirror
# image so that it is exactly left-right symmetric: a mirrored face then gives
# exactly the opposite yaw and roll. Units: about 0.76 between the outer eye
# corners. Stored here in camera axes: x toward the image's right, y down,
# z away from the camera (the pickle's z points toward the viewer).
_MEAN_SHAPE_PICKLE_AXES = np.array(
    [
        [-0.6271, -0.3002, -0.3080],
        [-0.5994, -0.1342, -0.2945],
        [-0.5726, 0.0484, -0.2696],
        [-0.5374, 0.2087, -0.1947],
        [-0.4933, 0.3311, -0.0712],
        [-0.4179, 0.4244, 0.0546],
        [-0.3129, 0.5001, 0.1741],
        [-0.1897, 0.5531, 0.3155],
        [0.0000, 0.5844, 0.3884],
        [0.1897, 0.5531, 0.3155],
        [0.3129, 0.5001, 0.1741],
        [0.4179, 0.4244, 0.0546],
        [0.4933, 0.3311, -0.0712],
        [0.5374, 0.2087, -0.1947],
        [0.5726, 0.0484, -0.2696],
        [0.5994, -0.1342, -0.2945],
        [0.6271, -0.3002, -0.3080],  # 0-16 jaw contour
        [-0.4501, -0.4438, 0.2659],
        [-0.3895, -0.4743, 0.3344],
        [-0.3171, -0.4871, 0.3790],
        [-0.2335, -0.4784, 0.4075],
        [-0.1451, -0.4583, 0.4208],  # 17-21 brow (image left)
        [0.1451, -0.4583, 0.4208],
        [0.2335, -0.4784, 0.4075],
        [0.3171, -0.4871, 0.3790],
        [0.3895, -0.4743, 0.3344],
        [0.4501, -0.4438, 0.2659],  # 22-26 brow (image right)
        [0.0000, -0.3231, 0.4619],
        [0.0000, -0.2557, 0.5105],
        [0.0000, -0.1992, 0.5525],
        [0.0000, -0.1426, 0.5987],  # 27-30 nose bridge, 30 = tip
        [-0.1395, 0.0276, 0.4194],
        [-0.0739, 0.0387, 0.4762],
        [0.0000, 0.0398, 0.5147],
        [0.0739, 0.0387, 0.4762],
        [0.1395, 0.0276, 0.4194],  # 31-35 nose base
        [-0.3817, -0.3135, 0.2614],
        [-0.3092, -0.3499, 0.3308],
        [-0.2268, -0.3541, 0.3358],
        [-0.1471, -0.3125, 0.3163],
        [-0.2228, -0.2874, 0.3284],
        [-0.3071, -0.2862, 0.3159],  # 36-41
        [0.1471, -0.3125, 0.3163],
        [0.2268, -0.3541, 0.3358],
        [0.3092, -0.3499, 0.3308],
        [0.3817, -0.3135, 0.2614],
        [0.3071, -0.2862, 0.3159],
        [0.2228, -0.2874, 0.3284],  # 42-47
        [-0.2098, 0.2382, 0.3776],
        [-0.1319, 0.1826, 0.4669],
        [-0.0705, 0.1510, 0.5040],
        [0.0000, 0.1687, 0.5164],
        [0.0705, 0.1510, 0.5040],
        [0.1319, 0.1826, 0.4669],
        [0.2098, 0.2382, 0.3776],
        [0.1377, 0.2791, 0.4391],
        [0.0687, 0.2972, 0.4790],
        [0.0000, 0.3000, 0.4871],
        [-0.0687, 0.2972, 0.4790],
        [-0.1377, 0.2791, 0.4391],  # 48-59
        [-0.1725, 0.2309, 0.3966],
        [-0.0669, 0.2127, 0.4688],
        [0.0000, 0.2141, 0.4832],
        [0.0669, 0.2127, 0.4688],
        [0.1725, 0.2309, 0.3966],
        [0.0675, 0.2272, 0.4668],
        [0.0000, 0.2258, 0.4752],
        [-0.0675, 0.2272, 0.4668],  # 60-67 inner lips
    ]
)
MEAN_FACE_68 = _MEAN_SHAPE_PICKLE_AXES * np.array([1.0, 1.0, -1.0])
MEAN_FACE_68.setflags(write=False)

# For each iBUG-68 point, the 2d106det point at the same place. The 106 scheme
# has a 33-point jaw contour (every other point is taken); the rest maps one to
# one (brows' upper edge, eye corners and lids, nose, lips).
IBUG68_FROM_2D106 = (
    1,
    10,
    12,
    14,
    16,
    3,
    5,
    7,
    0,
    23,
    21,
    19,
    32,
    30,
    28,
    26,
    17,  # jaw, image left to right
    43,
    48,
    49,
    51,
    50,
    102,
    103,
    104,
    105,
    101,  # brows
    72,
    73,
    74,
    86,
    78,
    79,
    80,
    85,
    84,  # nose bridge, nose base
    35,
    41,
    42,
    39,
    37,
    36,
    89,
    95,
    96,
    93,
    91,
    90,  # eyes
    52,
    64,
    63,
    71,
    67,
    68,
    61,
    58,
    59,
    53,
    56,
    55,  # outer lips
    65,
    66,
    62,
    70,
    69,
    57,
    60,
    54,  # inner lips
)

# iBUG points used for the 2-D fit. Left out: the inner lips, which follow the
# jaw as the mouth opens, and the three highest contour points per side (0-2,
# 14-16), which lie on the silhouette near the ears and slide over the head as
# it turns; 2d106det's contour also starts higher there than iBUG's does.
_FIT_68 = np.r_[3:14, 17:60]
POINTS_2D106 = np.asarray(IBUG68_FROM_2D106)[_FIT_68]
# The head's position, whose line of sight the angles are measured from, is
# the centroid of the 68 points (between the eyes and the mouth).
_MODEL_2D = np.ascontiguousarray(MEAN_FACE_68[_FIT_68] - MEAN_FACE_68.mean(axis=0))
# Starting from EPnP the fit has converged after a few steps.
_REFINE = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 10, 1e-10)

# The 3-D source uses all 68 points, as InsightFace does. Least squares for the
# affine camera reduces to one product with this pseudo-inverse.
_MODEL_3D = MEAN_FACE_68 - MEAN_FACE_68.mean(axis=0)
_MODEL_3D_PINV = np.linalg.pinv(np.hstack([_MODEL_3D, np.ones((68, 1))]))


def pose_from_landmarks_2d106(landmarks: np.ndarray, image_size: tuple[int, int]) -> HeadPose:
    """Head pose from 2d106det's (106, 2) landmarks in pixels; ``image_size`` is (width, height)."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] != 106 or points.shape[1] < 2:
        raise ValueError(f"expected (106, 2) landmarks, got shape {points.shape}")
    width, height = (float(v) for v in image_size)
    if not (width > 0 and height > 0):
        raise ValueError(f"image size must be positive, got {image_size}")
    image_points = np.ascontiguousarray(points[POINTS_2D106, :2])
    if not np.isfinite(image_points).all():
        raise ValueError("landmarks must be finite")

    # Pinhole camera, no distortion, principal point at the centre of the
    # pixel grid ((w-1)/2 keeps a cv2.flip mirror exact). The focal length is
    # the longer side (about a 53° field of view across it, a normal lens),
    # whatever the orientation. Its exact value barely matters: the angles are
    # taken from the line of sight below, which removes most of its effect.
    focal = max(width, height)
    camera = np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])
    # EPnP needs no starting guess and, unlike SQPnP, accepts faces smaller
    # than about 1% of the focal length; Levenberg-Marquardt then moves it to
    # the least-squares fit in pixels, the right error for landmark noise.
    ok, rvec, tvec = cv2.solvePnP(_MODEL_2D, image_points, camera, None, flags=cv2.SOLVEPNP_EPNP)
    if not ok:
        raise ValueError("could not fit the face model to these landmarks")
    rvec, tvec = cv2.solvePnPRefineLM(_MODEL_2D, image_points, camera, None, rvec, tvec, _REFINE)
    rotation, _ = cv2.Rodrigues(rvec)
    # A face in a corner of the frame is seen obliquely: in camera axes one
    # that looks into the lens from the top of a tall photo points 20-30°
    # down. Measuring from the line of sight reads it as frontal.
    return _angles(_toward_optical_axis(tvec.ravel()) @ rotation)


def pose_from_landmarks_3d68(landmarks: np.ndarray) -> HeadPose:
    """Head pose from 1k3d68's (68, 3) landmarks, x and y in image pixels.

    Like InsightFace's own pose, this fits an affine camera to the mean shape
    and uses x and y only, so the scale and sign of the predicted depth do not
    matter. Unlike it, the rotation found is made exactly orthonormal. An
    affine camera sees every face along the optical axis' direction, so for a
    face near the edge of a wide view the angles are off by a degree or two.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] != 68 or points.shape[1] < 2:
        raise ValueError(f"expected (68, 3) landmarks, got shape {points.shape}")
    xy = points[:, :2]
    if not np.isfinite(xy).all():
        raise ValueError("landmarks must be finite")
    linear = (_MODEL_3D_PINV @ xy)[:3].T  # 2×3: image x, y from model x, y, z
    u, _, vt = np.linalg.svd(linear, full_matrices=False)
    # The nearest pair of orthonormal rows (a scaled orthographic camera);
    # their cross product completes the rotation (np.cross is slow this small).
    (a0, a1, a2), (b0, b1, b2) = (u @ vt).tolist()
    rotation = np.array([[a0, a1, a2], [b0, b1, b2], [a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0]])
    return _angles(rotation)


def pose_from_insightface(pose: np.ndarray) -> HeadPose:
    """Convert InsightFace's ``face['pose']`` ([pitch, yaw, roll], degrees) to a HeadPose.

    Its mean shape has x right, y down and z toward the viewer, and
    ``matrix2angle`` splits the rotation as Rz·Ry·Rx like ours. Its rotation
    is ours with z flipped on both sides, which keeps the sign of each of the
    three angles, so they carry over unchanged.
    """
    pitch, yaw, roll = (float(v) for v in np.asarray(pose, dtype=np.float64).ravel()[:3])
    return HeadPose(yaw=_wrap(yaw), pitch=_wrap(pitch), roll=_wrap(roll))


def _toward_optical_axis(position: np.ndarray) -> np.ndarray:
    """The smallest rotation taking the direction of ``position`` onto the optical axis (+z)."""
    norm = float(np.linalg.norm(position))
    if norm == 0.0 or position[2] <= 0.0:
        return np.eye(3)
    x, y, z = position / norm
    axis = np.array([y, -x, 0.0])  # direction × z
    sine = math.hypot(x, y)
    if sine < 1e-12:
        return np.eye(3)
    rotation, _ = cv2.Rodrigues(axis / sine * math.atan2(sine, z))
    return rotation


def _angles(rotation: np.ndarray) -> HeadPose:
    """Split R = Rz(roll) · Ry(-yaw) · Rx(-pitch), camera axes, into degrees."""
    yaw = math.degrees(math.asin(min(1.0, max(-1.0, rotation[2, 0]))))
    pitch = -math.degrees(math.atan2(rotation[2, 1], rotation[2, 2]))
    roll = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    return HeadPose(yaw=_wrap(yaw), pitch=_wrap(pitch), roll=_wrap(roll))


def _wrap(degrees: float) -> float:
    """Into (-180, 180]."""
    return 180.0 - (180.0 - degrees) % 360.0
