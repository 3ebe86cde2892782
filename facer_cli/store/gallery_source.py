"""What the gallery index reads from the store, and the gallery's files beside it.

The gallery index (`facer_cli.gallery`) keeps one model's templates as int8 codes in a sidecar
file and answers 1:N searches from it. It reads the store only through `GallerySource`: a
content stamp per model, the templates in id order (streamed in batches, for a rebuild), the
templates added since an id and the ids still there (to catch up), the float32 vectors of a
few templates (to re-score them exactly), users' names (at answer time) and, with a master key,
the key its sidecar is sealed with. A store backend implements it; `SQLiteGallerySource` is the
SQLite file's, on a read-only connection of its own.

The sidecars hold codes of every template, so the store erases them with a removal
(`erase_sidecars`) and, with a master key, replaces the key they are sealed with in the removal's
transaction (`facer_cli.store.vault.Vault.rotate_sidecar_key`); the gallery only writes and reads
them.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from facer_cli.store.crypto import MasterKey, SidecarKey
    from facer_cli.store.vault import Vault

# A template as the gallery reads it: (id, user id, dimension, vector as little-endian float32 bytes).
TemplateRow = tuple[int, int, int, bytes]
# A durable stamp of one model's templates, equal in every process for the same content (JSON).
Stamp = dict[str, Any]
# The per-model counter table kept by triggers on `templates` (migration m005).
VERSION_TABLE = "gallery_version"
# Ids per `IN (...)` list: well below SQLite's limit on bound parameters.
SQL_VARIABLES = 500


class GallerySource(Protocol):
    """The store as the gallery index reads it. Every method reads; none writes.

    Reads inside `read_transaction()` see one state of the store. The stamp says whether and how
    a model's templates changed: with the counts {"inserts": i, "deletes": d, "reused": r} (ever
    inserted, ever deleted, inserts that took an id at or below the highest ever inserted, an
    update counting as a delete and a reused insert), the index catches up incrementally; any
    other stamp (no counts) makes it rebuild whenever the stamp changes. (An SQLite store hands no
    template id out twice since migration m006, so `reused` grows only with an update, a row
    written with an id of its own, or a store of an earlier facer.)"""

    def read_transaction(self) -> AbstractContextManager[None]:
        """Reads inside see one state of the store (joins a transaction already open)."""
        ...

    def stamp(self, model: str) -> Stamp: ...

    def template_shape(self, model: str) -> tuple[int, int]:
        """(how many templates of `model`, their dimension; 0 when there are none)."""
        ...

    def template_batches(self, model: str, batch_size: int) -> Iterator[Sequence[TemplateRow]]:
        """Every template of `model`, by id, in batches of at most `batch_size` rows."""
        ...

    def templates_after(self, model: str, after_id: int, limit: int) -> list[TemplateRow]:
        """At most `limit` templates of `model` with an id above `after_id`, by id."""
        ...

    def template_ids_through(self, model: str, max_id: int) -> np.ndarray:
        """The ids (int64, in any order) of `model`'s templates with an id at most `max_id`."""
        ...

    def vectors(self, model: str, template_ids: Sequence[int]) -> dict[int, bytes]:
        """id -> vector bytes of these templates of `model` (missing ones are left out)."""
        ...

    def user_names(self, user_ids: Iterable[int]) -> dict[int, str]:
        """id -> name of these users (missing ones are left out)."""
        ...

    def sidecar_path(self, model: str) -> Path | None:
        """Where the gallery keeps `model`'s sidecar (erased by the store with a removal); None: no
        file (the index lives in an unnamed temporary file, or in memory when `encrypted`, and is
        built from the store on first use)."""
        ...

    @property
    def encrypted(self) -> bool:
        """Whether the store is read with a master key: the index then writes no int8 code in the
        clear anywhere (its sidecar is sealed with `sidecar_key`, or it is kept in memory)."""
        ...

    def sidecar_key(self) -> SidecarKey | None:
        """With a master key, the key the sidecar is sealed with, as the current read transaction
        sees it (a removal replaces it); None when there is none to use: the index keeps no file."""
        ...

    def close(self) -> None: ...


