"""Names that look the same are one name: the canonical key (NFKC, case-folded, TR39 skeleton) is unique
on both backends; a name that looks like an enrolled one is refused with the name it looks like; stores
from before keep both users of a colliding pair, and `users check` names them."""

from __future__ import annotations

import json
import sqlite3
import unicodedata

import numpy as np
import pytest
from helpers import run

from facer_cli.errors import UnknownUserError, UserExistsError, UserNameError
from facer_cli.settings import Settings
from facer_cli.store import validate_user_name
from facer_cli.store.contract import open_store
from facer_cli.store.names import name_key

MODEL = "test:model"
LOOKALIKES = ["Alice", "ALICE", "\uff21\uff4c\uff49\uff43\uff45", "\u0430lice"]  # fullwidth; Cyrillic а


def vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(512).astype(np.float32)
    return v / np.linalg.norm(v)


def enroll(store, name: str, seed: int = 0):
    return store.import_vector(name, vector(seed), model=MODEL, source="test")


# -- the rules -------------------------------------------------------------------------
@pytest.mark.parametrize("other", LOOKALIKES + ["al\u0456ce"])  # Ukrainian і
def test_names_that_look_like_alice_share_her_key(other):
    assert name_key(other) == name_key("alice")


@pytest.mark.parametrize(
    "pair", [("Bob", "\u0412ob"), ("kim", "kirn"), ("B0B", "BOB"), ("\u2764\ufe0f fan", "\u2764 fan")]
)
def test_capitals_of_other_scripts_digits_and_variation_selectors(pair):
    assert name_key(pair[0]) == name_key(pair[1])


@pytest.mark.parametrize("pair", [("Zo\u00eb", "Zoe"), ("ilya", "llya"), ("alice", "alicia"), ("李小龍", "李小龙")])
def test_names_that_look_different_keep_different_keys(pair):
    assert name_key(pair[0]) != name_key(pair[1])


@pytest.mark.parametrize("name", ["\u2800", " \u2800 ", "\u0301", "\ufe0f", "  \u0301\u0302  "])
def test_names_that_render_blank_are_refused(name):
    with pytest.raises(UserNameError, match="renders blank|invisible character|empty"):
        validate_user_name(name)


def test_a_letter_with_a_pile_of_combining_marks_is_refused():
    with pytest.raises(UserNameError, match="more than 3 combining marks on one letter"):
        validate_user_name("a" + "\u0301" * 127)
    with pytest.raises(UserNameError, match="starts with a combining mark"):
        validate_user_name("\u0301alice")


@pytest.mark.parametrize(
    "name",
    [
        "Nguy\u1ec5n Th\u1ecb \u00c1nh",
        "\u05d9\u05b4\u05e9\u05bc\u05c1\u05b7\u05d9",
        "\u0f56\u0f66\u0f92\u0fb2\u0f74\u0f56\u0f66",
        "Zo\u00eb \u00d8deg\u00e5rd",
    ],
)
def test_real_names_with_marks_are_accepted(name):  # Vietnamese, pointed Hebrew (Yishai), Tibetan
    assert validate_user_name(name) == unicodedata.normalize("NFC", name)


# -- the store, on both backends ---------------------------------------------------------
def test_a_lookalike_of_an_enrolled_name_is_refused_with_that_name(backend_store):
    enroll(backend_store, "alice")
    for seed, other in enumerate(LOOKALIKES, 1):
        for mode in ("new", "add", "replace"):
            with pytest.raises(UserExistsError, match="looks like the enrolled user 'alice'"):
                backend_store.import_vector(other, vector(seed), model=MODEL, source="test", mode=mode)
    assert [u.name for u in backend_store.list()] == ["alice"]
    assert backend_store.enrolled_name("ALICE") == "alice" and backend_store.enrolled_name("alice") == "alice"
    assert backend_store.enrolled_name("bob") is None


def test_rename_to_a_lookalike_is_refused_and_a_change_of_case_is_not(backend_store):
    enroll(backend_store, "alice")
    enroll(backend_store, "bob", 1)
    with pytest.raises(UserExistsError, match="looks like the enrolled user 'alice'"):
        backend_store.rename("bob", "\u0430lice")
    assert backend_store.rename("alice", "Alice").name == "Alice"  # her own name, spelt anew
    assert backend_store.rename("bob", "alicia").name == "alicia"
    with pytest.raises(UserExistsError, match="looks like the enrolled user 'Alice'"):
        enroll(backend_store, "alice", 2)


def test_a_lookup_by_a_lookalike_says_which_name_was_meant(backend_store):
    enroll(backend_store, "Zo\u00eb \u00d8deg\u00e5rd")
    assert backend_store.list()[0].name == "Zo\u00eb \u00d8deg\u00e5rd"  # as typed
    for lookup in (backend_store.show, backend_store.templates, backend_store.remove):
        with pytest.raises(UnknownUserError, match="the enrolled user 'Zoë Ødegård' has a name that looks the same"):
            lookup("ZO\u00cb \u00d8DEG\u00c5RD")
    with pytest.raises(UnknownUserError, match="no user named 'nobody'$"):
        backend_store.show("nobody")


