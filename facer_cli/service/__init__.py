"""The service layer: the Python twin of every command.

- `facer`: `Facer`, one method per command (inspect, compare, capture, enroll, verify,
  users, import/export, check, evaluate, doctor).
- `demo`: `run_demo`, the main story on the bundled photos.
- `inputs`: files, uploads and cameras to frames; "image or .npy → vector".
- `rules`: the one "template from frames" rule.
- `identify`: 1:N identification's result and decision rules (the search is `facer_cli.gallery`).
- `results`: the dataclasses every operation returns (tables and JSON are made from them).
"""

from facer_cli.service.demo import run_demo
from facer_cli.service.facer import Facer, package_versions
from facer_cli.service.identify import IdentifyResult
from facer_cli.service.inputs import Frames, InputFile
from facer_cli.service.results import (
    CaptureResult,
    CheckResult,
    CompareResult,
    DemoResult,
    DoctorInfo,
    EnrollResult,
    ExportResult,
    InspectResult,
    UserList,
    VerifyResult,
)
from facer_cli.service.rules import Purpose

__all__ = [
    "CaptureResult",
    "CheckResult",
    "CompareResult",
    "DemoResult",
    "DoctorInfo",
    "EnrollResult",
    "ExportResult",
    "Facer",
    "Frames",
    "IdentifyResult",
    "InputFile",
    "InspectResult",
    "Purpose",
    "UserList",
    "VerifyResult",
    "package_versions",
    "run_demo",
]
