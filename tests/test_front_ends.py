"""The shape: one service under the CLI and HTTP, one renderer, one error table per front end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import pytest
from helpers import REPO, one_face_photo, photo, run, run_json

from facer_cli import errors as e
from facer_cli.cli.errors import ERROR_EXIT, exit_code_for
from facer_cli.errors import ConfigError

pytestmark = pytest.mark.usefixtures("wide_console")


def all_error_classes() -> list[type]:
    import facer_cli.server.errors  # noqa: F401  (defines the HTTP-only classes)
    import facer_cli.server.exposure  # noqa: F401

    found, todo = [], [e.FacerError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


# -- the two bugs this shape fixes -------------------------------------------------
def test_inspect_honours_outlier_cosine_threshold(faces, tmp_path, monkeypatch):
    """A folder mixing two people: the default drops the other person; -1 keeps every frame."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for stem in ("obama_1", "obama_2", "obama_3", "biden_1"):
        (folder / f"{stem}.jpg").symlink_to(photo(faces, stem))
    assert len(run_json("inspect", folder)[1]["template"]["outliers"]) == 1
    monkeypatch.setenv("FACER_OUTLIER_COSINE_THRESHOLD", "-1")
    result, data = run_json("inspect", folder)
    assert data["template"]["outliers"] == [] and len(data["template"]["kept"]) == 4
    # capture applies the same setting: the same frames kept
    captured = run_json("capture", *sorted(folder.iterdir()), "--out", tmp_path / "t.npy")[1]
    assert captured["template"]["kept"] == data["template"]["kept"]


@pytest.mark.parametrize("name", ["bob [/i]", "[bold red]eve[/]", "x\x1b[31my"])
def test_names_full_of_markup_are_shown_literally(name, bundled_images, tmp_path, fake_engine):
    db = tmp_path / "facer.db"
    yao = bundled_images / "yaoming.jpg"
    if "\x1b" in name:  # control characters are refused as names...
        result = run("enroll", name, yao, "--db", db, "--min-valid-frames", "1")
        assert result.exit_code == 2 and "control character" in result.output
        # ...and a file name holding one is shown escaped, never raw
        odd = tmp_path / f"a{name}.jpg"
        odd.symlink_to(yao)
        shown = run("inspect", odd).output
        assert "\x1b" not in shown and "\\x1b" in shown
        return
    result = run("enroll", name, yao, "--db", db, "--min-valid-frames", "1")
    assert result.exit_code == 0, result.output
    assert name in result.output and "Traceback" not in result.output
    listed = run("users", "list", "--db", db)
    assert listed.exit_code == 0 and name in listed.output
    verified = run("verify", name, yao, "--db", db)
    assert verified.exit_code == 0 and name in verified.output
    shown = run("users", "show", name, "--db", db)
    assert shown.exit_code == 0 and name in shown.output
    removed = run("users", "remove", name, "--yes", "--db", db)
    assert removed.exit_code == 0 and name in removed.output
    assert run_json("users", "list", "--db", db)[1]["users"] == []


# -- one error table per front end ---------------------------------------------------
def test_every_error_class_has_an_exit_code_and_a_status_and_none_means_a_verdict():
    from facer_cli.server.errors import status_for

    classes = all_error_classes()
    assert len(classes) >= 20
    for cls in classes:
        assert exit_code_for(cls) not in (0, 1, 3), cls
        assert 400 <= status_for(cls) <= 599, cls
    # the library's own classes each resolve to an entry of the table, none to the catch-all 70
    for cls in classes:
        if cls.__module__ == "facer_cli.errors" and cls is not e.FacerError:
            assert exit_code_for(cls) != 70, cls
    assert set(ERROR_EXIT.values()) <= set(range(2, 15)) | {70}


