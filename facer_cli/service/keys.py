"""API keys of `facer serve`: named, scoped, stored hashed, added and revoked while it runs.

A key is a name (a kiosk's, say "door-1"), a scope and a token made once, at creation, and shown
then only: `facer_<name>_<43 base64url characters>` (32 random bytes). The store keeps the salted
SHA-256 of the token (`sha256$<salt>$<digest>`, hex), never the token; a token is checked by
recomputing it and comparing in constant time. Two scopes:

- `kiosk`: verify and identify, and answer the liveness challenges for them;
- `admin`: everything a kiosk key may do, and enroll, replace, remove, list and show users,
  export templates and compare them (the route → scope table: `facer_cli.server.scopes`).

The `api_key` setting, when set, is one more admin key, named "api_key" in the logs (a stored key
may not take that name). `ApiKeys` adds, lists and revokes keys (`facer keys`); `KeyRing` is what the
server asks per request: who a token is, with each answer kept `CACHE_S` seconds, so a key added
or revoked by another process (or another replica of one PostgreSQL store) counts within seconds,
without a restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from facer_cli.errors import ApiKeyError, StoreError
from facer_cli.store.records import ApiKey

if TYPE_CHECKING:
    from facer_cli.settings import Settings
    from facer_cli.store.connection import Access
    from facer_cli.store.contract import StoreContract

KIOSK = "kiosk"
ADMIN = "admin"
# Each scope, with the scopes it includes: an admin key may do whatever a kiosk key may.
SCOPES: dict[str, frozenset[str]] = {KIOSK: frozenset({KIOSK}), ADMIN: frozenset({KIOSK, ADMIN})}
# The name the `api_key` setting's key goes by (an admin key), in the logs and in errors.
SETTINGS_KEY = "api_key"
TOKEN_PREFIX = "facer_"
SECRET_BYTES = 32
SECRET_CHARS = 43  # 32 bytes in base64url, unpadded
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# How long the server keeps what it learnt of a token (and whether any key is needed at all).
CACHE_S = 5.0
CACHE_ENTRIES = 4096


def allows(scope: str, needed: str) -> bool:
    """Whether a key of `scope` may make a request that needs `needed`."""
    return needed in SCOPES.get(scope, frozenset())


def validate_key_name(name: str) -> str:
    """A key's name: 1-64 letters, digits, dots, dashes and underscores, starting with a letter or
    digit; not "api_key" (the `api_key` setting's key)."""
    name = name.strip()
    if not NAME_RE.fullmatch(name):
        raise ApiKeyError(
            f"{name!r} is not a key name: 1 to 64 letters, digits, '.', '-' or '_', starting with a letter or digit"
        )
    if name == SETTINGS_KEY:
        raise ApiKeyError(f"{SETTINGS_KEY!r} is the api_key setting's key; choose another name")
    return name


def validate_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ApiKeyError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    return scope


def new_token(name: str) -> str:
    secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=").decode("ascii")
    return f"{TOKEN_PREFIX}{name}_{secret}"


def name_in(token: str) -> str | None:
    """The key name a token claims (`facer_<name>_<secret>`), or None when it is not such a token."""
    if not token.startswith(TOKEN_PREFIX) or len(token) < len(TOKEN_PREFIX) + SECRET_CHARS + 2:
        return None
    if token[-SECRET_CHARS - 1] != "_":
        return None
    name = token[len(TOKEN_PREFIX) : -SECRET_CHARS - 1]
    return name if NAME_RE.fullmatch(name) else None


def hash_token(token: str, salt: bytes | None = None) -> str:
    """`sha256$<salt>$<digest>` (hex) of a token: what the store keeps. A random 32-byte token needs
    no slow hash; the salt makes equal tokens hash apart."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.sha256(salt + token.encode("utf-8", "surrogateescape")).hexdigest()
    return f"sha256${salt.hex()}${digest}"


def token_matches(token: str, key_hash: str) -> bool:
    """Whether `token` is the one `key_hash` was made from (compared in constant time)."""
    try:
        method, salt, _ = key_hash.split("$")
        if method != "sha256":
            return False
        expected = hash_token(token, bytes.fromhex(salt))
    except ValueError:
        return False
    return hmac.compare_digest(expected.encode("ascii"), key_hash.encode("ascii", "replace"))


@dataclass
class NewKey:
    """A key just added: its record and its token, shown this once."""

    key: ApiKey
    token: str

    def to_dict(self) -> dict:
        return {**self.key.to_dict(), "key": self.token}


@dataclass
class KeyList:
    """Every stored key, active and revoked (never a token or a hash); `settings_key`: whether the
    `api_key` setting adds an admin key (named "api_key")."""

    keys: list[ApiKey]
    settings_key: bool = False

    def to_dict(self) -> dict:
        return {"keys": [key.to_dict() for key in self.keys], "settings_key": self.settings_key}


class ApiKeys:
    """`facer keys add|list|revoke` in Python: `ApiKeys(settings).add("door-1", "kiosk").token`."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def _open(self, access: Access) -> StoreContract:
        from facer_cli.store.contract import open_store

        return open_store(self.settings, access)

    def add(self, name: str, scope: str, *, store: StoreContract | None = None) -> NewKey:
        """A new key of `scope` named `name`: the token is in the result, and nowhere else."""
        name, scope = validate_key_name(name), validate_scope(scope)
        token = new_token(name)
        if store is not None:
            return NewKey(store.add_api_key(name, scope, hash_token(token)), token)
        with self._open("create") as opened:
            return NewKey(opened.add_api_key(name, scope, hash_token(token)), token)

    def list(self, *, store: StoreContract | None = None) -> KeyList:
        if store is not None:
            keys = store.api_keys()
        else:
            with self._open("read") as opened:
                keys = opened.api_keys()
        return KeyList(keys, settings_key=self.settings.api_key is not None)

    def revoke(self, name: str, *, store: StoreContract | None = None) -> ApiKey:
        """Revoke the active key of this name: refused from then on (by a running server, within
        `CACHE_S` seconds)."""
        name = name.strip()
        if name == SETTINGS_KEY:
            raise ApiKeyError(f"{SETTINGS_KEY!r} is the api_key setting's key: unset the setting to retire it")
        if store is not None:
            return store.revoke_api_key(name)
        with self._open("write") as opened:
            return opened.revoke_api_key(name)


def stored_keys_active(settings: Settings) -> bool:
    """Whether the store of `settings` holds an active API key (False while no SQLite store exists)."""
    from facer_cli.store.urls import is_postgres_url

    if not is_postgres_url(settings.db) and not settings.db_path.exists():
        return False
    return any(key.active for key in ApiKeys(settings).list().keys)


class KeyRing:
    """Who a request's token is, for the server: the `api_key` setting's key ("api_key", admin), an
    active stored key, or nobody (None). Each answer, and whether any key is needed at all (the
    setting is set, or the store holds an active key), is kept `cache_s` seconds; `forget` drops
    them (after this process adds or revokes a key). While the store cannot be read, the last
    answer read from it stands (a key it knew, that keys are needed); with none, the `StoreError`
    is raised (503). `open_store` opens the store for reading."""

    def __init__(
        self,
        settings: Settings,
        open_store: Callable[[], StoreContract],
        *,
        cache_s: float = CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self.open_store = open_store
        self.cache_s = cache_s
        self.clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[bytes, tuple[float, ApiKey | None]] = {}
        self._required: tuple[float, bool] | None = None

    def forget(self) -> None:
        with self._lock:
            self._tokens.clear()
            self._required = None

    def required(self) -> bool:
        """Whether a request needs a key: the `api_key` setting is set, or the store holds an active key."""
        if self.settings.api_key is not None:
            return True
        now = self.clock()
        with self._lock:
            known = self._required
        if known is not None and known[0] > now:
            return known[1]
        try:
            with self.open_store() as store:
                needed = any(key.active for key in store.api_keys())
        except StoreError:
            if known is None:
                raise
            return known[1]  # the last answer the store gave
        with self._lock:
            self._required = (now + self.cache_s, needed)
        return needed

    def identify(self, token: str) -> ApiKey | None:
        """The key `token` is, or None (unknown, wrong, or revoked)."""
        expected = self.settings.api_key
        if expected is not None and hmac.compare_digest(
            token.encode("utf-8", "surrogateescape"), expected.encode("utf-8")
        ):
            return ApiKey(SETTINGS_KEY, ADMIN, "")
        name = name_in(token)
        if name is None:
            return None
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        now = self.clock()
        with self._lock:
            cached = self._tokens.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            with self.open_store() as store:
                stored = store.active_api_key(name)
        except StoreError:
            if cached is None:
                raise
            return cached[1]  # the last answer the store gave
        found = stored if stored is not None and token_matches(token, stored.key_hash) else None
        with self._lock:
            if len(self._tokens) >= CACHE_ENTRIES:
                self._tokens.clear()
            self._tokens[digest] = (now + self.cache_s, found)
        return found


__all__ = [
    "ADMIN",
    "KIOSK",
    "SCOPES",
    "SETTINGS_KEY",
    "ApiKeys",
    "KeyList",
    "KeyRing",
    "NewKey",
    "allows",
    "hash_token",
    "token_matches",
]
