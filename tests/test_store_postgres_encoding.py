"""A PostgreSQL database not in UTF8 is refused in one line when opened, not with a 500 later."""

from __future__ import annotations

import psycopg
import pytest

from facer_cli.errors import StoreError
from facer_cli.settings import Settings
from facer_cli.store import Store, open_store


def test_a_sql_ascii_database_is_refused_when_opened(postgres_server):
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE ascii_store ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    with pytest.raises(StoreError, match="SQL_ASCII encoding; facer needs UTF8"):
        open_store(Settings(db=postgres_server.url("ascii_store")))


def test_a_url_given_to_the_sqlite_store_is_refused_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match="is a PostgreSQL URL, not an SQLite file"):
        Store("postgresql://door:s3cret@127.0.0.1:1/facer")
    assert list(tmp_path.iterdir()) == []
