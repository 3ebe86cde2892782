"""`facer enroll`, `verify`, `capture` and `users` on real photos and the video clip, through
Typer's runner with a temporary --db; several processes at once; the Python API."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from helpers import REPO, copy_db, photo, run, run_json

from facer_cli.cli.app import console
from facer_cli.errors import StoreError
from facer_cli.store import Store

pytestmark = pytest.mark.usefixtures("wide_console")


@pytest.fixture(scope="module")
def clean_env():
    """Module fixtures run outside the per-test isolation: give them the same clean environment."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("FACER_") and name != "FACER_TEST_FACES":
                patch.delenv(name)
        patch.setattr(console, "width", 200)
        yield patch


@pytest.fixture(scope="module")
def obama_db(faces, tmp_path_factory, clean_env):
    """A store where obama is enrolled from obama_1–3 (the enrollment output is kept)."""
    folder = tmp_path_factory.mktemp("store")
    clean_env.setenv("XDG_CONFIG_HOME", str(folder / "config"))
    db = folder / "facer.db"
    result = run("enroll", "obama", *(photo(faces, f"obama_{i}") for i in (1, 2, 3)), "--db", db)
    assert result.exit_code == 0, result.output
    return db, result.output


def test_enroll_prints_the_frames_and_the_template(obama_db):
    db, output = obama_db
    for text in ("obama_1.jpg", "obama_2.jpg", "obama_3.jpg", "accepted", "kept", "quality", "yaw"):
        assert text in output
    assert "template: 512-d from 3 of 3 frame(s)" in output and "dropped as outliers" in output
    assert "mean quality" in output and "enrolled obama" in output


def test_verify_the_same_person_matches(obama_db, faces):
    db, _ = obama_db
    result, data = run_json("verify", "obama", photo(faces, "obama_4"), "--db", db)
    assert result.exit_code == 0, result.output
    assert data["band"] == "match" and data["similarity"] >= data["threshold_high"]
    assert data["user"] == "obama" and data["templates_compared"] == 1
    assert data["probe"]["frames_used"] == 1  # one photo is enough to verify
    assert data["frames"][0]["accepted"] is True and data["source"] == "images: obama_4.jpg"
    result = run("verify", "obama", photo(faces, "obama_4"), "--db", db)
    assert result.exit_code == 0
    for text in ("obama_4.jpg", "similarity", "MATCH", "match ≥ 0.4", "no match < 0.3", "attempt"):
        assert text in result.stdout


def test_verify_another_person_does_not_match(obama_db, faces):
    db, _ = obama_db
    result, data = run_json("verify", "obama", photo(faces, "biden_1"), "--db", db)
    assert result.exit_code == 1, result.output
    assert data["band"] == "no_match" and data["similarity"] < 0.3


def test_every_attempt_is_in_the_audit_log(faces, tmp_path, obama_db):
    db = copy_db(obama_db[0], tmp_path / "facer.db")
    assert run("verify", "obama", photo(faces, "obama_4"), "--db", db).exit_code == 0
    assert run("verify", "obama", photo(faces, "biden_2"), "--db", db).exit_code == 1
    result, data = run_json("users", "show", "obama", "--db", db)
    assert [a["band"] for a in data["recent_attempts"][:2]] == ["no_match", "match"]
    assert data["recent_attempts"][0]["source"] == "images: biden_2.jpg"
    assert all("embedding" not in a and "vector" not in a for a in data["recent_attempts"])


def test_a_probe_without_a_usable_face_exits_4_and_is_audited(obama_db, tmp_path):
    db = copy_db(obama_db[0], tmp_path / "facer.db")
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    result = run("verify", "obama", blank, "--db", db)
    assert result.exit_code == 4
    assert "too few usable frames" in result.output and "wall.png (no face)" in result.output
    with Store(db) as store:
        assert store.attempts("obama")[0].band == "no_probe"


