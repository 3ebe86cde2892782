"""Templates encrypted at rest (`facer_cli.store.crypto`, `facer_cli.store.vault`; docs/security.md).

The raw bytes of the store — SQLite's file, its WAL and the identify sidecar; PostgreSQL's table
files, WAL and a `pg_dump` — hold no float32 bytes and no int8 codes of an enrolled template when a
master key is set, and do hold them without one (so the search can fail). Ciphertexts swapped between
rows or moved to another user fail with one clear error; a wrong or missing key is one line (exit 6)
and writes nothing; a removal deletes the user's data key, so their rows taken from a copy made before
cannot be opened against the store's keys; encrypt, decrypt and rekey work in place and resume."""

from __future__ import annotations

import base64
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from helpers import run as run_plain
from helpers import run_json as run_json_plain

from facer_cli.errors import CopyStoreError, StoreKeyError
from facer_cli.gallery.index import GalleryIndex
from facer_cli.gallery.quantise import quantise_rows
from facer_cli.service.store_copy import copy_store
from facer_cli.settings import Settings
from facer_cli.store.contract import open_store
from facer_cli.store.crypto import fingerprint, master_key, read_key_file, write_key_file
from facer_cli.store.vault import Vault

MODEL = "bundled:0123456789abcdef"


def _with_env(env: dict | None, call, *args):
    saved = {name: os.environ.get(name) for name in env or {}}
    os.environ.update(env or {})
    try:
        return call(*args)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run(*args, env: dict | None = None):
    """`facer ARGS…` with these environment variables set meanwhile."""
    return _with_env(env, run_plain, *args)


def run_json(*args, env: dict | None = None):
    return _with_env(env, run_json_plain, *args)


def unit(seed: int, dim: int = 512) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def sample(position: int, vector: np.ndarray | None) -> dict:
    return {
        "position": position,
        "source": f"frame{position}.jpg",
        "embedding": None if vector is None else vector.astype("<f4").tobytes(),
        "det_score": 0.9,
        "quality": 0.8,
        "yaw": 1.0,
        "pitch": 2.0,
        "roll": 0.5,
        "sharpness": 100.0,
        "decision": "kept" if vector is not None else "rejected",
        "reason": None,
    }


def enroll(store, name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A template and two kept frames' embeddings (and one rejected frame): (template, a frame's)."""
    template, frame = unit(seed), unit(seed + 1000)
    store._save(
        name,
        template,
        model=MODEL,
        source="images: a.jpg",
        mode="new",
        samples=[sample(0, frame), sample(1, unit(seed + 2000)), sample(2, None)],
        frames_seen=3,
        frames_used=2,
        outliers=0,
        mean_quality=0.8,
        model_verified=True,
    )
    return template, frame


def settings_for(db: str, key: Path | None) -> Settings:
    return Settings(db=db, key_file=None if key is None else str(key))


def db_for(backend: str, tmp_path: Path, request) -> str:
    if backend == "postgresql":
        return request.getfixturevalue("postgres_url")
    return str(tmp_path / "data" / "facer.db")


def raw_bytes(db: str, request) -> bytes:
    """Everything an attacker with the disk or a dump gets: SQLite's file, WAL and sidecars; or
    PostgreSQL's data folder (table files and WAL) and a plain `pg_dump` of the database."""
    if not db.startswith("postgresql://"):
        folder = Path(db).parent
        return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())
    cluster = request.getfixturevalue("postgres_server")
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CHECKPOINT")  # the rows in the table files as well as the WAL
    name = db.rsplit("/", 1)[1]
    dumped = cluster._run("pg_dump", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "facer", "-d", name)
    files = b"".join(
        p.read_bytes() for p in sorted(cluster.data.rglob("*")) if p.is_file() and p.parts[-2] != "pg_stat_tmp"
    )
    return files + dumped.stdout.encode()


def found(raw: bytes, value: bytes) -> bool:
    """The value's bytes, or their hex as a plain dump spells a bytea."""
    return value in raw or value.hex().encode() in raw


