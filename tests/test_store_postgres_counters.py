"""PostgreSQL's gallery counters (`gallery_version`), kept per statement since schema step m006: the
same counts as the per-row trigger before it and as SQLite's triggers, a store of the step before
migrated with its counters (and an index built before the step catching up after it), and
concurrent enrollments and bulk inserts that never double or lose a count. A real throwaway
server (`tests/pg_cluster.py`)."""

from __future__ import annotations

import threading

import pytest
from store_backends import REQUIRE_POSTGRES
from test_store import MODEL
from test_store import unit as unit_of_seed

if not REQUIRE_POSTGRES:
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[dev]' or '.[postgres]')")
import psycopg  # noqa: E402

from facer_cli.gallery import GalleryIndex
from facer_cli.settings import Settings
from facer_cli.store import Store
from facer_cli.store.contract import open_store
from facer_cli.store.postgres import connection as pg_connection
from facer_cli.store.postgres.migrations import STEP_NAMES, STEPS
from facer_cli.store.postgres.repository import PostgresStore


def unit(seed: int):  # noqa: ANN201
    """A unit vector of seeds no other test module uses: the encryption tests look for theirs in the
    whole cluster's files, where this module's databases are too."""
    return unit_of_seed(7_000_000 + seed)


STEP = "m006_gallery_counters_per_statement"
OTHER = "bundled:fedcba9876543210"


