"""`GalleryListener`: LISTEN for the store's gallery changes on a connection and a thread of its own.

Every commit that changes a model's templates announces it on `GALLERY_CHANNEL` (the trigger of
migration step 2). The listener calls `on_change(model)` for each announcement, and once each time
it (re)connects, since changes made while it was away were not announced to it. A lost connection
is opened again after a short, growing wait; `connected` and `error` say how it stands. It is a
hint that makes an index warm early, never what correctness rests on: the gallery index still
reads the store's stamp before every search.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import psycopg

from facer_cli.store.postgres.connection import Scrubber, connect_options
from facer_cli.store.postgres.migrations import GALLERY_CHANNEL

log = logging.getLogger("facer.store")
RETRY_S = (0.2, 5.0)  # the first and the longest wait before connecting again
POLL_S = 0.5  # how often the thread looks whether it was asked to stop


class GalleryListener:
    """`start()` a daemon thread that LISTENs on `url` and calls `on_change(model)` ("" after each
    (re)connection); `stop()` ends it. Errors of `on_change` are logged, never raised."""

    def __init__(self, url: str, on_change: Callable[[str], None], *, connect_timeout_s: float = 5.0):
        self.url = url.strip()
        self.scrub = Scrubber(self.url)
        self.on_change = on_change
        self.connect_timeout_s = connect_timeout_s
        self.connected = False
        self.error: str | None = None
        self.notifications = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="facer-gallery-listener", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        wait = RETRY_S[0]
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, **connect_options(self.url, self.connect_timeout_s)) as conn:
                    conn.execute(f"LISTEN {GALLERY_CHANNEL}")
                    self.connected, self.error, wait = True, None, RETRY_S[0]
                    self._changed("")  # whatever changed while no one listened
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=POLL_S):
                            self.notifications += 1
                            self._changed(note.payload)
                            if self._stop.is_set():
                                break
            except psycopg.Error as exc:
                self.error = (self.scrub(str(exc)).strip().splitlines() or [type(exc).__name__])[0]
            finally:
                self.connected = False
            if self._stop.wait(wait):
                return
            wait = min(RETRY_S[1], wait * 2)

    def _changed(self, model: str) -> None:
        try:
            self.on_change(model)
        except Exception as exc:  # the index answers for itself on the next request
            log.warning("gallery refresh after a change notification failed: %s", exc)
