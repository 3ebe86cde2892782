"""facer_cli.engine.onnx_models against insightface's model_zoo: the same attributes and bit-identical outputs.

Both sides are loaded from the same files with the same providers and session
options, as `load_models` does; the engine then runs once on insightface's
objects (how facer worked before) and once on the wrappers, on every real photo
at det sizes 320 and 640, and boxes, scores, keypoints, landmarks and embeddings
must be exactly equal.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from helpers import REPO

from facer_cli.engine import onnx_models
from facer_cli.engine.face_engine import FaceEngine
from facer_cli.engine.modelpack import LoadedModels, choose_providers, load_models, locate_bundled_pack
from facer_cli.settings import Settings
from facer_cli.sources.images import load_image

model_zoo = pytest.importorskip("insightface.model_zoo.model_zoo")

DET_SIZES = (320, 640)
SHARED_FOLDERS = ("people", "scenes", "resolutions", "edge")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
ATTRIBUTES = {
    "detection": [
        "taskname",
        "input_mean",
        "input_std",
        "input_name",
        "input_shape",
        "output_names",
        "use_kps",
        "fmc",
        "_feat_stride_fpn",
        "_num_anchors",
        "batched",
        "input_size",
        "input_sizes",
        "nms_thresh",
        "det_thresh",
    ],
    "landmark_2d_106": [
        "taskname",
        "input_mean",
        "input_std",
        "input_size",
        "input_shape",
        "input_name",
        "output_names",
        "lmk_dim",
        "lmk_num",
        "require_pose",
    ],
    "recognition": [
        "taskname",
        "input_mean",
        "input_std",
        "input_size",
        "input_shape",
        "input_name",
        "output_names",
        "output_shape",
    ],
}


def images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def shared_images(faces: Path) -> list[Path]:
    return [p for name in SHARED_FOLDERS for p in images_under(faces / name)]


def insightface_loaded(settings: Settings) -> LoadedModels:
    """The bundled pack loaded as facer loaded it before: through insightface's model_zoo, same options."""
    import onnxruntime

    pack = locate_bundled_pack()
    providers = choose_providers(settings)
    models: dict[str, Any] = {}
    for task, file in pack.files.items():
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = settings.onnx_threads
        models[task] = model_zoo.get_model(str(file.path), providers=providers, sess_options=options)
    return LoadedModels(pack, models, providers, 0.0)


@pytest.fixture(scope="module")
def engines() -> tuple[FaceEngine, FaceEngine]:
    settings = Settings(det_size=DET_SIZES[0])
    return FaceEngine(settings, insightface_loaded(settings)), FaceEngine(settings, load_models(settings))


def at_size(engine: FaceEngine, size: int) -> FaceEngine:
    return FaceEngine(dataclasses.replace(engine.settings, det_size=size), engine.models)


def assert_same_analysis(before: FaceEngine, after: FaceEngine, path: Path) -> int:
    """Run both engines on one photo, every face measured; returns the faces compared.

    The reports hold the detector's float32 boxes, scores and keypoints as Python
    floats, which is exact: equal floats are equal float32 values.
    """
    image = load_image(path, before.settings.max_image_pixels)
    frames = [engine.analyze(image, str(path), all_faces=True) for engine in (before, after)]
    assert len(frames[0].faces) == len(frames[1].faces), path
    for face_before, face_after in zip(frames[0].faces, frames[1].faces, strict=True):
        assert face_before.box == face_after.box and face_before.det_score == face_after.det_score, path
        assert face_before.keypoints == face_after.keypoints, path
        assert face_before.embedding is not None and face_after.embedding is not None, path
        assert np.array_equal(face_before.embedding, face_after.embedding), path
        assert (face_before.yaw, face_before.pitch, face_before.roll) == (
            face_after.yaw,
            face_after.pitch,
            face_after.roll,
        )
        theirs, ours = (engine._landmarks(image, face_before.box) for engine in (before, after))
        assert np.array_equal(theirs, ours), path
    return len(frames[0].faces)


@pytest.mark.slow
@pytest.mark.parametrize("size", DET_SIZES)
def test_bundled_photos_bit_identical(engines, bundled_images, size):
    paths = images_under(bundled_images)
    assert len(paths) == 3
    # players.jpg alone holds 16 faces found at 320, 22 at 640.
    assert sum(assert_same_analysis(*(at_size(e, size) for e in engines), p) for p in paths) >= 19


@pytest.mark.slow
@pytest.mark.parametrize("size", DET_SIZES)
def test_shared_photos_bit_identical(engines, faces, size):
    paths = shared_images(faces)
    assert len(paths) == 26  # 15 people, 3 scenes, 5 resolutions, 3 edge
    assert sum(assert_same_analysis(*(at_size(e, size) for e in engines), p) for p in paths) >= 25


def test_low_threshold_and_several_sizes_decode_alike(engines, bundled_images):
    """More candidates through NMS than the engine's floor keeps, and insightface's multi-size detection."""
    before, after = (engine.detector for engine in engines)
    image = load_image(bundled_images / "players.jpg", 10**8)
    for kwargs in (
        {"det_thresh": 0.05},
        {"input_size": [(256, 192), (480, 640)]},
        {"max_num": 3},
        {"max_num": 3, "metric": "max"},
    ):
        found_before, found_after = before.detect(image, **kwargs), after.detect(image, **kwargs)
        for theirs, ours in zip(found_before, found_after, strict=True):
            assert theirs is not None and ours is not None
            assert np.array_equal(theirs, ours) and theirs.dtype == ours.dtype, kwargs


def test_same_public_attributes(engines):
    for task, names in ATTRIBUTES.items():
        theirs, ours = (engine.models.models[task] for engine in engines)
        for name in names:
            assert getattr(theirs, name) == getattr(ours, name), (task, name)


def test_first_node_names_match_onnx():
    for file in locate_bundled_pack().files.values():
        expected = [node.name for node in onnx.load(str(file.path), load_external_data=False).graph.node[:8]]
        assert onnx_models.first_node_names(file.path) == expected


def test_normalisation_rules():
    assert onnx_models.normalisation(["_minusscalar0", "_mulscalar0", "conv"], True, 128.0) == (0.0, 1.0)
    assert onnx_models.normalisation(["Sub_0", "Mul_1"], False, 127.5) == (0.0, 1.0)
    assert onnx_models.normalisation(["x", "bn_data", "y"], True, 128.0) == (0.0, 1.0)
    assert onnx_models.normalisation(["x", "bn_data", "y"], False, 127.5) == (127.5, 127.5)
    assert onnx_models.normalisation(["Conv_0", "Relu_1"], True, 128.0) == (127.5, 128.0)


def test_router_refuses_what_facer_cannot_use(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 100, 100])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 100, 100])],
    )
    path = tmp_path / "odd.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    assert onnx_models.get_model(path, providers=["CPUExecutionProvider"]) is None
    assert model_zoo.get_model(str(path), providers=["CPUExecutionProvider"]) is None


def test_loading_does_not_import_insightface():
    code = (
        "import sys, facer_cli.engine.modelpack, facer_cli.engine.onnx_models\n"
        "from facer_cli.settings import Settings\n"
        "loaded = facer_cli.engine.modelpack.load_models(Settings())\n"
        "assert type(loaded.models['detection']).__module__ == 'facer_cli.engine.onnx_models'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('insightface', 'onnx', 'skimage', 'scipy')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