def test_library_messages_name_no_flags_and_http_bodies_no_paths(client_for, tmp_path, bundled_images, fake_engine):
    client = client_for()
    missing = client.get("/users/nobody")
    assert missing.status_code == 404
    message = missing.json()["error"]["message"]
    assert str(tmp_path) not in message and "--" not in message and "GET /users" in message
    files = [("files", ("y.jpg", (bundled_images / "yaoming.jpg").read_bytes(), "image/jpeg"))]
    assert client.post("/users/yao/enroll?mode=new", files=files * 3).status_code == 201
    exists = client.post("/users/yao/enroll", files=files * 3).json()["error"]["message"]
    assert "?mode=replace" in exists and "--replace" not in exists
    # the CLI says the same in its words
    cli = run("enroll", "yao", bundled_images / "yaoming.jpg", "--db", tmp_path / "facer.db")
    assert cli.exit_code == 7 and "--replace" in cli.output and "?mode" not in cli.output


def test_store_errors_show_the_path_on_the_cli_only(tmp_path):
    from facer_cli.server.errors import public_line

    error = e.StoreError("{db} is busy: try again", tmp_path / "x.db")
    assert str(tmp_path) in str(error) and str(tmp_path) not in public_line(error)


# -- the same document from both front ends -----------------------------------------------
VOLATILE = {"created", "attempt_id", "template_id", "id", "source", "a", "b", "out", "user", "name",
            "updated", "last_enrolled", "last_verified", "kept", "outliers_list"}


def normalised(value):
    """The document with what differs by nature (ids, times, paths vs upload names) blanked."""
    if isinstance(value, dict):
        return {k: ("…" if k in VOLATILE else normalised(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalised(v) for v in value]
    return value


def test_cli_json_and_http_body_are_the_same_document(client_for, bundled_images, tmp_path, fake_engine):
    yao, gdp = bundled_images / "yaoming.jpg", one_face_photo(bundled_images, tmp_path)
    flipped = tmp_path / "yao_flipped.jpg"
    cv2.imwrite(str(flipped), cv2.flip(cv2.imread(str(yao)), 1))
    images = [yao, flipped, gdp]
    http = client_for(db=str(tmp_path / "http.db"))
    cli_db = tmp_path / "cli.db"

    def upload(paths, field="files"):
        return [(field, (p.name, p.read_bytes(), "image/jpeg")) for p in paths]

    pairs = {}
    pairs["capture"] = (run_json("capture", yao, flipped, "--out", tmp_path / "c.npy")[1],
                        http.post("/token/generate", files=upload([yao, flipped])).json())
    pairs["compare"] = (run_json("compare", yao, gdp)[1],
                        http.post("/compare", files=upload([yao], "a") + upload([gdp], "b")).json())
    pairs["enroll"] = (run_json("enroll", "yao", yao, flipped, yao, "--db", cli_db)[1],
                       http.post("/users/yao/enroll", files=upload([yao, flipped, yao])).json())
    pairs["verify"] = (run_json("verify", "yao", *images[:1], "--db", cli_db)[1],
                       http.post("/users/yao/verify", files=upload(images[:1])).json())
    pairs["users list"] = (run_json("users", "list", "--db", cli_db)[1], http.get("/users").json())
    pairs["users show"] = (run_json("users", "show", "yao", "--db", cli_db)[1], http.get("/users/yao").json())
    pairs["users remove"] = (run_json("users", "remove", "yao", "--yes", "--db", cli_db)[1],
                             http.delete("/users/yao").json())
    for operation, (by_cli, by_http) in pairs.items():
        assert by_cli is not None and "error" not in by_http, operation
        assert normalised(by_cli) == normalised(by_http), operation
    assert pairs["capture"][0]["token"] == pairs["capture"][1]["token"]
    assert pairs["capture"][1]["out"] is None and pairs["capture"][0]["out"] == str(tmp_path / "c.npy")


# -- light imports, global options ----------------------------------------------------------
@pytest.mark.parametrize("args", [["--help"], ["config", "show"], ["users", "--help"]])
def test_help_and_config_show_load_no_heavy_module(args):
    code = (
        "import sys\nfrom facer_cli.cli.app import main\nsys.argv = ['facer', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('numpy', 'cv2', 'onnxruntime', 'insightface', 'sqlite_utils') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACER_")}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=60)
    assert "HEAVY []" in done.stdout, done.stdout[-500:] + done.stderr


