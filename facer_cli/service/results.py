"""What each operation returns: dataclasses that both the Rich tables and the JSON are made from.

`to_dict()` is the `--json` output of the CLI command and the body of the HTTP
endpoint for the same operation. Times are ISO 8601 with their UTC offset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from facer_cli.store import Removal, StoredTemplate, UserDetails, UserSummary

if TYPE_CHECKING:
    import numpy as np

    from facer_cli.engine.reports import FrameReport
    from facer_cli.service.inputs import Frames
    from facer_cli.templates.aggregate import Template
    from facer_cli.templates.matching import Comparison

__all__ = [
    "CaptureResult",
    "CheckResult",
    "CompareResult",
    "CopyResult",
    "DemoResult",
    "DoctorInfo",
    "EnrollResult",
    "ExportResult",
    "InspectResult",
    "Removal",
    "StoredTemplate",
    "TableCopy",
    "UserDetails",
    "UserList",
    "UserSummary",
    "VerifyResult",
    "template_details",
]


def template_details(template: "Template", frames: Sequence["FrameReport"]) -> dict:
    return {
        **template.to_dict(),
        "kept": [frames[i].source for i in template.used],
        "outliers": [frames[i].source for i in template.outliers],
    }


@dataclass
class InspectResult:
    frames: list["FrameReport"]
    template: "Template | None"
    model: str

    def to_dict(self) -> dict:
        return {
            "frames": [frame.to_dict() for frame in self.frames],
            "template": None if self.template is None else template_details(self.template, self.frames),
            "model": self.model,
        }


@dataclass
class CompareResult:
    a: str
    b: str
    comparison: "Comparison"
    frames: list["FrameReport"]

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, **self.comparison.to_dict(), "frames": [f.to_dict() for f in self.frames]}


@dataclass
class CaptureResult:
    """A template (a token), how it was made, and where it was written, if anywhere."""

    template: "Template"
    frames: "Frames"
    model: str
    out: str | None = None

    @property
    def vector(self) -> "np.ndarray":
        return self.template.vector

    def to_dict(self) -> dict:
        return {
            "token": [float(v) for v in self.template.vector],
            "out": self.out,
            "model": self.model,
            "template": template_details(self.template, self.frames.frames),
            **self.frames.to_dict(),
        }


@dataclass
class EnrollResult:
    user: str
    mode: str
    template: "Template"
    stored: StoredTemplate
    frames: "Frames"
    # Other people it matched at or above identify_threshold, enrolled anyway (allow_lookalike).
    lookalikes: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "user": self.user,
            "mode": self.mode,
            "lookalikes": self.lookalikes,
            "template_id": self.stored.id,
            "model": self.stored.model,
            "created": self.stored.created,
            "template": template_details(self.template, self.frames.frames),
            **self.frames.to_dict(),
        }


@dataclass
class ImportResult:
    """A `.npy` template stored (`users import`), and the people it matched at or above
    identify_threshold, recorded as look-alikes (allow_lookalike)."""

    stored: StoredTemplate
    lookalikes: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {**self.stored.to_dict(), "lookalikes": self.lookalikes}


@dataclass
class VerifyResult:
    """The best of the user's templates against the probe, and the attempt recorded."""

    user: str
    comparison: "Comparison"
    template_id: int
    templates_compared: int
    model: str
    attempt_id: int | None
    created: str
    probe: "Template"
    frames: "Frames"

    @property
    def band(self) -> Any:
        return self.comparison.band

    @property
    def similarity(self) -> float:
        return self.comparison.similarity

    def to_dict(self) -> dict:
        return {
            "user": self.user,
            **self.comparison.to_dict(),
            "template_id": self.template_id,
            "templates_compared": self.templates_compared,
            "model": self.model,
            "attempt_id": self.attempt_id,
            "created": self.created,
            "probe": template_details(self.probe, self.frames.frames),
            **self.frames.to_dict(),
        }


