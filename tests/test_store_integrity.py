"""Issue 9: the store as a careful administrator and an unlucky kiosk use it — simultaneous first
opens, other applications' files, damaged pages, fingerprints, removal with a reader, read-only
files, folders and mounts, mistyped paths, files facer writes, interrupts, prompts.

Real processes wherever the case is about processes. Tests that need to mount (a read-only bind
mount, a small tmpfs) skip with the reason where mounting is not allowed. The fingerprint tests run
on every store backend (`backend_db`: SQLite and PostgreSQL, tests/store_backends.py); the rest are
about the SQLite file itself (its bytes, WAL, pages, permissions, mounts) and stay SQLite's.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import re
import shlex
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, photo, run, run_json, run_without_privileges
from test_store import MODEL, THRESHOLDS, frame_with, near, unit

from facer_cli.errors import StoreError
from facer_cli.service.verification import verify_probe
from facer_cli.store import Store
from facer_cli.store.connection import APPLICATION_ID
from facer_cli.templates.aggregate import Template

FACER = [sys.executable, "-m", "facer_cli"]


def facer(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    """`facer ARGS…` as a real process."""
    return subprocess.run([*FACER, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def current_model() -> str:
    from facer_cli import Facer

    return Facer().current_model()[0]


def files_in(folder: Path) -> dict[str, str]:
    """Every file of a folder with its SHA-256: what changed, and what was created."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def raw_bytes(db: Path) -> bytes:
    """The database's main file and its WAL, as they are on disk."""
    return b"".join(Path(f"{db}{suffix}").read_bytes() for suffix in ("", "-wal") if Path(f"{db}{suffix}").exists())


@contextmanager
def mounted(*args: str):
    """`mount ARGS… TARGET` for the block; skipped with the reason where mounting is not allowed."""
    target = Path(args[-1])
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip() or 'not permitted'}): needs root or CAP_SYS_ADMIN")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


# -- 1. simultaneous first opens ------------------------------------------------------
def _first_open_worker(barrier, results, root: str, trials: int) -> None:
    from facer_cli.store import Store

    for trial in range(trials):
        barrier.wait()
        try:
            with Store(f"{root}/{trial}/facer.db", busy_timeout_s=30) as store:
                store.count()
            results.put((trial, ""))
        except Exception as exc:  # reported, not raised: every failure is counted
            results.put((trial, f"{type(exc).__name__}: {exc}"))


@pytest.mark.slow
def test_simultaneous_first_opens_of_a_new_store_all_succeed(tmp_path):
    """3 processes, released together by a barrier, open each of 200 new stores: none may fail."""
    processes, trials = 3, 200
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_first_open_worker, args=(barrier, results, str(tmp_path), trials))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        outcomes = [results.get(timeout=120) for _ in range(processes * trials)]
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    failures = [outcome for outcome in outcomes if outcome[1]]
    assert failures == [], f"{len(failures)} of {len(outcomes)} opens failed, e.g. {failures[:3]}"
    for trial in (0, trials - 1):
        conn = sqlite3.connect(tmp_path / str(trial) / "facer.db")
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()


def test_a_busy_message_reports_the_time_really_waited(tmp_path):
    path = tmp_path / "facer.db"
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # a new file another process is setting up
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(StoreError, match="is busy") as caught:
            Store(path, busy_timeout_s=0.5)
        elapsed = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    waited = float(re.search(r"waited ([\d.]+) s", str(caught.value)).group(1))
    assert 0.5 <= waited <= elapsed + 0.05 and elapsed < 5, str(caught.value)


# -- 2. another application's SQLite file -----------------------------------------------
def other_app_db(path: Path, application_id: int = 0) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    conn.execute("CREATE TABLE sessions (id INTEGER PRIMARY KEY, user_id INTEGER, token TEXT)")
    conn.execute("INSERT INTO users (email) VALUES ('a@example.com')")
    conn.execute(f"PRAGMA application_id = {application_id}")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("application_id", [0, 0x12345678])
