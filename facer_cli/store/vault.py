"""`Vault`: the store's encrypted values on either backend — data keys in the `data_keys` table,
sealing on write, opening on read, the identify sidecar's key in `sidecar_keys` (made with the
first sealed write, replaced with every removal, rewrapped by `rekey`, dropped by `decrypt`), and
the in-place passes of `facer store encrypt`, `decrypt` and `rekey` (the keys and the cipher:
`facer_cli.store.crypto`).

SQL here is written with `?` marks and run on a DB-API connection (sqlite3, or psycopg with
`%s` marks); each method joins the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Sequence

import numpy as np

from facer_cli.errors import StoreKeyError
from facer_cli.store.crypto import (
    MAGIC,
    NONCE_BYTES,
    OVERHEAD,
    MasterKey,
    Sealer,
    SidecarKey,
    is_sealed,
    new_key,
    sample_aad,
    template_aad,
)
from facer_cli.store.records import now


class Vault:
    """One store's sealing. `paramstyle`: "qmark" (SQLite) or "format" (PostgreSQL);
    `has_table()` says whether the store has the `data_keys` table, `has_sidecar_table()` whether
    it has `sidecar_keys` (an older read-only store may have neither)."""

    # `facer store encrypt | decrypt`: users converted per commit (each user whole in one of them).
    users_per_commit = 100

    def __init__(
        self,
        sealer: Sealer,
        paramstyle: str,
        has_table: Callable[[], bool],
        has_sidecar_table: Callable[[], bool] | None = None,
    ):
        self.sealer = sealer
        self._format = paramstyle == "format"
        self._has_table = has_table
        self._has_sidecar_table = has_sidecar_table or (lambda: False)
        # True once this vault has seen the store's sidecar key in place: later writes need not look
        # again. (Were the row its own and its transaction rolled back, the next process's sealed
        # write makes one; indexes meanwhile keep the gallery in memory.)
        self._sidecar_key_seen = False

    @property
    def enabled(self) -> bool:
        return self.sealer.enabled

    def _q(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        return conn.execute(sql.replace("?", "%s") if self._format else sql, tuple(params))

    # -- data keys ---------------------------------------------------------------
    def _wrapped(self, conn: Any) -> Callable[[int], tuple[bytes, str] | None]:
        def load(user_id: int) -> tuple[bytes, str] | None:
            if not self._has_table():
                return None
            row = self._q(conn, "SELECT wrapped, master FROM data_keys WHERE user_id = ?", (user_id,)).fetchone()
            return None if row is None else (bytes(row[0]), str(row[1]))

        return load

    def read_key(self, conn: Any, user_id: int) -> bytes | None:
        return self.sealer.data_key(user_id, self._wrapped(conn))

    def check_writable(self, conn: Any, action: str) -> None:
        """Before a template is written: refused (nothing written) when the store holds data keys
        and no key is given, or keys wrapped by another master key."""
        if not self._has_table():
            if self.enabled:
                raise StoreKeyError(
                    f"{{db}} predates encryption at rest and is read-only here: cannot {action}", self.sealer.location
                )
            return
        master = self.sealer.master
        if master is None:
            if self._q(conn, "SELECT 1 FROM data_keys LIMIT 1").fetchone() is not None:
                self.sealer.require(action)
            return
        # Every data key is wrapped by one master key (each write checks it, rekey rewraps all at
        # once), so one row says which: a constant-time check however many users there are.
        other = self._q(conn, "SELECT master FROM data_keys LIMIT 1").fetchone()
        if other is not None and other[0] != master.fingerprint:
            raise StoreKeyError(
                f"{{db}} was encrypted with another key (fingerprint {other[0]}; the key given has "
                f"{master.fingerprint}): cannot {action}",
                self.sealer.location,
            )

    def check_key(self, conn: Any, action: str = "read templates") -> None:
        """`StoreKeyError` when the store's data keys need a key not given (none, or another):
        one query, for a readiness check."""
        if not self._has_table():
            return
        row = self._q(conn, "SELECT master FROM data_keys LIMIT 1").fetchone()
        if row is None:
            return
        master = self.sealer.require(action)
        if row[0] != master.fingerprint:
            raise StoreKeyError(
                f"{{db}} was encrypted with another key (fingerprint {row[0]}; the key given has "
                f"{master.fingerprint}): cannot {action}",
                self.sealer.location,
            )

    def write_key(self, conn: Any, user_id: int, action: str) -> bytes | None:
        """The user's data key for a write, made (and stored wrapped) when they have none; None
        when encryption is off."""
        self.check_writable(conn, action)
        if not self.enabled:
            return None
        key = self.read_key(conn, user_id)
        if key is None:
            key = new_key()
            self._q(
                conn,
                "INSERT INTO data_keys (user_id, wrapped, master, created) VALUES (?, ?, ?, ?)",
                (user_id, self.sealer.wrap(key), self.sealer.fingerprint, now()),
            )
            self.sealer._keys[user_id] = key
        self.ensure_sidecar_key(conn)
        return key

    def delete_key(self, conn: Any, user_id: int) -> None:
        """With the user: their wrapped key goes, so no copy of their sealed rows opens again."""
        if self._has_table():
            self._q(conn, "DELETE FROM data_keys WHERE user_id = ?", (user_id,))
        self.sealer.forget(user_id)

    # -- the identify sidecar's key (one per store) ------------------------------------
    def sidecar_key(self, conn: Any) -> SidecarKey | None:
        """The key the store's identify sidecars are sealed with, unwrapped; None when there is
        none to use (no master key, no table, no key yet, or one wrapped by another master key, or
        damaged): the index is then kept in memory, never written in the clear."""
        master = self.sealer.master
        if master is None or not self._has_sidecar_table():
            return None
        row = self._q(conn, "SELECT wrapped, master FROM sidecar_keys WHERE id = 1").fetchone()
        if row is None or str(row[1]) != master.fingerprint:
            return None
        try:
            return SidecarKey(self.sealer.unwrap_key(bytes(row[0]), str(row[1]), "the sidecar key", "identify"))
        except StoreKeyError:
            return None

    def ensure_sidecar_key(self, conn: Any) -> None:
        """With a master key, before a sealed write (`check_writable` has passed: the store's data
        keys, if any, are this master key's): the store has a sidecar key wrapped by it — a new one
        made when it has none, or one wrapped by another master key."""
        master = self.sealer.master
        if self._sidecar_key_seen or master is None or not self._has_sidecar_table():
            return
        row = self._q(conn, "SELECT master FROM sidecar_keys WHERE id = 1").fetchone()
        if row is not None and str(row[0]) == master.fingerprint:
            self._sidecar_key_seen = True
            return
        if row is not None:
            self._q(conn, "DELETE FROM sidecar_keys")
        self._new_sidecar_key(conn)

    def _new_sidecar_key(self, conn: Any) -> None:
        self._q(
            conn,
            "INSERT INTO sidecar_keys (id, wrapped, master, created) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (self.sealer.wrap(new_key()), self.sealer.fingerprint, now()),
        )

    def rotate_sidecar_key(self, conn: Any) -> None:
        """With a removal, in its transaction: the sidecar key is deleted and (with a master key) a
        new one made, so no sidecar written before the removal opens again; the next index writes
        its sidecar under the new key. Without a master key it is only deleted (the next sealed
        write makes one)."""
        if not self._has_sidecar_table():
            return
        self._sidecar_key_seen = False
        master = self.sealer.master
        # Only under the master key of the store's data keys (a removal needs no key: one given
        # that is not the store's wraps nothing).
        other = (
            self._q(conn, "SELECT master FROM data_keys LIMIT 1").fetchone()
            if master is not None and self._has_table()
            else None
        )
        if master is None or (other is not None and str(other[0]) != master.fingerprint):
            self._q(conn, "DELETE FROM sidecar_keys")
            return
        # Replaced in one statement, not deleted then made: where another removal committed its new
        # key meanwhile (PostgreSQL, read committed), this one's replaces that too, so the key in
        # place after this removal is made by it.
        self._q(
            conn,
            "INSERT INTO sidecar_keys (id, wrapped, master, created) VALUES (1, ?, ?, ?) ON CONFLICT (id)"
            " DO UPDATE SET wrapped = excluded.wrapped, master = excluded.master, created = excluded.created",
            (self.sealer.wrap(new_key()), self.sealer.fingerprint, now()),
        )

    def drop_sidecar_key(self, conn: Any) -> None:
        """`facer store decrypt`: no sidecar key (the sidecar is written in the clear again)."""
        if self._has_sidecar_table():
            self._q(conn, "DELETE FROM sidecar_keys")
        self._sidecar_key_seen = False

    # -- values --------------------------------------------------------------------
    def seal_template(self, key: bytes | None, user_id: int, template_id: int, model: str, plain: bytes) -> bytes:
        if key is None:
            return plain
        return Sealer.seal(key, plain, template_aad(user_id, template_id, model, len(plain) // 4))

    def seal_samples(
        self, key: bytes | None, user_id: int, template_id: int, model: str, dimension: int, samples: list[dict]
    ) -> list[dict]:
        if key is None:
            return samples
        sealed = []
        for sample in samples:
            embedding = sample.get("embedding")
            if embedding is not None:
                aad = sample_aad(user_id, template_id, int(sample["position"]), model, dimension)
                sample = {**sample, "embedding": Sealer.seal(key, bytes(embedding), aad)}
            sealed.append(sample)
        return sealed

    def open_template(
        self, conn: Any, user_id: int, template_id: int, model: str, dimension: int, blob: bytes | memoryview
    ) -> bytes:
        if not is_sealed(blob):
            return bytes(blob)
        key = self.read_key(conn, user_id)
        return self.sealer.open_value(
            key, bytes(blob), template_aad(user_id, template_id, model, dimension), f"template {template_id}"
        )

    def open_sample(
        self,
        conn: Any,
        user_id: int,
        template_id: int,
        position: int,
        model: str,
        dimension: int,
        blob: bytes | memoryview | None,
    ) -> bytes | None:
        if blob is None or not is_sealed(blob):
            return None if blob is None else bytes(blob)
        key = self.read_key(conn, user_id)
        aad = sample_aad(user_id, template_id, position, model, dimension)
        return self.sealer.open_value(key, bytes(blob), aad, f"a sample of template {template_id}")

    def open_rows(self, conn: Any, rows: Sequence[Sequence[Any]], model: str) -> list[tuple[int, int, int, bytes]]:
        """Gallery rows (id, user id, dimension, stored bytes) with the float32 bytes opened: the
        users' wrapped keys read in a few queries, each unwrapped once (an index's cold start)."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        keys = self.sealer._keys
        missing = sorted({int(r[1]) for r in rows if is_sealed(r[3]) and int(r[1]) not in keys})
        if missing and self._has_table():
            for start in range(0, len(missing), 500):
                part = missing[start : start + 500]
                found = self._q(
                    conn,
                    f"SELECT user_id, wrapped, master FROM data_keys WHERE user_id IN ({', '.join('?' * len(part))})",
                    part,
                ).fetchall()
                for user_id, wrapped, master_fp in found:
                    self.sealer.unwrap(bytes(wrapped), str(master_fp), int(user_id))
        opened: list[tuple[int, int, int, bytes]] = []
        head, body = len(MAGIC), len(MAGIC) + NONCE_BYTES
        for template_id, user_id, dimension, blob in rows:
            blob = bytes(blob)
            if blob[:head] != MAGIC or len(blob) < OVERHEAD:
                opened.append((template_id, user_id, dimension, blob))
                continue
            key = keys.get(user_id)
            if key is None:  # no data key: the one clear error
                self.sealer.open_value(None, blob, b"", f"template {template_id}")
                raise AssertionError("unreachable")
            try:
                plain = AESGCM(key).decrypt(
                    blob[head:body], blob[body:], template_aad(user_id, template_id, model, dimension)
                )
            except InvalidTag:
                self.sealer.open_value(
                    key, blob, template_aad(user_id, template_id, model, dimension), f"template {template_id}"
                )
                raise AssertionError("unreachable") from None
            opened.append((template_id, user_id, dimension, plain))
        return opened

    # -- the passes of `facer store encrypt | decrypt | rekey` ---------------------------
    def status(self, conn: Any) -> dict[str, int]:
        """Counts of sealed and plain templates and embeddings, and users with a data key."""
        counts = {"templates_encrypted": 0, "templates_plain": 0, "samples_encrypted": 0, "samples_plain": 0}
        for (blob,) in self._q(conn, "SELECT substr(vector, 1, 4) FROM templates").fetchall():
            counts["templates_encrypted" if bytes(blob) == b"FCE\x01" else "templates_plain"] += 1
        for (blob,) in self._q(conn, "SELECT substr(embedding, 1, 4) FROM samples WHERE embedding IS NOT NULL"):
            counts["samples_encrypted" if bytes(blob) == b"FCE\x01" else "samples_plain"] += 1
        keys = self._q(conn, "SELECT count(*) FROM data_keys").fetchone()[0] if self._has_table() else 0
        counts["users_with_keys"] = int(keys)
        return counts

    def store_keys(self, conn: Any) -> list[str]:
        """The fingerprints of the master keys the store's data keys are wrapped with."""
        if not self._has_table():
            return []
        return sorted(str(r[0]) for r in self._q(conn, "SELECT DISTINCT master FROM data_keys").fetchall())

    def users_to_encrypt(self, conn: Any, sealed: bool) -> list[tuple[int, str]]:
        """(id, name) of users with a template or embedding still plain (`sealed`=False: still sealed)."""
        test = "substr({col}, 1, 4) {op} ?".format
        op = "<>" if not sealed else "="
        rows = self._q(
            conn,
            "SELECT id, name FROM users u WHERE EXISTS (SELECT 1 FROM templates t WHERE t.user_id = u.id AND "
            + test(col="t.vector", op=op)
            + ") OR EXISTS (SELECT 1 FROM samples s JOIN templates t ON t.id = s.template_id"
            " WHERE t.user_id = u.id AND s.embedding IS NOT NULL AND "
            + test(col="s.embedding", op=op)
            + ") ORDER BY id",
            (b"FCE\x01", b"FCE\x01"),
        ).fetchall()
        return [(int(r[0]), str(r[1])) for r in rows]

    def convert_user(self, conn: Any, user_id: int, encrypt: bool) -> int:
        """Seal (or open) every template and embedding of one user in the caller's transaction, then
        read each back and check it against the float32 bytes it had; the values rewritten. Decrypting
        deletes the user's data key once nothing of theirs is sealed."""
        key = self.write_key(conn, user_id, "encrypt templates") if encrypt else self.read_key(conn, user_id)
        done = 0
        templates = self._q(
            conn, "SELECT id, model, dimension, vector FROM templates WHERE user_id = ? ORDER BY id", (user_id,)
        ).fetchall()
        for template_id, model, dimension, blob in templates:
            plain = self.open_template(conn, user_id, template_id, model, dimension, blob)
            if len(plain) != 4 * dimension:
                raise StoreKeyError(f"{{db}}: template {template_id} is damaged: refused", self.sealer.location)
            if encrypt and not is_sealed(blob):
                value = self.seal_template(key, user_id, template_id, model, plain)
            elif not encrypt and is_sealed(blob):
                value = plain
            else:
                value = None
            if value is not None:
                self._q(conn, "UPDATE templates SET vector = ? WHERE id = ?", (value, template_id))
                back = self._q(conn, "SELECT vector FROM templates WHERE id = ?", (template_id,)).fetchone()[0]
                if self.open_template(conn, user_id, template_id, model, dimension, back) != plain:
                    raise StoreKeyError(
                        f"{{db}}: template {template_id} did not read back as written: nothing was changed",
                        self.sealer.location,
                    )
                done += 1
            samples = self._q(
                conn,
                "SELECT id, position, embedding FROM samples WHERE template_id = ? AND embedding IS NOT NULL",
                (template_id,),
            ).fetchall()
            for sample_id, position, embedding in samples:
                plain_e = self.open_sample(conn, user_id, template_id, position, model, dimension, embedding)
                assert plain_e is not None
                if encrypt == is_sealed(embedding):
                    continue
                if encrypt:
                    aad = sample_aad(user_id, template_id, position, model, dimension)
                    assert key is not None
                    new = Sealer.seal(key, plain_e, aad)
                else:
                    new = plain_e
                self._q(conn, "UPDATE samples SET embedding = ? WHERE id = ?", (new, sample_id))
                done += 1
        if not encrypt:
            self.delete_key(conn, user_id)
        return done

    def rekey(self, conn: Any, new: MasterKey) -> int:
        """Rewrap every data key with `new` (each unwrapped with the current key first)."""
        rows = self._q(conn, "SELECT user_id, wrapped, master FROM data_keys ORDER BY user_id").fetchall()
        for user_id, wrapped, master_fp in rows:
            key = self.sealer.unwrap(bytes(wrapped), str(master_fp), int(user_id), "rekey")
            rewrapped = self.sealer.wrap(key, new)
            self._q(
                conn,
                "UPDATE data_keys SET wrapped = ?, master = ? WHERE user_id = ?",
                (rewrapped, new.fingerprint, user_id),
            )
        if self._has_sidecar_table():  # the sidecar key too: the sidecars written stay valid
            row = self._q(conn, "SELECT wrapped, master FROM sidecar_keys WHERE id = 1").fetchone()
            sidecar_key = new_key()  # none yet, or not this master key's: a new one (sidecars rebuilt)
            if row is not None:
                try:
                    sidecar_key = self.sealer.unwrap_key(bytes(row[0]), str(row[1]), "the sidecar key", "rekey")
                except StoreKeyError:
                    pass
            self._q(conn, "DELETE FROM sidecar_keys")
            self._sidecar_key_seen = False
            self._q(
                conn,
                "INSERT INTO sidecar_keys (id, wrapped, master, created) VALUES (1, ?, ?, ?)",
                (self.sealer.wrap(sidecar_key, new), new.fingerprint, now()),
            )
        return len(rows)


