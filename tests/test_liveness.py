"""Liveness: the challenge state machine, the geometric cues, and the real engine on the clip and on attacks.

Unit tests drive `LivenessChecker` with synthetic landmarks: a 3-D head (InsightFace's mean face,
projected by a pinhole camera) or the same face flattened onto a plane. Engine tests use the test
clip (a real head turning) and synthetic prints and screens rendered from the test photos.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import cv2
import numpy as np
import pytest

from facer_cli.engine.pose import IBUG68_FROM_2D106, MEAN_FACE_68, pose_from_landmarks_2d106
from facer_cli.liveness import (
    PARALLAX_MIN_RESIDUAL,
    Challenge,
    LivenessChecker,
    LivenessFrame,
    check_camera,
    check_frames,
    eye_aspect_ratio,
    inter_ocular_distance,
    observe,
    parallax_residual,
)
from facer_cli.liveness.attacks import camera_matrix, render_attack, rotation, turned_parallax
from facer_cli.liveness.challenge import STRAIGHT_MAX_YAW, TURN_TARGET_RANGE
from facer_cli.liveness.geometry import LEFT_EYE_2D106, RIGHT_EYE_2D106
from facer_cli.sources.camera import Camera

# -- a synthetic head ---------------------------------------------------------------------


def _head_106() -> np.ndarray:
    """106 rigid 3-D points: the mean face where 2d106det maps onto iBUG-68, seeded fillers elsewhere."""
    head = np.full((106, 3), np.nan)
    head[list(IBUG68_FROM_2D106)] = MEAN_FACE_68
    missing = np.isnan(head[:, 0])
    rng = np.random.default_rng(0)
    known = head[~missing]
    head[missing] = known[rng.integers(0, len(known), missing.sum())] * 0.9  # inside the face
    return head


HEAD = _head_106()
SIZE = (640, 480)
BOX = (250.0, 150.0, 390.0, 330.0)


def project(yaw: float, flat: bool = False, pitch: float = 0.0, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """The head (or, with `flat`, the face printed on a plane) turned by yaw/pitch, in pixels."""
    points = HEAD.copy()
    if flat:
        points[:, 2] = 0.0
    camera = rotation(yaw, pitch, 0.0) @ (points * 120.0).T + np.array([[0.0], [0.0], [700.0]])
    pixels = (camera_matrix(SIZE) @ camera).T
    xy = pixels[:, :2] / pixels[:, 2:]
    if noise:
        xy += np.random.default_rng(seed).normal(0.0, noise, xy.shape)
    return xy


def with_eyes_closed(points: np.ndarray, closed: float) -> np.ndarray:
    """Move each eye's lids toward each other by `closed` (0 open, 1 shut)."""
    points = points.copy()
    for eye in (LEFT_EYE_2D106, RIGHT_EYE_2D106):
        for upper, lower in ((eye[1], eye[5]), (eye[2], eye[4])):
            middle = (points[upper] + points[lower]) / 2
            points[upper] += closed * (middle - points[upper])
            points[lower] += closed * (middle - points[lower])
    return points


EMBEDDING = np.eye(512, dtype=np.float32)[0]
OTHER_PERSON = np.eye(512, dtype=np.float32)[1]


def frame(t_ms: float, yaw: float, *, flat: bool = False, box: tuple[float, float, float, float] = BOX,
          embedding: np.ndarray = EMBEDDING, closed: float = 0.0) -> LivenessFrame:
    landmarks = with_eyes_closed(project(yaw, flat=flat, noise=0.2, seed=int(t_ms)), closed)
    return LivenessFrame(timestamp_ms=t_ms, box=box, landmarks=landmarks, yaw=yaw, pitch=0.0, roll=0.0,
                         embedding=embedding)


def feed(checker: LivenessChecker, yaws: list[float], step_ms: float = 200.0, **kwargs: object) -> None:
    for k, yaw in enumerate(yaws):
        checker.update(frame(k * step_ms, yaw, **kwargs))  # type: ignore[arg-type]


