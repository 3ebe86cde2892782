"""The store contract: everything the service layer, the front ends and the gallery use of a store.

`StoreContract` is a `typing.Protocol`: the SQLite `Store` (`facer_cli.store.repository`) and
`PostgresStore` (`facer_cli.store.postgres`) both implement it, and type hints outside `store/`
name it, never a backend. `open_store(settings, access)` picks the backend from the `db` setting:
a `postgresql://` or `postgres://` URL is PostgreSQL (psycopg is imported only then), anything
else the SQLite file. What the gallery index reads is `GallerySource` (`gallery_source`); a store
hands out one of its own with `gallery_source()`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Iterator, List, Protocol, Sequence  # List: `list` is a method name here

if TYPE_CHECKING:
    import numpy as np

    from facer_cli.engine.reports import FrameReport
    from facer_cli.settings import Settings
    from facer_cli.store.bulk import Row
    from facer_cli.store.connection import Access
    from facer_cli.store.crypto import MasterKey
    from facer_cli.store.gallery_source import GallerySource
    from facer_cli.store.postgres.repository import PostgresStore
    from facer_cli.store.records import (
        ApiKey,
        Attempt,
        AttemptRecord,
        IdentifyRecord,
        Lookalike,
        Mode,
        Removal,
        StoredTemplate,
        UserDetails,
        UserSummary,
    )
    from facer_cli.store.repository import Store
    from facer_cli.templates.aggregate import Template


class StoreContract(Protocol):
    """A facer store, whichever backend keeps it. Every method behaves the same on each backend;
    errors are `facer_cli.errors` classes (`StoreError` for the database itself, one line)."""

    # -- what it is --------------------------------------------------------------
    @property
    def location(self) -> str:
        """The store as shown to people: the SQLite file's path, or the URL without its password."""
        ...

    @property
    def backend(self) -> str:
        """ "sqlite" or "postgresql"."""
        ...

    def describe(self) -> dict[str, Any]:
        """For `facer doctor`: the backend, its server's version and the schema version."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> StoreContract: ...

    def __exit__(self, *exc: object) -> None: ...

    # -- transactions ------------------------------------------------------------
    def transaction(self, action: str) -> AbstractContextManager[object]:
        """One transaction; the store's methods called inside join it, so a caller can read, decide
        and write atomically. `action` names it in an error."""
        ...

    def lock_enrollments(self, model: str) -> None:
        """Inside `transaction`, until it ends: no other session stores a template of `model`, so a
        look-alike search made after this call and the insert that follows are one step (two people
        enrolling the same face at once: the second sees the first). SQLite: the write transaction
        already holds the file's one write lock; PostgreSQL: a transaction-level advisory lock on
        the model. Outside a transaction: `RuntimeError`."""
        ...

    def check_writable(self, action: str = ...) -> None:
        """`StoreError` now, before a capture, when the store cannot be written. Changes nothing."""
        ...

    # -- users -------------------------------------------------------------------
    def exists(self, user: str) -> bool: ...

    def enrolled_name(self, user: str) -> str | None:
        """The enrolled name `user` means: itself when enrolled; else the enrolled name that looks the
        same (the same canonical key, `facer_cli.store.names`); else None."""
        ...

    def name_collisions(self) -> List[tuple[str, str]]:
        """(user, enrolled user whose name looks the same) for users enrolled before names were
        compared by how they look and kept without a key (the later of each pair)."""
        ...

    def count(self) -> int: ...

    def list(self) -> List[UserSummary]: ...

    def show(self, user: str, attempts: int = 10) -> UserDetails: ...

    def rename(self, old: str, new: str) -> UserSummary: ...

    def remove(self, user: str) -> Removal:
        """Delete the user, their templates and samples; `Removal.erasure_pending` (with a reason
        where the backend gives one) when their bytes may still be readable in the store's files."""
        ...

    def check(self) -> str:
        """ "ok", or `StoreError` describing the damage."""
        ...

    # -- templates ---------------------------------------------------------------
    def add_template(
        self,
        user: str,
        template: Template,
        frames: Sequence[FrameReport] = (),
        *,
        model: str,
        source: str,
        mode: Mode = "new",
    ) -> StoredTemplate: ...

    def import_vector(
        self,
        user: str,
        vector: np.ndarray,
        *,
        model: str,
        source: str,
        mode: Mode = "new",
        model_verified: bool = True,
    ) -> StoredTemplate: ...

    def templates(self, user: str, with_vectors: bool = True) -> List[StoredTemplate]: ...

    def templates_of_model(self, user: str, model: str, with_vectors: bool = True) -> List[StoredTemplate]: ...

    def samples(self, template_id: int) -> List[dict]: ...

    def export(self, user: str, template_id: int | None = None) -> StoredTemplate: ...

    # -- the verify audit log ----------------------------------------------------
    def record_attempt(self, record: AttemptRecord) -> int | None: ...

    def attempt_times(self, user: str, band: str, since: str) -> List[str]: ...

    def attempts(self, user: str | None = None, limit: int = 100) -> List[Attempt]: ...

    # -- identify: the gallery, look-alikes, the identify log ----------------------
    def gallery_size(self, model: str) -> int: ...

    def user_ids(self, names: Sequence[str]) -> dict[str, int]: ...

    def record_lookalikes(self, user: str, others: Sequence[tuple[int, float]], model: str) -> None: ...

    def lookalikes(self, user: str) -> List[Lookalike]: ...

    def record_identification(self, record: IdentifyRecord) -> int | None: ...

    def identifications(self, limit: int = 100) -> List[dict]: ...

    # -- the API keys of `facer serve` (made, hashed and checked by `facer_cli.service.keys`) ------
    def add_api_key(self, name: str, scope: str, key_hash: str) -> ApiKey:
        """A new active key; `ApiKeyError` when an active key already holds the name."""
        ...

    def api_keys(self) -> List[ApiKey]:
        """Every key, active and revoked, by name (with their hashes: never shown)."""
        ...

    def active_api_key(self, name: str) -> ApiKey | None:
        """The active key of this name, with its hash; None when there is none."""
        ...

    def revoke_api_key(self, name: str) -> ApiKey:
        """Revoke the active key of this name (its row stays); `ApiKeyError` when there is none."""
        ...

    # -- encryption at rest (`facer_cli.store.crypto`; docs/security.md) ------------------------
    def use_key(self, master: MasterKey | None) -> None:
        """Seal what this store writes with `master` (None: in the clear) and open what it reads
        (`open_store` gives it the key of the settings)."""
        ...

    def encryption(self) -> dict[str, Any]:
        """{"enabled", "key_fingerprint" (never the key), "templates_encrypted", "templates_plain",
        "samples_encrypted", "samples_plain", "users_with_keys"}."""
        ...

    def check_key(self) -> None:
        """`StoreKeyError` when the store's templates need a key it was not given (none, or another
        one): one query (`GET /ready`)."""
        ...

    def convert_users(self, encrypt: bool, on_user: Callable[[str, int], None] | None = None) -> int:
        """Seal (`encrypt`) or open every user's templates and embeddings in place, one transaction
        per user, each value read back and checked before it commits; resumes where a run stopped.
        Returns how many values were rewritten."""
        ...

    def rekey(self, new: MasterKey) -> int:
        """Rewrap every user's data key with the master key `new`, in one transaction; the store
        uses `new` from then on. Returns how many keys were rewrapped."""
        ...

    @property
    def gallery_key(self) -> str:
        """Equal for two openings of the same store (a process keeps one gallery index per key)."""
        ...

    def gallery_source(self) -> GallerySource:
        """A new `GallerySource` on this store, with a read-only connection of its own (the gallery
        index owns it and closes it)."""
        ...

    # -- bulk rows: copying a store (`facer store copy`; the tables and row form: `bulk`) ----------
    def snapshot(self, action: str = ...) -> AbstractContextManager[object]:
        """Reads inside see one state of the store (joins a transaction already open)."""
        ...

    def exclusive_transaction(self, action: str) -> AbstractContextManager[object]:
        """One transaction (as `transaction`) during which no other process or session changes users
        or templates: what it read stays true until it commits. Readers are not held up."""
        ...

    def row_counts(self) -> dict[str, int]:
        """Rows of each copied table (`bulk.COPIED_TABLES`)."""
        ...

    def table_rows(
        self, table: str, *, users: Sequence[str] | None = None, batch_size: int = ...
    ) -> Iterator[List[Row]]:
        """Every row of a copied table by id, in batches, in the row form of `bulk` (ids are this
        store's); with `users`, only those users' rows (of users, templates or samples)."""
        ...

    def insert_rows(self, table: str, rows: Sequence[Row]) -> List[int]:
        """Insert rows (their ids ignored) into a copied table, in the caller's transaction if one is
        open; the ids this store gave them, in order. References in the rows must be this store's ids."""
        ...


def open_store(settings: Settings, access: Access = "create") -> StoreContract:
    """The store of the `db` setting: PostgreSQL for a `postgresql://` or `postgres://` URL, else
    the SQLite file (`Settings.db_path`). `access`: "create" (made when missing), "write" (must
    exist) or "read" (must exist; nothing is written)."""
    from facer_cli.store.repository import Store

    return Store.open(settings, access)


if TYPE_CHECKING:  # mypy checks that each backend implements the contract

    def _conforms(sqlite: Store, postgres: PostgresStore) -> tuple[StoreContract, StoreContract]:
        return sqlite, postgres


__all__ = ["StoreContract", "open_store"]