def vector_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def open_bulk(vault: Vault, conn: Any, table: str, rows: list[dict]) -> list[dict]:
    """Rows of `templates` or `samples` in the bulk form with their vectors opened (a store copy
    carries float32 bytes: the destination seals them with its own keys)."""
    if table == "templates":
        for row in rows:
            if is_sealed(row["vector"]):
                row["vector"] = vault.open_template(
                    conn, row["user_id"], row["id"], row["model"], row["dimension"], row["vector"]
                )
    elif table == "samples":
        owners: dict[int, Any] = {}
        for row in rows:
            if row["embedding"] is None or not is_sealed(row["embedding"]):
                continue
            template_id = row["template_id"]
            if template_id not in owners:
                owners[template_id] = vault._q(
                    conn, "SELECT user_id, model, dimension FROM templates WHERE id = ?", (template_id,)
                ).fetchone()
            owner = owners[template_id]
            row["embedding"] = vault.open_sample(
                conn, owner[0], template_id, row["position"], owner[1], owner[2], row["embedding"]
            )
    return rows


def seal_bulk(vault: Vault, conn: Any, table: str, row: dict, new_id: int) -> dict:
    """One bulk row about to be inserted as `new_id`, sealed when this store encrypts (the rows'
    references are this store's ids, so a sample's template is already in it)."""
    if table == "templates":
        key = vault.write_key(conn, row["user_id"], "copy templates into it")
        return {**row, "vector": vault.seal_template(key, row["user_id"], new_id, row["model"], row["vector"])}
    if table == "samples" and row["embedding"] is not None:
        owner = vault._q(
            conn, "SELECT user_id, model, dimension FROM templates WHERE id = ?", (row["template_id"],)
        ).fetchone()
        key = vault.write_key(conn, owner[0], "copy templates into it")
        if key is None:
            return row
        aad = sample_aad(owner[0], row["template_id"], row["position"], owner[1], owner[2])
        return {**row, "embedding": Sealer.seal(key, row["embedding"], aad)}
    return row
