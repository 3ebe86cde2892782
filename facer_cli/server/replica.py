"""What `facer serve` keeps beside the app as one of several replicas of a PostgreSQL store: a
connection pool with the request's deadlines, a listener that warms the gallery index when another
replica enrolls or removes someone, and the readiness a load balancer asks for (GET /ready).

On PostgreSQL, `Replica.start` opens a `StorePool` of `pool_size(settings)` connections (every
store the service opens borrows one), builds the gallery index from the store, and starts the
`GalleryListener`. The deadlines come from the server's own (`store_deadlines`): a statement may
run at most as long as a request body may take to arrive, and a connection is given up after a
tenth of that (1-5 s), so a database that is down costs a request a 503 with Retry-After, never a
hang. On SQLite there is nothing to pool or listen to, and only readiness applies.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from facer_cli.errors import StoreError
from facer_cli.store.urls import is_postgres_url

if TYPE_CHECKING:
    from facer_cli.service import Facer
    from facer_cli.settings import Settings
    from facer_cli.store.postgres.notify import GalleryListener
    from facer_cli.store.postgres.pool import StorePool

log = logging.getLogger("facer.server")


@dataclass(frozen=True)
class Deadlines:
    statement_s: float  # statement_timeout of every store connection
    connect_s: float  # connect_timeout, and the longest wait for a pooled connection


def store_deadlines(settings: Settings) -> Deadlines:
    """The store's deadlines from the server's request deadline (server_body_timeout_s, and no
    longer than a request may wait for a model slot)."""
    request_s = min(settings.server_body_timeout_s, settings.server_queue_timeout_s)
    return Deadlines(statement_s=request_s, connect_s=min(5.0, max(1.0, request_s / 10)))


def pool_size(settings: Settings) -> int:
    """Every model slot holds a store while it runs; four more for the store-only endpoints and /ready."""
    return settings.server_concurrency + 4


class Replica:
    """The pool, the listener and readiness of one `facer serve` process (`start`, `close`)."""

    def __init__(self, facer: Facer):
        self.facer = facer
        self.pool: StorePool | None = None
        self.listener: GalleryListener | None = None
        self.refreshes = 0

    @classmethod
    def start(cls, facer: Facer) -> Replica:
        """Pool and listener on PostgreSQL (the store already opened once for writing), and the
        gallery index built, so the first identification does not build it."""
        replica = cls(facer)
        settings = facer.settings
        if is_postgres_url(settings.db):
            from facer_cli.store.postgres.notify import GalleryListener
            from facer_cli.store.postgres.pool import StorePool

            assert settings.db is not None
            deadlines = store_deadlines(settings)
            replica.pool = StorePool(
                settings.db,
                settings.db_busy_timeout_s,
                size=pool_size(settings),
                connect_timeout_s=deadlines.connect_s,
                statement_timeout_s=deadlines.statement_s,
            )
            from facer_cli.store.crypto import master_key

            replica.pool.master = master_key(settings)
            replica.pool.open()
            facer.store_opener = replica.pool.store
            started = time.perf_counter()
            size = len(facer.gallery_index())
            log.info("gallery index: %d templates from the store in %.2f s", size, time.perf_counter() - started)
            replica.listener = GalleryListener(settings.db, replica.changed, connect_timeout_s=deadlines.connect_s)
            replica.listener.start()
        return replica

    def changed(self, model: str) -> None:
        """A change was announced (model "": anything may have changed): catch the index up now."""
        if model and model != self.facer.model:
            return
        self.facer.gallery_index().refresh()
        self.refreshes += 1

    def close(self) -> None:
        if self.listener is not None:
            self.listener.stop()
        self.facer.close_galleries()
        if self.pool is not None:
            self.facer.store_opener = None
            self.pool.close()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, what was checked): the store reachable, the models loaded, the index caught up
        with the store's stamp (read now: one query)."""
        facer = self.facer
        checks: dict[str, Any] = {"models": "loaded", "store": None, "gallery": None}
        try:
            with facer.open_store("read") as store:
                checks["store"] = "reachable"
                store.check_key()  # a wrong or missing key: not ready, whatever the index holds
                index = facer.gallery_index(store)
            index.refresh()
            checks["gallery"] = {"templates": len(index), "caught_up": True}
        except StoreError as exc:
            reason = exc.public_message
            if checks["store"] is None:
                checks["store"] = "unreachable"
            return False, {"status": "unavailable", "reason": reason, "checks": checks, **self._extra()}
        return True, {"status": "ready", "checks": checks, **self._extra()}

    def _extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"backend": "postgresql" if self.pool is not None else "sqlite"}
        from facer_cli.store.crypto import encryption_info

        extra["encryption"] = encryption_info(self.facer.settings)
        if self.pool is not None:
            extra["pool"] = self.pool.stats()
        if self.listener is not None:
            extra["listening"] = self.listener.connected
        return extra
