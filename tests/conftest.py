"""Shared fixtures: one engine per session (models load once), and the test photos.

`../shared/faces` (or $FACER_TEST_FACES) holds real photos; tests that need it
skip with a reason when it is absent. Photos that ship inside installed
packages are always there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from facer_cli.cli.app import console
from facer_cli.engine.face_engine import get_engine
from facer_cli.engine.modelpack import bundled_folder
from facer_cli.settings import Settings

REPO = Path(__file__).resolve().parent.parent
FACES = Path(os.environ.get("FACER_TEST_FACES", REPO.parent / "shared" / "faces"))


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path_factory):
    """No test reads the developer's facer.toml, FACER_* variables or database."""
    for name in list(os.environ):
        if name.startswith("FACER_") and name != "FACER_TEST_FACES":
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))


@pytest.fixture
def wide_console(monkeypatch):
    """Tables at 200 columns, so assertions do not depend on line folding."""
    monkeypatch.setattr(console, "width", 200)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()  # defaults only: Settings() reads neither facer.toml nor the environment


@pytest.fixture(scope="session")
def engine(settings):
    return get_engine(settings)


@pytest.fixture(scope="session")
def faces() -> Path:
    if not (FACES / "people").is_dir():
        pytest.skip(f"test photos not found at {FACES} (set FACER_TEST_FACES)")
    return FACES


@pytest.fixture(scope="session")
def bundled_images() -> Path:
    """players.jpg (22 faces at det_size 640), yaoming.jpg, gdp.jpg: on every machine."""
    return bundled_folder()


@pytest.fixture(scope="session")
def insightface_images() -> Path:
    import insightface

    return Path(insightface.__file__).parent / "data" / "images"


def people(faces: Path) -> dict[str, list[Path]]:
    return {d.name: sorted(p for p in d.iterdir() if p.is_file()) for d in sorted((faces / "people").iterdir())}


@pytest.fixture
def client_for(tmp_path, engine):
    """make(**settings) → a TestClient over an app with these settings (the session's engine: no model
    reload; the store in tmp_path unless `db` is given). Skipped without the server extra."""
    pytest.importorskip("fastapi")
    pytest.importorskip("multipart")
    import warnings

    with warnings.catch_warnings():  # Starlette's notice about its TestClient's transport
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from facer_cli.server import create_app

    clients = []

    def make(**values):
        settings = Settings.from_values({"db": str(tmp_path / "facer.db"), **values})
        client = TestClient(create_app(settings, engine=engine), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