@dataclass
class UserList:
    users: list[UserSummary]

    def to_dict(self) -> dict:
        return {"count": len(self.users), "users": [user.to_dict() for user in self.users]}


@dataclass
class ExportResult:
    template: StoredTemplate
    out: str

    def to_dict(self) -> dict:
        return {**self.template.to_dict(), "out": self.out}


@dataclass
class CheckResult:
    db: str
    check: str
    users: int
    # {"user", "looks_like"}: users kept from before names were compared by how they look, whose
    # name looks like another enrolled user's (rename one of each pair).
    name_collisions: list[dict] = field(default_factory=list)
    # Encryption at rest (`StoreContract.encryption`): on or off, the key's fingerprint, and how
    # many templates and embeddings are encrypted and in the clear (both: an interrupted encrypt).
    encryption: dict | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class DoctorInfo:
    engine: dict[str, Any]
    available_providers: list[str]
    versions: dict[str, str]
    total_seconds: float
    # The store's gallery for identify: templates of this model, what identify_threshold was
    # calibrated for, and a warning when the gallery is larger (None: no store yet).
    gallery: dict[str, Any] | None = None

    def to_dict(self) -> dict:
        return {
            **self.engine,
            "total_seconds": self.total_seconds,
            "available_providers": self.available_providers,
            "versions": self.versions,
            "gallery": self.gallery,
        }


@dataclass
class DemoCheck:
    """One step of the demo: which photo, against whom, and what facer said."""

    photo: str
    expected: str
    result: VerifyResult

    @property
    def as_expected(self) -> bool:
        return self.result.band.value == self.expected

    def to_dict(self) -> dict:
        return {
            "photo": self.photo,
            "expected": self.expected,
            "as_expected": self.as_expected,
            **self.result.to_dict(),
        }


@dataclass
class DemoResult:
    user: str
    enrolled: EnrollResult
    checks: list[DemoCheck]
    store: str
    next_steps: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.as_expected for check in self.checks)

    def to_dict(self) -> dict:
        return {
            "user": self.user,
            "enroll": self.enrolled.to_dict(),
            "checks": [check.to_dict() for check in self.checks],
            "ok": self.ok,
            "next_steps": [{"command": command, "what": what} for command, what in self.next_steps],
        }


@dataclass
class TableCopy:
    """One table of a store copy: its rows in the source, how many were copied, how many the
    destination already held, and how many the verification found there."""

    table: str
    source: int
    copied: int = 0
    already_there: int = 0
    verified: int = 0
    # Look-alike rows whose users the source no longer holds (nothing to link them to).
    left_out: int = 0

    def to_dict(self) -> dict:
        data = dict(self.__dict__)
        del data["table"]
        return data


@dataclass
class CopyResult:
    """`facer store copy`: what went where, and the verification's figures."""

    source: str  # the stores as shown to people (a URL without its password)
    destination: str
    source_backend: str
    destination_backend: str
    tables: list[TableCopy]
    # sha256 over every copied user's templates (name, model, dimension, float32 bytes), the same
    # computed from the source and from the destination.
    templates_sha256: str
    was_empty: bool = False  # the destination held no rows before (new, or made by this copy)
    verified: bool = True
    seconds: float = 0.0

    @property
    def copied(self) -> int:
        return sum(table.copied for table in self.tables)

    @property
    def already_there(self) -> int:
        return sum(table.already_there for table in self.tables)

    def table(self, name: str) -> TableCopy:
        return next(table for table in self.tables if table.table == name)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "destination": self.destination,
            "source_backend": self.source_backend,
            "destination_backend": self.destination_backend,
            "was_empty": self.was_empty,
            "copied": self.copied,
            "already_there": self.already_there,
            "tables": {table.table: table.to_dict() for table in self.tables},
            "verified": self.verified,
            "templates_sha256": self.templates_sha256,
            "seconds": round(self.seconds, 3),
        }