def test_an_existing_user_needs_replace_or_add(faces, tmp_path):
    db = tmp_path / "facer.db"
    one = ("--min-valid-frames", 1)
    assert run("enroll", "obama", photo(faces, "obama_1"), "--db", db, *one).exit_code == 0
    result = run("enroll", "obama", photo(faces, "obama_2"), "--db", db, *one)
    assert result.exit_code == 7 and "--replace" in result.output and "--add" in result.output
    assert "obama_2.jpg" not in result.stdout  # refused before any frame was analysed
    result, data = run_json("enroll", "obama", photo(faces, "obama_2"), "--db", db, "--add", *one)
    assert result.exit_code == 0 and data["mode"] == "add"
    assert len(run_json("users", "show", "obama", "--db", db)[1]["template_list"]) == 2
    result, data = run_json("enroll", "obama", photo(faces, "obama_3"), "--db", db, "--replace", *one)
    assert result.exit_code == 0
    templates = run_json("users", "show", "obama", "--db", db)[1]["template_list"]
    assert [t["id"] for t in templates] == [data["template_id"]]
    assert run("enroll", "obama", photo(faces, "obama_3"), "--db", db, "--replace", "--add").exit_code == 2


def test_enrollment_needs_min_valid_frames(faces, tmp_path):
    db = tmp_path / "facer.db"
    result = run("enroll", "lin", photo(faces, "lin_manuel_miranda_1"), "--db", db)
    assert result.exit_code == 4
    assert "too few usable frames: 1 of 1 (need 3)" in result.output
    # The table says what each frame was (at 80 columns a long file name is cut to 20 characters).
    assert "lin_manuel_miranda_" in result.stdout and "accepted" in result.stdout
    assert run_json("users", "list", "--db", db)[1]["users"] == []


@pytest.mark.slow
def test_lin_enrolled_from_a_photo_is_verified_by_the_video(faces, tmp_path):
    db = tmp_path / "facer.db"
    result = run("enroll", "lin_manuel_miranda", faces / "people" / "lin_manuel_miranda", "--db", db,
                 "--min-valid-frames", 1)
    assert result.exit_code == 0, result.output
    result, data = run_json("verify", "lin_manuel_miranda", "--camera", faces / "video" / "short_hamilton_clip.mp4",
                            "--db", db)
    assert result.exit_code == 0, result.output
    assert data["band"] == "match"
    capture = data["capture"]
    assert capture["warmup"] == 5 and capture["clock"] == "stream"
    assert capture["accepted"] == 5 and capture["stopped"] == "5 frame(s) accepted"
    assert data["frames"][0]["source"] == "short_hamilton_clip.mp4 #5 @0.17s"
    assert data["source"].startswith("camera: ") and data["source"].endswith("short_hamilton_clip.mp4")
    result = run("verify", "lin_manuel_miranda", "--camera", faces / "video" / "short_hamilton_clip.mp4", "--db", db)
    assert result.exit_code == 0
    assert "warm-up dropped" in result.stdout and "skipped for spacing" in result.stdout


def test_camera_takes_one_source_and_sources_must_open(obama_db, tmp_path):
    db, _ = obama_db
    result = run("verify", "obama", "--camera", "a.mp4", "b.mp4", "--db", db)
    assert result.exit_code == 2 and "one source" in result.output
    assert run("verify", "obama", "--db", db).exit_code == 2
    result = run("verify", "obama", "--camera", tmp_path / "missing.mp4", "--db", db)
    assert result.exit_code == 4 and "missing.mp4: no such video file" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = run("verify", "obama", "--camera", "96", "--db", db)
    assert result.exit_code == 4 and "cannot open camera 96" in result.output


def test_unknown_user(obama_db, faces):
    db, _ = obama_db
    result = run("verify", "nobody", photo(faces, "obama_4"), "--db", db)
    assert result.exit_code == 5
    assert "no user named 'nobody'" in result.output and "Traceback" not in result.output
    assert run("users", "show", "nobody", "--db", db).exit_code == 5
    assert run("users", "remove", "nobody", "--yes", "--db", db).exit_code == 5


