"""Shared fixtures: one engine per session (models load once), a fake engine, and the test photos.

Fixtures live here; plain helpers and constants (REPO, FACES, run, photo, people …) in helpers.py.
`../shared/faces` (or $FACER_TEST_FACES) holds real photos; tests that need it
skip with a reason when it is absent. Photos that ship inside installed
packages are always there.

Tiers, declared here only:
* `python -m pytest` runs everything, the tests marked `slow` included (CI runs this line);
* `python -m pytest -m "not slow"`, or `--quick`, leaves out the `slow` ones: the quick run while working.
  `slow` marks every test that takes more than about half a second on two cores (stress, fuzz, kill
  loops, attack sweeps, real `facer serve` processes and PostgreSQL servers, multi-process races,
  the real models over many photos, the container build); a new test that slow gets the mark too.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fake_engine import FakeEngine
from helpers import FACES

from facer_cli.cli.app import console
from facer_cli.engine import face_engine
from facer_cli.engine.face_engine import get_engine
from facer_cli.engine.modelpack import bundled_folder
from facer_cli.settings import Settings

pytest_plugins = ["store_backends"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--quick", action="store_true", default=False, help="leave out the tests marked slow (as -m 'not slow' does)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--quick"):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]


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


@pytest.fixture
def fake_engine(monkeypatch, settings) -> FakeEngine:
    """The fake engine of tests/fake_engine.py instead of the real one, for tests of the front ends' shape: every
    `Facer` built without an engine (the CLI run in this process by `run`/`run_json`) gets it through
    `get_engine`, and `client_for` builds its apps over it. Subprocesses still load the real models."""
    fake = FakeEngine(settings.engine)
    monkeypatch.setattr(face_engine, "get_engine", fake.for_settings)
    return fake


@pytest.fixture
def key_file(tmp_path) -> Path:
    """A new master key file (mode 0600) for a test's encrypted store."""
    from facer_cli.store.crypto import write_key_file

    path = tmp_path / "keys" / "master.key"
    path.parent.mkdir()
    write_key_file(path)
    return path


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


@pytest.fixture
def client_for(tmp_path, request):
    """make(**settings) → a TestClient over an app with these settings (the session's engine: no model
    reload, or the fake engine when the test asks for `fake_engine`; the store in tmp_path unless `db` is
    given). Skipped without the server extra."""
    pytest.importorskip("fastapi")
    pytest.importorskip("multipart")
    engine = request.getfixturevalue("fake_engine" if "fake_engine" in request.fixturenames else "engine")
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