def test_another_applications_file_is_refused_before_anything_is_written(tmp_path, application_id):
    path = other_app_db(tmp_path / "otherapp.db", application_id)
    vector = tmp_path / "v.npy"
    np.save(vector, unit(1))
    before = files_in(tmp_path)
    for args in (("users", "list"), ("users", "check"), ("users", "remove", "x", "--yes"),
                 ("users", "import", "x", vector, "--current-model")):
        result = run(*args, "--db", path)
        assert result.exit_code == 6, result.output
        assert "not a facer store" in result.output
    assert files_in(tmp_path) == before  # the file unchanged, no -wal or -shm created beside it
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_a_store_of_an_earlier_facer_is_accepted_and_marked_when_next_written(tmp_path):
    path = tmp_path / "facer.db"
    with Store(path) as store:
        store.import_vector("alice", unit(1), model=MODEL, source="a")
    conn = sqlite3.connect(path)  # what facer 0.1 left: no application id, two schema steps
    conn.execute("PRAGMA application_id = 0")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name LIKE 'm003%'")
    conn.execute("DROP TABLE pending_erasure")
    conn.execute("ALTER TABLE templates DROP COLUMN model_unverified")
    conn.commit()
    conn.close()
    with Store(path, access="read") as store:
        assert [u.name for u in store.list()] == ["alice"]
    with Store(path, access="write") as store:
        assert store.templates("alice")[0].model_verified
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert ("pending_erasure",) in conn.execute("SELECT name FROM sqlite_master").fetchall()
    conn.close()


# -- 3. a damaged store ---------------------------------------------------------------------
def wreck_the_first_page_of(path: Path, table: str) -> None:
    """Overwrite the table's first leaf page (its oldest rows): a user added last is on another page,
    so everything verify reads for them stays intact."""
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    (victim,) = conn.execute(
        "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY path LIMIT 1", (table,)
    ).fetchone()
    conn.close()
    data = bytearray(path.read_bytes())
    data[(victim - 1) * page_size : victim * page_size] = random.Random(victim).randbytes(page_size)
    path.write_bytes(bytes(data))


def attempts_in(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT count(*) FROM attempts").fetchone()[0]
    finally:
        conn.close()


def test_verify_writes_nothing_to_a_store_whose_tables_are_damaged(tmp_path):
    path = tmp_path / "facer.db"
    with Store(path) as store:
        for i in range(300):
            store.import_vector(f"user{i}", unit(i), model=MODEL, source="x")
        store.import_vector("zed", unit(7), model=MODEL, source="x")
    wreck_the_first_page_of(path, "users")
    with Store(path, access="write") as store:
        assert store.templates("zed")[0].id  # the pages verify reads are intact...
        with pytest.raises(StoreError, match="corrupt.*nothing was written"):
            verify_probe(store, "zed", unit(7), model=MODEL, thresholds=THRESHOLDS, source="probe")
        with pytest.raises(StoreError, match="corrupt"):
            store.rename("zed", "someone")
    assert attempts_in(path) == 0
    assert run("users", "check", "--db", path).exit_code == 6
    assert run("users", "list", "--db", path).exit_code == 6


def test_removal_checks_the_templates_table_too(tmp_path):
    path = tmp_path / "facer.db"
    with Store(path) as store:
        for i in range(300):
            store.import_vector(f"user{i}", unit(i), model=MODEL, source="x")
        store.import_vector("zed", unit(7), model=MODEL, source="x")
    wreck_the_first_page_of(path, "templates")
    with Store(path, access="write") as store, pytest.raises(StoreError, match="corrupt.*nothing was written"):
        store.remove("zed")
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM users WHERE name = 'zed'").fetchone() == (1,)
    conn.close()


def test_facer_verify_on_a_damaged_store_says_corrupt_and_records_nothing(tmp_path, faces):
    path = tmp_path / "facer.db"
    model = current_model()
    with Store(path) as store:
        for i in range(300):
            store.import_vector(f"user{i}", unit(i), model=model, source="x")
    enrolled = run("enroll", "obama", *(photo(faces, f"obama_{i}") for i in (1, 2, 3)), "--db", path)
    assert enrolled.exit_code == 0, enrolled.output
    wreck_the_first_page_of(path, "users")  # obama, enrolled last, is on another page
    result = run("verify", "obama", photo(faces, "obama_4"), "--db", path)
    assert result.exit_code == 6 and "corrupt" in result.output, result.output
    assert "MATCH" not in result.output and attempts_in(path) == 0


# -- 4. fingerprints and dimensions ----------------------------------------------------------
def store_made(db: str) -> bool:
    """Whether a store exists at `db` (an SQLite file, or facer's schema in a PostgreSQL database)."""
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db) as conn:
            return conn.execute("SELECT to_regclass('facer_schema')").fetchone() != (None,)
    return Path(db).exists()