@pytest.mark.slow
@pytest.mark.parametrize("encrypted", [True, False], ids=["key", "no-key"])
def test_no_template_bytes_or_codes_at_rest_with_a_key_and_all_of_them_without(
    backend, encrypted, tmp_path, key_file, request
):
    db = db_for(backend, tmp_path, request)
    settings = settings_for(db, key_file if encrypted else None)
    with open_store(settings) as store:
        enrolled = [enroll(store, name, seed) for seed, name in enumerate(("alice", "bob", "carol"), 1)]
        with GalleryIndex.open(store.gallery_source(), MODEL) as index:  # the identify index (and sidecar)
            best = index.search(enrolled[1][0], top_k=1)[0]
        assert best.name == "bob" and best.similarity == pytest.approx(1.0)
        assert np.array_equal(store.templates("alice")[0].vector, enrolled[0][0])
        samples = store.samples(store.templates("carol")[0].id)
        assert np.array_equal(samples[0]["embedding"], enrolled[2][1]) and samples[2]["embedding"] is None
        assert store.check() == "ok"  # sealed values are not damage
    raw = raw_bytes(db, request)
    codes = quantise_rows(np.stack([t for t, _ in enrolled])).codes
    for template, frame in enrolled:
        # a run of 64 bytes is enough to say the value is there (the whole vector too, checked below)
        assert found(raw, template.astype("<f4").tobytes()) is not encrypted
        assert found(raw, frame.astype("<f4").tobytes()[128:192]) is not encrypted
    if backend == "sqlite":
        (sidecar,) = Path(db).parent.glob("*.gallery-*.bin")  # written with a key too: sealed
        # the sidecar keeps the codes dimension-major (`facer_cli.gallery.sidecar.Layout`)
        assert (np.ascontiguousarray(codes.T).tobytes() in raw) is not encrypted
        assert (codes.T.tobytes() in sidecar.read_bytes()) is not encrypted


def test_swapped_or_moved_ciphertexts_are_one_clear_error_never_a_wrong_vector(backend, tmp_path, key_file, request):
    db = db_for(backend, tmp_path, request)
    with open_store(settings_for(db, key_file)) as store:
        enroll(store, "alice", 1)
        enroll(store, "bob", 2)
        enroll(store, "carol", 3)
        a, b = store.templates("alice")[0].id, store.templates("bob")[0].id
        mark = "?" if backend == "sqlite" else "%s"
        conn = store.conn
        va = conn.execute(f"SELECT vector FROM templates WHERE id = {mark}", (a,)).fetchone()[0]
        vb = conn.execute(f"SELECT vector FROM templates WHERE id = {mark}", (b,)).fetchone()[0]
        conn.execute(f"UPDATE templates SET vector = {mark} WHERE id = {mark}", (vb, a))
        conn.execute(f"UPDATE templates SET vector = {mark} WHERE id = {mark}", (va, b))
        conn.commit()
        for user in ("alice", "bob"):
            with pytest.raises(StoreKeyError) as raised:
                store.templates(user)
            assert "does not decrypt where it is" in str(raised.value) and "\n" not in str(raised.value)
        # carol's template moved to alice (its ciphertext kept): refused too
        c = store.templates("carol")[0].id
        alice_id = conn.execute(f"SELECT id FROM users WHERE name = {mark}", ("alice",)).fetchone()[0]
        conn.execute(f"UPDATE templates SET user_id = {mark} WHERE id = {mark}", (alice_id, c))
        conn.commit()
        with pytest.raises(StoreKeyError, match="does not decrypt where it is"):
            store.templates("alice")
    with open_store(settings_for(db, key_file), "read") as store:
        with pytest.raises(StoreKeyError), GalleryIndex.open(store.gallery_source(), MODEL) as index:
            index.search(unit(1), top_k=1)


def test_a_wrong_or_missing_key_is_one_line_and_writes_nothing(backend, tmp_path, key_file, request):
    db = db_for(backend, tmp_path, request)
    with open_store(settings_for(db, key_file)) as store:
        enroll(store, "alice", 1)
    other = tmp_path / "keys" / "other.key"
    write_key_file(other)
    for key in (other, None):
        with open_store(settings_for(db, key)) as store:
            assert store.count() == 1 and [u.name for u in store.list()] == ["alice"]  # names are not secret
            with pytest.raises(StoreKeyError) as raised:
                store.templates("alice")
            said = str(raised.value)
            assert "\n" not in said and ("another key" in said or "no key is given" in said)
            with pytest.raises(StoreKeyError):
                store.import_vector("bob", unit(5), model=MODEL, source="bob.npy")
            with pytest.raises(StoreKeyError):
                store.import_vector("alice", unit(6), model=MODEL, source="a.npy", mode="add")
            assert store.count() == 1 and len(store.templates("alice", with_vectors=False)) == 1
    if backend == "sqlite":
        wrong = run(
            "users", "export", "alice", "--out", str(tmp_path / "a.npy"), "--db", db, env={"FACER_KEY_FILE": str(other)}
        )
        assert wrong.exit_code == 6 and "another key" in wrong.output and len(wrong.output.strip().splitlines()) == 1
        assert not (tmp_path / "a.npy").exists()


