"""The store on its own, with synthetic unit vectors: schema, modes, verify and its audit log,
model fingerprints, permissions, WAL and busy timeout, a process killed mid-transaction,
read-only and corrupt files. No model runs here.

Tests taking `store` run on every backend (`backend`: SQLite and PostgreSQL, tests/store_backends.py);
those about the SQLite file itself (its bytes, WAL, permissions, locks between processes) take
`sqlite_store` or a path, and say SQLite in their names where the rest does not say it already."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, run_without_privileges
from store_backends import table_columns

from facer_cli.engine.reports import FaceReport, FrameReport
from facer_cli.errors import (
    ModelMismatchError,
    StoreError,
    UnknownUserError,
    UserExistsError,
    UserNameError,
    VectorError,
)
from facer_cli.service.verification import verify_probe
from facer_cli.settings import Settings
from facer_cli.store import NO_PROBE, AttemptRecord, Store, validate_user_name
from facer_cli.store.migrations import migrations
from facer_cli.templates.aggregate import Template
from facer_cli.templates.matching import Band, Thresholds

MODEL = "bundled:0123456789abcdef"
SETTINGS = Settings()
THRESHOLDS = Thresholds.of(SETTINGS)


def unit(seed: int, dim: int = 512) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def near(vector: np.ndarray, cosine: float, seed: int = 99) -> np.ndarray:
    """A unit vector at exactly `cosine` to `vector`."""
    other = unit(seed, vector.shape[0]).astype(np.float64)
    other -= (other @ vector) * vector
    other /= np.linalg.norm(other)
    return (cosine * vector + np.sqrt(1 - cosine**2) * other).astype(np.float32)


@pytest.fixture
def store(backend_store):
    """A fresh store of each backend in turn."""
    return backend_store


@pytest.fixture
def sqlite_store(tmp_path):
    with Store(tmp_path / "data" / "facer.db") as opened:
        yield opened


def dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def without_gallery_counters(lines: list[str]) -> list[str]:
    """Without the rows that count inserts: the gallery counters and the template id sequence."""
    counters = ('INSERT INTO "gallery_version"', 'INSERT INTO "sqlite_sequence"')
    return [line for line in lines if not line.startswith(counters)]


# -- names ----------------------------------------------------------------
@pytest.mark.parametrize("raw, clean", [
    ("alice", "alice"), ("  Zoë Ødegård  ", "Zoë Ødegård"), ("李小龍", "李小龍"), ("o'brien-smith 2", "o'brien-smith 2"),
    ("e\u0301", "\u00e9"),  # NFC: a combining accent and the composed letter are one name
    ("x" * 128, "x" * 128),
])
def test_user_names_accepted(raw, clean):
    assert validate_user_name(raw) == clean


@pytest.mark.parametrize("raw, message", [
    ("", "empty"), ("   \t ", "empty"), ("x" * 129, "at most 128"), ("bad\nname", "control character"),
    ("tab\there", "control character"), ("nul\x00", "control character"), ("bell\x07", "control character"),
])
def test_user_names_refused(raw, message):
    with pytest.raises(UserNameError, match=message):
        validate_user_name(raw)


# -- file, folder, schema -------------------------------------------------
def test_new_store_is_owner_only_in_wal_mode_with_numbered_migrations(tmp_path):
    path = tmp_path / "deep" / "folder" / "facer.db"
    with Store(path, busy_timeout_s=7) as store:
        store.import_vector("alice", unit(1), model=MODEL, source="test")
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        for file in path.parent.iterdir():  # facer.db, and the -wal/-shm files SQLite made alongside
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 7000
        applied = [m.name for m in migrations.applied(store.db)]
        assert applied == ["m001_users_templates_samples", "m002_verify_audit_log",
                           "m003_unverified_models_and_pending_erasure", "m004_liveness_audit",
                           "m005_gallery_version_lookalikes_identify_log", "m006_template_ids_never_reused",
                           "m007_user_name_keys", "m008_api_keys_and_key_names", "m009_data_keys",
                           "m010_sidecar_keys"]
    with Store(path) as again:  # reopening applies nothing twice
        assert again.count() == 1
        assert [m.name for m in migrations.applied(again.db)] == applied


def test_existing_folder_permissions_are_left_alone(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    Store(folder / "facer.db").close()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert stat.S_IMODE((folder / "facer.db").stat().st_mode) == 0o600


def test_default_location_is_the_user_data_folder_and_facer_db_overrides(tmp_path, monkeypatch):
    from facer_cli.settings import load_settings

    default = load_settings().settings.db_path
    assert default.name == "facer.db" and "facer" in default.parent.parts
    monkeypatch.setenv("FACER_DB", str(tmp_path / "env.db"))
    assert load_settings().settings.db_path == tmp_path / "env.db"
    assert load_settings(overrides={"db": str(tmp_path / "flag.db")}).settings.db_path == tmp_path / "flag.db"
    with Store.open(load_settings().settings) as store:
        assert store.path == tmp_path / "env.db"


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "facer.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('facer.store', 'm999_future', 'x')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer facer"):
        Store(path)


# -- enroll modes -----------------------------------------------------------
def test_new_replace_add(store):
    first = store.import_vector("alice", unit(1), model=MODEL, source="a")
    with pytest.raises(UserExistsError, match="already enrolled"):
        store.import_vector("alice", unit(2), model=MODEL, source="b")
    second = store.import_vector(" alice ", unit(2), model=MODEL, source="b", mode="add")
    assert [t.id for t in store.templates("alice")] == [first.id, second.id]
    third = store.import_vector("alice", unit(3), model=MODEL, source="c", mode="replace")
    templates = store.templates("alice")
    assert [t.id for t in templates] == [third.id]
    np.testing.assert_allclose(templates[0].vector, unit(3), atol=1e-6)  # renormalised: last bits vary by CPU
    assert templates[0].vector.dtype == np.float32
    # --replace and --add on a new user simply enroll it
    store.import_vector("bob", unit(4), model=MODEL, source="d", mode="add")
    assert [u.name for u in store.list()] == ["alice", "bob"]


def test_add_from_another_model_is_refused(store):
    store.import_vector("alice", unit(1), model=MODEL, source="a")
    with pytest.raises(ModelMismatchError, match="replace their templates"):
        store.import_vector("alice", unit(2), model="buffalo_l:fedcba9876543210", source="b", mode="add")
    store.import_vector("alice", unit(2), model="buffalo_l:fedcba9876543210", source="b", mode="replace")
    assert store.list()[0].models == ["buffalo_l:fedcba9876543210"]


def test_one_model_one_dimension(store):
    store.import_vector("alice", unit(1), model=MODEL, source="a")
    with pytest.raises(ModelMismatchError, match="512-d"):
        store.import_vector("bob", unit(2, dim=128), model=MODEL, source="b")


def test_bad_vectors_are_refused(store):
    for bad, message in ((np.full(512, np.nan, np.float32), "NaN"), (np.zeros(512), "zero"),
                         (np.ones((2, 256)), "1-D"), (np.array(["a", "b"]), "not numbers")):
        with pytest.raises(VectorError, match=message):
            store.import_vector("alice", bad, model=MODEL, source="bad")
    with pytest.raises(VectorError, match="model"):
        store.import_vector("alice", unit(1), model=" ", source="bad")
    assert store.list() == []


def frame_with(embedding: np.ndarray, quality: float, accepted: bool = True, reason: str = "") -> FrameReport:
    face = FaceReport(index=1, box=(0, 0, 100, 100), det_score=0.8, keypoints=[(0.0, 0.0)] * 5, is_subject=True,
                      yaw=1.0, pitch=-2.0, roll=0.5, sharpness=300.0, quality=quality, embedding=embedding,
                      accepted=accepted, reason=reason)
    return FrameReport(source=f"frame-{quality}", faces=[face], width=100, height=100)


def test_enroll_keeps_per_frame_samples_but_embeddings_only_of_kept_frames(store):
    kept = [unit(1), near(unit(1), 0.9, 5)]
    frames = [
        frame_with(kept[0], 0.9), frame_with(kept[1], 0.8),
        frame_with(unit(7), 0.85),  # an outlier: someone else's face
        frame_with(unit(8), 0.2, accepted=False, reason="quality 0.20 < 0.40"),
        FrameReport(source="empty.jpg"),
    ]
    template = Template(vector=unit(1), frames_seen=5, accepted=[0, 1, 2], used=[0, 1], outliers=[2],
                        outlier_cosines={2: 0.05}, mean_quality=0.85)
    stored = store.add_template("alice", template, frames, model=MODEL, source="images: 5")
    assert (stored.frames_seen, stored.frames_used, stored.outliers, stored.samples) == (5, 2, 1, 5)
    samples = store.samples(stored.id)
    assert [s["decision"] for s in samples] == ["kept", "kept", "outlier", "rejected", "rejected"]
    np.testing.assert_array_equal(samples[1]["embedding"], kept[1])
    assert samples[2]["embedding"] is None and samples[3]["embedding"] is None
    assert samples[3]["reason"] == "quality 0.20 < 0.40" and samples[4]["reason"] == "no face"
    assert samples[0]["yaw"] == 1.0 and samples[0]["sharpness"] == 300.0 and samples[4]["quality"] is None
    columns = table_columns(store, "samples")
    assert not any("image" in c or "pixel" in c for c in columns)


# -- verify and the audit log -----------------------------------------------
def test_verify_uses_the_best_template_and_records_the_attempt(store):
    enrolled = unit(1)
    store.import_vector("alice", enrolled, model=MODEL, source="a")
    store.import_vector("alice", unit(2), model=MODEL, source="b", mode="add")
    store.import_vector("bob", unit(3), model=MODEL, source="c")
    for cosine, band in ((0.62, Band.MATCH), (0.35, Band.UNCERTAIN), (0.1, Band.NO_MATCH)):
        result = verify_probe(store, "alice", near(enrolled, cosine), model=MODEL, thresholds=THRESHOLDS, source="probe.jpg",
                              frames_seen=3, frames_used=2)
        assert result.similarity == pytest.approx(cosine, abs=1e-5)
        assert result.band is band and result.templates_compared == 2
        assert result.template_id == store.templates("alice")[0].id
    attempts = store.attempts("alice")
    assert [a.band for a in attempts] == ["no_match", "uncertain", "match"]
    assert attempts[0].source == "probe.jpg" and (attempts[0].frames_seen, attempts[0].frames_used) == (3, 2)
    columns = table_columns(store, "attempts")
    assert columns >= {"user_name", "created", "similarity", "band", "source", "frames_used"}
    assert "embedding" not in columns and "vector" not in columns
    assert store.show("alice").user.last_verified == attempts[0].created


def test_verify_refuses_unknown_users_and_other_models(store):
    store.import_vector("alice", unit(1), model=MODEL, source="a")
    with pytest.raises(UnknownUserError, match="no user named 'carol'"):
        verify_probe(store, "carol", unit(1), model=MODEL, thresholds=THRESHOLDS, source="p")
    with pytest.raises(ModelMismatchError, match="re-enroll"):
        verify_probe(store, "alice", unit(1), model="buffalo_l:fedcba9876543210", thresholds=THRESHOLDS, source="p")
    with pytest.raises(ModelMismatchError, match="different models"):
        verify_probe(store, "alice", unit(1, dim=128), model=MODEL, thresholds=THRESHOLDS, source="p")
    assert store.attempts() == []  # refused comparisons are not attempts


def test_sqlite_verify_reads_only_the_users_rows_through_indexes(sqlite_store):
    """What keeps verify from growing with the store: indexed lookups, no table scan."""
    plans = []
    for sql in ("SELECT id FROM users WHERE name = ?",
                "SELECT t.id, t.vector FROM templates t WHERE t.user_id = ?",
                "SELECT count(*) FROM samples s WHERE s.template_id = ?"):
        plan = " ".join(str(row[-1]) for row in sqlite_store.conn.execute("EXPLAIN QUERY PLAN " + sql, (1,)))
        plans.append(plan)
        assert "USING" in plan and "INDEX" in plan and "SCAN" not in plan, plan


def test_a_failed_attempt_is_recorded_as_no_probe(store):
    store.import_vector("alice", unit(1), model=MODEL, source="a")
    assert store.record_attempt(AttemptRecord("alice", MODEL, "camera 0", NO_PROBE, frames_seen=9, frames_used=1))
    assert store.record_attempt(AttemptRecord("nobody", MODEL, "x", NO_PROBE, frames_seen=1, frames_used=0)) is None
    (attempt,) = store.attempts()
    assert attempt.band == "no_probe" and attempt.similarity is None and attempt.frames_seen == 9


# -- users -----------------------------------------------------------------
def test_remove_deletes_every_template_and_sample_and_keeps_the_audit_log(store):
    secret = unit(42)
    frames = [frame_with(secret, 0.9), frame_with(near(secret, 0.95), 0.8)]
    template = Template(vector=secret, frames_seen=2, accepted=[0, 1], used=[0, 1], mean_quality=0.85)
    store.add_template("alice", template, frames, model=MODEL, source="x")
    store.import_vector("alice", unit(43), model=MODEL, source="y", mode="add")
    bob = store.import_vector("bob", unit(44), model=MODEL, source="z")
    verify_probe(store, "alice", secret, model=MODEL, thresholds=THRESHOLDS, source="probe")
    removal = store.remove("alice")
    assert (removal.templates, removal.samples) == (2, 2)
    assert not removal.erasure_pending, removal  # nobody else reads; the tests' role may VACUUM
    assert removal.to_dict() == {"user": "alice", "templates": 2, "samples": 2, "erasure_pending": False}
    assert [u.name for u in store.list()] == ["bob"] and store.count() == 1 and not store.exists("alice")
    assert store.conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 0
    assert store.conn.execute("SELECT count(*) FROM templates").fetchone()[0] == 1
    (attempt,) = store.attempts("alice")  # the log keeps the name and outcome, and no user link
    assert attempt.band == "match" and attempt.user == "alice"
    assert store.conn.execute("SELECT user_id FROM attempts").fetchone()[0] is None
    with pytest.raises(UnknownUserError):
        store.show("alice")
    with pytest.raises(UnknownUserError):
        store.remove("alice")
    assert [t.id for t in store.templates("bob")] == [bob.id]
    np.testing.assert_allclose(store.export("bob").vector, unit(44), atol=1e-6)
    assert store.check() == "ok"


def test_sqlite_remove_leaves_no_embedding_in_the_files(sqlite_store):
    store = sqlite_store
    secret = unit(42)
    frames = [frame_with(secret, 0.9), frame_with(near(secret, 0.95), 0.8)]
    template = Template(vector=secret, frames_seen=2, accepted=[0, 1], used=[0, 1], mean_quality=0.85)
    store.add_template("alice", template, frames, model=MODEL, source="x")
    store.import_vector("alice", unit(43), model=MODEL, source="y", mode="add")
    store.import_vector("bob", unit(44), model=MODEL, source="z")
    verify_probe(store, "alice", secret, model=MODEL, thresholds=THRESHOLDS, source="probe")
    # the exact bytes on disk: templates and the kept frames' embeddings
    alices = [t.vector for t in store.templates("alice")]
    alices += [s["embedding"] for t in store.templates("alice") for s in store.samples(t.id) if s["embedding"] is not None]
    bobs = store.templates("bob")[0].vector
    assert len(alices) == 4
    removal = store.remove("alice")
    assert (removal.templates, removal.samples) == (2, 2)
    assert [u.name for u in store.list()] == ["bob"]
    assert store.conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 0
    (attempt,) = store.attempts("alice")  # the log keeps the name and outcome, and no user link
    assert attempt.band == "match"
    assert store.conn.execute("SELECT user_id FROM attempts").fetchone()[0] is None
    with pytest.raises(UnknownUserError):
        store.show("alice")
    store.close()
    raw = b"".join(p.read_bytes() for p in store.path.parent.iterdir() if p.name.startswith("facer.db"))
    for vector in alices:
        assert vector.astype("<f4").tobytes()[:64] not in raw
    assert bobs.astype("<f4").tobytes()[:64] in raw  # bob is still there (the check does see vectors)


def test_rename(store):
    store.import_vector("alice", unit(1), model=MODEL, source="a")
    store.import_vector("bob", unit(2), model=MODEL, source="b")
    verify_probe(store, "alice", unit(1), model=MODEL, thresholds=THRESHOLDS, source="p")
    assert store.rename("alice", "  Alice Ödegård ").name == "Alice Ödegård"
    assert len(store.templates("Alice Ödegård")) == 1
    assert store.show("Alice Ödegård").attempts[0].band == "match"  # history follows the person
    with pytest.raises(UserExistsError):
        store.rename("Alice Ödegård", "bob")
    with pytest.raises(UnknownUserError):
        store.rename("alice", "carol")


def test_export_returns_the_newest_or_the_named_template(store):
    a = store.import_vector("alice", unit(1), model=MODEL, source="a")
    b = store.import_vector("alice", unit(2), model=MODEL, source="b", mode="add")
    np.testing.assert_allclose(store.export("alice").vector, unit(2), atol=1e-6)
    assert store.export("alice", a.id).id == a.id and store.export("alice").id == b.id
    with pytest.raises(UnknownUserError, match="no template 999"):
        store.export("alice", 999)


# -- concurrency and crashes ---------------------------------------------------
@pytest.mark.slow
def test_a_writer_waits_for_another_within_the_busy_timeout(tmp_path):
    path = tmp_path / "facer.db"
    Store(path).close()
    holder = sqlite3.connect(path, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    threading.Timer(0.5, holder.commit).start()
    started = time.monotonic()
    with Store(path, busy_timeout_s=10) as store:
        store.import_vector("alice", unit(1), model=MODEL, source="a")
    assert 0.4 < time.monotonic() - started < 9
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Store(path, busy_timeout_s=0.2) as store, pytest.raises(StoreError, match="busy.*try again"):
            store.import_vector("bob", unit(2), model=MODEL, source="b")
    finally:
        holder.rollback()
        holder.close()


KILLED_CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from facer_cli.templates.aggregate import Template
    from facer_cli.engine.reports import FaceReport, FrameReport
    from facer_cli.store import Store

    store = Store(sys.argv[1])

    def pause_inside(statement):
        # SQLite calls this as each statement starts: the user's old templates are already
        # deleted and the new one inserted, all inside the open transaction.
        if statement.lstrip().upper().startswith("INSERT INTO SAMPLES"):
            print("inside the transaction", flush=True)
            time.sleep(60)

    store.conn.set_trace_callback(pause_inside)
    vector = np.ones(512, np.float32) / np.sqrt(512)
    face = FaceReport(index=1, box=(0, 0, 9, 9), det_score=0.9, keypoints=[(0.0, 0.0)] * 5, is_subject=True,
                      quality=0.9, embedding=vector, accepted=True)
    frames = [FrameReport(source=f"f{i}", faces=[face]) for i in range(3)]
    template = Template(vector=vector, frames_seen=3, accepted=[0, 1, 2], used=[0, 1, 2], mean_quality=0.9)
    store.add_template("alice", template, frames, model=sys.argv[2], source="replacement", mode="replace")
    store.add_template("zed", template, frames, model=sys.argv[2], source="new user")
    print("finished", flush=True)
""")


