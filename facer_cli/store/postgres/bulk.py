"""`PostgresRows`: the bulk part of the store contract on PostgreSQL, for copying a store
(`facer store copy`): rows read by id in batches, inserts that return the ids the database gave,
and a transaction no other session writes users or templates during.

Rows are in the one form every backend reads to (`facer_cli.store.bulk`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Sequence

import psycopg

from facer_cli.store.bulk import BATCH_ROWS, COLUMNS, COPIED_TABLES, Row, check_table, insert_columns, neutral
from facer_cli.store.postgres.connection import PostgresConnection
from facer_cli.store.vault import open_bulk, seal_bulk

if TYPE_CHECKING:
    from facer_cli.store.vault import Vault

# Locked for the length of a copy's transaction, against writers (enroll, import, rename, remove)
# but not readers: what the copy checked stays as it was until it commits.
LOCKED_TABLES = "users, templates"
# Rows a bulk INSERT statement carries at most (PostgreSQL takes at most 65,535 parameters).
INSERT_ROWS = 1000
# Rows inserted after which a read by user first brings the tables' statistics up to date.
ANALYZE_AFTER_ROWS = 10_000
# Each kind of column (`facer_cli.store.bulk.COLUMNS`): its values' Python type and PostgreSQL's.
TYPED: dict[str, Callable[[Any], Any]] = {"int": int, "float": float, "text": str, "bytes": bytes, "bool": bool}
ARRAY_TYPES = {"int": "bigint", "float": "float8", "text": "text", "bytes": "bytea", "bool": "boolean"}


class PostgresRows(PostgresConnection):
    """Bulk reads and inserts of facer's tables on PostgreSQL."""

    _unanalyzed = 0  # rows `insert_rows` inserted since the tables' statistics were last brought up to date

    @property
    def vault(self) -> Vault:  # the store's (`PostgresStore.vault`)
        raise NotImplementedError

    @staticmethod
    def _next_id(conn: psycopg.Connection, table: str) -> int:
        raise NotImplementedError

    @staticmethod
    def _reserve_ids(conn: psycopg.Connection, table: str, count: int) -> list[int]:
        """`count` new ids of `table` from its identity's sequence, in one round trip, ascending."""
        found = conn.execute(
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %s)",  # type: ignore[arg-type]
            (count,),
        ).fetchall()
        return sorted(int(row[0]) for row in found)

    def _sealed_templates(self, conn: psycopg.Connection, rows: Sequence[Row], ids: Sequence[int]) -> list[Row]:
        """Template rows with their vectors sealed, each bound to its new id (as `seal_bulk`, with
        one look-up of each user's data key rather than one per row); as given when the store
        keeps templates in the clear (after the one check that it may)."""
        action = "copy templates into it"
        if not self.vault.enabled:
            self.vault.check_writable(conn, action)
            return list(rows)
        keys: dict[int, bytes | None] = {}
        sealed = []
        for row, new_id in zip(rows, ids, strict=True):
            user_id = int(row["user_id"])
            if user_id not in keys:
                keys[user_id] = self.vault.write_key(conn, user_id, action)
            vector = self.vault.seal_template(keys[user_id], user_id, new_id, row["model"], row["vector"])
            sealed.append({**row, "vector": vector})
        return sealed

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
            if users is not None and self._unanalyzed >= ANALYZE_AFTER_ROWS:
                # Rows this transaction inserted are in no statistics yet: the planner would take the
                # tables for as small as they were and scan all of templates for each batch of users.
                with self._errors(f"read {table}"):
                    conn.execute(f"ANALYZE {', '.join(COPIED_TABLES[:3])}")  # type: ignore[arg-type]
                self._unanalyzed = 0
            while True:
                params: tuple[Any, ...] = (after, *(() if users is None else (list(users),)), batch_size)
                with self._errors(f"read {table}"):
                    # Planned for its own values each time: a generic plan (prepared) knows neither how
                    # many names nor where `after` is, and joins every template to every chosen user.
                    batch = conn.execute(sql, params, prepare=False).fetchall()  # type: ignore[arg-type]  # constant names
                if not batch:
                    return
                yield open_bulk(self.vault, conn, table, [neutral(table, values) for values in batch])
                after = int(batch[-1][0])

    def insert_rows(self, table: str, rows: Sequence[Row]) -> List[int]:
        """Ids for every row reserved in one query, templates sealed with theirs (a sealed value is
        bound to its id), then one `INSERT … OVERRIDING SYSTEM VALUE SELECT … FROM unnest(…)` per
        `INSERT_ROWS` rows, each column one binary array: a few round trips for the lot, a statement
        whose text never changes (prepared once), and the gallery counters' triggers run once per
        statement (migration m006)."""
        if not rows:
            return []
        columns = insert_columns(table)
        assert set(columns) <= set(COLUMNS[table])
        kinds = COLUMNS[table]
        arrays = ", ".join(f"%b::{ARRAY_TYPES[kinds[name]]}[]" for name in ["id", *columns])
        sql = f"INSERT INTO {table} (id, {', '.join(columns)}) OVERRIDING SYSTEM VALUE SELECT * FROM unnest({arrays})"

        def work(conn: psycopg.Connection) -> list[int]:
            ids = self._reserve_ids(conn, table, len(rows))
            if table == "templates":
                rows_ = self._sealed_templates(conn, rows, ids)
            elif table == "samples":
                rows_ = [seal_bulk(self.vault, conn, table, row, 0) for row in rows]
            else:
                rows_ = list(rows)
            for start in range(0, len(rows_), INSERT_ROWS):
                chunk = rows_[start : start + INSERT_ROWS]
                params: list[list[Any]] = [ids[start : start + INSERT_ROWS]]
                for name in columns:
                    typed = TYPED[kinds[name]]  # one Python type an array: binary arrays take no mixture
                    params.append([None if row[name] is None else typed(row[name]) for row in chunk])
                conn.execute(sql, params)  # type: ignore[arg-type]  # constant names
            return ids

        ids = self.write(f"copy rows into {table}", work)
        self._unanalyzed += len(ids)
        return ids
