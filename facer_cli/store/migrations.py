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


@step
def m005_gallery_version_lookalikes_identify_log(db: Database) -> None:
    # What `facer identify` needs from the store. Plain statements, not executescript (which would
    # commit the step's transaction half-way).
    #
    # gallery_version: per model, how many templates were ever inserted and deleted, the highest
    # id ever inserted, and how many inserts took an id at or below it (SQLite reuses the ids of
    # deleted newest rows), kept by triggers. The gallery index (`facer_cli.gallery`) sees in one
    # look-up whether and how the templates changed since its sidecar was written: with no reused
    # id, every new template has an id above the ones it knows. An update of a row's content
    # counts as a delete and a reused insert.
    db.execute(
        "CREATE TABLE gallery_version (model TEXT PRIMARY KEY, inserts INTEGER NOT NULL DEFAULT 0,"
        " deletes INTEGER NOT NULL DEFAULT 0, high_water INTEGER NOT NULL DEFAULT 0,"
        " reused INTEGER NOT NULL DEFAULT 0)"
    )
    db.execute(
        "INSERT INTO gallery_version (model, inserts, high_water)"
        " SELECT model, count(*), max(id) FROM templates GROUP BY model"
    )
    db.execute(
        "CREATE TRIGGER gallery_version_insert AFTER INSERT ON templates BEGIN"
        " INSERT OR IGNORE INTO gallery_version (model) VALUES (NEW.model);"
        " UPDATE gallery_version SET inserts = inserts + 1, reused = reused + (NEW.id <= high_water),"
        " high_water = max(high_water, NEW.id) WHERE model = NEW.model; END"
    )
    db.execute(
        "CREATE TRIGGER gallery_version_delete AFTER DELETE ON templates BEGIN"
        " UPDATE gallery_version SET deletes = deletes + 1 WHERE model = OLD.model; END"
    )
    db.execute(
        "CREATE TRIGGER gallery_version_update AFTER UPDATE OF id, user_id, vector, dimension, model ON templates BEGIN"
        " UPDATE gallery_version SET deletes = deletes + 1 WHERE model = OLD.model;"
        " INSERT OR IGNORE INTO gallery_version (model) VALUES (NEW.model);"
        " UPDATE gallery_version SET inserts = inserts + 1, reused = reused + 1,"
        " high_water = max(high_water, NEW.id) WHERE model = NEW.model; END"
    )
    # Pairs of users whose templates matched at or above identify_threshold when the second was
    # enrolled anyway (a look-alike, or one person twice): `users show` lists them.
    db.table("lookalikes").create(
        {"id": int, "user_id": int, "other_user_id": int, "similarity": float, "model": str, "created": str},
        pk="id",
        not_null={"user_id", "other_user_id", "similarity", "created"},
    )
    db.table("lookalikes").create_index(["user_id"])
    db.table("lookalikes").create_index(["other_user_id"])
    # The identify audit log: probe source, the candidates' names and scores, the decision. Never
    # an embedding; names are kept as text, so the log outlives the users it names.
    db.table("identifications").create(
        {
            "id": int,
            "created": str,
            "model": str,
            "source": str,
            "decision": str,
            "user_name": str,
            "similarity": float,
            "threshold": float,
            "margin": float,
            "candidates": str,
            "gallery_size": int,
            "frames_seen": int,
            "frames_used": int,
        },
        pk="id",
        not_null={"created", "decision"},
    )
    db.table("identifications").create_index(["created"])


