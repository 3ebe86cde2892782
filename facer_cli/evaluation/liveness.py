"""`facer evaluate --liveness DIR`: APCER and BPCER of the liveness check on your own videos.

DIR holds `live/` (bona fide presentations: a real person answering) and `attack/` (presentation
attacks: prints, screens, masks, replays) video files; `attack/` may have one subfolder per attack
kind (`attack/print/`, `attack/screen/`), reported apart as ISO/IEC 30107-3 asks (APCER per
presentation attack instrument species, and the worst of them).

A recorded video cannot follow a random challenge, so each is checked against the fixed challenge
it performs: the moves in `NAME.challenge.txt` beside the video, else in a `challenge.txt` in its
folder (or a parent up to DIR), else `straight right`. Moves are separated by spaces, commas or
arrows (`straight, left, right`); each turn's target is 20° and each step has `liveness_step_s`. Videos are read
from their first frame (no warm-up) at `frame_interval_ms` spacing, as the camera reads them.

Definitions (ISO/IEC 30107-3):

- **APCER** = attack videos accepted as live / attack videos (per species, and the highest);
- **BPCER** = live videos refused / live videos;
- each with its exact 95 % Clopper–Pearson interval (with 0 errors in n, the upper bound is
  1 − 0.025^(1/n): about 3.7/n — 0 of 28 bounds the rate only below 12 %).

The trade-off: a video is accepted at parallax threshold t when it made every move as asked and in
time, stayed one face, and its parallax statistic (the median residual of its turned frames) is
≥ t. The statistic does not depend on t, so one pass gives the whole table.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facer_cli.errors import InputError
from facer_cli.evaluation.intervals import binomial_ci
from facer_cli.liveness import Challenge, LivenessChecker, check_camera
from facer_cli.liveness.challenge import MOVES, STEP_TIME_LIMIT_S, Move

if TYPE_CHECKING:
    from facer_cli.engine.face_engine import FaceEngine
    from facer_cli.settings import Settings

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
DEFAULT_MOVES: tuple[Move, ...] = ("straight", "right")
SWEEP = (0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.05, 0.055, 0.06, 0.07)


# -- the data -----------------------------------------------------------------------------------------
@dataclass
class VideoOutcome:
    path: str
    kind: str  # "live" or the attack species
    challenge: tuple[str, ...]
    live: bool
    reason: str
    parallax: float | None
    motion_ok: bool  # every move made in order and in time, one face throughout
    frames: int
    seconds: float

    def accepted_at(self, threshold: float) -> bool:
        return self.motion_ok and self.parallax is not None and self.parallax >= threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "challenge": list(self.challenge),
            "live": self.live,
            "reason": self.reason,
            "parallax": None if self.parallax is None else round(self.parallax, 4),
            "motion_ok": self.motion_ok,
            "frames": self.frames,
            "seconds": round(self.seconds, 2),
        }


@dataclass
class Rate:
    errors: int
    total: int
    low: float
    high: float

    @classmethod
    def of(cls, errors: int, total: int) -> Rate:
        low, high = binomial_ci(errors, total)
        return cls(errors, total, low, high)

    @property
    def rate(self) -> float | None:
        return None if self.total == 0 else self.errors / self.total

    def to_dict(self) -> dict[str, Any]:
        rate = self.rate
        return {
            "rate": None if rate is None else round(rate, 6),
            "errors": self.errors,
            "total": self.total,
            "ci95": [round(self.low, 6), round(self.high, 6)],
        }


@dataclass
class TradeOff:
    threshold: float
    bpcer: Rate
    apcer: dict[str, Rate]  # per species

    @property
    def apcer_max(self) -> float | None:
        rates = [rate.rate for rate in self.apcer.values() if rate.rate is not None]
        return max(rates) if rates else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "bpcer": self.bpcer.to_dict(),
            "apcer": {kind: rate.to_dict() for kind, rate in self.apcer.items()},
            "apcer_max": self.apcer_max,
        }


@dataclass
class LivenessEvaluation:
    folder: str
    threshold: float
    frame_interval_ms: float
    videos: list[VideoOutcome]
    tradeoff: list[TradeOff] = field(default_factory=list)

    @property
    def live(self) -> list[VideoOutcome]:
        return [v for v in self.videos if v.kind == "live"]

    @property
    def species(self) -> list[str]:
        return sorted({v.kind for v in self.videos if v.kind != "live"})

    @property
    def current(self) -> TradeOff:
        return next(t for t in self.tradeoff if math.isclose(t.threshold, self.threshold))

    def to_dict(self) -> dict[str, Any]:
        current = self.current
        return {
            "folder": self.folder,
            "parallax_threshold": self.threshold,
            "frame_interval_ms": self.frame_interval_ms,
            "live_videos": len(self.live),
            "attack_videos": len(self.videos) - len(self.live),
            "bpcer": current.bpcer.to_dict(),
            "apcer": {kind: rate.to_dict() for kind, rate in current.apcer.items()},
            "apcer_max": current.apcer_max,
            "tradeoff": [t.to_dict() for t in self.tradeoff],
            "videos": [v.to_dict() for v in self.videos],
        }


def tradeoff_at(videos: list[VideoOutcome], threshold: float) -> TradeOff:
    live = [v for v in videos if v.kind == "live"]
    bpcer = Rate.of(sum(not v.accepted_at(threshold) for v in live), len(live))
    apcer = {}
    for kind in sorted({v.kind for v in videos if v.kind != "live"}):
        attacks = [v for v in videos if v.kind == kind]
        apcer[kind] = Rate.of(sum(v.accepted_at(threshold) for v in attacks), len(attacks))
    return TradeOff(threshold, bpcer, apcer)


# -- reading the folder ------------------------------------------------------------------------------
def parse_challenge(text: str, source: str, time_limit_s: float = STEP_TIME_LIMIT_S) -> Challenge:
    """`straight right`, `straight, left, right` or `straight → left → right` (turn targets 20°)."""
    moves = [w.lower() for w in re.split(r"[\s,;]+|->|→", text.strip()) if w]
    for move in moves:
        if move not in MOVES:
            raise InputError(f"{source}: {move!r} is not a move (one of {', '.join(MOVES)})")
    try:
        return Challenge.of(*moves, time_limit_s=time_limit_s)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InputError(f"{source}: {exc}") from None


def challenge_of(video: Path, root: Path, time_limit_s: float = STEP_TIME_LIMIT_S) -> tuple[Challenge, str]:
    """The video's challenge and where it came from: NAME.challenge.txt, a challenge.txt up to `root`, the default."""
    candidates = [video.with_name(video.stem + ".challenge.txt")]
    folder = video.parent
    while True:
        candidates.append(folder / "challenge.txt")
        if folder == root or root not in folder.parents:
            break
        folder = folder.parent
    for candidate in candidates:
        if candidate.is_file():
            text = candidate.read_text(encoding="utf-8")
            return parse_challenge(text, str(candidate), time_limit_s), str(candidate)
    return Challenge.of(*DEFAULT_MOVES, time_limit_s=time_limit_s), "default"


