"""Helpers every test file shares: running the CLI, finding test photos, copying stores."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from facer_cli.cli import app

REPO = Path(__file__).resolve().parent.parent
# Real photos (people/, video/, edge/ …): ../shared/faces beside the repository, or $FACER_TEST_FACES.
FACES = Path(os.environ.get("FACER_TEST_FACES", REPO.parent / "shared" / "faces"))
runner = CliRunner()


def run(*args: Any, input: str | None = None):
    """`facer ARGS…` in this process; returns Click's Result (exit_code, output, stdout, stderr)."""
    return runner.invoke(app, [str(a) for a in args], input=input)


def run_json(*args: Any):
    """`facer ARGS… --json`: the Result and the parsed JSON (None when stdout holds none)."""
    result = run(*args, "--json")
    return result, (json.loads(result.stdout) if result.stdout.strip().startswith("{") else None)


def people(faces: Path) -> dict[str, list[Path]]:
    """Each person's photos: {"obama": [faces/people/obama/obama_1.jpg, …], …}, sorted."""
    return {d.name: sorted(p for p in d.iterdir() if p.is_file()) for d in sorted((faces / "people").iterdir())}


def photo(faces: Path, stem: str) -> Path:
    """A person photo by stem: photo(faces, "obama_1") → faces/people/obama/obama_1.jpg."""
    return next((faces / "people" / stem.rsplit("_", 1)[0]).glob(stem + ".*"))


def copy_db(source: Path, target: Path) -> Path:
    """A copy of a store (SQLite's backup API: consistent whatever is in its WAL)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    src.backup(dst)
    src.close()
    dst.close()
    return target


def run_without_privileges(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run so that file permissions apply: as is, or — for root, whom they do not stop — without
    the capabilities that bypass them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH)."""
    preexec = None
    if os.geteuid() == 0:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)

        def preexec():
            for capability in (1, 2):  # dropped from the bounding set: gone after exec too
                if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                    os._exit(77)
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, preexec_fn=preexec, cwd=cwd)
    if result.returncode == 77:
        pytest.skip("running as root without the right to drop CAP_DAC_OVERRIDE: file permissions cannot apply")
    return result


def one_face_photo(bundled: Path, folder: Path, name: str = "gdp.jpg") -> Path:
    """The main face of the bundled group photo gdp.jpg cut out on its own (facer verifies one person at a
    time, so the group photo itself is refused): a photo of someone else than Yao Ming, as `folder/name`."""
    import cv2

    from facer_cli.service.demo import MAIN_FACE_IN_GDP

    x1, y1, x2, y2 = MAIN_FACE_IN_GDP
    path = folder / name
    assert cv2.imwrite(str(path), cv2.imread(str(bundled / "gdp.jpg"))[y1:y2, x1:x2])
    return path