def at_previous_step(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The schema of `url` as the facer before step m006 left it (its per-row trigger)."""
    with monkeypatch.context() as patched:
        patched.setattr(pg_connection, "STEPS", STEPS[: STEP_NAMES.index(STEP)])
        PostgresStore(url).close()


def counters(conn: object) -> list[tuple]:
    rows = conn.execute("SELECT model, inserts, deletes, high_water, reused FROM gallery_version ORDER BY model")  # type: ignore[attr-defined]
    return [tuple(row) for row in rows.fetchall()]


def template(template_id: int, model: str = MODEL, user: int = 1, seed: int = 0) -> tuple:
    return (template_id, user, unit(seed or template_id).tobytes(), 512, model, "test", "then")


# The same changes on each store: (SQL with %s, rows). Inserts name their ids (SQLite: as they come;
# PostgreSQL: OVERRIDING SYSTEM VALUE), several rows to a statement in id order as facer writes them.
INSERT = "INSERT INTO templates (id, user_id, vector, dimension, model, source, created){override} VALUES "
ROW = "(%s, %s, %s, %s, %s, %s, %s)"
CHANGES: list[tuple[str, list[tuple]]] = [
    (INSERT + ROW, [template(1)]),
    (INSERT + ROW, [template(2)]),
    (INSERT + ROW, [template(3, OTHER)]),
    (INSERT + ", ".join([ROW] * 4), [template(10), template(11), template(12), template(13, OTHER)]),
    (INSERT + ROW, [template(5)]),  # below the high water mark: reused
    (INSERT + ", ".join([ROW] * 2), [template(6), template(20)]),  # one reused, one new
    ("DELETE FROM templates WHERE id IN (1, 10, 13)", []),
    ("UPDATE templates SET vector = %s WHERE id = 2", [(unit(99).tobytes(),)]),
    ("UPDATE templates SET user_id = 2 WHERE model = %s", [(OTHER,)]),
    ("UPDATE templates SET model = %s WHERE id = 11", [(OTHER,)]),
    ("UPDATE templates SET source = 'renamed' WHERE id = 12", []),  # no column the gallery reads
    ("INSERT INTO templates (user_id, vector, dimension, model, created) SELECT user_id, vector, dimension,"
     " model, created FROM templates WHERE false", []),  # no row at all
    ("DELETE FROM templates WHERE model = %s", [(OTHER,)]),
]  # fmt: skip


def apply(conn: object, mark: str, override: str) -> None:
    for sql, rows in CHANGES:
        params = [value for row in rows for value in row]
        conn.execute(sql.format(override=override).replace("%s", mark), params)  # type: ignore[attr-defined]


def postgres_users(conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO users (id, name, created, updated) OVERRIDING SYSTEM VALUE VALUES (1, 'a', 'x', 'x')")
    conn.execute("INSERT INTO users (id, name, created, updated) OVERRIDING SYSTEM VALUE VALUES (2, 'b', 'x', 'x')")


def test_counts_per_statement_are_the_per_row_triggers_and_sqlites(postgres_server, monkeypatch, tmp_path):
    before, after = postgres_server.create_database("counters_m005"), postgres_server.create_database("counters_now")
    at_previous_step(before, monkeypatch)
    PostgresStore(after).close()
    found = {}
    for name, url in (("per row", before), ("per statement", after)):
        with psycopg.connect(url, autocommit=True) as conn:
            postgres_users(conn)
            apply(conn, "%s", " OVERRIDING SYSTEM VALUE")
            found[name] = counters(conn)
    path = tmp_path / "facer.db"
    Store(path).close()
    with Store(path) as store:
        conn = store.conn
        conn.execute("INSERT INTO users (id, name, created, updated) VALUES (1, 'a', 'x', 'x'), (2, 'b', 'x', 'x')")
        apply(conn, "?", "")
        conn.commit()
        found["SQLite"] = counters(conn)
    assert found["per statement"] == found["per row"] == found["SQLite"], found
    assert found["SQLite"] == [
        # inserts: 1 2 10 11 12 5 6 20, and 2 updated; deletes: 1 10, 2 updated, 11 moved away;
        # reused: 5, 6 and the update of 2
        (MODEL, 9, 4, 20, 3),
        # inserts: 3 13, 3 updated, 11 moved here; deletes: 13, 3 updated, then 3 and 11; reused: the
        # update of 3 and the move of 11
        (OTHER, 4, 4, 13, 2),
    ]


def test_an_id_changed_counts_as_a_delete_and_a_reused_insert_as_before(postgres_server, monkeypatch):
    before, after = postgres_server.create_database("ids_m005"), postgres_server.create_database("ids_now")
    at_previous_step(before, monkeypatch)
    PostgresStore(after).close()
    found = []
    for url in (before, after):
        with psycopg.connect(url, autocommit=True) as conn:
            postgres_users(conn)
            conn.execute(INSERT.format(override="") .replace(" (id,", " (") + "(%s, %s, %s, %s, %s, %s)",
                         template(1)[1:])  # fmt: skip
            conn.execute("UPDATE templates SET id = DEFAULT")
            assert conn.execute("SELECT id FROM templates").fetchall() == [(2,)]
            found.append(counters(conn))
    assert found[0] == found[1] == [(MODEL, 2, 1, 2, 1)]


def test_a_row_updated_to_what_it_held_counts_nothing(postgres_url):
    with PostgresStore(postgres_url) as store:
        store.import_vector("alice", unit(1), model=MODEL, source="a")
        before = counters(store.conn)
        store.conn.execute("UPDATE templates SET vector = vector, model = model")
        assert counters(store.conn) == before


def test_a_store_of_the_step_before_migrates_with_its_counters_and_its_index_catches_up(postgres_url, monkeypatch):
    at_previous_step(postgres_url, monkeypatch)
    with monkeypatch.context() as patched:
        patched.setattr(pg_connection, "STEPS", STEPS[: STEP_NAMES.index(STEP)])
        with PostgresStore(postgres_url) as old:
            assert old.schema_version == STEP_NAMES.index(STEP)
            for i, name in enumerate(("alice", "bob", "carol", "dave")):
                old.import_vector(name, unit(i + 1), model=MODEL, source="then")
            old.remove("bob")
            old.import_vector("carol", unit(30), model=MODEL, source="then", mode="replace")
            for i in range(20):  # a gallery where one removal is within what an index catches up on
                old.import_vector(f"other{i}", unit(100 + i), model=MODEL, source="then")
            then = counters(old.conn)
            index = GalleryIndex.open(old.gallery_source(), MODEL)
            assert index.search(unit(30), top_k=1)[0].name == "carol"  # built: the first search
    assert then == [(MODEL, 25, 2, 25, 0)]
    rebuilds = index.rebuilds
    try:
        with PostgresStore(postgres_url) as store:  # the step runs here
            rows = store.conn.execute("SELECT version, name FROM facer_schema ORDER BY version").fetchall()
            assert rows[-1] == (len(STEP_NAMES), STEP_NAMES[-1]) and STEP in STEP_NAMES
            assert counters(store.conn) == then
            triggers = store.conn.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'templates'::regclass AND NOT tgisinternal ORDER BY 1"
            ).fetchall()
            assert [t[0] for t in triggers] == [
                "gallery_version_delete",
                "gallery_version_insert",
                "gallery_version_update",
            ]
            erin = store.import_vector("erin", unit(5), model=MODEL, source="now")
            store.remove("dave")
            assert counters(store.conn) == [(MODEL, 26, 3, erin.id, 0)]
        assert index.search(unit(5), top_k=1)[0].name == "erin"
        assert index.search(unit(4), top_k=1)[0].name != "dave"
        assert index.rebuilds == rebuilds and index.catch_ups >= 1  # caught up, not rebuilt
    finally:
        index.close()


def test_concurrent_enrollments_and_bulk_inserts_never_double_or_lose_a_count(postgres_url):
    PostgresStore(postgres_url).close()
    with open_store(Settings(db=postgres_url)) as store, store.exclusive_transaction("make the users") as _:
        user_ids = store.insert_rows("users", [{"name": f"bulk{i}", "created": "x", "updated": "x"} for i in range(4)])
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def bulk(worker: int) -> None:
        try:
            with PostgresStore(postgres_url) as store:
                barrier.wait()
                for batch in range(5):
                    rows = [
                        {"user_id": user_ids[worker], "vector": unit(1000 * worker + 50 * batch + i).tobytes(),
                         "dimension": 512, "model": MODEL, "frames_seen": None, "frames_used": None,
                         "outliers": None, "mean_quality": None, "source": "bulk", "created": "x",
                         "model_unverified": False}
                        for i in range(50)
                    ]  # fmt: skip
                    store.insert_rows("templates", rows)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def enroll(worker: int) -> None:
        try:
            with PostgresStore(postgres_url) as store:
                barrier.wait()
                for i in range(15):
                    store.import_vector(f"p{worker}-{i}", unit(10_000 * (worker + 1) + i), model=MODEL, source="x")
                    if i % 3 == 0:
                        store.remove(f"p{worker}-{i}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    with PostgresStore(postgres_url) as watcher, GalleryIndex.open(watcher.gallery_source(), MODEL) as index:
        threads = [threading.Thread(target=bulk, args=(w,)) for w in range(4)]
        threads += [threading.Thread(target=enroll, args=(w,)) for w in range(2)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            index.refresh()  # catching up while the others write
        for thread in threads:
            thread.join()
        assert errors == []
        ((model, inserts, deletes, high_water, _reused),) = counters(watcher.conn)
        present, top = watcher.conn.execute("SELECT count(*), max(id) FROM templates").fetchone()
        assert (model, inserts, deletes) == (MODEL, 4 * 5 * 50 + 2 * 15, 2 * 5) and inserts - deletes == present
        assert high_water == top
        index.refresh()
        assert len(index) == present
        for worker in range(2):
            for i in range(15):
                best = index.search(unit(10_000 * (worker + 1) + i), top_k=1)[0]
                assert (best.name == f"p{worker}-{i}") is (i % 3 != 0)
