"""The store's schema, as numbered `sqlite_utils.Migrations` steps.

A step, once released, never changes: a schema change is a new step. Each step
runs in a transaction together with the record that it ran.

sqlite_utils is imported only when a step is pending (`apply`) or `migrations` is
asked for: opening an up-to-date store (every command but the first) does without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from sqlite_utils import Database, Migrations

# The migration set's name, as recorded in `_sqlite_migrations`.
MIGRATION_SET = "facer.store"
# The steps this facer knows, in order: a store that applied others comes from a newer facer.
STEP_NAMES: list[str] = []
_STEPS: list[Callable[["Database"], None]] = []
_migrations: "Migrations | None" = None


def step(function: Callable[["Database"], None]) -> Callable[["Database"], None]:
    """Register a numbered schema step (and remember its name)."""
    STEP_NAMES.append(function.__name__)
    _STEPS.append(function)
    return function


def migrations_set() -> "Migrations":
    """The steps as `sqlite_utils.Migrations` (made on first use)."""
    global _migrations
    if _migrations is None:
        from sqlite_utils import Migrations

        made = Migrations(MIGRATION_SET)
        for function in _STEPS:
            made()(function)
        _migrations = made
    return _migrations


def apply(db: "Database") -> None:
    """Run the pending steps, each in a transaction with the record that it ran."""
    migrations_set().apply(db)


def __getattr__(name: str) -> Any:
    if name == "migrations":
        return migrations_set()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@step
def m001_users_templates_samples(db: "Database") -> None:
    db.table("users").create(
        {"id": int, "name": str, "created": str, "updated": str},
        pk="id",
        not_null={"name", "created", "updated"},
    )
    db.table("users").create_index(["name"], unique=True)
    # One row per template: a float32 unit vector and how it was made.
    db.table("templates").create(
        {
            "id": int,
            "user_id": int,
            "vector": bytes,
            "dimension": int,
            "model": str,
            "frames_seen": int,
            "frames_used": int,
            "outliers": int,
            "mean_quality": float,
            "source": str,
            "created": str,
        },
        pk="id",
        foreign_keys=[("user_id", "users", "id")],
        not_null={"user_id", "vector", "dimension", "model", "created"},
    )
    db.table("templates").create_index(["user_id"])
    db.table("templates").create_index(["model"])
    # The frames that built a template: measurements and the decision, never pixels.
    db.table("samples").create(
        {
            "id": int,
            "template_id": int,
            "position": int,
            "source": str,
            "embedding": bytes,
            "det_score": float,
            "quality": float,
            "yaw": float,
            "pitch": float,
            "roll": float,
            "sharpness": float,
            "decision": str,
            "reason": str,
        },
        pk="id",
        foreign_keys=[("template_id", "templates", "id")],
        not_null={"template_id", "position", "decision"},
    )
    db.table("samples").create_index(["template_id"])


@step
def m002_verify_audit_log(db: "Database") -> None:
    # Who tried to verify as whom, when, and the outcome. No embeddings: the log
    # outlives the user it names (a removed user's attempts keep their name only).
    db.table("attempts").create(
        {
            "id": int,
            "user_id": int,
            "user_name": str,
            "created": str,
            "similarity": float,
            "band": str,
            "threshold_high": float,
            "threshold_low": float,
            "template_id": int,
            "model": str,
            "source": str,
            "frames_seen": int,
            "frames_used": int,
        },
        pk="id",
        not_null={"user_name", "created", "band"},
    )
    db.table("attempts").create_index(["user_id", "created"])


@step
def m003_unverified_models_and_pending_erasure(db: "Database") -> None:
    # 1 when the template was imported under a fingerprint facer could not check (not the
    # current model's): `users list` flags it. Older rows came from enrollments or checked imports.
    db.table("templates").add_column("model_unverified", int, not_null_default=0)
    # One row per removal whose bytes may still be in the WAL or in old pages of the main file
    # (a reader held an older snapshot): the next connection that can checkpoint finishes it.
    db.table("pending_erasure").create({"id": int, "created": str}, pk="id", not_null={"created"})


@step
def m004_liveness_audit(db: Database) -> None:
    # The liveness outcome of a verify attempt: live 1/0 (NULL: no challenge was asked), the reasons
    # in words, and the challenge's summary as JSON (moves, parallax, time; no pixels, no embeddings).
    # An attempt refused as not live has band "not_live"; one refused during a lockout, "locked_out".
    db.table("attempts").add_column("live", int)
    db.table("attempts").add_column("liveness_reason", str)
    db.table("attempts").add_column("liveness", str)
    db.table("attempts").create_index(["user_id", "band", "created"])
