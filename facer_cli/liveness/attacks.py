"""Synthetic presentation attacks, for tests and benchmarks: a photo held up to the camera.

A photo is rendered as a flat print (a plane moved by 3-D rotations, translations and scale
changes, drawn through a pinhole camera by one homography per frame), as a phone screen (the
same, plus a pixel grid that aliases into moiré, glare and a dark bezel), or as a print bent
around a vertical cylinder (ray-cast and remapped: not a plane, so it carries a little parallax).
Each frame then gets blur, sensor noise and JPEG artefacts. Everything is drawn from the
`numpy.random.Generator` given, so a seed gives the same video.

The motion follows a head-turn challenge as an attacker would: frontal, then turned one way, then
the other; the pose signs follow `facer_cli.engine.pose` (R = Rz(roll) Ry(-yaw) Rx(-pitch)), so a plane
turned by +yaw is what the pose estimator should read as yaw > 0.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import cv2
import numpy as np

from facer_cli.liveness.challenge import Move
from facer_cli.liveness.checker import PARALLAX_MIN_YAW_CHANGE, LivenessFrame
from facer_cli.liveness.geometry import inter_ocular_distance, parallax_residual

FRAME_SIZE = (640, 480)  # width, height
FRAME_INTERVAL_MS = 200.0  # the camera's default spacing of kept frames
KINDS = ("print", "screen", "bent")
# A phone screen in portrait: this many pixels high, showing the face over this many face heights.
SCREEN_HEIGHT = 900
SCREEN_FACES_HIGH = 3.8
SCREEN_FACES_WIDE = 2.2


@dataclass
class AttackVideo:
    """Frames of one synthetic attack and how they were made."""

    kind: str
    photo: str
    frames: list[np.ndarray] = field(repr=False)
    timestamps_ms: list[float]
    yaw: list[float]  # the plane's true rotation per frame, degrees
    pitch: list[float]
    moves: tuple[Move, ...]  # the challenge this motion follows, e.g. ("straight", "left", "right")
    radius: float | None = None  # bent prints: cylinder radius in face widths


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rz(roll) @ Ry(-yaw) @ Rx(-pitch) in camera axes (x right, y down, z forward), degrees in."""
    r_vec_z, _ = cv2.Rodrigues(np.array([0.0, 0.0, math.radians(roll)]))
    r_vec_y, _ = cv2.Rodrigues(np.array([0.0, math.radians(-yaw), 0.0]))
    r_vec_x, _ = cv2.Rodrigues(np.array([math.radians(-pitch), 0.0, 0.0]))
    return r_vec_z @ r_vec_y @ r_vec_x


def camera_matrix(size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    width, height = size
    focal = float(max(width, height))  # the same normal lens the pose estimator assumes
    return np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])


def plane_homography(
    pose: np.ndarray,
    translation: np.ndarray,
    scale: float,
    centre: tuple[float, float],
    size: tuple[int, int] = FRAME_SIZE,
) -> np.ndarray:
    """Photo pixels → frame pixels for the photo as a plane: `scale` world units per photo pixel,
    its `centre` pixel at `translation`, turned by `pose` (3×3) about that centre."""
    to_centre = np.array([[scale, 0.0, -scale * centre[0]], [0.0, scale, -scale * centre[1]], [0.0, 0.0, 1.0]])
    plane = np.column_stack([pose[:, 0], pose[:, 1], translation])
    return camera_matrix(size) @ plane @ to_centre


