"""The store of users, templates, per-frame samples and the audit logs: SQLite, or PostgreSQL.

- `contract`: `StoreContract`, what the rest of facer uses of a store, and `open_store`.
- `urls`: which backend a `db` setting names, and `redact_url` (never show a password).
- `connection`: the SQLite file — opening, migrations, transactions, one-line errors.
- `records`: plain records and what may be stored (user names, sample rows).
- `names`: names that look the same are one name: the canonical key (NFKC, case-folded, TR39 skeleton).
- `repository`: `Store`, the SQLite store's data operations.
- `migrations`: the SQLite schema as numbered steps.
- `gallery_source`: what the gallery index reads (`GallerySource`, SQLite's), and its files' erasure.
- `postgres/`: the PostgreSQL store (imported only for a `postgresql://` URL).

The names below are imported from their modules on first use, so `facer_cli.store.urls` (the CLI's
views use it) loads neither numpy nor sqlite3.
"""

from typing import TYPE_CHECKING

from facer_cli.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from facer_cli.store.connection import Access
    from facer_cli.store.contract import StoreContract, open_store
    from facer_cli.store.gallery_source import GallerySource, SQLiteGallerySource
    from facer_cli.store.records import (
        LOCKED_OUT,
        MODES,
        NO_PROBE,
        NOT_LIVE,
        Attempt,
        AttemptRecord,
        IdentifyRecord,
        Lookalike,
        Mode,
        Removal,
        StoredTemplate,
        UserDetails,
        UserSummary,
        parse_mode,
        validate_user_name,
    )
    from facer_cli.store.repository import Store
    from facer_cli.store.urls import redact_url

_RECORDS = "facer_cli.store.records"
_EXPORTS = {
    "Access": "facer_cli.store.connection",
    "GallerySource": "facer_cli.store.gallery_source",
    "SQLiteGallerySource": "facer_cli.store.gallery_source",
    "Store": "facer_cli.store.repository",
    "StoreContract": "facer_cli.store.contract",
    "open_store": "facer_cli.store.contract",
    "redact_url": "facer_cli.store.urls",
    **{
        name: _RECORDS
        for name in (
            "LOCKED_OUT",
            "MODES",
            "NO_PROBE",
            "NOT_LIVE",
            "Attempt",
            "AttemptRecord",
            "IdentifyRecord",
            "Lookalike",
            "Mode",
            "Removal",
            "StoredTemplate",
            "UserDetails",
            "UserSummary",
            "parse_mode",
            "validate_user_name",
        )
    },
}

__all__ = [
    "LOCKED_OUT",
    "MODES",
    "Access",
    "NO_PROBE",
    "NOT_LIVE",
    "Attempt",
    "AttemptRecord",
    "GallerySource",
    "IdentifyRecord",
    "Lookalike",
    "Mode",
    "Removal",
    "SQLiteGallerySource",
    "Store",
    "StoreContract",
    "StoredTemplate",
    "UserDetails",
    "UserSummary",
    "open_store",
    "parse_mode",
    "redact_url",
    "validate_user_name",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