def test_a_wrong_size_vector_under_the_current_fingerprint_is_refused(tmp_path, backend_db):
    db, model = backend_db, current_model()
    np.save(tmp_path / "dim128.npy", unit(1, dim=128))
    np.save(tmp_path / "dim512.npy", unit(2))
    result = run("users", "import", "a", tmp_path / "dim128.npy", "--fingerprint", model, "--db", db)
    assert result.exit_code == 9 and "makes 512-d templates" in result.output, result.output
    result = run("users", "import", "a", tmp_path / "dim128.npy", "--current-model", "--db", db)
    assert result.exit_code == 9
    # nothing was stored under the current model's name: its 512-d templates are still welcome
    result = run("users", "import", "b", tmp_path / "dim512.npy", "--fingerprint", model, "--db", db)
    assert result.exit_code == 0, result.output
    assert [u["name"] for u in run_json("users", "list", "--db", db)[1]["users"]] == ["b"]


@pytest.mark.slow
def test_fingerprints_facer_cannot_check_need_trust_and_are_flagged(tmp_path, wide_console, backend_db):
    db, model = backend_db, current_model()
    np.save(tmp_path / "v.npy", unit(1))
    other_version = model.split(":")[0] + ":ffffffffffffffff"
    for fingerprint, says in ((other_version, "another version of model pack"), ("my own model", "cannot check")):
        result = run("users", "import", "x", tmp_path / "v.npy", "--fingerprint", fingerprint, "--db", db)
        assert result.exit_code == 2 and says in result.output and "--trust-fingerprint" in result.output
    assert not store_made(db)  # refused before the store was created
    result = run("users", "import", "x", tmp_path / "v.npy", "--fingerprint", other_version, "--trust-fingerprint",
                 "--db", db)
    assert result.exit_code == 0, result.output
    assert run("users", "import", "y", tmp_path / "v.npy", "--current-model", "--db", db).exit_code == 0
    users = {u["name"]: u for u in run_json("users", "list", "--db", db)[1]["users"]}
    assert users["x"]["unverified_models"] == [other_version] and users["y"]["unverified_models"] == []
    assert f"{other_version} (unverified)" in run("users", "list", "--db", db).stdout
    assert run_json("users", "show", "x", "--db", db)[1]["template_list"][0]["model_verified"] is False


@pytest.mark.parametrize("extra", [(), ("--current-model",)])
def test_a_blank_fingerprint_is_a_usage_error(tmp_path, extra, backend_db):
    np.save(tmp_path / "v.npy", unit(1))
    result = run("users", "import", "x", tmp_path / "v.npy", "--fingerprint", " ", *extra, "--db", backend_db)
    assert result.exit_code == 2, result.output
    assert not store_made(backend_db)


