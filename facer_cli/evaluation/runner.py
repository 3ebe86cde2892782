"""Run an evaluation: embed every distinct image once, score the pairs, compute the figures.

Images are analysed in parallel: a process pool with one engine per worker
process, loaded once when the worker starts, each limited to a share of the
cores (ONNX Runtime and OpenCV threads) so the workers do not fight over them.
One worker runs in this process with the cached engine of `engine.get_engine`.
The pool never forks this process (ONNX Runtime's threads do not survive a
fork): workers come from a fork server, or are spawned, so a script that calls
`evaluate` with several workers needs the usual `if __name__ == "__main__":`
guard, as with any multiprocessing code.

Pairs protocol: every pair of the dataset is scored image against image.
Enroll protocol (identity folders only): for every identity with more than k
images, each run of k consecutive images (cyclically, so one template per
image) is enrolled by facer's one template rule (`service.rules.template_for`:
min(min_valid_frames, k) usable frames of k images), and the template is
compared with the identity's other images (genuine) and with every image of the
other identities (impostor). An image without a usable face, or a template that
cannot be built, gives its pairs no score: they are not acquired (see `curves` for
how they count); `Acquisition` is the failure to acquire over the distinct images.
Identify protocol (identity folders only): open-set 1:N, see `evaluation.identify`.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from facer_cli.engine.reports import FrameReport
from facer_cli.errors import InputError, TooFewFramesError, UsageError
from facer_cli.evaluation.curves import DEFAULT_FAR_POINTS
from facer_cli.evaluation.dataset import Dataset
from facer_cli.evaluation.intervals import fraction, interval, interval_list, rounded
from facer_cli.evaluation.recommend import Metrics, evaluate_scores
from facer_cli.settings import EngineSettings, Settings

if TYPE_CHECKING:
    from facer_cli.engine.face_engine import FaceEngine
    from facer_cli.evaluation.identify import IdentifyOutcome

PROTOCOLS = ("pairs", "enroll", "identify")
# Modules the pool's fork server imports once, so each worker starts without re-importing them.
_PRELOAD = ["facer_cli.engine.face_engine", "facer_cli.evaluation.runner"]
_CHUNKS_PER_WORKER = 8

_worker_engine: "FaceEngine | None" = None  # one per worker process


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# -- embedding ---------------------------------------------------------------------------------


def _init_worker(settings_json: str, threads: int) -> None:
    global _worker_engine
    import cv2

    from facer_cli.engine.face_engine import FaceEngine
    from facer_cli.engine.modelpack import load_models

    cv2.setNumThreads(threads)
    settings = EngineSettings.from_cache_key(settings_json)
    _worker_engine = FaceEngine(settings, load_models(settings, intra_op_threads=threads))


def _analyze(path: str) -> FrameReport:
    assert _worker_engine is not None, "the pool's initializer loads the engine"
    return _compact(_worker_engine.analyze_path(path))


def _compact(frame: FrameReport) -> FrameReport:
    """The frame with its subject only: all the evaluation needs, and less to send between processes."""
    subject = frame.subject
    faces = [subject] if subject is not None else []
    return FrameReport(frame.source, faces, frame.width, frame.height, frame.error)


def _pool_context() -> multiprocessing.context.BaseContext:
    # Never fork a process that may already hold ONNX Runtime sessions (their threads do not survive it).
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


def embed_images(
    paths: Sequence[Path | str],
    settings: Settings,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[FrameReport]:
    """Analyse each image once, in order; `progress(n)` is called as images finish."""
    cores = available_cores()
    workers = max(1, min(workers or cores, len(paths)))
    sources = [str(p) for p in paths]
    if workers == 1:
        from facer_cli.engine.face_engine import get_engine

        engine = get_engine(settings.engine)
        frames = []
        for source in sources:
            frames.append(_compact(engine.analyze_path(source)))
            if progress:
                progress(1)
        return frames
    threads = threads_per_worker or max(1, cores // workers)
    chunksize = max(1, len(sources) // (workers * _CHUNKS_PER_WORKER))
    frames = []
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_pool_context(),
        initializer=_init_worker,
        initargs=(settings.engine.cache_key(), threads),
    ) as pool:
        for frame in pool.map(_analyze, sources, chunksize=chunksize):
            frames.append(frame)
            if progress:
                progress(1)
    return frames


def embedding_matrix(frames: Sequence[FrameReport], dimension: int | None = None) -> np.ndarray:
    """One row per frame: the subject's embedding when the frame is accepted, NaN otherwise."""
    vectors = [frame.embedding for frame in frames if frame.accepted]
    dim = dimension or (len(vectors[0]) if vectors and vectors[0] is not None else 512)
    matrix = np.full((len(frames), dim), np.nan, dtype=np.float32)
    for row, frame in enumerate(frames):
        if frame.accepted:
            matrix[row] = frame.embedding
    return matrix


