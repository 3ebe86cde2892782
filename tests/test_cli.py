"""The command line through Typer's runner: tables, --json fields, exit codes, bad input."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from helpers import run

pytestmark = pytest.mark.usefixtures("wide_console")


@pytest.fixture
def vectors(tmp_path_factory, bundled_images, fake_engine):
    """Templates saved as .npy (by the fake engine: their tests are about the front end): yaoming, and a few bad files."""
    folder = tmp_path_factory.mktemp("vectors")
    result = run("inspect", bundled_images / "yaoming.jpg", "--export", folder / "all.npz")
    assert result.exit_code == 0, result.output
    yao = np.load(folder / "all.npz")[str(bundled_images / "yaoming.jpg")]
    np.save(folder / "yao.npy", yao)
    np.save(folder / "yao64.npy", yao.astype(np.float64) * 3)  # other dtype and norm: same direction
    np.save(folder / "matrix.npy", np.stack([yao, yao]))
    np.save(folder / "nan.npy", np.full(512, np.nan, np.float32))
    np.save(folder / "zero.npy", np.zeros(512, np.float32))
    np.save(folder / "short.npy", yao[:128])
    np.save(folder / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (folder / "pickle.npy").write_bytes(pickle.dumps({"evil": True}))
    (folder / "empty.npy").write_bytes(b"")
    return folder


def test_inspect_table_lists_each_face_and_the_decision(bundled_images, fake_engine):
    fake_engine.crowd(bundled_images / "gdp.jpg", 3)  # a group photo
    result = run("inspect", bundled_images / "gdp.jpg", bundled_images / "yaoming.jpg")
    assert result.exit_code == 0, result.output
    for text in ("gdp.jpg", "yaoming.jpg", "accepted", "ignored: not the subject", "qual", "yaw"):
        assert text in result.output
    assert "2 image(s)" in result.output


def test_inspect_json_fields(bundled_images, fake_engine):
    result = run("inspect", "--json", bundled_images / "yaoming.jpg")
    assert result.exit_code == 0
    data = json.loads(result.output)
    frame = data["frames"][0]
    assert frame["accepted"] is True and frame["faces_found"] == 1
    face = frame["faces"][0]
    assert set(face) >= {"det_score", "yaw", "pitch", "roll", "sharpness", "quality", "accepted", "reason", "box"}
    assert data["model"] == fake_engine.fingerprint


def test_inspect_folder_shows_what_the_template_keeps(faces, tmp_path):
    folder = tmp_path / "obama"
    folder.mkdir()
    for path in sorted((faces / "people" / "obama").iterdir()):
        (folder / path.name).symlink_to(path)
    (folder / "zz_biden.jpg").symlink_to(faces / "people" / "biden" / "biden_1.jpg")
    (folder / "notes.txt").write_text("not an image, skipped inside folders")
    data = json.loads(run("inspect", "--json", folder).output)
    assert len(data["frames"]) == 5
    assert data["template"]["outliers"] == [str(folder / "zz_biden.jpg")]
    assert len(data["template"]["kept"]) == 4
    table = run("inspect", folder).output
    assert "outlier (cos" in table and "kept" in table


def test_inspect_reports_bad_files_per_file(tmp_path, bundled_images, fake_engine):
    (tmp_path / "truncated.jpg").write_bytes((bundled_images / "yaoming.jpg").read_bytes()[:3000])
    (tmp_path / "empty.png").write_bytes(b"")
    result = run("inspect", "--json", tmp_path / "truncated.jpg", tmp_path / "empty.png", bundled_images / "yaoming.jpg")
    assert result.exit_code == 0
    frames = json.loads(result.output)["frames"]
    assert "truncated" in frames[0]["error"] and "empty file" in frames[1]["error"] and frames[2]["accepted"]


def test_inspect_without_any_face_exits_4(tmp_path, fake_engine):
    import cv2

    cv2.imwrite(str(tmp_path / "wall.png"), np.full((200, 200, 3), 90, np.uint8))
    result = run("inspect", tmp_path / "wall.png")
    assert result.exit_code == 4 and "no face" in result.output
    (tmp_path / "nothing-here").mkdir()  # a folder without images (one that does not exist is exit 2)
    assert run("inspect", tmp_path / "nothing-here").exit_code == 4


def test_compare_images_match_and_no_match(faces):
    obama = faces / "people" / "obama"
    result = run("compare", obama / "obama_1.jpg", obama / "obama_4.jpg")
    assert result.exit_code == 0 and "MATCH" in result.output
    result = run("compare", "--json", obama / "obama_1.jpg", faces / "people" / "biden" / "biden_1.jpg")
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["band"] == "no_match" and data["similarity"] < 0.3 and data["threshold_high"] == 0.4


def test_compare_npy_and_image(vectors, bundled_images):
    result = run("compare", "--json", vectors / "yao.npy", bundled_images / "yaoming.jpg")
    assert result.exit_code == 0 and json.loads(result.output)["similarity"] > 0.999
    assert run("compare", vectors / "yao.npy", vectors / "yao64.npy").exit_code == 0


def test_compare_uncertain_band_exits_3(vectors, tmp_path):
    yao = np.load(vectors / "yao.npy")
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(512)
    noise -= (noise @ yao) * yao
    noise /= np.linalg.norm(noise)
    between = 0.35 * yao + np.sqrt(1 - 0.35**2) * noise  # cosine 0.35 with yao
    np.save(tmp_path / "between.npy", between.astype(np.float32))
    result = run("compare", "--json", vectors / "yao.npy", tmp_path / "between.npy")
    assert result.exit_code == 3 and json.loads(result.output)["band"] == "uncertain"


@pytest.mark.parametrize(
    "name, message",
    [
        ("matrix.npy", "is not a 1-D vector"),
        ("nan.npy", "NaN"),
        ("zero.npy", "zero vector"),
        ("objects.npy", "holds Python objects (pickled), which facer never loads"),
        ("pickle.npy", "a Python pickle, which facer never loads"),
        ("empty.npy", "empty file (0 bytes)"),
        ("short.npy", "different dimensions (512 and 128)"),
    ],
)
def test_compare_refuses_bad_vectors_with_one_line(vectors, name, message):
    result = run("compare", vectors / "yao.npy", vectors / name)
    assert result.exit_code == 4, result.output
    assert message in result.output and "Traceback" not in result.output


def test_compare_image_without_face_exits_4(tmp_path, vectors):
    import cv2

    cv2.imwrite(str(tmp_path / "wall.jpg"), np.full((120, 160, 3), 200, np.uint8))
    result = run("compare", vectors / "yao.npy", tmp_path / "wall.jpg")
    assert result.exit_code == 4 and "no usable face" in result.output


def test_compare_usage_errors_exit_2(vectors):
    assert run("compare", vectors / "yao.npy").exit_code == 2
    assert run("compare", "--det-size", "33", vectors / "yao.npy", vectors / "yao.npy").exit_code == 2


def test_doctor_json():
    result = run("doctor", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["provider"] == "CPUExecutionProvider"
    assert info["pose_source"] == "landmark_2d_106"
    assert info["modules"] == ["detection", "landmark_2d_106", "recognition"]
    assert len(info["files"]["recognition"]["sha256"]) == 64
    assert "onnxruntime" in info["versions"]


def test_demo_enrolls_verifies_a_match_and_an_impostor_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("demo", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["ok"] is True and data["enroll"]["user"] == "Yao Ming"
    assert [c["band"] for c in data["checks"]] == ["match", "no_match"]
    assert all(c["attempt_id"] for c in data["checks"])
    assert list(tmp_path.iterdir()) == []  # nothing written outside its temporary folder
    table = run("demo").output
    assert "MATCH" in table and "NO MATCH" in table and "facer enroll alice" in table


def test_help_lists_the_commands():
    result = run("--help")
    for name in ("inspect", "compare", "config", "doctor", "demo"):
        assert name in result.output