# -- geometry ---------------------------------------------------------------------------------


def test_the_synthetic_head_reads_the_yaw_it_was_turned_by():
    for yaw in (-25.0, 0.0, 20.0):
        assert pose_from_landmarks_2d106(project(yaw), SIZE).yaw == pytest.approx(yaw, abs=3.0)


def test_a_flat_face_leaves_no_residual_and_a_real_head_does():
    frontal = project(0.0)
    iod = inter_ocular_distance(frontal)
    flat = parallax_residual(project(0.0, flat=True), project(30.0, flat=True, pitch=20.0), iod)
    assert flat < 1e-6
    small, large = (parallax_residual(frontal, project(yaw), iod) for yaw in (5.0, 20.0))
    assert small < large
    assert large > 1.3 * PARALLAX_MIN_RESIDUAL  # 0.076: like the clip's real head at 20°


def test_parallax_residual_refuses_bad_input():
    with pytest.raises(ValueError, match="106"):
        parallax_residual(np.zeros((68, 2)), np.zeros((68, 2)), 1.0)
    with pytest.raises(ValueError, match="positive"):
        parallax_residual(project(0.0), project(10.0), 0.0)


def test_eye_aspect_ratio_drops_when_the_eyes_close():
    open_ear = eye_aspect_ratio(project(0.0))
    assert eye_aspect_ratio(with_eyes_closed(project(0.0), 0.8)) < 0.3 * open_ear


# -- the challenge -----------------------------------------------------------------------------


def test_random_challenges_start_straight_then_alternate_turns_within_the_target_range():
    challenges = [Challenge.random(random.Random(seed)) for seed in range(40)]
    for challenge in challenges:
        moves = challenge.moves
        assert moves[0] == "straight" and 3 <= len(moves) <= 4
        assert all(a != b for a, b in itertools.pairwise(moves[1:]))
        assert all(TURN_TARGET_RANGE[0] <= s.target <= TURN_TARGET_RANGE[1] for s in challenge.steps[1:])
    assert len({c.moves for c in challenges}) == 4  # both sides first, 2 or 3 turns
    assert Challenge.random(random.Random(5)) == Challenge.random(random.Random(5))
    assert Challenge.random().steps[0].target == STRAIGHT_MAX_YAW  # the secure default source


def test_a_blink_step_comes_after_the_first_turn_and_to_dict_describes_the_steps():
    challenge = Challenge.random(random.Random(1), blink=True)
    assert "blink" in challenge.moves[2:]
    data = challenge.to_dict()
    assert [s["move"] for s in data["steps"]] == list(challenge.moves)
    assert data["steps"][1]["instruction"].startswith("turn your head")


def test_a_challenge_needs_a_straight_start_and_a_turn():
    with pytest.raises(ValueError, match="straight"):
        Challenge.of("left", "right")
    with pytest.raises(ValueError, match="turn"):
        Challenge.of("straight", "blink")


# -- the state machine --------------------------------------------------------------------------


def test_a_real_head_following_the_steps_in_order_is_live():
    checker = LivenessChecker(Challenge.of("straight", "left", "right"))
    seen = []
    for k, yaw in enumerate([3.0, 12.0, 23.0, 8.0, -9.0, -22.0]):
        progress = checker.update(frame(k * 200.0, yaw))
        seen.append((progress.step, progress.instruction))
    assert seen[0] == (2, "turn your head to your left")
    assert seen[-2] == (3, "turn your head to your right")
    result = checker.result()
    assert result.live, result.reason
    assert result.steps_done == 3 and result.parallax is not None and result.parallax >= PARALLAX_MIN_RESIDUAL
    assert result.to_dict()["cues"][-1]["residual"] > PARALLAX_MIN_RESIDUAL


def test_turning_the_wrong_way_fails_at_once():
    checker = LivenessChecker(Challenge.of("straight", "left", "right"))
    feed(checker, [0.0, -10.0, -21.0, 25.0])
    result = checker.result()
    assert not result.live and result.steps_done == 1
    assert result.reasons == ["turned right when asked to turn left (step 2)"]


