"""`StorePool`: the PostgreSQL connections of a long-running process (`facer serve`), pooled.

A store opened from the pool (`StorePool.store`) borrows a connection that was checked on the way
out (one empty round trip: a connection the server dropped is replaced, not handed out) and hands
it back on `close`; the schema was checked once, when the pool opened. Every connection has the
process's deadlines: `connect_timeout`, `lock_timeout` and `statement_timeout`, so no request waits
on the database longer than its deadline. When no connection can be had in time (the server down
or restarting, every connection busy), `StoreUnavailableError` says so: the HTTP service answers
503 with Retry-After, and the pool connects again by itself once the server is back.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from facer_cli.errors import StoreUnavailableError
from facer_cli.store.connection import Access
from facer_cli.store.crypto import MasterKey
from facer_cli.store.postgres.connection import Scrubber, connect_options, session_settings
from facer_cli.store.postgres.repository import PostgresStore
from facer_cli.store.urls import redact_url


class StorePool:
    """At most `size` connections to the store at `url`, each with these deadlines; `store(access)`
    borrows one as a `PostgresStore`. Open the store once for writing before (it creates or migrates
    the schema); `close` closes every connection."""

    def __init__(
        self,
        url: str,
        busy_timeout_s: float,
        *,
        size: int,
        connect_timeout_s: float,
        statement_timeout_s: float,
        wait_s: float | None = None,
    ):
        self.url = url.strip()
        self.master: MasterKey | None = None  # the stores it hands out seal and open with it
        self.location = redact_url(self.url)
        self.scrub = Scrubber(self.url)
        self.size = size
        self.busy_timeout_s = min(busy_timeout_s, statement_timeout_s)
        self.connect_timeout_s = connect_timeout_s
        self.statement_timeout_s = statement_timeout_s
        self.wait_s = connect_timeout_s if wait_s is None else wait_s
        self.pool = ConnectionPool(
            self.url,
            min_size=min(2, size),
            max_size=size,
            kwargs=connect_options(self.url, connect_timeout_s),
            configure=self._configure,
            check=ConnectionPool.check_connection,
            timeout=self.wait_s,
            # The pool never gives up reconnecting: the server coming back is the pool's business.
            reconnect_timeout=24 * 3600.0,
            name="facer",
            open=False,
        )

    def _configure(self, conn: psycopg.Connection) -> None:
        conn.execute(session_settings(self.busy_timeout_s, self.statement_timeout_s))  # type: ignore[arg-type]

    def open(self) -> None:
        """Start the pool's connections (in the background: a server down now is no error yet)."""
        self.pool.open(wait=False)

    def close(self) -> None:
        self.pool.close(timeout=self.wait_s)

    def __enter__(self) -> "StorePool":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.location} ({self.size})>"

    def store(self, access: Access = "write") -> PostgresStore:
        """A `PostgresStore` on a borrowed connection; closing it hands the connection back."""
        try:
            conn = self.pool.getconn()
        except PoolTimeout:
            raise StoreUnavailableError(
                f"no connection to the PostgreSQL server of {{db}} within {self.wait_s:g} s (the server is "
                "down, restarting or unreachable, or every pooled connection is busy); try again shortly",
                self.location,
            ) from None
        store = PostgresStore(
            self.url,
            self.busy_timeout_s,
            access=access,
            borrowed=conn,
            give_back=self.pool.putconn,
            connect_timeout_s=self.connect_timeout_s,
            statement_timeout_s=self.statement_timeout_s,
        )
        store.use_key(self.master)
        return store

    def stats(self) -> dict[str, Any]:
        """The pool's size and use, as psycopg_pool counts them."""
        stats = self.pool.get_stats()
        return {
            "size": self.size,
            "open": int(stats.get("pool_size", 0)),
            "idle": int(stats.get("pool_available", 0)),
            "waiting": int(stats.get("requests_waiting", 0)),
        }
