"""The identify sidecar of an encrypted store (`facer_cli.gallery.sidecar`, sealed; docs/security.md).

With a master key the sidecar is written all the same, sealed (AES-256-GCM) with the store's sidecar
key: its bytes hold no template's int8 codes, scales or error bounds — found in the plain sidecar of
the same store without a key, so the search can fail. A removal replaces the sidecar key in its
transaction: a copy of the sidecar taken before the removal does not open after it, with the same
master key. A sidecar sealed under another key, with a byte changed, of another model or with its
clear header edited is refused and rebuilt, and identify still answers right. `store rekey` keeps it
valid, `store decrypt` goes back to a plain one, `store encrypt` to a sealed one; with no sidecar key
or no room on the disk, the index is kept in memory, never in a file in the clear."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import numpy as np
import pytest

from facer_cli.errors import StoreKeyError
from facer_cli.gallery import sidecar as sidecar_module
from facer_cli.gallery.index import GalleryIndex
from facer_cli.gallery.quantise import quantise_rows
from facer_cli.gallery.sidecar import HEADER_BYTES, MAGIC, open_sealed, read_header, sidecar_problem
from facer_cli.settings import Settings
from facer_cli.store.contract import open_store
from facer_cli.store.crypto import SidecarKey, read_key_file, write_key_file
from facer_cli.store.gallery_source import sidecar_path

MODEL = "bundled:0123456789abcdef"
OTHER_MODEL = "bundled:fedcba9876543210"
USERS = 40


def unit(seed: int, dim: int = 512) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def vectors() -> np.ndarray:
    return np.stack([unit(seed) for seed in range(1, USERS + 1)])


def settings_for(db: Path | str, key: Path | None) -> Settings:
    return Settings(db=str(db), key_file=None if key is None else str(key))


def fill(db: Path | str, key: Path | None, model: str = MODEL) -> None:
    with open_store(settings_for(db, key)) as store:
        for i, vector in enumerate(vectors()):
            store.import_vector(f"user{i:02d}", vector, model=model, source="test")


def open_index(db: Path | str, key: Path | None, model: str = MODEL) -> GalleryIndex:
    with open_store(settings_for(db, key), "read") as store:
        return GalleryIndex.open(store.gallery_source(), model)


def current_key(db: Path | str, key: Path) -> SidecarKey | None:
    with open_store(settings_for(db, key), "read") as store:
        source = store.gallery_source()
        try:
            with source.read_transaction():
                return source.sidecar_key()
        finally:
            source.close()


def query(db: Path, sql: str) -> tuple:
    """One row of the store, read on a connection of its own (closed after)."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchone()
    finally:
        conn.close()


