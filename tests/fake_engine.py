"""A fake engine for the front ends' shape tests: `FaceEngine`'s interface to the service, without ONNX.

The service layer asks an engine for `analyze(image, source, all_faces=)`, `analyze_path(path, all_faces=)`,
`settings`, `fingerprint` and `info`; this one answers them by fixed rules, in well under a millisecond a frame
(no model is loaded), so tests of tables, `--json` documents, HTTP bodies, exit codes and error mapping need
not run the real models. The rules:

* a picture with hardly any contrast (a blank wall) holds no face;
* any other picture holds one face, centred, its side 0.6 of the picture's shorter side, with measurements
  that pass every default gate (yaw and pitch 2-8° either side; the gates themselves are the engine's `decide`,
  so settings still apply);
  `crowd(picture, n)` makes a picture hold `n` faces: the subject and `n - 1` at half its size;
* the embedding is made from the picture's own content, left-right symmetrised: the same picture — from a
  file or an upload, re-encoded, or mirrored — is the same person (cosine near 1), and two different
  pictures are two people (cosine near 0). Two different photos of one person do NOT match: tests of the
  engine's real answers (decisions, gates, identification) use the real engine.

Fingerprint `fake:…` and pack "fake": templates made by it never pass for a real model's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from facer_cli.engine import quality
from facer_cli.engine.face_engine import EngineInfo, decide, quality_score
from facer_cli.engine.reports import FaceReport, FrameReport
from facer_cli.errors import ImageError
from facer_cli.settings import EngineSettings, Settings
from facer_cli.sources.images import decode_image, load_image

FINGERPRINT = "fake:f4ce0000f4ce0000"
DIMENSION = 512
# Below this spread of grey levels (over a 64 × 64 thumbnail) a picture holds no face.
BLANK_SPREAD = 4.0
SUBJECT_SIDE = 0.6  # of the picture's shorter side


@cache
def _projection() -> np.ndarray:
    """A fixed projection of a picture's 64 × 64 detail onto 512 values (seeded: the same on every run)."""
    return np.random.default_rng(20240607).standard_normal((DIMENSION, 64 * 64)).astype(np.float32)