@step
def m006_template_ids_never_reused(db: Database) -> None:
    # A template's id names it in the verify audit log (`attempts.template_id`) and in `users show`,
    # so one id must never name two templates. A plain INTEGER PRIMARY KEY gives a new row the
    # largest id + 1: deleting the newest template (`users remove`, `--replace`, `users import
    # --replace`) handed its id to the next one. AUTOINCREMENT never hands an id out again.
    #
    # SQLite cannot change a primary key in place, so the table is rebuilt: the same columns,
    # every row with its id, its indexes and the gallery_version triggers (m005; their counters
    # are left as they were, so a gallery sidecar written before stays valid). The sequence starts
    # above every id known to have been used: the table's, the audit log's and gallery_version's
    # high water marks. Foreign keys stay on (they cannot be switched off inside the step's
    # transaction), so samples, whose rows reference templates, is rebuilt too (unchanged but for
    # that): the new samples table references the new templates table, whose rename to
    # "templates" SQLite carries into that reference; the old tables are then dropped child first,
    # with no row left referencing them. Dropped pages are zeroed (`secure_delete`).
    conn = db.conn

    def rebuilt(table: str, new_header: str) -> str:
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
        old_header = f'CREATE TABLE "{table}" (\n   "id" INTEGER PRIMARY KEY,'
        if not sql.startswith(old_header):
            raise RuntimeError(f"unexpected {table} table: {sql[:80]!r}")
        return new_header + sql[len(old_header) :]

    def columns(table: str) -> str:
        return ", ".join(f'"{row[1]}"' for row in conn.execute(f'PRAGMA table_info("{table}")'))

    templates_sql = rebuilt("templates", 'CREATE TABLE "templates_new" (\n   "id" INTEGER PRIMARY KEY AUTOINCREMENT,')
    samples_sql = rebuilt("samples", 'CREATE TABLE "samples_new" (\n   "id" INTEGER PRIMARY KEY,')
    reference = 'REFERENCES "templates"("id")'
    if samples_sql.count(reference) != 1:
        raise RuntimeError(f"unexpected samples table: {samples_sql!r}")
    samples_sql = samples_sql.replace(reference, 'REFERENCES "templates_new"("id")')
    # Indexes and triggers go with their tables: made again on the new ones.
    dependents = [
        row[0]
        for row in conn.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name IN ('templates', 'samples')"
            " AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY type, name"
        )
    ]
    highest = [conn.execute("SELECT coalesce(max(id), 0) FROM templates").fetchone()[0]]
    highest.append(conn.execute("SELECT coalesce(max(template_id), 0) FROM attempts").fetchone()[0])
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'gallery_version'").fetchone():
        highest.append(conn.execute("SELECT coalesce(max(high_water), 0) FROM gallery_version").fetchone()[0])

    conn.execute(templates_sql)
    conn.execute(f'INSERT INTO "templates_new" ({columns("templates")}) SELECT {columns("templates")} FROM templates')
    conn.execute(samples_sql)
    conn.execute(f'INSERT INTO "samples_new" ({columns("samples")}) SELECT {columns("samples")} FROM samples')
    conn.execute('DROP TABLE "samples"')
    conn.execute('DROP TABLE "templates"')
    conn.execute('ALTER TABLE "templates_new" RENAME TO "templates"')  # samples_new now references "templates"
    conn.execute('ALTER TABLE "samples_new" RENAME TO "samples"')
    for sql in dependents:
        conn.execute(sql)
    conn.execute("DELETE FROM sqlite_sequence WHERE name IN ('templates', 'templates_new')")
    conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('templates', ?)", (max(int(v) for v in highest),))


@step
def m007_user_name_keys(db: Database) -> None:
    # Names that look the same are one name: each user's canonical key (`facer_cli.store.names`:
    # NFKC, case-folded, confusables mapped to their TR39 skeleton) under a unique index. Users
    # enrolled before get theirs here, by id; a later user whose name looks like an earlier one's
    # keeps both name and templates but no key (NULL, which the unique index allows): `users
    # check` names the pair, and the earlier one's key passes to it once the earlier is renamed or
    # removed. A row written without a key (by a program of its own) is given one the same way at
    # the next write.
    from facer_cli.store.names import assign_keys

    conn = db.conn
    conn.execute("ALTER TABLE users ADD COLUMN name_key TEXT")
    given, _ = assign_keys(conn.execute("SELECT id, name FROM users ORDER BY id").fetchall())
    conn.executemany("UPDATE users SET name_key = ? WHERE id = ?", [(key, user_id) for user_id, key in given])
    conn.execute("CREATE UNIQUE INDEX users_name_key_unique ON users (name_key)")


@step
def m008_api_keys_and_key_names(db: Database) -> None:
    # The named API keys of `facer serve` (`facer keys`): a name, a scope ("kiosk" or "admin"), the
    # salted hash of the token (never the token: `facer_cli.service.keys`), when it was made and
    # revoked. A revoked key keeps its row (`keys list` shows it); one active key per name, so a
    # kiosk's key can be replaced by a new one of the same name once the old is revoked.
    conn = db.conn
    conn.execute(
        "CREATE TABLE api_keys (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, scope TEXT NOT NULL,"
        " key_hash TEXT NOT NULL, created TEXT NOT NULL, revoked TEXT)"
    )
    conn.execute("CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked IS NULL")
    # Which key made each request the verify and identify logs record (NULL: the CLI, the Python
    # API, or a server that asks for no key).
    conn.execute("ALTER TABLE attempts ADD COLUMN key_name TEXT")
    conn.execute("ALTER TABLE identifications ADD COLUMN key_name TEXT")


@step
def m009_data_keys(db: Database) -> None:
    # Templates encrypted at rest (`facer_cli.store.crypto`): each user's data key, wrapped by the
    # master key (AES key wrap), with the master key's fingerprint. Removing a user deletes their
    # row: their sealed templates and samples, in any copy of the store, can no longer be opened.
    db.conn.execute(
        "CREATE TABLE data_keys (user_id INTEGER PRIMARY KEY REFERENCES users (id), wrapped BLOB NOT NULL,"
        " master TEXT NOT NULL, created TEXT NOT NULL)"
    )


@step
def m010_sidecar_keys(db: Database) -> None:
    # The key the identify sidecar is sealed with (`facer_cli.gallery.sidecar`), wrapped by the
    # master key as the data keys are, with the master key's fingerprint: one row (id 1). A removal
    # replaces it in its transaction, so a sidecar written before no longer opens; `store decrypt`
    # deletes it (the sidecar is then written in the clear).
    db.conn.execute(
        "CREATE TABLE sidecar_keys (id INTEGER PRIMARY KEY CHECK (id = 1), wrapped BLOB NOT NULL,"
        " master TEXT NOT NULL, created TEXT NOT NULL)"
    )
