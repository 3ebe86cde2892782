"""The PostgreSQL store's schema, as numbered steps recorded in `facer_schema`.

A step, once released, never changes: a schema change is a new step, appended. Each pending step
runs in one transaction with its row in `facer_schema` (version = its number, from 1), under a
transaction-level advisory lock, so any number of processes may open a new database at once. A
database whose `facer_schema` holds a version above `len(STEPS)` comes from a newer facer and is
refused.

The tables are SQLite's (`facer_cli.store.migrations`) in PostgreSQL's types: ids are identity
columns (never reused), vectors and embeddings float32 bytes in `bytea`, times ISO 8601 text as
SQLite keeps them. The gallery's change counter (`gallery_version`) is kept by triggers (once per
statement since step 6), and each change of it is announced with NOTIFY on `GALLERY_CHANNEL`
(step 2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence, Union

if TYPE_CHECKING:
    import psycopg

# A schema step's statement: SQL, or a function run on the step's connection.
Statement = Union[str, Callable[["psycopg.Connection"], None]]

# The version table: one row per applied step.
VERSION_TABLE = "facer_schema"
CREATE_VERSION_TABLE = f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version integer PRIMARY KEY, name text NOT NULL, applied text NOT NULL)"
# Key of the transaction-level advisory lock the schema steps run under ("FACE").
SCHEMA_LOCK = 0x46414345
# Tables facer owns: a database holding one of them without `facer_schema` is not a facer store.
OWN_TABLES = ("users", "templates", "samples", "attempts", "gallery_version", "lookalikes", "identifications")

M001_TABLES = [
    "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL UNIQUE,"
    " created text NOT NULL, updated text NOT NULL)",
    # One row per template: a float32 unit vector and how it was made.
    "CREATE TABLE templates (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " user_id bigint NOT NULL REFERENCES users (id), vector bytea NOT NULL, dimension integer NOT NULL,"
    " model text NOT NULL, frames_seen integer, frames_used integer, outliers integer,"
    " mean_quality double precision, source text, created text NOT NULL,"
    " model_unverified boolean NOT NULL DEFAULT false)",
    "CREATE INDEX templates_user_id ON templates (user_id)",
    "CREATE INDEX templates_model_id ON templates (model, id)",
    # The frames that built a template: measurements and the decision, never pixels; an embedding
    # only for kept frames.
    "CREATE TABLE samples (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " template_id bigint NOT NULL REFERENCES templates (id), position integer NOT NULL, source text,"
    " embedding bytea, det_score double precision, quality double precision, yaw double precision,"
    " pitch double precision, roll double precision, sharpness double precision, decision text NOT NULL,"
    " reason text)",
    "CREATE INDEX samples_template_id ON samples (template_id)",
    # The verify audit log: never an embedding; the name outlives the user (user_id NULL after removal).
    "CREATE TABLE attempts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id bigint,"
    " user_name text NOT NULL, created text NOT NULL, similarity double precision, band text NOT NULL,"
    " threshold_high double precision, threshold_low double precision, template_id bigint, model text,"
    " source text, frames_seen integer, frames_used integer, live boolean, liveness_reason text,"
    " liveness text)",
    "CREATE INDEX attempts_user_band_created ON attempts (user_id, band, created)",
    "CREATE INDEX attempts_user_name_created ON attempts (user_name, created)",
    # Per model: templates ever inserted and deleted, the highest id inserted, and inserts that took
    # an id at or below it (an identity value drawn earlier but committed later) or updated a row:
    # the gallery index's stamp (`facer_cli.store.gallery_source.GallerySource.stamp`).
    "CREATE TABLE gallery_version (model text PRIMARY KEY, inserts bigint NOT NULL DEFAULT 0,"
    " deletes bigint NOT NULL DEFAULT 0, high_water bigint NOT NULL DEFAULT 0, reused bigint NOT NULL DEFAULT 0)",
    "CREATE FUNCTION facer_gallery_version() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "  IF TG_OP IN ('DELETE', 'UPDATE') THEN\n"
    "    UPDATE gallery_version SET deletes = deletes + 1 WHERE model = OLD.model;\n"
    "  END IF;\n"
    "  IF TG_OP IN ('INSERT', 'UPDATE') THEN\n"
    "    INSERT INTO gallery_version (model) VALUES (NEW.model) ON CONFLICT (model) DO NOTHING;\n"
    "    UPDATE gallery_version SET inserts = inserts + 1,\n"
    "      reused = reused + CASE WHEN TG_OP = 'UPDATE' OR NEW.id <= high_water THEN 1 ELSE 0 END,\n"
    "      high_water = greatest(high_water, NEW.id) WHERE model = NEW.model;\n"
    "  END IF;\n"
    "  RETURN NULL;\n"
    "END $$",
    "CREATE TRIGGER gallery_version_change AFTER INSERT OR DELETE OR UPDATE OF id, user_id, vector, dimension, model"
    " ON templates FOR EACH ROW EXECUTE FUNCTION facer_gallery_version()",
    # Pairs of users whose templates matched at or above identify_threshold when one was enrolled anyway.
    "CREATE TABLE lookalikes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id bigint NOT NULL,"
    " other_user_id bigint NOT NULL, similarity double precision NOT NULL, model text, created text NOT NULL)",
    "CREATE INDEX lookalikes_user_id ON lookalikes (user_id)",
    "CREATE INDEX lookalikes_other_user_id ON lookalikes (other_user_id)",
    # The identify audit log: names and scores, never an embedding.
    "CREATE TABLE identifications (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, created text NOT NULL,"
    " model text, source text, decision text NOT NULL, user_name text, similarity double precision,"
    " threshold double precision, margin double precision, candidates text, gallery_size integer,"
    " frames_seen integer, frames_used integer)",
    "CREATE INDEX identifications_created ON identifications (created)",
]

# The channel a change of the gallery is announced on (LISTEN facer_gallery), with the model as payload.
GALLERY_CHANNEL = "facer_gallery"

# Every change of a model's gallery counter is announced on GALLERY_CHANNEL when its transaction
# commits (PostgreSQL folds equal notifications of one transaction into one), so a `facer serve`
# replica catches up before its next request instead of on it.
M002_NOTIFY = [
    "CREATE FUNCTION facer_gallery_notify() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    f"  PERFORM pg_notify('{GALLERY_CHANNEL}', NEW.model);\n"
    "  RETURN NULL;\n"
    "END $$",
    "CREATE TRIGGER gallery_version_notify AFTER INSERT OR UPDATE ON gallery_version"
    " FOR EACH ROW EXECUTE FUNCTION facer_gallery_notify()",
]


def _fill_name_keys(conn: psycopg.Connection) -> None:
    """Each user's canonical key, by id; a later look-alike keeps none (see M003_NAME_KEYS)."""
    from facer_cli.store.names import assign_keys

    given, _ = assign_keys(conn.execute("SELECT id, name FROM users ORDER BY id").fetchall())
    with conn.cursor() as cursor:
        cursor.executemany("UPDATE users SET name_key = %s WHERE id = %s", [(key, user_id) for user_id, key in given])


