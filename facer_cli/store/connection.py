"""The store's file: opening, identifying, migrations, transactions, and sqlite3 errors in one line.

SQLite through sqlite-utils, in WAL mode with a busy timeout, so several facer
processes can enroll and verify at once. Every change is one `BEGIN IMMEDIATE`
transaction: a process killed half-way leaves the store as it was.

Opening takes an `access`:

- "read": never writes and never creates the file. On a location facer may write, the
  connection is `query_only`; where it may not (a read-only file, folder or mount), the file
  is opened `mode=ro` — with `immutable=1` when no WAL holds data — so nothing is created
  beside it.
- "write": as "read" for a missing file (an error), but may write to an existing store.
- "create": creates the folders (0700), the file (0600) and the schema when missing.

A file is identified before anything is written to it: `PRAGMA application_id` marks a
facer store; a store from an earlier facer (no id yet) is recognised by its migration
records and gets the id when next opened for writing; anything else is refused.
Setting a store up (schema, id, WAL mode) runs under an exclusive lock, retried until the
busy timeout has really passed, so any number of processes may open a new store at once.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Literal, Sequence
from urllib.parse import quote

from facer_cli.errors import StoreError
from facer_cli.store import migrations
from facer_cli.store.migrations import MIGRATION_SET, STEP_NAMES
from facer_cli.store.records import now
from facer_cli.store.urls import is_postgres_url, redact_url

if TYPE_CHECKING:
    from sqlite_utils import Database

Access = Literal["read", "write", "create"]
ACCESS: tuple[Access, ...] = ("read", "write", "create")
# `PRAGMA application_id` of a facer store: "FACE" in ASCII.
APPLICATION_ID = 0x46414345
# Tables facer owns; a database without the id and holding others is not facer's.
OWN_TABLES = {
    "users",
    "templates",
    "samples",
    "attempts",
    "pending_erasure",
    "gallery_version",
    "lookalikes",
    "identifications",
    "api_keys",
    "data_keys",
    "sidecar_keys",
    "_sqlite_migrations",
}
# Before its first write, a connection runs `PRAGMA quick_check(TABLE)` on these and their
# indexes: every command reads them, and they are small (about 3 ms per 10 000 users). The
# templates table (2 KB a row: 45 ms per 10 000) is checked where it is read (`cell_size_check`),
# wholly only before a removal; `users check` checks the whole file.
CHECKED_TABLES: tuple[str, ...] = ("users",)
# How long a removal waits for readers to let go of the old pages before it says that
# erasure is pending (finished by the next connection that can checkpoint).
ERASURE_WAIT_S = 1.0
# Steps a read-only store may lack and still be read (their tables and columns are read only when
# present): m003 (its templates were all checked imports, no erasure can be pending), m004 (no
# liveness columns in the audit log), m005 (no gallery counter: the gallery index scans for its
# stamp; no look-alikes or identify log to read), m006 (template ids as before: reading is the same),
# m007 (no name keys: names are found as typed, and no look-alike is said).
UNVERIFIED_STEP = "m003_unverified_models_and_pending_erasure"
LIVENESS_STEP = "m004_liveness_audit"
GALLERY_STEP = "m005_gallery_version_lookalikes_identify_log"
TEMPLATE_IDS_STEP = "m006_template_ids_never_reused"
NAME_KEY_STEP = "m007_user_name_keys"
# m008: no API keys (none to list) and no key names in the logs.
API_KEYS_STEP = "m008_api_keys_and_key_names"
# m009: no data keys (every template is read as written in the clear).
DATA_KEYS_STEP = "m009_data_keys"
# m010: no sidecar key (with a master key, the identify index is kept in memory).
SIDECAR_KEYS_STEP = "m010_sidecar_keys"
READ_OPTIONAL_STEPS = (
    UNVERIFIED_STEP,
    LIVENESS_STEP,
    GALLERY_STEP,
    TEMPLATE_IDS_STEP,
    NAME_KEY_STEP,
    API_KEYS_STEP,
    DATA_KEYS_STEP,
    SIDECAR_KEYS_STEP,
)


def _literal(text: str) -> str:
    """Text from SQLite, safe inside a `StoreError` template."""
    return text.replace("{", "{{").replace("}", "}}")


def _is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class StoreConnection:
    """One open database file: identified, configured, migrated, with transactions and one-line errors."""

    def __init__(self, path: Path | str, busy_timeout_s: float = 30.0, *, access: Access = "create"):
        if access not in ACCESS:
            raise ValueError(f"access must be one of {ACCESS}, not {access!r}")
        if is_postgres_url(str(path)):  # else it would become folders named "postgresql:" here
            raise StoreError(
                f"{redact_url(str(path))} is a PostgreSQL URL, not an SQLite file: "
                "open it with Store.open(settings) or open_store(settings)"
            )
        self.path = Path(path).expanduser()
        self.busy_timeout_s = busy_timeout_s
        self.access = access
        # The location cannot be written (file, folder or mount): opened read-only, nothing created.
        self.location_read_only = False
        # This connection refuses writes: opened for reading, or the location is read-only.
        self.read_only = True
        self.conn: sqlite3.Connection | None = None
        self._db: "Database | None" = None
        self._depth = 0
        self._erase_on_commit: float | None = None  # seconds to wait for readers: erase once committed
        self._checked: set[str] = set()
        self._steps: set[str] = set()
        self._locate()
        with self._errors("open it"):
            self._connect()
            self._open()

    @property
    def db(self) -> "Database":
        """The connection as a `sqlite_utils.Database` (for the schema steps; sqlite_utils loads on first use)."""
        if self._db is None or self._db.conn is not self.conn:
            from sqlite_utils import Database

            self._db = Database(self._connection(), execute_plugins=False, recursive_triggers=False)
        return self._db

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __enter__(self) -> "StoreConnection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} ({self.access})>"

    # -- the file ------------------------------------------------------------
    def _locate(self) -> None:
        """A folder is refused; a missing file is an error unless creating (folders 0700, file 0600)."""
        try:
            if self.path.is_dir():
                raise StoreError(
                    f"{{db}} is a folder; give a file name (e.g. {_literal(str(self.path / 'facer.db'))})", self.path
                )
            if self.path.exists():
                return
        except OSError as exc:
            raise StoreError(
                f"cannot open {{db}}: {_literal(exc.strerror or str(exc))}; check that it and its folder are accessible",
                self.path,
            ) from None
        if self.access != "create":
            raise self._missing()
        self._create_file()

    def _missing(self, why: str = "nothing has been enrolled there") -> StoreError:
        from facer_cli.settings import default_db_path

        default = default_db_path()
        note = "" if self.path.absolute() == default.absolute() else f" (the default store is {default})"
        return StoreError(f"there is no facer store at {{db}}: {why}", self.path, local_note=note)

    def _create_file(self) -> None:
        """Every folder facer creates is 0700, from the first missing one down; the file is 0600."""
        missing: list[Path] = []
        folder = self.path.absolute().parent
        target = folder
        try:
            while not folder.exists() and folder != folder.parent:
                missing.append(folder)
                folder = folder.parent
            for folder in reversed(missing):
                target = folder
                try:
                    folder.mkdir(mode=0o700)
                except FileExistsError:
                    continue  # another process made it first
                os.chmod(folder, 0o700)  # whatever the umask
            target = self.path
            try:
                handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                return  # another process created it first
            os.fchmod(handle, 0o600)
            os.close(handle)
        except OSError as exc:
            raise StoreError(
                f"cannot create {_literal(str(target))}: {_literal(exc.strerror or str(exc))}; "
                "choose another location for the database",
                self.path,
            ) from None

    def _location_writable(self) -> bool:
        """Whether SQLite can write here: the file, and its folder (for the -wal and -shm files) or
        those files themselves."""
        if not os.access(self.path, os.W_OK):
            return False
        if os.access(self.path.absolute().parent, os.W_OK | os.X_OK):
            return True
        return all(os.access(f"{self.path}{suffix}", os.W_OK) for suffix in ("-wal", "-shm"))

    def _connect(self) -> None:
        location = quote(str(self.path.absolute()), safe="/")
        if self._location_writable():
            uri = f"file:{location}?mode=rw"
            self.read_only = self.access == "read"
        else:
            # Nothing may be created beside the file. Without data in a WAL the file is all there
            # is: `immutable` reads it without the -shm file a read-only WAL reader would create.
            wal = Path(f"{self.path}-wal")
            uri = f"file:{location}?mode=ro"
            if not (wal.exists() and wal.stat().st_size > 0):
                uri += "&immutable=1"
            self.location_read_only = True
        self.conn = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout_s)
        conn = self.conn
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        # Deleted rows (a removed user's embeddings) are overwritten, not left in free pages.
        conn.execute("PRAGMA secure_delete = ON")
        # Every page read is checked more strictly, so damage on a command's path is an error.
        conn.execute("PRAGMA cell_size_check = ON")
        if self.read_only and not self.location_read_only:
            conn.execute("PRAGMA query_only = ON")
        # synchronous stays FULL (SQLite's default): a committed enrollment or audit row survives
        # a power cut, not only a crash of the process; it costs one fsync per commit.

    # -- identifying and setting up -------------------------------------------
    def _identify(self) -> str:
        """ "facer", "legacy" (an earlier facer's store, no id yet) or "empty"; `StoreError` for
        anyone else's file. Reads only."""
        conn = self._connection()
        # Reading the header is the first read of the file: "file is not a database" shows here.
        app_id = conn.execute("PRAGMA application_id").fetchall()[0][0]
        names = {
            row[0]
            for row in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')").fetchall()
            if not row[0].startswith("sqlite_")
        }
        steps: set[str] = set()
        sets: set[str] = set()
        if "_sqlite_migrations" in names:
            rows = conn.execute("SELECT migration_set, name FROM _sqlite_migrations").fetchall()
            sets = {row[0] for row in rows}
            steps = {row[1] for row in rows if row[0] == MIGRATION_SET}
        self._steps = steps
        if app_id == APPLICATION_ID:
            return "facer"
        if app_id != 0:
            raise StoreError(
                f"{{db}} is an SQLite database of another application (application id {app_id:#010x}), "
                "not a facer store; choose another database file",
                self.path,
            )
        if not names:
            return "empty"
        if names <= OWN_TABLES and sets == {MIGRATION_SET} and "m001_users_templates_samples" in steps:
            return "legacy"
        foreign = sorted(names - OWN_TABLES) or sorted(names)
        raise StoreError(
            f"{{db}} is an SQLite database but not a facer store (it holds "
            f"{_literal(', '.join(foreign[:3]))}); choose another database file",
            self.path,
        )

    def _refuse_newer(self) -> None:
        if unknown := self._steps - set(STEP_NAMES):
            raise StoreError(
                f"{{db}} was written by a newer facer (schema steps {_literal(', '.join(sorted(unknown)))}); "
                "upgrade facer to use it",
                self.path,
            )

    def _pending_steps(self) -> list[str]:
        return [name for name in STEP_NAMES if name not in self._steps]

    def _open(self) -> None:
        self._retrying("open it", self._identify_and_set_up)
        if self.read_only and self._pending_steps() and (self.location_read_only or not self._upgrade()):
            if not set(self._pending_steps()) <= set(READ_OPTIONAL_STEPS):
                raise StoreError(
                    "{db} comes from an earlier facer and is read-only: open it once where it can be "
                    "written, so that facer can upgrade it",
                    self.path,
                )
            # readable as it is (see READ_OPTIONAL_STEPS)
        if not self.location_read_only:
            self._finish_erasure(wait_s=0.0)

    def has_step(self, name: str) -> bool:
        """Whether the store has this schema step (a read-only store may be one step behind)."""
        return name in self._steps

    def _identify_and_set_up(self) -> None:
        kind = self._identify()
        self._refuse_newer()
        if kind == "empty" and self.access != "create":
            raise self._missing("the file is empty")
        if self.read_only:
            if kind == "empty":
                raise StoreError("{db} is read-only and holds no facer store yet", self.path)
            return
        mode = self._connection().execute("PRAGMA journal_mode").fetchall()[0][0]
        if kind != "facer" or self._pending_steps() or mode.lower() != "wal":
            self._set_up_once()

    def _upgrade(self) -> bool:
        """A reader of an earlier facer's store that may be written: bring the schema up to date."""
        with StoreConnection(self.path, self.busy_timeout_s, access="write"):
            pass
        self._identify()
        return not self._pending_steps()

    def _retrying(self, action: str, work: Callable[[], None]) -> None:
        """`work`, again while SQLite says busy — which it reports at once for some steps of setting
        a store up, outside its busy handler — until the busy timeout has really passed."""
        started = time.monotonic()
        while True:
            try:
                work()
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                waited = time.monotonic() - started
                if waited >= self.busy_timeout_s:
                    raise self._busy_error(action, waited) from None
                time.sleep(random.uniform(0.002, 0.02))

    def _set_up_once(self) -> None:
        """Schema, application id and WAL mode, under an exclusive lock."""
        conn = self._connection()
        if conn.in_transaction:
            conn.rollback()
        conn.execute("BEGIN EXCLUSIVE")
        try:
            kind = self._identify()  # again, inside the lock: another process may have done it
            self._refuse_newer()
            if self._pending_steps():
                migrations.apply(self.db)
            if kind != "facer":
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.commit()
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        self._identify()
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchall()[0][0]
        if mode.lower() != "wal":  # another connection held the file: SQLite kept the old mode
            raise sqlite3.OperationalError("database is locked (changing to WAL mode)")

    def _has_table(self, name: str) -> bool:
        return bool(self._read("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))

    # -- errors and transactions ---------------------------------------------
    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """sqlite3 errors become one `StoreError` line that says what to do."""
        started = time.monotonic()
        try:
            yield
        except sqlite3.Error as exc:
            raise self._store_error(exc, action, time.monotonic() - started) from None

    def _busy_error(self, action: str, waited: float) -> StoreError:
        return StoreError(
            f"{{db}} is busy: another process held it while this one waited {waited:.1f} s "
            f"(db_busy_timeout_s is {self.busy_timeout_s:g} s) to {_literal(action)}; try again",
            self.path,
        )

    def _store_error(self, exc: sqlite3.Error, action: str, waited: float = 0.0) -> StoreError:
        text = _literal(str(exc))
        lower = text.lower()
        action = _literal(action)
        if "locked" in lower or "busy" in lower:
            return self._busy_error(action, waited)
        if "readonly" in lower or "read-only" in lower:
            template = f"{{db}} is read-only: cannot {action}; make the file and its folder writable, or use another"
        elif "unable to open" in lower:
            template = f"cannot open {{db}} to {action}: check that it and its folder exist and are accessible"
        elif "not a database" in lower or "malformed" in lower or "corrupt" in lower:
            template = f"{{db}} is not a facer database or is corrupt ({text}); restore it from a backup or use another"
        elif "disk i/o" in lower or "full" in lower:
            template = f"{{db}}: cannot {action}: {text} (is the disk full or failing?)"
        else:
            template = f"{{db}}: cannot {action}: {text}"
        return StoreError(template, self.path)

    @contextmanager
    def transaction(self, action: str, *, check: Iterable[str] = CHECKED_TABLES) -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE` … `COMMIT`: the write lock is taken up front (waiting up to the
        busy timeout), so concurrent writers queue instead of failing half-way. Nested calls join
        the outer transaction, so a caller can read, decide and write atomically.

        Before the first write of this connection, `check` tables (default: users) pass
        `PRAGMA quick_check(TABLE)`, or `StoreError` says the store is corrupt and nothing
        is written."""
        conn = self._connection()
        if self._depth:
            self._depth += 1
            try:
                yield conn
            finally:
                self._depth -= 1
            return
        with self._errors(action):
            if self.read_only:
                raise sqlite3.OperationalError("attempt to write a readonly database")
            conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                self._check_tables(conn, check)
                yield conn
            except BaseException:
                self._erase_on_commit = None
                # A store closed meanwhile has rolled back already: a transaction abandoned by a
                # Ctrl-C and closed by the garbage collector after `close()` must not raise there.
                if self.conn is conn and conn.in_transaction:
                    conn.rollback()
                raise
            finally:
                self._depth = 0
            conn.commit()
        if self._erase_on_commit is not None:
            wait_s, self._erase_on_commit = self._erase_on_commit, None
            self._finish_erasure(wait_s)

    def erase_when_committed(self, conn: sqlite3.Connection, wait_s: float = ERASURE_WAIT_S) -> None:
        """In a transaction that deletes embeddings: once it commits, the WAL is copied into the file
        and truncated, waiting at most `wait_s` for readers that hold older pages (if they do not
        let go, the erasure stays pending and the next connection that can checkpoint finishes it)."""
        conn.execute("INSERT INTO pending_erasure (created) VALUES (?)", (now(),))
        self._erase_on_commit = wait_s

    def _check_tables(self, conn: sqlite3.Connection, tables: Iterable[str]) -> None:
        for table in tables:
            if table in self._checked:
                continue
            try:
                rows = conn.execute(f"PRAGMA quick_check({table})").fetchall()
                result = "; ".join(str(r[0]) for r in rows[:3])
            except sqlite3.DatabaseError as exc:  # damage that stops the check itself
                if _is_busy(exc):
                    raise
                result = str(exc)
            if result != "ok":
                raise StoreError(
                    f"{{db}} is corrupt (table {table}: {_literal(result)}); nothing was written; "
                    "restore it from a backup",
                    self.path,
                )
            self._checked.add(table)

    def _connection(self) -> sqlite3.Connection:
        if self.conn is None:
            raise StoreError("{db} is closed", self.path)
        return self.conn

    def _read(self, sql: str, params: Sequence[Any] = (), action: str = "read it") -> list[Any]:
        conn = self._connection()
        with self._errors(action):
            return conn.execute(sql, params).fetchall()

    # -- erasure ------------------------------------------------------------------
    def checkpoint(self, wait_s: float = ERASURE_WAIT_S) -> bool:
        """Copy the WAL into the database file and truncate it to 0 bytes, so that no older version
        of a page (a removed user's embeddings) is left in either file. Waits at most `wait_s` for
        readers that still use older pages; False when they did not let go."""
        conn = self._connection()
        conn.execute(f"PRAGMA busy_timeout = {int(min(wait_s, self.busy_timeout_s) * 1000)}")
        try:
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()[0][0]
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            busy = 1
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        return busy == 0

    def _finish_erasure(self, wait_s: float) -> bool:
        """Erase what removals left pending, when nothing holds the old pages any more: True when none
        is pending now. Also done by a reader, which may checkpoint but writes nothing else."""
        conn = self._connection()
        if self.location_read_only or not self._has_table("pending_erasure"):
            return True
        newest = conn.execute("SELECT max(id) FROM pending_erasure").fetchall()[0][0]
        if newest is None:
            return True
        with self._errors("erase removed users' data"):
            if not self.checkpoint(wait_s):
                return False
            if self.read_only:
                conn.execute("PRAGMA query_only = OFF")
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DELETE FROM pending_erasure WHERE id <= ?", (newest,))
                conn.commit()
            finally:
                if conn.in_transaction:
                    conn.rollback()
                if self.read_only:
                    conn.execute("PRAGMA query_only = ON")
            self.checkpoint(0.0)
        return True

    def erasure_pending(self) -> bool:
        """Whether a removal's bytes may still be in the files (a reader held older pages)."""
        if not self._has_table("pending_erasure"):
            return False
        return bool(self._read("SELECT 1 FROM pending_erasure LIMIT 1", action="read it"))

    def check(self) -> str:
        """`PRAGMA quick_check`: "ok", or `StoreError` describing the damage (reads the whole file)."""
        rows = self._read("PRAGMA quick_check", action="check it")
        result = "; ".join(str(r[0]) for r in rows[:5])
        if result != "ok":
            raise StoreError(f"{{db}} is corrupt ({_literal(result)}); restore it from a backup", self.path)
        return result
