"""Plain records the store reads and writes, and the rules for what may be stored.

No decisions live here: a record says what was stored, not whether it matches.
"""

from __future__ import annotations

import unicodedata
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np

from facer_cli.errors import StoreError, UnknownUserError, UsageError, UserNameError

if TYPE_CHECKING:
    from facer_cli.engine.reports import FrameReport
    from facer_cli.templates.aggregate import Template

Mode = Literal["new", "replace", "add"]
MODES: tuple[Mode, ...] = ("new", "replace", "add")
NAME_MAX = 128
# Outcome of an attempt that never got as far as a similarity.
NO_PROBE = "no_probe"
# Outcomes of attempts refused by liveness: the challenge failed, or the user was locked out.
NOT_LIVE = "not_live"
LOCKED_OUT = "locked_out"
# A template added to or replacing a user's that did not match their templates, allowed explicitly
# (`enroll --allow-different-face`): recorded in the user's audit log with its similarity.
FACE_CHANGED = "face_changed"


# The API key a request was made with (`facer serve`: its name, set for the request by the key check,
# `facer_cli.server.deps`), recorded in the verify and identify logs by the records made while it
# is set; unset (None) for the CLI and the Python API. A context variable, so each request keeps its
# own, in the worker threads it runs in too.
ACTING_KEY: ContextVar[str | None] = ContextVar("facer_acting_key", default=None)


def acting_key() -> str | None:
    """The name of the API key the current request was made with; None outside a request."""
    return ACTING_KEY.get()


def parse_mode(value: str) -> Mode:
    """An enrollment mode from text: "new", "replace" or "add"."""
    for mode in MODES:
        if value == mode:
            return mode
    raise UsageError(f"mode must be one of {', '.join(MODES)}, not {value!r}")


