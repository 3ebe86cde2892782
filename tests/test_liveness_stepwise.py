"""Liveness against one recording of a head turn: steps revealed one at a time and timed by the server's
clock (`facer_cli.liveness.stepwise`, POST /liveness/challenge/{id}/frames), and the checks that make a
stream synthesised from one clip expensive: mirror images, motion continuity, the same face throughout.

Attacks are built from the test clip (`facer_cli.liveness.replay`): one right turn mirrored for the
left steps, segments reordered, stills replayed, frames re-stamped. The genuine side is the clip's real
head answering the challenge its motion follows, ("straight", "right").
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import photo

from facer_cli.liveness import Challenge, LivenessChecker, LivenessFrame, observe, replay
from facer_cli.liveness.checker import MIRROR_MIN_DIFFERENCE, SAME_FACE_FIRST_MIN_COSINE
from facer_cli.liveness.geometry import mirror_difference
from facer_cli.liveness.stepwise import MAX_FRAME_INTERVAL_S, UPLOAD_SLACK_S, StepClock

DOCS = Path(__file__).resolve().parents[1] / "docs"
GENUINE = Challenge.of("straight", "right")
EVERY_MS = replay.EVERY * 1000 / replay.CLIP_FPS


# -- the server's clock ---------------------------------------------------------------------------
def test_frames_are_timed_between_arrivals_not_by_the_client():
    clock = StepClock(GENUINE, 100.0)
    stamps, reason = clock.admit(5, 100.5)
    assert reason is None and stamps == pytest.approx([100, 200, 300, 400, 500])
    assert clock.checked(1, 100.8) is True  # the next step is sent at 100.8 ...
    assert clock.step_dict()["move"] == "right" and clock.step_dict()["number"] == 2
    stamps, _ = clock.admit(4, 101.3)  # ... but its frames follow the last arrival (100.5): no gap
    assert stamps == pytest.approx([700, 900, 1100, 1300])
    assert clock.checked(1, 101.4) is False


def test_late_sparse_and_too_dense_frames_decide_the_challenge():
    late = StepClock(GENUINE, 0.0)
    assert "within 4 s" in late.admit(50, GENUINE.steps[0].time_limit_s + UPLOAD_SLACK_S + 0.1)[1]
    sparse = StepClock(GENUINE, 0.0)
    assert "too few frames" in sparse.admit(2, 2 * MAX_FRAME_INTERVAL_S + 0.1)[1]
    dense = StepClock(GENUINE, 0.0)
    assert "faster than a camera" in dense.admit(10, 0.1)[1]
    assert "too few frames" in StepClock(GENUINE, 0.0).admit(0, 0.1)[1]


# -- the checks, on synthetic frames ---------------------------------------------------------------
def _frame(t_ms: float, yaw: float, shift: float = 0.0, embedding: np.ndarray | None = None) -> LivenessFrame:
    from test_liveness import EMBEDDING, project

    points = project(yaw, noise=0.2, seed=int(t_ms)) + np.array([shift, 0.0])
    return LivenessFrame(
        t_ms,
        (250.0 + shift, 150.0, 390.0 + shift, 330.0),
        points,
        yaw,
        0.0,
        0.0,
        EMBEDDING if embedding is None else embedding,
    )


def test_a_head_that_jumps_between_frames_is_not_live():
    checker = LivenessChecker(GENUINE)
    for k, yaw in enumerate([0, 0, -12, -24]):  # 12° per 100 ms: 120°/s
        checker.update(_frame(k * 100.0, yaw))
    assert checker.result().live
    checker = LivenessChecker(GENUINE)
    for k, yaw in enumerate([0, 0, -24]):  # 24° in 100 ms
        checker.update(_frame(k * 100.0, yaw))
    assert checker.result().reason.startswith("motion not continuous: the head turned 24° in 100 ms")
    checker = LivenessChecker(GENUINE)
    for k, shift in enumerate([0.0, 0.0, 60.0]):  # one eye distance in 33 ms, the box still overlapping
        checker.update(_frame(k * 33.0, 0.0, shift))
    assert checker.result().reason.startswith("motion not continuous: the face moved")


def test_a_face_drifting_away_from_the_first_frames_is_another_person():
    """Each step of the drift agrees with the mean of the frames before (cosine ≥ 0.25), not with the first."""
    rng = np.random.default_rng(0)
    start, end = rng.normal(size=512), rng.normal(size=512)
    checker = LivenessChecker(GENUINE)
    for k, w in enumerate(np.linspace(0.0, 1.0, 12)):
        vector = (1 - w) * start + w * end
        checker.update(_frame(k * 100.0, 0.0, embedding=vector / np.linalg.norm(vector)))
    assert checker.done and "not the first frame's face" in checker.result().reason
    assert f"< {SAME_FACE_FIRST_MIN_COSINE:g}" in checker.result().reason


def test_a_face_and_its_mirror_image_are_told_apart(engine, faces):
    """A photo's face against the photo flipped (a "left turn" made from a right one) is nearly the same
    once flipped back; against another person's face it is not."""

    def face_of(image: np.ndarray) -> np.ndarray:
        seen = observe(engine, image, 0.0)
        assert seen.face is not None and seen.face.shape == (64, 64)
        return seen.face

    image = cv2.imread(str(photo(faces, "obama_1")))
    face = face_of(image)
    assert mirror_difference(face, face_of(cv2.flip(image, 1))) < 0.5 * MIRROR_MIN_DIFFERENCE
    assert mirror_difference(face, face_of(cv2.imread(str(photo(faces, "biden_1"))))) > MIRROR_MIN_DIFFERENCE