class SQLiteGallerySource:
    """`GallerySource` of an SQLite store: its own read-only connection (`mode=ro`, `query_only`),
    usable from any thread one at a time (the gallery index holds a lock around every use)."""

    def __init__(self, db_path: Path | str, master: MasterKey | None = None):
        self.path = Path(db_path).expanduser()
        # With a master key, vectors are opened as they are read, and the sidecar is sealed with
        # the store's sidecar key (`sidecar_key`).
        self.master = master
        self._vault: Vault | None = None
        self.conn = sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode=ro",
            uri=True,
            isolation_level=None,
            timeout=30.0,
            check_same_thread=False,
        )
        self.conn.execute("PRAGMA query_only = ON")

    def close(self) -> None:
        self.conn.close()

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            from facer_cli.store.crypto import Sealer
            from facer_cli.store.vault import Vault

            tables = {
                row[0]
                for row in self.conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('data_keys', 'sidecar_keys')"
                )
            }
            self._vault = Vault(
                Sealer(self.master, str(self.path)),
                "qmark",
                lambda: "data_keys" in tables,
                lambda: "sidecar_keys" in tables,
            )
        return self._vault

    def _opened(self, model: str, rows: list[TemplateRow]) -> list[TemplateRow]:
        """Rows with sealed vectors opened (a plain row is as read)."""
        from facer_cli.store.crypto import is_sealed

        if not any(is_sealed(r[3]) for r in rows):
            return rows
        return self.vault.open_rows(self.conn, rows, model)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"

    @contextmanager
    def read_transaction(self) -> Iterator[None]:
        conn = self.conn
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    def stamp(self, model: str) -> Stamp:
        """With the `gallery_version` table (m005) one look-up: {"inserts": i, "deletes": d,
        "reused": r}. Without it (a read-only store of an earlier facer), an aggregate over the
        model's templates — count, max/sum of ids, sum of user ids, the newest `created` — exact
        but a scan: {"scan": "..."}."""
        if self._has_counter():
            row = self.conn.execute(
                f"SELECT inserts, deletes, reused FROM {VERSION_TABLE} WHERE model = ?", (model,)
            ).fetchone()
            inserts, deletes, reused = (int(v) for v in row) if row else (0, 0, 0)
            return {"inserts": inserts, "deletes": deletes, "reused": reused}
        count, newest, id_sum, user_sum, created = self.conn.execute(
            "SELECT count(*), coalesce(max(id), 0), total(id), total(user_id), coalesce(max(created), '')"
            " FROM templates WHERE model = ?",
            (model,),
        ).fetchone()
        return {"scan": f"{count}:{newest}:{id_sum:.0f}:{user_sum:.0f}:{created}"}

    def _has_counter(self) -> bool:
        return bool(
            self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)
            ).fetchone()
        )

    def template_shape(self, model: str) -> tuple[int, int]:
        rows, dimension = self.conn.execute(
            "SELECT count(*), coalesce(max(dimension), 0) FROM templates WHERE model = ?", (model,)
        ).fetchone()
        return int(rows), int(dimension)

    def template_batches(self, model: str, batch_size: int) -> Iterator[list[TemplateRow]]:
        cursor = self.conn.execute(
            "SELECT id, user_id, dimension, vector FROM templates WHERE model = ? ORDER BY id", (model,)
        )
        while batch := cursor.fetchmany(batch_size):
            yield self._opened(model, batch)

    def templates_after(self, model: str, after_id: int, limit: int) -> list[TemplateRow]:
        return self._opened(
            model,
            self.conn.execute(
                "SELECT id, user_id, dimension, vector FROM templates WHERE model = ? AND id > ? ORDER BY id",
                (model, after_id),
            ).fetchmany(limit),
        )

    def template_ids_through(self, model: str, max_id: int) -> np.ndarray:
        # One text joined inside SQLite and parsed by numpy: iterating a million rows in Python
        # would take seconds.
        joined = self.conn.execute(
            "SELECT group_concat(id) FROM templates WHERE model = ? AND id <= ?", (model, max_id)
        ).fetchone()[0]
        return np.fromstring(joined, dtype=np.int64, sep=",") if joined else np.empty(0, np.int64)

    def vectors(self, model: str, template_ids: Sequence[int]) -> dict[int, bytes]:
        found: dict[int, bytes] = {}
        for start in range(0, len(template_ids), SQL_VARIABLES):
            part = list(template_ids[start : start + SQL_VARIABLES])
            marks = ",".join("?" * len(part))
            rows = self.conn.execute(
                f"SELECT id, user_id, dimension, vector FROM templates WHERE model = ? AND id IN ({marks})",
                (model, *part),
            ).fetchall()
            found.update((r[0], r[3]) for r in self._opened(model, rows))
        return found

    def user_names(self, user_ids: Iterable[int]) -> dict[int, str]:
        ids = sorted(user_ids)
        names: dict[int, str] = {}
        for start in range(0, len(ids), SQL_VARIABLES):
            part = ids[start : start + SQL_VARIABLES]
            marks = ",".join("?" * len(part))
            names.update(self.conn.execute(f"SELECT id, name FROM users WHERE id IN ({marks})", part))
        return names

    def sidecar_path(self, model: str) -> Path | None:
        return sidecar_path(self.path, model)

    @property
    def encrypted(self) -> bool:
        return self.master is not None

    def sidecar_key(self) -> SidecarKey | None:
        return None if self.master is None else self.vault.sidecar_key(self.conn)


# -- the gallery's files beside an SQLite store ------------------------------------------
def sidecar_path(db_path: Path, model: str) -> Path:
    """`<db>.gallery-<hash of the model>.bin`, beside the store."""
    tag = hashlib.sha256(model.encode()).hexdigest()[:16]
    return db_path.with_name(f"{db_path.name}.gallery-{tag}.bin")


def erase_sidecars(db_path: Path) -> int:
    """Overwrite with zeros, then delete, every gallery sidecar (and leftover temporary file) of the
    store: they hold int8 codes of templates, so a removed person's must not outlive the removal.
    Running indexes keep nothing of the files (see `facer_cli.gallery.sidecar.map_gallery`); the
    next one rebuilds from the store. Returns how many files were erased."""
    db_path = Path(db_path)
    erased = 0
    for path in [
        *db_path.parent.glob(f"{glob_escape(db_path.name)}.gallery-*.bin"),
        *db_path.parent.glob(f".{glob_escape(db_path.name)}.gallery-*.tmp"),
    ]:
        try:
            with open(path, "r+b") as f:
                size = os.fstat(f.fileno()).st_size
                zeros = bytes(min(size, 16 << 20))
                written = 0
                while written < size:
                    written += f.write(zeros[: size - written])
                f.flush()
                os.fsync(f.fileno())
            path.unlink()
            erased += 1
        except FileNotFoundError:
            continue
    return erased


def glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)
