"""The one "template from frames" rule every front end follows.

- An **enrollment** (a template that is stored) needs `min_valid_frames` usable frames.
- Any other template — a verify probe, `facer capture`, a token over HTTP — needs
  `min_valid_frames` too, but never more than were asked for: from N named images
  with N below it, all N (one photo can verify or make a token); from a camera
  asked for `max_frames` below it, that many.

When too few are usable, the error says what was seen and what to do about it.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Sequence

from facer_cli.errors import TooFewFramesError
from facer_cli.templates.aggregate import Template, build_template

if TYPE_CHECKING:
    from facer_cli.engine.reports import FrameReport
    from facer_cli.service.inputs import Frames
    from facer_cli.settings import Settings


class Purpose(str, Enum):
    ENROLL = "enroll"
    PROBE = "probe"


def needed_frames(frames: "Frames", settings: "Settings", purpose: Purpose) -> int:
    if purpose is Purpose.ENROLL:
        return settings.min_valid_frames
    # Never more than were asked for: N named images, or max_frames from a camera.
    offered = len(frames.frames) if frames.explicit_images else settings.max_frames
    return max(1, min(settings.min_valid_frames, offered))


def template_for(frames: "Frames", settings: "Settings", purpose: Purpose) -> Template:
    """The template of these frames under the rule above, or `TooFewFramesError` saying what to do."""
    needed = needed_frames(frames, settings, purpose)
    try:
        return build_template(frames.frames, needed, settings.outlier_cosine_threshold)
    except TooFewFramesError as exc:
        stopped = frames.capture.stats.stopped if frames.capture is not None else None
        parts = [str(exc)]
        if stopped:
            parts.append(f"capture stopped: {stopped}")
        parts.append(advice(frames.frames))
        raise TooFewFramesError("; ".join(parts), needed=needed) from None


# Words of a rejection reason -> what a person can do about it, most useful first.
TIPS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("no face",), "keep one face fully in view"),
    (("people in view",), "one person at a time: nobody else close to the camera"),
    (("face too small",), "come closer to the camera (or use a higher resolution)"),
    (("yaw", "pitch"), "look straight at the camera"),
    (("blurred",), "hold still and keep the face in focus"),
    (("too dark",), "add light in front of the face"),
    (("burnt out",), "avoid direct light or flash on the face"),
    (("uneven light",), "light the face evenly from the front, not from one side"),
    (("quality", "detector score"), "use sharper, evenly lit photos"),
)


def advice(frames: Sequence["FrameReport"]) -> str:
    """What a person can do about the rejections seen, most useful first."""
    reasons = " ".join(frame.reason for frame in frames if not frame.accepted)
    tips = [tip for words, tip in TIPS if any(word in reasons for word in words)]
    if any(frame.error for frame in frames):
        tips.append("replace the files that cannot be read")
    tips.append("add more photos or frames")
    return "to fix: " + ", ".join(tips)