@pytest.mark.parametrize("name", ["", "   ", "x" * 129, "two\nlines", "bell\x07"])
def test_bad_user_names(name, faces, tmp_path):
    result = run("enroll", name, photo(faces, "obama_1"), "--db", tmp_path / "facer.db")
    assert result.exit_code == 2 and "user name" in result.output


def test_a_template_from_another_model_is_never_compared(obama_db, faces, tmp_path):
    db = copy_db(obama_db[0], tmp_path / "facer.db")
    vector = tmp_path / "other.npy"
    np.save(vector, np.ones(512, np.float32))
    result = run("users", "import", "someone", vector, "--fingerprint", "buffalo_l:0011223344556677", "--db", db)
    assert result.exit_code == 2 and "--trust-fingerprint" in result.output  # facer cannot check that model
    result = run("users", "import", "someone", vector, "--fingerprint", "buffalo_l:0011223344556677",
                 "--trust-fingerprint", "--db", db)
    assert result.exit_code == 0, result.output
    result = run("verify", "someone", photo(faces, "obama_4"), "--db", db)
    assert result.exit_code == 9
    assert "buffalo_l:0011223344556677" in result.output and "re-enroll" in result.output


def test_export_import_round_trip_gives_the_same_similarity(obama_db, faces, tmp_path):
    db = copy_db(obama_db[0], tmp_path / "facer.db")
    out = tmp_path / "obama.npy"
    result, exported = run_json("users", "export", "obama", "--out", out, "--db", db)
    assert result.exit_code == 0, result.output
    vector = np.load(out)
    assert vector.shape == (512,) and vector.dtype == np.float32
    assert np.linalg.norm(vector) == pytest.approx(1, abs=1e-6)
    # The same face under a second name is what the look-alike check is for, on import as on enroll.
    result = run("users", "import", "obama again", out, "--current-model", "--db", db)
    assert result.exit_code == 7, result.output
    assert "'obama again' looks like 'obama' (1.00)" in result.output and "--allow-lookalike" in result.output
    assert run_json("users", "list", "--db", db)[1]["count"] == 1  # nothing stored
    result, imported = run_json("users", "import", "obama again", out, "--current-model", "--allow-lookalike",
                                "--db", db)
    assert result.exit_code == 0, result.output
    assert [(o["user"], round(o["similarity"], 4)) for o in imported["lookalikes"]] == [("obama", 1.0)]
    shown = run_json("users", "show", "obama", "--db", db)[1]
    assert [o["user"] for o in shown["lookalikes"]] == ["obama again"]
    other = tmp_path / "other.db"
    result = run("users", "import", "obama", out, "--fingerprint", exported["model"], "--db", other)
    assert result.exit_code == 0, result.output
    probe = photo(faces, "obama_4")
    similarities = [run_json("verify", user, probe, "--db", where)[1]["similarity"]
                    for user, where in (("obama", db), ("obama again", db), ("obama", other))]
    assert similarities[1] == pytest.approx(similarities[0], abs=1e-6)
    assert similarities[2] == pytest.approx(similarities[0], abs=1e-6)