# Names that look the same are one name: each user's canonical key (`facer_cli.store.names`) under a
# unique index, filled for the users enrolled before, by id. A later user whose name looks like an
# earlier one's keeps name and templates but no key (NULL): `users check` names the pair, and the
# key passes to it once the earlier one is renamed or removed (as SQLite's m007).
M003_NAME_KEYS: list[Statement] = [
    "ALTER TABLE users ADD COLUMN name_key text",
    _fill_name_keys,
    "CREATE UNIQUE INDEX users_name_key_unique ON users (name_key)",
]

# The named API keys of `facer serve` and which key made each logged request (as SQLite's m008).
M004_API_KEYS: list[Statement] = [
    "CREATE TABLE api_keys (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL,"
    " scope text NOT NULL, key_hash text NOT NULL, created text NOT NULL, revoked text)",
    "CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked IS NULL",
    "ALTER TABLE attempts ADD COLUMN key_name text",
    "ALTER TABLE identifications ADD COLUMN key_name text",
]

# Each user's data key wrapped by the master key, for templates encrypted at rest (as SQLite's m009).
M005_DATA_KEYS: list[Statement] = [
    "CREATE TABLE data_keys (user_id bigint PRIMARY KEY REFERENCES users (id), wrapped bytea NOT NULL,"
    " master text NOT NULL, created text NOT NULL)",
]

