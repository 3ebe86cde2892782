"""A PostgreSQL database: connecting, its schema's version, transactions with retries, and psycopg
errors in one line that never holds the password.

The password comes from where libpq looks (PGPASSWORD, ~/.pgpass, a service file) or the URL;
every message names the database by its URL with the password removed (`redact_url`), and any
text from the server or driver is scrubbed of it too. A connection is in autocommit mode: each
read is a statement of its own, or one `REPEATABLE READ READ ONLY` transaction where a method
reads several tables (`reading`); each change is one transaction (`transaction`), retried on a
serialization failure or deadlock with a bounded, jittered back-off (`write`).
"""

from __future__ import annotations

import random
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence, TypeVar
from urllib.parse import unquote

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from facer_cli.errors import StoreError, StoreUnavailableError
from facer_cli.store.connection import Access
from facer_cli.store.postgres.migrations import (
    CREATE_VERSION_TABLE,
    OWN_TABLES,
    SCHEMA_LOCK,
    STEP_NAMES,
    STEPS,
    VERSION_TABLE,
)
from facer_cli.store.records import now
from facer_cli.store.urls import redact_url, url_password

T = TypeVar("T")
ACCESS: tuple[Access, ...] = ("read", "write", "create")
# A server that does not answer is an error after this long (a URL's own connect_timeout wins).
CONNECT_TIMEOUT_S = 10
# Serialization failures and deadlocks: tried this many times in all, waiting between tries.
TRIES = 5
BACKOFF_S = (0.01, 0.2)
RETRYABLE = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)
# SQLSTATEs of a server going away or not ready: admin shutdown, crash shutdown, cannot connect now.
UNAVAILABLE_STATES = ("57P01", "57P02", "57P03", "08000", "08003", "08006")


def _literal(text: str) -> str:
    """Text from the server, safe inside a `StoreError` template."""
    return text.replace("{", "{{").replace("}", "}}")


class Retry(Exception):
    """A transaction lost a serialization conflict or a deadlock: run it again."""