def test_the_key_column_has_a_unique_index(backend_store):
    enroll(backend_store, "alice")
    if backend_store.backend == "sqlite":
        with pytest.raises(sqlite3.IntegrityError):
            backend_store.conn.execute(
                "INSERT INTO users (name, name_key, created, updated) VALUES ('x', ?, '', '')", (name_key("alice"),)
            )
    else:
        import psycopg

        with pytest.raises(psycopg.errors.UniqueViolation):
            backend_store.conn.execute(
                "INSERT INTO users (name, name_key, created, updated) VALUES ('x', %s, '', '')", (name_key("alice"),)
            )


def _as_before_name_keys(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store as an earlier facer made it, before names had keys, holding what that facer could
    write: "alice", then "Alice" and "\u0430lice" (look-alikes), and "bob"."""
    names = ("alice", "Alice", "\u0430lice", "bob")
    if db.startswith("postgresql"):
        import psycopg

        from facer_cli.store.postgres import connection as pg_connection
        from facer_cli.store.postgres.migrations import STEP_NAMES, STEPS

        with monkeypatch.context() as patched:  # the steps before this one only
            patched.setattr(pg_connection, "STEPS", STEPS[: STEP_NAMES.index("m003_user_name_keys")])
            with open_store(Settings(db=db)):
                pass
        with psycopg.connect(db, autocommit=True) as conn:
            for name in names:
                conn.execute("INSERT INTO users (name, created, updated) VALUES (%s, 'then', 'then')", (name,))
        return
    with open_store(Settings(db=db)):
        pass
    conn = sqlite3.connect(db)
    conn.execute("DROP INDEX users_name_key_unique")
    conn.execute("ALTER TABLE users DROP COLUMN name_key")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm007_user_name_keys'")
    for name in names:
        conn.execute("INSERT INTO users (name, created, updated) VALUES (?, 'then', 'then')", (name,))
    conn.commit()
    conn.close()


def test_a_store_from_before_keeps_colliding_users_and_check_names_them(backend_db, monkeypatch):
    settings = Settings(db=backend_db)
    _as_before_name_keys(backend_db, monkeypatch)
    with open_store(settings, "write") as store:  # the step runs here, and must not fail
        assert sorted(u.name for u in store.list()) == sorted(["alice", "Alice", "\u0430lice", "bob"])
        assert store.name_collisions() == [("Alice", "alice"), ("\u0430lice", "alice")]
        store.import_vector("Alice", vector(5), model=MODEL, source="test", mode="add")  # exact names find them
        with pytest.raises(UserExistsError, match="looks like the enrolled user 'alice'"):
            enroll(store, "ALICE")
        store.remove("alice")  # her key passes to the next of the pair
        assert store.name_collisions() == [("\u0430lice", "Alice")]
        with pytest.raises(UserExistsError, match="looks like the enrolled user 'Alice'"):
            enroll(store, "alice")
        store.rename("\u0430lice", "Alicia")
        assert store.name_collisions() == []


def test_users_check_reports_a_collision_in_text_and_json(tmp_path, monkeypatch):
    db = str(tmp_path / "facer.db")
    _as_before_name_keys(db, monkeypatch)
    with open_store(Settings(db=db), "write"):
        pass
    result = run("users", "check", "--db", db)
    assert result.exit_code == 0, result.output
    assert "'Alice' looks like the enrolled user 'alice'" in result.output and "rename one of them" in result.output
    document = json.loads(run("users", "check", "--db", db, "--json").output)
    assert document["name_collisions"] == [
        {"user": "Alice", "looks_like": "alice"},
        {"user": "\u0430lice", "looks_like": "alice"},
    ]


def test_cli_rename_to_a_lookalike_exits_7_with_the_name(tmp_path):
    db = str(tmp_path / "facer.db")
    with open_store(Settings(db=db)) as store:
        enroll(store, "alice")
        enroll(store, "bob", 1)
    result = run("users", "rename", "bob", "\u0430lice", "--db", db)
    assert result.exit_code == 7, result.output
    assert "looks like the enrolled user 'alice'" in result.output
    shown = run("users", "show", "ALICE", "--db", db)
    assert shown.exit_code == 5 and "'alice' has a name that looks the same" in shown.output


def test_http_enroll_of_a_lookalike_is_409_before_any_frame_is_read(client_for, bundled_images, fake_engine):
    client = client_for(min_valid_frames=1)
    photo = ("files", ("a.jpg", (bundled_images / "yaoming.jpg").read_bytes(), "image/jpeg"))
    assert client.post("/users/alice/enroll", files=[photo]).status_code == 201
    response = client.post("/users/%D0%B0lice/enroll", files=[photo])  # Cyrillic а
    assert response.status_code == 409, response.text
    assert "looks like the enrolled user 'alice'" in response.text