def now() -> str:
    """The time in ISO 8601 with its UTC offset, as stored."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# Invisible letters (category Lo/Mn/So, so not caught as format characters): the combining grapheme
# joiner, the Hangul fillers and the blank Braille pattern, which render as nothing and make
# look-alike names.
INVISIBLE_LETTERS = frozenset("\u034f\u115f\u1160\u3164\uffa0\u2800")
# Combining marks (categories Mn, Me) one letter may carry: a fully pointed Hebrew shin carries
# three (dagesh, shin dot, vowel), a Tibetan stack three; "zalgo" text carries dozens.
MAX_MARKS_PER_LETTER = 3
# The explicit direction controls: marks (ALM, LRM, RLM), embeddings and overrides, isolates.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def validate_user_name(name: Any) -> str:
    """Any Unicode text, trimmed (and NFC-normalised), 1–128 characters; no control characters, and
    nothing invisible: no bidirectional controls (U+202E …), zero-width characters (U+200B …) or other
    format characters (Unicode category Cf), since two names that look the same would be two users;
    something that renders (not only spaces and marks), and at most `MAX_MARKS_PER_LETTER` combining
    marks on one letter. Names that look like each other are one name: the store compares their
    canonical keys (`facer_cli.store.names.name_key`)."""
    if not isinstance(name, str):
        raise UserNameError(f"a user name must be text, not {type(name).__name__}")
    cleaned = unicodedata.normalize("NFC", name.strip())
    if not cleaned:
        raise UserNameError("the user name is empty")
    if len(cleaned) > NAME_MAX:
        raise UserNameError(f"the user name has {len(cleaned)} characters; at most {NAME_MAX} are allowed")
    for c in cleaned:
        category = unicodedata.category(c)
        if category in ("Cc", "Zl", "Zp"):
            raise UserNameError(f"the user name holds a control character (U+{ord(c):04X}); use printable text")
        if category == "Cs":
            raise UserNameError(f"the user name is not valid Unicode text (a lone surrogate, U+{ord(c):04X})")
        if category == "Cf" or c in INVISIBLE_LETTERS:
            kind = "a text-direction control" if c in BIDI_CONTROLS else "an invisible character"
            raise UserNameError(
                f"the user name holds {kind} (U+{ord(c):04X}); names may not hold invisible or "
                "text-direction characters, so that two names that look the same are never two users"
            )
    _check_marks(cleaned)
    return cleaned


def _check_marks(name: str) -> None:
    """A name renders something, and no letter carries more than `MAX_MARKS_PER_LETTER` combining marks."""
    from facer_cli.store.names import _ignored

    if all(c.isspace() or _ignored(c) or unicodedata.category(c) in ("Mn", "Me") for c in name):
        raise UserNameError(
            "the user name renders blank: it holds only spaces, combining marks or characters that show nothing"
        )
    if unicodedata.category(name[0]) in ("Mn", "Me"):
        raise UserNameError(f"the user name starts with a combining mark (U+{ord(name[0]):04X}) that has no letter")
    run, base = 0, name[0]
    for c in unicodedata.normalize("NFD", name):
        if unicodedata.category(c) in ("Mn", "Me") and not _ignored(c):
            run += 1
            if run > MAX_MARKS_PER_LETTER:
                raise UserNameError(
                    f"the user name stacks more than {MAX_MARKS_PER_LETTER} combining marks on one letter "
                    f"({base!r}, U+{ord(base):04X}); at most {MAX_MARKS_PER_LETTER} are allowed"
                )
        elif not _ignored(c):
            run, base = 0, c


def vector_to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def blob_to_vector(blob: bytes, dimension: int) -> np.ndarray:
    vector = np.frombuffer(blob, dtype="<f4")
    if vector.shape != (dimension,):
        raise StoreError(
            f"{{db}} is corrupt: a stored template has {vector.size} values instead of {dimension}; "
            "restore it from a backup"
        )
    return vector.astype(np.float32)


@dataclass
class StoredTemplate:
    id: int
    user: str
    dimension: int
    model: str
    frames_seen: int | None
    frames_used: int | None
    outliers: int | None
    mean_quality: float | None
    source: str | None
    created: str
    samples: int = 0
    vector: np.ndarray | None = field(default=None, repr=False)
    # False: imported under a fingerprint facer could not check (not the current model's).
    model_verified: bool = True

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "user": self.user,
            "dimension": self.dimension,
            "model": self.model,
            "frames_seen": self.frames_seen,
            "frames_used": self.frames_used,
            "outliers": self.outliers,
            "mean_quality": None if self.mean_quality is None else round(self.mean_quality, 4),
            "source": self.source,
            "created": self.created,
            "samples": self.samples,
            "model_verified": self.model_verified,
        }


def unknown_user(name: str, lookalike: str | None = None) -> UnknownUserError:
    """No user named `name`; naming the enrolled user whose name looks the same (`lookalike`), if any."""
    if lookalike is not None:
        return UnknownUserError(
            f"no user named {name!r}; the enrolled user {lookalike!r} has a name that looks the same: give it exactly"
        )
    return UnknownUserError(f"no user named {name!r}")


def chosen_template(user: str, templates: Sequence[StoredTemplate], template_id: int | None) -> StoredTemplate:
    """What `export` gives of a user's templates (oldest first): the one with `template_id`, or the newest."""
    if not templates:
        raise UnknownUserError(f"{user!r} has no template; enroll them again")
    if template_id is None:
        return templates[-1]
    for template in templates:
        if template.id == template_id:
            return template
    raise UnknownUserError(
        f"{templates[0].user!r} has no template {template_id} (has: {', '.join(str(t.id) for t in templates)})"
    )


@dataclass
class UserSummary:
    name: str
    created: str
    updated: str
    templates: int
    frames: int
    models: list[str]
    last_enrolled: str | None
    last_verified: str | None = None
    # Models of their templates imported under a fingerprint facer could not check.
    unverified_models: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Attempt:
    id: int
    user: str
    created: str
    similarity: float | None
    band: str
    source: str | None
    frames_seen: int | None
    frames_used: int | None
    template_id: int | None = None
    live: bool | None = None  # None: no liveness challenge was asked
    liveness_reason: str | None = None
    key_name: str | None = None  # the API key of the request (None: the CLI, the Python API)

    def __post_init__(self) -> None:
        if self.live is not None:
            self.live = bool(self.live)

    def to_dict(self) -> dict:
        data = dict(self.__dict__)
        if self.similarity is not None:
            data["similarity"] = round(self.similarity, 6)
        return data


