"""The store's backends for the tests (a pytest plugin: `pytest_plugins = ["store_backends"]` in conftest).

* `backend`: "sqlite" and "postgresql" — a test that takes it (or `store`-style fixtures built on
  it, such as `backend_db` and `backend_store`) runs once on each;
* `postgres_server`: one throwaway PostgreSQL cluster per test session (`pg_cluster.Cluster`),
  started only when the first PostgreSQL test runs;
* `postgres_url`: a fresh, empty database on it for one test.

Without PostgreSQL's server binaries the PostgreSQL parameter skips with the reason, unless
FACER_REQUIRE_POSTGRES=1 (as `.ci/run` sets it): then it fails. The variable is read when this
module loads, before the per-test environment is cleared of FACER_* variables.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BACKENDS = ("sqlite", "postgresql")
REQUIRE_POSTGRES = os.environ.get("FACER_REQUIRE_POSTGRES") == "1"
_databases = itertools.count(1)


def new_cluster() -> Any:
    """A new `pg_cluster.Cluster` (not started), or the test skips with the reason (fails with
    FACER_REQUIRE_POSTGRES=1) where PostgreSQL's server binaries or psycopg are missing."""
    import importlib.util

    from pg_cluster import Cluster, NoPostgres

    try:
        if importlib.util.find_spec("psycopg") is None:
            raise NoPostgres("psycopg is not installed (pip install -e '.[dev]' or '.[postgres]')")
        return Cluster()
    except NoPostgres as exc:
        if REQUIRE_POSTGRES:
            pytest.fail(f"FACER_REQUIRE_POSTGRES=1, but {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """One PostgreSQL server for the session: started on first use, stopped and deleted at the end."""
    cluster = new_cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    """A new, empty database on the session's server: its URL (no password: the cluster trusts 127.0.0.1)."""
    return postgres_server.create_database(f"facer_test_{os.getpid()}_{next(_databases)}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each store backend in turn ("postgresql" starts the session's server, or skips)."""
    if request.param == "postgresql":
        request.getfixturevalue("postgres_server")
    return request.param


@pytest.fixture
def backend_db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The `db` setting of a fresh store of `backend`: an SQLite path (not made yet) or a new database's URL."""
    if backend == "postgresql":
        return request.getfixturevalue("postgres_url")
    return str(tmp_path / "data" / "facer.db")


@pytest.fixture
def backend_store(backend_db: str) -> Iterator[Any]:
    """A fresh store of `backend`, opened with access "create"."""
    from facer_cli.settings import Settings
    from facer_cli.store.contract import open_store

    with open_store(Settings(db=backend_db)) as opened:
        yield opened


def table_columns(store: Any, table: str) -> set[str]:
    """The column names of one of the store's tables, on either backend."""
    if store.backend == "sqlite":
        return {row[1] for row in store.conn.execute(f"PRAGMA table_info({table})")}
    rows = store.conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s",
        (table,),
    ).fetchall()
    return {row[0] for row in rows}
