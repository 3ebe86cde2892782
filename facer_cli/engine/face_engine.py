"""The engine: one frame in, one report per face out.

Models are loaded once (and warmed up once on a GPU). Per frame it runs the detector,
then — for the subject (the largest face) only, unless asked for every face —
the landmark model that gives pose and the recognition model. It never runs a
model the settings did not ask for.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facer_cli.engine import pose as pose_estimation
from facer_cli.engine import quality
from facer_cli.engine.heap import reuse_freed_memory
from facer_cli.engine.modelpack import UNKNOWN_LICENCE, LoadedModels, load_models
from facer_cli.engine.quality import ARCFACE_KEYPOINTS, similarity_transform
from facer_cli.engine.reports import FaceReport, FrameReport, OtherFace
from facer_cli.errors import ImageError, ModelPackError
from facer_cli.settings import EngineSettings, Settings
from facer_cli.sources.images import load_image

# The detector's own floor: faces between it and detection_threshold are shown as rejected.
DETECTOR_FLOOR = 0.5
# Sharpness (variance of the Laplacian of the aligned face, `facer_cli.engine.quality`) at which the quality score's
# sharpness term is full: about the median of the sharp test photos (they read 216-1400).
SHARPNESS_SCALE = 400.0


def quality_score(det_score: float, sharpness: float) -> float:
    """0.6 × detector score + 0.4 × min(sharpness / 400, 1)."""
    return 0.6 * det_score + 0.4 * min(sharpness / SHARPNESS_SCALE, 1.0)


def past(value: float, limit: float, places: int, *, above: bool, spec: str = "f", sign: str = "") -> str:
    """`value` to `places` decimals, or as many more as it takes to read as past `limit`: a number shown
    beside its limit visibly exceeds it (yaw -25.4 beyond ±25 reads -25.4°, not -25°)."""
    text = ""
    for extra in range(7):
        text = format(value, f"{sign}.{places + extra}{spec}")
        read = float(text.rstrip("%")) / (100 if spec == "%" else 1)
        if (abs(read) > limit) if above else (read < limit):
            break
    return text


def competitors(face: FaceReport, settings: EngineSettings) -> int:
    """How many other faces are another person at the kiosk: at least `other_face_fraction` of the face's size
    (eye distance), `other_face_inside` of them inside the frame and `other_face_sharpness` of its sharpness.
    Faces measured by size only (`other_faces` without `crowd`) count by size alone."""
    if face.crowd is not None:
        limits = (settings.other_face_fraction, settings.other_face_inside, settings.other_face_sharpness)
        return sum(other.competes(*limits) for other in face.crowd)
    return sum(size >= settings.other_face_fraction for size in face.other_faces or ())


def decide(face: FaceReport, settings: EngineSettings) -> tuple[bool, str]:
    """Accept the face, or reject it with every reason that applies ("name value …", joined by "; ")."""
    if not face.is_subject:
        return False, "not the subject: a larger face is in the frame"
    reasons = []
    if face.det_score < settings.detection_threshold:
        reasons.append(
            f"detector score {past(face.det_score, settings.detection_threshold, 2, above=False)} "
            f"< {settings.detection_threshold:.2f}"
        )
    if face.eye_distance is not None and face.eye_distance < settings.min_face_size:
        reasons.append(
            f"face too small: eyes {past(face.eye_distance, settings.min_face_size, 1, above=False)} px apart "
            f"< {settings.min_face_size:g}"
        )
    crowd = competitors(face, settings)
    if crowd:
        reasons.append(f"{crowd + 1} people in view: one person at a time")
    if settings.require_pose and face.yaw is not None:
        if abs(face.yaw) > settings.pose_yaw_limit:
            reasons.append(
                f"yaw {past(face.yaw, settings.pose_yaw_limit, 0, above=True, sign='+')}° beyond ±{settings.pose_yaw_limit:g}°"
            )
        if face.pitch is not None and abs(face.pitch) > settings.pose_pitch_limit:
            reasons.append(
                f"pitch {past(face.pitch, settings.pose_pitch_limit, 0, above=True, sign='+')}° "
                f"beyond ±{settings.pose_pitch_limit:g}°"
            )
    if face.sharpness is not None and face.sharpness < settings.min_sharpness:
        reasons.append(
            f"blurred: sharpness {past(face.sharpness, settings.min_sharpness, 0, above=False)} < {settings.min_sharpness:g}"
        )
    if face.brightness is not None and face.brightness < settings.min_face_brightness:
        reasons.append(
            f"too dark: mean level {past(face.brightness, settings.min_face_brightness, 0, above=False)} "
            f"< {settings.min_face_brightness:g}"
        )
    burnt = []
    if face.clipped is not None and face.clipped > settings.max_clipped_fraction:
        burnt.append(
            f"{past(face.clipped, settings.max_clipped_fraction, 0, above=True, spec='%')} of eyes, nose "
            f"and mouth clipped > {settings.max_clipped_fraction:.0%}"
        )
    if face.brightness is not None and face.brightness > settings.max_face_brightness:
        burnt.append(
            f"mean level {past(face.brightness, settings.max_face_brightness, 0, above=True)} "
            f"> {settings.max_face_brightness:g}"
        )
    if burnt:
        reasons.append("burnt out: " + ", ".join(burnt))
    if face.light_balance is not None and face.light_balance > settings.max_light_imbalance:
        reasons.append(
            f"uneven light: one side {past(face.light_balance, settings.max_light_imbalance, 1, above=True)}× "
            f"brighter > {settings.max_light_imbalance:g}×"
        )
    if face.quality is not None and face.quality < settings.min_quality_score:
        reasons.append(
            f"quality {past(face.quality, settings.min_quality_score, 2, above=False)} < {settings.min_quality_score:.2f}"
        )
    return not reasons, "; ".join(reasons)


class _Crowd:
    """The other faces of one frame, measured as competitors for a face (`OtherFace`): each face's eye distance,
    share inside the frame and (only once it is asked for) sharpness, measured once per frame."""

    def __init__(self, image: np.ndarray, keypoints: np.ndarray):
        self.image, self.keypoints = image, keypoints
        height, width = image.shape[:2]
        self.eyes = [quality.eye_distance(points) for points in keypoints]
        self.inside = [quality.face_inside(points, width, height) for points in keypoints]
        self._sharpness: dict[int, float] = {}

    def sharpness(self, index: int) -> float:
        if index not in self._sharpness:
            region = quality.measured_region(self.image, self.keypoints[index])
            self._sharpness[index] = quality.sharpness(region)
        return self._sharpness[index]

    def around(self, index: int, sharpness: float | None) -> tuple[OtherFace, ...]:
        """Every face but `index`, relative to it (whose sharpness is `sharpness`), largest first."""
        if sharpness is not None:
            self._sharpness[index] = sharpness
        own_eyes, own_sharpness = max(self.eyes[index], 1e-6), max(self.sharpness(index), 1e-6)
        others = [
            OtherFace(
                size=self.eyes[j] / own_eyes,
                inside=self.inside[j],
                sharpness=self.sharpness(j) / own_sharpness,
            )
            for j in range(len(self.eyes))
            if j != index
        ]
        return tuple(sorted(others, key=lambda other: -other.size))


@dataclass
class EngineInfo:
    pack: str
    pack_folder: str
    fingerprint: str
    provider: str
    providers: list[str]
    modules: list[str]
    skipped_modules: dict[str, str]
    pose_source: str | None
    det_size: int
    load_seconds: float
    warmup_seconds: float
    files: dict[str, dict[str, str]]
    # The weights' licence (`ModelPack.licence`): an integrator's to check before deploying.
    model_licence: str = UNKNOWN_LICENCE
    # Why the models run on the CPU although a GPU was asked for (`modelpack.cpu_fallback_note`).
    provider_note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class FaceEngine:
    """Loads a model pack once and turns frames into `FrameReport`s."""

    def __init__(self, settings: EngineSettings | Settings | None = None, models: LoadedModels | None = None):
        # Only the engine's own settings are kept: nothing else can be read back from an engine.
        if settings is None:
            settings = EngineSettings()
        self._settings = settings.engine if isinstance(settings, Settings) else settings
        # Before the models load and any worker thread starts (the arena setting binds threads made after it).
        self.heap = reuse_freed_memory()
        self.models = models or load_models(self._settings)
        found = self.models.models
        self.detector = found["detection"]
        if not getattr(self.detector, "use_kps", False):
            raise ModelPackError(
                f"the detector of pack {self.models.pack.name!r} gives no keypoints: faces cannot be aligned"
            )
        self.recognizer = found["recognition"]
        self.pose_source = next((m for m in ("landmark_3d_68", "landmark_2d_106") if m in found), None)
        self.landmarker = found.get(self.pose_source) if self.pose_source else None
        self._prepare_detector()
        started = time.perf_counter()
        # On the CPU a first run costs no more than the next (measured: benchmarks/bench_speed.py),
        # so a warm-up would only add its own time; accelerators pick kernels on the first run.
        if self.models.provider != "CPUExecutionProvider":
            self._warm_up()
        self.warmup_seconds = time.perf_counter() - started

    # -- configuration -------------------------------------------------
    @property
    def settings(self) -> EngineSettings:
        return self._settings

    def _prepare_detector(self) -> None:
        size = self._settings.det_size
        floor = min(DETECTOR_FLOOR, self._settings.detection_threshold)
        self.detector.prepare(0, input_size=(size, size), det_thresh=floor)

    def _warm_up(self) -> None:
        size = self._settings.det_size
        self.detector.detect(np.zeros((size, size, 3), np.uint8))
        blank = np.zeros((112, 112, 3), np.uint8)
        keypoints = ARCFACE_KEYPOINTS.astype(np.float32)
        self._embed(blank, keypoints)
        if self.landmarker is not None:
            self._landmarks(blank, (0.0, 0.0, 112.0, 112.0))

    @property
    def fingerprint(self) -> str:
        return self.models.pack.fingerprint

    @property
    def info(self) -> EngineInfo:
        pack = self.models.pack
        return EngineInfo(
            pack=pack.name,
            pack_folder=str(pack.folder),
            fingerprint=pack.fingerprint,
            provider=self.models.provider,
            providers=self.models.providers,
            modules=list(self.models.models),
            skipped_modules=self.models.skipped,
            pose_source=self.pose_source,
            det_size=self._settings.det_size,
            load_seconds=round(self.models.load_seconds, 3),
            warmup_seconds=round(self.warmup_seconds, 3),
            files={t: {"path": str(f.path), "sha256": f.sha256} for t, f in pack.files.items()},
            model_licence=pack.licence,
            provider_note=self.models.provider_note,
        )

    # -- per frame -----------------------------------------------------
    def analyze_path(self, path: Path | str, all_faces: bool = False) -> FrameReport:
        """Load and analyse an image file; an unusable file gives a report with `error` set."""
        try:
            image = load_image(path, self._settings.max_image_pixels, self._settings.max_file_bytes)
        except ImageError as exc:
            return FrameReport(source=str(path), error=str(exc))
        return self.analyze(image, str(path), all_faces=all_faces)

    def analyze(self, image: np.ndarray, source: str = "frame", all_faces: bool = False) -> FrameReport:
        """Detect every face; measure the subject (or every face) and decide.

        Every face gets its eye distance (from the detector's keypoints); a measured face also gets the
        other faces' sizes relative to its own, pose, sharpness, exposure, quality and the embedding."""
        settings = self._settings
        boxes, keypoints = self.detector.detect(image)
        report = FrameReport(source=source, width=image.shape[1], height=image.shape[0])
        if len(boxes) == 0:
            return report
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        order = np.argsort(-areas, kind="stable")
        confident = [i for i in order if boxes[i, 4] >= settings.detection_threshold]
        subject = confident[0] if confident else order[0]
        crowd = _Crowd(image, keypoints)
        for rank, i in enumerate(order):
            face = FaceReport(
                index=rank + 1,
                box=(float(boxes[i, 0]), float(boxes[i, 1]), float(boxes[i, 2]), float(boxes[i, 3])),
                det_score=float(boxes[i, 4]),
                keypoints=[(float(x), float(y)) for x, y in keypoints[i]],
                is_subject=bool(i == subject),
                eye_distance=quality.eye_distance(keypoints[i]),
            )
            if face.is_subject or all_faces:
                self._measure(image, face, keypoints[i])
                face.crowd = crowd.around(int(i), face.sharpness)
                face.other_faces = tuple(other.size for other in face.crowd)
            face.accepted, face.reason = decide(face, settings)
            report.faces.append(face)
        return report

    def _measure(self, image: np.ndarray, face: FaceReport, keypoints: np.ndarray) -> None:
        if self.landmarker is not None:
            head = self._head_pose(image, face.box)
            face.yaw, face.pitch, face.roll = head.yaw, head.pitch, head.roll
        matrix = quality.alignment(keypoints)  # shared by the measurements and the embedding
        region = quality.measured_region(image, keypoints, matrix)
        face.sharpness = quality.sharpness(region)
        light = quality.exposure(region)
        face.brightness, face.clipped, face.light_balance = light.mean, light.clipped, light.balance
        face.quality = quality_score(face.det_score, face.sharpness)
        face.embedding = self._embed(image, keypoints, matrix)

    def embedding_input(
        self, image: np.ndarray, keypoints: np.ndarray, alignment: np.ndarray | None = None
    ) -> np.ndarray:
        """The recognition model's input: the face aligned on ArcFace's 5 reference points
        (`alignment`: `quality.alignment(keypoints)`, when already computed)."""
        model = self.recognizer
        size = model.input_size[0]
        if alignment is None:
            alignment = similarity_transform(keypoints, ARCFACE_KEYPOINTS)
        matrix = alignment * (size / 112.0)
        crop = cv2.warpAffine(image, matrix, (size, size), borderValue=0.0)
        return cv2.dnn.blobFromImage(crop, 1.0 / model.input_std, (size, size), (model.input_mean,) * 3, swapRB=True)

    def _embed(self, image: np.ndarray, keypoints: np.ndarray, alignment: np.ndarray | None = None) -> np.ndarray:
        model = self.recognizer
        blob = self.embedding_input(image, keypoints, alignment)
        vector = model.session.run(model.output_names, {model.input_name: blob})[0][0].astype(np.float32)
        return vector / np.linalg.norm(vector)

    def landmark_input(
        self, image: np.ndarray, box: tuple[float, float, float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The landmark model's input (insightface's crop: 1.5 × the box, centred) and its affine matrix."""
        model = self.landmarker
        assert model is not None, "no landmark model loaded"
        size = model.input_size[0]
        width, height = box[2] - box[0], box[3] - box[1]
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        scale = size / (max(width, height) * 1.5)
        matrix = np.array([[scale, 0.0, size / 2 - cx * scale], [0.0, scale, size / 2 - cy * scale]])
        crop = cv2.warpAffine(image, matrix, (size, size), borderValue=0.0)
        blob = cv2.dnn.blobFromImage(crop, 1.0 / model.input_std, (size, size), (model.input_mean,) * 3, swapRB=True)
        return blob, matrix

    def _landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """The landmark model's points in image coordinates."""
        model = self.landmarker
        assert model is not None, "no landmark model loaded"
        size = model.input_size[0]
        blob, matrix = self.landmark_input(image, box)
        scale = matrix[0, 0]
        pred = model.session.run(model.output_names, {model.input_name: blob})[0][0]
        pred = pred.reshape((-1, 3) if pred.shape[0] >= 3000 else (-1, 2))[-model.lmk_num :].astype(np.float64)
        pred[:, :2] = (pred[:, :2] + 1) * (size // 2)
        points = (pred[:, :2] - matrix[:, 2]) / scale
        if pred.shape[1] == 3:
            return np.column_stack([points, pred[:, 2] * (size // 2) / scale])
        return points

    # -- public per-face measurements (liveness uses them) ------------------
    # The points of the last head pose this thread measured (`analyze` computes them for the pose and
    # keeps none): asked again for the same image and box, `landmarks` returns them without running
    # the model a second time (11 ms of a 50 ms frame).
    _last_points = threading.local()

    def landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """The landmark model's points for the face in `box`, image pixels ((N, 2), or (N, 3) for 3-D models)."""
        last = getattr(self._last_points, "entry", None)
        if last is not None and last[0] is self and last[1]() is image and last[2] == tuple(box):
            return last[3]
        return self._landmarks(image, box)

    def embed(self, image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """The unit-length embedding of the face with these 5 detector keypoints."""
        return self._embed(image, keypoints)

    def _head_pose(self, image: np.ndarray, box: tuple[float, float, float, float]) -> pose_estimation.HeadPose:
        points = self._landmarks(image, box)
        self._last_points.entry = (self, weakref.ref(image), tuple(box), points)
        if self.pose_source == "landmark_3d_68":
            return pose_estimation.pose_from_landmarks_3d68(points)
        return pose_estimation.pose_from_landmarks_2d106(points, (image.shape[1], image.shape[0]))


@lru_cache(maxsize=4)
def _cached_engine(key: str) -> FaceEngine:
    return FaceEngine(EngineSettings.from_cache_key(key))


def get_engine(settings: EngineSettings | Settings | None = None) -> FaceEngine:
    """An engine for these settings, loaded once per process and reused.

    Only the engine's own settings (`EngineSettings`) pick the engine, so commands that
    differ in thresholds, store or server settings share one.
    """
    engine_settings = EngineSettings() if settings is None else settings
    if isinstance(engine_settings, Settings):
        engine_settings = engine_settings.engine
    return _cached_engine(engine_settings.cache_key())