def test_key_files_must_be_private_and_the_environment_key_is_base64(tmp_path, monkeypatch):
    path = tmp_path / "k"
    path.write_bytes(base64.b64encode(os.urandom(32)))
    path.chmod(0o644)
    with pytest.raises(StoreKeyError, match="readable by others"):
        read_key_file(path)
    path.chmod(0o600)
    assert len(read_key_file(path).key) == 32
    path.write_bytes(b"too short")
    with pytest.raises(StoreKeyError, match="is not a key"):
        read_key_file(path)
    with pytest.raises(StoreKeyError, match="does not exist"):
        read_key_file(tmp_path / "missing")
    key = os.urandom(32)
    monkeypatch.setenv("FACER_KEY", base64.b64encode(key).decode())
    found_key = master_key(Settings(key_file=str(tmp_path / "missing")))  # FACER_KEY wins
    assert found_key is not None and found_key.key == key and found_key.fingerprint == fingerprint(key)
    assert key.hex() not in repr(found_key)
    monkeypatch.setenv("FACER_KEY", "not base64!")
    with pytest.raises(StoreKeyError, match="FACER_KEY is not a key"):
        master_key(Settings())


def test_removal_shreds_the_user_in_every_copy_that_lacks_their_data_key(tmp_path, key_file):
    """What crypto-shredding guarantees: a sealed row opens only with its user's data key. After a
    removal the store holds no such key, so the removed user's rows — taken from a copy made before
    (a backup, the WAL, dead row versions) and put back into the store — cannot be decrypted. A copy
    that also kept the wrapped key opens with the master key until that key is rotated (rekey) and
    destroyed: then no copy made before the removal opens."""
    db = tmp_path / "data" / "facer.db"
    settings = settings_for(str(db), key_file)
    with open_store(settings) as store:
        enroll(store, "alice", 1)
        enroll(store, "bob", 2)
    backup = tmp_path / "backup.db"
    shutil.copy(db, backup)  # a backup taken before the removal (the store was checkpointed on close)
    with open_store(settings) as store:
        assert store.remove("alice").templates == 1
    # alice's rows from the backup, put back into the store (ids as they were: bound to them)
    old = sqlite3.connect(backup)
    user = old.execute("SELECT id, name, created, updated FROM users WHERE name = 'alice'").fetchone()
    rows = old.execute("SELECT * FROM templates WHERE user_id = ?", (user[0],)).fetchall()
    frames = old.execute(
        "SELECT * FROM samples WHERE template_id IN (SELECT id FROM templates WHERE user_id = ?)", (user[0],)
    ).fetchall()
    old.close()
    now_db = sqlite3.connect(db)
    now_db.execute("INSERT INTO users (id, name, created, updated) VALUES (?, ?, ?, ?)", user)
    now_db.executemany(f"INSERT INTO templates VALUES ({', '.join('?' * len(rows[0]))})", rows)
    now_db.executemany(f"INSERT INTO samples VALUES ({', '.join('?' * len(frames[0]))})", frames)
    now_db.commit()
    now_db.close()
    with open_store(settings) as store:
        with pytest.raises(StoreKeyError, match="has no data key"):
            store.templates("alice")
        with pytest.raises(StoreKeyError):
            store.samples(rows[0][0])
        assert np.array_equal(store.templates("bob")[0].vector, unit(2))
    # The backup itself still holds alice's wrapped key: it opens with the master key ...
    with open_store(settings_for(str(backup), key_file), "read") as copy:
        assert np.array_equal(copy.templates("alice")[0].vector, unit(1))
    # ... until the key is rotated on the store and the old one destroyed.
    new = tmp_path / "keys" / "new.key"
    write_key_file(new)
    with open_store(settings) as store:
        assert store.rekey(read_key_file(new)) == 1
    key_file.unlink()
    with open_store(settings_for(str(backup), new), "read") as copy:
        with pytest.raises(StoreKeyError, match="another key"):
            copy.templates("alice")
    with open_store(settings_for(str(db), new)) as store:
        assert np.array_equal(store.templates("bob")[0].vector, unit(2))