def no_temporary_files(monkeypatch) -> list[str]:
    """The unnamed temporary files made from now on (an index without a sidecar beside the store
    would keep its codes in one): recorded, and still made."""
    made: list[str] = []
    original = tempfile.TemporaryFile

    def recorded(*args, **kwargs):
        made.append("TemporaryFile")
        return original(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", recorded)
    return made


def holds_row(raw: bytes, row: bytes, stride: int) -> bool:
    """Whether `raw` holds the bytes of `row` at some offset, one every `stride` bytes (1: side by
    side; the number of rows: a column of a dimension-major table, as the sidecar keeps codes)."""
    data = np.frombuffer(raw, np.uint8)
    wanted = np.frombuffer(row, np.uint8)
    span = (len(wanted) - 1) * stride + 1
    if len(data) < span:
        return False
    at = np.flatnonzero(data[: len(data) - span + 1] == wanted[0])
    for k in range(1, len(wanted)):
        at = at[data[at + k * stride] == wanted[k]]
        if not len(at):
            return False
    return True


def identifies_everyone(index: GalleryIndex, removed: set[int] = frozenset()) -> bool:  # type: ignore[assignment]
    for i, vector in enumerate(vectors()):
        best = index.search(vector, top_k=1)[0]
        if i in removed:
            if best.name == f"user{i:02d}":
                return False
        elif best.name != f"user{i:02d}" or best.similarity < 0.999:
            return False
    return True


@pytest.mark.parametrize("encrypted", [True, False], ids=["key", "no-key"])
def test_the_sealed_sidecar_holds_no_code_row_scale_or_bound_of_any_template(tmp_path, key_file, encrypted):
    db = tmp_path / "facer.db"
    key = key_file if encrypted else None
    fill(db, key)
    with open_index(db, key) as index:
        assert index.rebuilds == 1 and index.persistent and identifies_everyone(index)
        assert index.gallery is not None
        scales, bounds = index.gallery.scales.tobytes(), index.gallery.error_norms.tobytes()
    raw = sidecar_path(db, MODEL).read_bytes()
    assert (sidecar_path(db, MODEL).stat().st_mode & 0o777) == 0o600
    quantised = quantise_rows(vectors())
    for code in quantised.codes:
        row = code.astype(np.int8).tobytes()
        # dimension-major (a column of the codes table), or side by side: neither when sealed
        assert holds_row(raw, row, USERS) is not encrypted
        assert not holds_row(raw, row, 1) or not encrypted
    assert (scales in raw) is not encrypted and (bounds in raw) is not encrypted
    # the clear header of a sealed sidecar: shape, stamp and key fingerprint, no norm or id
    assert (read_header(os.open(sidecar_path(db, MODEL), os.O_RDONLY)) is None) is encrypted
    if encrypted:
        header = json.loads(raw[len(MAGIC) : HEADER_BYTES].split(b"\n", 1)[0])
        assert set(header) == {"format", "model", "dimension", "rows", "stamp", "key", "chunk"}
    with open_index(db, key) as again:  # the next cold start opens it instead of reading the store
        assert again.rebuilds == 0 and again.persistent and identifies_everyone(again)


def test_a_sidecar_copied_before_a_removal_does_not_open_after_it(tmp_path, key_file):
    db = tmp_path / "facer.db"
    fill(db, key_file)
    with open_index(db, key_file):
        pass
    target = sidecar_path(db, MODEL)
    copy = tmp_path / "copy.bin"
    shutil.copy(target, copy)
    before = current_key(db, key_file)
    assert before is not None
    with open(copy, "rb") as f:
        assert sidecar_problem(f.fileno(), MODEL, before) is None  # it opened before the removal
    (old_wrapped,) = query(db, "SELECT wrapped FROM sidecar_keys")
    with open_store(settings_for(db, key_file)) as store:
        assert store.remove("user07").templates == 1
    after = current_key(db, key_file)
    assert after is not None and after.fingerprint != before.fingerprint
    assert not target.exists()  # erased with the removal, as a plain one is
    with open(copy, "rb") as f:
        assert "another key" in (sidecar_problem(f.fileno(), MODEL, after) or "")
    # its clear header made to name the new key: the chunks still do not decrypt
    forged = copy.read_bytes()
    header = json.loads(forged[len(MAGIC) : HEADER_BYTES].split(b"\n", 1)[0])
    text = MAGIC + json.dumps({**header, "key": after.fingerprint}, sort_keys=True).encode() + b"\n"
    target.write_bytes(text.ljust(HEADER_BYTES, b"\0") + forged[HEADER_BYTES:])
    with open(target, "rb") as f:
        assert sidecar_problem(f.fileno(), MODEL, after) == "does not decrypt: damaged"
    # the old key's wrapped bytes are gone from the store's files too (the new key's are there)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("facer.db*") if p.is_file())
    (wrapped,) = query(db, "SELECT wrapped FROM sidecar_keys")
    assert wrapped in raw and old_wrapped not in raw
    with open_index(db, key_file) as index:  # the copy put back: refused, rebuilt without user07
        assert index.rebuilds == 1 and len(index) == USERS - 1 and identifies_everyone(index, {7})
    with open(target, "rb") as f:
        assert sidecar_problem(f.fileno(), MODEL, after) is None  # rewritten under the new key
    with open_index(db, key_file) as again:
        assert again.rebuilds == 0 and identifies_everyone(again, {7})


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def sidecar_of_another_store(folder: Path, key_file: Path | None, db: Path) -> None:
    """The sidecar of another store in `folder` (the same people and model), copied over `db`'s."""
    other = folder / "facer.db"
    fill(other, key_file)
    with open_index(other, key_file):
        pass
    shutil.copy(sidecar_path(other, MODEL), sidecar_path(db, MODEL))


def another_stores(tmp_path: Path, key_file: Path, db: Path) -> None:
    """The sidecar of another store (the same master key: its own sidecar key)."""
    sidecar_of_another_store(tmp_path / "other", key_file, db)


def another_models(tmp_path: Path, key_file: Path, db: Path) -> None:
    """The same store's sidecar of another model, under this model's name."""
    with open_store(settings_for(db, key_file)) as store:
        store.import_vector("someone", unit(999), model=OTHER_MODEL, source="test")
    with open_index(db, key_file, OTHER_MODEL):
        pass
    shutil.copy(sidecar_path(db, OTHER_MODEL), sidecar_path(db, MODEL))


def another_models_header(tmp_path: Path, key_file: Path, db: Path) -> None:
    """The other model's sealed sidecar with its clear header edited to say this model."""
    another_models(tmp_path, key_file, db)
    target = sidecar_path(db, MODEL)
    data = target.read_bytes()
    text = data[:HEADER_BYTES].replace(OTHER_MODEL.encode(), MODEL.encode())
    target.write_bytes(text + data[HEADER_BYTES:])


def edited_stamp(tmp_path: Path, key_file: Path, db: Path) -> None:
    target = sidecar_path(db, MODEL)
    data = target.read_bytes()
    text = data[:HEADER_BYTES].replace(b'"inserts": 40', b'"inserts": 39')
    assert text != data[:HEADER_BYTES]
    target.write_bytes(text + data[HEADER_BYTES:])


def a_flipped_code(tmp_path: Path, key_file: Path, db: Path) -> None:
    flip(sidecar_path(db, MODEL), sidecar_path(db, MODEL).stat().st_size - 1000)


def a_flipped_nonce(tmp_path: Path, key_file: Path, db: Path) -> None:
    flip(sidecar_path(db, MODEL), HEADER_BYTES + 3)


def truncated(tmp_path: Path, key_file: Path, db: Path) -> None:
    with open(sidecar_path(db, MODEL), "r+b") as f:
        f.truncate(sidecar_path(db, MODEL).stat().st_size - 16)


def a_plain_one(tmp_path: Path, key_file: Path, db: Path) -> None:
    """A plain sidecar (of a plain copy of the store) is not used with a key either."""
    sidecar_of_another_store(tmp_path / "plain", None, db)


@pytest.mark.parametrize(
    "damage",
    [
        another_stores,
        another_models,
        another_models_header,
        edited_stamp,
        a_flipped_code,
        a_flipped_nonce,
        truncated,
        a_plain_one,
    ],
)
def test_a_sealed_sidecar_of_another_key_model_or_stamp_or_damaged_is_refused_and_rebuilt(tmp_path, key_file, damage):
    db = tmp_path / "facer.db"
    fill(db, key_file)
    with open_index(db, key_file):
        pass
    damage(tmp_path, key_file, db)
    key = current_key(db, key_file)
    assert key is not None
    with open(sidecar_path(db, MODEL), "rb") as f:
        assert sidecar_problem(f.fileno(), MODEL, key) is not None
    with open_index(db, key_file) as index:
        assert index.rebuilds == 1 and len(index) == USERS and identifies_everyone(index)
    with open(sidecar_path(db, MODEL), "rb") as f:
        assert sidecar_problem(f.fileno(), MODEL, key) is None


def test_a_master_key_rotation_keeps_the_sidecar_and_identify(tmp_path, key_file):
    db = tmp_path / "facer.db"
    fill(db, key_file)
    with open_index(db, key_file):
        pass
    before = current_key(db, key_file)
    new = tmp_path / "keys" / "new.key"
    write_key_file(new)
    with open_store(settings_for(db, key_file)) as store:
        assert store.rekey(read_key_file(new)) == USERS
    after = current_key(db, new)
    assert before is not None and after is not None and after.fingerprint == before.fingerprint  # rewrapped
    assert query(db, "SELECT master FROM sidecar_keys") == (read_key_file(new).fingerprint,)
    with open_index(db, new) as index:
        assert index.rebuilds == 0 and identifies_everyone(index)
    assert current_key(db, key_file) is None  # the old master key opens no sidecar key ...
    with pytest.raises(StoreKeyError, match="another key"):  # ... nor any template
        open_index(db, key_file)


def test_decrypt_writes_the_sidecar_plain_again_and_encrypt_seals_it(tmp_path, key_file):
    db = tmp_path / "facer.db"
    fill(db, key_file)
    with open_index(db, key_file):
        pass
    with open_store(settings_for(db, key_file)) as store:
        store.convert_users(False)
    assert query(db, "SELECT count(*) FROM sidecar_keys") == (0,)
    assert not sidecar_path(db, MODEL).exists()
    with open_index(db, None) as index:
        assert index.rebuilds == 1 and identifies_everyone(index)
    with open(sidecar_path(db, MODEL), "rb") as f:
        assert read_header(f.fileno()) is not None and sidecar_problem(f.fileno(), MODEL) is None
    with open_store(settings_for(db, key_file)) as store:
        store.convert_users(True)
    assert not sidecar_path(db, MODEL).exists()  # the plain one erased
    key = current_key(db, key_file)
    assert key is not None
    with open_index(db, key_file) as index:
        assert index.rebuilds == 1 and identifies_everyone(index)
    with open(sidecar_path(db, MODEL), "rb") as f:
        assert read_header(f.fileno()) is None and sidecar_problem(f.fileno(), MODEL, key) is None


def test_with_no_sidecar_key_the_index_is_kept_in_memory_and_no_file_holds_a_code(tmp_path, key_file, monkeypatch):
    """A removal by a command given no key deletes the sidecar key and can make none: the index is
    then built in memory (no sidecar, no temporary file anywhere) until a write with the key makes
    a new one."""
    db = tmp_path / "data" / "facer.db"
    fill(db, key_file)
    with open_store(settings_for(db, None)) as store:
        store.remove("user03")
    made = no_temporary_files(monkeypatch)
    assert current_key(db, key_file) is None
    with open_index(db, key_file) as index:
        assert not index.persistent and identifies_everyone(index, {3})
        assert sorted(p.name for p in db.parent.iterdir() if "gallery" in p.name) == []
        assert made == []
    with open_store(settings_for(db, key_file)) as store:
        store.import_vector("user03", unit(4), model=MODEL, source="test")  # a sealed write: a new key
    with open_index(db, key_file) as index:
        assert index.persistent and identifies_everyone(index)
    assert sidecar_path(db, MODEL).exists() and made == []


def test_a_full_disk_keeps_the_sealed_index_in_memory(tmp_path, key_file, monkeypatch, caplog):
    db = tmp_path / "facer.db"
    fill(db, key_file)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sidecar_module.os, "posix_fallocate", no_space)
    caplog.set_level(logging.WARNING, logger="facer.gallery")
    with open_index(db, key_file) as index:
        assert not index.persistent and index.in_memory and "kept in memory" in index.in_memory
        assert identifies_everyone(index)
    assert "No space left on device" in caplog.records[0].message
    assert sorted(p.name for p in tmp_path.iterdir() if "gallery" in p.name) == []


