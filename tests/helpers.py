"""Helpers every test file shares: running the CLI, finding test photos, copying stores."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from facer_cli.cli import app

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def run(*args: Any, input: str | None = None):
    """`facer ARGS…` in this process; returns Click's Result (exit_code, output, stdout, stderr)."""
    return runner.invoke(app, [str(a) for a in args], input=input)


def run_json(*args: Any):
    """`facer ARGS… --json`: the Result and the parsed JSON (None when stdout holds none)."""
    result = run(*args, "--json")
    return result, (json.loads(result.stdout) if result.stdout.strip().startswith("{") else None)


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


def one_face_photo(bundled: Path, folder: Path, name: str = "gdp.jpg") -> Path:
    """The main face of the bundled group photo gdp.jpg cut out on its own (facer verifies one person at a
    time, so the group photo itself is refused): a photo of someone else than Yao Ming, as `folder/name`."""
    import cv2

    from facer_cli.service.demo import MAIN_FACE_IN_GDP

    x1, y1, x2, y2 = MAIN_FACE_IN_GDP
    path = folder / name
    assert cv2.imwrite(str(path), cv2.imread(str(bundled / "gdp.jpg"))[y1:y2, x1:x2])
    return path