# The gallery counters kept per statement instead of per row: m001's trigger updated the model's
# gallery_version row once per template, so a bulk insert of N templates in one transaction made N
# versions of that one row (each update slower than the last, none prunable while it ran). These
# triggers read the statement's rows from transition tables (one trigger per event: PostgreSQL
# allows no transition tables on a trigger of several events) and update each model's row once.
# The counts are m001's and SQLite's: an insert counts in `inserts`, and in `reused` when its id is
# at or below the model's high water mark (read under the row's lock, so a concurrent transaction's
# committed insert is seen) — a statement's rows counted as if inserted in id order, as facer
# inserts them; a delete counts in `deletes`; an update counts, for each row whose id, user,
# vector, dimension or model it changed, as a delete of the old row and a reused insert of the new
# one (a trigger with transition tables cannot name columns: a row updated to the values it held
# counts nothing). Models are locked in name order, so two statements never deadlock on them. The
# counters as they stand are kept, so an index built before the step catches up after it.
M006_INSERTED = (
    "CREATE FUNCTION facer_gallery_inserted() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "DECLARE\n"
    "  added record;\n"
    "  mark bigint;\n"
    "BEGIN\n"
    "  FOR added IN SELECT model, count(*) AS n, max(id) AS top FROM facer_new GROUP BY model ORDER BY model LOOP\n"
    "    INSERT INTO gallery_version (model) VALUES (added.model) ON CONFLICT (model) DO NOTHING;\n"
    "    SELECT high_water INTO mark FROM gallery_version WHERE model = added.model FOR UPDATE;\n"
    "    UPDATE gallery_version SET inserts = inserts + added.n,\n"
    "      reused = reused + (SELECT count(*) FROM facer_new WHERE model = added.model AND id <= mark),\n"
    "      high_water = greatest(high_water, added.top) WHERE model = added.model;\n"
    "  END LOOP;\n"
    "  RETURN NULL;\n"
    "END $$"
)
M006_DELETED = (
    "CREATE FUNCTION facer_gallery_deleted() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "DECLARE\n"
    "  gone record;\n"
    "BEGIN\n"
    "  FOR gone IN SELECT model, count(*) AS n FROM facer_old GROUP BY model ORDER BY model LOOP\n"
    "    UPDATE gallery_version SET deletes = deletes + gone.n WHERE model = gone.model;\n"
    "  END LOOP;\n"
    "  RETURN NULL;\n"
    "END $$"
)
# An updated row is paired with its old self by id; an id changed (SET id = DEFAULT) leaves both
# unpaired: the old one counts as deleted, the new one as a reused insert, as any changed row.
M006_UPDATED = (
    "CREATE FUNCTION facer_gallery_updated() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "DECLARE\n"
    "  changed record;\n"
    "BEGIN\n"
    "  FOR changed IN\n"
    "    WITH moved AS (\n"
    "      SELECT o.model AS old_model, n.model AS new_model, n.id AS new_id\n"
    "      FROM facer_old o FULL JOIN facer_new n ON n.id = o.id\n"
    "      WHERE o.id IS NULL OR n.id IS NULL OR (o.user_id, o.vector, o.dimension, o.model)\n"
    "        IS DISTINCT FROM (n.user_id, n.vector, n.dimension, n.model))\n"
    "    SELECT model, sum(gone) AS gone, sum(added) AS added, max(top) AS top FROM (\n"
    "      SELECT old_model AS model, 1 AS gone, 0 AS added, NULL::bigint AS top FROM moved WHERE old_model IS NOT NULL\n"
    "      UNION ALL SELECT new_model, 0, 1, new_id FROM moved WHERE new_model IS NOT NULL) counted\n"
    "    GROUP BY model ORDER BY model\n"
    "  LOOP\n"
    "    IF changed.added > 0 THEN\n"
    "      INSERT INTO gallery_version (model) VALUES (changed.model) ON CONFLICT (model) DO NOTHING;\n"
    "    END IF;\n"
    "    UPDATE gallery_version SET deletes = deletes + changed.gone, inserts = inserts + changed.added,\n"
    "      reused = reused + changed.added, high_water = greatest(high_water, coalesce(changed.top, 0))\n"
    "      WHERE model = changed.model;\n"
    "  END LOOP;\n"
    "  RETURN NULL;\n"
    "END $$"
)
M006_STATEMENT_COUNTERS: list[Statement] = [
    "DROP TRIGGER gallery_version_change ON templates",
    "DROP FUNCTION facer_gallery_version()",
    M006_INSERTED,
    M006_DELETED,
    M006_UPDATED,
    "CREATE TRIGGER gallery_version_insert AFTER INSERT ON templates REFERENCING NEW TABLE AS facer_new"
    " FOR EACH STATEMENT EXECUTE FUNCTION facer_gallery_inserted()",
    "CREATE TRIGGER gallery_version_delete AFTER DELETE ON templates REFERENCING OLD TABLE AS facer_old"
    " FOR EACH STATEMENT EXECUTE FUNCTION facer_gallery_deleted()",
    "CREATE TRIGGER gallery_version_update AFTER UPDATE ON templates"
    " REFERENCING OLD TABLE AS facer_old NEW TABLE AS facer_new FOR EACH STATEMENT EXECUTE FUNCTION facer_gallery_updated()",
]

# The key the identify sidecar is sealed with, wrapped by the master key (as SQLite's m010): one row.
# PostgreSQL keeps no sidecar, but a removal, `store rekey` and `store decrypt` keep it as SQLite
# does (`facer_cli.store.vault`), so the two stores' schemas and copies agree.
M007_SIDECAR_KEYS: list[Statement] = [
    "CREATE TABLE sidecar_keys (id integer PRIMARY KEY CHECK (id = 1), wrapped bytea NOT NULL,"
    " master text NOT NULL, created text NOT NULL)",
]

# (name, statements), in order: step n is STEPS[n - 1]. A statement is SQL, or a function run on
# the step's connection (in its transaction).
STEPS: list[tuple[str, Sequence[Statement]]] = [
    ("m001_users_templates_samples_audit_gallery", M001_TABLES),
    ("m002_gallery_change_notify", M002_NOTIFY),
    ("m003_user_name_keys", M003_NAME_KEYS),
    ("m004_api_keys_and_key_names", M004_API_KEYS),
    ("m005_data_keys", M005_DATA_KEYS),
    ("m006_gallery_counters_per_statement", M006_STATEMENT_COUNTERS),
    ("m007_sidecar_keys", M007_SIDECAR_KEYS),
]
STEP_NAMES = [name for name, _ in STEPS]
# The schema version from which the store has `sidecar_keys`.
SIDECAR_KEYS_VERSION = STEP_NAMES.index("m007_sidecar_keys") + 1
