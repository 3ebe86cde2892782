"""The service layer: the Python twin of every command.

- `facer`: `Facer`, one method per command (inspect, compare, capture, enroll, verify,
  users, import/export, check, evaluate, doctor).
- `verification`: `verify_probe`, the verification decision on a probe (best template, band,
  audit row).
- `doctor`: what `facer doctor` reports (packages, providers, model pack, gallery).
- `demo`: `run_demo`, the main story on the bundled photos.
- `inputs`: files, uploads and cameras to frames; "image or .npy → vector".
- `rules`: the one "template from frames" rule.
- `identify`: 1:N identification's result and decision rules (the search is `facer_cli.gallery`).
- `store_copy`: `copy_store`, one store into another (`facer store copy`), verified.
- `results`: the dataclasses every operation returns (tables and JSON are made from them).
"""

from __future__ import annotations

from facer_cli.lazy_exports import lazy_exports

TYPE_CHECKING = False
# name -> module that defines it; imported on first use, so a command loads only its own
# parts (verify needs neither the demo, identification nor liveness).
_EXPORTS = {
    "run_demo": "facer_cli.service.demo",
    "Facer": "facer_cli.service.facer",
    "package_versions": "facer_cli.service.doctor",
    "IdentifyResult": "facer_cli.service.identify",
    "Frames": "facer_cli.service.inputs",
    "InputFile": "facer_cli.service.inputs",
    "CaptureResult": "facer_cli.service.results",
    "CheckResult": "facer_cli.service.results",
    "CompareResult": "facer_cli.service.results",
    "CopyResult": "facer_cli.service.results",
    "DemoResult": "facer_cli.service.results",
    "DoctorInfo": "facer_cli.service.results",
    "EnrollResult": "facer_cli.service.results",
    "ExportResult": "facer_cli.service.results",
    "ImportResult": "facer_cli.service.results",
    "InspectResult": "facer_cli.service.results",
    "UserList": "facer_cli.service.results",
    "VerifyResult": "facer_cli.service.results",
    "Purpose": "facer_cli.service.rules",
    "copy_store": "facer_cli.service.store_copy",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)


if TYPE_CHECKING:  # what type checkers see
    from facer_cli.service.demo import run_demo
    from facer_cli.service.doctor import package_versions
    from facer_cli.service.facer import Facer
    from facer_cli.service.identify import IdentifyResult
    from facer_cli.service.inputs import Frames, InputFile
    from facer_cli.service.results import (
        CaptureResult,
        CheckResult,
        CompareResult,
        CopyResult,
        DemoResult,
        DoctorInfo,
        EnrollResult,
        ExportResult,
        ImportResult,
        InspectResult,
        UserList,
        VerifyResult,
    )
    from facer_cli.service.rules import Purpose
    from facer_cli.service.store_copy import copy_store