# -- the clip and the attacks built from it --------------------------------------------------------
@pytest.fixture(scope="module")
def clip(faces: Path) -> Path:
    return faces / "video" / "short_hamilton_clip.mp4"


@pytest.fixture(scope="module")
def shots(engine, clip) -> dict[int, replay.Shot]:
    return replay.observe_clip(engine, str(clip))


@pytest.mark.slow
def test_the_real_head_turn_passes_step_by_step(shots):
    """14 starting frames x 3 ways of sending (100 ms frames 5 a request, 200 ms frames 3 a request,
    100 ms frames 10 a request): BPCER 0 of 42."""
    refused = []
    for first in range(84, 98):
        for every, chunk in ((3, 5), (6, 3), (3, 10)):
            result = replay.play(GENUINE, replay.genuine_client(shots, first, every, chunk))
            if not result.live:
                refused.append((first, every, chunk, result.reason))
    assert refused == []


@pytest.mark.slow
def test_one_turn_mirrored_for_the_other_side_is_refused_as_a_mirror_image(shots):
    for seed in range(3):
        _, result = replay.attack("mirrored", shots, seed)
        assert result.reason.startswith("mirror image"), result.reason
        assert result.mirror is not None and result.mirror < MIRROR_MIN_DIFFERENCE


@pytest.mark.slow
def test_apcer_of_each_attack_from_one_recorded_turn_is_at_most_5_percent(shots):
    """20 seeded random challenges per attack kind (docs/liveness.md has the table)."""
    for kind in replay.KINDS:
        outcomes = [replay.attack(kind, shots, seed)[1] for seed in range(20)]
        accepted = [seed for seed, result in enumerate(outcomes) if result.live]
        assert len(accepted) <= 1, (kind, accepted, Counter(r.reason[:40] for r in outcomes))


