"""Template ids are never handed out twice: an id in the verify audit log names one template.

Synthetic unit vectors, no model: enroll, remove and enroll again (also `--replace`, a new
process, `users import --replace`), and a store made by the previous schema step migrated with
its ids, rows, indexes, triggers and gallery sidecar intact."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO

from facer_cli.gallery import GalleryIndex
from facer_cli.store import AttemptRecord, Store
from facer_cli.store.connection import APPLICATION_ID
from facer_cli.store.migrations import STEP_NAMES, migrations_set

MODEL = "bundled:0123456789abcdef"
STEP = "m006_template_ids_never_reused"
PREVIOUS = STEP_NAMES[STEP_NAMES.index(STEP) - 1]


def unit(seed: int, dim: int = 512) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def template_ids(store: Store, user: str) -> list[int]:
    return [template.id for template in store.templates(user, with_vectors=False)]


def test_enroll_remove_enroll_gives_a_new_id_every_time(tmp_path):
    seen: list[int] = []
    with Store(tmp_path / "facer.db") as store:
        for round_ in range(3):
            seen.append(store.import_vector("alice", unit(round_), model=MODEL, source="test").id)
            store.remove("alice")
        for round_ in range(3):  # --replace deletes the newest template and stores one
            mode = "new" if round_ == 0 else "replace"
            seen.append(store.import_vector("bob", unit(10 + round_), model=MODEL, source="test", mode=mode).id)
        assert template_ids(store, "bob") == seen[-1:]
    assert len(set(seen)) == len(seen) and seen == sorted(seen)


def test_ids_stay_unique_across_a_new_process(tmp_path):
    path = tmp_path / "facer.db"
    with Store(path) as store:
        first = store.import_vector("alice", unit(1), model=MODEL, source="test").id
        store.remove("alice")
    script = textwrap.dedent(
        f"""
        import numpy as np
        from facer_cli.store import Store
        vector = np.ones(512, np.float32) / np.sqrt(512)
        with Store({str(path)!r}) as store:
            print(store.import_vector("alice", vector, model={MODEL!r}, source="test").id)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    assert int(done.stdout.strip()) > first


def test_users_import_replace_gives_a_new_id(tmp_path):
    """What `facer users import NAME FILE --replace` runs (`Facer.import_template`)."""
    from facer_cli.service import Facer
    from facer_cli.settings import Settings

    db = tmp_path / "facer.db"
    npy = tmp_path / "t.npy"
    np.save(npy, unit(5))
    facer = Facer(Settings.from_values({"db": str(db)}))
    ids = []
    for mode in ("new", "replace", "replace"):
        facer.import_template("carol", npy, fingerprint="other-model:1", trust_fingerprint=True, mode=mode)
        with Store(db) as store:
            ids.append(template_ids(store, "carol"))
    assert [len(found) for found in ids] == [1, 1, 1]
    assert ids[0][0] < ids[1][0] < ids[2][0]


def previous_schema_store(path: Path) -> None:
    """A store as the facer before this step left it: every step up to PREVIOUS, ids reused."""
    from sqlite_utils import Database

    db = Database(path)
    migrations_set().apply(db, stop_before=STEP)
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.conn.commit()
    db.close()


