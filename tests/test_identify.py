"""`facer identify`: real photos through the CLI, the service and HTTP; look-alikes; the audit log;
the gallery kept in step with writes by other processes; exit codes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, people, run, run_json

from facer_cli import gallery as g
from facer_cli.cli.errors import ERROR_EXIT, EXIT_CODES, VERDICT_CODES
from facer_cli.errors import LookalikeError, TooFewFramesError
from facer_cli.gallery import Candidate
from facer_cli.service import Facer
from facer_cli.service.identify import decide_with_frames, gallery_warning
from facer_cli.settings import Settings, with_overrides
from facer_cli.store import Store

SEVERAL = ("alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie")  # two photos or more


@pytest.fixture
def facer_for(tmp_path, engine):
    def make(**values) -> Facer:
        settings = Settings.from_values({"db": str(tmp_path / "facer.db"), "min_valid_frames": 1, **values})
        return Facer(settings, engine=engine)

    return make


@pytest.fixture
def gallery_of_people(facer_for, faces):
    """Each person with several photos enrolled from all but the last; the last is held out."""
    facer = facer_for()
    photos = people(faces)
    held_out = {}
    for name in SEVERAL:
        facer.enroll(name, photos[name][:-1])
        held_out[name] = photos[name][-1]
    return facer, held_out


# -- real photos ---------------------------------------------------------------------
def test_held_out_photo_identifies_its_person(gallery_of_people):
    facer, held_out = gallery_of_people
    for name, photo in held_out.items():
        result = facer.identify([photo])
        assert result.decision == "identified", result.reason
        assert result.user == name
        assert result.candidates[0].similarity >= facer.settings.identify_threshold
        assert [c.name for c in result.candidates][0] == name and len(result.candidates) == 5
        others = [c.similarity for c in result.candidates[1:]]
        assert all(s < result.candidates[0].similarity - facer.settings.identify_margin for s in others)


def test_someone_not_enrolled_is_unknown(gallery_of_people, faces):
    facer, _ = gallery_of_people
    result = facer.identify([people(faces)["lin_manuel_miranda"][0]])
    assert result.decision == "unknown" and result.user is None
    assert result.candidates[0].similarity < facer.settings.identify_threshold
    assert "below the threshold" in result.reason


def test_a_margin_just_above_the_lead_makes_it_ambiguous(gallery_of_people):
    facer, held_out = gallery_of_people
    result = facer.identify([held_out["kit_harington"]])
    lead = result.gap
    assert result.decision == "identified" and lead is not None
    strict = Facer(with_overrides(facer.settings, identify_margin=round(lead + 0.01, 4)), engine=facer.engine)
    ambiguous = strict.identify([held_out["kit_harington"]])
    assert ambiguous.decision == "ambiguous" and ambiguous.user is None
    assert "margin" in ambiguous.reason and ambiguous.candidates[1].name in ambiguous.reason
    lenient = Facer(with_overrides(facer.settings, identify_margin=round(lead - 0.01, 4)), engine=facer.engine)
    assert lenient.identify([held_out["kit_harington"]]).decision == "identified"
    high = Facer(with_overrides(facer.settings, identify_threshold=0.99), engine=facer.engine)
    assert high.identify([held_out["kit_harington"]]).decision == "unknown"


def test_cli_exit_codes_and_json(gallery_of_people, faces, tmp_path, wide_console):
    _, held_out = gallery_of_people
    db = tmp_path / "facer.db"
    result, data = run_json("identify", held_out["obama"], "--db", db, "--top", 3)
    assert result.exit_code == 0, result.output
    assert data["decision"] == "identified" and data["user"] == "obama" and len(data["candidates"]) == 3
    assert data["candidates"][0]["user"] == "obama" and data["gallery_size"] == 5
    assert data["identify_threshold"] == 0.5 and data["attempt_id"] >= 1
    unknown = run("identify", people(faces)["lin_manuel_miranda"][0], "--db", db)
    assert unknown.exit_code == 15 and "UNKNOWN" in unknown.stdout
    ambiguous = run("identify", held_out["obama"], "--db", db, "--identify-margin", 1.9)
    assert ambiguous.exit_code == 16 and "AMBIGUOUS" in ambiguous.stdout
    shown = run("identify", held_out["obama"], "--db", db)
    assert "IDENTIFIED as obama" in shown.stdout and "attempt" in shown.stdout


def test_no_usable_probe_exits_4_and_is_recorded(facer_for, faces, bundled_images, tmp_path):
    facer_for().enroll("obama", people(faces)["obama"][:2])
    db = tmp_path / "facer.db"
    (tmp_path / "nobody.jpg").write_bytes(b"not an image")  # (a file that does not exist is exit 2)
    missing = run("identify", tmp_path / "nobody.jpg", "--db", db)
    assert missing.exit_code == 4
    with Store(db, access="read") as store:
        log = store.identifications()
    assert log[0]["decision"] == "no_probe" and log[0]["candidates"] == []


def test_an_empty_gallery_is_unknown(facer_for, faces):
    facer = facer_for()
    facer.open_store("create").close()
    result = facer.identify([people(faces)["obama"][0]])
    assert result.decision == "unknown" and result.candidates == [] and result.gallery_size == 0


def test_audit_log_keeps_names_scores_and_decision_never_an_embedding(gallery_of_people, tmp_path):
    facer, held_out = gallery_of_people
    result = facer.identify([held_out["biden"]], top=2)
    with Store(tmp_path / "facer.db", access="read") as store:
        entry = store.identifications()[0]
    assert entry["id"] == result.attempt_id and entry["decision"] == "identified" and entry["user"] == "biden"
    assert entry["candidates"][0] == {"user": "biden", "similarity": round(result.candidates[0].similarity, 6)}
    assert len(entry["candidates"]) == 2 and entry["gallery_size"] == 5
    assert "images: biden_2.jpg" in entry["source"]
    conn = sqlite3.connect(tmp_path / "facer.db")
    columns = {row[1]: row[2] for row in conn.execute("PRAGMA table_info(identifications)")}
    assert "BLOB" not in columns.values()  # never an embedding
    conn.close()


# -- look-alikes ----------------------------------------------------------------------
def test_the_same_person_under_two_names_is_stopped_then_recorded(facer_for, faces, tmp_path):
    facer = facer_for()
    obama = people(faces)["obama"]
    facer.enroll("obama", obama[:2])
    with pytest.raises(LookalikeError, match=r"'barack' looks like 'obama' \(0\.\d\d\): the same person enrolled twice"):
        facer.enroll("barack", obama[2:])
    assert not facer.open_store("read").exists("barack")
    cli = run("enroll", "barack", *obama[2:], "--db", tmp_path / "facer.db", "--min-valid-frames", 1)
    assert cli.exit_code == 7 and "--allow-lookalike" in cli.stderr
    enrolled = facer.enroll("barack", obama[2:], allow_lookalike=True)
    assert enrolled.lookalikes[0]["user"] == "obama"
    shown, data = run_json("users", "show", "obama", "--db", tmp_path / "facer.db")
    assert data["lookalikes"][0]["user"] == "barack" and data["lookalikes"][0]["similarity"] >= 0.5
    assert facer.user("barack").lookalikes[0].user == "obama"
    assert "look-alikes" in run("users", "show", "barack", "--db", tmp_path / "facer.db").stdout
    # Adding a template to the same person is no look-alike of themselves.
    facer.enroll("obama", obama[3:], mode="add")
    facer.remove_user("obama")
    assert facer.user("barack").lookalikes == []


def test_removal_wipes_and_deletes_the_sidecar(gallery_of_people, tmp_path):
    facer, held_out = gallery_of_people
    facer.identify([held_out["obama"]])
    sidecars = list(tmp_path.glob("facer.db.gallery-*.bin"))
    assert len(sidecars) == 1
    facer.remove_user("obama")
    assert not list(tmp_path.glob("facer.db.gallery-*"))
    result = facer.identify([held_out["obama"]])  # the running index catches up: obama is gone
    assert result.decision == "unknown" and "obama" not in [c.name for c in result.candidates]


# -- the server, and other processes -----------------------------------------------------
IMPORT = """
import sys
from facer_cli.cli.app import main
sys.argv = ["facer", "users", "import", sys.argv[1], sys.argv[2], "--current-model", "--db", sys.argv[3]]
main()
"""


@pytest.mark.slow
def test_server_sees_an_enrollment_made_by_another_process(client_for, faces, tmp_path, engine):
    client = client_for(min_valid_frames=1)
    photos = people(faces)
    first = client.post("/users/kit/enroll", files=[("files", (p.name, p.read_bytes())) for p in photos["kit_harington"][:2]])
    assert first.status_code == 201, first.text
    probe = photos["obama"][-1]
    before = client.post("/identify", files={"files": (probe.name, probe.read_bytes())})
    assert before.status_code == 200 and before.json()["decision"] == "unknown"
    template = tmp_path / "obama.npy"
    np.save(template, engine.analyze_path(photos["obama"][0]).embedding.astype(np.float32))
    done = subprocess.run(
        [sys.executable, "-c", IMPORT, "obama", str(template), str(tmp_path / "facer.db")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    after = client.post("/identify?top=2", files={"files": (probe.name, probe.read_bytes())})
    body = after.json()
    assert after.status_code == 200 and body["decision"] == "identified" and body["user"] == "obama"
    assert [c["user"] for c in body["candidates"]] == ["obama", "kit"] and body["gallery_size"] == 2
    lookalike = client.post("/users/barack/enroll", files={"files": (probe.name, probe.read_bytes())})
    assert lookalike.status_code == 409 and "allow_lookalike" in lookalike.json()["error"]["message"]
    allowed = client.post("/users/barack/enroll?allow_lookalike=true", files={"files": (probe.name, probe.read_bytes())})
    assert allowed.status_code == 201 and allowed.json()["lookalikes"][0]["user"] == "obama"
    none = client.post("/identify", files={"files": ("x.jpg", b"not an image")})
    assert none.status_code in (400, 422)


# -- rules and tables ---------------------------------------------------------------------
def person(user: int, score: float) -> Candidate:
    return Candidate(user, 100 + user, score, f"p{user}")


def test_camera_frames_must_agree():
    best = [person(1, 0.8), person(2, 0.2)]
    agree = [[person(1, 0.7), person(2, 0.1)]] * 3
    assert decide_with_frames(best, agree, 0.5, 0.1, 3)[0] == "identified"
    assert decide_with_frames(best, agree[:2], 0.5, 0.1, 3)[:2] == (
        "unknown",
        "only 2 of 2 accepted frames identify p1 on their own; identify_frames asks for 3",
    )
    split = agree[:2] + [[person(2, 0.7), person(1, 0.1)]]
    assert decide_with_frames(best, split, 0.5, 0.1, 3)[0] == "ambiguous"
    assert decide_with_frames(best, [], 0.5, 0.1, 3)[0] == "identified"  # not a camera: the probe decides


def test_gallery_warning_past_the_calibrated_size():
    assert gallery_warning(10_000, 10_000, 0.5) is None
    assert "more than the 10000" in gallery_warning(10_001, 10_000, 0.5)


@pytest.mark.slow
def test_identify_warns_when_the_gallery_outgrew_the_calibration(gallery_of_people, tmp_path):
    _, held_out = gallery_of_people
    done = run("identify", held_out["rose_leslie"], "--db", tmp_path / "facer.db")
    assert done.exit_code == 0 and "warning" not in done.stderr
    config = tmp_path / "facer.toml"
    config.write_text(f"identify_calibrated_for = 3\ndb = {str(tmp_path / 'facer.db')!r}\n")
    warned = run("--config", config, "identify", held_out["rose_leslie"])
    assert warned.exit_code == 0 and "calibrated for" in warned.stderr
    doctor, data = run_json("--config", config, "doctor")
    assert doctor.exit_code == 0 and data["gallery"]["templates"] == 5 and data["gallery"]["calibrated_for"] == 3
    assert "more than the 3" in data["gallery"]["warning"]
    assert "calibrated for 3" in run("--config", config, "doctor").stdout


def test_verdict_codes_are_no_error_codes():
    assert {15, 16} <= set(EXIT_CODES) and not set(ERROR_EXIT.values()) & VERDICT_CODES
    assert ERROR_EXIT.get(LookalikeError) is None  # a UserExistsError: exit 7


def test_settings_have_documented_defaults():
    s = Settings()
    assert s.identify_threshold > s.cosine_threshold_high and s.identify_margin == 0.10
    assert (s.identify_frames, s.identify_top, s.identify_calibrated_for) == (1, 5, 10_000)
    assert "identify_threshold = 0.5" in (REPO / "facer.toml.example").read_text()


def test_too_few_frames_is_raised_by_the_python_twin(facer_for, tmp_path):
    facer = facer_for()
    facer.open_store("create").close()
    with pytest.raises(TooFewFramesError):
        facer.identify([tmp_path / "missing.jpg"])
    assert json.dumps(Store(tmp_path / "facer.db", access="read").identifications()[0]["candidates"]) == "[]"


def test_a_corrupt_sidecar_under_real_enrollments_is_rebuilt(gallery_of_people, tmp_path):
    facer, held_out = gallery_of_people
    (sidecar,) = tmp_path.glob("facer.db.gallery-*.bin")
    sidecar.unlink()  # the next index writes one holding all five templates
    assert Facer(facer.settings, engine=facer.engine).gallery_index().rebuilds == 1
    data = bytearray(sidecar.read_bytes())
    assert len(data) > g.HEADER_BYTES
    data[-10] ^= 0xFF  # one bit of the codes
    sidecar.write_bytes(bytes(data))
    fresh = Facer(facer.settings, engine=facer.engine)
    assert fresh.identify([held_out["obama"]]).user == "obama"
    assert fresh.gallery_index().rebuilds == 1
    with open(sidecar, "rb") as f:
        assert g.sidecar_problem(f.fileno(), facer.model) is None
