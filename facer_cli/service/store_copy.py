"""`facer store copy SRC DST`: users, templates, samples, the verify and identify logs and the
look-alike records, from one store into another, on either backend, verified.

    >>> from facer_cli.service import copy_store
    >>> copy_store("facer.db", "postgresql://door@db.example/facer").copied

One transaction on the destination (`exclusive_transaction`): the check, every insert and the
verification, so the destination gains all of it, verified, or nothing at all — a conflict, a
mismatch, an error, Ctrl-C or a killed process leave it as it was. Its other writers wait while it
runs (readers do not). The source is read in one snapshot (`snapshot`), with read access only.

- **Already there.** A user of the same name whose templates (every column but the ids, with the
  frames that built them) equal the source's is already there: nothing of them is written. One whose
  templates differ is a conflict: `StoreConflictError` names the first (by name), before anything is
  written. Log rows (attempts, identifications, look-alikes) are already there when the destination
  holds an equal row (ids translated), counted as a multiset. So a second run copies nothing.
- **Ids.** The destination gives every row an id of its own (ids are never reused on either side);
  users, templates, attempts and look-alikes are linked through a map of old to new ids. An attempt
  whose template the source no longer holds keeps no template id.
- **Verification**, before the commit, reading the destination back: every source user by name;
  each user's templates and samples equal; the sha256 over every template (user name, model,
  dimension, float32 bytes, in a canonical order) equal on both sides; every log row found. A
  mismatch is `CopyStoreError`, and nothing is written.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from facer_cli.errors import CopyStoreError, ModelMismatchError, StoreConflictError, StoreError, UsageError
from facer_cli.service.results import CopyResult, TableCopy
from facer_cli.settings import Settings, with_overrides
from facer_cli.store.bulk import COPIED_TABLES, Row
from facer_cli.store.contract import StoreContract, open_store
from facer_cli.store.urls import is_postgres_url, redact_url

# Users handled together: their templates and samples are read and written in one batch.
USER_BATCH = 200
LOG_TABLES = ("attempts", "lookalikes", "identifications")
# What each stage of a copy is, in words (the CLI's progress lines).
STAGES = {
    "check": "checking the users already there",
    "users": "copying users, templates and samples",
    "logs": "copying the logs and look-alikes",
    "verify": "verifying the copy",
}


@dataclass
class CopyProgress:
    """How far a stage of the copy has come: `done` of `total` (users, or log rows)."""

    stage: str
    done: int
    total: int

    @property
    def description(self) -> str:
        return STAGES[self.stage]


Progress = Callable[[CopyProgress], None]


def copy_store(
    source: str | Path,
    destination: str | Path,
    settings: Settings | None = None,
    *,
    on_progress: Progress | None = None,
) -> CopyResult:
    """Copy the store `source` into `destination` (each an SQLite file's path or a postgresql:// URL),
    verified. The source is opened for reading only; the destination's store is created when missing
    (an SQLite file, or facer's tables in an empty PostgreSQL database that exists). `settings` gives
    the busy timeout (its `db` is not used)."""
    settings = settings if settings is not None else Settings()
    src_db, dst_db = str(source).strip(), str(destination).strip()
    if not src_db or not dst_db:
        raise UsageError("give the source and the destination store: an SQLite file or a postgresql:// URL each")
    if same_store(src_db, dst_db):
        raise UsageError(f"the source and the destination are the same store ({redact_url(src_db)})")
    if not is_postgres_url(src_db) and not Path(src_db).expanduser().exists():
        raise CopyStoreError(f"there is no facer store at {src_db}: no such file")
    started = time.monotonic()
    try:
        with open_store(with_overrides(settings, db=src_db), "read") as src:
            with open_store(with_overrides(settings, db=dst_db), "create") as dst:
                if src.gallery_key == dst.gallery_key:
                    raise UsageError(f"the source and the destination are the same store ({src.location})")
                result = Copier(src, dst, on_progress).run()
    except CopyStoreError:
        raise
    except StoreError as exc:  # named by the store at fault; the `db` setting's hint does not apply
        raise CopyStoreError(exc.message, public_message=exc.public_message) from None
    result.seconds = time.monotonic() - started
    return result


def same_store(a: str, b: str) -> bool:
    """Whether two `db` values name one store (the same file, or the same URL but its password)."""
    if is_postgres_url(a) or is_postgres_url(b):
        return redact_url(a) == redact_url(b)
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except OSError:
        return False


# -- what is compared ---------------------------------------------------------------------
def digest(*values: Any) -> bytes:
    """sha256 of values (nested tuples and lists of None, bool, int, float, str and bytes), each
    tagged with its type and length, so no two different lists of values hash alike."""
    hasher = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, (tuple, list)):
            hasher.update(b"(%d" % len(value))
            for item in value:
                feed(item)
            return
        if isinstance(value, bytes):
            data, tag = value, b"b"
        elif isinstance(value, str):
            data, tag = value.encode("utf-8", "surrogatepass"), b"s"
        else:  # None, bool, int, float: repr is exact (a float's repr reads back as the same float)
            data, tag = repr(value).encode(), type(value).__name__.encode()[:1]
        hasher.update(tag + len(data).to_bytes(8, "big") + data)

    feed(values)
    return hasher.digest()


def content(row: Row, *dropped: str) -> tuple:
    """A row's values but its ids (its own and its references), in COLUMNS' order."""
    return tuple(value for name, value in row.items() if name != "id" and name not in dropped)


def template_checksum_part(user: str, template: Row) -> bytes:
    """One template's part of the checksum: its user's name, model, dimension and float32 bytes."""
    hasher = hashlib.sha256()
    for part in (user.encode("utf-8", "surrogatepass"), str(template["model"]).encode("utf-8", "surrogatepass")):
        hasher.update(len(part).to_bytes(8, "big") + part)
    hasher.update(int(template["dimension"]).to_bytes(8, "big"))
    hasher.update(template["vector"])
    return hasher.digest()


def checksum(parts: Iterable[bytes]) -> str:
    """sha256 over the parts in sorted order: the same whatever order the rows were read in."""
    hasher = hashlib.sha256()
    for part in sorted(parts):
        hasher.update(part)
    return hasher.hexdigest()


@dataclass
class UserData:
    """One user's templates and samples as read from a store, compared by content."""

    row: Row
    templates: list[Row]
    samples: dict[int, list[Row]]  # template id -> its samples

    @cached_property
    def entries(self) -> list[tuple[bytes, int]]:
        """(content digest, id) of each template with its samples, by id."""
        found = []
        for template in self.templates:
            samples = sorted(digest(content(s, "template_id")) for s in self.samples.get(template["id"], []))
            found.append((digest(content(template, "user_id"), samples), template["id"]))
        return found

    @cached_property
    def digest(self) -> bytes:
        return digest(sorted(entry for entry, _ in self.entries))

    @property
    def sample_count(self) -> int:
        return sum(len(rows) for rows in self.samples.values())


def read_users(store: StoreContract, names: Sequence[str]) -> dict[str, UserData]:
    """These users' rows, templates and samples (those the store holds)."""
    users = {row["name"]: row for batch in store.table_rows("users", users=names) for row in batch}
    owner = {row["id"]: row["name"] for row in users.values()}
    data = {name: UserData(row, [], defaultdict(list)) for name, row in users.items()}
    template_owner: dict[int, str] = {}
    for batch in store.table_rows("templates", users=names):
        for template in batch:
            name = owner[template["user_id"]]
            data[name].templates.append(template)
            template_owner[template["id"]] = name
    for batch in store.table_rows("samples", users=names):
        for sample in batch:
            data[template_owner[sample["template_id"]]].samples[sample["template_id"]].append(sample)
    return data


def batches(items: Sequence[str], size: int = USER_BATCH) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Copier:
    """One copy from an open source store into an open destination store."""

    def __init__(self, src: StoreContract, dst: StoreContract, on_progress: Progress | None):
        self.src, self.dst = src, dst
        self.on_progress = on_progress
        self.tables = {table: TableCopy(table, 0) for table in COPIED_TABLES}
        self.user_map: dict[int, int] = {}  # source user id -> destination user id
        self.template_map: dict[int, int] = {}  # source template id -> destination template id
        self.digests: dict[str, bytes] = {}  # user name -> digest of their templates and samples
        self.checksum_parts: list[bytes] = []
        self.log_keys: dict[str, Counter[bytes]] = {table: Counter() for table in LOG_TABLES}

    def progress(self, stage: str, done: int, total: int) -> None:
        if self.on_progress is not None:
            self.on_progress(CopyProgress(stage, done, total))

    def run(self) -> CopyResult:
        src, dst = self.src, self.dst
        with src.snapshot("read it"), dst.exclusive_transaction("copy a store into it"):
            source_counts = src.row_counts()
            was_empty = not any(dst.row_counts().values())
            for table, count in source_counts.items():
                self.tables[table].source = count
            users = sorted(row["name"] for batch in src.table_rows("users") for row in batch)
            there = sorted(row["name"] for batch in dst.table_rows("users", users=users) for row in batch)
            self.check_models()
            self.check_users(there)
            self.copy_users(sorted(set(users) - set(there)))
            self.copy_logs()
            self.verify(users)
        return CopyResult(
            source=src.location,
            destination=dst.location,
            source_backend=src.backend,
            destination_backend=dst.backend,
            tables=[self.tables[table] for table in COPIED_TABLES],
            templates_sha256=checksum(self.checksum_parts),
            was_empty=was_empty,
        )

    # -- before anything is written ------------------------------------------------------------
    def check_models(self) -> None:
        """A model's templates have one dimension in a store: the source's must fit the destination's."""
        dimensions: dict[str, int] = {}
        for batch in self.src.table_rows("templates"):
            for template in batch:
                dimensions.setdefault(template["model"], template["dimension"])
        if not dimensions:
            return
        source = self.dst.gallery_source()
        try:
            with source.read_transaction():
                for model, dimension in sorted(dimensions.items()):
                    count, there = source.template_shape(model)
                    if count and there != dimension:
                        raise ModelMismatchError(
                            f"model {model} makes {there}-d templates in {self.dst.location}, but {dimension}-d "
                            f"ones in {self.src.location}; nothing was written"
                        )
        finally:
            source.close()

    def check_users(self, there: list[str]) -> None:
        """Users of the same name on both sides: equal (already there: their ids are mapped), or a
        conflict, raised before anything is written."""
        conflicts: list[str] = []
        done = 0
        self.progress("check", 0, len(there))
        for names in batches(there):
            mine, theirs = read_users(self.src, names), read_users(self.dst, names)
            for name in names:
                ours, other = mine[name], theirs[name]
                if ours.digest != other.digest:
                    conflicts.append(name)
                    continue
                self.user_map[ours.row["id"]] = other.row["id"]
                pairs: dict[bytes, list[int]] = defaultdict(list)
                for entry, template_id in other.entries:
                    pairs[entry].append(template_id)
                for entry, template_id in ours.entries:
                    self.template_map[template_id] = pairs[entry].pop(0)
                self.remember(name, ours)
                self.tables["users"].already_there += 1
                self.tables["templates"].already_there += len(ours.templates)
                self.tables["samples"].already_there += ours.sample_count
            done += len(names)
            self.progress("check", done, len(there))
        if conflicts:
            first = conflicts[0]
            others = f" (and {len(conflicts) - 1} other user(s))" if len(conflicts) > 1 else ""
            raise StoreConflictError(
                f"{self.dst.location} already holds a user {first!r}{others} whose templates differ from those "
                f"in {self.src.location}; nothing was written"
            )

    def remember(self, name: str, user: UserData) -> None:
        self.digests[name] = user.digest
        self.checksum_parts.extend(template_checksum_part(name, t) for t in user.templates)

    # -- writing -------------------------------------------------------------------------------
    def copy_users(self, new: list[str]) -> None:
        done = 0
        self.progress("users", 0, len(new))
        for names in batches(new):
            data = read_users(self.src, names)
            users = [data[name].row for name in names]
            for user, new_id in zip(users, self.dst.insert_rows("users", users), strict=True):
                self.user_map[user["id"]] = new_id
            templates = [t for name in names for t in data[name].templates]
            rows = [{**t, "user_id": self.user_map[t["user_id"]]} for t in templates]
            for template, new_id in zip(templates, self.dst.insert_rows("templates", rows), strict=True):
                self.template_map[template["id"]] = new_id
            samples = [
                {**s, "template_id": self.template_map[s["template_id"]]}
                for name in names
                for t in data[name].templates
                for s in data[name].samples.get(t["id"], [])
            ]
            self.dst.insert_rows("samples", samples)
            for name in names:
                self.remember(name, data[name])
            self.tables["users"].copied += len(users)
            self.tables["templates"].copied += len(templates)
            self.tables["samples"].copied += len(samples)
            done += len(names)
            self.progress("users", done, len(new))

    def translated(self, table: str, row: Row) -> Row | None:
        """A source log row with the destination's ids (None: a look-alike whose users are gone)."""
        if table == "attempts":
            user = row["user_id"]
            template = row["template_id"]
            return {
                **row,
                "user_id": None if user is None else self.user_map.get(user),
                "template_id": None if template is None else self.template_map.get(template),
            }
        if table == "lookalikes":
            user, other = self.user_map.get(row["user_id"]), self.user_map.get(row["other_user_id"])
            if user is None or other is None:
                return None
            return {**row, "user_id": user, "other_user_id": other}
        return row

    def existing(self, table: str) -> Counter[bytes]:
        return Counter(digest(content(row)) for batch in self.dst.table_rows(table) for row in batch)

    def copy_logs(self) -> None:
        total = sum(self.tables[table].source for table in LOG_TABLES)
        done = 0
        self.progress("logs", 0, total)
        for table in LOG_TABLES:
            there = self.existing(table)
            counts = self.tables[table]
            for batch in self.src.table_rows(table):
                new: list[Row] = []
                for row in batch:
                    done += 1
                    mapped = self.translated(table, row)
                    if mapped is None:
                        counts.left_out += 1
                        continue
                    key = digest(content(mapped))
                    self.log_keys[table][key] += 1
                    if there[key] > 0:
                        there[key] -= 1
                        counts.already_there += 1
                    else:
                        new.append(mapped)
                self.dst.insert_rows(table, new)
                counts.copied += len(new)
                self.progress("logs", done, total)

    # -- reading the destination back ---------------------------------------------------------------
    def verify(self, users: list[str]) -> None:
        problems: list[str] = []
        total = len(users) + sum(self.tables[table].source for table in LOG_TABLES)
        done = 0
        self.progress("verify", 0, total)
        parts: list[bytes] = []
        templates = samples = 0
        differing: list[str] = []
        for names in batches(users):
            theirs = read_users(self.dst, names)
            for name in names:
                user = theirs.get(name)
                if user is None:
                    differing.append(name)
                    continue
                self.tables["users"].verified += 1
                if user.digest != self.digests.get(name):
                    differing.append(name)
                templates += len(user.templates)
                samples += user.sample_count
                parts.extend(template_checksum_part(name, t) for t in user.templates)
            done += len(names)
            self.progress("verify", done, total)
        self.tables["templates"].verified = templates
        self.tables["samples"].verified = samples
        if differing:
            problems.append(f"{len(differing)} user(s) missing or different, first {differing[0]!r}")
        for table in ("templates", "samples"):
            counts = self.tables[table]
            if counts.verified != counts.source:
                problems.append(f"{table}: {counts.source} in the source, {counts.verified} in the destination")
        mine, found = checksum(self.checksum_parts), checksum(parts)
        if mine != found:
            problems.append(f"templates' sha256 {mine[:12]}… in the source, {found[:12]}… in the destination")
        for table in LOG_TABLES:
            there = self.existing(table)
            counts = self.tables[table]
            counts.verified = sum(min(n, there[key]) for key, n in self.log_keys[table].items())
            expected = counts.source - counts.left_out
            if counts.verified != expected:
                problems.append(f"{table}: {expected} in the source, {counts.verified} found in the destination")
            done += counts.source
            self.progress("verify", done, total)
        if problems:
            raise CopyStoreError(
                f"the copy in {self.dst.location} does not match {self.src.location} ({'; '.join(problems)}); "
                "nothing was written"
            )


__all__ = ["STAGES", "CopyProgress", "copy_store", "same_store"]