@dataclass
class Lookalike:
    """Another user whose template matched this one's at or above identify_threshold when one of
    them was enrolled anyway (`--allow-lookalike`)."""

    user: str
    similarity: float
    created: str
    model: str | None = None

    def to_dict(self) -> dict:
        return {**self.__dict__, "similarity": round(self.similarity, 6)}


@dataclass
class UserDetails:
    user: UserSummary
    templates: list[StoredTemplate]
    attempts: list[Attempt]
    lookalikes: list[Lookalike] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            **self.user.to_dict(),
            "template_list": [t.to_dict() for t in self.templates],
            "recent_attempts": [a.to_dict() for a in self.attempts],
            "lookalikes": [x.to_dict() for x in self.lookalikes],
        }


@dataclass
class Removal:
    user: str
    templates: int
    samples: int
    # True: a reader still held older pages, so the embeddings' bytes may be in the files until
    # the next connection that can checkpoint erases them.
    erasure_pending: bool = False
    # Why the erasure is pending, where the backend says more than the default (PostgreSQL: the role
    # may not VACUUM the tables, or another transaction still sees the old rows). Left out of the
    # JSON when None.
    erasure_note: str | None = None

    def to_dict(self) -> dict:
        data = dict(self.__dict__)
        if data["erasure_note"] is None:
            del data["erasure_note"]
        return data


@dataclass
class AttemptRecord:
    """What the audit log keeps of one verify attempt (never an embedding)."""

    user: str
    model: str
    source: str
    band: str
    frames_seen: int | None = None
    frames_used: int | None = None
    similarity: float | None = None
    threshold_high: float | None = None
    threshold_low: float | None = None
    template_id: int | None = None
    live: bool | None = None  # the liveness outcome; None when no challenge was asked
    liveness_reason: str | None = None
    liveness: str | None = None  # JSON: the challenge and its summary (LivenessResult.to_dict without cues)
    key_name: str | None = field(default_factory=acting_key)  # the request's API key (None: the CLI)


@dataclass
class IdentifyRecord:
    """What the identify audit log keeps of one attempt: the candidates' names and scores and the
    decision, never an embedding."""

    model: str
    source: str
    decision: str
    user: str | None = None
    similarity: float | None = None
    threshold: float | None = None
    margin: float | None = None
    candidates: list[dict] = field(default_factory=list)  # {"user": name, "similarity": score}
    gallery_size: int | None = None
    frames_seen: int | None = None
    frames_used: int | None = None
    key_name: str | None = field(default_factory=acting_key)  # the request's API key (None: the CLI)


@dataclass
class ApiKey:
    """A named API key of `facer serve`, as stored: its scope, when it was made and revoked, and the
    salted hash of its token (`facer_cli.service.keys`) — never the token. `to_dict` leaves the
    hash out."""

    name: str
    scope: str
    created: str
    revoked: str | None = None
    key_hash: str = field(default="", repr=False)

    @property
    def active(self) -> bool:
        return self.revoked is None

    def to_dict(self) -> dict:
        return {"name": self.name, "scope": self.scope, "created": self.created, "revoked": self.revoked}


def sample_rows(template: "Template", frames: Sequence["FrameReport"]) -> list[dict]:
    """One row per frame: measurements and the decision; an embedding only for frames the
    template was built from (an outlier may be someone else's face, so it is not kept)."""
    used = set(template.used)
    rows = []
    for position, frame in enumerate(frames):
        face = frame.subject
        if position in used:
            decision, reason = "kept", ""
        elif position in template.outlier_cosines:
            decision = "outlier"
            reason = f"outlier: cosine {template.outlier_cosines[position]:.2f} to the other frames"
        else:
            decision, reason = "rejected", frame.reason or "no face"
        embedding = frame.embedding if position in used else None
        rows.append(
            {
                "position": position,
                "source": frame.source,
                "embedding": None if embedding is None else vector_to_blob(embedding),
                "det_score": None if face is None else face.det_score,
                "quality": None if face is None else face.quality,
                "yaw": None if face is None else face.yaw,
                "pitch": None if face is None else face.pitch,
                "roll": None if face is None else face.roll,
                "sharpness": None if face is None else face.sharpness,
                "decision": decision,
                "reason": reason,
            }
        )
    return rows
