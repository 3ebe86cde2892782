"""The local store: users, their templates, the frames that built them, and a verify audit log.

SQLite through sqlite-utils, in WAL mode with a busy timeout, so several facer
processes can enroll and verify at once. Every change is one `BEGIN IMMEDIATE`
transaction: a process killed half-way leaves the store as it was. Vectors are
float32 bytes; no pixels are ever stored. A template is only ever compared with
a probe made by the same model (its fingerprint is stored with it).
"""

from __future__ import annotations

import os
import sqlite3
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal, Sequence

import numpy as np
from sqlite_utils import Database

from facer_cli.compare import Band, band_for, validate_vector
from facer_cli.errors import (
    ModelMismatchError, StoreError, UnknownUserError, UserExistsError, UserNameError, VectorError,
)
from facer_cli.store.migrations import migrations

if TYPE_CHECKING:
    from facer_cli.aggregate import Template
    from facer_cli.reports import FrameReport
    from facer_cli.settings import Settings

Mode = Literal["new", "replace", "add"]
MODES = ("new", "replace", "add")
NAME_MAX = 128
# Outcome of an attempt that never got as far as a similarity.
NO_PROBE = "no_probe"
# Tables this module owns; a database holding others is not facer's.
OWN_TABLES = {"users", "templates", "samples", "attempts", "_sqlite_migrations"}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def validate_user_name(name: Any) -> str:
    """Any Unicode text, trimmed (and NFC-normalised), 1–128 characters, no control characters."""
    if not isinstance(name, str):
        raise UserNameError(f"a user name must be text, not {type(name).__name__}")
    cleaned = unicodedata.normalize("NFC", name.strip())
    if not cleaned:
        raise UserNameError("the user name is empty")
    if len(cleaned) > NAME_MAX:
        raise UserNameError(f"the user name has {len(cleaned)} characters; at most {NAME_MAX} are allowed")
    bad = next((c for c in cleaned if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)
    if bad is not None:
        raise UserNameError(f"the user name holds a control character (U+{ord(bad):04X}); use printable text")
    return cleaned


def vector_to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def blob_to_vector(blob: bytes, dimension: int) -> np.ndarray:
    vector = np.frombuffer(blob, dtype="<f4")
    if vector.shape != (dimension,):
        raise StoreError(f"a stored template has {vector.size} values instead of {dimension}: the database is corrupt")
    return vector.astype(np.float32)


# -- records ----------------------------------------------------------------
@dataclass
class StoredTemplate:
    id: int
    user: str
    dimension: int
    model: str
    frames_seen: int | None
    frames_used: int | None
    outliers: int | None
    mean_quality: float | None
    source: str | None
    created: str
    samples: int = 0
    vector: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "user": self.user,
            "dimension": self.dimension,
            "model": self.model,
            "frames_seen": self.frames_seen,
            "frames_used": self.frames_used,
            "outliers": self.outliers,
            "mean_quality": None if self.mean_quality is None else round(self.mean_quality, 4),
            "source": self.source,
            "created": self.created,
            "samples": self.samples,
        }


@dataclass
class UserSummary:
    name: str
    created: str
    updated: str
    templates: int
    frames: int
    models: list[str]
    last_enrolled: str | None
    last_verified: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Attempt:
    id: int
    user: str
    created: str
    similarity: float | None
    band: str
    source: str | None
    frames_seen: int | None
    frames_used: int | None
    template_id: int | None = None

    def to_dict(self) -> dict:
        data = dict(self.__dict__)
        if self.similarity is not None:
            data["similarity"] = round(self.similarity, 6)
        return data


@dataclass
class UserDetails:
    user: UserSummary
    templates: list[StoredTemplate]
    attempts: list[Attempt]

    def to_dict(self) -> dict:
        return {
            **self.user.to_dict(),
            "template_list": [t.to_dict() for t in self.templates],
            "recent_attempts": [a.to_dict() for a in self.attempts],
        }


