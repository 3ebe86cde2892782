"""What the engine says about one frame: a report per face, and the decision.

Plain dataclasses: the Rich tables, the JSON output and the store are all
made from these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class OtherFace:
    """Another face in the frame, measured as a competitor for the subject: another person at the kiosk
    is as large (eyes as far apart), as whole (inside the frame) and as sharp as the subject; a bystander
    behind, a face cut by the frame's edge or out of focus is not."""

    size: float  # its eye distance over the subject's
    inside: float = 1.0  # the share of it inside the frame (`quality.face_inside`), 0-1
    sharpness: float | None = None  # its sharpness over the subject's; None when not measured

    def competes(self, fraction: float, inside: float, sharpness: float) -> bool:
        """Whether it is another person at the kiosk, at these limits (the `other_face_*` settings)."""
        return (
            self.size >= fraction and self.inside >= inside and (self.sharpness is None or self.sharpness >= sharpness)
        )

    def to_dict(self) -> dict[str, float | None]:
        return {"size": round(self.size, 3), "inside": round(self.inside, 3), "sharpness": _round(self.sharpness, 3)}


@dataclass
class FaceReport:
    """One detected face: measurements, then the decision and why."""

    index: int
    box: tuple[float, float, float, float]
    det_score: float
    keypoints: list[tuple[float, float]]
    is_subject: bool
    yaw: float | None = None
    pitch: float | None = None
    roll: float | None = None
    sharpness: float | None = None
    quality: float | None = None
    eye_distance: float | None = None  # pixels between the eyes
    brightness: float | None = None  # mean grey level of the face, 0-255
    clipped: float | None = None  # share of burnt-out face pixels, 0-1
    light_balance: float | None = None  # brighter half's mean level over the darker half's
    # Each other face's size (eye distance) as a fraction of this one's, largest first; None when not measured.
    other_faces: tuple[float, ...] | None = None
    # The same faces, in the same order, with what makes each one a competitor or not; None when not measured
    # (then each size alone decides).
    crowd: tuple[OtherFace, ...] | None = None
    embedding: np.ndarray | None = field(default=None, repr=False)
    accepted: bool = False
    reason: str = ""

    @property
    def other_face_fraction(self) -> float | None:
        """The largest other face's size as a fraction of this one's (0 when alone)."""
        if self.other_faces is None:
            return None
        return max(self.other_faces, default=0.0)

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])

    def to_dict(self, with_embedding: bool = False) -> dict:
        data = {
            "face": self.index,
            "subject": self.is_subject,
            "box": [round(v, 1) for v in self.box],
            "det_score": round(self.det_score, 4),
            "keypoints": [[round(x, 1), round(y, 1)] for x, y in self.keypoints],
            "yaw": _round(self.yaw, 2),
            "pitch": _round(self.pitch, 2),
            "roll": _round(self.roll, 2),
            "sharpness": _round(self.sharpness, 1),
            "quality": _round(self.quality, 4),
            "eye_distance": _round(self.eye_distance, 1),
            "brightness": _round(self.brightness, 1),
            "clipped": _round(self.clipped, 4),
            "light_balance": _round(self.light_balance, 3),
            "other_face_fraction": _round(self.other_face_fraction, 3),
            "other_faces": None if self.crowd is None else [other.to_dict() for other in self.crowd],
            "accepted": self.accepted,
            "reason": self.reason,
        }
        if with_embedding and self.embedding is not None:
            data["embedding"] = [float(v) for v in self.embedding]
        return data


@dataclass
class FrameReport:
    """One frame (image file, uploaded image or camera frame) and its faces, largest first."""

    source: str
    faces: list[FaceReport] = field(default_factory=list)
    width: int = 0
    height: int = 0
    error: str | None = None

    @property
    def subject(self) -> FaceReport | None:
        return next((face for face in self.faces if face.is_subject), None)

    @property
    def accepted(self) -> bool:
        subject = self.subject
        return self.error is None and subject is not None and subject.accepted

    @property
    def embedding(self) -> np.ndarray | None:
        subject = self.subject
        return None if subject is None else subject.embedding

    @property
    def quality(self) -> float | None:
        subject = self.subject
        return None if subject is None else subject.quality

    @property
    def reason(self) -> str:
        """Why the frame cannot be used, in words a person can act on; empty when accepted."""
        if self.error is not None:
            return self.error
        subject = self.subject
        if subject is None:
            return "no face"
        return subject.reason

    def to_dict(self, with_embedding: bool = False) -> dict:
        return {
            "source": self.source,
            "width": self.width,
            "height": self.height,
            "faces_found": len(self.faces),
            "accepted": self.accepted,
            "reason": self.reason,
            "error": self.error,
            "faces": [face.to_dict(with_embedding) for face in self.faces],
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)