def test_a_stale_sealed_sidecar_catches_up_and_a_killed_writers_temporary_is_removed(tmp_path, key_file):
    db = tmp_path / "facer.db"
    fill(db, key_file)
    with open_index(db, key_file):
        pass
    target = sidecar_path(db, MODEL)
    left = tmp_path / f".{target.name}.999999999.abcd.tmp"  # a writer that is gone
    left.write_bytes(b"\0" * 4096)
    with open_store(settings_for(db, key_file)) as store:
        store.import_vector("late", unit(1234), model=MODEL, source="test")
    with open_index(db, key_file) as index:
        assert index.rebuilds == 0 and index.catch_ups == 1  # the sealed sidecar, then the new template
        assert index.search(unit(1234), top_k=1)[0].name == "late" and identifies_everyone(index)
    assert not left.exists()


def test_the_sidecar_key_is_kept_on_both_backends(backend, tmp_path, key_file, request, monkeypatch):
    """PostgreSQL keeps no sidecar, but its store keeps the key as SQLite's does: made with the first
    sealed write, replaced by a removal, rewrapped by rekey, dropped by decrypt. With a key, its
    index is kept in memory, not in an unnamed temporary file (which would hold the codes)."""
    db = request.getfixturevalue("postgres_url") if backend == "postgresql" else str(tmp_path / "facer.db")

    def row() -> tuple[bytes, str] | None:
        with open_store(settings_for(db, None), "read") as store:
            found = store.conn.execute("SELECT wrapped, master FROM sidecar_keys").fetchall()
            if backend == "postgresql":
                store.conn.commit()
        assert len(found) <= 1
        return (bytes(found[0][0]), found[0][1]) if found else None

    with open_store(settings_for(db, key_file)) as store:
        assert row() is None
        store.import_vector("alice", unit(1), model=MODEL, source="test")
        store.import_vector("bob", unit(2), model=MODEL, source="test")
    first = row()
    assert first is not None and first[1] == read_key_file(key_file).fingerprint
    with open_store(settings_for(db, key_file)) as store:
        store.remove("alice")
    second = row()
    assert second is not None and second[0] != first[0]
    new = tmp_path / "keys" / "new.key"
    write_key_file(new)
    with open_store(settings_for(db, key_file)) as store:
        store.rekey(read_key_file(new))
    third = row()
    assert third is not None and third[1] == read_key_file(new).fingerprint
    with open_store(settings_for(db, new), "read") as store:
        source = store.gallery_source()
        try:
            with source.read_transaction():
                assert source.encrypted
                assert source.sidecar_path(MODEL) is None or source.sidecar_key() is not None
        finally:
            source.close()
        made = no_temporary_files(monkeypatch)
        with GalleryIndex.open(store.gallery_source(), MODEL) as index:
            assert index.search(unit(2), top_k=1)[0].name == "bob"
            assert made == [] and index.persistent is (backend == "sqlite")
    with open_store(settings_for(db, new)) as store:
        store.convert_users(False)
    assert row() is None