def background(rng: np.random.Generator, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """A smooth random room-like backdrop (blurred small, then enlarged: a large blur is slow)."""
    width, height = size
    small = rng.integers(40, 200, size=(6, 8, 3)).astype(np.uint8)
    smooth = cv2.GaussianBlur(cv2.resize(small, (64, 48), interpolation=cv2.INTER_CUBIC), (0, 0), 1.5)
    return cv2.resize(smooth, (width, height), interpolation=cv2.INTER_LINEAR)


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Defocus or motion blur, sensor noise and JPEG artefacts, as a cheap webcam adds them."""
    sigma = rng.uniform(0.0, 1.5)
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    # OpenCV's generator, seeded from ours, is several times faster than numpy's for a whole frame.
    cv2.setRNGSeed(int(rng.integers(2**31)))
    noise = np.empty(image.shape, np.int16)
    cv2.randn(noise, np.zeros(3), np.full(3, rng.uniform(1.0, 6.0)))  # per channel
    image = cv2.add(image.astype(np.int16), noise).clip(0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 90))])
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
    if decoded is None:
        raise RuntimeError("OpenCV could not round-trip a frame through JPEG")
    return np.asarray(decoded, dtype=np.uint8)


def as_screen(
    photo: np.ndarray, face_box: tuple[float, float, float, float], rng: np.random.Generator
) -> tuple[np.ndarray, tuple[float, float]]:
    """The photo cropped to a phone's portrait screen around the face, with a pixel grid, a colour
    cast, a glare spot and a black bezel. Returns the screen and the face centre on it."""
    x1, y1, x2, y2 = face_box
    cx, cy, face = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1)
    half_w, half_h = SCREEN_FACES_WIDE / 2 * face, SCREEN_FACES_HIGH / 2 * face
    crop_box = np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h])
    # Crop by an affine warp so a face near the photo's edge is padded (by its edge pixels, not a mirrored second face).
    scale = SCREEN_HEIGHT / (2 * half_h)
    matrix = np.array([[scale, 0.0, -crop_box[0] * scale], [0.0, scale, -crop_box[1] * scale]])
    screen_size = (round(2 * half_w * scale), SCREEN_HEIGHT)
    screen = cv2.warpAffine(photo, matrix, screen_size, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    height, width = screen.shape[:2]
    # Sub-pixels: a fine grid in the screen; resampled by the camera it aliases into moiré.
    period = rng.uniform(2.2, 4.0)
    angle = rng.uniform(0, math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = (xs * math.cos(angle) + ys * math.sin(angle)) * (2 * math.pi / period)
    screen *= (1.0 + rng.uniform(0.15, 0.35) * np.sin(phase))[..., None]
    screen *= np.array(rng.uniform(0.85, 1.1, 3), np.float32)  # the panel's colour cast
    gx, gy = rng.uniform(0, width), rng.uniform(0, height)
    spread = rng.uniform(0.08, 0.3) * width
    glare = np.exp(-((xs - gx) ** 2 + (ys - gy) ** 2) / (2 * spread**2))
    screen += (rng.uniform(60, 160) * glare)[..., None]
    bezel = int(rng.uniform(0.04, 0.1) * width)
    framed = np.full((height + 2 * bezel, width + 2 * bezel, 3), rng.uniform(5, 25), np.float32)
    framed[bezel:-bezel, bezel:-bezel] = screen
    face_centre = ((cx - crop_box[0]) * scale + bezel, (cy - crop_box[1]) * scale + bezel)
    return np.clip(framed, 0, 255).astype(np.uint8), face_centre


def cylinder_maps(
    photo_size: tuple[int, int],
    centre: tuple[float, float],
    scale: float,
    radius: float,
    pose: np.ndarray,
    translation: np.ndarray,
    size: tuple[int, int] = FRAME_SIZE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remap tables (frame pixel → photo pixel) for the photo wrapped on a vertical cylinder.

    The print bulges toward the camera like a face: its vertical centre line through `centre`
    touches the plane z = 0 of the print's own axes, and the sides curve away with `radius`
    (world units). Each frame pixel's ray is intersected with the cylinder's front half.
    Returns map_x, map_y and a mask of the pixels that hit the print.
    """
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ np.linalg.inv(camera_matrix(size)).T
    # Into the print's axes: p = R^T (s·ray - t).
    origin = -pose.T @ translation
    direction = rays @ pose  # (R^T d) for each ray, as rows
    # Cylinder: x² + (z - radius)² = radius², front half z < radius.
    dx, dz = direction[..., 0], direction[..., 2]
    ox, oz = origin[0], origin[2] - radius
    a = dx**2 + dz**2
    b = 2 * (ox * dx + oz * dz)
    c = ox**2 + oz**2 - radius**2
    disc = b**2 - 4 * a * c
    hit = disc >= 0
    s = (-b - np.sqrt(np.where(hit, disc, 0.0))) / (2 * a)
    point = origin + s[..., None] * direction
    arc = radius * np.arctan2(point[..., 0], radius - point[..., 2])
    map_x = (arc / scale + centre[0]).astype(np.float32)
    map_y = (point[..., 1] / scale + centre[1]).astype(np.float32)
    inside = hit & (s > 0) & (point[..., 2] < radius)
    inside &= (map_x >= 0) & (map_x <= photo_size[0] - 1) & (map_y >= 0) & (map_y <= photo_size[1] - 1)
    return map_x, map_y, inside


def turn_schedule(
    rng: np.random.Generator,
    first_sign: int,
    peak_yaw: tuple[float, float] = (25.0, 35.0),
    ramp_frames: tuple[int, int] = (3, 4),
) -> list[tuple[float, float, float]]:
    """Per-frame (yaw, pitch, roll) of the plane: frontal, turned one way, then the other.

    Peak yaw drawn in `peak_yaw`, pitch wandering up to ±35°, a little roll; a few frames per
    phase (`ramp_frames`, inclusive), as an attacker tilting a photo to follow "turn left, turn
    right" would.
    """
    peaks = [first_sign * rng.uniform(*peak_yaw), -first_sign * rng.uniform(*peak_yaw)]
    yaws = [0.0, 0.0]
    for peak in peaks:
        start = yaws[-1]
        steps = int(rng.integers(ramp_frames[0], ramp_frames[1] + 1))
        yaws += [start + (peak - start) * (k + 1) / steps for k in range(steps)] + [peak]
    yaws += [0.0]
    pitch_peak = rng.uniform(-35, 35)
    pitches = [pitch_peak * math.sin(math.pi * k / (len(yaws) - 1)) ** 2 for k in range(len(yaws))]
    return [
        (y + rng.normal(0, 1.5), p + rng.normal(0, 2.0), rng.normal(0, 4.0)) for y, p in zip(yaws, pitches, strict=True)
    ]


def render_attack(
    photo: np.ndarray,
    face_box: tuple[float, float, float, float],
    kind: str,
    rng: np.random.Generator,
    name: str = "photo",
    peak_yaw: tuple[float, float] = (25.0, 35.0),
    ramp_frames: tuple[int, int] = (3, 4),
) -> AttackVideo:
    """One attack video from `photo` (BGR) and its face's box: see the module docstring."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    x1, y1, x2, y2 = face_box
    centre = ((x1 + x2) / 2, (y1 + y2) / 2)
    face_px = max(x2 - x1, y2 - y1)
    surface = photo
    if kind == "screen":
        surface, centre = as_screen(photo, face_box, rng)
        face_px = SCREEN_HEIGHT / SCREEN_FACES_HIGH  # the face's size on the screen
    depth = camera_matrix()[0, 0]  # at this depth one world unit is one frame pixel
    radius = float(rng.uniform(0.6, 1.5)) if kind == "bent" else None
    first_sign = 1 if rng.random() < 0.5 else -1
    schedule = turn_schedule(rng, first_sign, peak_yaw, ramp_frames)
    moves: tuple[Move, ...] = ("straight", "left", "right") if first_sign > 0 else ("straight", "right", "left")
    base_face = rng.uniform(110, 190)  # face height in frame pixels when frontal
    offset = rng.uniform(-60, 60, 2)
    room = background(rng)  # the camera stays put: one backdrop per video
    frames, yaws, pitches = [], [], []
    for yaw, pitch, roll in schedule:
        zoom = base_face * rng.uniform(0.92, 1.08)
        scale = zoom / face_px
        translation = np.array([offset[0] + rng.normal(0, 8), offset[1] + rng.normal(0, 8), depth])
        pose = rotation(yaw, pitch, roll)
        frame = room.copy()
        if radius is not None:
            map_x, map_y, inside = cylinder_maps(
                (photo.shape[1], photo.shape[0]), centre, scale, radius * zoom, pose, translation
            )
            drawn = cv2.remap(photo, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            frame[inside] = drawn[inside]
        else:
            homography = plane_homography(pose, translation, scale, centre)
            cv2.warpPerspective(
                surface, homography, FRAME_SIZE, dst=frame, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT
            )
        frames.append(degrade(frame, rng))
        yaws.append(yaw)
        pitches.append(pitch)
    timestamps = [k * FRAME_INTERVAL_MS for k in range(len(frames))]
    return AttackVideo(
        kind=kind,
        photo=name,
        frames=frames,
        timestamps_ms=timestamps,
        yaw=yaws,
        pitch=pitches,
        moves=moves,
        radius=radius,
    )


def turned_parallax(
    frames: list[LivenessFrame], true_yaw: list[float], min_change: float = PARALLAX_MIN_YAW_CHANGE
) -> float | None:
    """The checker's parallax statistic on an attack, as if the pose estimator had been fooled.

    Median residual of the frames whose plane was truly turned ≥ `min_change` from the first
    (frontal) frame, against that frame; None when a needed face was not found. This isolates the
    parallax cue from the motion check, which alone already stops most of these attacks.
    """
    reference = frames[0]
    if reference.landmarks is None:
        return None
    iod = inter_ocular_distance(reference.landmarks)
    residuals = [
        parallax_residual(reference.landmarks, frame.landmarks, iod)
        for frame, yaw in zip(frames, true_yaw, strict=True)
        if frame.landmarks is not None and abs(yaw - true_yaw[0]) >= min_change
    ]
    return statistics.median(residuals) if residuals else None
