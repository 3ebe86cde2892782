"""`PostgresStore`: the store contract on PostgreSQL — users, templates, samples, both audit logs,
look-alikes — with SQLite's behaviour, method for method (`facer_cli.store.repository.Store`).

Enrolling, importing and renaming take a transaction-level advisory lock on each user name they
decide on before they read it, so two sessions enrolling one name queue: the second sees the
first's row and fails with `UserExistsError` (the unique index on `users.name` is the backstop).
Serialization failures and deadlocks are retried (`PostgresConnection.write`).

A removal deletes the rows in one transaction, then runs `VACUUM` on the tables that held the
person's vectors and embeddings (outside any transaction). Where the database user may not vacuum
them, or another transaction still sees the old rows, the `Removal` says `erasure_pending` with
the reason. What is still left is said in docs/store.md: WAL and backups keep the bytes until they
rotate, and the freed space of the table files until it is reused.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any, Callable, List, Sequence  # List: `list` is a method name here

import numpy as np
import psycopg
from psycopg import errors as pg_errors

from facer_cli.errors import ApiKeyError, ModelMismatchError, StoreError, UnknownUserError, UserExistsError
from facer_cli.store.connection import Access
from facer_cli.store.crypto import MasterKey, Sealer, master_key
from facer_cli.store.names import lookalike_message, name_key
from facer_cli.store.postgres.bulk import PostgresRows
from facer_cli.store.postgres.gallery import PostgresGallerySource
from facer_cli.store.postgres.migrations import SIDECAR_KEYS_VERSION
from facer_cli.store.records import (
    MODES,
    ApiKey,
    Attempt,
    AttemptRecord,
    IdentifyRecord,
    Lookalike,
    Mode,
    Removal,
    StoredTemplate,
    UserDetails,
    UserSummary,
    blob_to_vector,
    now,
    unknown_user,
    validate_user_name,
    vector_to_blob,
)
from facer_cli.store.saving import TemplateSaving
from facer_cli.store.vault import Vault

if TYPE_CHECKING:
    from facer_cli.settings import Settings

# The tables a removal deletes vectors or embeddings from (their TOAST tables are vacuumed with them).
ERASED_TABLES = ("templates", "samples", "users", "lookalikes", "data_keys", "sidecar_keys")
SUMMARY = (
    "SELECT u.name, u.created, u.updated, count(t.id), coalesce(sum(t.frames_used), 0),"
    " array_agg(DISTINCT t.model) FILTER (WHERE t.model IS NOT NULL), max(t.created),"
    " (SELECT max(a.created) FROM attempts a WHERE a.user_id = u.id AND a.band <> 'face_changed'),"
    " array_agg(DISTINCT t.model) FILTER (WHERE t.model_unverified)"
    " FROM users u LEFT JOIN templates t ON t.user_id = u.id"
)
ATTEMPT_COLUMNS = (
    "id, user_name, created, similarity, band, source, frames_seen, frames_used, template_id, live, liveness_reason,"
    " key_name"
)


def name_lock(name: str) -> int:
    """The advisory lock key of a user name (64 bits of its SHA-256, signed as PostgreSQL's bigint)."""
    return int.from_bytes(hashlib.sha256(f"facer.user\0{name}".encode()).digest()[:8], "big", signed=True)


def enrollment_lock(model: str) -> int:
    """The advisory lock key of enrollments of a model (64 bits of SHA-256, as `name_lock`'s)."""
    return int.from_bytes(hashlib.sha256(f"facer.enroll\0{model}".encode()).digest()[:8], "big", signed=True)


class PostgresStore(PostgresRows, TemplateSaving):
    """A facer database on PostgreSQL: `PostgresStore("postgresql://facer@db/facer")`, or
    `Store.open(settings)` / `open_store(settings)` for a `db` setting that is such a URL."""

    @classmethod
    def open(cls, settings: "Settings", access: Access = "create") -> "PostgresStore":
        assert settings.db is not None
        master = master_key(settings)
        store = cls(settings.db, settings.db_busy_timeout_s, access=access)
        store.use_key(master)
        return store

    # -- encryption at rest (`facer_cli.store.crypto`, `facer_cli.store.vault`) --------------
    _master: MasterKey | None = None
    _vault: Vault | None = None

    def use_key(self, master: MasterKey | None) -> None:
        """Seal what this store writes with `master` (None: in the clear) and open what it reads."""
        self._master = master
        self._vault = None

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            self._vault = Vault(
                Sealer(self._master, self.location),
                "format",
                lambda: self.schema_version >= 5,
                lambda: self.schema_version >= SIDECAR_KEYS_VERSION,
            )
        return self._vault

    def encryption(self) -> dict[str, Any]:
        """As `Store.encryption`."""
        with self.reading("read its encryption") as conn:
            counts = self.vault.status(conn)
            store_keys = self.vault.store_keys(conn)
        return {
            "enabled": self.vault.enabled,
            "key_fingerprint": self.vault.sealer.fingerprint,
            "store_keys": store_keys,
            **counts,
        }

    def check_key(self) -> None:
        """As `Store.check_key`."""
        with self.reading("read its encryption") as conn:
            self.vault.check_key(conn)

    def convert_users(self, encrypt: bool, on_user: Callable[[str, int], None] | None = None) -> int:
        """As `Store.convert_users`: one transaction per user."""
        action = "encrypt templates" if encrypt else "decrypt templates"
        self.vault.sealer.require(action)

        def plan(conn: psycopg.Connection) -> list[tuple[int, str]]:
            self.vault.check_writable(conn, action)  # another key: refused before anything is written
            if encrypt:
                self.vault.ensure_sidecar_key(conn)
            return self.vault.users_to_encrypt(conn, sealed=not encrypt)

        users = self.write(action, plan)
        done = 0
        for start in range(0, len(users), self.vault.users_per_commit):
            chunk = users[start : start + self.vault.users_per_commit]

            def work(conn: psycopg.Connection, chunk: list[tuple[int, str]] = chunk) -> list[int]:
                self._lock_names(conn, *(name for _, name in chunk))
                return [self.vault.convert_user(conn, user_id, encrypt) for user_id, _ in chunk]

            counts = self.write(f"{action} of {chunk[0][1]!r}", work)  # each user whole, or not at all
            done += sum(counts)
            if on_user is not None:
                for (_, name), count in zip(chunk, counts, strict=True):
                    on_user(name, count)
        if not encrypt:

            def drop(conn: psycopg.Connection) -> None:
                conn.execute("DELETE FROM data_keys")
                self.vault.drop_sidecar_key(conn)

            self.write(action, drop)
        return done

    def rekey(self, new: MasterKey) -> int:
        """As `Store.rekey`."""
        self.vault.sealer.require("rekey it")

        def work(conn: psycopg.Connection) -> int:
            conn.execute("LOCK TABLE data_keys IN EXCLUSIVE MODE")
            self.vault.check_writable(conn, "rekey it")
            return self.vault.rekey(conn, new)

        count = self.write("rekey it", work)
        self.use_key(new)
        return count

    @staticmethod
    def _next_id(conn: psycopg.Connection, table: str) -> int:
        """An id for the next row of `table` (its identity's sequence): sealed values are bound to it
        before the row is written."""
        row = conn.execute(
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id'))"  # type: ignore[arg-type]  # constant names
        ).fetchone()
        assert row is not None
        return int(row[0])

    def __enter__(self) -> "PostgresStore":
        return self

    # -- the contract's description of itself ----------------------------------------
    @property
    def gallery_key(self) -> str:
        return self.location

    def gallery_source(self) -> PostgresGallerySource:
        return PostgresGallerySource(
            self.url,
            self.busy_timeout_s,
            master=self._master,
            connect_timeout_s=self.connect_timeout_s,
            statement_timeout_s=self.statement_timeout_s,
        )

    def describe(self) -> dict[str, Any]:
        """The backend, the server's version and the schema version."""
        conn = self._connection()
        return {
            "backend": self.backend,
            "db": self.location,
            "server_version": conn.info.parameter_status("server_version") or str(conn.info.server_version),
            "schema_version": self.schema_version,
            "schema_step": self.schema_step,
        }

    # -- helpers -------------------------------------------------------------------
    @staticmethod
    def _user_id(conn: psycopg.Connection, name: str) -> int | None:
        row = conn.execute("SELECT id FROM users WHERE name = %s", (name,)).fetchone()
        return None if row is None else int(row[0])

    def _require_user(self, conn: psycopg.Connection, name: str) -> int:
        user_id = self._user_id(conn, name)
        if user_id is None:
            self._unknown_user(conn, name)
        assert user_id is not None
        return user_id

    def _unknown_user(self, conn: psycopg.Connection, name: str) -> None:
        """`UnknownUserError` for `name`, naming the user whose name looks the same, if any."""
        holder = self._holder(conn, name)
        raise unknown_user(name, None if holder is None else holder[1])

    @staticmethod
    def _lock_names(conn: psycopg.Connection, *names: str) -> None:
        """The advisory locks of these names' canonical keys: two sessions deciding on names that look
        the same ("alice", "Alice") queue."""
        for key in sorted({name_lock(name_key(name)) for name in names}):
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))

    # -- names that look the same (`facer_cli.store.names`) ---------------------------
    @staticmethod
    def _holder(conn: psycopg.Connection, name: str) -> tuple[int, str] | None:
        """(id, name) of the user whose name looks like `name` (holds its canonical key), if any."""
        row = conn.execute("SELECT id, name FROM users WHERE name_key = %s", (name_key(name),)).fetchone()
        return None if row is None else (int(row[0]), row[1])

    @staticmethod
    def _claim_keys(conn: psycopg.Connection) -> None:
        """As `Store._claim_keys`: users without a key get theirs where no other user holds it now."""
        rows = conn.execute("SELECT id, name FROM users WHERE name_key IS NULL ORDER BY id").fetchall()
        for user_id, name in rows:
            key = name_key(name)
            if conn.execute("SELECT 1 FROM users WHERE name_key = %s", (key,)).fetchone() is None:
                conn.execute("UPDATE users SET name_key = %s WHERE id = %s", (key, user_id))

    def enrolled_name(self, user: str) -> str | None:
        """As `Store.enrolled_name`."""
        name = validate_user_name(user)
        with self.reading(f"read {name!r}") as conn:
            if self._user_id(conn, name) is not None:
                return name
            holder = self._holder(conn, name)
        return None if holder is None else holder[1]

    def name_collisions(self) -> List[tuple[str, str]]:
        """As `Store.name_collisions`."""
        found = []
        with self.reading("check names") as conn:
            for (name,) in conn.execute("SELECT name FROM users WHERE name_key IS NULL ORDER BY id").fetchall():
                holder = conn.execute("SELECT name FROM users WHERE name_key = %s", (name_key(name),)).fetchone()
                if holder is not None:
                    found.append((name, holder[0]))
        return found

    @staticmethod
    def _template_columns(vectors: bool) -> str:
        return (
            "t.id, t.dimension, t.model, t.frames_seen, t.frames_used, t.outliers, t.mean_quality,"
            " t.source, t.created, (SELECT count(*) FROM samples s WHERE s.template_id = t.id),"
            f" {'t.vector' if vectors else 'NULL::bytea'}, t.model_unverified"
        )

    def _templates(self, conn: psycopg.Connection, user_id: int, name: str, vectors: bool) -> list[StoredTemplate]:
        rows = conn.execute(
            f"SELECT {self._template_columns(vectors)} FROM templates t WHERE t.user_id = %s ORDER BY t.id",  # type: ignore[arg-type]
            (user_id,),
        ).fetchall()
        return self._stored(conn, user_id, name, rows)

    def _templates_of_name(self, conn: psycopg.Connection, name: str, vectors: bool) -> list[StoredTemplate]:
        """The user's templates found by name in one statement (`UnknownUserError` when none has it)."""
        rows = conn.execute(
            f"SELECT u.id, {self._template_columns(vectors)} FROM users u"  # type: ignore[arg-type]
            " LEFT JOIN templates t ON t.user_id = u.id WHERE u.name = %s ORDER BY t.id",
            (name,),
        ).fetchall()
        if not rows:
            self._unknown_user(conn, name)
        return self._stored(conn, int(rows[0][0]), name, [row[1:] for row in rows if row[1] is not None])

    def _stored(
        self, conn: psycopg.Connection, user_id: int, name: str, rows: Sequence[Sequence[Any]]
    ) -> list[StoredTemplate]:
        return [
            StoredTemplate(
                id=r[0],
                user=name,
                dimension=r[1],
                model=r[2],
                frames_seen=r[3],
                frames_used=r[4],
                outliers=r[5],
                mean_quality=r[6],
                source=r[7],
                created=r[8],
                samples=int(r[9]),
                vector=None
                if r[10] is None
                else blob_to_vector(self.vault.open_template(conn, user_id, r[0], r[2], r[1], bytes(r[10])), r[1]),
                model_verified=not r[11],
            )
            for r in rows
        ]

    @staticmethod
    def _summary(row: Sequence[Any]) -> UserSummary:
        return UserSummary(
            name=row[0],
            created=row[1],
            updated=row[2],
            templates=int(row[3]),
            frames=int(row[4]),
            models=sorted(row[5] or []),
            last_enrolled=row[6],
            last_verified=row[7],
            unverified_models=sorted(row[8] or []),
        )

    # -- writing templates -----------------------------------------------------
    def _save(
        self,
        user: str,
        vector: np.ndarray,
        *,
        model: str,
        source: str,
        mode: Mode,
        samples: list[dict],
        frames_seen: int | None,
        frames_used: int | None,
        outliers: int | None,
        mean_quality: float | None,
        model_verified: bool,
    ) -> StoredTemplate:
        name = validate_user_name(user)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        created = now()

        def work(conn: psycopg.Connection) -> int:
            self._lock_names(conn, name)  # the name check and the insert: one session at a time per name
            user_id = self._user_id(conn, name)
            if user_id is None:
                self._claim_keys(conn)
                holder = self._holder(conn, name)
                if holder is not None:
                    raise UserExistsError(lookalike_message(name, holder[1]))
            if user_id is not None:
                count, models = conn.execute(
                    "SELECT count(*), array_agg(DISTINCT model) FROM templates WHERE user_id = %s", (user_id,)
                ).fetchone() or (0, None)
                if mode == "new":
                    raise UserExistsError(f"{name!r} is already enrolled ({count} template(s))")
                if mode == "add" and count and models != [model]:
                    raise ModelMismatchError(
                        f"{name!r} was enrolled with model {','.join(models or [])}, this template comes from "
                        f"{model}; templates of different models are never compared: replace their templates instead"
                    )
            same_model = conn.execute("SELECT dimension FROM templates WHERE model = %s LIMIT 1", (model,)).fetchone()
            if same_model is not None and same_model[0] != vector.shape[0]:
                raise ModelMismatchError(
                    f"model {model} makes {same_model[0]}-d templates, this one has {vector.shape[0]} values"
                )
            if user_id is None:
                try:
                    with conn.transaction():  # a savepoint: the unique index is the backstop
                        row = conn.execute(
                            "INSERT INTO users (name, name_key, created, updated) VALUES (%s, %s, %s, %s) RETURNING id",
                            (name, name_key(name), created, created),
                        ).fetchone()
                except pg_errors.UniqueViolation:
                    holder = self._holder(conn, name)
                    if holder is not None and holder[1] != name:
                        raise UserExistsError(lookalike_message(name, holder[1])) from None
                    raise UserExistsError(f"{name!r} is already enrolled") from None
                assert row is not None
                user_id = int(row[0])
            else:
                if mode == "replace" and self._delete_templates(conn, user_id)[0]:
                    self.after_commit(self._vacuum_quietly)  # the old templates' bytes, as `remove` erases them
                conn.execute("UPDATE users SET updated = %s WHERE id = %s", (created, user_id))
            data_key = self.vault.write_key(conn, user_id, f"enroll {name!r}")
            template_id = self._next_id(conn, "templates")
            sealed = self.vault.seal_samples(data_key, user_id, template_id, model, int(vector.shape[0]), samples)
            row = conn.execute(
                "INSERT INTO templates (id, user_id, vector, dimension, model, frames_seen, frames_used, outliers,"
                " mean_quality, source, created, model_unverified) OVERRIDING SYSTEM VALUE"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    template_id,
                    user_id,
                    self.vault.seal_template(data_key, user_id, template_id, model, vector_to_blob(vector)),
                    int(vector.shape[0]),
                    model,
                    frames_seen,
                    frames_used,
                    outliers,
                    None if mean_quality is None else float(mean_quality),
                    source,
                    created,
                    not model_verified,
                ),
            ).fetchone()
            assert row is not None
            if sealed:
                with conn.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO samples (template_id, position, source, embedding, det_score, quality, yaw,"
                        " pitch, roll, sharpness, decision, reason) VALUES (%(template_id)s, %(position)s,"
                        " %(source)s, %(embedding)s, %(det_score)s, %(quality)s, %(yaw)s, %(pitch)s, %(roll)s,"
                        " %(sharpness)s, %(decision)s, %(reason)s)",
                        [{**sample, "template_id": template_id} for sample in sealed],
                    )
            return template_id

        template_id = self.write(f"enroll {name!r}", work)
        return StoredTemplate(
            id=template_id,
            user=name,
            dimension=int(vector.shape[0]),
            model=model,
            frames_seen=frames_seen,
            frames_used=frames_used,
            outliers=outliers,
            mean_quality=mean_quality,
            source=source,
            created=created,
            samples=len(samples),
            vector=vector,
            model_verified=model_verified,
        )

    @staticmethod
    def _delete_templates(conn: psycopg.Connection, user_id: int) -> tuple[int, int]:
        samples = conn.execute(
            "DELETE FROM samples WHERE template_id IN (SELECT id FROM templates WHERE user_id = %s)", (user_id,)
        ).rowcount
        templates = conn.execute("DELETE FROM templates WHERE user_id = %s", (user_id,)).rowcount
        return templates, samples

    def lock_enrollments(self, model: str) -> None:
        """The store contract's lock on `model`'s enrollments: a transaction-level advisory lock,
        taken before any user name's (`_lock_names`), held until the caller's transaction ends. A
        session that waited for it takes its snapshots after the holder committed, so it sees the
        holder's templates."""
        if not self._depth:
            raise RuntimeError("lock_enrollments needs an open transaction (store.transaction)")
        with self._errors(f"lock the enrollments of model {model}"):
            self._connection().execute("SELECT pg_advisory_xact_lock(%s)", (enrollment_lock(model),))

    def check_writable(self, action: str = "write to it") -> None:
        """`StoreError` now — not after a capture — when the store cannot be written (a read-only
        session or server, no privilege, or a lock held beyond the busy timeout). Changes nothing."""
        with self.statement(action) as conn:
            conn.execute("UPDATE users SET name = name WHERE false")

    # -- reading templates for a comparison --------------------------------
    def templates_of_model(self, user: str, model: str, with_vectors: bool = True) -> list[StoredTemplate]:
        """As `Store.templates_of_model`."""
        name = validate_user_name(user)
        with self.reading(f"read {name!r}", one_statement=not with_vectors) as conn:
            templates = self._templates_of_name(conn, name, vectors=with_vectors)
        usable = [t for t in templates if t.model == model]
        if not usable:
            if not templates:
                raise UnknownUserError(f"{name!r} has no template; enroll them again")
            others = ", ".join(sorted({t.model for t in templates}))
            raise ModelMismatchError(
                f"{name!r} was enrolled with model {others}, but the current model is {model}; templates of "
                "different models are never compared: re-enroll them with the current model"
            )
        return usable

    def record_attempt(self, record: AttemptRecord) -> int | None:
        """Append a verify attempt to the audit log (never an embedding); None for an unknown user."""
        name = validate_user_name(record.user)
        with self.statement(f"record an attempt for {name!r}") as conn:  # one statement: atomic by itself
            row = conn.execute(
                "INSERT INTO attempts (user_id, user_name, created, similarity, band, threshold_high, threshold_low,"
                " template_id, model, source, frames_seen, frames_used, live, liveness_reason, liveness, key_name)"
                " SELECT id, %s::text, %s::text, %s::float8, %s::text, %s::float8, %s::float8, %s::bigint, %s::text,"
                " %s::text, %s::integer, %s::integer, %s::boolean, %s::text, %s::text, %s::text"
                " FROM users WHERE name = %s RETURNING id",  # typed: a SELECT's parameters are not the columns'
                (
                    name,
                    now(),
                    record.similarity,
                    record.band,
                    record.threshold_high,
                    record.threshold_low,
                    record.template_id,
                    record.model,
                    record.source,
                    record.frames_seen,
                    record.frames_used,
                    record.live,
                    record.liveness_reason,
                    record.liveness,
                    record.key_name,
                    name,
                ),
            ).fetchone()
        return None if row is None else int(row[0])

    def attempt_times(self, user: str, band: str, since: str) -> List[str]:
        name = validate_user_name(user)
        rows = self._read(
            "SELECT a.created FROM attempts a JOIN users u ON a.user_id = u.id"
            " WHERE u.name = %s AND a.band = %s AND a.created >= %s ORDER BY a.created, a.id",
            (name, band, since),
            action=f"read {name!r}'s attempts",
        )
        return [row[0] for row in rows]

    # -- users -------------------------------------------------------------
    def list(self) -> List[UserSummary]:
        rows = self._read(SUMMARY + ' GROUP BY u.id ORDER BY u.name COLLATE "C"', action="list users")
        return [self._summary(row) for row in rows]

    def count(self) -> int:
        return int(self._read("SELECT count(*) FROM users", action="count users")[0][0])

    def exists(self, user: str) -> bool:
        name = validate_user_name(user)
        return bool(self._read("SELECT 1 FROM users WHERE name = %s", (name,), action=f"read {name!r}"))

    def show(self, user: str, attempts: int = 10) -> UserDetails:
        name = validate_user_name(user)
        with self.reading(f"read {name!r}") as conn:
            user_id = self._require_user(conn, name)
            row = conn.execute(SUMMARY + " WHERE u.id = %s GROUP BY u.id", (user_id,)).fetchone()
            templates = self._templates(conn, user_id, name, vectors=False)
            recent = conn.execute(
                f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE user_id = %s ORDER BY created DESC, id DESC LIMIT %s",
                (user_id, attempts),
            ).fetchall()
            lookalikes = self._lookalikes(conn, user_id)
        assert row is not None
        return UserDetails(self._summary(row), templates, [Attempt(*r) for r in recent], lookalikes)

    def templates(self, user: str, with_vectors: bool = True) -> List[StoredTemplate]:
        name = validate_user_name(user)
        with self.reading(f"read {name!r}", one_statement=not with_vectors) as conn:
            return self._templates_of_name(conn, name, vectors=with_vectors)

    def samples(self, template_id: int) -> List[dict]:
        """The per-frame rows of one template (embeddings as float32 arrays, kept frames only)."""
        conn = self._connection()
        with self._errors("read samples"):
            cursor = conn.execute(
                "SELECT position, source, embedding, det_score, quality, yaw, pitch, roll, sharpness, decision, reason"
                " FROM samples WHERE template_id = %s ORDER BY position",
                (template_id,),
            )
            names = [d.name for d in cursor.description or []]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            owner = conn.execute(
                "SELECT user_id, model, dimension FROM templates WHERE id = %s", (template_id,)
            ).fetchone()
            for row in rows:
                if owner is not None:
                    row["embedding"] = self.vault.open_sample(
                        conn, owner[0], template_id, row["position"], owner[1], owner[2], row["embedding"]
                    )
        for row in rows:
            if row["embedding"] is not None:
                row["embedding"] = np.frombuffer(bytes(row["embedding"]), dtype="<f4").astype(np.float32)
        return rows

    def attempts(self, user: str | None = None, limit: int = 100) -> List[Attempt]:
        """The audit log, newest first (by user name as recorded, so removed users' attempts show too)."""
        sql = f"SELECT {ATTEMPT_COLUMNS} FROM attempts"
        params: tuple = ()
        if user is not None:
            sql += " WHERE user_name = %s"
            params = (validate_user_name(user),)
        rows = self._read(
            sql + " ORDER BY created DESC, id DESC LIMIT %s", (*params, limit), action="read the audit log"
        )
        return [Attempt(*row) for row in rows]

    def remove(self, user: str) -> Removal:
        """Delete the user, every template and every sample in one transaction (the audit log keeps
        the name and outcomes, never an embedding), then VACUUM the tables that held their vectors.
        `erasure_pending`, with the reason in `erasure_note`, when that could not be done now."""
        name = validate_user_name(user)

        def work(conn: psycopg.Connection) -> tuple[int, int]:
            self._lock_names(conn, name)
            user_id = self._require_user(conn, name)
            counts = self._delete_templates(conn, user_id)
            self.vault.delete_key(conn, user_id)  # every copy of their sealed rows: unreadable
            self.vault.rotate_sidecar_key(conn)  # as SQLite's (PostgreSQL keeps no sidecar)
            conn.execute("UPDATE attempts SET user_id = NULL WHERE user_id = %s", (user_id,))
            conn.execute("DELETE FROM lookalikes WHERE user_id = %s OR other_user_id = %s", (user_id, user_id))
            conn.execute("DELETE FROM users WHERE id = %s", (user_id,))
            self._claim_keys(conn)  # a look-alike kept without a key takes this one's
            return counts

        templates, samples = self.write(f"remove {name!r}", work)
        note: str | None
        if self._depth:
            note = "the removal is not committed yet: the tables are vacuumed when the caller's transaction commits"
            self.after_commit(self._vacuum_quietly)
        else:
            note = self.vacuum()
        return Removal(name, templates, samples, erasure_pending=note is not None, erasure_note=note)

    def _vacuum_quietly(self) -> None:
        self.vacuum()

    def vacuum(self) -> str | None:
        """VACUUM the tables a removal deletes from (outside any transaction): None when every old
        row version is gone from them, else why some may remain (no privilege, another transaction
        still sees them, an error)."""
        conn = self._connection()
        notices: list[tuple[str, str]] = []

        def keep(diagnostic: Any) -> None:
            severity = diagnostic.severity_nonlocalized or diagnostic.severity or ""
            notices.append((severity, f"{diagnostic.message_primary or ''}\n{diagnostic.message_detail or ''}"))

        tables = ", ".join(ERASED_TABLES)
        conn.add_notice_handler(keep)
        try:
            conn.execute(f"VACUUM (VERBOSE) {tables}")  # type: ignore[arg-type]  # constant table names
        except psycopg.Error as exc:
            return (
                f"VACUUM of {tables} failed ({self.scrub(str(exc)).strip().splitlines()[0]}); the removed rows' "
                "old versions stay in the table files until a VACUUM succeeds"
            )
        finally:
            conn.remove_notice_handler(keep)
        skipped = [text.split("\n")[0] for severity, text in notices if severity == "WARNING" and "skipping" in text]
        if skipped:
            return (
                f"the database user may not VACUUM these tables ({skipped[0]}); the removed rows' old versions "
                "stay in the table files until their owner or a superuser runs VACUUM, or autovacuum does"
            )
        dead = 0
        for _, text in notices:
            for pattern in (r"(\d+) are dead but not yet removable", r"(\d+) dead row versions cannot be removed yet"):
                dead += sum(int(n) for n in re.findall(pattern, text))
        if dead:
            return (
                f"another transaction still sees the old rows ({dead} dead row versions not yet removable); "
                "the next VACUUM after it ends removes them (autovacuum, or the next removal)"
            )
        return None

    # -- identify: the gallery's size, look-alikes, the identify audit log -----------------
    def gallery_size(self, model: str) -> int:
        return int(
            self._read("SELECT count(*) FROM templates WHERE model = %s", (model,), action="count templates")[0][0]
        )

    def user_ids(self, names: Sequence[str]) -> dict[str, int]:
        with self.reading("read users") as conn:
            return {name: uid for name in names if (uid := self._user_id(conn, validate_user_name(name))) is not None}

    def record_lookalikes(self, user: str, others: Sequence[tuple[int, float]], model: str) -> None:
        """As `Store.record_lookalikes` (joins an open transaction, so the enrollment and this are one)."""
        name = validate_user_name(user)

        def work(conn: psycopg.Connection) -> None:
            user_id = self._require_user(conn, name)
            created = now()
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO lookalikes (user_id, other_user_id, similarity, model, created)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [(user_id, int(other), float(similarity), model, created) for other, similarity in others],
                )

        self.write(f"record look-alikes of {name!r}", work)

    def lookalikes(self, user: str) -> List[Lookalike]:
        name = validate_user_name(user)
        with self.reading(f"read {name!r}") as conn:
            user_id = self._user_id(conn, name)
            return [] if user_id is None else self._lookalikes(conn, user_id)

    @staticmethod
    def _lookalikes(conn: psycopg.Connection, user_id: int) -> List[Lookalike]:
        rows = conn.execute(
            "SELECT u.name, l.similarity, l.created, l.model FROM lookalikes l"
            " JOIN users u ON u.id = CASE WHEN l.user_id = %s THEN l.other_user_id ELSE l.user_id END"
            " WHERE l.user_id = %s OR l.other_user_id = %s ORDER BY l.similarity DESC, l.id",
            (user_id, user_id, user_id),
        ).fetchall()
        return [Lookalike(*row) for row in rows]

    def record_identification(self, record: IdentifyRecord) -> int | None:
        """Append an identify attempt to its audit log (names and scores, never an embedding)."""
        with self.statement("record an identify attempt") as conn:  # one statement: atomic by itself
            row = conn.execute(
                "INSERT INTO identifications (created, model, source, decision, user_name, similarity, threshold,"
                " margin, candidates, gallery_size, frames_seen, frames_used, key_name)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    now(),
                    record.model,
                    record.source,
                    record.decision,
                    record.user,
                    record.similarity,
                    record.threshold,
                    record.margin,
                    json.dumps(record.candidates, ensure_ascii=False),
                    record.gallery_size,
                    record.frames_seen,
                    record.frames_used,
                    record.key_name,
                ),
            ).fetchone()
        return None if row is None else int(row[0])

    def identifications(self, limit: int = 100) -> List[dict]:
        """The identify audit log, newest first."""
        rows = self._read(
            "SELECT id, created, model, source, decision, user_name, similarity, threshold, margin, candidates,"
            " gallery_size, frames_seen, frames_used, key_name FROM identifications ORDER BY id DESC LIMIT %s",
            (limit,),
            action="read the identify log",
        )
        keys = (
            "id",
            "created",
            "model",
            "source",
            "decision",
            "user",
            "similarity",
            "threshold",
            "margin",
            "candidates",
            "gallery_size",
            "frames_seen",
            "frames_used",
            "key_name",
        )
        found = [dict(zip(keys, row, strict=True)) for row in rows]
        for item in found:
            item["candidates"] = json.loads(item["candidates"] or "[]")
        return found

    # -- the API keys of `facer serve` (as `Store`'s) -------------------------------------
    def add_api_key(self, name: str, scope: str, key_hash: str) -> ApiKey:
        created = now()

        def work(conn: psycopg.Connection) -> None:
            # Two sessions adding one name queue on its lock; the partial unique index is the backstop.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (name_lock(f"facer.api_key\0{name}"),))
            if conn.execute("SELECT 1 FROM api_keys WHERE name = %s AND revoked IS NULL", (name,)).fetchone():
                raise ApiKeyError(
                    f"an active API key is already named {name!r}: revoke it first, or choose another name"
                )
            conn.execute(
                "INSERT INTO api_keys (name, scope, key_hash, created) VALUES (%s, %s, %s, %s)",
                (name, scope, key_hash, created),
            )

        self.write(f"add the API key {name!r}", work)
        return ApiKey(name, scope, created, None, key_hash)

    def api_keys(self) -> List[ApiKey]:
        rows = self._read(
            'SELECT name, scope, created, revoked, key_hash FROM api_keys ORDER BY name COLLATE "C", id',
            action="read the API keys",
        )
        return [ApiKey(*row) for row in rows]

    def active_api_key(self, name: str) -> ApiKey | None:
        rows = self._read(
            "SELECT name, scope, created, revoked, key_hash FROM api_keys WHERE name = %s AND revoked IS NULL",
            (name,),
            action="read the API keys",
        )
        return ApiKey(*rows[0]) if rows else None

    def revoke_api_key(self, name: str) -> ApiKey:
        revoked = now()

        def work(conn: psycopg.Connection) -> Any:
            row = conn.execute(
                "UPDATE api_keys SET revoked = %s WHERE name = %s AND revoked IS NULL RETURNING name, scope, created",
                (revoked, name),
            ).fetchone()
            if row is None:
                raise ApiKeyError(f"no active API key is named {name!r}")
            return row

        row = self.write(f"revoke the API key {name!r}", work)
        return ApiKey(row[0], row[1], row[2], revoked)

    def rename(self, old: str, new: str) -> UserSummary:
        old_name, new_name = validate_user_name(old), validate_user_name(new)

        def work(conn: psycopg.Connection) -> Any:
            self._lock_names(conn, old_name, new_name)
            user_id = self._require_user(conn, old_name)
            if old_name != new_name and self._user_id(conn, new_name) is not None:
                raise UserExistsError(f"{new_name!r} already exists; remove it first or choose another name")
            self._claim_keys(conn)
            holder = self._holder(conn, new_name)
            if holder is not None and holder[0] != user_id:
                raise UserExistsError(lookalike_message(new_name, holder[1]))
            conn.execute(
                "UPDATE users SET name = %s, name_key = %s, updated = %s WHERE id = %s",
                (new_name, name_key(new_name), now(), user_id),
            )
            self._claim_keys(conn)  # a look-alike of the old name, kept without a key, takes it
            return conn.execute(SUMMARY + " WHERE u.id = %s GROUP BY u.id", (user_id,)).fetchone()

        return self._summary(self.write(f"rename {old_name!r}", work))

    def check(self) -> str:
        """facer's own rows checked (every vector and embedding as long as its dimension says, no
        template without its user): "ok", or `StoreError`. PostgreSQL's pages are checked by
        PostgreSQL (checksums, `pg_amcheck`), not here."""
        with self.reading("check it") as conn:
            bad_vectors = conn.execute(
                "SELECT count(*) FROM templates WHERE length(vector) <> 4 * dimension"
                # a sealed vector: 32 bytes more, behind its mark (`facer_cli.store.crypto`)
                " AND NOT (length(vector) = 4 * dimension + 32 AND substr(vector, 1, 4) = '\\x46434501'::bytea)"
            ).fetchone()
            bad_samples = conn.execute(
                "SELECT count(*) FROM samples WHERE embedding IS NOT NULL AND length(embedding) % 4 <> 0"
            ).fetchone()
            orphans = conn.execute(
                "SELECT count(*) FROM templates t WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = t.user_id)"
            ).fetchone()
        problems = []
        for label, row in (("templates of the wrong size", bad_vectors), ("damaged embeddings", bad_samples),
                           ("templates without a user", orphans)):  # fmt: skip
            if row and row[0]:
                problems.append(f"{row[0]} {label}")
        if problems:
            raise StoreError(f"{{db}} is corrupt ({'; '.join(problems)}); restore it from a backup", self.location)
        return "ok"
