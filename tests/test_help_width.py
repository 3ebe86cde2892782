"""Every `--help` fits a screen (60 lines of at most 80 columns); the setting options, hidden there,
are listed by `--help-settings` with the values in effect and where each comes from."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO

from facer_cli.cli.commands import command_paths

WIDTH = 80
MOST_LINES = 60


def built(path: tuple[str, ...]) -> Any:
    from facer_cli.cli.commands import BY_NAME

    command = BY_NAME[path[0]].build()
    for name in path[1:]:
        command = command.commands[name]
    return command


def setting_flags(command: Any) -> list[str]:
    """The options that override a setting: named after one, or passed on as one (--host, --liveness)."""
    from facer_cli.cli.options import SETTING_ALIASES
    from facer_cli.settings import SETTING_NAMES

    return [
        param.opts[0]
        for param in command.params
        if param.param_type_name == "option" and (param.name in SETTING_NAMES or param.name in SETTING_ALIASES)
    ]


def facer(args: tuple[str, ...], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`facer ARGS` at 80 columns, in a home of its own (no user facer.toml), from `cwd`."""
    home = cwd / "home"
    clean = {
        "PATH": os.environ.get("PATH", os.defpath),
        "PYTHONPATH": str(REPO),
        "PYTHONUTF8": "1",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "COLUMNS": str(WIDTH),
        "LINES": "100",
        "TERM": "dumb",
        "NO_COLOR": "1",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "facer_cli", *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_every_help_fits_60_lines_of_80_columns(tmp_path):
    paths = [(), *command_paths()]
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(lambda path: facer((*path, "--help"), tmp_path), paths))
    too_long = []
    for path, result in zip(paths, done, strict=True):
        name = " ".join(("facer", *path, "--help"))
        assert result.returncode == 0, f"{name} exited {result.returncode}: {result.stderr[-1000:]}"
        lines = result.stdout.splitlines()
        widest = max(len(line) for line in lines)
        if len(lines) > MOST_LINES or widest > WIDTH:
            too_long.append(f"{name}: {len(lines)} lines, widest {widest}")
    assert not too_long, "\n".join(too_long)


def test_help_points_to_help_settings_where_the_setting_options_went(tmp_path):
    for path in [("enroll",), ("evaluate",), ("identify",)]:
        assert setting_flags(built(path))
        text = facer((*path, "--help"), tmp_path).stdout
        assert "--help-settings" in text
        assert "--pose-yaw-limit" not in text and "--min-quality-score" not in text, path


@pytest.mark.slow
def test_help_settings_lists_every_setting_option_with_the_value_in_effect(tmp_path):
    (tmp_path / "facer.toml").write_text("pose_yaw_limit = 30\n")
    paths = [path for path in command_paths() if setting_flags(built(path))]
    assert ("enroll",) in paths and ("serve",) in paths and ("users", "import") in paths
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(lambda path: facer((*path, "--help-settings"), tmp_path, FACER_DET_SIZE="640"), paths))
    for path, result in zip(paths, done, strict=True):
        name = " ".join(("facer", *path, "--help-settings"))
        assert result.returncode == 0, f"{name} exited {result.returncode}: {result.stderr[-1000:]}"
        lines = result.stdout.splitlines()
        assert max(len(line) for line in lines) <= WIDTH, name
        rows = {line.split()[1]: line for line in lines if line.startswith("│ --")}
        for flag in setting_flags(built(path)):
            row = next((row for key, row in rows.items() if key.split("/")[0] == flag), None)
            assert row is not None, f"{name} does not list {flag}:\n{result.stdout}"
            if flag == "--pose-yaw-limit":
                assert "30.0" in row and "from facer.toml" in row, row
            elif flag == "--det-size":
                assert "640" in row and "from FACER_DET_SIZE" in row, row
            elif flag == "--max-frames":
                assert " 5 " in row and "built-in" in row, row
    other = tmp_path / "elsewhere.toml"  # --config, after the command too
    other.write_text("max_frames = 9\n")
    text = facer(("enroll", "--help-settings", "--config", str(other)), tmp_path).stdout
    row = next(line for line in text.splitlines() if line.startswith("│ --max-frames"))
    assert " 9 " in row and "from elsewhere.toml" in row, row


def test_setting_options_still_override_their_settings():
    from facer_cli.cli.app import flag_overrides

    enroll = built(("enroll",))
    ctx = enroll.make_context("enroll", ["alice", "a.jpg", "--pose-yaw-limit", "31", "--det-size", "640", "--liveness"])
    assert flag_overrides(ctx)["pose_yaw_limit"] == 31.0 and flag_overrides(ctx)["det_size"] == 640
    assert ctx.params["liveness_flag"] is True
    serve = built(("serve",))
    ctx = serve.make_context("serve", ["--host", "0.0.0.0", "--port", "8080", "--concurrency", "3", "--model", "x"])
    assert ctx.params["host"] == "0.0.0.0" and ctx.params["port"] == 8080 and ctx.params["concurrency"] == 3
    assert flag_overrides(ctx)["model_name"] == "x"


def test_a_command_without_setting_options_has_no_help_settings():
    assert not setting_flags(built(("demo",)))
    assert all("--help-settings" not in param.opts for param in built(("demo",)).params)
