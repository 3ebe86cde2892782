"""`liveness = "required"` covers every decision that can open a door: verify and identify, from the
CLI, HTTP and Python, on camera frames and on uploads. Without a passed challenge each is refused.

A "camera" here is a video of one real photo repeated (a print held still in front of the lens, with
a little sensor noise from a fixed seed): it answers no head-turn challenge.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import photo, run
from test_liveness_product import GENUINE, not_live

from facer_cli.errors import LivenessError, LivenessRequiredError
from facer_cli.liveness import Challenge, LivenessResult
from facer_cli.service import Facer
from facer_cli.settings import Settings

pytestmark = pytest.mark.usefixtures("wide_console")


def still_video(image_path: Path, out: Path, frames: int = 30, fps: float = 10.0, seed: int = 7) -> Path:
    """One photo repeated `frames` times as an .mp4, each copy with a little noise (fixed seed)."""
    image = cv2.imread(str(image_path))
    height, width = image.shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    rng = np.random.default_rng(seed)
    for _ in range(frames):
        noise = rng.normal(0, 2.0, image.shape)
        writer.write(np.clip(image.astype(np.float64) + noise, 0, 255).astype(np.uint8))
    writer.release()
    return out


@pytest.fixture
def obama_db(faces, tmp_path) -> Path:
    db = tmp_path / "facer.db"
    result = run("enroll", "obama", *(photo(faces, f"obama_{i}") for i in (1, 2, 3)), "--db", db)
    assert result.exit_code == 0, result.output
    return db


@pytest.fixture
def still(faces, tmp_path) -> Path:
    return still_video(photo(faces, "obama_4"), tmp_path / "still.mp4")


def identify_rows(db: Path) -> list[tuple[str, str | None]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT decision, user_name FROM identifications ORDER BY id").fetchall()
    finally:
        conn.close()


@pytest.mark.slow
def test_the_cli_refuses_verify_and_identify_without_a_passed_challenge(obama_db, still, faces, monkeypatch):
    image = photo(faces, "obama_4")
    # Without the setting, the still video and the photo name the person: the set-up is sound.
    result = run("identify", "--camera", still, "--db", obama_db)
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("FACER_LIVENESS", "required")
    for command in (["verify", "obama"], ["identify"]):
        # a camera run answers the challenge: a still print does not turn, so it is not live (13)
        result = run(*command, "--camera", still, "--db", obama_db)
        assert result.exit_code == 13, (command, result.output)
        assert "not live" in result.stderr
        # images cannot answer a challenge at all: refused before anything runs (2)
        result = run(*command, image, "--db", obama_db)
        assert result.exit_code == 2, (command, result.output)
        assert '"required"' in result.output
    # identify's refusal is in its audit log, naming nobody
    assert identify_rows(obama_db)[-1] == ("not_live", None)
    # --no-liveness is the operator's explicit "not for this run" (the setting's own error says so)
    result = run("identify", image, "--db", obama_db, "--no-liveness")
    assert result.exit_code == 0, result.output
    assert "--liveness" in run("identify", "--help").output


@pytest.mark.slow
def test_the_service_refuses_images_under_required_whoever_calls_it(engine, faces, still, tmp_path):
    facer = Facer(Settings(db=str(tmp_path / "f.db")), engine=engine)
    facer.enroll("obama", [photo(faces, f"obama_{i}") for i in (1, 2, 3)])
    required = Facer(Settings(db=str(tmp_path / "f.db"), liveness="required"), engine=engine)
    image = [photo(faces, "obama_4")]
    with pytest.raises(LivenessRequiredError, match="identify needs frames that answered a liveness challenge"):
        required.identify(image)
    with pytest.raises(LivenessRequiredError, match="verify needs"):
        required.verify("obama", image)
    # a camera run asked for no challenge (a front end that forgot) is refused the same way
    with pytest.raises(LivenessRequiredError):
        required.identify(lambda: required.frames_from_camera(str(still), liveness=False))
    assert facer.identify(image).decision == "identified"  # the setting, not the photo, refuses


def test_http_refuses_plain_images_on_identify_as_on_verify(client_for, faces):
    client = client_for(liveness="required", min_valid_frames=1)
    facer = client.app.state.facer.facer
    lin = photo(faces, "lin_manuel_miranda_1")
    facer.enroll("lin", [lin])
    plain = [("files", (lin.name, lin.read_bytes(), "image/jpeg"))]
    for path in ("/identify", "/users/lin/verify"):
        response = client.post(path, files=plain)
        assert response.status_code == 400, (path, response.text)
        assert "requires a liveness challenge" in response.json()["error"]["message"]
    with facer.open_store("read") as store:
        assert store.identifications() == []  # refused before anything ran


def test_identify_on_a_failed_challenge_is_refused_and_recorded_a_passed_one_decides(engine, faces, tmp_path):
    """What an HTTP burst or a camera run hands the service: frames with their challenge's verdict."""
    facer = Facer(Settings(db=str(tmp_path / "f.db"), liveness="required"), engine=engine)
    facer.enroll("obama", [photo(faces, f"obama_{i}") for i in (1, 2, 3)])
    image = [photo(faces, "obama_4")]
    with pytest.raises(LivenessError, match="not live: no parallax"):
        facer.identify(image, liveness=not_live())
    with facer.open_store("read") as store:
        assert store.identifications(1)[0]["decision"] == "not_live"
    live = LivenessResult(True, [], GENUINE, 2, 0.07, False, 1000.0, [])
    assert facer.identify(image, liveness=live).user == "obama"
    assert facer.verify("obama", image, liveness=live).band.value == "match"


def answer(client, clip: Path, challenge) -> dict:
    """`challenge` answered step by step over HTTP with the clip's frames (the docs' client, as
    test_liveness_stepwise does it): its last answer, with the challenge_id."""
    from test_liveness_stepwise import EVERY_MS, ask, clip_images, docs_client_example, jpeg

    clock = ask(client, challenge)
    images = clip_images(clip, list(range(84, 211, 3)))
    stream = iter(sorted(images))

    def post(path, files=None):
        response = client.post(path, files=files)
        assert response.status_code == 200, response.text
        return response.json()

    def frames_of(step):
        chunk = [images[i] for _, i in zip(range(5), stream, strict=False)]
        clock.now += len(chunk) * EVERY_MS / 1000
        return [jpeg(image) for image in chunk]

    challenge_id, last = docs_client_example()(post, frames_of)
    return {**last, "challenge_id": challenge_id}


@pytest.mark.slow
def test_http_identify_with_a_challenge_decides_only_when_it_passed(client_for, faces, clip_path):
    client = client_for(liveness="required", min_valid_frames=1)
    facer = client.app.state.facer.facer
    facer.enroll("lin", [photo(faces, "lin_manuel_miranda_1")])
    failed = answer(client, clip_path, Challenge.of("straight", "left", "right"))  # he turns right first
    assert failed["live"] is False, failed
    response = client.post(f"/identify?challenge_id={failed['challenge_id']}")
    assert response.status_code == 403 and response.json()["error"]["type"] == "LivenessError", response.text
    with facer.open_store("read") as store:
        assert store.identifications(1)[0]["decision"] == "not_live"
    passed = answer(client, clip_path, GENUINE)
    assert passed["live"] is True, passed
    response = client.post(f"/identify?challenge_id={passed['challenge_id']}")
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["decision"] == "identified" and data["user"] == "lin" and data["liveness"]["live"] is True


@pytest.fixture
def clip_path(faces) -> Path:
    return faces / "video" / "short_hamilton_clip.mp4"
