"""Database URLs as the DNS processes read them: the SQLite file, PostgreSQL's libpq
keywords, and the URL as messages show it (never with its password).

Imports no SQLAlchemy: a DNS process reads the store with the drivers alone.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

from rbl.errors import ConfigError

SQLITE_SCHEMES = ("sqlite", "sqlite+pysqlite")
POSTGRESQL_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2")


def hide_password(url: str) -> str:
    """The URL for messages and logs: a password never reaches them."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return parts._replace(netloc=f"{user}:***@{netloc[2]}").geturl()


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///...`` URL."""
    parts = urlsplit(url)
    if parts.scheme not in SQLITE_SCHEMES:
        raise ConfigError(f"database {url!r}: not a SQLite URL (sqlite:///PATH)")
    path = unquote(parts.path)
    path = path[1:] if path.startswith("/") else path
    if not path or path == ":memory:":
        raise ConfigError(f"database {url!r}: a DNS process needs a database file")
    return path


def postgresql_conninfo(url: str) -> dict[str, str]:
    """libpq connection keywords for a SQLAlchemy ``postgresql+psycopg://`` URL.

    ``user:password@host:port/dbname``; query parameters (``sslmode``,
    ``host=/run/postgresql`` for a socket directory, ...) pass through as they are.
    """
    parts = urlsplit(url)
    if parts.scheme not in POSTGRESQL_SCHEMES:
        raise ConfigError(
            f"database {hide_password(url)!r}: DNS processes read SQLite (sqlite:///PATH) "
            "or PostgreSQL (postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB)"
        )
    keywords: dict[str, str] = {}
    if parts.hostname:
        keywords["host"] = unquote(parts.hostname)
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"database {hide_password(url)!r}: bad port") from exc
    if port is not None:
        keywords["port"] = str(port)
    if parts.username:
        keywords["user"] = unquote(parts.username)
    if parts.password:
        keywords["password"] = unquote(parts.password)
    dbname = unquote(parts.path.lstrip("/"))
    if dbname:
        keywords["dbname"] = dbname
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        keywords[name] = value
    return keywords
