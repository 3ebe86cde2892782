"""`PostgresRows`: the bulk part of the store contract on PostgreSQL, for copying a store
(`facer store copy`): rows read by id in batches, inserts that return the ids the database gave,
and a transaction no other session writes users or templates during.

Rows are in the one form every backend reads to (`facer_cli.store.bulk`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, List, Sequence

import psycopg

from facer_cli.store.bulk import BATCH_ROWS, COLUMNS, COPIED_TABLES, Row, check_table, insert_columns, neutral
from facer_cli.store.postgres.connection import PostgresConnection
from facer_cli.store.vault import open_bulk, seal_bulk

if TYPE_CHECKING:
    from facer_cli.store.vault import Vault

# Locked for the length of a copy's transaction, against writers (enroll, import, rename, remove)
# but not readers: what the copy checked stays as it was until it commits.
LOCKED_TABLES = "users, templates"


class PostgresRows(PostgresConnection):
    """Bulk reads and inserts of facer's tables on PostgreSQL."""

    @property
    def vault(self) -> Vault:  # the store's (`PostgresStore.vault`)
        raise NotImplementedError

    @staticmethod
    def _next_id(conn: psycopg.Connection, table: str) -> int:
        raise NotImplementedError

    def snapshot(self, action: str = "read it") -> Any:
        """Reads inside see one state of the database (`REPEATABLE READ READ ONLY`; joins an open
        transaction)."""
        return self.reading(action)

    @contextmanager
    def exclusive_transaction(self, action: str) -> Iterator[psycopg.Connection]:
        """One transaction that first locks users and templates against other writers (SHARE ROW
        EXCLUSIVE: readers, verify's audit rows and identify go on), waiting at most the busy
        timeout (lock_timeout) for the writers under way."""
        with self.transaction(action) as conn:
            conn.execute(f"LOCK TABLE {LOCKED_TABLES} IN SHARE ROW EXCLUSIVE MODE")  # type: ignore[arg-type]
            yield conn

    def row_counts(self) -> dict[str, int]:
        selects = ", ".join(f"(SELECT count(*) FROM {table})" for table in COPIED_TABLES)
        row = self._read(f"SELECT {selects}", action="count rows")[0]
        return {table: int(count) for table, count in zip(COPIED_TABLES, row, strict=True)}

    def table_rows(
        self, table: str, *, users: Sequence[str] | None = None, batch_size: int = BATCH_ROWS
    ) -> Iterator[List[Row]]:
        columns = ", ".join(check_table(table))
        where = "id > %s"
        if users is not None:
            chosen = {
                "users": "name = ANY(%s)",
                "templates": "user_id IN (SELECT id FROM users WHERE name = ANY(%s))",
                "samples": "template_id IN (SELECT t.id FROM templates t JOIN users u ON u.id = t.user_id"
                " WHERE u.name = ANY(%s))",
            }.get(table)
            if chosen is None:
                raise ValueError(f"rows of {table} are not chosen by user")
            where += f" AND {chosen}"
        sql = f"SELECT {columns} FROM {table} WHERE {where} ORDER BY id LIMIT %s"
        after = 0
        with self.snapshot(f"read {table}") as conn:
            while True:
                params: tuple[Any, ...] = (after, *(() if users is None else (list(users),)), batch_size)
                with self._errors(f"read {table}"):
                    batch = conn.execute(sql, params).fetchall()  # type: ignore[arg-type]  # constant names
                if not batch:
                    return
                yield open_bulk(self.vault, conn, table, [neutral(table, values) for values in batch])
                after = int(batch[-1][0])

    def insert_rows(self, table: str, rows: Sequence[Row]) -> List[int]:
        if not rows:
            return []
        columns = insert_columns(table)
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) RETURNING id"
        assert set(columns) <= set(COLUMNS[table])

        def work(conn: psycopg.Connection) -> list[int]:
            ids: list[int] = []
            if table == "templates":  # each gets its id first: a sealed value is bound to it
                for row in rows:
                    new_id = self._next_id(conn, table)
                    sealed = seal_bulk(self.vault, conn, table, row, new_id)
                    found = conn.execute(
                        f"INSERT INTO {table} (id, {', '.join(columns)}) OVERRIDING SYSTEM VALUE"  # type: ignore[arg-type]
                        f" VALUES (%s, {', '.join(['%s'] * len(columns))}) RETURNING id",
                        [new_id, *(sealed[name] for name in columns)],
                    ).fetchone()
                    assert found is not None
                    ids.append(int(found[0]))
                return ids
            if table == "samples":
                rows_ = [seal_bulk(self.vault, conn, table, row, 0) for row in rows]
            else:
                rows_ = list(rows)
            with conn.cursor() as cursor:
                cursor.executemany(sql, [[row[name] for name in columns] for row in rows_], returning=True)  # type: ignore[arg-type]
                while True:
                    found = cursor.fetchone()
                    assert found is not None
                    ids.append(int(found[0]))
                    if not cursor.nextset():
                        break
            return ids

        return self.write(f"copy rows into {table}", work)
