"""Per-frame measurements behind the quality gates, in small functions the engine calls.

Everything is measured on a **scale-independent view of the face**: the face
aligned on ArcFace's five reference points into a 112 × 112 crop (the geometry
the recognition model sees), shrunk with area averaging when the face is larger
than that (so a big face is not read through aliasing) and enlarged bilinearly
when it is smaller. Only the central `REGION` of the crop is read: eyes, nose,
mouth and cheeks, not the hair or the background at its borders. So the same
photo reads about the same at 240p and at 1080p, and a figure means the same
whatever the camera's resolution.

- `sharpness`: variance of the Laplacian of that region (grey levels 0-255).
  Real photos read 74-1840 (the lowest: small faces cut out of a group photo);
  Gaussian blur of σ = 2 px at this scale brings every one of them to 49 or less.
- `exposure`: ISO/IEC 29794-5's illumination components on the same region:
  mean grey level (too dark below `min_face_brightness`, burnt out above
  `max_face_brightness`) and left/right balance (the brighter half's mean over
  the darker half's); and the share of clipped (burnt-out) pixels where clipping
  hides identity: the `INNER` box around the five keypoints (eyes, nose, mouth),
  not the forehead, the cheeks' edges or the background a studio portrait
  shows white.
- `eye_distance`: inter-ocular distance in image pixels, from the detector's
  keypoints (the recognition model's input is 112 px wide; its eyes are 35 px apart).
- `face_inside`: the share of a face inside the frame: of the box a whole face
  has around its five keypoints (`FACE_BOX`), since the detector's own box
  stops at the frame's edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

# ArcFace's reference positions of the 5 keypoints in a 112×112 crop.
ARCFACE_KEYPOINTS = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
CROP = 112
REGION = 0.75  # the central 84 × 84 pixels of the crop
CLIPPED_LEVEL = 250  # a grey level at or above this is burnt out
# Where clipping is counted, in the 112-px crop's pixels (x1, y1, x2, y2): the five keypoints' box widened
# by 10 px on each side (eyes with their brows, nose, mouth), cut to the measured region: 56 × 57 pixels.
INNER = (28, 41, 84, 98)
# The box a whole face has around its five keypoints, in the 112-px crop's pixels: the detector's box,
# median over the whole faces of the test photos (people/, scenes/, t1.jpg, gdp.jpg, players.jpg …).
FACE_BOX = (13.0, 9.0, 100.0, 122.0)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama) mapping src points onto dst, as a 2×3 matrix."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1
    rotation = u @ np.diag(d) @ vt
    scale = (s * d).sum() / src_c.var(0).sum()
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def alignment(keypoints: np.ndarray) -> np.ndarray:
    """The 2×3 matrix taking the image onto the 112 × 112 aligned face (ArcFace's reference points)."""
    return similarity_transform(keypoints, ARCFACE_KEYPOINTS)


def aligned_gray(
    image: np.ndarray,
    keypoints: np.ndarray,
    size: int = CROP,
    share: float = 1.0,
    matrix: np.ndarray | None = None,
) -> np.ndarray:
    """The face aligned into a size × size grey crop (uint8), or only its central `share` (each side).

    Only the part of the image the output covers is read. A face larger than the crop is first
    shrunk by area averaging (no aliasing), then placed by bicubic interpolation (which keeps
    more of the finest detail than bilinear, so sharp and blurred faces stay far apart).
    `aligned_gray(image, kps, share=s)` is `face_region(aligned_gray(image, kps), s)` (give or take the
    area averaging's pixel phase), cheaper. `matrix`: `alignment(keypoints)`, when already computed.
    """
    matrix = (alignment(keypoints) if matrix is None else matrix) * (size / 112.0)
    margin = int(round(size * (1.0 - share) / 2))
    out = size - 2 * margin
    matrix[:, 2] -= margin
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    corners = np.array([[0, 0, 1], [out, 0, 1], [0, out, 1], [out, out, 1]], np.float64)
    corners = corners @ cv2.invertAffineTransform(matrix).T
    pad = 2 + 3 / min(scale, 1.0)  # bicubic reads 2 pixels around, area averaging a little more
    height, width = image.shape[:2]
    x1 = int(min(max(0, np.floor(corners[:, 0].min() - pad)), width - 1))
    y1 = int(min(max(0, np.floor(corners[:, 1].min() - pad)), height - 1))
    x2 = int(max(min(width, np.ceil(corners[:, 0].max() + pad)), x1 + 1))
    y2 = int(max(min(height, np.ceil(corners[:, 1].max() + pad)), y1 + 1))
    part = image[y1:y2, x1:x2]
    if part.ndim == 3:
        part = cv2.cvtColor(part, cv2.COLOR_BGR2GRAY)
    matrix[:, 2] += matrix[:, 0] * x1 + matrix[:, 1] * y1  # the output's matrix on the part's own coordinates
    step = int(0.5 / scale)
    if step >= 2 and min(part.shape[:2]) >= 2 * step:
        # A face more than 4 × the crop's size is first shrunk by a whole factor that leaves at least
        # 2 × to go: OpenCV's fast path for area averaging (a large face then costs a fraction of a
        # millisecond instead of two), and the last shrink still averages over whole crop pixels.
        rows, columns = part.shape[0] - part.shape[0] % step, part.shape[1] - part.shape[1] % step
        part = cv2.resize(part[:rows, :columns], (columns // step, rows // step), interpolation=cv2.INTER_AREA)
        matrix[:, :2] *= step
        scale *= step
    if scale < 1.0 and min(part.shape[:2]) * scale >= 1:
        small = cv2.resize(part, (0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        matrix[:, 0] *= part.shape[1] / small.shape[1]
        matrix[:, 1] *= part.shape[0] / small.shape[0]
        part = small
    return cv2.warpAffine(part, matrix, (out, out), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def face_region(crop: np.ndarray, share: float = REGION) -> np.ndarray:
    """The central `share` of an aligned crop (each side)."""
    n = crop.shape[0]
    margin = int(round(n * (1.0 - share) / 2))
    return crop[margin : n - margin, margin : n - margin]


def measured_region(image: np.ndarray, keypoints: np.ndarray, matrix: np.ndarray | None = None) -> np.ndarray:
    """What sharpness and exposure are read from: the central `REGION` of the aligned 112-px face."""
    return aligned_gray(image, keypoints, CROP, REGION, matrix)


def sharpness(region: np.ndarray) -> float:
    """Variance of the Laplacian of the face region (grey levels)."""
    _, std = cv2.meanStdDev(cv2.Laplacian(region, cv2.CV_32F))
    return float(std[0, 0] ** 2)


@dataclass(frozen=True)
class Exposure:
    """ISO/IEC 29794-5's illumination components, on the face region (clipping: on its `INNER` box)."""

    mean: float  # mean grey level, 0-255
    clipped: float  # share of the INNER box's pixels at or above CLIPPED_LEVEL, 0-1
    balance: float  # brighter half's mean over the darker half's, ≥ 1

    def to_dict(self) -> dict[str, float]:
        return {"mean": round(self.mean, 1), "clipped": round(self.clipped, 4), "balance": round(self.balance, 3)}


def inner_box(region: np.ndarray) -> np.ndarray:
    """The `INNER` box (eyes, nose, mouth) of a measured region (`measured_region`: 84 × 84 pixels)."""
    margin = (CROP - region.shape[0]) // 2  # the crop's pixels left out on each side
    x1, y1, x2, y2 = (v - margin for v in INNER)
    return region[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)]


def exposure(region: np.ndarray) -> Exposure:
    """Exposure of a measured region (`measured_region`: the central `REGION` of the aligned 112-px face)."""
    half = region.shape[1] // 2
    left = float(region[:, :half].mean())
    right = float(region[:, region.shape[1] - half :].mean())
    low, high = sorted((left, right))
    inner = inner_box(region)
    return Exposure(
        mean=float(region.mean()),
        clipped=float(np.count_nonzero(inner >= CLIPPED_LEVEL)) / max(inner.size, 1),
        balance=(high + 1.0) / (low + 1.0),
    )


def eye_distance(keypoints: np.ndarray | Sequence[Sequence[float]]) -> float:
    """Inter-ocular distance in pixels (keypoints 0 and 1: the eyes)."""
    points = np.asarray(keypoints, np.float64)
    return float(np.hypot(*(points[1] - points[0])))


def face_size(box: Sequence[float]) -> float:
    """A face's linear size: √ of its box area, in pixels."""
    return float(np.sqrt(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])))


def face_inside(keypoints: np.ndarray | Sequence[Sequence[float]], width: int, height: int) -> float:
    """The share (0-1) of the face with these keypoints that lies inside a width × height frame: of `FACE_BOX`
    mapped into the image (a face cut by the frame's edge has its box, but not this one, stop there)."""
    inverse = cv2.invertAffineTransform(alignment(np.asarray(keypoints, np.float64)))
    x1, y1, x2, y2 = FACE_BOX
    corners = np.array([[x1, y1, 1.0], [x2, y1, 1.0], [x2, y2, 1.0], [x1, y2, 1.0]]) @ inverse.T
    quad = corners.astype(np.float32)
    area = float(abs(cv2.contourArea(quad)))
    if area <= 0:
        return 0.0
    frame = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    inside, _ = cv2.intersectConvexConvex(quad, frame)
    return min(1.0, max(0.0, float(inside) / area))