def _digest(image: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest()


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    if image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image


def _embedding(gray: np.ndarray, digest: bytes) -> np.ndarray:
    """Unit vector from the picture's fine detail, the same for the picture and its mirror image."""
    small = cv2.resize(gray, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    small = small + small[:, ::-1]
    detail = small - cv2.GaussianBlur(small, (0, 0), 1.5)
    vector = _projection() @ detail.ravel()
    norm = float(np.linalg.norm(vector))
    if norm < 1e-6:  # no detail at all: a vector of its own, from the pixels' hash
        vector = np.random.default_rng(int.from_bytes(digest[:8], "big")).standard_normal(DIMENSION).astype(np.float32)
        norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32)


def _keypoints(box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    """ArcFace's five reference points placed in a square box."""
    x1, y1, x2, _ = box
    scale = (x2 - x1) / quality.CROP
    return [(float(x1 + x * scale), float(y1 + y * scale)) for x, y in quality.ARCFACE_KEYPOINTS]


@dataclass
class FakeEngine:
    """Deterministic stand-in for `facer_cli.engine.face_engine.FaceEngine` (see the module's rules)."""

    engine_settings: EngineSettings = field(default_factory=EngineSettings)
    # Pictures (by their pixels' hash) that hold more than one face: shared by every `for_settings` copy.
    crowds: dict[bytes, int] = field(default_factory=dict)
    # Frames analysed, by every copy: a test can tell that the fake (not the real engine) answered.
    analysed: list[str] = field(default_factory=list)

    def for_settings(self, settings: EngineSettings | Settings | None = None) -> "FakeEngine":
        """The stand-in for `get_engine(settings)`: the same rules under these engine settings."""
        engine_settings = EngineSettings() if settings is None else settings
        if isinstance(engine_settings, Settings):
            engine_settings = engine_settings.engine
        return FakeEngine(engine_settings, self.crowds, self.analysed)

    def crowd(self, picture: Path | bytes, faces: int) -> None:
        """From now on `picture` (a file, or its bytes) holds `faces` faces."""
        data = picture if isinstance(picture, bytes) else Path(picture).read_bytes()
        self.crowds[_digest(decode_image(data, "picture", self.engine_settings.max_image_pixels))] = faces

    # -- what FaceEngine shows the service --------------------------------------
    @property
    def settings(self) -> EngineSettings:
        return self.engine_settings

    @property
    def fingerprint(self) -> str:
        return FINGERPRINT

    @property
    def pose_source(self) -> str | None:
        return self.engine_settings.pose_module

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(
            pack="fake",
            pack_folder="",
            fingerprint=FINGERPRINT,
            provider="CPUExecutionProvider",
            providers=["CPUExecutionProvider"],
            modules=list(self.engine_settings.allowed_modules),
            skipped_modules={},
            pose_source=self.pose_source,
            det_size=self.engine_settings.det_size,
            load_seconds=0.0,
            warmup_seconds=0.0,
            files={},
        )

    def analyze_path(self, path: Path | str, all_faces: bool = False) -> FrameReport:
        settings = self.engine_settings
        try:
            image = load_image(path, settings.max_image_pixels, settings.max_file_bytes)
        except ImageError as exc:
            return FrameReport(source=str(path), error=str(exc))
        return self.analyze(image, str(path), all_faces=all_faces)

    def analyze(self, image: np.ndarray, source: str = "frame", all_faces: bool = False) -> FrameReport:
        self.analysed.append(source)
        height, width = image.shape[:2]
        report = FrameReport(source=source, width=width, height=height)
        gray = _gray(image)
        if float(cv2.resize(gray, (64, 64), interpolation=cv2.INTER_AREA).std()) < BLANK_SPREAD:
            return report
        digest = _digest(image)
        side = SUBJECT_SIDE * min(width, height)
        x1, y1 = (width - side) / 2, (height - side) / 2
        boxes = [(x1, y1, x1 + side, y1 + side)]
        corners = [(0.0, 0.0), (width - side / 2, 0.0), (0.0, height - side / 2), (width - side / 2, height - side / 2)]
        for n in range(self.crowds.get(digest, 1) - 1):
            cx, cy = corners[n % 4]
            boxes.append((cx, cy, cx + side / 2, cy + side / 2))
        for rank, box in enumerate(boxes):
            keypoints = _keypoints(box)
            face = FaceReport(
                index=rank + 1,
                box=box,
                det_score=0.8 + 0.19 * digest[0] / 255,
                keypoints=keypoints,
                is_subject=rank == 0,
                eye_distance=quality.eye_distance(keypoints),
            )
            if face.is_subject or all_faces:
                self._measure(face, boxes, rank, gray, digest)
            face.accepted, face.reason = decide(face, self.engine_settings)
            report.faces.append(face)
        return report

    def _measure(self, face: FaceReport, boxes: list, rank: int, gray: np.ndarray, digest: bytes) -> None:
        """Measurements inside the default gates, varying a little with the picture."""
        size = boxes[rank][2] - boxes[rank][0]
        face.other_faces = tuple((b[2] - b[0]) / size for i, b in enumerate(boxes) if i != rank)
        if self.pose_source is not None:  # 2-8° off frontal in yaw and pitch (either side), roll within ±5°
            face.yaw, face.pitch = ((2 + 6 * (digest[i] & 127) / 127) * (1 if digest[i] & 128 else -1) for i in (1, 2))
            face.roll = 10 * (digest[3] / 255 - 0.5)
        face.sharpness = 200.0 + digest[4]
        face.brightness = 100.0 + digest[5] / 4
        face.clipped = 0.0
        face.light_balance = 1.0 + digest[6] / 510
        face.quality = quality_score(face.det_score, face.sharpness)
        face.embedding = _embedding(gray, digest)
