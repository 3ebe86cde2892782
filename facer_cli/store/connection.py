"""The store's file: opening, migrations, transactions, and sqlite3 errors in one line.

SQLite through sqlite-utils, in WAL mode with a busy timeout, so several facer
processes can enroll and verify at once. Every change is one `BEGIN IMMEDIATE`
transaction: a process killed half-way leaves the store as it was.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from sqlite_utils import Database

from facer_cli.errors import StoreError
from facer_cli.store.migrations import STEP_NAMES, migrations

# Tables facer owns; a database holding others is not facer's.
OWN_TABLES = {"users", "templates", "samples", "attempts", "_sqlite_migrations"}
SQLITE_TABLES = {"sqlite_sequence", "sqlite_stat1"}


def _literal(text: str) -> str:
    """Text from SQLite, safe inside a `StoreError` template."""
    return text.replace("{", "{{").replace("}", "}}")


class StoreConnection:
    """One open database file: configured, migrated, with transactions and one-line errors."""

    def __init__(self, path: Path | str, busy_timeout_s: float = 30.0):
        self.path = Path(path).expanduser()
        self.busy_timeout_s = busy_timeout_s
        self.read_only = False
        self._prepare_path()
        self.conn: sqlite3.Connection | None = None
        self._depth = 0
        with self._errors("open it"):
            self.conn = sqlite3.connect(str(self.path), timeout=busy_timeout_s)
            self.db = Database(self.conn, execute_plugins=False, recursive_triggers=False)
            self._configure()
            self._migrate()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __enter__(self) -> "StoreConnection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"

    # -- opening -----------------------------------------------------------
    def _prepare_path(self) -> None:
        """Create the folder (0700) and the file (0600) when missing; never loosen existing ones."""
        if self.path.is_dir():
            raise StoreError(
                f"{{db}} is a folder; give a file name (e.g. {_literal(str(self.path / 'facer.db'))})", self.path
            )
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
                f"cannot create {_literal(str(target))}: {_literal(exc.strerror or str(exc))}; "
                "choose another location for the database",
                self.path,
            ) from None

    def _configure(self) -> None:
        conn = self._connection()
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        # Deleted rows (a removed user's embeddings) are overwritten, not left in free pages.
        conn.execute("PRAGMA secure_delete = ON")
        # Reading the schema is the first read of the file: "file is not a database" shows here.
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if (foreign := tables - OWN_TABLES - SQLITE_TABLES) and "users" not in tables:
            raise StoreError(
                f"{{db}} is an SQLite database but not a facer store (it holds "
                f"{_literal(', '.join(sorted(foreign)[:3]))}); choose another database file",
                self.path,
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
        applied = {m.name for m in migrations.applied(self.db)}
        if unknown := applied - set(STEP_NAMES):
            raise StoreError(
                f"{{db}} was written by a newer facer (schema steps {_literal(', '.join(sorted(unknown)))}); "
                "upgrade facer to use it",
                self.path,
            )
        if not migrations.pending(self.db):
            return
        if self.read_only:
            raise StoreError("{db} is read-only and has no facer tables yet", self.path)
        with self.transaction("set up the database"):
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
        text = _literal(str(exc))
        lower = text.lower()
        action = _literal(action)
        if "locked" in lower or "busy" in lower:
            template = (
                f"{{db}} is busy: another process held it for more than {self.busy_timeout_s:g} s "
                f"(db_busy_timeout_s) while trying to {action}; try again"
            )
        elif "readonly" in lower or "read-only" in lower:
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
    def transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE` … `COMMIT`: the write lock is taken up front (waiting up to the
        busy timeout), so concurrent writers queue instead of failing half-way. Nested calls join
        the outer transaction, so a caller can read, decide and write atomically."""
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
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise
            finally:
                self._depth = 0
            conn.commit()

    def _connection(self) -> sqlite3.Connection:
        if self.conn is None:
            raise StoreError("{db} is closed", self.path)
        return self.conn

    def _read(self, sql: str, params: Sequence[Any] = (), action: str = "read it") -> list[Any]:
        conn = self._connection()
        with self._errors(action):
            return conn.execute(sql, params).fetchall()

    def checkpoint(self) -> None:
        """Move the WAL into the database and truncate it, so deleted pages leave no copy behind."""
        try:
            self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass  # readers hold the WAL: SQLite truncates it at a later checkpoint

    def check(self) -> str:
        """`PRAGMA quick_check`: "ok", or `StoreError` describing the damage (reads the whole file)."""
        rows = self._read("PRAGMA quick_check", action="check it")
        result = "; ".join(str(r[0]) for r in rows[:5])
        if result != "ok":
            raise StoreError(f"{{db}} is corrupt ({_literal(result)}); restore it from a backup", self.path)
        return result
