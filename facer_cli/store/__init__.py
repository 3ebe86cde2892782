"""The local store of users, templates, per-frame samples and the verify audit log.

- `connection`: the file — opening, migrations, transactions, one-line errors.
- `records`: plain records and what may be stored (user names, sample rows).
- `repository`: `Store`, the data operations.
- `migrations`: the schema as numbered steps.
- `gallery_source`: what the gallery index reads (`GallerySource`, SQLite's), and its files' erasure.
"""

from facer_cli.store.connection import Access
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
    "StoredTemplate",
    "UserDetails",
    "UserSummary",
    "parse_mode",
    "validate_user_name",
]
