"""A template added to an enrolled user (`--add`), or replacing theirs (`--replace`), must be their face:
it has to match their templates of the same model at cosine_threshold_high, or it is refused (exit 7,
HTTP 409) with whom it matches instead, unless the person's face changed and that is said explicitly
(`--allow-different-face`, `?allow_different_face=true`), which their audit log then records. The
same for `users import --add/--replace`."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import photo, run, run_json

from facer_cli.errors import DifferentFaceError
from facer_cli.service import Facer
from facer_cli.settings import Settings

pytestmark = pytest.mark.usefixtures("wide_console")


@pytest.fixture
def alice_db(faces, tmp_path) -> Path:
    """alice enrolled from obama's photos."""
    db = tmp_path / "facer.db"
    result = run("enroll", "alice", faces / "people" / "obama", "--db", db)
    assert result.exit_code == 0, result.output
    return db


def templates_of(db: Path, user: str) -> int:
    _, data = run_json("users", "show", user, "--db", db)
    return data["templates"]


def test_add_refuses_somebody_elses_face(alice_db, faces):
    kit = faces / "people" / "kit_harington"
    result = run("enroll", "alice", "--add", kit, "--db", alice_db)
    assert result.exit_code == 7, result.output
    assert "does not match the enrolled template(s) of 'alice'" in result.stderr
    assert "matches no other enrolled person either" in result.stderr
    assert "--allow-different-face" in result.stderr
    assert templates_of(alice_db, "alice") == 1
    result = run("verify", "alice", photo(faces, "kit_harington_1"), "--db", alice_db)
    assert result.exit_code == 1, result.output  # no match: kit's face never got in
    # someone enrolled under their own name is named as whom the face matches instead
    kit_photos = [photo(faces, "kit_harington_1"), photo(faces, "kit_harington_2")]
    assert run("enroll", "kit", *kit_photos, "--db", alice_db, "--min-valid-frames", 1).exit_code == 0
    result = run("enroll", "alice", "--add", photo(faces, "kit_harington_3"), "--db", alice_db, "--min-valid-frames", 1)
    assert result.exit_code == 7 and "it matches 'kit'" in result.stderr, result.output


def test_add_of_the_same_person_is_accepted(alice_db, faces):
    result = run("enroll", "alice", "--add", photo(faces, "obama_4"), "--db", alice_db, "--min-valid-frames", 1)
    assert result.exit_code == 0, result.output
    assert templates_of(alice_db, "alice") == 2


def test_an_explicit_change_of_face_is_stored_and_recorded(alice_db, faces):
    kit = faces / "people" / "kit_harington"
    result = run("enroll", "alice", "--add", kit, "--db", alice_db, "--allow-different-face")
    assert result.exit_code == 0, result.output
    assert templates_of(alice_db, "alice") == 2
    _, shown = run_json("users", "show", "alice", "--db", alice_db)
    change = shown["recent_attempts"][0]
    assert change["band"] == "face_changed" and change["similarity"] < 0.4
    assert "enroll --add (face changed, allowed explicitly)" in change["source"]


def test_replace_with_another_face_needs_the_option_and_is_recorded(alice_db, faces):
    kit = faces / "people" / "kit_harington"
    result = run("enroll", "alice", "--replace", kit, "--db", alice_db)
    assert result.exit_code == 7 and "refusing to replace their templates" in result.stderr, result.output
    assert run("verify", "alice", photo(faces, "obama_4"), "--db", alice_db).exit_code == 0  # still obama
    result = run("enroll", "alice", "--replace", kit, "--db", alice_db, "--allow-different-face")
    assert result.exit_code == 0, result.output
    _, shown = run_json("users", "show", "alice", "--db", alice_db)
    assert shown["recent_attempts"][0]["band"] == "face_changed"
    assert "enroll --replace" in shown["recent_attempts"][0]["source"]
    # the same person re-enrolled with --replace needs nothing
    result = run(
        "enroll", "alice", "--replace", photo(faces, "kit_harington_1"), "--db", alice_db, "--min-valid-frames", 1
    )
    assert result.exit_code == 0, result.output


def test_users_import_add_and_replace(alice_db, faces, tmp_path):
    vector = tmp_path / "kit.npy"
    assert run("capture", faces / "people" / "kit_harington", "--out", vector).exit_code == 0
    for mode in ("--add", "--replace"):
        result = run("users", "import", "alice", vector, "--current-model", mode, "--db", alice_db)
        assert result.exit_code == 7, (mode, result.output)
        assert "does not match the enrolled template(s) of 'alice'" in result.stderr
        assert "--allow-different-face" in result.stderr
    assert templates_of(alice_db, "alice") == 1
    result = run(
        "users", "import", "alice", vector, "--current-model", "--add", "--db", alice_db, "--allow-different-face"
    )
    assert result.exit_code == 0, result.output
    _, shown = run_json("users", "show", "alice", "--db", alice_db)
    assert shown["recent_attempts"][0]["band"] == "face_changed"


def test_http_enroll_add_and_replace(client_for, faces):
    client = client_for()
    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in sorted((faces / "people" / "obama").iterdir())]
    assert client.post("/users/alice/enroll", files=files).status_code == 201
    kit = [
        ("files", (p.name, p.read_bytes(), "image/jpeg"))
        for p in sorted((faces / "people" / "kit_harington").iterdir())
    ]
    for mode in ("add", "replace"):
        response = client.post(f"/users/alice/enroll?mode={mode}", files=kit)
        assert response.status_code == 409, (mode, response.text)
        error = response.json()["error"]
        assert error["type"] == "DifferentFaceError" and "allow_different_face=true" in error["message"]
    response = client.post("/users/alice/enroll?mode=add&allow_different_face=true", files=kit)
    assert response.status_code == 201, response.text
    shown = client.get("/users/alice").json()
    assert shown["templates"] == 2 and shown["recent_attempts"][0]["band"] == "face_changed"


def test_the_python_api_names_whom_it_matches(engine, faces, tmp_path):
    facer = Facer(Settings(db=str(tmp_path / "f.db"), min_valid_frames=1), engine=engine)
    facer.enroll("alice", [photo(faces, f"obama_{i}") for i in (1, 2, 3)])
    facer.enroll("kit", [photo(faces, "kit_harington_1")])
    with pytest.raises(DifferentFaceError, match="it matches 'kit'") as caught:
        facer.enroll("alice", [photo(faces, "kit_harington_2")], mode="add")
    assert caught.value.other == "kit"
    # the face is kit's: allowing the change still leaves the look-alike check, which names kit too
    stored = facer.enroll(
        "alice", [photo(faces, "kit_harington_2")], mode="add", allow_different_face=True, allow_lookalike=True
    )
    assert stored.mode == "add" and [c["user"] for c in stored.lookalikes] == ["kit"]
