"""What only PostgreSQL has to prove: one name enrolled once under concurrent sessions, the schema's
version, passwords never shown, a server that is down or refuses, erasure that says what it did,
and the gallery reading the store through its own connection. A real throwaway server
(`tests/pg_cluster.py`, through the `postgres_server` fixture of tests/store_backends.py); the
behaviour both backends share is tested in test_store.py on each."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from helpers import REPO, run, run_json
from store_backends import REQUIRE_POSTGRES, new_cluster
from test_store import MODEL, THRESHOLDS, unit

if not REQUIRE_POSTGRES:
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[dev]' or '.[postgres]')")
import psycopg  # noqa: E402

from facer_cli.errors import StoreError, UserExistsError
from facer_cli.gallery import GalleryIndex
from facer_cli.service.verification import verify_probe
from facer_cli.settings import Settings
from facer_cli.store import redact_url
from facer_cli.store.contract import open_store
from facer_cli.store.postgres.migrations import STEP_NAMES
from facer_cli.store.postgres.repository import PostgresStore

PASSWORD = "Sup3r-s3cret_pw"


@pytest.fixture
def pg(postgres_url):
    with PostgresStore(postgres_url) as store:
        yield store


def with_password(url: str, password: str = PASSWORD) -> str:
    """`url` with `password` after its user name."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text, text
    return text


# -- the URL ----------------------------------------------------------------------------
@pytest.mark.parametrize("url, shown", [
    ("postgresql://door:pw@db.example:5432/facer", "postgresql://door@db.example:5432/facer"),
    ("postgres://door:p%40ss@db/facer?sslmode=require", "postgres://door@db/facer?sslmode=require"),
    ("postgresql://door:a@b/c@db/facer", "postgresql://door@db/facer"),
    ("postgresql://db/facer?password=pw&connect_timeout=3", "postgresql://db/facer?connect_timeout=3"),
    ("postgresql://door@db/facer", "postgresql://door@db/facer"),
    ("/var/lib/facer/facer.db", "/var/lib/facer/facer.db"),
])  # fmt: skip
def test_redact_url_removes_the_password(url, shown):
    assert redact_url(url) == shown


def test_a_postgres_url_opens_postgres_and_anything_else_sqlite(postgres_url, tmp_path):
    with open_store(Settings(db=postgres_url)) as store:
        assert store.backend == "postgresql" and store.location == postgres_url
    with open_store(Settings(db=postgres_url.replace("postgresql://", "postgres://"))) as store:
        assert store.backend == "postgresql"
    with open_store(Settings(db=str(tmp_path / "facer.db"))) as store:
        assert store.backend == "sqlite"


