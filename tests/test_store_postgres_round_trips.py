"""What one command asks of PostgreSQL, statement by statement: a CLI verify opens its own
connection, so each round trip is paid on every command. Counted on the driver's cursors against a
real throwaway server (`tests/pg_cluster.py`)."""

from __future__ import annotations

import pytest
from store_backends import REQUIRE_POSTGRES
from test_store import MODEL
from test_store import unit as unit_of_seed

if not REQUIRE_POSTGRES:
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[dev]' or '.[postgres]')")
import psycopg  # noqa: E402

from facer_cli.errors import StoreError, UnknownUserError
from facer_cli.store import AttemptRecord
from facer_cli.store.postgres.migrations import STEP_NAMES
from facer_cli.store.postgres.repository import PostgresStore


def unit(seed: int):  # noqa: ANN201
    """A unit vector of seeds no other test module uses: the encryption tests look for theirs in the
    whole cluster's files, where this module's databases are too."""
    return unit_of_seed(7_000_000 + seed)


@pytest.fixture
def statements(monkeypatch):
    """The statements sent through psycopg's cursors, in order (their first words)."""
    sent: list[str] = []
    real = psycopg.Cursor.execute

    def execute(self, query, params=None, **options):  # noqa: ANN001, ANN202
        sent.append(" ".join(str(query).split()[:3]))
        return real(self, query, params, **options)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    return sent


def test_opening_a_store_is_one_statement_after_connecting(postgres_url, statements):
    PostgresStore(postgres_url).close()  # a database's first open: the schema made
    statements.clear()
    with PostgresStore(postgres_url) as store:
        assert store.schema_version == len(STEP_NAMES)
        assert store.conn.execute("SHOW lock_timeout").fetchone() == ("30s",)
    assert statements[0].startswith("SELECT set_config('lock_timeout',") and len(statements) == 2, statements
    with PostgresStore(postgres_url, access="read", busy_timeout_s=2) as reader:
        assert reader.conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert reader.conn.execute("SHOW lock_timeout").fetchone() == ("2s",)


def test_a_verify_is_eight_statements_from_connect_to_exit(postgres_url, statements):
    with PostgresStore(postgres_url) as store:
        store.import_vector("alice", unit(1), model=MODEL, source="a")
    statements.clear()
    with PostgresStore(postgres_url) as store:  # what `facer verify` asks, in its order
        store.templates("alice", with_vectors=False)
        store.templates_of_model("alice", MODEL, with_vectors=False)
        store.check_writable("record a verify attempt for 'alice'")
        with store.transaction("verify 'alice'"):
            (template,) = store.templates_of_model("alice", MODEL)
            attempt = store.record_attempt(
                AttemptRecord("alice", MODEL, "x", "match", 1, 1, 0.9, 0.5, 0.4, template.id)
            )
    assert [s.split()[0] for s in statements] == [
        "SELECT",
        "SELECT",
        "SELECT",
        "UPDATE",
        "BEGIN",
        "SELECT",
        "INSERT",
        "COMMIT",
    ]
    with PostgresStore(postgres_url, access="read") as store:
        (recorded,) = store.attempts("alice")
        assert (recorded.id, recorded.template_id, recorded.similarity, recorded.band) == (
            attempt,
            template.id,
            0.9,
            "match",
        )


def test_one_statement_reads_and_writes_keep_their_answers(postgres_url):
    with PostgresStore(postgres_url) as store:
        store.import_vector("alice", unit(1), model=MODEL, source="a")
        store.import_vector("bob", unit(2), model=MODEL, source="b")
        store.remove("bob")
        store.import_vector("bob", unit(3), model=MODEL, source="b")  # a user with a template, after a removal
        with pytest.raises(UnknownUserError, match="no user named 'carol'"):
            store.templates("carol", with_vectors=False)
        with pytest.raises(UnknownUserError, match="looks the same"):
            store.templates("ALICE", with_vectors=False)
        assert [t.user for t in store.templates("bob", with_vectors=False)] == ["bob"]
        assert store.record_attempt(AttemptRecord("carol", MODEL, "x", "no_probe", 1, 0)) is None
        store.conn.execute("INSERT INTO users (name, created, updated) VALUES ('dave', 'x', 'x')")
        assert store.templates("dave", with_vectors=False) == []  # a user without templates
    with PostgresStore(postgres_url, access="read") as reader:
        with pytest.raises(StoreError, match="read-only: cannot record"):
            reader.check_writable("record a verify attempt")
        with pytest.raises(StoreError, match="read-only: cannot record"):
            reader.record_attempt(AttemptRecord("alice", MODEL, "x", "no_probe", 1, 0))