# -- over HTTP ------------------------------------------------------------------------------------------
class Clock:
    """The server's clock, moved by the test as a client's filming would take time."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image)[1].tobytes()


def clip_images(clip: Path, indices: list[int]) -> dict[int, np.ndarray]:
    capture = cv2.VideoCapture(str(clip))
    wanted, images = set(indices), {}
    for index in range(max(indices) + 1):
        ok, image = capture.read()
        assert ok
        if index in wanted:
            images[index] = image
    capture.release()
    return images


@pytest.fixture
def lin_client(client_for, faces):
    client = client_for(min_valid_frames=1, liveness="required")
    person = photo(faces, "lin_manuel_miranda_1")
    client.app.state.facer.facer.enroll("lin", [person])
    return client


def ask(client, challenge: Challenge) -> Clock:
    pending = client.app.state.challenges
    pending.draw = lambda: challenge
    pending.clock = clock = Clock()
    return clock


def docs_client_example():
    """The `answer_challenge` function docs/liveness.md shows."""
    text = (DOCS / "liveness.md").read_text(encoding="utf-8")
    code = re.search(r"```py\n(def answer_challenge.*?)```", text, re.S)
    assert code, "docs/liveness.md lost its answer_challenge example"
    scope: dict = {}
    exec(code.group(1), scope)
    return scope["answer_challenge"]


@pytest.mark.slow
def test_http_reveals_one_step_at_a_time_and_a_real_head_turn_verifies(lin_client, clip):
    """The docs' client answers the challenge with the clip (100 ms frames, 5 a request, each request
    arriving as its last frame is taken); verify then takes the challenge's own frames."""
    clock = ask(lin_client, GENUINE)
    images = clip_images(clip, list(range(84, 211, 3)))
    stream = iter(sorted(images))
    seen_steps = []

    def post(path, files=None):
        response = lin_client.post(path, files=files)
        assert response.status_code == 200, response.text
        data = response.json()
        assert "steps" not in data  # never the whole challenge
        return data

    def frames_of(step):
        seen_steps.append(step["move"])
        chunk = [images[i] for _, i in zip(range(5), stream, strict=False)]
        clock.now += len(chunk) * EVERY_MS / 1000
        return [jpeg(image) for image in chunk]

    challenge_id, answer = docs_client_example()(post, frames_of)
    assert answer["live"] is True, answer
    assert seen_steps[0] == "straight" and seen_steps[-1] == "right"
    response = lin_client.post(f"/users/lin/verify?challenge_id={challenge_id}")
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["band"] == "match" and data["liveness"]["live"] is True
    assert data["source"].startswith("liveness challenge: ")
    again = lin_client.post(f"/users/lin/verify?challenge_id={challenge_id}")
    assert again.status_code == 409


@pytest.mark.slow
def test_http_one_turn_mirrored_is_not_live_and_recorded(lin_client, engine, clip):
    """The reproduction: the clip's right turn cut around the face, mirrored for "left", sent step by step
    at the clip's real pace."""
    clock = ask(lin_client, Challenge.of("straight", "right", "left"))
    turn = list(range(177, 211, 3))
    images = clip_images(clip, [97, *turn])
    crops = {}
    for index, image in images.items():
        box = observe(engine, image, 0.0).box
        assert box is not None
        crops[index] = replay.crop_around(image, box)
    plan = {
        "straight": [crops[97]],
        "right": [crops[i] for i in turn],
        "left": [crops[i] for i in turn[::-1]] + [cv2.flip(crops[i], 1) for i in turn],  # back, then "left"
    }
    data = lin_client.post("/liveness/challenge").json()
    while data.get("status") != "decided":
        frames = plan[data["step"]["move"]]
        for start in range(0, len(frames), 5):
            part = frames[start : start + 5]
            clock.now += len(part) * EVERY_MS / 1000
            data = lin_client.post(
                f"/liveness/challenge/{data['challenge_id']}/frames",
                files=[("files", (f"{k}.jpg", jpeg(f), "image/jpeg")) for k, f in enumerate(part)],
            ).json()
            if data["status"] != "more":
                break
    assert data["live"] is False and data["reason"].startswith("mirror image"), data
    response = lin_client.post(f"/users/lin/verify?challenge_id={data['challenge_id']}")
    assert response.status_code == 403 and response.json()["error"]["type"] == "LivenessError"
    shown = lin_client.get("/users/lin").json()["recent_attempts"][0]
    assert shown["band"] == "not_live" and shown["live"] is False


def test_http_challenge_errors(lin_client):
    clock = ask(lin_client, GENUINE)
    data = lin_client.post("/liveness/challenge").json()
    assert set(data) >= {"challenge_id", "step", "frames_url", "expires_at", "ttl_s", "max_frames"}
    assert data["step"]["number"] == 1 and data["step"]["move"] == "straight" and "steps" not in data
    response = lin_client.post("/liveness/challenge/nope/frames", files=[("files", ("0.jpg", b"x", "image/jpeg"))])
    assert response.status_code == 400 and "unknown liveness challenge" in response.json()["error"]["message"]
    response = lin_client.post(f"/users/lin/verify?challenge_id={data['challenge_id']}")
    assert response.status_code == 400 and "not answered yet" in response.json()["error"]["message"]
    response = lin_client.post("/users/lin/verify", files=[("files", ("a.jpg", b"x", "image/jpeg"))])
    assert response.status_code == 400 and "requires a liveness challenge" in response.json()["error"]["message"]
    clock.now += 61
    response = lin_client.post(data["frames_url"], files=[("files", ("0.jpg", b"x", "image/jpeg"))])
    assert response.status_code == 400 and "expired" in response.json()["error"]["message"]
