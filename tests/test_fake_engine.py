"""The fake engine of the front ends' shape tests: its rules, its reports' shape against the real engine's,
and the seam (`get_engine`, `client_for`) through which the CLI and the HTTP app get it."""

from __future__ import annotations

import cv2
import numpy as np
from fake_engine import FINGERPRINT, FakeEngine
from helpers import one_face_photo, run_json

from facer_cli.settings import EngineSettings


def test_reports_have_the_real_engines_shape(engine, bundled_images):
    fake = FakeEngine(engine.settings)
    real, faked = engine.analyze_path(bundled_images / "yaoming.jpg"), fake.analyze_path(bundled_images / "yaoming.jpg")
    assert faked.accepted and real.accepted
    assert faked.to_dict(with_embedding=True).keys() == real.to_dict(with_embedding=True).keys()
    assert faked.faces[0].to_dict(with_embedding=True).keys() == real.faces[0].to_dict(with_embedding=True).keys()
    assert faked.embedding.shape == real.embedding.shape and faked.embedding.dtype == real.embedding.dtype
    assert fake.info.to_dict().keys() == engine.info.to_dict().keys()
    for name in ("analyze", "analyze_path", "settings", "fingerprint", "info", "pose_source"):
        assert hasattr(engine, name) and hasattr(fake, name), name


def test_same_picture_or_its_mirror_is_one_person_and_another_picture_is_not(bundled_images, tmp_path):
    fake = FakeEngine()
    yao = bundled_images / "yaoming.jpg"
    mirrored = tmp_path / "mirrored.jpg"
    cv2.imwrite(str(mirrored), cv2.flip(cv2.imread(str(yao)), 1))
    a, b = fake.analyze_path(yao).embedding, fake.analyze_path(mirrored).embedding
    other = fake.analyze_path(one_face_photo(bundled_images, tmp_path)).embedding
    assert abs(float(np.linalg.norm(a)) - 1) < 1e-5
    assert float(a @ b) > 0.99 and abs(float(a @ other)) < 0.3
    assert np.array_equal(a, fake.analyze(cv2.imread(str(yao)), "again").embedding)  # deterministic


def test_blank_pictures_hold_no_face_and_crowds_hold_several(bundled_images):
    fake = FakeEngine()
    assert fake.analyze(np.full((200, 200, 3), 90, np.uint8)).faces == []
    gdp = bundled_images / "gdp.jpg"
    assert len(fake.analyze_path(gdp).faces) == 1
    fake.for_settings(None).crowd(gdp, 3)  # shared by every copy
    frame = fake.analyze_path(gdp)
    assert len(frame.faces) == 3 and frame.accepted
    assert [face.reason for face in frame.faces[1:]] == ["not the subject: a larger face is in the frame"] * 2


def test_settings_still_decide(bundled_images):
    strict = FakeEngine().for_settings(EngineSettings(min_sharpness=5000))
    assert "blurred" in strict.analyze_path(bundled_images / "yaoming.jpg").reason


def test_the_cli_and_the_http_app_get_the_fake(fake_engine, client_for, bundled_images):
    yao = bundled_images / "yaoming.jpg"
    result, data = run_json("inspect", yao)
    assert result.exit_code == 0 and data["model"] == FINGERPRINT
    assert fake_engine.analysed == [str(yao)]
    files = [("files", ("y.jpg", yao.read_bytes(), "image/jpeg"))]
    assert client_for().post("/token/generate", files=files).json()["model"] == FINGERPRINT
    assert fake_engine.analysed == [str(yao), "y.jpg"]
