"""Bulk rows, for copying a store (`facer store copy`): the copied tables' columns and types, rows in
one form on every backend, and the SQLite store's bulk reads, inserts and locks (`SQLiteRows`).

A row is a dict of its columns, each value as Python keeps it whichever backend read it: `int`,
`float`, `str`, `bytes` (vectors and embeddings, little-endian float32), `bool` (flags) or None.
Ids are the reading store's own; a store that inserts rows gives them ids of its own.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, List, Sequence

from facer_cli.store.connection import StoreConnection
from facer_cli.store.vault import open_bulk, seal_bulk

if TYPE_CHECKING:
    from facer_cli.store.vault import Vault

Row = dict[str, Any]
# The tables a copy carries, in the order it writes them (a row's references come before it).
COPIED_TABLES = ("users", "templates", "samples", "attempts", "lookalikes", "identifications")
# Each copied table's columns (the id first) and their types: int, float, text, bytes or bool.
COLUMNS: dict[str, dict[str, str]] = {
    "users": {"id": "int", "name": "text", "created": "text", "updated": "text"},
    "templates": {
        "id": "int",
        "user_id": "int",
        "vector": "bytes",
        "dimension": "int",
        "model": "text",
        "frames_seen": "int",
        "frames_used": "int",
        "outliers": "int",
        "mean_quality": "float",
        "source": "text",
        "created": "text",
        "model_unverified": "bool",
    },
    "samples": {
        "id": "int",
        "template_id": "int",
        "position": "int",
        "source": "text",
        "embedding": "bytes",
        "det_score": "float",
        "quality": "float",
        "yaw": "float",
        "pitch": "float",
        "roll": "float",
        "sharpness": "float",
        "decision": "text",
        "reason": "text",
    },
    "attempts": {
        "id": "int",
        "user_id": "int",
        "user_name": "text",
        "created": "text",
        "similarity": "float",
        "band": "text",
        "threshold_high": "float",
        "threshold_low": "float",
        "template_id": "int",
        "model": "text",
        "source": "text",
        "frames_seen": "int",
        "frames_used": "int",
        "live": "bool",
        "liveness_reason": "text",
        "liveness": "text",
        "key_name": "text",
    },
    "lookalikes": {
        "id": "int",
        "user_id": "int",
        "other_user_id": "int",
        "similarity": "float",
        "model": "text",
        "created": "text",
    },
    "identifications": {
        "id": "int",
        "created": "text",
        "model": "text",
        "source": "text",
        "decision": "text",
        "user_name": "text",
        "similarity": "float",
        "threshold": "float",
        "margin": "float",
        "candidates": "text",
        "gallery_size": "int",
        "frames_seen": "int",
        "frames_used": "int",
        "key_name": "text",
    },
}
# Columns an older SQLite store may lack (a read-only one is read as it is): the value they read as.
MISSING_AS: dict[str, Any] = {"model_unverified": False}
BATCH_ROWS = 500


def check_table(table: str) -> dict[str, str]:
    if table not in COLUMNS:
        raise ValueError(f"not a copied table: {table!r} (one of {', '.join(COPIED_TABLES)})")
    return COLUMNS[table]


def neutral(table: str, values: Sequence[Any]) -> Row:
    """A row as read (values in COLUMNS' order) in the one form every backend reads to."""
    row: Row = {}
    for (name, kind), value in zip(COLUMNS[table].items(), values, strict=True):
        if value is None:
            row[name] = None
        elif kind == "int":
            row[name] = int(value)
        elif kind == "float":
            row[name] = float(value)
        elif kind == "bytes":
            row[name] = bytes(value)
        elif kind == "bool":
            row[name] = bool(value)
        else:
            row[name] = str(value)
    return row


def insert_columns(table: str) -> list[str]:
    """The columns an insert writes: all but the id (the store gives its own)."""
    return [name for name in check_table(table) if name != "id"]


class SQLiteRows(StoreConnection):
    """The bulk part of the store contract on an SQLite file (`facer_cli.store.contract`)."""

    @property
    def vault(self) -> Vault:  # the store's (`Store.vault`)
        raise NotImplementedError

    @contextmanager
    def snapshot(self, action: str = "read it") -> Iterator[sqlite3.Connection]:
        """Reads inside see one state of the file (a read transaction; joins an open transaction)."""
        conn = self._connection()
        if conn.in_transaction or self._depth:
            yield conn
            return
        with self._errors(action):
            conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.rollback()  # it only read

    def exclusive_transaction(self, action: str) -> Any:
        """A write transaction: `BEGIN IMMEDIATE` takes the file's write lock, so no other process
        writes until it ends (readers go on)."""
        return self.transaction(action)

    def _columns(self, table: str) -> list[str] | None:
        """The table's columns as this file has them (None: no such table, an older store)."""
        conn = self._connection()
        with self._errors(f"read {table}"):
            present = {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}
        if not present:
            return None
        wanted = check_table(table)
        return [name if name in present else ("0" if MISSING_AS.get(name) is False else "NULL") for name in wanted]

    def row_counts(self) -> dict[str, int]:
        counts = {}
        for table in COPIED_TABLES:
            counts[table] = (
                0
                if self._columns(table) is None
                else self._read(f"SELECT count(*) FROM {table}", action="count rows")[0][0]
            )
        return counts

    def table_rows(
        self, table: str, *, users: Sequence[str] | None = None, batch_size: int = BATCH_ROWS
    ) -> Iterator[List[Row]]:
        columns = self._columns(table)
        if columns is None:
            return
        sql = f"SELECT {', '.join(columns)} FROM {table}"
        params: tuple[Any, ...] = ()
        if users is not None:
            names = "(SELECT value FROM json_each(?))"
            where = {
                "users": f"name IN {names}",
                "templates": f"user_id IN (SELECT id FROM users WHERE name IN {names})",
                "samples": "template_id IN (SELECT t.id FROM templates t JOIN users u ON u.id = t.user_id"
                f" WHERE u.name IN {names})",
            }.get(table)
            if where is None:
                raise ValueError(f"rows of {table} are not chosen by user")
            sql += f" WHERE {where}"
            params = (json.dumps(list(users)),)
        conn = self._connection()
        with self._errors(f"read {table}"):
            cursor = conn.execute(sql + " ORDER BY id", params)
            while batch := cursor.fetchmany(batch_size):
                yield open_bulk(self.vault, conn, table, [neutral(table, values) for values in batch])

    def insert_rows(self, table: str, rows: Sequence[Row]) -> List[int]:
        columns = ["id", *insert_columns(table)]
        kinds = COLUMNS[table]
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        ids: list[int] = []
        with self.transaction(f"copy rows into {table}") as conn:
            for row in rows:
                # Each row gets its id first: a sealed value is bound to it (`facer_cli.store.vault`).
                row = {**row, "id": None}
                if table in ("templates", "samples"):
                    row["id"] = self._next_id(conn, table)
                    row = seal_bulk(self.vault, conn, table, row, row["id"])
                values = [
                    int(row[name]) if kinds[name] == "bool" and row[name] is not None else row[name] for name in columns
                ]
                new_id = conn.execute(sql, values).lastrowid
                assert new_id is not None
                ids.append(int(new_id))
        return ids

    @staticmethod
    def _next_id(conn: sqlite3.Connection, table: str) -> int:
        """The id the next row of `table` takes (in the write transaction)."""
        row = conn.execute(
            f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0),"
            f" coalesce((SELECT max(id) FROM {table}), 0)) + 1"
        ).fetchone()
        return int(row[0])
