"""Head pose on synthetic landmarks: a 3-D face posed with known angles, projected through a camera.

No model or photo is needed. Convention under test: yaw > 0 when the face
points toward the image's right, pitch > 0 looking up, roll > 0 clockwise in
the image, measured from the line of sight.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from facer_cli.engine import pose
from facer_cli.engine.pose import HeadPose

WIDTH, HEIGHT = 640, 480
FOCAL = max(WIDTH, HEIGHT)  # the camera pose_from_landmarks_2d106 assumes
CENTRE = np.array([(WIDTH - 1) / 2, (HEIGHT - 1) / 2])
FACE = pose.MEAN_FACE_68 - pose.MEAN_FACE_68.mean(axis=0)  # camera axes: x right, y down, z away
# Where each iBUG point goes in a left-right mirror image.
MIRROR_68 = (
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30, 35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65]
)
NOSE_TIP, CHIN, EYES = 30, 8, [36, 39, 42, 45]
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 36, 45  # on the image's left and right


def rx(a):
    c, s = math.cos(math.radians(a)), math.sin(math.radians(a))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def ry(a):
    c, s = math.cos(math.radians(a)), math.sin(math.radians(a))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rz(a):
    c, s = math.cos(math.radians(a)), math.sin(math.radians(a))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def head_rotation(yaw, pitch, roll):
    """Camera-axes rotation of a head with these angles, seen along the optical axis."""
    return rz(roll) @ ry(-yaw) @ rx(-pitch)


def toward(position):
    """The rotation that turns the optical axis onto the line of sight to `position`."""
    v = np.asarray(position, float) / np.linalg.norm(position)
    axis = np.cross([0.0, 0.0, 1.0], v)
    s, c = np.linalg.norm(axis), v[2]
    if s < 1e-12:
        return np.eye(3)
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx


def posed(yaw=0.0, pitch=0.0, roll=0.0, at=(0.0, 0.0), distance=4.5):
    """The 68 points in camera space: the head at pixel `at` from the centre, with these angles
    relative to its line of sight. The face is about 180 px wide."""
    position = np.array([at[0] / FOCAL * distance, at[1] / FOCAL * distance, distance])
    rotation = toward(position) @ head_rotation(yaw, pitch, roll)
    return FACE @ rotation.T + position


def project(points):
    return points[:, :2] / points[:, 2:] * FOCAL + CENTRE


def as_106(points68):
    """A 2d106det-shaped array holding the 68 points where the 106 scheme has them."""
    out = np.tile(points68.mean(axis=0), (106, 1))
    out[list(pose.IBUG68_FROM_2D106)] = points68
    return out


def as_3d68(points):
    """1k3d68-style output of camera-space points: x, y in the image, z in pixels toward the viewer."""
    scale = FOCAL / points[:, 2].mean()
    return np.column_stack([project(points), -(points[:, 2] - points[:, 2].mean()) * scale])


def from_2d(points):
    return pose.pose_from_landmarks_2d106(as_106(project(points)), (WIDTH, HEIGHT))


def from_3d(points):
    return pose.pose_from_landmarks_3d68(as_3d68(points))


SOURCES = pytest.mark.parametrize("estimate", [from_2d, from_3d], ids=["2d106", "3d68"])


def angles(head: HeadPose):
    return np.array([head.yaw, head.pitch, head.roll])


@SOURCES
def test_frontal_upright_face_is_zero(estimate):
    head = estimate(posed(distance=1000.0))
    assert isinstance(head, HeadPose)
    assert all(isinstance(v, float) for v in (head.yaw, head.pitch, head.roll))
    np.testing.assert_allclose(angles(head), 0.0, atol=0.01)


# The 3-D source assumes a weak-perspective (affine) camera: exact for a distant face.
@pytest.mark.parametrize(("estimate", "distance"), [(from_2d, 4.5), (from_3d, 1000.0)], ids=["2d106", "3d68"])
@pytest.mark.parametrize("yaw", [-50, -20, 0, 15, 45])
@pytest.mark.parametrize("pitch", [-25, 0, 20])
@pytest.mark.parametrize("roll", [-35, 0, 10, 40])
def test_recovers_known_angles(estimate, distance, yaw, pitch, roll):
    head = estimate(posed(yaw, pitch, roll, at=(60, -40), distance=distance))
    np.testing.assert_allclose(angles(head), [yaw, pitch, roll], atol=0.05)


@pytest.mark.parametrize("yaw", [-30, 0, 30])
@pytest.mark.parametrize("pitch", [-20, 0, 20])
def test_3d68_is_close_for_a_face_at_arms_length(yaw, pitch):
    head = from_3d(posed(yaw, pitch, 10, at=(60, -40)))
    np.testing.assert_allclose(angles(head), [yaw, pitch, 10], atol=2.0)


# The signs, checked against what the projected landmarks show rather than against the formulas.
def eye_centre(points2d):
    return points2d[EYES].mean(axis=0)


def test_turned_toward_image_right_is_positive_yaw():
    frontal = project(posed())
    for yaw in (10, 30):
        image = project(posed(yaw=yaw))
        # The nose tip, nearest the camera, swings toward the image's right.
        assert image[NOSE_TIP, 0] - eye_centre(image)[0] > frontal[NOSE_TIP, 0] - eye_centre(frontal)[0] + 1
        assert from_2d(posed(yaw=yaw)).yaw > 0
        assert from_3d(posed(yaw=yaw)).yaw > 0
        assert from_2d(posed(yaw=-yaw)).yaw < 0


def test_looking_up_is_positive_pitch():
    frontal = project(posed())
    for pitch in (10, 25):
        image = project(posed(pitch=pitch))
        # Looking up, the nose tip (nearest the camera) rises toward the eyes.
        assert image[NOSE_TIP, 1] - eye_centre(image)[1] < frontal[NOSE_TIP, 1] - eye_centre(frontal)[1] - 1
        assert from_2d(posed(pitch=pitch)).pitch > 0
        assert from_3d(posed(pitch=pitch)).pitch > 0
        assert from_2d(posed(pitch=-pitch)).pitch < 0


def test_clockwise_in_the_image_is_positive_roll():
    for roll in (10, 30):
        image = project(posed(roll=roll))
        # Clockwise on screen (y down): the eye on the image's right goes lower.
        assert image[RIGHT_EYE_OUTER, 1] > image[LEFT_EYE_OUTER, 1] + 1
        assert from_2d(posed(roll=roll)).roll > 0
        assert from_3d(posed(roll=roll)).roll > 0
        assert from_2d(posed(roll=-roll)).roll < 0


@pytest.mark.parametrize("at", [(0, 0), (280, 0), (0, -220), (-300, 200), (300, 230)])
def test_a_face_looking_into_the_lens_is_frontal_anywhere_in_the_frame(at):
    np.testing.assert_allclose(angles(from_2d(posed(at=at))), 0.0, atol=0.05)
    # The affine camera of the 3-D source only approximates a face seen obliquely.
    np.testing.assert_allclose(angles(from_3d(posed(at=at))), 0.0, atol=3.0)


def rotate_image_points(points2d, degrees):
    """Image points after turning the image clockwise (on screen) by `degrees` about its centre."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return (points2d - CENTRE) @ np.array([[c, -s], [s, c]]).T + CENTRE