def test_postgres_rows_kept_from_before_a_removal_do_not_decrypt_after_it(tmp_path, key_file, postgres_url):
    """As the SQLite test: the removed user's rows as a backup or the WAL kept them (read before the
    removal), written back into the database after it, find no data key there."""
    with open_store(settings_for(postgres_url, key_file)) as store:
        enroll(store, "alice", 1)
        enroll(store, "bob", 2)
        conn = store.conn
        user = conn.execute("SELECT id, name, created, updated FROM users WHERE name = 'alice'").fetchone()
        rows = conn.execute("SELECT * FROM templates WHERE user_id = %s", (user[0],)).fetchall()
        frames = conn.execute(
            "SELECT * FROM samples WHERE template_id IN (SELECT id FROM templates WHERE user_id = %s)", (user[0],)
        ).fetchall()
        conn.commit()
        store.remove("alice")
        conn.execute(
            "INSERT INTO users (id, name, created, updated) OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s, %s)", user
        )
        for table, values in (("templates", rows), ("samples", frames)):
            for row in values:
                marks = ", ".join(["%s"] * len(row))
                conn.execute(f"INSERT INTO {table} OVERRIDING SYSTEM VALUE VALUES ({marks})", row)
        conn.commit()
        with pytest.raises(StoreKeyError, match="has no data key"):
            store.templates("alice")
        with pytest.raises(StoreKeyError):
            store.samples(rows[0][0])
        assert np.array_equal(store.templates("bob")[0].vector, unit(2))


def test_postgres_removal_deletes_the_data_key_and_vacuums_it(tmp_path, key_file, postgres_url):
    with open_store(settings_for(postgres_url, key_file)) as store:
        enroll(store, "alice", 1)
        enroll(store, "bob", 2)
        alice = store.conn.execute("SELECT id FROM users WHERE name = 'alice'").fetchone()[0]
        wrapped = store.conn.execute("SELECT wrapped FROM data_keys WHERE user_id = %s", (alice,)).fetchone()[0]
        store.conn.commit()
        removal = store.remove("alice")
        assert store.conn.execute("SELECT count(*) FROM data_keys").fetchone()[0] == 1
        store.conn.commit()
    assert not removal.erasure_pending, removal.erasure_note
    assert len(bytes(wrapped)) == 40


@pytest.mark.slow
def test_a_partly_encrypted_store_reads_is_reported_and_encrypt_resumes(
    backend, tmp_path, key_file, request, monkeypatch
):
    monkeypatch.setattr(Vault, "users_per_commit", 1)  # each user a commit of their own
    db = db_for(backend, tmp_path, request)
    with open_store(settings_for(db, None)) as store:  # enrolled in the clear
        plain = {name: enroll(store, name, seed) for seed, name in enumerate(("alice", "bob", "carol"), 1)}
    with open_store(settings_for(db, key_file)) as store:
        calls: list[str] = []

        def stop_after_one(name: str, count: int) -> None:
            calls.append(name)
            raise KeyboardInterrupt  # interrupted after the first user committed

        with pytest.raises(KeyboardInterrupt):
            store.convert_users(True, on_user=stop_after_one)
        state = store.encryption()
        assert state["templates_encrypted"] == 1 and state["templates_plain"] == 2
        for name, (template, frame) in plain.items():  # every row reads
            assert np.array_equal(store.templates(name)[0].vector, template)
            assert np.array_equal(store.samples(store.templates(name)[0].id)[0]["embedding"], frame)
        with open_store(settings_for(db, key_file), "read") as reader:
            with GalleryIndex.open(reader.gallery_source(), MODEL) as index:
                assert index.search(plain["carol"][0], top_k=1)[0].name == "carol"
    if backend == "sqlite":
        checked = run("users", "check", "--db", db, env={"FACER_KEY_FILE": str(key_file)})
        assert checked.exit_code == 0 and "partly encrypted" in checked.stdout, checked.output
        done, data = run_json("store", "encrypt", "--db", db, env={"FACER_KEY_FILE": str(key_file)})
        assert data["encryption"]["templates_plain"] == 0 and data["encryption"]["samples_plain"] == 0
        assert data["rewritten"] == 2 * 3  # two users left: a template and two embeddings each
    else:
        with open_store(settings_for(db, key_file)) as store:
            assert store.convert_users(True) == 2 * 3
    with open_store(settings_for(db, key_file)) as store:
        assert store.convert_users(True) == 0  # nothing left: a second run rewrites nothing
        state = store.encryption()
        assert state["templates_plain"] == 0 and state["users_with_keys"] == 3
        for name, (template, _) in plain.items():
            assert np.array_equal(store.templates(name)[0].vector, template)
    assert not found(raw_bytes(db, request), plain["bob"][0].astype("<f4").tobytes()) or backend == "postgresql"
    # decrypt: back in the clear, no data key left
    with open_store(settings_for(db, key_file)) as store:
        assert store.convert_users(False) == 3 * 3
        state = store.encryption()
        assert state["templates_encrypted"] == 0 and state["samples_encrypted"] == 0 and state["users_with_keys"] == 0
    with open_store(settings_for(db, None)) as store:
        assert np.array_equal(store.templates("alice")[0].vector, plain["alice"][0])