# -- scoring ---------------------------------------------------------------------------------------


def pair_scores(dataset: Dataset, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(genuine, impostor) cosine similarities of every pair; NaN where an image is unusable."""
    if dataset.labels is None:
        assert dataset.pair_a is not None and dataset.pair_b is not None and dataset.pair_same is not None
        a, b, same = dataset.pair_a, dataset.pair_b, dataset.pair_same
    else:
        # Every unordered pair, row by row (no n × n matrix or index arrays held at once).
        labels = dataset.labels
        genuine, impostor = [np.empty(0)], [np.empty(0)]
        for row in range(len(labels) - 1):
            scores = (embeddings[row + 1 :] @ embeddings[row]).astype(np.float64)
            same = labels[row + 1 :] == labels[row]
            genuine.append(scores[same])
            impostor.append(scores[~same])
        return np.concatenate(genuine), np.concatenate(impostor)
    scores = np.empty(len(a), np.float64)
    for start in range(0, len(a), 65536):
        part = slice(start, start + 65536)
        scores[part] = np.einsum("ij,ij->i", embeddings[a[part]], embeddings[b[part]])
    return scores[same], scores[~same]


@dataclass
class EnrollmentFailure:
    identity: str
    images: list[str]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"identity": self.identity, "images": self.images, "reason": self.reason}


@dataclass
class EnrollOutcome:
    k: int
    templates: int
    identities: list[str]
    skipped: list[str]  # identities with k images or fewer: probes only
    failures: list[EnrollmentFailure]
    genuine: np.ndarray = field(repr=False)
    impostor: np.ndarray = field(repr=False)


def enroll_scores(
    dataset: Dataset, frames: Sequence[FrameReport], embeddings: np.ndarray, settings: Settings, k: int
) -> EnrollOutcome:
    """Templates from k images through the real aggregation, against single-image probes."""
    from facer_cli.service.inputs import Frames
    from facer_cli.service.rules import Purpose, template_for

    if dataset.labels is None:
        raise UsageError("the enroll protocol needs identity folders (a CSV of pairs has no identities)")
    if k < 1:
        raise UsageError(f"images per enrolled template must be at least 1, got {k}")
    genuine: list[np.ndarray] = []
    impostor: list[np.ndarray] = []
    enrolled, skipped, failures = [], [], []
    templates = 0
    for identity, rows in dataset.by_identity.items():
        n = len(rows)
        if n <= k:
            skipped.append(identity)
            continue
        enrolled.append(identity)
        others = np.nonzero(dataset.labels != dataset.labels[rows[0]])[0]
        for start in range(n):
            chosen = [rows[(start + j) % n] for j in range(k)]
            probes = [row for row in rows if row not in chosen]
            templates += 1
            try:
                chosen_frames = Frames([frames[i] for i in chosen], "enroll protocol", explicit_images=True)
                template = template_for(chosen_frames, settings, Purpose.PROBE)
                vector = template.vector.astype(np.float32)
            except TooFewFramesError as exc:
                failures.append(EnrollmentFailure(identity, [frames[i].source for i in chosen], str(exc)))
                vector = np.full(embeddings.shape[1], np.nan, np.float32)
            genuine.append((embeddings[probes] @ vector).astype(np.float64))
            impostor.append((embeddings[others] @ vector).astype(np.float64))
    empty = np.empty(0, np.float64)
    return EnrollOutcome(
        k,
        templates,
        enrolled,
        skipped,
        failures,
        np.concatenate(genuine) if genuine else empty,
        np.concatenate(impostor) if impostor else empty,
    )


# -- results -----------------------------------------------------------------------------------------


@dataclass
class ProtocolResult:
    name: str
    metrics: Metrics
    enroll: EnrollOutcome | None = None

    @property
    def label(self) -> str:
        return f"enroll (k={self.enroll.k})" if self.enroll else "pairs"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"protocol": self.name, **self.metrics.to_dict()}
        if self.enroll is not None:
            data["enroll"] = {
                "k": self.enroll.k,
                "templates": self.enroll.templates,
                "identities": self.enroll.identities,
                "skipped_identities": self.enroll.skipped,
                "failed_templates": [f.to_dict() for f in self.enroll.failures],
            }
        return data


@dataclass
class UnusableImage:
    """An image that failed to acquire: the gates refused it, it had no face, or it could not be read."""

    path: str
    reason: str
    groups: list[str] = field(default_factory=list)  # its reasons by their leading words ("blurred", …)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason, "reason_groups": self.groups}

    @classmethod
    def of(cls, frame: FrameReport) -> "UnusableImage":
        reason = (frame.reason or "no face").removeprefix(frame.source + ": ")
        if frame.error is not None:
            return cls(frame.source, reason, [UNREADABLE])
        return cls(frame.source, reason, reason_groups(reason))


UNREADABLE = "unreadable file"


def reason_group(reason: str) -> str:
    """One gate reason by its leading words: "blurred: sharpness 13 < 80" → "blurred",
    "3 people in view: one person at a time" → "N people in view", "detector score 0.41 < 0.50" →
    "detector score", "yaw +31° beyond ±25°" → "yaw"."""
    head, colon, _ = reason.partition(":")
    words = head.split()
    if colon:
        return " ".join("N" if any(c.isdigit() for c in word) else word for word in words) or reason.strip()
    kept = []
    for word in words:
        if any(c.isdigit() or c in "+-±<>=" for c in word):
            break
        kept.append(word)
    return " ".join(kept) or reason.strip()


def reason_groups(reasons: str) -> list[str]:
    """Every reason of a refusal ("; "-joined by the gates), grouped, each once, in order."""
    groups = [reason_group(part) for part in reasons.split("; ") if part.strip()]
    return list(dict.fromkeys(groups)) or ["no face"]


@dataclass
class Acquisition:
    """Failure to acquire (ISO/IEC 19795-1's FTA) over the distinct images: how many the gates (or the
    decoder) refused, and why. An image refused for several reasons counts under each of them, so
    the reasons can add up to more than the images refused."""

    images: int
    failed: list[UnusableImage]

    @property
    def acquired(self) -> int:
        return self.images - len(self.failed)

    @property
    def fta(self) -> float | None:
        return fraction(len(self.failed), self.images)

    @property
    def fta_ci(self) -> tuple[float, float] | None:
        return interval(len(self.failed), self.images)

    def by_reason(self) -> list[tuple[str, int]]:
        """(reason group, images) pairs, most images first."""
        counts: dict[str, int] = {}
        for item in self.failed:
            for group in item.groups:
                counts[group] = counts.get(group, 0) + 1
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "acquired": self.acquired,
            "not_acquired": len(self.failed),
            "fta": rounded(self.fta),
            "fta_ci95": interval_list(self.fta_ci),
            "by_reason": [
                {"reason": group, "images": count, "rate": rounded(fraction(count, self.images))}
                for group, count in self.by_reason()
            ],
        }


@dataclass
class Evaluation:
    """Everything `facer evaluate` reports; the table and the JSON are both made from this."""

    dataset: Dataset
    model: str
    threshold_high: float
    threshold_low: float
    target_far: float
    target_frr: float
    workers: int
    embed_seconds: float
    unusable: list[UnusableImage]
    protocols: list[ProtocolResult]
    identify: "IdentifyOutcome | None" = None

    @property
    def images(self) -> int:
        return len(self.dataset.images)

    @property
    def images_per_second(self) -> float:
        return self.images / self.embed_seconds if self.embed_seconds > 0 else 0.0

    @property
    def acquisition(self) -> Acquisition:
        """FTA over the distinct images, by reason."""
        return Acquisition(self.images, self.unusable)

    def protocol(self, name: str) -> ProtocolResult | None:
        return next((p for p in self.protocols if p.name == name), None)

    @property
    def recommended_from(self) -> ProtocolResult:
        """Enrolled templates against live probes is what `facer verify` does: prefer that protocol."""
        enroll = self.protocol("enroll")
        if enroll is not None and enroll.metrics.pairs:
            return enroll
        return self.protocols[0]

    def to_dict(self) -> dict[str, Any]:
        recommended = self.recommended_from
        return {
            "dataset": self.dataset.to_dict(),
            "model": self.model,
            "thresholds": {"cosine_threshold_high": self.threshold_high, "cosine_threshold_low": self.threshold_low},
            "targets": {"far": self.target_far, "frr": self.target_frr},
            "unusable_images": [u.to_dict() for u in self.unusable],
            "acquisition": self.acquisition.to_dict(),
            "protocols": {p.name: p.to_dict() for p in self.protocols},
            "recommended": {"protocol": recommended.name, **recommended.metrics.recommendation.to_dict()},
            "identify": None if self.identify is None else self.identify.to_dict(),
            "timing": {
                "workers": self.workers,
                "embed_seconds": round(self.embed_seconds, 3),
                "images_per_second": round(self.images_per_second, 2),
            },
        }


def evaluate(
    dataset: Dataset,
    settings: Settings | None = None,
    protocol: str = "pairs",
    k: int | None = None,
    target_far: float = 1e-3,
    target_frr: float = 1e-2,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    far_points: Sequence[float] = DEFAULT_FAR_POINTS,
    progress: Callable[[int], None] | None = None,
    allow_below_floor: bool = False,
    target_fpir: float = 1e-2,
) -> Evaluation:
    """Embed, score and measure; with `protocol="enroll"` or `"identify"` the pairs protocol is
    reported beside it. `target_fpir`: the identify protocol's target for identify_threshold.

    `settings` default to the defaults alone (front ends pass `load_settings()`'s). A recommended
    cosine_threshold_high stays above every impostor seen and at or above the model's safe floor
    unless `allow_below_floor` (a recommended identify_threshold likewise, and never below
    cosine_threshold_high).
    """
    from facer_cli.engine.modelpack import locate_pack

    settings = settings or Settings()

    if protocol not in PROTOCOLS:
        raise UsageError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    for name, value in (("target FAR", target_far), ("target FRR", target_frr)):
        if not 0.0 <= value < 1.0:
            raise UsageError(f"{name} must be at least 0 and below 1, got {value:g}")
    if workers is not None and workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}")
    k = settings.min_valid_frames if k is None else k
    if protocol in ("enroll", "identify"):
        if dataset.labels is None:
            raise UsageError(f"the {protocol} protocol needs identity folders (a CSV of pairs has no identities)")
        if k < 1:
            raise UsageError(f"images per enrolled template must be at least 1, got {k}")
    if sum(dataset.pair_counts) == 0:
        raise InputError(f"{dataset.source}: no pairs to score (it needs at least two images)")
    model = locate_pack(settings).fingerprint
    started = time.perf_counter()
    used_workers = max(1, min(workers or available_cores(), len(dataset.images)))
    frames = embed_images(dataset.images, settings, used_workers, threads_per_worker, progress)
    embed_seconds = time.perf_counter() - started
    embeddings = embedding_matrix(frames)
    unusable = [UnusableImage.of(frame) for frame in frames if not frame.accepted]

    def measure(genuine: np.ndarray, impostor: np.ndarray) -> Metrics:
        return evaluate_scores(
            genuine,
            impostor,
            settings.cosine_threshold_high,
            settings.cosine_threshold_low,
            target_far,
            target_frr,
            far_points,
            allow_below_floor,
        )

    genuine, impostor = pair_scores(dataset, embeddings)
    results = [ProtocolResult("pairs", measure(genuine, impostor))]
    if protocol == "enroll":
        outcome = enroll_scores(dataset, frames, embeddings, settings, k)
        results.append(ProtocolResult("enroll", measure(outcome.genuine, outcome.impostor), outcome))
    identified = None
    if protocol == "identify":
        from facer_cli.evaluation.identify import identify_scores

        identified = identify_scores(
            dataset, frames, embeddings, settings, k, target_fpir, allow_below_floor=allow_below_floor
        )
    return Evaluation(
        dataset,
        model,
        settings.cosine_threshold_high,
        settings.cosine_threshold_low,
        target_far,
        target_frr,
        used_workers,
        embed_seconds,
        unusable,
        results,
        identified,
    )
