"""Templates encrypted at rest: the master key, per-user data keys, and sealing one vector.

With a master key configured (`FACER_KEY`, base64 of 32 bytes; else the `key_file` setting or
`FACER_KEY_FILE`, a file of 32 raw bytes or their base64, mode 0600 or stricter and owned by the
user running facer), every template vector and per-frame embedding the store writes is sealed
with AES-256-GCM under a data key of its user. The data keys are random, one per user, kept in
the store's `data_keys` table wrapped by the master key (AES key wrap, RFC 3394) beside the
master key's fingerprint. Removing a user deletes their wrapped key: every copy of their sealed
rows — the WAL, dead row versions, dumps and backups — is then unreadable (crypto-shredding).

A sealed value is `MAGIC` + a 12-byte nonce + the ciphertext and its 16-byte tag: 32 bytes more
than the float32 bytes it seals, so a reader tells a sealed value from a plain one by its length
and magic (a store half-way through `facer store encrypt` holds both, and reads both). The
associated data binds each value to where it belongs — the user's id, the template's id (and a
sample's position), the model and the dimension — so a value swapped with another row's, or
moved to another user, fails to open with one clear error, never a wrong vector.

The identify sidecar (`facer_cli.gallery.sidecar`) is sealed under one more random key, the
store's `SidecarKey`, kept in its `sidecar_keys` table wrapped by the master key as the data keys
are. A removal deletes it and puts a new one in its place in the same transaction, so a sidecar
written before the removal, wherever a copy of it is kept, no longer opens against the store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facer_cli.errors import StoreKeyError

if TYPE_CHECKING:
    from facer_cli.settings import Settings

MAGIC = b"FCE\x01"
NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = len(MAGIC) + NONCE_BYTES + TAG_BYTES  # 32 bytes beside the float32 bytes
KEY_BYTES = 32
KEY_ENV = "FACER_KEY"
# A bytes-like object (bytes, bytearray, memoryview, mmap): what the cipher reads and writes.
Buffer = Any


@dataclass(frozen=True)
class MasterKey:
    """The master key and where it came from (`FACER_KEY`, or the key file's path). Never shown:
    `fingerprint` (the first 16 hex digits of its sha256) names it."""

    key: bytes
    source: str

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def __repr__(self) -> str:
        return f"MasterKey(fingerprint={self.fingerprint!r}, source={self.source!r})"


def fingerprint(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


class SidecarKey:
    """The key the identify sidecar is sealed with (AES-256-GCM), unwrapped. Never shown:
    `fingerprint` names it (the sidecar's header carries it, so a sidecar sealed under another key
    is told before anything is decrypted)."""

    def __init__(self, key: bytes):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._cipher = AESGCM(key)
        self.fingerprint = fingerprint(key)

    def __repr__(self) -> str:
        return f"SidecarKey(fingerprint={self.fingerprint!r})"

    def seal_into(self, nonce: bytes, plain: Buffer, aad: bytes, out: Buffer) -> None:
        """`plain` encrypted into `out` (its length and `TAG_BYTES` more)."""
        self._cipher.encrypt_into(nonce, plain, aad, out)

    def open_into(self, nonce: bytes, sealed: Buffer, aad: bytes, out: Buffer) -> bool:
        """`sealed` (ciphertext and tag) decrypted into `out`; False when it does not open (another
        key, other associated data, or damaged): `out` then holds nothing to use."""
        from cryptography.exceptions import InvalidTag

        try:
            self._cipher.decrypt_into(nonce, sealed, aad, out)
        except InvalidTag:
            return False
        return True


def _decode(raw: bytes, where: str) -> bytes:
    """32 raw bytes, or their base64 (whitespace around it ignored)."""
    if len(raw) == KEY_BYTES:
        return raw
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise StoreKeyError(f"{where} is not a key: give 32 bytes, or their base64 (openssl rand -base64 32)")
    return key


def read_key_file(path: Path | str) -> MasterKey:
    """A master key from a file: refused unless owned by the user running facer and mode 0600 or
    stricter (no group or other permission)."""
    path = Path(path).expanduser()
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise StoreKeyError(f"the key file {path} is not a file")
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise StoreKeyError(f"the key file {path} is not owned by the user running facer: refused")
        if info.st_mode & 0o077:
            raise StoreKeyError(
                f"the key file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o}): "
                "refused; chmod 600 it"
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StoreKeyError(f"the key file {path} does not exist") from None
    except PermissionError:
        raise StoreKeyError(f"the key file {path} cannot be read (permission denied)") from None
    except OSError as exc:
        raise StoreKeyError(f"the key file {path} cannot be read ({exc.strerror or exc})") from None
    return MasterKey(_decode(raw, f"the key file {path}"), str(path))


def master_key(settings: Settings | None, environ: dict[str, str] | None = None) -> MasterKey | None:
    """The master key: `FACER_KEY` (base64 of 32 bytes), else the `key_file` setting (which
    `FACER_KEY_FILE` sets); None when neither is given (the store is then written in the clear)."""
    env = os.environ if environ is None else environ
    value = env.get(KEY_ENV)
    if value:
        return MasterKey(_decode(value.encode(), KEY_ENV), KEY_ENV)
    key_file = getattr(settings, "key_file", None) if settings is not None else None
    if key_file:
        return read_key_file(key_file)
    return None


def encryption_info(settings: Settings | None) -> dict[str, object]:
    """Whether templates are encrypted at rest, and the master key's fingerprint (never the key),
    for `config show`, `doctor` and `GET /ready`."""
    try:
        master = master_key(settings)
    except StoreKeyError as exc:
        return {"enabled": False, "key_fingerprint": None, "error": exc.public_message}
    if master is None:
        return {"enabled": False, "key_fingerprint": None}
    return {"enabled": True, "key_fingerprint": master.fingerprint}


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def write_key_file(path: Path | str, key: bytes | None = None) -> MasterKey:
    """A new key file (mode 0600, never over an existing file) holding the base64 of `key`."""
    path = Path(path).expanduser()
    key = new_key() if key is None else key
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64encode(key) + b"\n")
    return MasterKey(key, str(path))


# -- values ------------------------------------------------------------------------
def template_aad(user_id: int, template_id: int, model: str, dimension: int) -> bytes:
    return f"facer/template/{user_id}/{template_id}/{dimension}/{model}".encode()


def sample_aad(user_id: int, template_id: int, position: int, model: str, dimension: int) -> bytes:
    return f"facer/sample/{user_id}/{template_id}/{position}/{dimension}/{model}".encode()


def is_sealed(blob: bytes | memoryview | None) -> bool:
    """Whether a stored value is sealed (plain float32 bytes are never `MAGIC`-prefixed and 32
    bytes longer than a multiple of four... the magic is checked, the length by `open_value`)."""
    return blob is not None and len(blob) >= OVERHEAD and bytes(blob[: len(MAGIC)]) == MAGIC


class Sealer:
    """Seals and opens a store's values with its master key (None: a store written in the clear,
    which still reads sealed values as a clear error). `load_wrapped(user_id)` gives the user's
    (wrapped key, master fingerprint) row or None; data keys are unwrapped once and kept."""

    def __init__(self, master: MasterKey | None, location: str):
        self.master = master
        self.location = location
        self._keys: dict[int, bytes] = {}

    @property
    def enabled(self) -> bool:
        return self.master is not None

    @property
    def fingerprint(self) -> str | None:
        return None if self.master is None else self.master.fingerprint

    def forget(self, user_id: int | None = None) -> None:
        if user_id is None:
            self._keys.clear()
        else:
            self._keys.pop(user_id, None)

    def require(self, action: str) -> MasterKey:
        if self.master is None:
            raise StoreKeyError(
                f"{{db}} holds encrypted templates and no key is given: cannot {action}; "
                "set FACER_KEY or the key_file setting",
                self.location,
            )
        return self.master

    # data keys ---------------------------------------------------------------
    def wrap(self, data_key: bytes, master: MasterKey | None = None) -> bytes:
        from cryptography.hazmat.primitives.keywrap import aes_key_wrap

        return aes_key_wrap((master or self.require("encrypt")).key, data_key)

    def unwrap(self, wrapped: bytes, master_fp: str, user_id: int, action: str = "read templates") -> bytes:
        key = self.unwrap_key(wrapped, master_fp, f"the data key of user {user_id}", action)
        self._keys[user_id] = key
        return key

    def unwrap_key(self, wrapped: bytes, master_fp: str, what: str, action: str) -> bytes:
        """A key wrapped by the master key (`what` names it in the error), not kept."""
        from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

        master = self.master if self.master is not None else self.require(action)
        if master_fp != master.fingerprint:
            raise StoreKeyError(
                f"{{db}} was encrypted with another key (fingerprint {master_fp}; the key given has "
                f"{master.fingerprint}): cannot {action}",
                self.location,
            )
        try:
            return aes_key_unwrap(master.key, bytes(wrapped))
        except (InvalidUnwrap, ValueError):
            raise StoreKeyError(
                f"{{db}}: {what} does not open with the key given "
                f"(fingerprint {master.fingerprint}): damaged, or another key; cannot {action}",
                self.location,
            ) from None

    def data_key(
        self, user_id: int, load_wrapped: Callable[[int], tuple[bytes, str] | None], action: str = "read templates"
    ) -> bytes | None:
        """The user's data key, or None when they have none (their values are plain)."""
        key = self._keys.get(user_id)
        if key is not None:
            return key
        row = load_wrapped(user_id)
        if row is None:
            return None
        return self.unwrap(row[0], row[1], user_id, action)

    # values ------------------------------------------------------------------
    @staticmethod
    def seal(data_key: bytes, plain: bytes, aad: bytes) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(NONCE_BYTES)
        return MAGIC + nonce + AESGCM(data_key).encrypt(nonce, plain, aad)

    def open_value(self, data_key: bytes | None, blob: bytes, aad: bytes, what: str) -> bytes:
        """The float32 bytes of a stored value (as stored when plain). `StoreKeyError` when it is
        sealed and there is no key, or it does not open: swapped, moved or damaged."""
        blob = bytes(blob)
        if not is_sealed(blob):
            return blob
        if data_key is None:
            self.require("read templates")
            raise StoreKeyError(
                f"{{db}}: {what} is encrypted but its user has no data key (a row moved from another user, "
                "or the user's key removed): refused",
                self.location,
            )
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = blob[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
        try:
            return AESGCM(data_key).decrypt(nonce, blob[len(MAGIC) + NONCE_BYTES :], aad)
        except InvalidTag:
            raise StoreKeyError(
                f"{{db}}: {what} does not decrypt where it is (swapped with another row, moved from "
                "another user, or damaged): refused",
                self.location,
            ) from None


def plain_sealer(location: str) -> Sealer:
    return Sealer(None, location)


__all__ = [
    "KEY_ENV",
    "MAGIC",
    "OVERHEAD",
    "MasterKey",
    "Sealer",
    "SidecarKey",
    "encryption_info",
    "fingerprint",
    "is_sealed",
    "master_key",
    "new_key",
    "read_key_file",
    "sample_aad",
    "template_aad",
    "write_key_file",
]
