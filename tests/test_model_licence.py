"""The model pack's licence, as `facer doctor` and GET /health say it: the bundled pack's weights are
InsightFace's (non-commercial research only); a folder pack's licence file is named; none is unknown."""

from __future__ import annotations

import json

import pytest
from helpers import run

from facer_cli.engine import modelpack
from facer_cli.engine.modelpack import (
    BUNDLED_FILES,
    BUNDLED_LICENCE,
    UNKNOWN_LICENCE,
    locate_bundled_pack,
    locate_pack,
)
from facer_cli.settings import Settings


@pytest.fixture
def pack_root(tmp_path):
    """A pack folder made of the bundled files under other names, with no licence file."""
    pack = tmp_path / "mypack"
    pack.mkdir()
    for task, (name, _) in BUNDLED_FILES.items():
        (pack / f"{task}.onnx").symlink_to(modelpack.bundled_folder() / name)
    return tmp_path


def test_the_bundled_pack_is_for_non_commercial_research_only():
    licence = locate_bundled_pack().licence
    assert licence == BUNDLED_LICENCE
    assert licence.startswith("non-commercial research use only") and "InsightFace" in licence


def test_a_folder_pack_without_a_licence_file_is_unknown(pack_root):
    pack = locate_pack(Settings(model_name="mypack", model_root=str(pack_root)))
    assert pack.licence == UNKNOWN_LICENCE == "unknown: check the weights' source"


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("LICENSE", "MIT License\n\nCopyright (c) 2024 someone\n", "MIT License (LICENSE)"),
        ("licence.txt", "\n\n  Apache License\n  Version 2.0\n", "Apache License (licence.txt)"),
        ("LICENSE.md", "# CC BY-NC 4.0\x1b[31m\n", "# CC BY-NC 4.0 [31m (LICENSE.md)"),
        ("LICENSE", "\n\n", "see LICENSE (its first lines are empty)"),
    ],
)
def test_a_folder_pack_shows_its_licence_file(pack_root, name, text, expected):
    (pack_root / "mypack" / name).write_text(text)
    (pack_root / "mypack" / "README").write_text("not a licence\n")
    assert locate_pack(Settings(model_name="mypack", model_root=str(pack_root))).licence == expected


def test_doctor_json_names_the_licence():
    result = run("doctor", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["model_licence"] == BUNDLED_LICENCE


def test_doctor_table_names_the_licence(wide_console):
    result = run("doctor")
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.strip().startswith("licence"))
    assert "non-commercial research use only" in line


def test_health_names_the_licence(client_for):
    body = client_for().get("/health").json()
    assert body["model_licence"] == BUNDLED_LICENCE