@pytest.fixture(scope="module")
def bad_vectors(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    np.save(folder / "matrix.npy", np.ones((2, 512), np.float32))
    np.save(folder / "nan.npy", np.full(512, np.nan, np.float32))
    np.save(folder / "zero.npy", np.zeros(512, np.float32))
    np.save(folder / "short.npy", np.ones(128, np.float32))
    np.save(folder / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (folder / "pickle.npy").write_bytes(pickle.dumps({"evil": True}))
    (folder / "empty.npy").write_bytes(b"")
    np.save(folder / "good.npy", np.ones(512, np.float32))
    return folder


@pytest.mark.parametrize("file, message", [
    ("matrix.npy", "is not a 1-D vector"), ("nan.npy", "NaN"), ("zero.npy", "zero vector"),
    ("objects.npy", "which facer never loads"), ("pickle.npy", "which facer never loads"), ("empty.npy", "empty file (0 bytes)"),
    ("missing.npy", "no such file"), ("short.npy", "makes 512-d templates"),
])
def test_import_refuses_bad_files(bad_vectors, tmp_path, file, message):
    result = run("users", "import", "x", bad_vectors / file, "--current-model", "--db", tmp_path / "facer.db")
    # 9: does not fit its model; 2: a file that does not exist is a usage error, named as typed
    assert result.exit_code == {"short.npy": 9, "missing.npy": 2}.get(file, 4), result.output
    assert message in result.output and "Traceback" not in result.output


def test_import_needs_to_know_the_model(bad_vectors, tmp_path):
    result = run("users", "import", "x", bad_vectors / "good.npy", "--db", tmp_path / "facer.db")
    assert result.exit_code == 2 and "cannot know which model made" in result.output
    assert not (tmp_path / "facer.db").exists() or run_json("users", "list", "--db", tmp_path / "facer.db")[1]["users"] == []


@pytest.mark.slow
def test_capture_from_images_and_from_the_video(faces, tmp_path, obama_db):
    out = tmp_path / "me.npy"
    result = run("capture", *(photo(faces, f"obama_{i}") for i in (1, 2, 3)), "--out", out)
    assert result.exit_code == 0, result.output
    assert "template: 512-d from 3 of 3" in result.stdout and "obama_2.jpg" in result.stdout
    token = np.load(out, allow_pickle=False)
    assert token.shape == (512,) and token.dtype == np.float32
    assert np.linalg.norm(token) == pytest.approx(1, abs=1e-6)
    result, data = run_json("users", "export", "obama", "--out", tmp_path / "enrolled.npy", "--db", obama_db[0])
    assert float(token @ np.load(tmp_path / "enrolled.npy")) > 0.999  # the same frames, the same template
    result, data = run_json("capture", "--camera", faces / "video" / "short_hamilton_clip.mp4", "--out", tmp_path / "v.npy")
    assert result.exit_code == 0, result.output
    assert data["capture"]["accepted"] == 5 and data["out"] == str(tmp_path / "v.npy")
    assert np.load(tmp_path / "v.npy").shape == (512,)
    result = run("capture", photo(faces, "obama_1"), "--out", tmp_path / "no" / "such" / "folder.npy")
    assert result.exit_code == 10 and "does not exist" in result.output


def test_users_list_show_rename_remove(obama_db, tmp_path, monkeypatch):
    db = copy_db(obama_db[0], tmp_path / "facer.db")
    result, data = run_json("users", "list", "--db", db)
    assert result.exit_code == 0
    (user,) = data["users"]
    assert user["name"] == "obama" and user["templates"] == 1 and user["frames"] == 3
    assert user["models"][0].startswith("bundled:") and user["created"]
    table = run("users", "list", "--db", db).stdout
    assert "obama" in table and "templates" in table and "last verified" in table
    result, data = run_json("users", "show", "obama", "--db", db)
    template = data["template_list"][0]
    assert template["frames_used"] == 3 and template["samples"] == 3 and template["source"].startswith("images: obama_1.jpg")
    assert run("users", "rename", "obama", "Barack Obama", "--db", db).exit_code == 0
    assert [u["name"] for u in run_json("users", "list", "--db", db)[1]["users"]] == ["Barack Obama"]
    result = run("users", "remove", "Barack Obama", "--db", db, input="n\n")  # no terminal: no prompt
    assert result.exit_code == 2 and "--yes" in result.output
    monkeypatch.setattr("facer_cli.cli.users_cmd.can_prompt", lambda: True)
    result = run("users", "remove", "Barack Obama", "--db", db, input="n\n")
    assert result.exit_code == 11 and "not removed" in result.output
    assert len(run_json("users", "list", "--db", db)[1]["users"]) == 1
    result, data = run_json("users", "remove", "Barack Obama", "--yes", "--db", db)
    assert result.exit_code == 0
    assert data == {"user": "Barack Obama", "templates": 1, "samples": 3, "erasure_pending": False}
    assert run_json("users", "list", "--db", db)[1]["users"] == []


def test_db_comes_from_facer_db_or_the_data_folder(obama_db, tmp_path, monkeypatch):
    db, _ = obama_db
    monkeypatch.setenv("FACER_DB", str(db))
    assert [u["name"] for u in run_json("users", "list")[1]["users"]] == ["obama"]
    monkeypatch.delenv("FACER_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    default = tmp_path / "data" / "facer" / "facer.db"
    result = run("users", "list")  # nothing enrolled there: no store, and none is created
    assert result.exit_code == 6 and f"there is no facer store at database {default}" in result.output
    assert not (tmp_path / "data").exists()
    np.save(tmp_path / "v.npy", np.ones(512, np.float32))
    assert run("users", "import", "x", tmp_path / "v.npy", "--current-model").exit_code == 0
    assert run_json("users", "check")[1]["db"] == str(default)


def test_a_corrupt_database_is_a_clear_error(faces, tmp_path):
    db = tmp_path / "facer.db"
    db.write_bytes(b"\x00garbage" * 1000)
    for args in (("users", "list"), ("verify", "obama", photo(faces, "obama_4")), ("enroll", "x", photo(faces, "obama_1"))):
        result = run(*args, "--db", db)
        assert result.exit_code == 6, result.output
        assert "is not a facer database or is corrupt" in result.output and "Traceback" not in result.output


CHILD = textwrap.dedent("""
    import os, sys, time
    from facer_cli import Facer, Settings

    db, prefix, go, *images = sys.argv[1:]
    facer = Facer(Settings(db=db))
    frames = facer.frames_from_paths(images)  # the real engine, once per process
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.005)
    for i in range(20):
        with facer.open_store() as store:  # a connection per enrollment, as separate runs would
            # One face under 40 names: look-alikes by design (the check still searches the gallery).
            facer.enroll(f"{prefix} {i}", frames, store=store, allow_lookalike=True)
            assert facer.verify(f"{prefix} {i}", frames, store=store).band.value == "match"
    print("done", flush=True)
""")


@pytest.mark.slow
def test_two_processes_enrolling_and_verifying_at_once(faces, tmp_path):
    db = tmp_path / "facer.db"
    go = tmp_path / "go"
    images = [str(photo(faces, f"obama_{i}")) for i in (1, 2, 3)]
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(db), prefix, str(go), *images], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for prefix in ("first", "second")
    ]
    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready", child.stderr.read()
        go.touch()  # both start together
        for child in children:
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0 and out.strip() == "done", err
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    with Store(db) as store:
        names = {u.name for u in store.list()}
        assert names == {f"{p} {i}" for p in ("first", "second") for i in range(20)}
        assert len(store.attempts(limit=1000)) == 40
        assert all(u.templates == 1 and u.frames == 3 for u in store.list())


def test_python_api_store_and_enrollment(engine, settings, faces, tmp_path):
    from facer_cli import Facer
    from facer_cli import Store as ExportedStore

    assert ExportedStore is Store
    facer = Facer(settings, engine=engine)
    with Store(tmp_path / "api.db") as store:
        frames = facer.frames_from_paths([faces / "people" / "obama"], per_folder=settings.max_images)
        assert len(frames.frames) == 4  # the folder, sorted, at most max_images
        result = facer.enroll("obama", frames, store=store)
        assert result.stored.frames_used == len(result.template.used) >= 3
        assert result.to_dict()["template"]["kept"]
        outcome = facer.verify("obama", [photo(faces, "biden_2")], store=store)
        assert outcome.band.value == "no_match" and outcome.to_dict()["band"] == "no_match"
        assert [u.name for u in store.list()] == ["obama"]
        assert store.remove("obama").templates == 1
        with pytest.raises(StoreError):
            store.close()
            store.list()