def test_rekey_rewraps_the_data_keys_without_touching_a_template(backend, tmp_path, key_file, request):
    db = db_for(backend, tmp_path, request)
    with open_store(settings_for(db, key_file)) as store:
        template, _ = enroll(store, "alice", 1)
        before = bytes(store.conn.execute("SELECT vector FROM templates").fetchone()[0])
        if backend == "postgresql":
            store.conn.commit()
    new = tmp_path / "keys" / "new.key"
    write_key_file(new)
    if backend == "sqlite":
        done = run("store", "rekey", "--new-key-file", str(new), "--db", db, env={"FACER_KEY_FILE": str(key_file)})
        assert done.exit_code == 0, done.output
        assert read_key_file(new).fingerprint in done.stdout
    else:
        with open_store(settings_for(db, key_file)) as store:
            assert store.rekey(read_key_file(new)) == 1
    with open_store(settings_for(db, new)) as store:
        assert np.array_equal(store.templates("alice")[0].vector, template)
        assert bytes(store.conn.execute("SELECT vector FROM templates").fetchone()[0]) == before
        store.import_vector("bob", unit(9), model=MODEL, source="bob.npy")
    with open_store(settings_for(db, key_file)) as store, pytest.raises(StoreKeyError, match="another key"):
        store.templates("alice")


def test_a_copy_decrypts_with_the_key_and_seals_into_an_encrypted_destination(tmp_path, key_file, request):
    src, dst, plain_dst = (str(tmp_path / name / "facer.db") for name in ("src", "dst", "plain"))
    with open_store(settings_for(src, None)) as store:
        alice, _ = enroll(store, "alice", 1)
    result = copy_store(src, dst, settings_for(src, key_file))  # plain SRC -> DST sealed with the key
    assert result.verified
    with open_store(settings_for(dst, key_file)) as store:
        assert store.encryption()["templates_plain"] == 0
        assert np.array_equal(store.templates("alice")[0].vector, alice)
        assert np.array_equal(store.samples(store.templates("alice")[0].id)[0]["embedding"], unit(1001))
    assert not found(Path(dst).read_bytes(), alice.astype("<f4").tobytes())
    # an encrypted SRC without the key: one clear line, nothing made in DST
    with pytest.raises(CopyStoreError, match="no key is given"):
        copy_store(dst, plain_dst, settings_for(dst, None))
    with open_store(settings_for(plain_dst, None)) as store:
        assert store.count() == 0


def test_doctor_config_and_ready_show_the_fingerprint_never_the_key(tmp_path, key_file):
    key = read_key_file(key_file)
    shown, data = run_json("config", "show", env={"FACER_KEY_FILE": str(key_file)})
    assert data["encryption"] == {"enabled": True, "key_fingerprint": key.fingerprint}
    text = run("config", "show", env={"FACER_KEY_FILE": str(key_file)})
    assert f"encryption at rest: on (key {key.fingerprint})" in text.stdout
    for output in (shown.output, text.output):
        assert key.key.hex() not in output and base64.b64encode(key.key).decode() not in output
    off = run("config", "show")
    assert "encryption at rest: off" in off.stdout
    key_file.chmod(0o640)
    refused = run("config", "show", env={"FACER_KEY_FILE": str(key_file)})
    assert "readable by others" in refused.stdout


def test_ready_shows_the_fingerprint_and_a_wrong_key_is_503(client_for, fake_engine, tmp_path, key_file):
    key = read_key_file(key_file)
    client = client_for(key_file=str(key_file))
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["encryption"] == {"enabled": True, "key_fingerprint": key.fingerprint}
    assert key.key.hex() not in ready.text and str(key_file) not in ready.text
    with open_store(settings_for(str(tmp_path / "facer.db"), key_file)) as store:
        enroll(store, "alice", 1)
    other = tmp_path / "keys" / "other.key"
    write_key_file(other)
    wrong = client_for(key_file=str(other))
    refused = wrong.get("/ready")
    assert refused.status_code == 503 and "another key" in refused.json()["reason"], refused.text
    assert wrong.get("/health").status_code == 200