# -- 5. removal ---------------------------------------------------------------------------
def alice_store(path: Path) -> list[bytes]:
    """alice (a template from two frames, and an imported one) and bob; alice's vectors' bytes."""
    secret = unit(42)
    frames = [frame_with(secret, 0.9), frame_with(near(secret, 0.95), 0.8)]
    template = Template(vector=secret, frames_seen=2, accepted=[0, 1], used=[0, 1], mean_quality=0.85)
    with Store(path) as store:
        store.add_template("alice", template, frames, model=MODEL, source="x")
        store.import_vector("alice", unit(43), model=MODEL, source="y", mode="add")
        for i in range(40):
            store.import_vector(f"user{i}", unit(100 + i), model=MODEL, source="z")
        vectors = [t.vector for t in store.templates("alice")]
        vectors += [s["embedding"] for t in store.templates("alice") for s in store.samples(t.id) if s["embedding"] is not None]
    assert len(vectors) == 4
    return [v.astype("<f4").tobytes()[:64] for v in vectors]


def test_removal_leaves_no_byte_of_their_embeddings_in_the_files(tmp_path):
    path = tmp_path / "facer.db"
    secrets = alice_store(path)
    with Store(path, access="write") as store, Store(path, access="read") as idle_reader:
        assert idle_reader.count() == 41  # another connection, open but not inside a read
        assert any(secret in raw_bytes(path) for secret in secrets)
        removal = store.remove("alice")
        assert not removal.erasure_pending
        data = raw_bytes(path)  # while both are still open: the main file and the WAL
        assert not any(secret in data for secret in secrets)
        assert unit(100).astype("<f4").tobytes()[:64] in data  # the others are still there


def test_replacing_templates_leaves_no_byte_of_the_old_ones_in_the_files(tmp_path):
    path = tmp_path / "facer.db"
    secrets = alice_store(path)
    with Store(path, access="write") as store, Store(path, access="read") as idle_reader:
        assert idle_reader.count() == 41
        assert any(secret in raw_bytes(path) for secret in secrets)
        store.import_vector("alice", unit(44), model=MODEL, source="new photos", mode="replace")
        data = raw_bytes(path)  # while both are still open: the main file and the WAL
        assert not any(secret in data for secret in secrets)
        # The new template is kept: the bytes the store returns for it (it renormalises the vector,
        # whose last bits depend on the CPU and numpy build, so not unit(44)'s own bytes).
        (kept,) = store.templates("alice")
        assert np.allclose(kept.vector, unit(44), atol=1e-6)
        assert kept.vector.astype("<f4").tobytes()[:64] in data
        assert not store.erasure_pending()


READER = textwrap.dedent("""
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM templates").fetchall()  # a snapshot held, as a long report would
    print("reading", flush=True)
    sys.stdin.readline()
    conn.execute("COMMIT")
""")


@pytest.mark.slow
def test_remove_with_a_reader_returns_promptly_and_the_erasure_is_finished_later(tmp_path):
    path = tmp_path / "facer.db"
    secrets = alice_store(path)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "reading"
        started = time.monotonic()
        removed = facer("users", "remove", "alice", "--yes", "--json", "--db", path)
        elapsed = time.monotonic() - started
        assert removed.returncode == 0, removed.stderr
        assert elapsed < 10, f"took {elapsed:.1f} s: the busy timeout is 30 s"
        assert json.loads(removed.stdout)["erasure_pending"] is True
        text = facer("users", "list", "--db", path)  # the reader still holds the old pages
        assert text.returncode == 0
        assert any(secret in raw_bytes(path) for secret in secrets)  # honest: "pending"
    finally:
        reader.communicate("\n", timeout=30)
    assert reader.returncode == 0
    listed = facer("users", "list", "--json", "--db", path)  # the next facer command finishes it
    assert listed.returncode == 0 and "alice" not in listed.stdout
    data = raw_bytes(path)
    assert not any(secret in data for secret in secrets)
    with Store(path, access="read") as store:
        assert not store.erasure_pending()