def test_sqlite_commands_never_import_psycopg(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from facer_cli.service import Facer
        from facer_cli.settings import Settings
        Facer(Settings(db={str(tmp_path / 'facer.db')!r})).open_store().close()
        print('psycopg' in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


# -- the schema -----------------------------------------------------------------------------
def test_the_schema_is_numbered_steps_in_a_version_table(pg, postgres_url):
    rows = pg.conn.execute("SELECT version, name FROM facer_schema ORDER BY version").fetchall()
    assert rows == list(enumerate(STEP_NAMES, 1))
    assert rows[:3] == [
        (1, "m001_users_templates_samples_audit_gallery"),
        (2, "m002_gallery_change_notify"),
        (3, "m003_user_name_keys"),
    ]
    with PostgresStore(postgres_url) as again:  # reopening applies nothing twice
        assert again.schema_version == len(STEP_NAMES)
    assert pg.describe()["schema_version"] == len(STEP_NAMES) and pg.describe()["server_version"]


def test_a_newer_schema_is_refused_in_one_line(pg, postgres_url):
    pg.conn.execute("INSERT INTO facer_schema (version, name, applied) VALUES (99, 'm099_future', 'x')")
    for access in ("read", "write", "create"):
        with pytest.raises(StoreError, match="newer facer.*schema version 99.*upgrade facer") as caught:
            PostgresStore(postgres_url, access=access)
        one_line(caught.value)


def test_simultaneous_first_opens_all_succeed(postgres_url):
    errors: list[BaseException] = []

    def open_once() -> None:
        try:
            PostgresStore(postgres_url).close()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=open_once) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with PostgresStore(postgres_url, access="read") as store:
        assert store.schema_version == len(STEP_NAMES) and store.count() == 0


def test_read_and_write_access_need_a_store_and_create_nothing(postgres_url):
    for access in ("read", "write"):
        with pytest.raises(StoreError, match="no facer store in database postgresql://") as caught:
            PostgresStore(postgres_url, access=access)
        one_line(caught.value)
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT to_regclass('facer_schema')").fetchone() == (None,)


def test_another_applications_tables_are_not_taken_over(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE users (id serial PRIMARY KEY, email text)")
    with pytest.raises(StoreError, match="not a facer store"):
        PostgresStore(postgres_url)


def test_a_read_only_store_reads_and_refuses_writes_clearly(pg, postgres_url):
    pg.import_vector("alice", unit(1), model=MODEL, source="a")
    with PostgresStore(postgres_url, access="read") as reader:
        assert [u.name for u in reader.list()] == ["alice"]
        with pytest.raises(StoreError, match="read-only"):
            reader.check_writable("enroll 'bob'")
        with pytest.raises(StoreError, match="read-only"):
            reader.import_vector("bob", unit(2), model=MODEL, source="b")


def test_ids_are_identity_columns_never_reused(pg):
    first = pg.import_vector("alice", unit(1), model=MODEL, source="a")
    pg.remove("alice")
    again = pg.import_vector("alice", unit(2), model=MODEL, source="b")
    replaced = pg.import_vector("alice", unit(3), model=MODEL, source="c", mode="replace")
    assert first.id < again.id < replaced.id
    with pytest.raises(psycopg.errors.GeneratedAlways):
        pg.conn.execute("INSERT INTO users (id, name, created, updated) VALUES (1, 'x', 'x', 'x')")


# -- concurrency ------------------------------------------------------------------------------
def _enroll_in_a_process(url: str, seed: int, start: float) -> str:
    time.sleep(max(0.0, start - time.time()))
    try:
        with PostgresStore(url) as store:
            store.import_vector("same name", unit(seed), model=MODEL, source=f"process {seed}")
        return "stored"
    except UserExistsError as exc:
        return f"exists: {exc}"
    except BaseException as exc:  # noqa: BLE001
        return f"other: {type(exc).__name__}: {exc}"


def test_concurrent_enrollments_of_one_name_from_threads_store_exactly_one(postgres_url):
    stores = [PostgresStore(postgres_url) for _ in range(12)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[str] = [""] * len(stores)

    def enroll(index: int) -> None:
        barrier.wait()
        try:
            stores[index].import_vector(" Zoë ", unit(index), model=MODEL, source=f"thread {index}")
            outcomes[index] = "stored"
        except UserExistsError as exc:
            outcomes[index] = f"exists: {exc}"
        except BaseException as exc:  # noqa: BLE001
            outcomes[index] = f"other: {type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=enroll, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert outcomes.count("stored") == 1, outcomes
    assert all(o.startswith("exists: 'Zoë' is already enrolled") for o in outcomes if o != "stored"), outcomes
    with PostgresStore(postgres_url, access="read") as store:
        assert store.count() == 1 and len(store.templates("Zoë")) == 1


@pytest.mark.slow
def test_concurrent_enrollments_of_one_name_from_processes_store_exactly_one(postgres_url):
    PostgresStore(postgres_url).close()  # the schema first: the race is the enrollment's
    start = time.time() + 1.5
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        outcomes = pool.starmap(_enroll_in_a_process, [(postgres_url, i, start) for i in range(8)])
    assert outcomes.count("stored") == 1, outcomes
    assert all(o.startswith("exists:") for o in outcomes if o != "stored"), outcomes
    with PostgresStore(postgres_url, access="read") as store:
        assert store.count() == 1 and len(store.templates("same name")) == 1


def test_concurrent_renames_to_one_name_leave_one(pg, postgres_url):
    for i in range(6):
        pg.import_vector(f"user{i}", unit(i), model=MODEL, source="x")
    stores = [PostgresStore(postgres_url) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[str] = [""] * len(stores)

    def rename(index: int) -> None:
        barrier.wait()
        try:
            stores[index].rename(f"user{index}", "taken")
            outcomes[index] = "renamed"
        except UserExistsError:
            outcomes[index] = "exists"

    threads = [threading.Thread(target=rename, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert sorted(outcomes) == ["exists"] * 5 + ["renamed"], outcomes
    assert sorted(u.name for u in pg.list()).count("taken") == 1 and pg.count() == 6


def test_a_serialization_failure_is_retried_then_a_busy_error(pg, monkeypatch):
    from facer_cli.store.postgres import connection

    calls = []

    def conflict(conn):
        calls.append(1)
        raise psycopg.errors.SerializationFailure("could not serialize access")

    monkeypatch.setattr(connection, "BACKOFF_S", (0.001, 0.002))
    with pytest.raises(StoreError, match="busy: 5 tries to enroll") as caught:
        pg.write("enroll 'x'", conflict)
    one_line(caught.value)
    assert len(calls) == connection.TRIES == 5
    flaky = iter([True, True, False])

    def sometimes(conn):
        if next(flaky):
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        return "done"

    assert pg.write("enroll 'x'", sometimes) == "done"


# -- passwords, servers down, wrong names ---------------------------------------------------------
@pytest.fixture
def door_role(postgres_server, postgres_url):
    """A role `door` that logs in with PASSWORD (scram), on the session's server."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE door LOGIN PASSWORD '{PASSWORD}'")
        conn.execute(f'GRANT ALL ON DATABASE "{postgres_url.rsplit("/", 1)[1]}" TO door')
        conn.execute("GRANT ALL ON SCHEMA public TO door")
    hba = postgres_server.data / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text("host all door 127.0.0.1/32 scram-sha-256\n" + original)
    postgres_server._run("pg_ctl", "-D", str(postgres_server.data), "reload")
    time.sleep(0.3)
    try:
        yield postgres_url.replace("facer@", "door@", 1)
    finally:
        hba.write_text(original)
        postgres_server._run("pg_ctl", "-D", str(postgres_server.data), "reload")
        time.sleep(0.3)
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("DROP OWNED BY door")
            conn.execute("DROP ROLE door")


@pytest.mark.slow
def test_a_rejected_password_is_one_line_that_never_shows_it(door_role, monkeypatch):
    wrong = with_password(door_role, "Wr0ng-" + PASSWORD)
    with pytest.raises(StoreError, match="cannot log in to database postgresql://door@") as caught:
        PostgresStore(wrong)
    text = one_line(caught.value)
    assert PASSWORD not in text and "PGPASSWORD" in text and "pgpass" in text
    for args in (("users", "list"), ("users", "check"), ("config", "show"), ("users", "list", "--help-settings")):
        result = run(*args, "--db", wrong)
        assert PASSWORD not in result.output and "Traceback" not in result.output, result.output
    monkeypatch.setenv("FACER_DB", wrong)
    for args in (("users", "list", "--help-settings"), ("config", "show", "--verbose"), ("users", "list")):
        result = run(*args)
        assert PASSWORD not in result.output and "Traceback" not in result.output, result.output
    monkeypatch.delenv("FACER_DB")
    assert run("users", "list", "--db", wrong).exit_code == 6
    result, data = run_json("config", "show", "--db", wrong)
    assert data["settings"]["db"]["value"] == redact_url(wrong) and data["db_path"] == redact_url(wrong)
    monkeypatch.setenv("PGPASSWORD", "not it either")
    with pytest.raises(StoreError) as caught:
        PostgresStore(door_role)
    assert "not it either" not in str(caught.value)


@pytest.mark.slow
def test_the_right_password_from_the_url_or_pgpassword_works_and_is_never_shown(door_role, monkeypatch):
    right = with_password(door_role)
    result = run("users", "import", "alice", "--help")  # (the CLI is importable)
    assert result.exit_code == 0
    with PostgresStore(right) as store:
        store.import_vector("alice", unit(1), model=MODEL, source="a")
        assert PASSWORD not in repr(store) and PASSWORD not in store.location
        assert PASSWORD not in str(store.describe())
    listed = run("users", "list", "--db", right)
    assert listed.exit_code == 0 and "alice" in listed.output and PASSWORD not in listed.output, listed.output
    assert redact_url(right) in listed.output.replace("\n", "")
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    result, data = run_json("users", "list", "--db", door_role)
    assert result.exit_code == 0 and [u["name"] for u in data["users"]] == ["alice"]


def test_a_wrong_port_is_one_line_without_the_password(postgres_url):
    from pg_cluster import free_port

    url = with_password(postgres_url).replace(postgres_url.split(":")[2].split("/")[0], str(free_port()))
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot reach the PostgreSQL server.*check that it is running") as caught:
        PostgresStore(url)
    assert time.monotonic() - started < 5
    assert PASSWORD not in one_line(caught.value)
    result = run("users", "list", "--db", url)
    assert result.exit_code == 6 and PASSWORD not in result.output and "Traceback" not in result.output


def test_a_missing_database_says_to_create_it(postgres_url):
    url = with_password(postgres_url.rsplit("/", 1)[0] + "/no_such_db")
    with pytest.raises(StoreError, match="does not exist; create it") as caught:
        PostgresStore(url)
    assert PASSWORD not in one_line(caught.value)


@pytest.mark.slow
def test_a_server_stopped_is_one_store_error_line_not_a_traceback_or_a_hang():
    cluster = new_cluster()
    try:
        cluster.start()
        url = with_password(cluster.create_database("door") + "?connect_timeout=3")
        store = PostgresStore(url)
        store.import_vector("alice", unit(1), model=MODEL, source="a")
        cluster.stop("immediate")
        started = time.monotonic()
        with pytest.raises(StoreError, match="PostgreSQL server of database .*check that it is running") as caught:
            store.list()
        assert PASSWORD not in one_line(caught.value)
        store.close()
        with pytest.raises(StoreError, match="cannot reach the PostgreSQL server") as caught:
            PostgresStore(url)
        assert PASSWORD not in one_line(caught.value)
        result = run("users", "list", "--db", url)
        assert result.exit_code == 6 and "Traceback" not in result.output and PASSWORD not in result.output
        assert time.monotonic() - started < 10
    finally:
        cluster.destroy()


@pytest.mark.slow
def test_the_gallery_of_a_long_running_process_outlives_a_server_restart():
    cluster = new_cluster()
    try:
        cluster.start()
        url = cluster.create_database("door")
        with PostgresStore(url) as store:
            store.import_vector("alice", unit(1), model=MODEL, source="a")
            index = GalleryIndex.open(store.gallery_source(), MODEL)
        assert index.search(unit(1), top_k=1)[0].name == "alice"
        cluster.restart()
        with PostgresStore(url) as store:
            store.import_vector("bob", unit(2), model=MODEL, source="b")
        assert index.search(unit(2), top_k=1)[0].name == "bob"  # a new connection, caught up
        cluster.stop("immediate")
        with pytest.raises(StoreError, match="PostgreSQL server of database") as caught:
            index.search(unit(2), top_k=1)
        one_line(caught.value)
        index.close()
    finally:
        cluster.destroy()


# -- erasure ----------------------------------------------------------------------------------
def test_remove_vacuums_and_says_so_when_another_transaction_still_sees_the_rows(pg, postgres_url):
    pg.import_vector("alice", unit(1), model=MODEL, source="a")
    pg.import_vector("bob", unit(2), model=MODEL, source="b")
    with psycopg.connect(postgres_url) as reader:
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        assert reader.execute("SELECT count(*) FROM templates").fetchone() == (2,)  # an old snapshot
        removal = pg.remove("alice")
        assert removal.erasure_pending and "another transaction still sees the old rows" in removal.erasure_note
        assert removal.to_dict()["erasure_note"] == removal.erasure_note
        reader.execute("ROLLBACK")
    removal = pg.remove("bob")
    assert not removal.erasure_pending and removal.erasure_note is None
    assert pg.vacuum() is None


def test_a_role_that_may_not_vacuum_gets_erasure_pending_with_the_reason(pg, postgres_url, postgres_server):
    pg.import_vector("alice", unit(1), model=MODEL, source="a")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE ROLE clerk LOGIN")
        conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO clerk")
    try:
        with PostgresStore(postgres_url.replace("facer@", "clerk@", 1)) as clerk:
            removal = clerk.remove("alice")
        assert removal.erasure_pending and "may not VACUUM" in removal.erasure_note, removal
        from facer_cli.cli.output.users import removal_view

        assert "erasure pending: the database user may not VACUUM" in removal_view(removal).plain
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("DROP OWNED BY clerk")
            conn.execute("DROP ROLE clerk")


# -- the gallery ------------------------------------------------------------------------------
def test_the_gallery_reads_postgres_and_keeps_no_sidecar_file(pg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    people = {f"person{i}": unit(200 + i) for i in range(20)}
    for name, vector in people.items():
        pg.import_vector(name, vector, model=MODEL, source="x")
    with GalleryIndex.open(pg.gallery_source(), MODEL) as index:
        assert index.sidecar is None and not index.persistent and len(index) == 20
        (best, *_) = index.search(people["person7"], top_k=3)
        assert best.name == "person7" and best.similarity == pytest.approx(1.0, abs=1e-5)
        pg.remove("person7")
        pg.import_vector("newcomer", unit(999), model=MODEL, source="y")
        pg.rename("person3", "Person Three")
        found = index.search(people["person7"], top_k=20)
        assert "person7" not in {c.name for c in found} and len(index) == 20
        assert index.search(unit(999), top_k=1)[0].name == "newcomer"
        assert index.search(people["person3"], top_k=1)[0].name == "Person Three"
        assert index.catch_ups >= 1
    assert list(tmp_path.iterdir()) == []


def test_verify_and_its_audit_log_through_the_service_on_postgres(pg):
    pg.import_vector("alice", unit(1), model=MODEL, source="a")
    result = verify_probe(pg, "alice", unit(1), model=MODEL, thresholds=THRESHOLDS, source="probe")
    assert result.band.value == "match" and result.attempt_id
    assert pg.attempts("alice")[0].id == result.attempt_id
    assert pg.show("alice").user.last_verified == pg.attempts("alice")[0].created


def test_doctor_names_the_backend_server_and_schema_version(postgres_url):
    from facer_cli.service.doctor import gallery_info

    PostgresStore(postgres_url).close()
    info = gallery_info(Settings(db=with_password(postgres_url)), MODEL)
    assert info is not None
    assert info["backend"] == "postgresql" and info["schema_version"] == len(STEP_NAMES) and info["server_version"]
    assert info["db"] == postgres_url and PASSWORD not in str(info)


def test_users_commands_on_postgres(postgres_url, tmp_path):
    np.save(tmp_path / "v.npy", unit(5))
    from facer_cli import Facer

    model = Facer().current_model()[0]
    imported = run("users", "import", "alice", tmp_path / "v.npy", "--fingerprint", model, "--db", postgres_url)
    assert imported.exit_code == 0, imported.output
    result, data = run_json("users", "show", "alice", "--db", postgres_url)
    assert result.exit_code == 0 and data["templates"] == 1
    assert run("users", "rename", "alice", "Alice", "--db", postgres_url).exit_code == 0
    result, data = run_json("users", "check", "--db", postgres_url)
    assert result.exit_code == 0 and data["check"] == "ok" and data["users"] == 1 and data["db"] == postgres_url
    result, data = run_json("users", "remove", "Alice", "--yes", "--db", postgres_url)
    assert result.exit_code == 0 and data == {"user": "Alice", "templates": 1, "samples": 0, "erasure_pending": False}
    result, data = run_json("users", "list", "--db", postgres_url)
    assert data["count"] == 0


# -- the service and the HTTP service, with the real models -------------------------------------
def test_the_http_service_enrolls_verifies_identifies_and_removes_on_postgres(client_for, postgres_url, faces):
    from helpers import people

    photos = people(faces)
    client = client_for(db=postgres_url)

    def files(paths):
        return [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]

    enrolled = client.post("/users/obama/enroll", files=files(photos["obama"][:3]))
    assert enrolled.status_code == 201, enrolled.text
    assert client.post("/users/kit_harington/enroll", files=files(photos["kit_harington"])).status_code == 201
    again = client.post("/users/obama/enroll", files=files(photos["obama"][:3]))
    assert again.status_code == 409 and again.json()["error"]["type"] == "UserExistsError"
    verified = client.post("/users/obama/verify", files=files(photos["obama"][3:4])).json()
    assert verified["band"] == "match", verified
    found = client.post("/identify", files=files(photos["obama"][1:2])).json()
    assert found["decision"] == "identified" and found["user"] == "obama", found
    assert [u["name"] for u in client.get("/users").json()["users"]] == ["kit_harington", "obama"]
    removed = client.delete("/users/obama").json()
    assert removed == {"user": "obama", "templates": 1, "samples": 3, "erasure_pending": False}
    after = client.post("/identify", files=files(photos["obama"][1:2])).json()
    assert after["decision"] != "identified" or after["user"] != "obama", after
    with PostgresStore(postgres_url, access="read") as store:
        assert [u.name for u in store.list()] == ["kit_harington"]
        assert [r["decision"] for r in store.identifications()][-1] == "identified"
