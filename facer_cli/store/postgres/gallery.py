"""`PostgresGallerySource`: what the gallery index reads (`GallerySource`), from PostgreSQL.

Its own read-only connection; each read transaction is `REPEATABLE READ READ ONLY`, so the stamp
and the rows read with it are one state of the store. A connection the server dropped (a restart,
a failover) is opened again when the next read transaction begins, so a long-running process (a
`facer serve`) keeps its index. The stamp is the `gallery_version` row
that a trigger keeps (inserts, deletes, reused ids). No sidecar file: a removal on one machine
cannot erase files on the others, so each process keeps its index in an unnamed temporary file
(in memory with a master key: no int8 code in the clear on any disk) and builds it from the store
on its first search.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import psycopg
from psycopg.pq import TransactionStatus

from facer_cli.store.crypto import MasterKey, Sealer, SidecarKey, is_sealed
from facer_cli.store.gallery_source import Stamp, TemplateRow
from facer_cli.store.postgres.connection import Scrubber, connect, runtime_error
from facer_cli.store.urls import redact_url
from facer_cli.store.vault import Vault


class PostgresGallerySource:
    """`GallerySource` of a PostgreSQL store, usable from any thread one at a time (the gallery
    index holds a lock around every use). Errors are `StoreError` lines, as the store's."""

    def __init__(
        self,
        url: str,
        busy_timeout_s: float = 30.0,
        *,
        connect_timeout_s: float | None = None,
        statement_timeout_s: float | None = None,
        master: MasterKey | None = None,
    ):
        self.master = master  # with a key, sealed vectors are opened as they are read
        self._vault: Vault | None = None
        self.url = url
        self.busy_timeout_s = busy_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.statement_timeout_s = statement_timeout_s
        self.location = redact_url(url)
        self.scrub = Scrubber(url)
        self.conn = self._connect()

    def _connect(self) -> psycopg.Connection:
        return connect(
            self.url,
            location=self.location,
            scrub=self.scrub,
            busy_timeout_s=self.busy_timeout_s,
            read_only=True,
            connect_timeout_s=self.connect_timeout_s,
            statement_timeout_s=self.statement_timeout_s,
        )

    def _begin(self) -> None:
        """BEGIN, on a new connection when the server dropped this one (nothing was read on it yet)."""
        if self.conn.broken or self.conn.closed:
            self.conn.close()
            self.conn = self._connect()
        try:
            self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        except psycopg.OperationalError:
            self.conn.close()
            self.conn = self._connect()
            self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def close(self) -> None:
        self.conn.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.location}>"

    @contextmanager
    def read_transaction(self) -> Iterator[None]:
        try:
            conn = self.conn
            if not (conn.broken or conn.closed) and conn.info.transaction_status != TransactionStatus.IDLE:
                yield
                return
            self._begin()
            conn = self.conn
            try:
                yield
            finally:
                if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.execute("COMMIT")
        except psycopg.Error as exc:
            raise runtime_error(exc, "read the gallery", self.location, self.scrub) from None

    def stamp(self, model: str) -> Stamp:
        row = self.conn.execute(
            "SELECT inserts, deletes, reused FROM gallery_version WHERE model = %s", (model,)
        ).fetchone()
        inserts, deletes, reused = (int(v) for v in row) if row else (0, 0, 0)
        return {"inserts": inserts, "deletes": deletes, "reused": reused}

    def template_shape(self, model: str) -> tuple[int, int]:
        row = self.conn.execute(
            "SELECT count(*), coalesce(max(dimension), 0) FROM templates WHERE model = %s", (model,)
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def template_batches(self, model: str, batch_size: int) -> Iterator[Sequence[TemplateRow]]:
        after = 0
        while True:
            batch = self.templates_after(model, after, batch_size)
            if not batch:
                return
            yield batch
            after = batch[-1][0]

    def templates_after(self, model: str, after_id: int, limit: int) -> list[TemplateRow]:
        rows = self.conn.execute(
            "SELECT id, user_id, dimension, vector FROM templates WHERE model = %s AND id > %s ORDER BY id LIMIT %s",
            (model, after_id, limit),
            binary=True,  # the vectors as their bytes, not hex text to decode
        ).fetchall()
        return self._opened(model, [(int(r[0]), int(r[1]), int(r[2]), bytes(r[3])) for r in rows])

    def _opened(self, model: str, rows: list[TemplateRow]) -> list[TemplateRow]:
        """Rows with sealed vectors opened (a plain row is as read)."""
        if not any(is_sealed(r[3]) for r in rows):
            return rows
        if self._vault is None:
            has_table = self.conn.execute("SELECT to_regclass('data_keys') IS NOT NULL").fetchone()
            present = bool(has_table and has_table[0])
            self._vault = Vault(Sealer(self.master, self.location), "format", lambda: present)
        return self._vault.open_rows(self.conn, rows, model)

    def template_ids_through(self, model: str, max_id: int) -> np.ndarray:
        row = self.conn.execute(
            "SELECT array_agg(id) FROM templates WHERE model = %s AND id <= %s", (model, max_id)
        ).fetchone()
        ids = row[0] if row else None
        return np.asarray(ids, dtype=np.int64) if ids else np.empty(0, np.int64)

    def vectors(self, model: str, template_ids: Sequence[int]) -> dict[int, bytes]:
        if not len(template_ids):
            return {}
        rows = self.conn.execute(
            "SELECT id, user_id, dimension, vector FROM templates WHERE model = %s AND id = ANY(%s)",
            (model, [int(i) for i in template_ids]),
            binary=True,
        ).fetchall()
        opened = self._opened(model, [(int(r[0]), int(r[1]), int(r[2]), bytes(r[3])) for r in rows])
        return {r[0]: r[3] for r in opened}

    def user_names(self, user_ids: Iterable[int]) -> dict[int, str]:
        ids = sorted(int(i) for i in user_ids)
        if not ids:
            return {}
        rows = self.conn.execute("SELECT id, name FROM users WHERE id = ANY(%s)", (ids,)).fetchall()
        return {int(r[0]): r[1] for r in rows}

    def sidecar_path(self, model: str) -> Path | None:
        """None: no sidecar file (see the module's docstring)."""
        return None

    @property
    def encrypted(self) -> bool:
        return self.master is not None

    def sidecar_key(self) -> SidecarKey | None:
        """None: no sidecar file to seal."""
        return None
