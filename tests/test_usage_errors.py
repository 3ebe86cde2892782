"""A typo is a usage error, named as typed, before any model loads; and the advice given applies.

In-process CLI runs; where frames are analysed, the fake engine (tests/fake_engine.py) stands in.
"""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
from helpers import photo, run

from facer_cli.engine import face_engine
from facer_cli.engine.reports import FaceReport
from facer_cli.settings import Settings


@pytest.fixture
def no_model(monkeypatch):
    """Any attempt to load the models fails the test: these errors come before."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(face_engine, "get_engine", refuse)


def one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


# -- a path that does not exist --------------------------------------------------------------------------


def test_the_reported_typo_is_exit_2_naming_the_path_as_typed(no_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos" / "rose_leslie").mkdir(parents=True)
    result = run("enroll", "rose", "photo/rose_leslie/", "--db", tmp_path / "facer.db")
    assert result.exit_code == 2, result.output
    assert one_error_line(result) == "error: no such file or folder: photo/rose_leslie/"
    assert not (tmp_path / "facer.db").exists()  # nothing was made of it


@pytest.mark.parametrize(
    "args",
    [
        ("enroll", "amy", "{missing}"),
        ("verify", "amy", "{missing}"),
        ("identify", "{missing}"),
        ("capture", "{missing}", "--out", "t.npy"),
        ("inspect", "{missing}"),
        ("compare", "{missing}", "{missing}"),
        ("users", "import", "amy", "{missing}", "--current-model"),
        ("evaluate", "{missing}"),
    ],
)
def test_every_command_that_takes_paths_says_so_before_loading_anything(no_model, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    missing = "no/such/place/"  # a path argument arrives as a Path: the slash it was typed with is kept
    store = ("--db", tmp_path / "facer.db") if args[0] in ("enroll", "verify", "identify", "users") else ()
    result = run(*(arg.format(missing=missing) for arg in args), *store)
    assert result.exit_code == 2, result.output
    named = f"{missing}, {missing}" if args[0] == "compare" else missing
    assert (
        one_error_line(result)
        == f"error: no such {'files or folders' if args[0] == 'compare' else 'file or folder'}: {named}"
    )
    assert not (tmp_path / "facer.db").exists() and not (tmp_path / "t.npy").exists()


def test_a_missing_file_among_existing_ones_is_a_row_and_a_warning_naming_it_whole(fake_engine, faces, tmp_path):
    good = photo(faces, "obama_1")
    missing = tmp_path / "typo" / "gone.jpg"
    result = run("inspect", good, missing)
    assert result.exit_code == 0, result.output
    assert f"warning: no such file or folder: {missing} (the others go on)" in result.stderr


def test_a_file_to_write_is_not_taken_for_a_missing_input(tmp_path):
    result = run("config", "init", tmp_path / "new.toml")
    assert result.exit_code == 0 and (tmp_path / "new.toml").exists(), result.output


def test_every_positional_path_is_checked_unless_it_names_a_file_to_write():
    from typer.core import TyperArgument
    from typer.models import TyperPath

    from facer_cli.cli.app import OUTPUT_ARGUMENTS
    from facer_cli.cli.commands import COMMANDS

    checked, outputs = set(), set()
    for lazy in COMMANDS:
        command = lazy.build()
        for name, leaf in (getattr(command, "commands", None) or {"": command}).items():
            path = f"{lazy.name} {name}".strip()
            for param in leaf.params:
                if isinstance(param, TyperArgument) and (param.name == "sources" or isinstance(param.type, TyperPath)):
                    (outputs if (path, param.name) in OUTPUT_ARGUMENTS else checked).add(f"{path}: {param.name}")
    assert outputs == {"config init: path"}
    assert checked == {
        "enroll: sources",
        "verify: sources",
        "identify: sources",
        "capture: sources",
        "inspect: paths",
        "compare: a",
        "compare: b",
        "evaluate: data",
        "users import: file",
    }


def test_with_a_camera_the_source_is_not_taken_for_a_file(no_model, tmp_path):
    result = run("verify", "amy", "--camera", tmp_path / "missing.mp4", "--db", tmp_path / "facer.db")
    assert result.exit_code != 2 and "no such file or folder" not in result.output


# -- a user name that is a path ---------------------------------------------------------------------------


@pytest.fixture
def photos(tmp_path, faces, monkeypatch):
    """photos/raj/ and photos/penny/ (one photo each) in the working folder."""
    monkeypatch.chdir(tmp_path)
    for name, stem in (("raj", "obama_1"), ("penny", "biden_1")):
        (tmp_path / "photos" / name).mkdir(parents=True)
        shutil.copy(photo(faces, stem), tmp_path / "photos" / name / f"{name}.jpg")
    return tmp_path / "photos"


@pytest.mark.parametrize(
    "args, name, why",
    [
        (("enroll", "photos/penny/", "penny"), "photos/penny/", "it ends in /"),  # swapped
        (("enroll", "photos/raj/", "photos/penny/"), "photos/raj/", "it ends in /"),  # the name left out
        (("enroll", "photos/raj", "photos/penny/"), "photos/raj", "an existing folder"),
        (("enroll", "photos/raj/raj.jpg", "photos/penny/"), "photos/raj/raj.jpg", "an existing file"),
        (("users", "import", "photos/raj/", "t.npy", "--current-model"), "photos/raj/", "it ends in /"),
        (("users", "rename", "raj", "photos/raj/"), "photos/raj/", "it ends in /"),
    ],
)
def test_a_user_name_that_looks_like_a_path_is_refused_with_a_way_through(no_model, photos, args, name, why):
    result = run(*args, "--db", photos.parent / "facer.db")
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert line.startswith(f"error: the user name {name!r} looks like a path ({why})"), line
    assert line.endswith("pass --allow-path-name if it really is the name")
    if args[0] == "enroll":
        assert "the name comes first, then the files" in line


def test_the_way_through_and_a_plain_word_that_is_also_a_folder(fake_engine, photos):
    db = photos.parent / "facer.db"
    result = run("enroll", "photos/raj/", "photos/raj/", "--allow-path-name", "--min-valid-frames", 1, "--db", db)
    assert result.exit_code == 0, result.output
    shutil.copytree(photos / "penny", photos.parent / "penny")
    result = run("enroll", "penny", "penny/", "--min-valid-frames", 1, "--db", db)  # named after the folder
    assert result.exit_code == 0, result.output


def test_swapped_verify_arguments_are_said_to_be_swapped(no_model, photos):
    result = run("verify", "photos/penny/", "penny", "--db", photos.parent / "facer.db")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert line.startswith("error: no such file or folder: penny;") and "the name comes first" in line


# -- folders are capped out loud --------------------------------------------------------------------------


def test_a_folder_beyond_max_images_says_what_was_left_out_and_how_to_take_more(fake_engine, faces, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    for i in range(1, 8):
        shutil.copy(photo(faces, "obama_1"), big / f"b{i}.jpg")
    result = run("enroll", "bigtest", big, "--db", tmp_path / "facer.db")
    assert result.exit_code == 0, result.output
    assert f"note: {big} holds 7 images; the first 5 are used and 2 left out (b6.jpg, b7.jpg)" in result.stderr
    assert "max_images" in result.stderr and "FACER_MAX_IMAGES=7" in result.stderr


# -- advice that applies -------------------------------------------------------------------------------------


@pytest.fixture
def wall(tmp_path):
    import cv2

    path = tmp_path / "one.png"
    cv2.imwrite(str(path), np.full((200, 200, 3), 90, np.uint8))  # no face
    return path


def test_lowering_min_valid_frames_is_not_offered_when_one_frame_is_needed(fake_engine, faces, tmp_path, wall):
    db = tmp_path / "facer.db"
    assert run("enroll", "stuart", photo(faces, "obama_1"), "--min-valid-frames", 1, "--db", db).exit_code == 0
    for args in (("verify", "stuart", wall), ("identify", wall)):
        result = run(*args, "--db", db)
        assert result.exit_code == 4, result.output
        assert "(need 1)" in result.stderr and "--min-valid-frames" not in result.stderr
    result = run("enroll", "amy", wall, "--db", db)  # needs 3: lowering it would help
    assert result.exit_code == 4 and "or lower --min-valid-frames" in result.stderr


def test_users_rename_onto_an_existing_name_offers_what_rename_can_do(fake_engine, faces, tmp_path):
    db = tmp_path / "facer.db"
    for name, stem in (("amy", "biden_1"), ("obama", "obama_1")):
        assert run("enroll", name, photo(faces, stem), "--min-valid-frames", 1, "--db", db).exit_code == 0
    result = run("users", "rename", "amy", "obama", "--db", db)
    assert result.exit_code == 7, result.output
    assert "--replace" not in result.output and "--add" not in result.output
    assert "choose another name" in result.output


@pytest.mark.parametrize(
    "measurement, value, shown",
    [
        ("yaw", -25.4, "yaw -25.4° beyond ±25°"),
        ("yaw", 25.04, "yaw +25.04° beyond ±25°"),
        ("yaw", 31.0, "yaw +31° beyond ±25°"),
        ("pitch", 20.3, "pitch +20.3° beyond ±20°"),
        ("det_score", 0.5996, "detector score 0.5996 < 0.60"),
        ("eye_distance", 15.96, "eyes 15.96 px apart < 16"),
        ("sharpness", 59.7, "sharpness 59.7 < 60"),
        ("brightness", 59.8, "mean level 59.8 < 60"),
        ("brightness", 215.3, "burnt out: mean level 215.3 > 215"),
        ("clipped", 0.2502, "burnt out: 25.02% of eyes, nose and mouth clipped > 25%"),
        ("light_balance", 2.42, "one side 2.42× brighter > 2.4×"),
        ("quality", 0.3996, "quality 0.3996 < 0.40"),
    ],
)
def test_a_number_beside_its_limit_visibly_exceeds_it(measurement, value, shown):
    face = FaceReport(
        index=0,
        box=(0, 0, 100, 100),
        det_score=0.9,
        keypoints=[],
        is_subject=True,
        yaw=0.0,
        pitch=0.0,
        sharpness=300.0,
        quality=0.9,
        eye_distance=40.0,
        brightness=120.0,
        clipped=0.0,
        light_balance=1.0,
    )
    setattr(face, measurement, value)
    accepted, reason = face_engine.decide(face, Settings().engine)
    assert not accepted and shown in reason, reason


def test_uncertain_says_what_to_do_next(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(512)
    a /= np.linalg.norm(a)
    noise = rng.standard_normal(512)
    noise -= (noise @ a) * a
    noise /= np.linalg.norm(noise)
    b = 0.35 * a + np.sqrt(1 - 0.35**2) * noise  # cosine 0.35: between the thresholds
    np.save(tmp_path / "a.npy", a.astype(np.float32))
    np.save(tmp_path / "b.npy", b.astype(np.float32))
    result = run("compare", tmp_path / "a.npy", tmp_path / "b.npy")
    assert result.exit_code == 3, result.output
    text = " ".join(result.stdout.split())
    assert "Next: try another photo or frame" in text and "evenly lit" in text
    assert "cosine_threshold_low" in text and "FACER_COSINE_THRESHOLD" in text and "facer.toml" in text


@pytest.mark.parametrize("typo, meant", [("enrol", "enroll"), ("indentify", "identify"), ("inspec", "inspect")])
def test_a_mistyped_command_gets_did_you_mean(typo, meant):
    result = run(typo, "x")
    assert result.exit_code == 2 and f"Did you mean '{meant}'" in result.output


def test_the_demo_says_serve_needs_the_server_extra(fake_engine):
    result = run("demo")
    text = " ".join(result.stdout.split())
    assert "facer serve the same over HTTP (needs the server extra: pip install 'facer[server]')" in text


def test_evaluate_plot_fails_before_the_work(monkeypatch, faces, tmp_path):
    import facer_cli.evaluation as evaluation

    def never(*args, **kwargs):
        raise AssertionError("the evaluation ran")

    monkeypatch.setattr(evaluation, "evaluate", never)
    monkeypatch.setattr(evaluation, "load_dataset", never)
    result = run("evaluate", faces / "people", "--plot", tmp_path / "no" / "folder" / "roc.png")
    assert result.exit_code == 10 and "there is no folder" in result.output, result.output
    for module in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)  # not installed
    result = run("evaluate", faces / "people", "--plot", tmp_path / "roc.png")
    assert result.exit_code == 2 and "pip install 'facer[plot]'" in result.output, result.output