def test_a_process_killed_inside_an_enrollment_leaves_the_store_as_before(tmp_path):
    path = tmp_path / "facer.db"
    with Store(path) as store:
        store.import_vector("alice", unit(1), model=MODEL, source="original")
        store.import_vector("bob", unit(2), model=MODEL, source="original")
        verify_probe(store, "bob", unit(2), model=MODEL, thresholds=THRESHOLDS, source="p")
    before = dump(path)
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(path), MODEL], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = child.stdout.readline()
        assert line.strip() == "inside the transaction", child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
        child.stderr.close()
    with Store(path) as store:
        assert store.check() == "ok"
        np.testing.assert_allclose(store.export("alice").vector, unit(1), atol=1e-6)
        assert [u.name for u in store.list()] == ["alice", "bob"]
        # the lock died with the process: the next writer goes straight in
        store.import_vector("carol", unit(3), model=MODEL, source="after")
        store.remove("carol")
    # The gallery counters and the id sequence count carol's insert and delete (that is their job);
    # nothing else changed.
    assert without_gallery_counters(dump(path)) == without_gallery_counters(before)


# -- read-only and corrupt files ---------------------------------------------
def test_garbage_file_is_a_clear_store_error(tmp_path):
    path = tmp_path / "facer.db"
    path.write_bytes(b"this is not a database, just some text " * 200)
    with pytest.raises(StoreError, match="not a facer database or is corrupt"):
        Store(path)