@pytest.mark.parametrize("degrees", [-30, -15, 15, 30])
@pytest.mark.parametrize("start", [(0, 0, 0), (20, -10, 5), (-25, 8, -12)])
def test_turning_the_image_changes_only_roll(degrees, start):
    points = posed(*start, at=(120, -60))
    upright = from_2d(points)
    turned = pose.pose_from_landmarks_2d106(as_106(rotate_image_points(project(points), degrees)), (WIDTH, HEIGHT))
    assert turned.roll - upright.roll == pytest.approx(degrees, abs=0.05)
    assert turned.yaw == pytest.approx(upright.yaw, abs=0.05)
    assert turned.pitch == pytest.approx(upright.pitch, abs=0.05)

    landmarks = as_3d68(points)
    landmarks[:, :2] = rotate_image_points(landmarks[:, :2], degrees)
    turned3d = pose.pose_from_landmarks_3d68(landmarks)
    assert turned3d.roll - from_3d(points).roll == pytest.approx(degrees, abs=0.05)
    assert turned3d.yaw == pytest.approx(from_3d(points).yaw, abs=0.05)


def mirror_image_points(points2d):
    """What cv2.flip(image, 1) does to landmarks: x mirrored, left and right points swapped."""
    return np.column_stack([(WIDTH - 1) - points2d[:, 0], points2d[:, 1]])[MIRROR_68]


@pytest.mark.parametrize("start", [(20, -10, 5), (-35, 12, -15), (8, 0, 25)])
def test_a_mirror_image_negates_yaw_and_roll(start):
    points = posed(*start, at=(90, 40))
    head = from_2d(points)
    mirrored = pose.pose_from_landmarks_2d106(as_106(mirror_image_points(project(points))), (WIDTH, HEIGHT))
    np.testing.assert_allclose(angles(mirrored), [-head.yaw, head.pitch, -head.roll], atol=0.05)

    landmarks = as_3d68(points)
    flipped = np.column_stack([mirror_image_points(landmarks[:, :2]), landmarks[MIRROR_68, 2]])
    head3d = from_3d(points)
    np.testing.assert_allclose(
        angles(pose.pose_from_landmarks_3d68(flipped)), [-head3d.yaw, head3d.pitch, -head3d.roll], atol=0.05
    )


def test_the_mean_face_is_mirror_symmetric():
    np.testing.assert_allclose(pose.MEAN_FACE_68[MIRROR_68] * [-1, 1, 1], pose.MEAN_FACE_68, atol=1e-12)


