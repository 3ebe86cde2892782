"""Variants of real photos for the gate tests and benchmarks/bench_fta.py: the studio high-key look.

`high_key(image, keypoints, rng)` is made with a numpy Generator, so a fixed seed gives the same photos.
"""

from __future__ import annotations

import cv2
import numpy as np

from facer_cli.engine import quality


def _to_image(keypoints, points):
    m = cv2.invertAffineTransform(quality.alignment(np.asarray(keypoints, float)))
    pts = np.asarray(points, float)
    return np.column_stack([pts, np.ones(len(pts))]) @ m.T


def high_key(image, keypoints, rng, target=None):
    """A studio high-key version of a real photo: white seamless background behind the head and shoulders,
    exposure raised (a highlight-preserving tone curve) until the face reads `target` (drawn 170-195), a specular
    highlight on the forehead and, half the time, a small one on the tip of the nose."""
    h, w = image.shape[:2]
    scale = quality.eye_distance(keypoints) / 35.2  # image pixels per pixel of the 112-px aligned face
    (cx, cy), (nx, ny), (bx, by) = _to_image(keypoints, [[56, 58], [56, 112], [56, 150]])
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (int(cx), int(cy)), (int(50 * scale), int(68 * scale)), 0, 0, 360, 1.0, -1)
    neck = np.array(
        [
            [nx - 28 * scale, ny - 10 * scale],
            [nx + 28 * scale, ny - 10 * scale],
            [bx + 75 * scale, by],
            [bx + 170 * scale, h + 10],
            [bx - 170 * scale, h + 10],
            [bx - 75 * scale, by],
        ],
        np.int32,
    )
    cv2.fillPoly(mask, [neck], 1.0)
    mask = cv2.GaussianBlur(mask, (0, 0), 4 * scale)[..., None]
    x = image.astype(np.float32) / 255
    region = quality.measured_region(image, np.asarray(keypoints, float)).astype(np.float32) / 255
    target = rng.uniform(170, 195) / 255 if target is None else target / 255
    lo, hi = 1.0, 6.0
    for _ in range(30):  # the tone curve 1 - (1 - x)^g that brings the face region's mean to the target
        g = (lo + hi) / 2
        if float((1 - (1 - region) ** g).mean()) < target:
            lo = g
        else:
            hi = g
    lifted = 1 - (1 - x) ** max(g, 1.0)
    out = lifted * mask + rng.uniform(0.97, 1.0) * (1 - mask)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    spots = [
        (
            _to_image(keypoints, [[56 + rng.uniform(-6, 6), rng.uniform(16, 30)]])[0],
            rng.uniform(5, 10),
            rng.uniform(0.3, 0.6),
        )
    ]
    if rng.random() < 0.5:
        spots.append((_to_image(keypoints, [[56, 70]])[0], rng.uniform(1.5, 3), rng.uniform(0.3, 0.5)))
    for (sx, sy), radius, strength in spots:
        r = radius * scale
        out += strength * np.exp(-((xx - sx) ** 2 + (yy - sy) ** 2) / (2 * r * r))[..., None]
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)
