"""`facer store copy SRC DST`: SQLite → PostgreSQL, PostgreSQL → SQLite, SQLite → SQLite and
PostgreSQL → PostgreSQL keep every row (vectors to the byte), identify still names the right people
on the copy, a second run copies nothing, a conflicting destination is refused with nothing
written, a mismatch is an error, and a password in a URL is never printed."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import people, run, run_json

from facer_cli.errors import CopyStoreError, StoreConflictError
from facer_cli.service import Facer
from facer_cli.service.store_copy import copy_store
from facer_cli.settings import Settings
from facer_cli.store import AttemptRecord, Store
from facer_cli.store.bulk import COPIED_TABLES
from facer_cli.store.contract import open_store

SEVERAL = ("alex_lacamoire", "biden", "kit_harington", "obama")  # two photos or more: the last is held out
MODEL = "bundled:0123456789abcdef"
_names = itertools.count(1)


@pytest.fixture
def db_of(tmp_path, request):
    """db_of("sqlite" | "postgresql") → the `db` of a new, empty store of that backend."""

    def make(kind: str) -> str:
        number = next(_names)
        if kind == "sqlite":
            return str(tmp_path / f"store{number}" / "facer.db")
        server = request.getfixturevalue("postgres_server")
        return server.create_database(f"facer_copy_{os.getpid()}_{number}")

    return make


def dump(db: str) -> dict[str, list]:
    """Every copied row with its ids replaced by what they name (user names, template bytes), sorted:
    equal for two stores that hold the same data, whatever ids each gave."""
    with open_store(Settings(db=db), "read") as store:
        rows = {table: [r for batch in store.table_rows(table) for r in batch] for table in COPIED_TABLES}
    names = {u["id"]: u["name"] for u in rows["users"]}
    vectors = {t["id"]: t["vector"] for t in rows["templates"]}

    def bare(row: dict, *ids: str) -> tuple:
        return tuple(v for k, v in row.items() if k != "id" and k not in ids)

    return {
        "users": sorted(bare(u) for u in rows["users"]),
        "templates": sorted((names[t["user_id"]], *bare(t, "user_id")) for t in rows["templates"]),
        "samples": sorted((vectors[s["template_id"]], *bare(s, "template_id")) for s in rows["samples"]),
        "attempts": sorted(
            (names.get(a["user_id"]), vectors.get(a["template_id"]), *bare(a, "user_id", "template_id"))
            for a in rows["attempts"]
        ),
        "lookalikes": sorted(
            (names[x["user_id"]], names[x["other_user_id"]], *bare(x, "user_id", "other_user_id"))
            for x in rows["lookalikes"]
        ),
        "identifications": sorted(bare(i) for i in rows["identifications"]),
    }


def enrolled_source(db: str, engine, faces) -> tuple[Facer, dict]:
    """A store with real enrollments (all but each person's last photo), a verify, an identify, a
    look-alike pair, and a template replaced (its attempt then names a template that is gone)."""
    facer = Facer(Settings.from_values({"db": db, "min_valid_frames": 1}), engine=engine)
    photos = people(faces)
    held_out = {}
    for name in SEVERAL:
        facer.enroll(name, photos[name][:-1])
        held_out[name] = photos[name][-1]
    facer.verify("biden", [held_out["biden"]])
    facer.verify("obama", [held_out["obama"]])
    facer.enroll("obama", photos["obama"][:2], mode="replace")  # the first attempt's template is gone
    facer.identify([held_out["kit_harington"]])
    facer.enroll("barack", photos["obama"][2:3], allow_lookalike=True)
    return facer, held_out


DIRECTIONS = [("sqlite", "postgresql"), ("postgresql", "sqlite"), ("sqlite", "sqlite"), ("postgresql", "postgresql")]


@pytest.mark.slow
@pytest.mark.parametrize("kinds", DIRECTIONS, ids=["->".join(k) for k in DIRECTIONS])
def test_a_copy_keeps_every_row_identifies_and_a_second_run_copies_nothing(kinds, db_of, engine, faces):
    src, dst = db_of(kinds[0]), db_of(kinds[1])
    facer, held_out = enrolled_source(src, engine, faces)
    before = dump(src)
    assert all(before[table] for table in COPIED_TABLES), {t: len(r) for t, r in before.items()}
    assert any(a[1] is None for a in before["attempts"])  # an attempt whose template was replaced

    result = copy_store(src, dst)
    assert result.verified and result.was_empty and result.already_there == 0
    assert result.copied == sum(len(rows) for rows in before.values())
    assert dump(dst) == before == dump(src)  # vectors and embeddings: the same float32 bytes
    with open_store(Settings(db=src), "read") as a, open_store(Settings(db=dst), "read") as b:
        assert [(t.id, t.vector.tobytes()) for t in a.templates("obama")] != []
        assert [t.vector.tobytes() for t in a.templates("obama")] == [t.vector.tobytes() for t in b.templates("obama")]

    copied = Facer(Settings.from_values({"db": dst, "min_valid_frames": 1}), engine=engine)
    for name in ("alex_lacamoire", "kit_harington"):
        found = copied.identify([held_out[name]])
        assert (found.decision, found.user) == ("identified", name), found.reason

    again = copy_store(src, dst)
    assert again.copied == 0 and again.already_there == result.copied and again.verified
    assert again.templates_sha256 == result.templates_sha256
    assert dump(dst)["users"] == before["users"]

    # Someone enrolled at the source later: the next copy brings them, and the destination's gallery
    # index (built by the identify above) catches up by itself.
    facer.enroll("rose_leslie", people(faces)["rose_leslie"][:1])
    later = copy_store(src, dst)
    assert later.table("users").copied == 1 and later.table("users").already_there == len(before["users"])
    found = copied.identify([people(faces)["rose_leslie"][-1]])
    assert (found.decision, found.user) == ("identified", "rose_leslie"), found.reason
    assert dump(dst)["templates"] == dump(src)["templates"]


def unit(seed: int, dim: int = 512) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def synthetic(db: str, users: dict[str, int]) -> None:
    with open_store(Settings(db=db)) as store:
        for name, seed in users.items():
            store.import_vector(name, unit(seed), model=MODEL, source=f"import: {name}.npy")


def test_a_conflicting_destination_is_refused_naming_the_user_and_nothing_is_written(backend, db_of, tmp_path):
    src, dst = db_of("sqlite"), db_of(backend)
    synthetic(src, {"alice": 1, "bob": 2, "carol": 3})
    synthetic(dst, {"carol": 30, "alice": 10})  # same names, other templates
    before = dump(dst)
    with pytest.raises(StoreConflictError, match=r"already holds a user 'alice' \(and 1 other user\(s\)\) whose"):
        copy_store(src, dst)
    assert dump(dst) == before
    result = run("store", "copy", src, dst)
    assert result.exit_code == 7, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "'alice'" in lines[0] and "nothing was written" in lines[0], lines
    assert "--replace" not in lines[0] and "FACER_DB" not in lines[0]
    assert dump(dst) == before


def test_a_destination_holding_other_users_gains_the_source_s_beside_them(backend, db_of):
    src, dst = db_of("sqlite"), db_of(backend)
    synthetic(src, {"alice": 1, "bob": 2})
    synthetic(dst, {"zed": 9})
    result = copy_store(src, dst)
    assert (result.table("users").copied, result.was_empty) == (2, False)
    with open_store(Settings(db=dst), "read") as store:
        assert [u.name for u in store.list()] == ["alice", "bob", "zed"]


@pytest.mark.parametrize("failing", ["templates", "attempts"])
def test_a_copy_that_does_not_match_its_source_is_an_error_and_writes_nothing(backend, failing, db_of, monkeypatch):
    src, dst = db_of("sqlite"), db_of(backend)
    synthetic(src, {"alice": 1, "bob": 2})
    with open_store(Settings(db=src)) as store:
        store.record_attempt(AttemptRecord(user="bob", model=MODEL, source="door.jpg", band="match", similarity=0.8))
    synthetic(dst, {"zed": 9})
    before = dump(dst)
    if backend == "sqlite":
        cls = Store
    else:
        from facer_cli.store.postgres.repository import PostgresStore as cls
    real = cls.insert_rows

    def damaging(self, table, rows):  # one value changed on its way in: the verification must see it
        if table == failing == "templates":
            rows = [{**row, "vector": bytes(4) + row["vector"][4:]} for row in rows]
        elif table == failing:
            rows = [{**row, "similarity": 0.5} for row in rows]
        return real(self, table, rows)

    monkeypatch.setattr(cls, "insert_rows", damaging)
    problem = "sha256" if failing == "templates" else "attempts: 1 in the source, 0 found"
    with pytest.raises(CopyStoreError, match=rf"does not match .*{problem}.*nothing was written"):
        copy_store(src, dst)
    assert dump(dst) == before
    result = run("store", "copy", src, dst)
    assert result.exit_code == 6 and "does not match" in result.stderr and "FACER_DB" not in result.stderr
    assert dump(dst) == before


def test_the_source_is_only_read(db_of, tmp_path):
    src, dst = db_of("sqlite"), db_of("sqlite")
    synthetic(src, {"alice": 1, "bob": 2})
    folder = Path(src).parent
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    assert copy_store(src, dst).copied == 4
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


def test_a_password_in_a_url_is_never_printed(db_of, postgres_server, tmp_path):
    src = db_of("sqlite")
    synthetic(src, {"alice": 1})
    url = db_of("postgresql").replace("postgresql://facer@", "postgresql://facer:s3cr%40t-pw@")  # the server trusts
    result, data = run_json("store", "copy", src, url)
    assert result.exit_code == 0, result.output
    assert data["destination"] == url.replace(":s3cr%40t-pw", "") and data["copied"] == 2
    shown = run("store", "copy", url, str(tmp_path / "back.db"))
    assert shown.exit_code == 0 and "s3cr" not in shown.output and "s3cr" not in shown.stderr
    assert "0 rows copied" not in shown.stdout and "2 rows copied, 0 already there" in shown.stdout
    missing = url.rsplit("/", 1)[0] + "/no_such_database"
    failed = run("store", "copy", missing, str(tmp_path / "other.db"))
    assert failed.exit_code == 6 and "s3cr" not in failed.output + failed.stderr
    assert "no_such_database" in failed.stderr and "FACER_DB" not in failed.stderr
    assert not (tmp_path / "other.db").exists()


def test_the_cli_says_what_was_copied_and_exits_0(db_of, tmp_path):
    src, dst = db_of("sqlite"), db_of("sqlite")
    synthetic(src, {"alice": 1, "bob": 2})
    first = run("store", "copy", src, dst)
    assert first.exit_code == 0, first.output
    assert "4 rows copied, 0 already there" in first.stdout and "verified" in first.stdout
    second, data = run_json("store", "copy", src, dst)
    assert data["copied"] == 0 and data["already_there"] == 4 and data["verified"] is True
    assert data["tables"]["templates"] == {"source": 2, "copied": 0, "already_there": 2, "verified": 2, "left_out": 0}
    assert "0 rows copied, 4 already there" in run("store", "copy", src, dst).stdout


def test_a_missing_source_or_the_same_store_twice_is_refused_and_nothing_is_made(db_of, tmp_path):
    src = db_of("sqlite")
    synthetic(src, {"alice": 1})
    missing = run("store", "copy", tmp_path / "nothing.db", tmp_path / "new.db")
    assert missing.exit_code == 6 and "there is no facer store" in missing.stderr
    assert not (tmp_path / "new.db").exists()
    same = run("store", "copy", src, src)
    assert same.exit_code == 2 and "the same store" in same.stderr


@pytest.mark.slow
def test_during_a_copy_readers_of_the_destination_go_on_and_writers_wait(backend, db_of):
    from facer_cli.errors import StoreError

    src, dst = db_of("sqlite"), db_of(backend)
    synthetic(src, {"alice": 1, "bob": 2})
    synthetic(dst, {"zed": 9})
    seen = []

    def meanwhile(progress):
        if progress.stage == "verify" and not seen:
            with open_store(Settings(db=dst, db_busy_timeout_s=0.5), "write") as other:
                seen.append(other.count())  # the committed state: the copy is not there yet
                with pytest.raises(StoreError, match="busy"):
                    other.import_vector("yves", unit(5), model=MODEL, source="import: yves.npy")

    copy_store(src, dst, on_progress=meanwhile)
    assert seen == [1]
    with open_store(Settings(db=dst), "read") as store:
        assert [u.name for u in store.list()] == ["alice", "bob", "zed"]


def test_a_model_of_another_dimension_in_the_destination_is_refused(db_of):
    src, dst = db_of("sqlite"), db_of("sqlite")
    synthetic(src, {"alice": 1})
    with open_store(Settings(db=dst)) as store:
        store.import_vector("zed", unit(9, dim=128), model=MODEL, source="import: zed.npy")
    before = dump(dst)
    result = run("store", "copy", src, dst)
    assert result.exit_code == 9 and "makes 128-d templates" in result.stderr, result.output
    assert dump(dst) == before