def test_global_options_after_the_command_and_version(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("det_size = 33\n")
    result = run("config", "show", "--config", bad)
    assert result.exit_code == 2 and "det_size = 33" in result.output
    assert run("config", "show", f"--config={bad}").exit_code == 2
    assert run("--version").output.startswith("facer ")
    with pytest.raises(ConfigError):  # --debug after the command: the traceback, not the one line
        from typer.testing import CliRunner

        from facer_cli.cli import app

        CliRunner().invoke(app, ["config", "show", "--config", str(bad), "--debug"], catch_exceptions=False)


def test_help_has_no_placeholder_for_flags_and_shows_setting_defaults():
    text = run("enroll", "--help").output
    assert "<bool>" not in text and "--help-settings" in text
    flat = " ".join(run("enroll", "--help-settings").output.replace("│", " ").split())
    assert "320 built-in" in flat and "Setting det_size" in flat and "25.0 built-in" in flat
    order = run("--help").output
    assert order.index("│ demo") < order.index("│ enroll") < order.index("│ inspect") < order.index("│ serve")


def test_config_show_fits_80_columns_with_full_names(monkeypatch):
    from facer_cli.cli.app import console

    monkeypatch.setattr(console, "width", 80)
    text = run("config", "show").output
    assert "server_queue_timeout_s" in text and "outlier_cosine_threshold" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_json_output_is_always_valid_json(tmp_path, fake_engine):
    """A vector of huge values normalises safely: no NaN can reach the JSON."""
    import numpy as np

    big = tmp_path / "big.npy"
    np.save(big, np.full(512, 1e200))
    other = tmp_path / "other.npy"
    np.save(other, np.linspace(-1, 1, 512))
    result = run("compare", big, other, "--json")
    data = json.loads(result.stdout)
    assert isinstance(data["similarity"], float) and data["similarity"] == data["similarity"]


def test_users_list_fits_one_row_per_user_at_100_columns(bundled_images, tmp_path, monkeypatch, fake_engine):
    from facer_cli.cli.app import console

    db = tmp_path / "facer.db"
    long_name = "Maximiliana Ødegård-Vandenberghe of the Northern Reception Desk"
    for name in ("alice", long_name):
        assert run("enroll", name, bundled_images / "yaoming.jpg", "--db", db, "--min-valid-frames", "1",
                   "--allow-lookalike").exit_code == 0  # one face under two names
    monkeypatch.setattr(console, "width", 100)
    lines = run("users", "list", "--db", db).output.splitlines()
    # The name stays whole on its row; the columns that do not fit beside it are dropped.
    rows = [line for line in lines if long_name in line or line.lstrip().startswith("alice ")]
    assert len(rows) == 2 and all(len(line) <= 100 for line in lines)
    assert "UTC" in run("users", "show", "alice", "--db", db).output or "+" in run("users", "show", "alice", "--db", db).output


@pytest.mark.slow
def test_a_failed_camera_run_shows_rejections_by_reason_and_every_frame_with_verbose(faces, tmp_path):
    clip = faces / "video" / "short_hamilton_clip.mp4"
    args = ("capture", "--camera", clip, "--out", tmp_path / "t.npy", "--pose-yaw-limit", "1", "--pose-pitch-limit", "1",
            "--max-frames", "3")
    result = run(*args)
    assert result.exit_code == 4, result.output
    assert "by decision" in result.output and "to fix:" in result.output and "look straight" in result.output
    assert len(result.output.splitlines()) < 25
    verbose = run(*args, "--verbose")
    assert verbose.exit_code == 4 and len(verbose.output.splitlines()) > 40
