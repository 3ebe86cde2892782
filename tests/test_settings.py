"""Settings: precedence, validation messages, config file handling, the example file."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from helpers import REPO
from typer.testing import CliRunner

from facer_cli.cli import app
from facer_cli.errors import ConfigError
from facer_cli.settings import SETTING_INFOS, Settings, example_config_text, load_settings, with_overrides

runner = CliRunner()


def test_defaults_match_the_original_service():
    s = Settings.from_values({})
    assert (s.use_gpu, s.use_directml, s.camera_index, s.max_frames, s.max_images) == (True, True, 0, 5, 5)
    assert s.allowed_modules == ["detection", "landmark_3d_68", "recognition"]
    assert (s.require_pose, s.det_size, s.detection_threshold, s.min_valid_frames) == (True, 320, 0.6, 3)
    assert (s.min_quality_score, s.outlier_cosine_threshold) == (0.4, 0.45)
    assert (s.pose_yaw_limit, s.pose_pitch_limit, s.camera_warmup_frames, s.frame_interval_ms) == (25.0, 20.0, 5, 200.0)
    assert (s.cosine_threshold_high, s.cosine_threshold_low) == (0.40, 0.30)


def test_precedence_default_toml_env_flag(tmp_path, monkeypatch):
    (tmp_path / "facer.toml").write_text("det_size = 480\nmax_frames = 7\nmin_valid_frames = 2\n")
    monkeypatch.setenv("FACER_MAX_FRAMES", "9")
    monkeypatch.setenv("FACER_MIN_VALID_FRAMES", "4")
    loaded = load_settings(cwd=tmp_path, overrides={"min_valid_frames": 1, "det_size": None})
    s = loaded.settings
    assert (s.det_size, s.max_frames, s.min_valid_frames, s.max_images) == (480, 9, 1, 5)
    assert loaded.origins["det_size"] == str(tmp_path / "facer.toml")
    assert loaded.origins["max_frames"] == "FACER_MAX_FRAMES"
    assert loaded.origins["min_valid_frames"] == "flag"
    assert loaded.origins["max_images"] == "default"


def test_user_config_dir_is_read_when_cwd_has_none(tmp_path, monkeypatch):
    config_home = tmp_path / "xdg"
    (config_home / "facer").mkdir(parents=True)
    (config_home / "facer" / "facer.toml").write_text("max_images = 11\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    assert load_settings(cwd=tmp_path / "empty").settings.max_images == 11


def test_environment_lists_and_booleans(monkeypatch):
    monkeypatch.setenv("FACER_ALLOWED_MODULES", "detection, recognition")
    monkeypatch.setenv("FACER_USE_GPU", "false")
    s = load_settings(cwd=Path("/nonexistent")).settings
    assert s.allowed_modules == ["detection", "recognition"] and s.use_gpu is False
    monkeypatch.setenv("FACER_ALLOWED_MODULES", '["detection", "landmark_2d_106", "recognition"]')
    assert load_settings(cwd=Path("/nonexistent")).settings.allowed_modules[1] == "landmark_2d_106"


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"det_size": 300}, "setting det_size = 300 (from flag): must be a positive multiple of 32"),
        ({"det_size": -32}, "det_size = -32"),
        ({"cosine_threshold_high": 1.5}, "cosine_threshold_high = 1.5 (from flag): must be between -1 and 1"),
        ({"cosine_threshold_low": 0.5}, "cosine_threshold_low (0.5) must not exceed cosine_threshold_high (0.4)"),
        ({"max_frames": -1}, "max_frames = -1 (from flag): must be between 1 and 10000"),
        ({"camera_warmup_frames": -2}, "camera_warmup_frames = -2 (from flag): must be between 0 and 10000"),
        ({"det_size": 65536}, "det_size = 65536 (from flag): must be between 32 and 2048"),
        ({"db_busy_timeout_s": float("inf")}, "db_busy_timeout_s = inf (from flag): must be a finite number"),
        ({"api_key": "short"}, "api_key = (hidden) (from flag): has 5 characters"),
        ({"allowed_modules": ["detection", "recognition", "eyes"]}, "unknown module 'eyes'; accepted: detection"),
        ({"detection_threshold": 1.2}, "detection_threshold = 1.2 (from flag): must be between 0 and 1"),
        ({"pose_yaw_limit": 100}, "pose_yaw_limit = 100 (from flag): must be between 0 and 90"),
        ({"det_size": "big"}, "det_size = 'big' (from flag)"),
    ],
)
def test_bad_values_name_setting_value_and_range(overrides, expected):
    with pytest.raises(ConfigError) as info:
        load_settings(cwd=Path("/nonexistent"), overrides=overrides)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("FACER_DET_SIZE", "100")
    with pytest.raises(ConfigError, match=r"det_size = '100' \(from FACER_DET_SIZE\)"):
        load_settings(cwd=Path("/nonexistent"))


def test_malformed_and_unknown_toml(tmp_path):
    bad = tmp_path / "facer.toml"
    bad.write_text("det_size = = 3\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(config_file=bad)
    bad.write_text("det_sise = 320\n")
    with pytest.raises(ConfigError, match="unknown setting 'det_sise'"):
        load_settings(config_file=bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "missing.toml")


def test_cli_reports_config_errors_in_one_line(tmp_path):
    bad = tmp_path / "facer.toml"
    bad.write_text("det_size = 33\n")
    result = runner.invoke(app, ["--config", str(bad), "config", "show"])
    assert result.exit_code == 2
    assert "det_size = 33" in result.output and "Traceback" not in result.output


def test_config_show_json_gives_values_and_sources(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "facer.toml").write_text("max_images = 3\n")
    monkeypatch.setenv("FACER_DET_SIZE", "640")
    result = runner.invoke(app, ["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)["settings"]
    assert data["max_images"] == {"value": 3, "source": str(tmp_path / "facer.toml")}
    assert data["det_size"] == {"value": 640, "source": "FACER_DET_SIZE"}
    assert data["max_frames"] == {"value": 5, "source": "default"}


def test_config_init_writes_readable_toml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["config", "init"]).exit_code == 0
    written = tomllib.loads((tmp_path / "facer.toml").read_text())
    assert written == {}  # every value is the default: commented out
    assert load_settings(cwd=tmp_path).settings == Settings.from_values({})
    again = runner.invoke(app, ["config", "init"])
    assert again.exit_code == 10 and "--force" in again.output
    assert (tmp_path / "facer.toml").stat().st_mode & 0o777 == 0o600


def test_example_file_documents_every_setting_with_its_default():
    text = (REPO / "facer.toml.example").read_text()
    assert text == example_config_text(), "regenerate facer.toml.example from settings.example_config_text()"
    assert tomllib.loads(text) == {}  # every line a comment
    defaults = [line[2:] for line in text.splitlines() if re.match(r"# [a-z0-9_]+ = (?!\"\.\.\.\")", line)]
    values = tomllib.loads("\n".join(defaults))
    for name, field in SETTING_INFOS.items():
        if field.default is not None:
            assert values[name] == field.default
        assert f"{name} =" in text


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("use_gpu", "yes", True),
        ("use_gpu", " OFF ", False),
        ("use_gpu", "0", False),
        ("max_frames", " 7 ", 7),
        ("frame_interval_ms", "12.5", 12.5),
        ("liveness", "camera", "camera"),
        ("db", "/tmp/x.db", "/tmp/x.db"),
    ],
)
def test_environment_strings_become_typed_values(monkeypatch, name, text, expected):
    monkeypatch.setenv(f"FACER_{name.upper()}", text)
    assert getattr(load_settings(cwd=Path("/nonexistent")).settings, name) == expected


@pytest.mark.parametrize(
    "name, text, reason",
    [
        ("use_gpu", "maybe", "must be true or false"),
        ("max_frames", "3.5", "must be a whole number"),
        ("max_frames", "true", "must be a whole number"),
        ("frame_interval_ms", "nan", "must be a finite number"),
        ("frame_interval_ms", "1e400", "must be a finite number"),
        ("frame_interval_ms", "fast", "must be a number"),
        ("liveness", "sometimes", "must be one of 'off', 'camera', 'required'"),
        ("db", "", "must not be empty"),
        ("allowed_modules", "[detection", "is not a valid JSON list"),
        ("allowed_modules", "detection", "must include 'recognition'"),
    ],
)
def test_bad_environment_strings_say_what_is_accepted(monkeypatch, name, text, reason):
    monkeypatch.setenv(f"FACER_{name.upper()}", text)
    with pytest.raises(ConfigError) as info:
        load_settings(cwd=Path("/nonexistent"))
    assert str(info.value) == f"setting {name} = {text!r} (from FACER_{name.upper()}): {reason}"


def test_settings_are_checked_when_made_and_frozen():
    with pytest.raises(ConfigError, match=r"setting max_frames = 0: must be between 1 and 10000"):
        Settings(max_frames=0)
    with pytest.raises(ConfigError, match=r"api_key = \(hidden\): has 5 characters"):
        Settings(api_key="short")
    with pytest.raises(ConfigError, match="det_sise = 320: is not a setting"):
        Settings.from_values({"det_sise": 320})
    settings = Settings(max_frames=4)
    with pytest.raises(AttributeError):
        settings.max_frames = 5  # type: ignore[misc]
    assert Settings(max_frames=4.0).max_frames == 4 and isinstance(Settings(max_frames=4.0).max_frames, int)
    engine = settings.engine
    assert type(engine).from_cache_key(engine.cache_key()) == engine


def test_overrides_are_checked_and_a_misspelled_name_is_one_config_error():
    assert with_overrides(Settings(), max_frames="7").max_frames == 7
    with pytest.raises(ConfigError, match=r"^setting max_frame = 7 \(from argument\): is not a setting"):
        with_overrides(Settings(), max_frame=7)
    with pytest.raises(ConfigError, match=r"^setting max_frames = 0 \(from argument\): must be between 1 and 10000"):
        with_overrides(Settings(), max_frames=0)
