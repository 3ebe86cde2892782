"""The README and the code agree: every command has help and a section, every Python block
runs, and the exit-code table is the code's table."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest
from helpers import REPO, run

from facer_cli.cli.errors import EXIT_CODES

README = (REPO / "README.md").read_text(encoding="utf-8")
COMMANDS = ["demo", "inspect", "compare", "enroll", "verify", "identify", "capture", "users", "evaluate", "serve", "config",
            "doctor"]
SUBCOMMANDS = {"users": ["list", "show", "remove", "rename", "export", "import", "check"], "config": ["show", "init"]}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_and_a_readme_section(command):
    result = run(command, "--help")
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) > 3
    assert re.search(rf"^### `facer {command}\b", README, re.M), f"README has no section for facer {command}"
    for sub in SUBCOMMANDS.get(command, []):
        assert run(command, sub, "--help").exit_code == 0
        assert f"facer {command} {sub}" in README, f"README never shows facer {command} {sub}"


def test_readme_exit_code_table_is_the_codes_table():
    section = README[README.index("## Exit codes"):]
    rows = re.findall(r"^\| (\d+) \| (.+?) \|$", section, re.M)
    table = {}
    for code, meaning in rows:
        if int(code) in table:
            break
        table[int(code)] = meaning
    assert table == EXIT_CODES


PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_every_python_block_of_the_readme_runs(index, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACER_")}
    env["HOME"] = str(tmp_path)
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    code = textwrap.dedent(PYTHON_BLOCKS[index])
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"README python block {index} failed:\n{code}\n{done.stderr[-2000:]}"
