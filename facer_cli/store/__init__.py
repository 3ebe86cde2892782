"""The local store of users, templates, per-frame samples and the verify audit log."""

from facer_cli.store.store import (
    Attempt, Removal, Store, StoredTemplate, UserDetails, UserSummary, Verification, validate_user_name,
)

__all__ = [
    "Attempt", "Removal", "Store", "StoredTemplate", "UserDetails", "UserSummary", "Verification",
    "validate_user_name",
]