def find_videos(root: Path) -> list[tuple[Path, str]]:
    """(video, kind) for every video under live/ ("live") and attack/ (its subfolder's name, else "attack")."""
    if not root.is_dir():
        raise InputError(f"{root}: no such folder (expected live/ and attack/ video folders in it)")
    found = []
    for part in ("live", "attack"):
        folder = root / part
        if not folder.is_dir():
            raise InputError(f"{root}: no {part}/ folder (expected live/ and attack/ with video files)")
        videos = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        if not videos:
            raise InputError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)})")
        for video in videos:
            relative = video.relative_to(folder)
            kind = "live" if part == "live" else (relative.parts[0] if len(relative.parts) > 1 else "attack")
            found.append((video, kind))
    return found


def evaluate_liveness(
    folder: Path | str, settings: "Settings", engine: "FaceEngine | None" = None, progress: Any = None
) -> LivenessEvaluation:
    """Run each video's challenge with the real engine; APCER, BPCER and the threshold trade-off."""
    from facer_cli.service.liveness import require_landmarks_106
    from facer_cli.sources.camera import Camera

    if engine is None:
        from facer_cli.engine.face_engine import get_engine

        engine = get_engine(settings)
    require_landmarks_106(engine)
    root = Path(folder)
    outcomes = []
    for video, kind in find_videos(root):
        challenge, _ = challenge_of(video, root, settings.liveness_step_s)
        checker = LivenessChecker(challenge, parallax_min_residual=settings.liveness_parallax_min)
        camera = Camera(str(video), warmup_frames=0, interval_ms=settings.frame_interval_ms, timeout_s=None)
        result = check_camera(engine, camera, challenge, checker=checker)
        outcomes.append(
            VideoOutcome(
                path=str(video.relative_to(root)),
                kind=kind,
                challenge=challenge.moves,
                live=result.live,
                reason=result.reason,
                parallax=result.parallax,
                motion_ok=result.steps_done == len(challenge.steps) and result.parallax is not None,
                frames=len(result.cues),
                seconds=result.elapsed_ms / 1000,
            )
        )
        if progress is not None:
            progress(1)
    thresholds = sorted(set(SWEEP) | {settings.liveness_parallax_min})
    evaluation = LivenessEvaluation(str(root), settings.liveness_parallax_min, settings.frame_interval_ms, outcomes)
    evaluation.tradeoff = [tradeoff_at(outcomes, t) for t in thresholds]
    return evaluation
