"""The store's data: users, their templates, the frames that built them, and the verify audit log.

Plain records in and out (`facer_cli.store.records`); the file, its transactions and
its errors are `StoreConnection`'s. Whether a probe matches is decided elsewhere
(`facer_cli.templates.matching`): the store keeps data, not decisions. Vectors are float32
bytes; no pixels are ever stored. Templates keep the fingerprint of the model that
made them, so a caller can compare only like with like.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, Callable, List, Sequence  # List: `list` is a method name here

import numpy as np

from facer_cli.errors import ApiKeyError, ModelMismatchError, UnknownUserError, UserExistsError
from facer_cli.store.bulk import SQLiteRows
from facer_cli.store.connection import (
    API_KEYS_STEP,
    DATA_KEYS_STEP,
    ERASURE_WAIT_S,
    GALLERY_STEP,
    LIVENESS_STEP,
    NAME_KEY_STEP,
    SIDECAR_KEYS_STEP,
    UNVERIFIED_STEP,
    Access,
)
from facer_cli.store.crypto import MasterKey, Sealer, master_key
from facer_cli.store.gallery_source import erase_sidecars
from facer_cli.store.migrations import STEP_NAMES
from facer_cli.store.names import lookalike_message, name_key
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
from facer_cli.store.urls import is_postgres_url
from facer_cli.store.vault import Vault

# Schema steps some reads depend on (a read-only store may lack the newest ones).
IDENTIFY_STEP = GALLERY_STEP

if TYPE_CHECKING:
    from facer_cli.settings import Settings
    from facer_cli.store.gallery_source import GallerySource
    from facer_cli.store.postgres.repository import PostgresStore


# -- the store --------------------------------------------------------------
class Store(SQLiteRows, TemplateSaving):
    """A facer database: `Store("facer.db")`, or `Store.open(settings)` for the `db` setting.

    `access`: "create" (the default: creates a missing store), "write" (an existing store) or
    "read" (never writes, creates nothing; works on read-only files, folders and mounts).

    >>> with Store("facer.db", access="read") as store:
    ...     store.list()
    """

    @classmethod
    def open(cls, settings: "Settings", access: Access = "create") -> "Store | PostgresStore":
        """The store of the `db` setting: PostgreSQL for a `postgresql://` or `postgres://` URL
        (psycopg is imported only then), else this SQLite file."""
        if is_postgres_url(settings.db):
            from facer_cli.store.postgres.repository import PostgresStore

            return PostgresStore.open(settings, access)
        master = master_key(settings)
        store = cls(settings.db_path, settings.db_busy_timeout_s, access=access)
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
                "qmark",
                lambda: self.has_step(DATA_KEYS_STEP),
                lambda: self.has_step(SIDECAR_KEYS_STEP),
            )
        return self._vault

    def encryption(self) -> dict[str, Any]:
        """Whether this store is opened with a key (its fingerprint) and how many templates and
        embeddings are sealed and plain."""
        with self.snapshot("read its encryption") as conn:
            counts = self.vault.status(conn)
            store_keys = self.vault.store_keys(conn)
        return {
            "enabled": self.vault.enabled,
            "key_fingerprint": self.vault.sealer.fingerprint,
            "store_keys": store_keys,
            **counts,
        }

    def check_key(self) -> None:
        """`StoreKeyError` when this store's templates need a key it was not given (none, or another)."""
        with self.snapshot("read its encryption") as conn:
            self.vault.check_key(conn)

    def convert_users(self, encrypt: bool, on_user: Callable[[str, int], None] | None = None) -> int:
        """`facer store encrypt | decrypt`: each user whose rows are not yet so, one transaction each
        (read back and checked before it commits); returns the values rewritten."""
        action = "encrypt templates" if encrypt else "decrypt templates"
        self.vault.sealer.require(action)
        with self.transaction(action) as conn:
            self.vault.check_writable(conn, action)  # another key: refused before anything is written
            if encrypt:
                self.vault.ensure_sidecar_key(conn)  # the identify sidecar is sealed from now on
            users = self.vault.users_to_encrypt(conn, sealed=not encrypt)
        done = 0
        for start in range(0, len(users), self.vault.users_per_commit):
            chunk = users[start : start + self.vault.users_per_commit]
            with self.transaction(f"{action} of {chunk[0][1]!r}") as conn:  # each user whole, or not at all
                counts = [self.vault.convert_user(conn, user_id, encrypt) for user_id, _ in chunk]
            done += sum(counts)
            if on_user is not None:
                for (_, name), count in zip(chunk, counts, strict=True):
                    on_user(name, count)
        if not encrypt:
            with self.transaction(action) as conn:  # users without a sealed value keep no key either
                if self.has_step(DATA_KEYS_STEP):
                    conn.execute("DELETE FROM data_keys")
                self.vault.drop_sidecar_key(conn)  # the identify sidecar is written in the clear again
        erase_sidecars(self.path)  # codes made before: the index is built again from the store
        return done

    def rekey(self, new: MasterKey) -> int:
        """`facer store rekey`: every data key unwrapped with this store's key and wrapped with `new`,
        in one transaction; the data keys rewrapped."""
        self.vault.sealer.require("rekey it")
        with self.transaction("rekey it") as conn:
            self.vault.check_writable(conn, "rekey it")
            count = self.vault.rekey(conn, new)
        self.use_key(new)
        return count

    def _next_template_id(self, conn: sqlite3.Connection) -> int:
        """The id the next template will take (inside the write transaction): sealed values are
        bound to it before the row is written."""
        row = conn.execute(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'templates'), 0),"
            " coalesce((SELECT max(id) FROM templates), 0)) + 1"
        ).fetchone()
        return int(row[0])

    # -- the store contract's description of itself (`facer_cli.store.contract`) -----------
    backend = "sqlite"

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def gallery_key(self) -> str:
        return str(self.path.expanduser().resolve())

    def gallery_source(self) -> "GallerySource":
        from facer_cli.store.gallery_source import SQLiteGallerySource

        return SQLiteGallerySource(self.path, self._master)

    def describe(self) -> dict[str, Any]:
        """The backend, SQLite's version and the schema steps applied."""
        applied = [name for name in STEP_NAMES if self.has_step(name)]
        return {
            "backend": self.backend,
            "db": self.location,
            "server_version": sqlite3.sqlite_version,
            "schema_version": len(applied),
            "schema_step": applied[-1] if applied else None,
        }

    @property
    def _unverified(self) -> str:
        """SQL for a template's "unverified model" flag (a read-only store may predate the column)."""
        return "t.model_unverified" if self.has_step(UNVERIFIED_STEP) else "0"

    @property
    def _liveness_columns(self) -> str:
        """The attempts' liveness columns, or NULLs on a read-only store from before they existed."""
        return "live, liveness_reason" if self.has_step(LIVENESS_STEP) else "NULL, NULL"

    @property
    def _key_column(self) -> str:
        """The logs' key_name column, or NULL on a read-only store from before it existed."""
        return "key_name" if self.has_step(API_KEYS_STEP) else "NULL"

    def __enter__(self) -> "Store":
        return self

    def _user_id(self, conn: sqlite3.Connection, name: str) -> int | None:
        row = conn.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def _require_user(self, conn: sqlite3.Connection, name: str) -> int:
        user_id = self._user_id(conn, name)
        if user_id is None:
            holder = self._holder(conn, name)
            raise unknown_user(name, None if holder is None else holder[1])
        return user_id

    # -- names that look the same (`facer_cli.store.names`) ---------------------------
    def _holder(self, conn: sqlite3.Connection, name: str) -> tuple[int, str] | None:
        """(id, name) of the user whose name looks like `name` (holds its canonical key), if any."""
        if not self.has_step(NAME_KEY_STEP):
            return None
        row = conn.execute("SELECT id, name FROM users WHERE name_key = ?", (name_key(name),)).fetchone()
        return None if row is None else (row[0], row[1])

    @staticmethod
    def _claim_keys(conn: sqlite3.Connection) -> None:
        """Users without a key (a look-alike kept by migration m007, or a row written without one) get
        their key where no other user holds it now."""
        rows = conn.execute("SELECT id, name FROM users WHERE name_key IS NULL ORDER BY id").fetchall()
        if not rows:
            return
        for user_id, name in rows:
            key = name_key(name)
            if conn.execute("SELECT 1 FROM users WHERE name_key = ?", (key,)).fetchone() is None:
                conn.execute("UPDATE users SET name_key = ? WHERE id = ?", (key, user_id))

    def enrolled_name(self, user: str) -> str | None:
        """The enrolled name `user` means: itself when enrolled, else the enrolled name that looks
        the same (its canonical key), else None."""
        name = validate_user_name(user)
        conn = self._connection()
        with self._errors(f"read {name!r}"):
            if self._user_id(conn, name) is not None:
                return name
            holder = self._holder(conn, name)
        return None if holder is None else holder[1]

    def name_collisions(self) -> List[tuple[str, str]]:
        """(user, the enrolled user whose name looks the same) for each user kept without a key
        because another held it (enrolled before names were compared: see migration m007)."""
        if not self.has_step(NAME_KEY_STEP):
            return []
        rows = self._read("SELECT id, name FROM users WHERE name_key IS NULL ORDER BY id", action="check names")
        found = []
        for _, name in rows:
            holder = self._read("SELECT name FROM users WHERE name_key = ?", (name_key(name),), action="check names")
            if holder:
                found.append((name, holder[0][0]))
        return found

    def _templates(self, conn: sqlite3.Connection, user_id: int, name: str, vectors: bool) -> list[StoredTemplate]:
        rows = conn.execute(
            "SELECT t.id, t.dimension, t.model, t.frames_seen, t.frames_used, t.outliers, t.mean_quality,"
            " t.source, t.created, (SELECT count(*) FROM samples s WHERE s.template_id = t.id),"
            f" {'t.vector' if vectors else 'NULL'}, {self._unverified}"
            " FROM templates t WHERE t.user_id = ? ORDER BY t.id",
            (user_id,),
        ).fetchall()
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
                samples=r[9],
                vector=None
                if r[10] is None
                else blob_to_vector(self.vault.open_template(conn, user_id, r[0], r[2], r[1], r[10]), r[1]),
                model_verified=not r[11],
            )
            for r in rows
        ]

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
        with self.transaction(f"enroll {name!r}") as conn:
            user_id = self._user_id(conn, name)
            if user_id is None:
                self._claim_keys(conn)
                holder = self._holder(conn, name)
                if holder is not None:
                    raise UserExistsError(lookalike_message(name, holder[1]))
            if user_id is not None:
                existing = conn.execute(
                    "SELECT count(*), group_concat(DISTINCT model) FROM templates WHERE user_id = ?", (user_id,)
                ).fetchone()
                if mode == "new":
                    raise UserExistsError(f"{name!r} is already enrolled ({existing[0]} template(s))")
                if mode == "add" and existing[0] and existing[1] != model:
                    raise ModelMismatchError(
                        f"{name!r} was enrolled with model {existing[1]}, this template comes from {model}; "
                        "templates of different models are never compared: replace their templates instead"
                    )
            same_model = conn.execute("SELECT dimension FROM templates WHERE model = ? LIMIT 1", (model,)).fetchone()
            if same_model is not None and same_model[0] != vector.shape[0]:
                raise ModelMismatchError(
                    f"model {model} makes {same_model[0]}-d templates, this one has {vector.shape[0]} values"
                )
            if user_id is None:
                user_id = conn.execute(
                    "INSERT INTO users (name, name_key, created, updated) VALUES (?, ?, ?, ?)",
                    (name, name_key(name), created, created),
                ).lastrowid
            else:
                if mode == "replace" and self._delete_templates(conn, user_id)[0]:
                    self.erase_when_committed(conn)  # the old templates' bytes, as `remove` erases them
                conn.execute("UPDATE users SET updated = ? WHERE id = ?", (created, user_id))
            assert user_id is not None
            data_key = self.vault.write_key(conn, user_id, f"enroll {name!r}")
            template_id = self._next_template_id(conn)
            samples = self.vault.seal_samples(data_key, user_id, template_id, model, int(vector.shape[0]), samples)
            conn.execute(
                "INSERT INTO templates (id, user_id, vector, dimension, model, frames_seen, frames_used, outliers,"
                " mean_quality, source, created, model_unverified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    0 if model_verified else 1,
                ),
            )
            conn.executemany(
                "INSERT INTO samples (template_id, position, source, embedding, det_score, quality, yaw, pitch,"
                " roll, sharpness, decision, reason) VALUES (:template_id, :position, :source, :embedding,"
                " :det_score, :quality, :yaw, :pitch, :roll, :sharpness, :decision, :reason)",
                ({**sample, "template_id": template_id} for sample in samples),
            )
        assert template_id is not None
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
    def _delete_templates(conn: sqlite3.Connection, user_id: int) -> tuple[int, int]:
        samples = conn.execute(
            "DELETE FROM samples WHERE template_id IN (SELECT id FROM templates WHERE user_id = ?)", (user_id,)
        ).rowcount
        templates = conn.execute("DELETE FROM templates WHERE user_id = ?", (user_id,)).rowcount
        return templates, samples

    def lock_enrollments(self, model: str) -> None:
        """The store contract's lock on `model`'s enrollments: the caller's write transaction
        (`BEGIN IMMEDIATE`) already holds the file's one write lock, so no other connection stores
        a template until it ends, and a reader that starts now sees every committed template."""
        if not self._depth:
            raise RuntimeError("lock_enrollments needs an open transaction (store.transaction)")

    def check_writable(self, action: str = "write to it") -> None:
        """`StoreError` now — not after a capture — when the store cannot be written (read-only,
        or locked beyond the busy timeout). Changes nothing."""
        with self.transaction(action) as conn:
            conn.execute("UPDATE users SET name = name WHERE 0")  # opens a write transaction on the file

    # -- reading templates for a comparison --------------------------------
    def templates_of_model(self, user: str, model: str, with_vectors: bool = True) -> list[StoredTemplate]:
        """The user's templates made by `model`; `UnknownUserError` or `ModelMismatchError` when
        there are none (a front end calls this to fail before capturing)."""
        name = validate_user_name(user)
        conn = self._connection()
        with self._errors(f"read {name!r}"):
            templates = self._templates(conn, self._require_user(conn, name), name, vectors=with_vectors)
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
        with self.transaction(f"record an attempt for {name!r}") as conn:
            user_id = self._user_id(conn, name)
            if user_id is None:
                return None
            return conn.execute(
                "INSERT INTO attempts (user_id, user_name, created, similarity, band, threshold_high, threshold_low,"
                " template_id, model, source, frames_seen, frames_used, live, liveness_reason, liveness, key_name)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    user_id,
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
                    None if record.live is None else int(record.live),
                    record.liveness_reason,
                    record.liveness,
                    record.key_name,
                ),
            ).lastrowid

    def attempt_times(self, user: str, band: str, since: str) -> List[str]:
        """When the user's attempts with this band were recorded, from `since` (ISO 8601) on, oldest first."""
        name = validate_user_name(user)
        rows = self._read(
            "SELECT a.created FROM attempts a JOIN users u ON a.user_id = u.id"
            " WHERE u.name = ? AND a.band = ? AND a.created >= ? ORDER BY a.created, a.id",
            (name, band, since),
            action=f"read {name!r}'s attempts",
        )
        return [row[0] for row in rows]

    # -- users -------------------------------------------------------------
    @property
    def _SUMMARY(self) -> str:  # noqa: N802  (a query, spelled as the constant it used to be)
        return (
            "SELECT u.name, u.created, u.updated, count(t.id), coalesce(sum(t.frames_used), 0),"
            " group_concat(DISTINCT t.model), max(t.created),"
            " (SELECT max(a.created) FROM attempts a WHERE a.user_id = u.id AND a.band <> 'face_changed'),"
            f" group_concat(DISTINCT CASE WHEN {self._unverified} THEN t.model END)"
            " FROM users u LEFT JOIN templates t ON t.user_id = u.id"
        )

    @staticmethod
    def _summary(row: Sequence[Any]) -> UserSummary:
        return UserSummary(
            name=row[0],
            created=row[1],
            updated=row[2],
            templates=row[3],
            frames=row[4],
            models=sorted(row[5].split(",")) if row[5] else [],
            last_enrolled=row[6],
            last_verified=row[7],
            unverified_models=sorted(row[8].split(",")) if row[8] else [],
        )

    def list(self) -> List[UserSummary]:
        """Every user, by name: templates, frames used, models, dates."""
        rows = self._read(self._SUMMARY + " GROUP BY u.id ORDER BY u.name", action="list users")
        return [self._summary(row) for row in rows]

    def count(self) -> int:
        return self._read("SELECT count(*) FROM users", action="count users")[0][0]

    def exists(self, user: str) -> bool:
        name = validate_user_name(user)
        return bool(self._read("SELECT 1 FROM users WHERE name = ?", (name,), action=f"read {name!r}"))

    def show(self, user: str, attempts: int = 10) -> UserDetails:
        name = validate_user_name(user)
        conn = self._connection()
        with self._errors(f"read {name!r}"):
            user_id = self._require_user(conn, name)
            row = conn.execute(self._SUMMARY + " WHERE u.id = ? GROUP BY u.id", (user_id,)).fetchone()
            templates = self._templates(conn, user_id, name, vectors=False)
            recent = conn.execute(
                "SELECT id, user_name, created, similarity, band, source, frames_seen, frames_used, template_id,"
                f" {self._liveness_columns}, {self._key_column} FROM attempts WHERE user_id = ?"
                " ORDER BY created DESC, id DESC LIMIT ?",
                (user_id, attempts),
            ).fetchall()
            lookalikes = self._lookalikes(conn, user_id)
        return UserDetails(self._summary(row), templates, [Attempt(*r) for r in recent], lookalikes)

    def templates(self, user: str, with_vectors: bool = True) -> List[StoredTemplate]:
        name = validate_user_name(user)
        conn = self._connection()
        with self._errors(f"read {name!r}"):
            return self._templates(conn, self._require_user(conn, name), name, vectors=with_vectors)

    def samples(self, template_id: int) -> List[dict]:
        """The per-frame rows of one template (embeddings as float32 arrays, kept frames only)."""
        conn = self._connection()
        with self._errors("read samples"):
            cursor = conn.execute(
                "SELECT position, source, embedding, det_score, quality, yaw, pitch, roll, sharpness, decision, reason"
                " FROM samples WHERE template_id = ? ORDER BY position",
                (template_id,),
            )
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            owner = conn.execute(
                "SELECT user_id, model, dimension FROM templates WHERE id = ?", (template_id,)
            ).fetchone()
            for row in rows:
                if owner is not None:
                    row["embedding"] = self.vault.open_sample(
                        conn, owner[0], template_id, row["position"], owner[1], owner[2], row["embedding"]
                    )
        for row in rows:
            if row["embedding"] is not None:
                row["embedding"] = np.frombuffer(row["embedding"], dtype="<f4").astype(np.float32)
        return rows

    def attempts(self, user: str | None = None, limit: int = 100) -> List[Attempt]:
        """The audit log, newest first (by user name as recorded, so removed users' attempts show too)."""
        sql = (
            "SELECT id, user_name, created, similarity, band, source, frames_seen, frames_used, template_id,"
            f" {self._liveness_columns}, {self._key_column} FROM attempts"
        )
        params: tuple = ()
        if user is not None:
            sql += " WHERE user_name = ?"
            params = (validate_user_name(user),)
        rows = self._read(
            sql + " ORDER BY created DESC, id DESC LIMIT ?", (*params, limit), action="read the audit log"
        )
        return [Attempt(*row) for row in rows]

    def remove(self, user: str, erasure_wait_s: float = ERASURE_WAIT_S) -> Removal:
        """Delete the user, every template and every sample; the audit log keeps the name and
        outcomes of their attempts, never an embedding.

        Deleted rows are overwritten with zeros (`secure_delete`), and the WAL is then copied into
        the file and truncated, so no byte of their embeddings is left in either file. A reader
        that still holds older pages (waited for at most `erasure_wait_s`) makes this impossible
        for now: the removal is then `erasure_pending`, and the next connection that can checkpoint
        finishes it."""
        name = validate_user_name(user)
        with self.transaction(f"remove {name!r}", check=("users", "templates")) as conn:
            user_id = self._require_user(conn, name)
            templates, samples = self._delete_templates(conn, user_id)
            self.vault.delete_key(conn, user_id)  # every copy of their sealed rows: unreadable
            self.vault.rotate_sidecar_key(conn)  # and of a sealed sidecar written before now
            conn.execute("UPDATE attempts SET user_id = NULL WHERE user_id = ?", (user_id,))
            if self.has_step(IDENTIFY_STEP):
                conn.execute("DELETE FROM lookalikes WHERE user_id = ? OR other_user_id = ?", (user_id, user_id))
            conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
            self._claim_keys(conn)  # a look-alike kept without a key takes this one's
            self.erase_when_committed(conn, erasure_wait_s)
        erased = not self.erasure_pending()
        # The gallery sidecars hold int8 codes of every template: wiped and deleted too (the next
        # `identify` rebuilds them from the store, without this user). A sealed one could no longer
        # be opened anyway: its key was replaced above.
        erase_sidecars(self.path)
        return Removal(name, templates, samples, erasure_pending=not erased)

    # -- identify: the gallery's size, look-alikes, the identify audit log -----------------
    def gallery_size(self, model: str) -> int:
        """Templates of `model`: the N that 1:N search compares a probe with."""
        return self._read("SELECT count(*) FROM templates WHERE model = ?", (model,), action="count templates")[0][0]

    def user_ids(self, names: Sequence[str]) -> dict[str, int]:
        conn = self._connection()
        with self._errors("read users"):
            return {name: uid for name in names if (uid := self._user_id(conn, validate_user_name(name))) is not None}

    def record_lookalikes(self, user: str, others: Sequence[tuple[int, float]], model: str) -> None:
        """Record that `user` matched each (other user id, similarity) at or above identify_threshold
        and was enrolled anyway (joins an open transaction, so the enrollment and this are one)."""
        name = validate_user_name(user)
        with self.transaction(f"record look-alikes of {name!r}") as conn:
            user_id = self._require_user(conn, name)
            created = now()
            conn.executemany(
                "INSERT INTO lookalikes (user_id, other_user_id, similarity, model, created) VALUES (?, ?, ?, ?, ?)",
                [(user_id, int(other), float(similarity), model, created) for other, similarity in others],
            )

    def lookalikes(self, user: str) -> List[Lookalike]:
        """The user's recorded look-alikes ([] for an unknown user)."""
        name = validate_user_name(user)
        conn = self._connection()
        with self._errors(f"read {name!r}"):
            user_id = self._user_id(conn, name)
            return [] if user_id is None else self._lookalikes(conn, user_id)

    def _lookalikes(self, conn: sqlite3.Connection, user_id: int) -> List[Lookalike]:
        if not self.has_step(IDENTIFY_STEP):
            return []
        rows = conn.execute(
            "SELECT u.name, l.similarity, l.created, l.model FROM lookalikes l"
            " JOIN users u ON u.id = CASE WHEN l.user_id = ? THEN l.other_user_id ELSE l.user_id END"
            " WHERE l.user_id = ? OR l.other_user_id = ? ORDER BY l.similarity DESC, l.id",
            (user_id, user_id, user_id),
        ).fetchall()
        return [Lookalike(*row) for row in rows]

    def record_identification(self, record: IdentifyRecord) -> int | None:
        """Append an identify attempt to its audit log (names and scores, never an embedding)."""
        import json

        with self.transaction("record an identify attempt") as conn:
            return conn.execute(
                "INSERT INTO identifications (created, model, source, decision, user_name, similarity, threshold,"
                " margin, candidates, gallery_size, frames_seen, frames_used, key_name)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            ).lastrowid

    def identifications(self, limit: int = 100) -> List[dict]:
        """The identify audit log, newest first."""
        import json

        if not self.has_step(IDENTIFY_STEP):
            return []
        rows = self._read(
            "SELECT id, created, model, source, decision, user_name, similarity, threshold, margin, candidates,"
            f" gallery_size, frames_seen, frames_used, {self._key_column} FROM identifications ORDER BY id DESC LIMIT ?",
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

    # -- the API keys of `facer serve` (`facer_cli.service.keys` makes and checks them) ----------
    def add_api_key(self, name: str, scope: str, key_hash: str) -> ApiKey:
        """Store a new active key; `ApiKeyError` when an active key already holds the name."""
        created = now()
        with self.transaction(f"add the API key {name!r}") as conn:
            if conn.execute("SELECT 1 FROM api_keys WHERE name = ? AND revoked IS NULL", (name,)).fetchone():
                raise ApiKeyError(
                    f"an active API key is already named {name!r}: revoke it first, or choose another name"
                )
            conn.execute(
                "INSERT INTO api_keys (name, scope, key_hash, created) VALUES (?, ?, ?, ?)",
                (name, scope, key_hash, created),
            )
        return ApiKey(name, scope, created, None, key_hash)

    def api_keys(self) -> List[ApiKey]:
        """Every key, active and revoked, by name and then age (hashes included: never show them)."""
        if not self.has_step(API_KEYS_STEP):
            return []
        rows = self._read(
            "SELECT name, scope, created, revoked, key_hash FROM api_keys ORDER BY name, id", action="read the API keys"
        )
        return [ApiKey(*row) for row in rows]

    def active_api_key(self, name: str) -> ApiKey | None:
        """The active key of this name, with its hash; None when there is none."""
        if not self.has_step(API_KEYS_STEP):
            return None
        rows = self._read(
            "SELECT name, scope, created, revoked, key_hash FROM api_keys WHERE name = ? AND revoked IS NULL",
            (name,),
            action="read the API keys",
        )
        return ApiKey(*rows[0]) if rows else None

    def revoke_api_key(self, name: str) -> ApiKey:
        """Revoke the active key of this name (its row stays, with the time); `ApiKeyError` when none."""
        revoked = now()
        with self.transaction(f"revoke the API key {name!r}") as conn:
            row = conn.execute(
                "SELECT id, name, scope, created FROM api_keys WHERE name = ? AND revoked IS NULL", (name,)
            ).fetchone()
            if row is None:
                raise ApiKeyError(f"no active API key is named {name!r}")
            conn.execute("UPDATE api_keys SET revoked = ? WHERE id = ?", (revoked, row[0]))
        return ApiKey(row[1], row[2], row[3], revoked)

    def rename(self, old: str, new: str) -> UserSummary:
        old_name, new_name = validate_user_name(old), validate_user_name(new)
        with self.transaction(f"rename {old_name!r}") as conn:
            user_id = self._require_user(conn, old_name)
            if old_name != new_name and self._user_id(conn, new_name) is not None:
                raise UserExistsError(f"{new_name!r} already exists; remove it first or choose another name")
            self._claim_keys(conn)
            holder = self._holder(conn, new_name)
            if holder is not None and holder[0] != user_id:
                raise UserExistsError(lookalike_message(new_name, holder[1]))
            conn.execute(
                "UPDATE users SET name = ?, name_key = ?, updated = ? WHERE id = ?",
                (new_name, name_key(new_name), now(), user_id),
            )
            self._claim_keys(conn)  # a look-alike of the old name, kept without a key, takes it
            row = conn.execute(self._SUMMARY + " WHERE u.id = ? GROUP BY u.id", (user_id,)).fetchone()
        return self._summary(row)
