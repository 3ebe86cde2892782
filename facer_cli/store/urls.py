"""Which backend a `db` setting names, and how a database is shown: never with its password.

A `postgresql://` or `postgres://` URL names a PostgreSQL database; anything else is the path of an
SQLite file. `redact_url` removes the password (from the user part and from a `password=` query
parameter) wherever the database is printed, logged or put in an error message. Standard library
only: the CLI's views import it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# Query parameters of a libpq URL that hold secrets.
SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


def is_postgres_url(db: object) -> bool:
    """Whether `db` (a setting's value) names a PostgreSQL database."""
    return isinstance(db, str) and db.strip().lower().startswith(POSTGRES_SCHEMES)


def redact_url(url: str) -> str:
    """`url` without its password: `postgresql://facer:secret@db/facer?password=x` →
    `postgresql://facer@db/facer`. Text that is not a PostgreSQL URL comes back as it is."""
    if not is_postgres_url(url):
        return url
    text = url.strip()
    scheme, rest = text.split("://", 1)
    # The user part ends at the last "@" before the path: a password may hold "@", "/" or "?".
    head, slash, tail = _split_netloc(rest)
    if "@" in head:
        userinfo, host = head.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        head = f"{user}@{host}" if user else host
    if "?" in tail:
        path, query = tail.split("?", 1)
        kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() not in SECRET_PARAMETERS]
        tail = path + (f"?{urlencode(kept)}" if kept else "")
    return f"{scheme}://{head}{slash}{tail}"


def _split_netloc(rest: str) -> tuple[str, str, str]:
    """(user@host:port, "/" or "", the rest): the netloc runs to the first "/" or "?" after the last "@"."""
    at = rest.rfind("@")
    start = at + 1 if at >= 0 else 0
    for index in range(start, len(rest)):
        if rest[index] == "/":
            return rest[:index], "/", rest[index + 1 :]
        if rest[index] == "?":
            return rest[:index], "", rest[index:]
    return rest, "", ""


def url_password(url: str) -> str | None:
    """The password written in `url`, if any (to scrub it from a driver's message)."""
    if not is_postgres_url(url):
        return None
    head = _split_netloc(url.strip().split("://", 1)[1])[0]
    if "@" in head and ":" in head.rsplit("@", 1)[0]:
        return head.rsplit("@", 1)[0].split(":", 1)[1] or None
    query = urlsplit(url.strip()).query
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key.lower() == "password":
            return value or None
    return None


def describe_db(db: str | None, path: object) -> str:
    """The database as shown to people: the `db` setting's URL without its password, or else the
    SQLite file's `path` (`Settings.db_path`)."""
    return redact_url(db) if db is not None and is_postgres_url(db) else str(path)


__all__ = ["POSTGRES_SCHEMES", "describe_db", "is_postgres_url", "redact_url", "url_password"]