@pytest.mark.slow
def test_delete_over_http_with_a_reader_returns_promptly(tmp_path, client_for):
    path = tmp_path / "facer.db"
    secrets = alice_store(path)
    client = client_for(db=str(path))
    reader = subprocess.Popen([sys.executable, "-c", READER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "reading"
        started = time.monotonic()
        response = client.delete("/users/alice")
        assert time.monotonic() - started < 10
        assert response.status_code == 200 and response.json()["erasure_pending"] is True
    finally:
        reader.communicate("\n", timeout=30)
    assert client.get("/users").status_code == 200  # the next request finishes the erasure
    assert not any(secret in raw_bytes(path) for secret in secrets)


def test_the_removal_message_says_when_erasure_is_pending(tmp_path, wide_console):
    from facer_cli.cli.output.users import removal_view
    from facer_cli.store import Removal

    assert "erasure pending" in removal_view(Removal("alice", 1, 2, erasure_pending=True)).plain
    assert "erasure" not in removal_view(Removal("alice", 1, 2)).plain


# -- 6. read-only files, folders and mounts -------------------------------------------------------
def small_store(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "facer.db"
    with Store(path) as store:
        store.import_vector("alice", unit(1), model=current_model(), source="a")
    return path


@pytest.mark.slow
def test_a_read_only_file_is_read_without_files_beside_it_and_writable_again_later(tmp_path):
    path = small_store(tmp_path / "store")
    path.chmod(0o444)
    before = files_in(path.parent)
    listed = run_without_privileges([*FACER, "users", "list", "--json", "--db", str(path)], cwd=REPO)
    assert listed.returncode == 0, listed.stderr
    assert '"name": "alice"' in listed.stdout
    assert run_without_privileges([*FACER, "users", "check", "--db", str(path)], cwd=REPO).returncode == 0
    removed = run_without_privileges([*FACER, "users", "remove", "alice", "--yes", "--db", str(path)], cwd=REPO)
    assert removed.returncode == 6 and "read-only" in removed.stderr
    assert files_in(path.parent) == before  # no -wal, no -shm (that would keep it read-only)
    path.chmod(0o600)
    removed = run_without_privileges([*FACER, "users", "remove", "alice", "--yes", "--db", str(path)], cwd=REPO)
    assert removed.returncode == 0, removed.stderr


@pytest.mark.slow
def test_a_read_only_folder_is_read_and_writes_say_read_only(tmp_path):
    path = small_store(tmp_path / "store")
    np.save(tmp_path / "v.npy", unit(2))
    path.parent.chmod(0o555)
    try:
        before = files_in(path.parent)
        listed = run_without_privileges([*FACER, "users", "list", "--json", "--db", str(path)], cwd=REPO)
        assert listed.returncode == 0, listed.stderr
        assert '"name": "alice"' in listed.stdout
        imported = run_without_privileges(
            [*FACER, "users", "import", "bob", str(tmp_path / "v.npy"), "--current-model", "--db", str(path)], cwd=REPO
        )
        assert imported.returncode == 6 and "read-only" in imported.stderr, imported.stderr
        assert files_in(path.parent) == before
    finally:
        path.parent.chmod(0o700)


def test_a_read_only_mount_is_read_and_writes_say_read_only(tmp_path):
    path = small_store(tmp_path / "store")
    np.save(tmp_path / "v.npy", unit(2))
    view = tmp_path / "view"
    view.mkdir()
    with mounted("--bind", "-o", "ro", str(path.parent), str(view)):
        if os.access(view, os.W_OK):
            pytest.skip("the bind mount came out writable (mount -o ro not honoured here)")
        db = view / "facer.db"
        before = files_in(view)
        result, data = run_json("users", "list", "--db", db)
        assert result.exit_code == 0, result.output
        assert [u["name"] for u in data["users"]] == ["alice"]
        assert run("users", "show", "alice", "--db", db).exit_code == 0
        assert run("users", "check", "--db", db).exit_code == 0
        assert run("users", "export", "alice", "--out", tmp_path / "a.npy", "--db", db).exit_code == 0
        for args in (("users", "import", "bob", tmp_path / "v.npy", "--current-model"),
                     ("users", "remove", "alice", "--yes"), ("users", "rename", "alice", "bob"),
                     ("verify", "alice", "--camera", tmp_path / "missing.mp4")):
            result = run(*args, "--db", db)
            assert result.exit_code == 6 and "read-only" in result.output, (args, result.output)
        assert files_in(view) == before


# -- 7. a mistyped --db ------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ("users", "list"), ("users", "check"), ("users", "show", "alice"), ("users", "remove", "alice", "--yes"),
    ("users", "rename", "alice", "bob"), ("users", "export", "alice", "--out", "x.npy"),
    ("verify", "alice", "nothing.jpg"),
])
def test_a_missing_store_is_named_and_never_created(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nothing.jpg").touch()  # the image exists: only the store is mistyped
    db = tmp_path / "typo" / "facr.db"
    result = run(*args, "--db", db)
    assert result.exit_code == 6, result.output
    assert f"there is no facer store at database {db}" in result.output
    assert "the default store is" in result.output and "--db or FACER_DB" in result.output
    assert not (tmp_path / "typo").exists()


def test_only_commands_that_add_data_create_a_store_in_private_folders(tmp_path):
    np.save(tmp_path / "v.npy", unit(1))
    (tmp_path / "existing").mkdir(mode=0o755)
    (tmp_path / "existing").chmod(0o755)
    db = tmp_path / "existing" / "a" / "b" / "c" / "facer.db"
    assert run("users", "import", "x", tmp_path / "v.npy", "--current-model", "--db", db).exit_code == 0
    for folder in (db.parent, db.parent.parent, db.parent.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE((tmp_path / "existing").stat().st_mode) == 0o755  # not one facer created
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_a_folder_as_the_store_is_the_same_store_error_from_db_and_facer_db(tmp_path, monkeypatch):
    by_flag = run("users", "list", "--db", tmp_path)
    monkeypatch.setenv("FACER_DB", str(tmp_path))
    by_env = run("users", "list")
    assert by_flag.exit_code == by_env.exit_code == 6
    assert by_flag.output == by_env.output and "is a folder" in by_flag.output


def test_an_empty_file_is_no_store_for_a_reader(tmp_path):
    db = tmp_path / "facer.db"
    db.touch()
    result = run("users", "list", "--db", db)
    assert result.exit_code == 6 and "the file is empty" in result.output
    assert files_in(tmp_path) == {"facer.db": hashlib.sha256(b"").hexdigest()}


# -- 8. files facer writes ------------------------------------------------------------------------
def test_the_printed_import_command_works_and_names_the_file_written(tmp_path, monkeypatch, wide_console):
    monkeypatch.chdir(tmp_path)
    db = small_store(tmp_path / "store")
    result = run("users", "export", "alice", "--out", "noext", "--db", db)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "noext.npy").exists() and not (tmp_path / "noext").exists()
    assert stat.S_IMODE((tmp_path / "noext.npy").stat().st_mode) == 0o600
    command = next(line for line in result.stdout.splitlines() if "import it with:" in line)
    args = shlex.split(command.split("import it with: facer ", 1)[1].replace("NAME", "bob"))
    assert "noext.npy" in args
    imported = run(*args, "--db", tmp_path / "other.db")  # moving a template to another store
    assert imported.exit_code == 0, imported.output
    again = run("users", "export", "alice", "--out", "noext", "--db", db)
    assert again.exit_code == 10 and "--force" in again.output


def test_a_full_disk_leaves_no_partial_file(tmp_path):
    db = small_store(tmp_path / "store")
    disk = tmp_path / "disk"
    disk.mkdir()
    with mounted("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)):
        filler = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(filler, b"\0" * 4096)
        except OSError:  # no space left
            pass
        finally:
            os.close(filler)
        result = run("users", "export", "alice", "--out", disk / "alice.npy", "--db", db)
        assert result.exit_code == 10 and "No space left" in result.output, result.output
        result = run("config", "init", disk / "facer.toml")
        assert result.exit_code == 10, result.output
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # no 0-byte file, no temporary one


# -- 9. interrupts and prompts --------------------------------------------------------------------
def test_end_of_input_at_the_prompt_is_cancelled_not_no_match(tmp_path, monkeypatch):
    db = small_store(tmp_path / "store")
    monkeypatch.setattr("facer_cli.cli.users_cmd.can_prompt", lambda: True)
    result = run("users", "remove", "alice", "--db", db, input="")
    assert result.exit_code == 11, result.output
    assert run_json("users", "list", "--db", db)[1]["count"] == 1


# The console script as pip writes it, with one addition: once `main` is imported, a byte on
# fd 3 says so. From then on (the console script's own first line), any SIGINT must end in one
# line and exit 130. Before, Python itself is starting (interpreter, site, the entry module:
# 20-60 ms here), which no program can handle.
CONSOLE_SCRIPT = textwrap.dedent("""
    import os, sys
    from facer_cli.entry import main
    ready = int(os.environ.pop("READY_FD")); os.write(ready, b"."); os.close(ready)
    sys.argv[0] = "facer"
    sys.exit(main())
""")


def test_ctrl_c_inside_a_weakref_callback_still_prints_one_line_and_exits_130():
    # Python cannot raise out of a weakref callback (importlib's module locks use them, so a Ctrl-C
    # during an import inside a command can land there): it would print "Exception ignored" with a
    # traceback and let the command go on.
    code = textwrap.dedent("""
        import weakref
        from facer_cli import interrupts
        interrupts.install()
        class Held: pass
        held = Held()
        def callback(_):
            raise KeyboardInterrupt
        ref = weakref.ref(held, callback)
        with interrupts.unwinding_on_interrupt():
            del held
        print("went on")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "interrupted\n")


def test_ctrl_c_during_an_import_inside_a_command_exits_at_once(tmp_path):
    # Raising KeyboardInterrupt inside an import can reach a native module's initialisation, and
    # onnx's aborts the process on it (exit -6, seen in the loop below while `users import` loaded
    # onnx). The module here is interrupted while it loads, with the command's unwinding on.
    (tmp_path / "slow_to_load.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGINT)\nloaded = 1\n")
    code = textwrap.dedent(f"""
        import sys
        from facer_cli import interrupts
        interrupts.install()
        sys.path.insert(0, {str(tmp_path)!r})
        with interrupts.unwinding_on_interrupt():
            import slow_to_load
        print("went on")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "interrupted\n")


def test_ctrl_c_while_the_decoder_chatter_module_loads_still_prints_the_line():
    # The line goes to where fd 2 pointed before a decode captured it, which that module knows;
    # interrupted while it is being imported, the module is in sys.modules without its functions
    # (seen in the loop below: exit 130 and nothing written).
    code = textwrap.dedent("""
        import sys, types
        from facer_cli import interrupts
        sys.modules["facer_cli.sources.decoder_chatter"] = types.ModuleType("facer_cli.sources.decoder_chatter")
        interrupts.exit_interrupted()
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "interrupted\n")


@pytest.mark.slow
def test_ctrl_c_at_any_moment_prints_one_line_and_exits_130(tmp_path, faces):
    db = small_store(tmp_path / "store")
    np.save(tmp_path / "v.npy", unit(3))
    commands = [
        ("users", "list", "--db", db),
        ("inspect", photo(faces, "obama_1")),
        ("users", "import", "bob", tmp_path / "v.npy", "--current-model", "--replace", "--db", db),
        ("verify", "alice", photo(faces, "obama_1"), "--db", db),
    ]
    rng = random.Random(20240609)
    interrupted = 0
    for trial in range(60):
        args = commands[trial % len(commands)]
        delay = rng.uniform(0, 0.5)  # the commands take 0.2-0.7 s: most are caught at some moment
        ready_read, ready_write = os.pipe()
        os.set_inheritable(ready_write, True)
        child = subprocess.Popen(
            [sys.executable, "-c", CONSOLE_SCRIPT, *map(str, args)], cwd=REPO, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, pass_fds=(ready_write,),
            env={**os.environ, "READY_FD": str(ready_write)},
        )
        os.close(ready_write)
        assert os.read(ready_read, 1) == b"."
        os.close(ready_read)
        time.sleep(delay)
        finished = child.poll() is not None
        if not finished:
            child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
        if finished:
            continue
        if child.returncode == 130:
            interrupted += 1
            assert err == "interrupted\n", (args, delay, err)
        else:  # the signal came as it was exiting: its own outcome, never a traceback
            assert child.returncode in (0, 1, 3, 6, 9) and "Traceback" not in err, (args, delay, err)
    assert interrupted >= 30
    with Store(db, access="read") as store:
        assert store.check() == "ok"


# -- the store under SIGKILL ---------------------------------------------------------------------
ENROLLING_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from facer_cli.templates.aggregate import Template
    from facer_cli.engine.reports import FaceReport, FrameReport
    from facer_cli.store import Store

    print("ready", flush=True)  # imports done: the parent's random delay starts now
    store = Store(sys.argv[1])
    rng = np.random.default_rng(int(sys.argv[2]))
    for n in range(10_000):
        vector = rng.normal(size=512).astype(np.float32)
        vector /= np.linalg.norm(vector)
        face = FaceReport(index=1, box=(0, 0, 9, 9), det_score=0.9, keypoints=[(0.0, 0.0)] * 5,
                          is_subject=True, quality=0.9, embedding=vector, accepted=True)
        frames = [FrameReport(source=f"f{i}", faces=[face]) for i in range(3)]
        template = Template(vector=vector, frames_seen=3, accepted=[0, 1, 2], used=[0, 1, 2], mean_quality=0.9)
        store.add_template(f"u{n % 7}", template, frames, model="m:0123456789abcdef", source="kill", mode="replace")
        print(n, flush=True)
""")


@pytest.mark.slow
def test_enrollments_killed_at_random_moments_leave_a_whole_store(tmp_path):
    """100 processes enrolling in a loop, each SIGKILLed at a random moment: after each, `users
    check` passes and the rows are exact — one template with three samples per user, nothing else."""
    path = tmp_path / "facer.db"
    rng = random.Random(7)
    committed = reached = 0
    for trial in range(100):
        child = subprocess.Popen([sys.executable, "-c", ENROLLING_CHILD, str(path), str(trial)], cwd=REPO,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        # Timed from the end of the child's imports, so a loaded machine still kills it at work.
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.6))
        child.kill()
        child.wait(timeout=30)
        printed = len(child.stdout.read().split())  # enrollments it committed and said so
        committed += printed
        reached = max(reached, printed)
        child.stdout.close()
        result, check = run_json("users", "check", "--db", path)
        if check is None:  # killed while the very first store was being set up: there is none yet
            assert committed == 0 and "no facer store" in result.output, result.output
            continue
        assert check["check"] == "ok"
        conn = sqlite3.connect(path)
        users, templates, samples = (conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                                     for t in ("users", "templates", "samples"))
        per_template = conn.execute("SELECT count(*) FROM samples GROUP BY template_id").fetchall()
        orphans = conn.execute("SELECT count(*) FROM samples WHERE template_id NOT IN (SELECT id FROM templates)"
                               " UNION ALL SELECT count(*) FROM templates WHERE user_id NOT IN (SELECT id FROM users)"
                               ).fetchall()
        conn.close()
        assert users == templates == check["users"] and samples == 3 * templates
        assert set(per_template) <= {(3,)} and orphans == [(0,), (0,)]
        assert users in (min(7, reached), min(7, reached + 1))  # the last one may have committed unsaid
    assert committed > 100  # the kills did land in the middle of real work


def test_a_transaction_abandoned_by_an_interrupt_and_collected_after_close_raises_nothing(tmp_path):
    # A Ctrl-C can cut a command short between a transaction's start and its `with` block; the
    # store is closed on the way out, and the garbage collector closes the abandoned transaction
    # later: it printed "Exception ignored … Cannot operate on a closed database" after the line.
    import gc

    store = Store(tmp_path / "facer.db")
    abandoned = store.transaction("record a verify attempt")
    abandoned.__enter__()
    store.close()
    caught = []
    hook, sys.unraisablehook = sys.unraisablehook, caught.append
    try:
        del abandoned
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert caught == []