def test_the_sealed_image_is_decrypted_into_memory_not_a_file(tmp_path, key_file):
    """`open_sealed` gives an anonymous map: no plain file is made or mapped to read a sealed sidecar."""
    db = tmp_path / "facer.db"
    fill(db, key_file)
    with open_index(db, key_file):
        pass
    key = current_key(db, key_file)
    assert key is not None
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with open(sidecar_path(db, MODEL), "rb") as f:
        opened = open_sealed(f.fileno(), MODEL, key)
    assert not isinstance(opened, str)
    image, header = opened
    try:
        assert header["rows"] == USERS and image[: len(MAGIC)] == MAGIC
        assert quantise_rows(vectors()).codes.T.tobytes() in image[:]
    finally:
        image.close()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before



@pytest.mark.slow
def test_two_removals_at_once_on_postgresql_each_leave_a_key_made_by_themselves(postgres_url, key_file):
    """Two removals in flight on two connections: the second to commit replaces the key the first
    made (a delete-then-insert would keep the first's, which a sidecar written between the two
    commits, holding the second's person, may be sealed with)."""
    import threading

    fill(postgres_url, key_file)
    first, second = open_store(settings_for(postgres_url, key_file)), open_store(settings_for(postgres_url, key_file))
    try:
        started, done = threading.Event(), threading.Event()

        def remove_second() -> None:
            with second.transaction("remove") as conn:
                started.set()
                second.vault.rotate_sidecar_key(conn)  # waits for the first's row
            done.set()

        with first.transaction("remove") as conn:
            first.vault.rotate_sidecar_key(conn)
            (firsts,) = conn.execute("SELECT wrapped FROM sidecar_keys WHERE id = 1").fetchone()
            thread = threading.Thread(target=remove_second)
            thread.start()
            assert started.wait(10) and not done.wait(0.5)  # blocked on the first's new key
        thread.join(20)
        assert done.is_set()
        with first.transaction("read") as conn:
            rows = conn.execute("SELECT wrapped FROM sidecar_keys").fetchall()
            assert first.vault.sidecar_key(conn) is not None  # and it opens with the master key
        assert len(rows) == 1 and bytes(rows[0][0]) != bytes(firsts)
    finally:
        first.close()
        second.close()