def test_pixel_noise_moves_the_angles_little():
    rng = np.random.default_rng(0)
    points = posed(15, -8, 6, at=(50, -30))
    errors = []
    for _ in range(50):
        noisy = project(points) + rng.normal(0.0, 1.0, (68, 2))  # 1 px on a face about 180 px wide
        errors.append(angles(pose.pose_from_landmarks_2d106(as_106(noisy), (WIDTH, HEIGHT))) - [15, -8, 6])
    assert np.abs(errors).mean() < 1.5
    assert np.abs(errors).max() < 5.0


@pytest.mark.parametrize("face_width", [12, 40, 1500])
def test_tiny_and_huge_faces_in_a_large_frame(face_width):
    width, height = 4000, 3000
    focal = max(width, height)
    distance = 1.25 * focal / face_width
    position = np.array([0.2 * distance, -0.1 * distance, distance])
    points = FACE @ (toward(position) @ head_rotation(25, -15, 10)).T + position
    image = points[:, :2] / points[:, 2:] * focal + [(width - 1) / 2, (height - 1) / 2]
    head = pose.pose_from_landmarks_2d106(as_106(image), (width, height))
    np.testing.assert_allclose(angles(head), [25, -15, 10], atol=0.05)


def test_only_the_mapped_points_matter():
    points = posed(12, 5, -7)
    landmarks = as_106(project(points))
    unused = sorted(set(range(106)) - set(pose.POINTS_2D106.tolist()))
    landmarks[unused] = 1e6
    np.testing.assert_allclose(angles(pose.pose_from_landmarks_2d106(landmarks, (WIDTH, HEIGHT))), [12, 5, -7], atol=0.05)


def test_the_two_sources_agree():
    for start in [(0, 0, 0), (25, -12, 8), (-30, 15, -20)]:
        points = posed(*start)
        np.testing.assert_allclose(angles(from_2d(points)), angles(from_3d(points)), atol=2.0)


@pytest.mark.parametrize("source", ["2d", "3d"])
def test_angles_stay_in_range_near_180(source):
    for roll in (179.0, -179.0, 170.0):
        head = from_2d(posed(roll=roll)) if source == "2d" else from_3d(posed(roll=roll))
        assert -180.0 < head.roll <= 180.0
        assert head.roll == pytest.approx(roll, abs=0.05)


def test_the_depth_sign_and_scale_of_3d68_do_not_matter():
    landmarks = as_3d68(posed(20, -10, 5))
    expected = angles(pose.pose_from_landmarks_3d68(landmarks))
    for factor in (-1.0, 0.0, 3.0):
        changed = landmarks.copy()
        changed[:, 2] *= factor
        np.testing.assert_allclose(angles(pose.pose_from_landmarks_3d68(changed)), expected, atol=1e-9)


def test_insightface_pose_has_our_signs():
    """InsightFace's own face['pose'] for 1k3d68, computed as its Landmark.get does."""
    transform = pytest.importorskip("insightface.utils.transform")
    data = pytest.importorskip("insightface.data")
    mean_lmk = data.get_object("meanshape_68.pkl")
    for start in [(20, 0, 0), (0, 15, 0), (0, 0, 25), (-25, -10, 12)]:
        landmarks = as_3d68(posed(*start, distance=1000.0))
        matrix = transform.estimate_affine_matrix_3d23d(mean_lmk, landmarks)
        _, rotation, _ = transform.P2sRt(matrix)
        insightface_pose = np.array(transform.matrix2angle(rotation))  # pitch, yaw, roll
        converted = angles(pose.pose_from_insightface(insightface_pose))
        # Its mean shape is slightly asymmetric and its rotation not quite orthonormal: about a degree.
        np.testing.assert_allclose(converted, start, atol=2.0)
        np.testing.assert_allclose(converted, angles(pose.pose_from_landmarks_3d68(landmarks)), atol=2.0)


def test_pose_from_insightface_wraps_into_range():
    assert pose.pose_from_insightface([0.0, -180.0, 540.0]) == HeadPose(yaw=180.0, pitch=0.0, roll=180.0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: pose.pose_from_landmarks_2d106(np.zeros((68, 2)), (WIDTH, HEIGHT)),
        lambda: pose.pose_from_landmarks_2d106(np.zeros(212), (WIDTH, HEIGHT)),
        lambda: pose.pose_from_landmarks_2d106(np.full((106, 2), np.nan), (WIDTH, HEIGHT)),
        lambda: pose.pose_from_landmarks_2d106(as_106(project(posed())), (0, HEIGHT)),
        lambda: pose.pose_from_landmarks_3d68(np.zeros((106, 2))),
        lambda: pose.pose_from_landmarks_3d68(np.full((68, 3), np.inf)),
    ],
)
def test_bad_input_is_rejected(call):
    with pytest.raises(ValueError):
        call()


def test_head_pose_is_immutable():
    head = HeadPose(1.0, 2.0, 3.0)
    with pytest.raises(AttributeError):
        head.yaw = 0.0  # type: ignore[misc]
