"""`facer config show|init` as a person uses it: the commands' setting flags, values spelled as
facer.toml spells them, a commented facer.toml with only the changed values active, --changed."""

from __future__ import annotations

import json
import tomllib

import pytest
from typer.testing import CliRunner

from facer_cli.cli import app
from facer_cli.cli.commands import COMMANDS
from facer_cli.settings import SETTING_INFOS, SETTING_NAMES, Settings, example_config_text, load_settings

runner = CliRunner()
# serve's setting flags whose parameters are named otherwise (handed to settings_for by name).
RENAMED = {"host": "server_host", "port": "server_port", "concurrency": "server_concurrency"}


@pytest.fixture(autouse=True)
def no_config(tmp_path, monkeypatch):
    """No facer.toml and no FACER_* variable but those a test sets."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in SETTING_NAMES:
        monkeypatch.delenv(f"FACER_{name.upper()}", raising=False)


def leaves(command, path=()):
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from leaves(sub, (*path, name))
    else:
        yield path, command


def setting_flags(command) -> dict[str, str]:
    """flag -> setting, for the options of a command that set a setting."""
    flags = {}
    for param in command.params:
        setting = RENAMED.get(param.name, param.name)
        if getattr(param, "param_type_name", "") == "option" and setting in SETTING_NAMES:
            for flag in param.opts:
                flags[flag] = setting
    return flags


def config_show_command():
    group = next(command for command in COMMANDS if command.name == "config").build()
    return group.commands["show"]


def show_json(*args: str) -> dict:
    result = runner.invoke(app, ["config", "show", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_config_show_accepts_every_setting_flag_of_the_commands():
    accepted = setting_flags(config_show_command())
    for command in COMMANDS:
        if command.name == "config":
            continue
        for path, leaf in leaves(command.build(), (command.name,)):
            for flag, setting in setting_flags(leaf).items():
                assert accepted.get(flag) == setting, f"facer {' '.join(path)} {flag} ({setting})"


def test_a_flag_shows_its_value_from_flag():
    data = show_json("--identify-threshold", "0.6", "--port", "8080", "--model", "buffalo_s")
    assert data["settings"]["identify_threshold"] == {"value": 0.6, "source": "flag"}
    assert data["settings"]["server_port"] == {"value": 8080, "source": "flag"}
    assert data["settings"]["model_name"] == {"value": "buffalo_s", "source": "flag"}
    result = runner.invoke(app, ["config", "show", "--identify-threshold", "0.6"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.strip().startswith("identify_threshold"))
    assert row.split()[1:] == ["0.6", "flag"]


def test_a_bad_flag_value_is_one_config_error():
    result = runner.invoke(app, ["config", "show", "--identify-threshold", "7"])
    assert result.exit_code == 2
    assert "identify_threshold" in result.output and "flag" in result.output


def test_values_print_as_toml_and_the_file_is_named_again_at_the_end(monkeypatch):
    from facer_cli.cli.app import console

    # The console's width is read once per process: whichever test drew first set it.
    monkeypatch.setattr(console, "width", 200)
    result = runner.invoke(app, ["config", "show"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = {
        line.split()[0]: line.split(None, 1)[1].rsplit(None, 1)[0].strip()
        for line in result.output.splitlines()
        if line.strip() and line.split()[0] in SETTING_NAMES
    }
    assert set(rows) == set(SETTING_NAMES)
    assert rows["use_gpu"] == "true" and rows["liveness_blink"] == "false"
    assert rows["model_name"] == '"bundled"'
    assert rows["allowed_modules"] == '["detection", "landmark_3d_68", "recognition"]'
    assert rows["db"] == "(not set)" and rows["api_key"] == "(not set)"
    # every row but the unset ones can be pasted into facer.toml as it stands
    pasted = tomllib.loads("\n".join(f"{name} = {value}" for name, value in rows.items() if value != "(not set)"))
    assert Settings.from_values(pasted) == Settings()
    assert any("config file: none found" in line for line in result.output.strip().splitlines()[-5:])  # said again


def test_an_api_key_is_never_printed():
    key = "k" * 20
    result = runner.invoke(app, ["config", "show", "--changed"], env={"FACER_API_KEY": key, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert key not in result.output and "(set)" in result.output
    assert show_json("--api-key", key)["settings"]["api_key"] == {"value": "(set)", "source": "flag"}


def test_changed_shows_only_what_differs_from_the_defaults(tmp_path, monkeypatch):
    assert show_json("--changed")["settings"] == {}
    result = runner.invoke(app, ["config", "show", "--changed"])
    assert result.exit_code == 0 and "every setting has its built-in default" in result.output
    (tmp_path / "facer.toml").write_text("det_size = 640\nmax_frames = 5\n")  # max_frames: the default
    monkeypatch.setenv("FACER_USE_GPU", "false")
    data = show_json("--changed", "--top", "3")["settings"]
    assert data == {
        "use_gpu": {"value": False, "source": "FACER_USE_GPU"},
        "det_size": {"value": 640, "source": str(tmp_path / "facer.toml")},
        "identify_top": {"value": 3, "source": "flag"},
    }


def test_init_writes_a_commented_file_with_only_the_changes_active(tmp_path, monkeypatch):
    monkeypatch.setenv("FACER_DET_SIZE", "640")
    monkeypatch.setenv("FACER_ALLOWED_MODULES", "detection,recognition")
    result = runner.invoke(app, ["config", "init"])
    assert result.exit_code == 0, result.output
    assert "2 value(s) differ" in result.output
    text = (tmp_path / "facer.toml").read_text()
    assert tomllib.loads(text) == {"det_size": 640, "allowed_modules": ["detection", "recognition"]}
    for name, info in SETTING_INFOS.items():
        assert f"# {info.description}" in text
        assert f"{name} =" in text
    assert "# default: det_size = 320\ndet_size = 640\n" in text
    monkeypatch.delenv("FACER_DET_SIZE")
    monkeypatch.delenv("FACER_ALLOWED_MODULES")
    assert set(show_json("--changed")["settings"]) == {"det_size", "allowed_modules"}
    data = show_json()["settings"]
    assert data["max_frames"]["source"] == "default" and data["det_size"]["source"] == str(tmp_path / "facer.toml")


def test_init_of_defaults_is_the_example_file(tmp_path):
    result = runner.invoke(app, ["config", "init", "out.toml"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.toml").read_text() == example_config_text()
    assert load_settings(config_file=tmp_path / "out.toml").settings == Settings()