def test_coming_back_from_one_turn_to_the_next_is_not_the_wrong_way():
    checker = LivenessChecker(Challenge.of("straight", "right", "left"))
    feed(checker, [0.0, -22.0, -22.0, -5.0, 22.0])
    assert checker.result().live


def test_a_step_not_done_in_time_fails():
    checker = LivenessChecker(Challenge.of("straight", "left", time_limit_s=4.0))
    feed(checker, [0.0] + [8.0] * 30)
    result = checker.result()
    assert not result.live
    assert result.reasons == ["did not turn left within 4 s (step 2)"]
    assert len(result.cues) == 22  # decided on the first frame past 4 s; later frames ignored


def test_a_turn_must_leave_the_frontal_reference_by_enough_for_parallax():
    checker = LivenessChecker(Challenge.of("straight", "right", turn_target=18.0))
    feed(checker, [-8.0, -19.0])  # 18° reached, but only 11° from the reference
    assert not checker.done and checker.progress().progress < 1.0
    checker.update(frame(400.0, -24.0))
    assert checker.result().live


def test_a_flat_face_doing_every_move_is_stopped_by_parallax():
    checker = LivenessChecker(Challenge.of("straight", "left", "right"))
    feed(checker, [0.0, 22.0, 0.0, -22.0], flat=True)
    result = checker.result()
    assert not result.live and result.steps_done == 3
    assert result.reason.startswith("no parallax: flat surface (residual 0.0")


def test_a_box_that_jumps_is_another_face():
    checker = LivenessChecker(Challenge.of("straight", "left"))
    checker.update(frame(0.0, 0.0))
    checker.update(frame(200.0, 10.0, box=(20.0, 20.0, 160.0, 200.0)))
    result = checker.result()
    assert not result.live and result.reason.startswith("face changed: the box jumped")


def test_another_person_in_the_same_place_is_caught_by_the_embedding():
    checker = LivenessChecker(Challenge.of("straight", "left"))
    checker.update(frame(0.0, 0.0))
    checker.update(frame(200.0, 10.0, embedding=OTHER_PERSON))
    assert checker.result().reason.startswith("face changed: another person (similarity 0.00")


def test_a_face_missing_for_more_than_a_second_ends_the_attempt():
    checker = LivenessChecker(Challenge.of("straight", "left"))
    checker.update(frame(0.0, 0.0))
    checker.update(LivenessFrame(timestamp_ms=600.0))
    assert not checker.done
    checker.update(LivenessFrame(timestamp_ms=1200.0))
    assert checker.result().reasons == ["face lost for more than 1 s"]


def test_an_attempt_cut_short_is_not_live():
    checker = LivenessChecker(Challenge.of("straight", "left"))
    feed(checker, [0.0, 10.0])
    assert checker.result().reason == "stopped before the challenge ended (at step 2: turn your head to your left)"


def test_a_blink_is_a_dip_of_the_eye_aspect_ratio_that_recovers():
    challenge = Challenge.of("straight", "left", "blink")
    checker = LivenessChecker(challenge)
    feed(checker, [0.0, 22.0])
    for k, closed in enumerate([0.0, 0.0, 0.7, 0.0]):
        assert not checker.done
        checker.update(frame(400.0 + 100 * k, 22.0, closed=closed))
    result = checker.result()
    assert result.live and result.blinked


def test_eyes_that_never_close_or_never_reopen_are_no_blink():
    for pattern in ([0.0] * 30, [0.0, 0.0, 0.0] + [0.7] * 30):
        checker = LivenessChecker(Challenge.of("straight", "left", "blink"))
        feed(checker, [0.0, 22.0])
        for k, closed in enumerate(pattern):
            checker.update(frame(400.0 + 200 * k, 22.0, closed=closed))
        result = checker.result()
        assert not result.live and not result.blinked
        assert result.reasons == ["did not blink within 5 s (step 3)"]