@dataclass
class Removal:
    user: str
    templates: int
    samples: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Verification:
    """The best of a user's templates against a probe, and the attempt recorded."""

    user: str
    similarity: float
    band: Band
    threshold_high: float
    threshold_low: float
    template_id: int
    templates_compared: int
    model: str
    attempt_id: int
    created: str

    def to_dict(self) -> dict:
        return {
            "user": self.user,
            "similarity": round(self.similarity, 6),
            "band": self.band.value,
            "threshold_high": self.threshold_high,
            "threshold_low": self.threshold_low,
            "template_id": self.template_id,
            "templates_compared": self.templates_compared,
            "model": self.model,
            "attempt_id": self.attempt_id,
            "created": self.created,
        }


# -- the store --------------------------------------------------------------
class Store:
    """A facer database. `Store.open(settings)` uses `db` (or the per-user data folder).

        >>> with Store("facer.db") as store:
        ...     store.list()
    """

    def __init__(self, path: Path | str, busy_timeout_s: float = 30.0):
        self.path = Path(path).expanduser()
        self.busy_timeout_s = busy_timeout_s
        self.read_only = False
        self._prepare_path()
        self.conn: sqlite3.Connection | None = None
        with self._errors("open"):
            self.conn = sqlite3.connect(str(self.path), timeout=busy_timeout_s)
            self.db = Database(self.conn, execute_plugins=False, recursive_triggers=False)
            self._configure()
            self._migrate()

    @classmethod
    def open(cls, settings: "Settings | None" = None) -> "Store":
        if settings is None:
            from facer_cli.settings import default_settings

            settings = default_settings()
        return cls(settings.db_path, settings.db_busy_timeout_s)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Store {self.path}>"

    # -- opening -----------------------------------------------------------
    def _prepare_path(self) -> None:
        """Create the folder (0700) and the file (0600) when missing; never loosen existing ones."""
        if self.path.is_dir():
            raise StoreError(f"database path {self.path} is a folder; give a file name (e.g. {self.path / 'facer.db'})")
        folder = self.path.parent
        target = folder
        try:
            if not folder.exists():
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            target = self.path
            if not self.path.exists():
                try:
                    os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
                except FileExistsError:
                    pass  # another process created it first
        except OSError as exc:
            raise StoreError(
                f"cannot create {target}: {exc.strerror or exc}; choose another location with --db or FACER_DB"
            ) from None

    def _configure(self) -> None:
        conn = self.conn
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        # Deleted rows (a removed user's embeddings) are overwritten, not left in free pages.
        conn.execute("PRAGMA secure_delete = ON")
        # Reading the schema is the first read of the file: "file is not a database" shows here.
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if (foreign := tables - OWN_TABLES - {"sqlite_sequence", "sqlite_stat1"}) and "users" not in tables:
            raise StoreError(
                f"{self.path} is an SQLite database but not a facer store (it holds {', '.join(sorted(foreign)[:3])}); "
                "choose another file with --db or FACER_DB"
            )
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if mode.lower() != "wal":
            try:
                conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as exc:
                if "readonly" not in str(exc) and "read-only" not in str(exc):
                    raise
                self.read_only = True
        # synchronous stays FULL (SQLite's default): a committed enrollment or audit row survives
        # a power cut, not only a crash of the process; it costs one fsync per commit.

    def _migrate(self) -> None:
        known = {m.name for m in getattr(migrations, "_migrations", [])}
        applied = {m.name for m in migrations.applied(self.db)}
        if applied - known:
            raise StoreError(
                f"{self.path} was written by a newer facer (schema steps {', '.join(sorted(applied - known))}); "
                "upgrade facer to use it"
            )
        if not migrations.pending(self.db):
            return
        if self.read_only:
            raise StoreError(f"database {self.path} is read-only and has no facer tables yet")
        with self._transaction("set up the database"):
            migrations.apply(self.db)  # re-checks what is pending inside the lock

    # -- errors and transactions ---------------------------------------------
    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """sqlite3 errors become one `StoreError` line that says what to do."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self._store_error(exc, action) from None

    def _store_error(self, exc: sqlite3.Error, action: str) -> StoreError:
        text = str(exc)
        lower = text.lower()
        where = f"database {self.path}"
        if "locked" in lower or "busy" in lower:
            return StoreError(
                f"{where} is busy: another process held it for more than {self.busy_timeout_s:g} s "
                f"(db_busy_timeout_s) while trying to {action}; try again"
            )
        if "readonly" in lower or "read-only" in lower:
            return StoreError(
                f"{where} is read-only: cannot {action}; make the file and its folder writable, "
                "or use another database with --db or FACER_DB"
            )
        if "unable to open" in lower:
            return StoreError(
                f"cannot open {where} to {action}: check that it and its folder exist and are accessible"
            )
        if "not a database" in lower or "malformed" in lower or "corrupt" in lower:
            return StoreError(
                f"{where} is not a facer database or is corrupt ({text}); restore it from a backup, "
                "or use another database with --db or FACER_DB"
            )
        if "disk i/o" in lower or "full" in lower:
            return StoreError(f"{where}: cannot {action}: {text} (is the disk full or failing?)")
        return StoreError(f"{where}: cannot {action}: {text}")

    @contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE` … `COMMIT`: the write lock is taken up front (waiting up to the
        busy timeout), so concurrent writers queue instead of failing half-way."""
        conn = self._connection()
        with self._errors(action):
            if self.read_only:
                raise sqlite3.OperationalError("attempt to write a readonly database")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise
            conn.commit()

    def _connection(self) -> sqlite3.Connection:
        if self.conn is None:
            raise StoreError(f"database {self.path} is closed")
        return self.conn

    def _read(self, sql: str, params: Sequence[Any] = (), action: str = "read it") -> list[sqlite3.Row]:
        conn = self._connection()
        with self._errors(action):
            return conn.execute(sql, params).fetchall()

    def _user_id(self, conn: sqlite3.Connection, name: str) -> int | None:
        row = conn.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def _require_user(self, conn: sqlite3.Connection, name: str) -> int:
        user_id = self._user_id(conn, name)
        if user_id is None:
            raise UnknownUserError(f"no user named {name!r} in {self.path}; see `facer users list`")
        return user_id

    def _templates(self, conn: sqlite3.Connection, user_id: int, name: str, vectors: bool) -> list[StoredTemplate]:
        rows = conn.execute(
            "SELECT t.id, t.dimension, t.model, t.frames_seen, t.frames_used, t.outliers, t.mean_quality,"
            " t.source, t.created, (SELECT count(*) FROM samples s WHERE s.template_id = t.id),"
            f" {'t.vector' if vectors else 'NULL'}"
            " FROM templates t WHERE t.user_id = ? ORDER BY t.id",
            (user_id,),
        ).fetchall()
        return [
            StoredTemplate(
                id=r[0], user=name, dimension=r[1], model=r[2], frames_seen=r[3], frames_used=r[4],
                outliers=r[5], mean_quality=r[6], source=r[7], created=r[8], samples=r[9],
                vector=None if r[10] is None else blob_to_vector(r[10], r[1]),
            )
            for r in rows
        ]

    # -- writing templates -----------------------------------------------------
    def enroll(
        self,
        user: str,
        template: "Template",
        frames: Sequence["FrameReport"] = (),
        *,
        model: str,
        source: str,
        mode: Mode = "new",
    ) -> StoredTemplate:
        """Store a template built from `frames` (and one sample row per frame), in one transaction.

        `mode`: "new" (the user must not exist), "replace" (the new template replaces every
        old one) or "add" (another template for the same person, from the same model).
        """
        samples = sample_rows(template, frames)
        return self._save(user, template.vector, model=model, source=source, mode=mode, samples=samples,
                          frames_seen=template.frames_seen, frames_used=len(template.used),
                          outliers=len(template.outliers), mean_quality=template.mean_quality)

    def import_vector(self, user: str, vector: np.ndarray, *, model: str, source: str, mode: Mode = "new") -> StoredTemplate:
        """Store a template given as a vector (e.g. a `.npy` from `facer capture` or `users export`)."""
        vector = validate_vector(np.asarray(vector), source)
        if not model or not model.strip():
            raise VectorError(f"{source}: the model that made this vector is unknown; give its fingerprint")
        return self._save(user, vector, model=model.strip(), source=source, mode=mode, samples=[],
                          frames_seen=None, frames_used=None, outliers=None, mean_quality=None)

    def _save(self, user: str, vector: np.ndarray, *, model: str, source: str, mode: Mode, samples: list[dict],
              frames_seen: int | None, frames_used: int | None, outliers: int | None,
              mean_quality: float | None) -> StoredTemplate:
        name = validate_user_name(user)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        created = now()
        with self._transaction(f"enroll {name!r}") as conn:
            user_id = self._user_id(conn, name)
            if user_id is not None:
                existing = conn.execute(
                    "SELECT count(*), group_concat(DISTINCT model) FROM templates WHERE user_id = ?", (user_id,)
                ).fetchone()
                if mode == "new":
                    raise UserExistsError(
                        f"{name!r} is already enrolled ({existing[0]} template(s)); pass --replace to replace "
                        "the old template(s) or --add to add another one"
                    )
                if mode == "add" and existing[0] and existing[1] != model:
                    raise ModelMismatchError(
                        f"{name!r} was enrolled with model {existing[1]}, this template comes from {model}; "
                        "templates of different models are never compared: use --replace to re-enroll"
                    )
            same_model = conn.execute("SELECT dimension FROM templates WHERE model = ? LIMIT 1", (model,)).fetchone()
            if same_model is not None and same_model[0] != vector.shape[0]:
                raise ModelMismatchError(
                    f"model {model} makes {same_model[0]}-d templates, this one has {vector.shape[0]} values"
                )
            if user_id is None:
                user_id = conn.execute(
                    "INSERT INTO users (name, created, updated) VALUES (?, ?, ?)", (name, created, created)
                ).lastrowid
            else:
                if mode == "replace":
                    self._delete_templates(conn, user_id)
                conn.execute("UPDATE users SET updated = ? WHERE id = ?", (created, user_id))
            template_id = conn.execute(
                "INSERT INTO templates (user_id, vector, dimension, model, frames_seen, frames_used, outliers,"
                " mean_quality, source, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (user_id, vector_to_blob(vector), int(vector.shape[0]), model, frames_seen, frames_used, outliers,
                 None if mean_quality is None else float(mean_quality), source, created),
            ).lastrowid
            conn.executemany(
                "INSERT INTO samples (template_id, position, source, embedding, det_score, quality, yaw, pitch,"
                " roll, sharpness, decision, reason) VALUES (:template_id, :position, :source, :embedding,"
                " :det_score, :quality, :yaw, :pitch, :roll, :sharpness, :decision, :reason)",
                ({**sample, "template_id": template_id} for sample in samples),
            )
        return StoredTemplate(
            id=template_id, user=name, dimension=int(vector.shape[0]), model=model, frames_seen=frames_seen,
            frames_used=frames_used, outliers=outliers, mean_quality=mean_quality, source=source, created=created,
            samples=len(samples), vector=vector,
        )

    @staticmethod
    def _delete_templates(conn: sqlite3.Connection, user_id: int) -> tuple[int, int]:
        samples = conn.execute(
            "DELETE FROM samples WHERE template_id IN (SELECT id FROM templates WHERE user_id = ?)", (user_id,)
        ).rowcount
        templates = conn.execute("DELETE FROM templates WHERE user_id = ?", (user_id,)).rowcount
        return templates, samples

    def check_writable(self, action: str = "write to it") -> None:
        """`StoreError` now — not after a capture — when the store cannot be written (read-only,
        or locked beyond the busy timeout). Changes nothing."""
        with self._transaction(action) as conn:
            conn.execute("UPDATE users SET name = name WHERE 0")  # opens a write transaction on the file

    # -- verifying ---------------------------------------------------------
    def check_verifiable(self, user: str, model: str) -> list[StoredTemplate]:
        """The user's templates made by `model` (no vectors); `UnknownUserError` or
        `ModelMismatchError` when there are none. Lets a front end fail before capturing."""
        name = validate_user_name(user)
        conn = self._connection()
        with self._errors(f"read {name!r}"):
            user_id = self._require_user(conn, name)
            templates = self._templates(conn, user_id, name, vectors=False)
        return self._matching(name, templates, model)

    def _matching(self, name: str, templates: list[StoredTemplate], model: str) -> list[StoredTemplate]:
        usable = [t for t in templates if t.model == model]
        if not usable:
            if not templates:
                raise UnknownUserError(f"{name!r} has no template; enroll them again")
            others = ", ".join(sorted({t.model for t in templates}))
            raise ModelMismatchError(
                f"{name!r} was enrolled with model {others}, but the current model is {model}; templates of "
                f"different models are never compared: re-enroll with `facer enroll {name} --replace …`"
            )
        return usable

    def verify(
        self,
        user: str,
        probe: np.ndarray,
        *,
        model: str,
        settings: "Settings",
        source: str,
        frames_seen: int | None = None,
        frames_used: int | None = None,
    ) -> Verification:
        """Compare the probe with every template of the user made by `model`, keep the best,
        and record the attempt — all in one transaction. Touches only that user's rows."""
        name = validate_user_name(user)
        probe = validate_vector(np.asarray(probe), "probe")
        created = now()
        with self._transaction(f"verify {name!r}") as conn:
            user_id = self._require_user(conn, name)
            templates = self._matching(name, self._templates(conn, user_id, name, vectors=True), model)
            wrong = [t for t in templates if t.dimension != probe.shape[0]]
            if wrong:
                raise ModelMismatchError(
                    f"{name!r}'s template {wrong[0].id} has {wrong[0].dimension} values, the probe {probe.shape[0]}: "
                    "they come from different models; re-enroll"
                )
            matrix = np.stack([t.vector for t in templates])
            similarities = matrix.astype(np.float64) @ probe.astype(np.float64)
            best = int(np.argmax(similarities))
            similarity = float(similarities[best])
            band = band_for(similarity, settings)
            attempt_id = conn.execute(
                "INSERT INTO attempts (user_id, user_name, created, similarity, band, threshold_high, threshold_low,"
                " template_id, model, source, frames_seen, frames_used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (user_id, name, created, similarity, band.value, settings.cosine_threshold_high,
                 settings.cosine_threshold_low, templates[best].id, model, source, frames_seen, frames_used),
            ).lastrowid
        return Verification(
            user=name, similarity=similarity, band=band, threshold_high=settings.cosine_threshold_high,
            threshold_low=settings.cosine_threshold_low, template_id=templates[best].id,
            templates_compared=len(templates), model=model, attempt_id=attempt_id, created=created,
        )

    def record_failed_attempt(
        self, user: str, *, model: str, source: str, frames_seen: int | None, frames_used: int | None
    ) -> int | None:
        """Audit an attempt that produced no usable probe (band "no_probe"); None for an unknown user."""
        name = validate_user_name(user)
        with self._transaction(f"record an attempt for {name!r}") as conn:
            user_id = self._user_id(conn, name)
            if user_id is None:
                return None
            return conn.execute(
                "INSERT INTO attempts (user_id, user_name, created, band, model, source, frames_seen, frames_used)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (user_id, name, now(), NO_PROBE, model, source, frames_seen, frames_used),
            ).lastrowid

    # -- users -------------------------------------------------------------
    _SUMMARY = (
        "SELECT u.name, u.created, u.updated, count(t.id), coalesce(sum(t.frames_used), 0),"
        " group_concat(DISTINCT t.model), max(t.created),"
        " (SELECT max(a.created) FROM attempts a WHERE a.user_id = u.id)"
        " FROM users u LEFT JOIN templates t ON t.user_id = u.id"
    )

    @staticmethod
    def _summary(row: Sequence[Any]) -> UserSummary:
        return UserSummary(
            name=row[0], created=row[1], updated=row[2], templates=row[3], frames=row[4],
            models=sorted(row[5].split(",")) if row[5] else [], last_enrolled=row[6], last_verified=row[7],
        )

    def list(self) -> list[UserSummary]:
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
                "SELECT id, user_name, created, similarity, band, source, frames_seen, frames_used, template_id"
                " FROM attempts WHERE user_id = ? ORDER BY created DESC, id DESC LIMIT ?",
                (user_id, attempts),
            ).fetchall()
        return UserDetails(self._summary(row), templates, [Attempt(*r) for r in recent])

    def templates(self, user: str, with_vectors: bool = True) -> list[StoredTemplate]:
        name = validate_user_name(user)
        conn = self._connection()
        with self._errors(f"read {name!r}"):
            return self._templates(conn, self._require_user(conn, name), name, vectors=with_vectors)

    def samples(self, template_id: int) -> list[dict]:
        """The per-frame rows of one template (embeddings as float32 arrays, kept frames only)."""
        conn = self._connection()
        with self._errors("read samples"):
            cursor = conn.execute(
                "SELECT position, source, embedding, det_score, quality, yaw, pitch, roll, sharpness, decision, reason"
                " FROM samples WHERE template_id = ? ORDER BY position",
                (template_id,),
            )
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row)) for row in cursor.fetchall()]
        for row in rows:
            if row["embedding"] is not None:
                row["embedding"] = np.frombuffer(row["embedding"], dtype="<f4").astype(np.float32)
        return rows

    def attempts(self, user: str | None = None, limit: int = 100) -> list[Attempt]:
        """The audit log, newest first (by user name as recorded, so removed users' attempts show too)."""
        sql = "SELECT id, user_name, created, similarity, band, source, frames_seen, frames_used, template_id FROM attempts"
        params: tuple = ()
        if user is not None:
            sql += " WHERE user_name = ?"
            params = (validate_user_name(user),)
        rows = self._read(sql + " ORDER BY created DESC, id DESC LIMIT ?", (*params, limit), action="read the audit log")
        return [Attempt(*row) for row in rows]

    def remove(self, user: str) -> Removal:
        """Delete the user, every template and every sample (overwritten on disk); the audit log
        keeps the name and outcomes of their attempts, never an embedding."""
        name = validate_user_name(user)
        with self._transaction(f"remove {name!r}") as conn:
            user_id = self._require_user(conn, name)
            templates, samples = self._delete_templates(conn, user_id)
            conn.execute("UPDATE attempts SET user_id = NULL WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
        self._checkpoint()
        return Removal(name, templates, samples)

    def _checkpoint(self) -> None:
        """Move the WAL into the database and truncate it, so deleted pages leave no copy behind."""
        try:
            self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass  # readers hold the WAL: SQLite truncates it at a later checkpoint

    def rename(self, old: str, new: str) -> UserSummary:
        old_name, new_name = validate_user_name(old), validate_user_name(new)
        with self._transaction(f"rename {old_name!r}") as conn:
            user_id = self._require_user(conn, old_name)
            if old_name != new_name and self._user_id(conn, new_name) is not None:
                raise UserExistsError(f"{new_name!r} already exists; remove it first or choose another name")
            conn.execute("UPDATE users SET name = ?, updated = ? WHERE id = ?", (new_name, now(), user_id))
            row = conn.execute(self._SUMMARY + " WHERE u.id = ? GROUP BY u.id", (user_id,)).fetchone()
        return self._summary(row)

    def export(self, user: str, template_id: int | None = None) -> StoredTemplate:
        """One template with its vector: the given one, or the newest."""
        templates = self.templates(user, with_vectors=True)
        if not templates:
            raise UnknownUserError(f"{user!r} has no template; enroll them again")
        if template_id is None:
            return templates[-1]
        for template in templates:
            if template.id == template_id:
                return template
        raise UnknownUserError(
            f"{templates[0].user!r} has no template {template_id} (has: {', '.join(str(t.id) for t in templates)})"
        )

    def check(self) -> str:
        """`PRAGMA quick_check`: "ok", or `StoreError` describing the damage (reads the whole file)."""
        rows = self._read("PRAGMA quick_check", action="check it")
        result = "; ".join(str(r[0]) for r in rows[:5])
        if result != "ok":
            raise StoreError(f"database {self.path} is corrupt ({result}); restore it from a backup")
        return result


def sample_rows(template: "Template", frames: Sequence["FrameReport"]) -> list[dict]:
    """One row per frame: measurements and the decision; an embedding only for frames the
    template was built from (an outlier may be someone else's face, so it is not kept)."""
    used = set(template.used)
    rows = []
    for position, frame in enumerate(frames):
        face = frame.subject
        if position in used:
            decision, reason = "kept", ""
        elif position in template.outlier_cosines:
            decision = "outlier"
            reason = f"outlier: cosine {template.outlier_cosines[position]:.2f} to the other frames"
        else:
            decision, reason = "rejected", frame.reason or "no face"
        embedding = frame.embedding if position in used else None
        rows.append({
            "position": position,
            "source": frame.source,
            "embedding": None if embedding is None else vector_to_blob(embedding),
            "det_score": None if face is None else face.det_score,
            "quality": None if face is None else face.quality,
            "yaw": None if face is None else face.yaw,
            "pitch": None if face is None else face.pitch,
            "roll": None if face is None else face.roll,
            "sharpness": None if face is None else face.sharpness,
            "decision": decision,
            "reason": reason,
        })
    return rows