def test_damaged_database_is_a_clear_store_error(tmp_path):
    path = tmp_path / "facer.db"
    with Store(path) as store:
        for i in range(300):
            store.import_vector(f"user{i}", unit(i), model=MODEL, source="x")
    data = bytearray(path.read_bytes())
    assert len(data) > 64 * 1024
    data[8192:len(data) - 4096] = os.urandom(len(data) - 8192 - 4096)  # keep the header, wreck the pages
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt"):
        with Store(path) as store:
            store.list()
            store.check()


def test_users_check_command(tmp_path):
    from typer.testing import CliRunner

    from facer_cli.cli import app

    path = tmp_path / "facer.db"
    with Store(path) as store:
        for i in range(300):
            store.import_vector(f"user{i}", unit(i), model=MODEL, source="x")
    runner = CliRunner()
    result = runner.invoke(app, ["users", "check", "--db", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert '"check": "ok"' in result.output and '"users": 300' in result.output
    data = bytearray(path.read_bytes())
    data[8192:len(data) - 4096] = os.urandom(len(data) - 8192 - 4096)
    path.write_bytes(bytes(data))
    result = runner.invoke(app, ["users", "check", "--db", str(path)])
    assert result.exit_code == 6 and "corrupt" in result.output and "Traceback" not in result.output


def test_another_apps_sqlite_file_is_not_taken_over(tmp_path):
    path = tmp_path / "notes.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a facer store"):
        Store(path)
    assert sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall() == [("notes",)]


def test_a_folder_is_not_a_database(tmp_path):
    with pytest.raises(StoreError, match="is a folder"):
        Store(tmp_path)


def test_unwritable_location_is_a_clear_store_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create"):
        Store(blocker / "sub" / "facer.db")


READ_ONLY_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from facer_cli.errors import StoreError
    from facer_cli.store import Store

    store = Store(sys.argv[1])
    print("users:", [u.name for u in store.list()])
    try:
        store.import_vector("bob", np.ones(512, np.float32), model="m:1", source="x")
    except StoreError as exc:
        print("error:", exc)
    try:
        store.check_writable("record a verify attempt")
    except StoreError as exc:
        print("check:", exc)
""")


def test_read_only_database_reads_but_refuses_writes_clearly(tmp_path):
    path = tmp_path / "facer.db"
    with Store(path) as store:
        store.import_vector("alice", unit(1), model=MODEL, source="a")
    path.chmod(0o400)  # its owner may read it, nobody may write it; the folder stays writable
    result = run_without_privileges([sys.executable, "-c", READ_ONLY_CHILD, str(path)], cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "users: ['alice']" in result.stdout
    assert f"error: database {path} is read-only" in result.stdout
    assert f"check: database {path} is read-only: cannot record a verify attempt" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_read_only_database_through_the_cli(tmp_path, faces):
    from facer_cli import Facer

    path = tmp_path / "facer.db"
    with Store(path) as store:
        store.import_vector("alice", unit(1), model=Facer(SETTINGS).current_model()[0], source="a")
    vector = tmp_path / "bob.npy"
    np.save(vector, unit(2))
    path.chmod(0o400)
    facer = [sys.executable, "-m", "facer_cli"]
    listed = run_without_privileges([*facer, "users", "list", "--json", "--db", str(path)], cwd=REPO)
    assert listed.returncode == 0, listed.stderr
    assert '"name": "alice"' in listed.stdout
    refused = run_without_privileges(
        [*facer, "users", "import", "bob", str(vector), "--current-model", "--db", str(path)], cwd=REPO
    )
    assert refused.returncode == 6, refused.stderr
    assert "is read-only" in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    # verify must record the attempt: it says so before opening the camera (a missing video would be exit 4)
    verify = run_without_privileges(
        [*facer, "verify", "alice", "--camera", str(tmp_path / "missing.mp4"), "--db", str(path)], cwd=REPO
    )
    assert verify.returncode == 6, verify.stderr
    assert "is read-only: cannot record a verify attempt for 'alice'" in verify.stderr