def test_a_store_of_the_previous_schema_migrates_and_keeps_its_ids(tmp_path):
    path = tmp_path / "facer.db"
    previous_schema_store(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.executemany(
        "INSERT INTO users (id, name, created, updated) VALUES (?, ?, 'c', 'u')", [(1, "alice"), (2, "bob")]
    )
    rows = [(1, unit(1)), (2, unit(2)), (1, unit(3)), (2, unit(4))]
    conn.executemany(
        "INSERT INTO templates (user_id, vector, dimension, model, created) VALUES (?, ?, 512, ?, 'c')",
        [(user, vector.astype("<f4").tobytes(), MODEL) for user, vector in rows],
    )
    conn.execute("INSERT INTO samples (template_id, position, decision) VALUES (3, 0, 'accepted'), (4, 0, 'accepted')")
    conn.execute(
        "INSERT INTO attempts (user_id, user_name, created, band, template_id) VALUES (2, 'bob', 'c', 'match', 4)"
    )
    conn.execute("DELETE FROM samples WHERE template_id = 4")
    conn.execute("DELETE FROM templates WHERE id = 4")  # the newest: the old schema would hand 4 out again
    conn.commit()
    before = conn.execute("SELECT id, user_id, vector FROM templates ORDER BY id").fetchall()
    counters = conn.execute("SELECT * FROM gallery_version").fetchall()
    conn.close()
    with GalleryIndex.open(path, MODEL) as index:  # a sidecar written before the migration
        assert len(index) == 3

    with Store(path) as store:
        assert store.has_step(STEP)
        assert [row[0] for row in store.conn.execute("SELECT id FROM templates ORDER BY id")] == [1, 2, 3]
        stored = store.import_vector("bob", unit(9), model=MODEL, source="test", mode="add")
        assert stored.id == 5  # above the deleted 4, which the audit log still names
        store.record_attempt(AttemptRecord(user="bob", model=MODEL, source="t", band="match", template_id=5))

    conn = sqlite3.connect(path)
    after = conn.execute("SELECT id, user_id, vector FROM templates WHERE id <= 3 ORDER BY id").fetchall()
    assert after == before
    assert conn.execute("SELECT template_id FROM samples ORDER BY id").fetchall() == [(3,)]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    schema = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE tbl_name = 'templates'").fetchall())
    assert "AUTOINCREMENT" in schema["templates"]
    assert {"idx_templates_user_id", "idx_templates_model"} <= set(schema)
    assert {"gallery_version_insert", "gallery_version_delete", "gallery_version_update"} <= set(schema)
    assert (
        'REFERENCES "templates"("id")'
        in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'samples'").fetchone()[0]
    )
    # The migration left the gallery counters alone; the insert after it counted as new, not reused.
    (model, inserts, deletes, high_water, reused) = conn.execute("SELECT * FROM gallery_version").fetchone()
    assert (model, inserts, deletes, high_water, reused) == (
        counters[0][0],
        counters[0][1] + 1,
        counters[0][2],
        5,
        counters[0][4],
    )
    conn.close()
    with GalleryIndex.open(path, MODEL) as index:  # the old sidecar is still valid: caught up, not rebuilt
        assert index.rebuilds == 0 and len(index) == 4
    assert schema_of(path) == schema_of(Store(tmp_path / "fresh.db").path)  # as a new store's


def schema_of(path: Path) -> dict[str, str]:
    Store(path).close()
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT type || ' ' || name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
    finally:
        conn.close()


def test_a_read_of_a_store_of_the_previous_schema(tmp_path):
    path = tmp_path / "facer.db"
    previous_schema_store(path)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO users (id, name, created, updated) VALUES (1, 'alice', 'c', 'u')")
    conn.execute(
        "INSERT INTO templates (id, user_id, vector, dimension, model, created) VALUES (7, 1, ?, 512, ?, 'c')",
        (unit(1).astype("<f4").tobytes(), MODEL),
    )
    conn.commit()
    conn.close()
    with Store(path, access="read") as store:
        assert template_ids(store, "alice") == [7]  # upgraded where it can be written, else read as it is


@pytest.mark.parametrize("highest_in", ["audit log", "gallery counter"])
def test_the_sequence_starts_above_every_id_ever_used(tmp_path, highest_in):
    path = tmp_path / "facer.db"
    previous_schema_store(path)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO users (id, name, created, updated) VALUES (1, 'alice', 'c', 'u')")
    conn.execute(
        "INSERT INTO templates (id, user_id, vector, dimension, model, created) VALUES (3, 1, ?, 512, ?, 'c')",
        (unit(1).astype("<f4").tobytes(), MODEL),
    )
    if highest_in == "audit log":
        conn.execute("INSERT INTO attempts (user_name, created, band, template_id) VALUES ('alice', 'c', 'match', 40)")
    else:
        conn.execute("UPDATE gallery_version SET high_water = 70")
    conn.commit()
    conn.close()
    with Store(path) as store:
        new = store.import_vector("alice", unit(2), model=MODEL, source="test", mode="add").id
    assert new == (41 if highest_in == "audit log" else 71)
