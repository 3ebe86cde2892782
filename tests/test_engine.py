"""The engine on real photos: faces found, embeddings that separate people, decisions."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from helpers import people

from facer_cli.engine.face_engine import FaceEngine, decide, quality_score
from facer_cli.engine.quality import aligned_gray, face_region, sharpness
from facer_cli.settings import Settings


@pytest.fixture(scope="module")
def engine640():
    return FaceEngine(Settings(det_size=640))


@pytest.fixture(scope="module")
def people_frames(engine, faces):
    return {name: [engine.analyze_path(p) for p in paths] for name, paths in people(faces).items()}


def test_crowd_photos_inside_installed_packages(engine640, engine, bundled_images, insightface_images):
    assert len(engine640.analyze_path(bundled_images / "players.jpg").faces) == 22
    assert len(engine640.analyze_path(insightface_images / "t1.jpg").faces) == 6
    assert len(engine.analyze_path(insightface_images / "t1.jpg").faces) == 6


def test_several_faces_the_largest_is_the_subject(engine, bundled_images):
    frame = engine.analyze_path(bundled_images / "gdp.jpg")
    assert len(frame.faces) >= 3
    areas = [face.area for face in frame.faces]
    assert areas == sorted(areas, reverse=True)
    assert frame.faces[0].is_subject
    # Three people of about the same size: one person at a time.
    assert not frame.accepted and frame.reason == "3 people in view: one person at a time"
    for face in frame.faces[1:]:
        assert not face.is_subject and not face.accepted and face.reason.startswith("not the subject")
        assert face.embedding is None  # only the subject is embedded unless asked
    everyone = engine.analyze_path(bundled_images / "gdp.jpg", all_faces=True)
    assert all(face.embedding is not None for face in everyone.faces)


def test_report_fields_for_a_clear_face(engine, bundled_images):
    frame = engine.analyze_path(bundled_images / "yaoming.jpg")
    face = frame.subject
    assert frame.accepted and face.reason == ""
    assert face.det_score > 0.6 and len(face.keypoints) == 5
    assert face.embedding.shape == (512,) and face.embedding.dtype == np.float32
    assert abs(np.linalg.norm(face.embedding) - 1) < 1e-5
    assert face.quality == pytest.approx(quality_score(face.det_score, face.sharpness))
    assert None not in (face.yaw, face.pitch, face.roll)


def test_no_face(engine, tmp_path):
    blank = np.full((240, 320, 3), 127, np.uint8)
    frame = engine.analyze(blank, "blank")
    assert frame.faces == [] and not frame.accepted and frame.reason == "no face"


def test_quality_formula():
    assert quality_score(0.8, 200) == pytest.approx(0.6 * 0.8 + 0.4 * 0.5)
    assert quality_score(0.8, 1000) == pytest.approx(0.6 * 0.8 + 0.4)


def test_sharpness_is_measured_on_the_aligned_face_only():
    rng = np.random.default_rng(0)
    image = np.full((200, 400, 3), 128, np.uint8)
    image[:, 200:] = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)  # busy right half
    # Keypoints of a face about 100 px wide in the flat left half, then the same in the busy right half.
    keypoints = np.array([[70.0, 90.0], [130.0, 90.0], [100.0, 115.0], [75.0, 140.0], [125.0, 140.0]])
    assert sharpness(face_region(aligned_gray(image, keypoints))) == 0.0
    busy = keypoints + [200.0, 0.0]
    assert sharpness(face_region(aligned_gray(image, busy))) > 1000
    blurred = cv2.GaussianBlur(image, (0, 0), 3)
    assert sharpness(face_region(aligned_gray(blurred, busy))) < sharpness(face_region(aligned_gray(image, busy)))


def test_decisions_name_the_reason(engine, bundled_images):
    face = engine.analyze_path(bundled_images / "yaoming.jpg").subject
    strict = Settings(detection_threshold=0.99, min_quality_score=0.99, pose_yaw_limit=0.0, pose_pitch_limit=0.0)
    accepted, reason = decide(face, strict)
    assert not accepted
    assert f"detector score {face.det_score:.2f} < 0.99" in reason
    assert "yaw" in reason and "beyond ±0°" in reason and "pitch" in reason
    assert "quality" in reason
    gates = Settings(min_sharpness=10_000, min_face_size=1000, min_face_brightness=255, max_light_imbalance=1.0)
    accepted, reason = decide(face, gates)
    assert not accepted
    assert f"blurred: sharpness {face.sharpness:.0f} < 10000" in reason
    assert f"face too small: eyes {face.eye_distance:.1f} px apart < 1000" in reason
    assert f"too dark: mean level {face.brightness:.0f} < 255" in reason
    assert "uneven light: one side" in reason


@pytest.mark.slow
def test_every_person_photo_has_one_accepted_face(people_frames):
    for frames in people_frames.values():
        for frame in frames:
            assert len(frame.faces) == 1, frame.source
            assert frame.accepted, (frame.source, frame.reason)


def test_same_identity_matches_and_different_identities_do_not(people_frames, settings):
    embeddings = [(name, f.embedding) for name, frames in people_frames.items() for f in frames]
    genuine, impostor = [], []
    for (name_a, a), (name_b, b) in itertools.combinations(embeddings, 2):
        (genuine if name_a == name_b else impostor).append(float(a @ b))
    assert len(genuine) == 14 and len(impostor) == 91
    assert min(genuine) >= settings.cosine_threshold_high
    assert max(impostor) < settings.cosine_threshold_low


@pytest.mark.parametrize("scene, count", [("two_people.jpg", 2), ("obama_and_biden.jpg", 3), ("kit_with_rose.jpg", 2)])
def test_scene_face_counts(engine, faces, scene, count):
    assert len(engine.analyze_path(faces / "scenes" / scene).faces) == count


def test_scene_subjects_are_who_they_should_be(engine, faces, people_frames):
    obama = people_frames["obama"][0].embedding
    frame = engine.analyze_path(faces / "scenes" / "two_people.jpg", all_faces=True)
    assert max(float(face.embedding @ obama) for face in frame.faces) > 0.4


def test_edge_images(engine, faces, people_frames):
    obama = people_frames["obama"][1].embedding  # obama_2: the RGBA file is made from it
    rgba = engine.analyze_path(faces / "edge" / "obama_rgba_32bit.png")
    assert rgba.accepted and float(rgba.embedding @ obama) > 0.9
    for name in ("obama_partial_face_1.jpg", "obama_partial_face_2.jpg"):
        frame = engine.analyze_path(faces / "edge" / name)
        assert len(frame.faces) == 1 and frame.embedding is not None


def test_resolutions_give_the_same_person(engine, faces, people_frames):
    obama = people_frames["obama"][0].embedding
    for path in sorted((faces / "resolutions").iterdir()):
        frame = engine.analyze_path(path)
        assert frame.accepted, (path.name, frame.reason)
        assert float(frame.embedding @ obama) > 0.4, path.name


def test_unreadable_file_becomes_a_report_not_a_crash(engine, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really")
    frame = engine.analyze_path(bad)
    assert frame.error is not None and not frame.accepted and "broken.jpg" in frame.reason