# -- the real engine ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(faces: Path) -> Path:
    return faces / "video" / "short_hamilton_clip.mp4"


def test_the_clip_real_head_turn_passes(engine, clip):
    """Frames 84-: lin_manuel_miranda at +11°, frontal by #90, turned right past 20° by #114."""
    camera = Camera(str(clip), warmup_frames=84, interval_ms=100, timeout_s=None)
    shown = []
    result = check_camera(engine, camera, Challenge.of("straight", "right"), lambda p, f: shown.append(p))
    assert result.live, result.reason
    assert result.parallax is not None and result.parallax > 1.3 * PARALLAX_MIN_RESIDUAL
    assert len(result.cues) <= 15 and result.elapsed_ms < 2000
    assert shown[-1].done and shown[-1].live
    assert camera.stats.stopped == "liveness decided: live"


def _clip_frames(clip: Path, first: int, last: int, every: int = 3) -> list[tuple[np.ndarray, float]]:
    capture = cv2.VideoCapture(str(clip))
    frames = []
    for index in range(last + 1):
        ok, image = capture.read()
        assert ok
        if index >= first and (index - first) % every == 0:
            frames.append((image, index * 1000 / 29.97))
    capture.release()
    return frames


def test_the_clip_scene_cut_to_another_face_fails(engine, clip):
    """Frame 177 is frontal; he turns right by #204; at #213 the shot cuts to another singer."""
    result = check_frames(engine, _clip_frames(clip, 177, 222), Challenge.of("straight", "right", "left"))
    assert not result.live
    assert result.steps_done == 2
    assert result.reason.startswith("face changed")


@pytest.fixture(scope="module")
def photos(engine, faces: Path) -> list[tuple[str, np.ndarray, tuple[float, float, float, float]]]:
    """Every test photo with its face's box."""
    found = []
    for path in sorted(p for p in (faces / "people").rglob("*") if p.is_file()):
        image = cv2.imread(str(path))
        found.append((path.stem, image, engine.analyze(image).subject.box))
    return found


def _run_attacks(engine, photos, count: int, kinds: tuple[str, ...], seed: int, ramp_frames=(3, 4)):
    for k in range(count):
        name, photo, box = photos[(7 * k) % len(photos)]
        rng = np.random.default_rng([seed, k])
        video = render_attack(photo, box, kinds[k % len(kinds)], rng, name, ramp_frames=ramp_frames)
        frames = [observe(engine, image, t, i) for i, (image, t) in enumerate(zip(video.frames, video.timestamps_ms, strict=True))]
        checker = LivenessChecker(Challenge.of(*video.moves))  # the attacker plays the order asked
        for observed in frames:
            checker.update(observed)
        yield video, checker.result(), turned_parallax(frames, video.yaw)


@pytest.mark.slow
def test_printed_and_screen_photos_are_rejected(engine, photos):
    """10 generated attacks on every run, turned quickly (1-2 frames per turn) to keep it fast;
    the slow test below runs 200 at the usual pace."""
    for video, result, parallax in _run_attacks(engine, photos, 10, ("print", "screen"), seed=11, ramp_frames=(1, 2)):
        assert not result.live, f"{video.kind} of {video.photo} accepted"
        assert parallax is not None and parallax < PARALLAX_MIN_RESIDUAL, (video.kind, video.photo, parallax)


@pytest.mark.slow
def test_two_hundred_prints_and_screens_are_all_rejected(engine, photos):
    """APCER 0 % on 200 generated attacks, by the full checker and by the parallax cue alone (~4 min)."""
    outcomes = list(_run_attacks(engine, photos, 200, ("print", "screen"), seed=2024))
    accepted = [(v.kind, v.photo) for v, result, _ in outcomes if result.live]
    assert accepted == []
    flat_enough = [(v.kind, v.photo, p) for v, _, p in outcomes if p is None or p >= PARALLAX_MIN_RESIDUAL]
    assert flat_enough == []
