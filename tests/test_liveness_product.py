"""Liveness wired into the product: `--liveness` on the CLI, the service's refusal and audit record,
the lockout, the store migration, and liveness = "required" over HTTP.

The clip plays the camera: from frame 84 at 100 ms spacing the singer looks straight, then turns to
his right by frame 114, so `Challenge.of("straight", "right")` is what he answers (the random
challenge is replaced for these runs) and `("straight", "left", "right")` is what he fails.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import photo, run, run_json

import facer_cli.service.liveness as service_liveness
from facer_cli.errors import LivenessError, UserLockedError
from facer_cli.liveness import Challenge, LivenessResult
from facer_cli.liveness.attacks import render_attack
from facer_cli.service import Facer
from facer_cli.settings import Settings
from facer_cli.store import Store

pytestmark = pytest.mark.usefixtures("wide_console")

GENUINE = Challenge.of("straight", "right")
WRONG_ORDER = Challenge.of("straight", "left", "right")


@pytest.fixture(scope="module")
def clip(faces: Path) -> Path:
    return faces / "video" / "short_hamilton_clip.mp4"


@pytest.fixture
def lin_db(faces, tmp_path) -> Path:
    db = tmp_path / "facer.db"
    result = run("enroll", "lin", faces / "people" / "lin_manuel_miranda", "--db", db, "--min-valid-frames", 1)
    assert result.exit_code == 0, result.output
    return db


@pytest.fixture
def clip_camera(monkeypatch):
    """The clip from frame 84 at 100 ms spacing; `ask(challenge)` sets the challenge the next runs draw."""
    monkeypatch.setenv("FACER_CAMERA_WARMUP_FRAMES", "84")
    monkeypatch.setenv("FACER_FRAME_INTERVAL_MS", "100")

    def ask(challenge: Challenge) -> None:
        monkeypatch.setattr(service_liveness, "challenge_for", lambda settings, rng=None: challenge)

    return ask


def not_live(reason: str = "no parallax: flat surface (residual 0.012 IOD < 0.04)") -> LivenessResult:
    return LivenessResult(False, [reason], GENUINE, 2, 0.012, False, 1000.0, [])


# -- the CLI ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_verify_by_camera_under_the_camera_setting_answers_the_challenge_and_is_audited(
    lin_db, clip, clip_camera, monkeypatch
):
    clip_camera(GENUINE)
    monkeypatch.setenv("FACER_LIVENESS", "camera")
    result, data = run_json("verify", "lin", "--camera", clip, "--db", lin_db)
    assert result.exit_code == 0, result.output
    assert data["band"] == "match"
    live = data["liveness"]
    assert live["live"] is True and live["reasons"] == [] and live["parallax"] >= 0.04
    assert [s["move"] for s in live["challenge"]["steps"]] == ["straight", "right"]
    assert len(live["cues"]) == len(data["frames"]) and live["cues"][-1]["residual"] > 0.04
    assert data["capture"]["stopped"] == "liveness decided: live"
    attempt = Store(lin_db).attempts("lin")[0]
    assert attempt.live is True and attempt.band == "match"
    row = sqlite3.connect(lin_db).execute("SELECT liveness FROM attempts").fetchone()[0]
    assert json.loads(row)["challenge"]["steps"][1]["move"] == "right" and "cues" not in json.loads(row)

    result = run("verify", "lin", "--camera", clip, "--db", lin_db)
    assert result.exit_code == 0, result.output
    assert "step" in result.stdout and "plx" in result.stdout and "2 right" in result.stdout
    assert "liveness: LIVE (parallax 0.0" in result.stdout
    # --no-liveness: the plain capture, max_frames accepted frames
    result, data = run_json("verify", "lin", "--camera", clip, "--db", lin_db, "--no-liveness")
    assert result.exit_code == 0 and "liveness" not in data and len(data["frames"]) == 5


@pytest.mark.slow
def test_a_wrong_move_is_not_live_exit_13_recorded_with_its_reason(lin_db, clip, clip_camera):
    clip_camera(WRONG_ORDER)
    result = run("verify", "lin", "--camera", clip, "--db", lin_db, "--liveness")
    assert result.exit_code == 13, result.output
    assert "turned right when asked to turn left (step 2)" in result.stderr
    assert "1 liveness failure for 'lin' in the last 10 min" in result.stderr
    assert "NOT LIVE" in result.stdout and "2 left" in result.stdout
    result, data = run_json("verify", "lin", "--camera", clip, "--db", lin_db, "--liveness")
    assert result.exit_code == 13
    assert data["liveness"]["live"] is False and data["liveness"]["steps_done"] == 1
    assert "2 liveness failures" in result.stderr
    _, shown = run_json("users", "show", "lin", "--db", lin_db)
    attempts = shown["recent_attempts"]
    assert [a["band"] for a in attempts] == ["not_live", "not_live"]
    assert attempts[0]["live"] is False and attempts[0]["liveness_reason"].startswith("turned right")


@pytest.mark.slow
def test_enroll_and_capture_take_the_challenge_too(faces, clip, clip_camera, tmp_path):
    clip_camera(GENUINE)
    db = tmp_path / "facer.db"
    result, data = run_json("enroll", "lin", "--camera", clip, "--db", db, "--liveness")
    assert result.exit_code == 0, result.output
    assert data["liveness"]["live"] and data["template"]["frames_used"] >= 3
    clip_camera(WRONG_ORDER)
    result = run("enroll", "lin2", "--camera", clip, "--db", db, "--liveness")
    assert result.exit_code == 13 and "not live: turned right" in result.stderr
    assert not Store(db).exists("lin2")
    result = run("capture", "--camera", clip, "--out", tmp_path / "t.npy", "--liveness")
    assert result.exit_code == 13 and not (tmp_path / "t.npy").exists()


def test_liveness_needs_a_camera(lin_db, faces, monkeypatch):
    image = photo(faces, "lin_manuel_miranda_1")
    result = run("verify", "lin", image, "--db", lin_db, "--liveness")
    assert result.exit_code == 2 and "still image cannot answer" in result.output
    monkeypatch.setenv("FACER_LIVENESS", "camera")  # files are simply not a camera run
    assert run("verify", "lin", image, "--db", lin_db).exit_code == 0
    monkeypatch.setenv("FACER_LIVENESS", "required")
    result = run("verify", "lin", image, "--db", lin_db)
    assert result.exit_code == 2 and '"required"' in result.output
    assert run("verify", "lin", image, "--db", lin_db, "--no-liveness").exit_code == 0
    monkeypatch.setenv("FACER_LIVENESS", "sometimes")
    result = run("verify", "lin", image, "--db", lin_db)
    assert result.exit_code == 2 and "liveness" in result.output


# -- the service: refusal, audit, lockout ------------------------------------------------------------
def test_repeated_failures_lock_the_user_out_until_the_window_passes(engine, faces, tmp_path, monkeypatch):
    settings = Settings(db=str(tmp_path / "f.db"), liveness_max_failures=2, liveness_lockout_s=600)
    facer = Facer(settings, engine=engine)
    image = [photo(faces, "obama_1")]
    facer.enroll("obama", [photo(faces, f"obama_{i}") for i in (1, 2, 3)])
    with pytest.raises(LivenessError, match=r"not live: no parallax: flat surface .*1 liveness failure .*locked out at 2"):
        facer.verify("obama", image, liveness=not_live())
    with pytest.raises(LivenessError, match=r"2 liveness failures for 'obama' in the last 10 min: locked until"):
        facer.verify("obama", image, liveness=not_live())
    with pytest.raises(UserLockedError, match=r"2 liveness failures .*locked until \d\d:\d\d:\d\d \(in (9|10) min") as caught:
        facer.verify("obama", image)
    assert 590 < caught.value.retry_after_s <= 600
    bands = [a.band for a in facer.user("obama").attempts]
    assert bands == ["locked_out", "not_live", "not_live"]
    result = run("verify", "obama", image[0], "--db", tmp_path / "f.db")
    assert result.exit_code == 0  # the CLI's defaults: no lockout (liveness_lockout_s 0)
    monkeypatch.setenv("FACER_LIVENESS_LOCKOUT_S", "600")
    monkeypatch.setenv("FACER_LIVENESS_MAX_FAILURES", "2")
    result = run("verify", "obama", image[0], "--db", tmp_path / "f.db")
    assert result.exit_code == 14 and "locked until" in result.stderr
    # Once the failures leave the window, the user is let in again.
    later = Settings(db=str(tmp_path / "f.db"), liveness_max_failures=2, liveness_lockout_s=600, liveness_window_s=0.001)
    assert Facer(later, engine=engine).verify("obama", image).band.value == "match"


def test_a_not_live_enrollment_stores_nothing(engine, faces, tmp_path):
    facer = Facer(Settings(db=str(tmp_path / "f.db")), engine=engine)
    with pytest.raises(LivenessError):
        facer.enroll("obama", [photo(faces, f"obama_{i}") for i in (1, 2, 3)], liveness=not_live())
    assert facer.users().users == []


def test_a_store_from_before_liveness_gains_the_columns(engine, faces, tmp_path):
    db = tmp_path / "old.db"
    facer = Facer(Settings(db=str(db)), engine=engine)
    facer.enroll("obama", [photo(faces, f"obama_{i}") for i in (1, 2, 3)])
    facer.verify("obama", [photo(faces, "obama_4")])
    conn = sqlite3.connect(db)  # back to the schema of m002
    conn.execute("DROP INDEX idx_attempts_user_id_band_created")
    for column in ("live", "liveness_reason", "liveness"):
        conn.execute(f"ALTER TABLE attempts DROP COLUMN {column}")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm004_liveness_audit'")
    conn.commit()
    conn.close()
    with Store(db) as store:
        old = store.attempts("obama")[0]
        assert old.band == "match" and old.live is None and old.liveness_reason is None
    with pytest.raises(LivenessError):
        facer.verify("obama", [photo(faces, "obama_4")], liveness=not_live())
    assert Store(db).attempts("obama")[0].live is False


# -- HTTP (the step-by-step flow itself: tests/test_liveness_stepwise.py) ----------------------------


def test_http_required_liveness_refuses_plain_images_and_locks_out(client_for, faces):
    client = client_for(liveness="required", liveness_max_failures=1, liveness_lockout_s=60)
    person = photo(faces, "obama_1")
    files = [("files", (person.name, person.read_bytes(), "image/jpeg"))]
    response = client.post("/users/obama/verify", files=files)
    assert response.status_code == 400 and "requires a liveness challenge" in response.json()["error"]["message"]
    facer = client.app.state.facer.facer
    facer.enroll("obama", [photo(faces, f"obama_{i}") for i in (1, 2, 3)])
    with pytest.raises(LivenessError):
        facer.verify("obama", [person], liveness=not_live())
    challenge = client.post("/liveness/challenge").json()
    client.app.state.challenges.clock = lambda: time.time() + 30  # nothing sent for 30 s: decided, not live
    decided = client.post(challenge["frames_url"], files=[("files", ("0.jpg", b"x", "image/jpeg"))]).json()
    assert decided["status"] == "decided" and decided["live"] is False, decided
    response = client.post(f"/users/obama/verify?challenge_id={challenge['challenge_id']}")
    assert response.status_code == 429, response.text
    assert 50 <= int(response.headers["Retry-After"]) <= 60
    assert "locked until" in response.json()["error"]["message"]


# -- facer evaluate --liveness ---------------------------------------------------------------------
def write_video(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    for image in frames:
        writer.write(image)
    writer.release()
    return path


@pytest.fixture(scope="module")
def pad_folder(engine, faces, clip, tmp_path_factory) -> Path:
    """live/: three stretches of the clip (straight, then his turn to the right: the default challenge);
    attack/print and attack/screen: generated attacks at 5 fps, each with its order as NAME.challenge.txt."""
    root = tmp_path_factory.mktemp("pad")
    (root / "live").mkdir()
    capture = cv2.VideoCapture(str(clip))
    frames = [capture.read()[1] for _ in range(211)]
    capture.release()
    for first, last in ((84, 150), (90, 150), (144, 210)):
        write_video(root / "live" / f"clip_{first}.mp4", frames[first : last + 1], 29.97)
    for k, (kind, stem) in enumerate([("print", "obama_1"), ("print", "biden_2"), ("screen", "rose_leslie_1")]):
        image = cv2.imread(str(photo(faces, stem)))
        video = render_attack(image, engine.analyze(image).subject.box, kind, np.random.default_rng([5, k]), stem)
        folder = root / "attack" / kind
        folder.mkdir(parents=True, exist_ok=True)
        write_video(folder / f"{stem}.mp4", video.frames, 5.0)
        (folder / f"{stem}.challenge.txt").write_text(" → ".join(video.moves) + "\n")
    return root


@pytest.mark.slow
def test_evaluate_liveness_reports_apcer_bpcer_and_the_tradeoff(pad_folder, monkeypatch):
    monkeypatch.setenv("FACER_FRAME_INTERVAL_MS", "100")
    result, data = run_json("evaluate", "--liveness", pad_folder)
    assert result.exit_code == 0, result.output
    assert data["live_videos"] == 3 and data["attack_videos"] == 3
    assert data["bpcer"]["rate"] == 0 and data["bpcer"]["errors"] == 0
    assert data["bpcer"]["ci95"] == [0, pytest.approx(1 - 0.025 ** (1 / 3), abs=1e-6)]
    assert set(data["apcer"]) == {"print", "screen"} and data["apcer_max"] == 0
    live = [v for v in data["videos"] if v["kind"] == "live"]
    assert all(v["live"] and v["challenge"] == ["straight", "right"] and v["parallax"] > 0.04 for v in live)
    attacks = [v for v in data["videos"] if v["kind"] != "live"]
    assert all(not v["live"] and len(v["challenge"]) == 3 for v in attacks)
    sweep = {point["threshold"]: point for point in data["tradeoff"]}
    assert 0.04 in sweep and sweep[0.07]["bpcer"]["errors"] >= sweep[0.04]["bpcer"]["errors"]
    result = run("evaluate", "--liveness", pad_folder)
    assert result.exit_code == 0
    assert "BPCER: live refused" in result.stdout and "APCER print" in result.stdout and "0.040 ←" in result.stdout
    pytest.importorskip("matplotlib")
    plot = pad_folder.parent / "residuals.png"
    result, data = run_json("evaluate", "--liveness", pad_folder, "--plot", plot)
    assert result.exit_code == 0 and data["plot"] == str(plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_evaluate_liveness_folder_errors(tmp_path, pad_folder):
    result = run("evaluate", "--liveness", tmp_path)
    assert result.exit_code == 4 and "no live/ folder" in result.output
    result = run("evaluate", pad_folder, "--liveness", pad_folder)
    assert result.exit_code == 2 and "not both" in result.output
    assert run("evaluate").exit_code == 2
    from facer_cli.errors import InputError
    from facer_cli.evaluation.intervals import binomial_ci as clopper_pearson
    from facer_cli.evaluation.liveness import parse_challenge

    assert parse_challenge("straight, left -> right", "x").moves == ("straight", "left", "right")
    with pytest.raises(InputError, match="'up' is not a move"):
        parse_challenge("straight up", "x")
    with pytest.raises(InputError, match="starts with a 'straight'"):
        parse_challenge("left right", "x")
    low, high = clopper_pearson(1, 10)  # scipy.stats.beta.ppf(0.025, 1, 10), beta.ppf(0.975, 2, 9)
    assert low == pytest.approx(0.0025285785, abs=1e-8) and high == pytest.approx(0.4450161170, abs=1e-8)


def test_the_product_path_reuses_the_analysis_and_sees_what_observe_sees(engine, clip, monkeypatch):
    """`frame_from_report` gives the frame `observe` would, without running the landmark model again."""
    from facer_cli.liveness import observe
    from facer_cli.liveness.runner import frame_from_report

    capture = cv2.VideoCapture(str(clip))
    images = [capture.read()[1] for _ in range(115)][84::10]
    capture.release()
    for image in images:
        report = engine.analyze(image)
        calls = []
        original = engine._landmarks
        monkeypatch.setattr(engine, "_landmarks", lambda *a, calls=calls, original=original: calls.append(1) or original(*a))
        frame = frame_from_report(engine, image, report, 0.0)
        assert calls == []
        monkeypatch.undo()
        expected = observe(engine, image, 0.0)
        assert np.array_equal(frame.landmarks, expected.landmarks) and frame.yaw == expected.yaw
        assert np.array_equal(frame.embedding, expected.embedding) and frame.box == expected.box
    assert frame_from_report(engine, np.zeros((64, 64, 3), np.uint8), engine.analyze(np.zeros((64, 64, 3), np.uint8)), 5.0).box is None