class Scrubber:
    """Removes the URL's password (as written and decoded) from any text."""

    def __init__(self, url: str):
        password = url_password(url)
        self.secrets = sorted({s for s in (password, unquote(password or "")) if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "********")
        return text


def connect_options(url: str, connect_timeout_s: float | None = None) -> dict[str, Any]:
    """psycopg's keyword arguments for a facer connection: autocommit, named "facer", and a connect
    timeout (`connect_timeout_s`, else `CONNECT_TIMEOUT_S`) unless the URL sets its own."""
    options: dict[str, Any] = {"autocommit": True, "application_name": "facer"}
    if "connect_timeout" not in url:
        options["connect_timeout"] = max(1, round(connect_timeout_s or CONNECT_TIMEOUT_S))
    return options


def session_settings(busy_timeout_s: float, statement_timeout_s: float | None = None, read_only: bool = False) -> str:
    """The settings of a facer session in one statement (one round trip): the lock wait, a statement
    deadline when given, and read-only transactions for a read-only session."""
    settings = [("lock_timeout", str(int(busy_timeout_s * 1000)))]
    if statement_timeout_s:
        settings.append(("statement_timeout", str(max(1, int(statement_timeout_s * 1000)))))
    if read_only:
        settings.append(("default_transaction_read_only", "on"))
    return "SELECT " + ", ".join(f"set_config('{name}', '{value}', false)" for name, value in settings)


def connect(
    url: str,
    *,
    location: str,
    scrub: Scrubber,
    busy_timeout_s: float = 30.0,
    read_only: bool = False,
    connect_timeout_s: float | None = None,
    statement_timeout_s: float | None = None,
    settings: bool = True,
) -> psycopg.Connection:
    """An autocommit connection to `url`, or one `StoreError` line saying what to do. Its session
    settings (`session_settings`) are made here, unless `settings` is False: the caller makes them
    along with its first query."""
    options = connect_options(url, connect_timeout_s)
    try:
        conn = psycopg.connect(url, **options)
    except psycopg.Error as exc:
        raise connect_error(exc, location, scrub, options.get("connect_timeout")) from None
    encoding = conn.info.parameter_status("server_encoding") or ""
    if encoding.upper() != "UTF8":
        # In SQL_ASCII (or another) database psycopg hands names back as bytes or mangles them.
        conn.close()
        raise StoreError(
            f"database {location} is in the {encoding or 'unknown'} encoding; facer needs UTF8: "
            "create it with CREATE DATABASE … ENCODING 'UTF8' TEMPLATE template0"
        )
    if not settings:
        return conn
    try:
        conn.execute(session_settings(busy_timeout_s, statement_timeout_s, read_only))  # type: ignore[arg-type]
    except psycopg.Error as exc:
        conn.close()
        raise runtime_error(exc, "open it", location, scrub) from None
    return conn


def _reason(exc: BaseException, scrub: Scrubber) -> str:
    """The driver's message in one line: its last 'failed: …' part, without hints or the password."""
    lines = [line.strip() for line in scrub(str(exc)).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    if "failed: " in text:
        text = text.rsplit("failed: ", 1)[1]
    for level in ("FATAL:", "ERROR:"):
        text = text.removeprefix(level).strip()
    return text.rstrip(".")


def connect_error(exc: psycopg.Error, location: str, scrub: Scrubber, timeout: Any) -> StoreError:
    reason = _reason(exc, scrub)
    lower = scrub(str(exc)).lower()
    if "password authentication failed" in lower or "no password supplied" in lower or "authentication failed" in lower:
        template = (
            f"cannot log in to {{db}}: {_literal(reason)}; put the password in PGPASSWORD, ~/.pgpass or a "
            "pg_service.conf service (not in a shared facer.toml), and check the user name"
        )
    elif "database" in lower and "does not exist" in lower:
        template = f"{{db}}: {_literal(reason)}; create it (createdb) or correct the database name in the URL"
    elif "role" in lower and "does not exist" in lower:
        template = f"{{db}}: {_literal(reason)}; correct the user name in the URL or create the role"
    elif "timeout expired" in lower or "timed out" in lower:
        waited = f" within {timeout} s" if timeout else ""
        template = (
            f"cannot reach the PostgreSQL server of {{db}}{waited} (connect_timeout); check that it is "
            "running and reachable from here"
        )
        return StoreUnavailableError(template, location)
    elif any(
        word in lower
        for word in (
            "connection refused",
            "could not connect",
            "could not translate host",
            "no route",
            "is the server",
            "starting up",
            "shutting down",
            "recovery mode",
            "too many clients",
        )
    ):
        template = (
            f"cannot reach the PostgreSQL server of {{db}} ({_literal(reason)}); check that it is running "
            "and the host and port in the URL"
        )
        return StoreUnavailableError(template, location)
    elif isinstance(exc, psycopg.ProgrammingError) or "invalid" in lower or "missing" in lower:
        template = f"{{db}} is not a usable PostgreSQL URL ({_literal(reason)}); correct it"
    else:
        template = f"cannot connect to {{db}}: {_literal(reason)}"
    return StoreError(template, location)


def runtime_error(exc: BaseException, action: str, location: str, scrub: Scrubber, waited: float = 0.0) -> StoreError:
    reason = _literal(_reason(exc, scrub))
    action = _literal(action)
    if isinstance(exc, (pg_errors.LockNotAvailable, *RETRYABLE)):
        template = (
            f"{{db}} is busy: other sessions held what this one needed while it waited {waited:.1f} s to "
            f"{action}; try again"
        )
    elif isinstance(exc, pg_errors.ReadOnlySqlTransaction):
        template = f"{{db}} is opened read-only: cannot {action}"
    elif isinstance(exc, pg_errors.InsufficientPrivilege):
        template = f"{{db}}: the database user may not {action} ({reason}); grant it the privileges or use another"
    elif isinstance(exc, pg_errors.QueryCanceled):
        template = f"{{db}} did not answer in time to {action} ({reason}); try again"
        return StoreUnavailableError(template, location)
    elif (
        isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
        or getattr(exc, "sqlstate", None) in UNAVAILABLE_STATES
    ):
        template = (
            f"lost the connection to the PostgreSQL server of {{db}} while trying to {action} ({reason}); "
            "check that it is running, then try again"
        )
        return StoreUnavailableError(template, location)
    else:
        template = f"{{db}}: cannot {action}: {reason}"
    return StoreError(template, location)


class PostgresConnection:
    """One connection to a facer database on PostgreSQL: identified, migrated, with transactions
    and one-line errors. `access` as SQLite's: "read" (never writes: a read-only session),
    "write" (the schema must exist) or "create" (creates the schema in an empty database; the
    database itself must exist)."""

    backend = "postgresql"

    def __init__(
        self,
        url: str,
        busy_timeout_s: float = 30.0,
        *,
        access: Access = "create",
        borrowed: psycopg.Connection | None = None,
        give_back: Callable[[psycopg.Connection], None] | None = None,
        connect_timeout_s: float | None = None,
        statement_timeout_s: float | None = None,
    ):
        """`borrowed`: a connection of a pool (`facer_cli.store.postgres.pool.StorePool`), whose
        schema the pool checked once; `close` hands it to `give_back` rather than closing it."""
        if access not in ACCESS:
            raise ValueError(f"access must be one of {ACCESS}, not {access!r}")
        self.url = url.strip()
        self.location = redact_url(self.url)
        self.scrub = Scrubber(self.url)
        self.busy_timeout_s = busy_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.statement_timeout_s = statement_timeout_s
        self.access = access
        self.read_only = access == "read"
        self.schema_version = 0
        self._depth = 0
        self._after_commit: list[Callable[[], None]] = []
        self._give_back = give_back
        if borrowed is not None:
            self.conn: psycopg.Connection | None = borrowed
            self.schema_version = len(STEPS)
            return
        self.conn = connect(
            self.url,
            location=self.location,
            scrub=self.scrub,
            busy_timeout_s=busy_timeout_s,
            read_only=self.read_only,
            connect_timeout_s=connect_timeout_s,
            statement_timeout_s=statement_timeout_s,
            settings=False,  # made by `_open`'s first query
        )
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            if self._give_back is not None:
                self._give_back(conn)
            else:
                conn.close()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.location} ({self.access})>"

    # -- the schema ----------------------------------------------------------------
    def _applied(self, conn: psycopg.Connection) -> int | None:
        """The schema version (None: no facer schema in this database)."""
        if conn.execute("SELECT to_regclass(%s)", (VERSION_TABLE,)).fetchone() == (None,):
            return None
        row = conn.execute(f"SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}").fetchone()
        return int(row[0]) if row else 0

    def _foreign(self, conn: psycopg.Connection) -> list[str]:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            " AND table_name = ANY(%s) ORDER BY table_name",
            (list(OWN_TABLES),),
        ).fetchall()
        return [row[0] for row in rows]

    def _refuse_newer(self, version: int) -> None:
        if version > len(STEPS):
            raise StoreError(
                f"{{db}} was written by a newer facer (schema version {version}; this facer knows "
                f"{len(STEPS)}); upgrade facer to use it",
                self.location,
            )

    def _open(self) -> None:
        """The session's settings and the schema's version in one round trip, as every open of a
        facer store but a database's first finds it; anything else (no version table, or a schema
        to migrate or refuse) is looked into further."""
        conn = self._connection()
        settings = session_settings(self.busy_timeout_s, self.statement_timeout_s, self.read_only)
        with self._errors("open it"):
            try:
                row = conn.execute(
                    f"{settings}, (SELECT coalesce(max(version), 0) FROM {VERSION_TABLE})"  # type: ignore[arg-type]
                ).fetchone()
            except pg_errors.UndefinedTable:  # (autocommit: the statement rolled back; nothing else to)
                conn.execute(settings)  # type: ignore[arg-type]
            else:
                if row is not None and int(row[-1]) == len(STEPS):
                    self.schema_version = len(STEPS)
                    return
            version = self._applied(conn)
            if version is None:
                # Tables without the version table: another application's, unless a session setting
                # the schema up committed between these two looks (then the version table is there).
                if (found := self._foreign(conn)) and (version := self._applied(conn)) is None:
                    raise StoreError(
                        f"{{db}} holds tables named as facer's ({_literal(', '.join(found[:3]))}) but no facer "
                        "schema; it is not a facer store: use another database, or a schema of its own "
                        "(?options=-csearch_path%3Dfacer)",
                        self.location,
                    )
                if version is None and self.access != "create":
                    raise StoreError("there is no facer store in {db}: nothing has been enrolled there", self.location)
            if version is not None:
                self._refuse_newer(version)
            if (version or 0) < len(STEPS):
                if self.read_only:
                    raise StoreError(
                        "{db} comes from an earlier facer: open it once for writing, so that facer can upgrade it",
                        self.location,
                    )
                self._migrate()
            self.schema_version = len(STEPS)

    def _migrate(self) -> None:
        """The pending steps, each with its record, under the schema lock."""
        with self.transaction("set up its schema") as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            conn.execute(CREATE_VERSION_TABLE)
            version = self._applied(conn) or 0
            self._refuse_newer(version)
            for number in range(version + 1, len(STEPS) + 1):
                name, statements = STEPS[number - 1]
                for statement in statements:
                    if callable(statement):
                        statement(conn)
                    else:
                        conn.execute(statement)  # type: ignore[arg-type]  # the steps are constants
                conn.execute(
                    f"INSERT INTO {VERSION_TABLE} (version, name, applied) VALUES (%s, %s, %s)", (number, name, now())
                )

    @property
    def schema_step(self) -> str:
        return STEP_NAMES[self.schema_version - 1] if self.schema_version else ""

    # -- errors and transactions ---------------------------------------------
    def _connection(self) -> psycopg.Connection:
        if self.conn is None:
            raise StoreError("{db} is closed", self.location)
        return self.conn

    @contextmanager
    def _errors(self, action: str, retryable: bool = False) -> Iterator[None]:
        """psycopg errors become one `StoreError` line (or `Retry`, when the caller retries)."""
        started = time.monotonic()
        try:
            yield
        except psycopg.Error as exc:
            if retryable and isinstance(exc, RETRYABLE):
                raise Retry() from None
            raise runtime_error(exc, action, self.location, self.scrub, time.monotonic() - started) from None

    @contextmanager
    def transaction(self, action: str, *, retryable: bool = False) -> Iterator[psycopg.Connection]:
        """One `BEGIN` … `COMMIT` (READ COMMITTED; writes that decide on a name first take that name's
        advisory lock). Nested calls join the outer transaction, so a caller can read, decide and
        write atomically. A serialization failure or deadlock is `StoreError` ("try again"), or
        `Retry` with `retryable` (see `write`)."""
        conn = self._connection()
        if self._depth:
            self._depth += 1
            try:
                yield conn
            finally:
                self._depth -= 1
            return
        with self._errors(action, retryable):
            if self.read_only:
                raise StoreError(f"{{db}} is opened read-only: cannot {_literal(action)}", self.location)
            conn.execute("BEGIN")
            self._depth = 1
            try:
                yield conn
            except BaseException:
                self._after_commit.clear()
                if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
                    try:
                        conn.execute("ROLLBACK")
                    except psycopg.Error:
                        pass
                raise
            finally:
                self._depth = 0
            conn.execute("COMMIT")
        hooks, self._after_commit = self._after_commit, []
        for hook in hooks:
            hook()

    def write(self, action: str, work: Callable[[psycopg.Connection], T]) -> T:
        """`work` in a transaction of its own, run again on a serialization failure or deadlock
        (at most `TRIES` times, 10–200 ms apart with jitter), or in the caller's transaction."""
        if self._depth:
            return work(self._connection())
        started = time.monotonic()
        for attempt in range(TRIES):
            try:
                with self.transaction(action, retryable=True) as conn:
                    return work(conn)
            except Retry:
                if attempt + 1 < TRIES:
                    low, high = BACKOFF_S
                    time.sleep(random.uniform(low, min(high, low * 4**attempt)))
        raise StoreError(
            f"{{db}} is busy: {TRIES} tries to {_literal(action)} met conflicting sessions over "
            f"{time.monotonic() - started:.1f} s; try again",
            self.location,
        )

    @contextmanager
    def statement(self, action: str) -> Iterator[psycopg.Connection]:
        """For a change made by one statement, atomic by itself: the connection, in the open
        transaction, or else in autocommit, where the statement is its own transaction — without the
        round trips of BEGIN and COMMIT. Refused on a read-only session, as `transaction` refuses."""
        conn = self._connection()
        if self._depth:
            yield conn  # the transaction's own errors apply
            return
        with self._errors(action):
            if self.read_only:
                raise StoreError(f"{{db}} is opened read-only: cannot {_literal(action)}", self.location)
            yield conn

    @contextmanager
    def reading(self, action: str, *, one_statement: bool = False) -> Iterator[psycopg.Connection]:
        """Several reads that see one state of the store (joins an open transaction). With
        `one_statement`, the caller reads with a single statement, which sees one state by itself:
        no transaction is begun for it."""
        conn = self._connection()
        if one_statement or self._depth or conn.info.transaction_status != TransactionStatus.IDLE:
            with self._errors(action):
                yield conn
            return
        with self._errors(action):
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield conn
            finally:
                if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.execute("COMMIT")

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Run `hook` once the current transaction commits (at once outside one)."""
        if self._depth:
            self._after_commit.append(hook)
        else:
            hook()

    def _read(self, sql: str, params: Sequence[Any] = (), action: str = "read it") -> list[Any]:
        conn = self._connection()
        with self._errors(action):
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]  # facer's own statements
