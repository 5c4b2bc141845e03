"""Which database errors are worth waiting out, and which are not.

A writer that meets a *transient* error (SQLite busy or locked, the
PostgreSQL server gone, restarting or out of connection slots, a
serialization failure or deadlock, a lock or statement timeout) rolls back
and tries the same transaction again later; anything else (a missing table,
a bad URL, a constraint violation, a wrong password) is *permanent* and is
reported at once, since waiting cannot fix it.

The decision is made from the driver's error codes: SQLite's primary result
code, PostgreSQL's SQLSTATE class. libpq gives no SQLSTATE for a failed
connection attempt, so there the server's words decide: no answer at all
(refused, reset, timed out) is transient, a ``FATAL`` answer is permanent
unless it says the server is starting, stopping, recovering or full.

A permanent error is either about the *data* written (``is_data_error``: a
value the column or a constraint refuses, text no encoding can carry, a
Python error raised on a value) or about the *store* (a missing table, a
permission, a bad password). Ingest sets aside the line whose data is to
blame and goes on; a store error stops it, since every line would fail.

Duck-typed, so it imports neither SQLAlchemy nor psycopg: it unwraps
SQLAlchemy's ``DBAPIError.orig`` and rbl's ``StoreError.__cause__`` by
attribute.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from rbl.errors import StoreError

SQLITE_BUSY: Final = 5
SQLITE_LOCKED: Final = 6
# Primary result codes that blame the values written: too big, a constraint, a type.
SQLITE_DATA_CODES: Final = frozenset({18, 19, 20})  # TOOBIG, CONSTRAINT, MISMATCH
# SQLSTATE classes that blame the values: data exception, integrity constraint violation.
DATA_CLASSES: Final = frozenset({"22", "23"})

# SQLSTATE classes and codes (PostgreSQL appendix A) that a later attempt can pass.
TRANSIENT_CLASSES: Final = frozenset(
    {
        "08",  # connection exception
        "40",  # transaction rollback: serialization failure, deadlock
        "53",  # insufficient resources: too many connections, disk full, out of memory
    }
)
TRANSIENT_STATES: Final = frozenset(
    {
        "55P03",  # lock_not_available (lock_timeout)
        "57014",  # query_canceled (statement_timeout, pg_cancel_backend)
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, in recovery)
        "57P05",  # idle_session_timeout
    }
)
# A FATAL answer to a connection attempt that a later attempt can pass (no SQLSTATE there).
_TRANSIENT_FATAL: Final = (
    "starting up",
    "shutting down",
    "recovery mode",
    "not yet accepting connections",
    "too many clients",
    "connection slots are reserved",
)


def is_transient(exc: BaseException) -> bool:
    """True when the same transaction may succeed if tried again later."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if getattr(error, "connection_invalidated", False):
            return True  # SQLAlchemy saw the connection drop
        if type(error).__name__ == "TimeoutError" and type(error).__module__ == "sqlalchemy.exc":
            return True  # every pooled connection busy
        if isinstance(error, sqlite3.Error):
            return _sqlite_transient(error)
        if _is_driver_error(error):
            return _postgresql_transient(error)
        orig = getattr(error, "orig", None)  # sqlalchemy.exc.DBAPIError
        error = orig if isinstance(orig, BaseException) else error.__cause__
    return False


def _sqlite_transient(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)  # extended codes keep the primary
    return False


def _is_driver_error(error: BaseException) -> bool:
    """A psycopg (3) or psycopg2 error: they carry ``sqlstate`` / ``pgcode``."""
    module = type(error).__module__
    return module.startswith(("psycopg", "psycopg2")) and (
        hasattr(error, "sqlstate") or hasattr(error, "pgcode")
    )


def _postgresql_transient(error: BaseException) -> bool:
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(state, str) and state:
        return state[:2] in TRANSIENT_CLASSES or state in TRANSIENT_STATES
    if type(error).__name__ != "OperationalError":
        return False  # no SQLSTATE and not about the connection: a driver misuse
    message = str(error)
    if "FATAL:" not in message:
        return True  # refused, reset, timed out, server closed the connection
    return any(phrase in message for phrase in _TRANSIENT_FATAL)


def is_data_error(exc: BaseException) -> bool:
    """True when the values written are to blame, not the store: another line may pass.

    A Python error raised on a value (OverflowError, UnicodeEncodeError,
    ValueError) is about the data; so are SQLite's too-big, constraint and
    type errors and PostgreSQL's SQLSTATE classes 22 and 23. Anything
    transient, any other driver error, and SQLAlchemy's own errors with no
    cause (a missing table, a bad statement) are about the store.
    """
    if is_transient(exc):
        return False
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, sqlite3.Error):
            code = getattr(error, "sqlite_errorcode", None)
            if isinstance(code, int):
                return code & 0xFF in SQLITE_DATA_CODES
            return isinstance(error, sqlite3.DataError | sqlite3.IntegrityError)
        if _is_driver_error(error):
            state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
            if isinstance(state, str) and state:
                return state[:2] in DATA_CLASSES
            return type(error).__name__ in ("DataError", "IntegrityError")
        orig = getattr(error, "orig", None)  # sqlalchemy.exc.DBAPIError, StatementError
        if isinstance(orig, BaseException):
            error = orig
        elif isinstance(error, StoreError) or type(error).__module__.startswith("sqlalchemy"):
            error = error.__cause__
        else:
            return True
    return False
