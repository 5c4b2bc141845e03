"""The exceptions rbl raises on purpose, so callers can catch one root.

Each class's docstring is its default message::

    RblError
    ├── ConfigError          the TOML configuration is unusable
    ├── KeyFormatError       a listing key (IP, CIDR, domain) is malformed
    ├── CodeError            a return code is outside what a DNSBL may answer
    ├── ZoneError            a zone is unknown or the key does not fit it
    └── StoreError           the database refused or lacks what was asked
        └── NotListedError   the key has no active listing

Imports nothing from rbl.
"""

from __future__ import annotations


class RblError(Exception):
    """rbl failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(RblError):
    """The configuration is invalid."""


class KeyFormatError(RblError):
    """The listing key is malformed."""


class CodeError(RblError):
    """The return code is not a valid DNSBL listing code."""


class ZoneError(RblError):
    """The zone is unknown or does not take this kind of key."""


class StoreError(RblError):
    """The database could not do what was asked."""


class NotListedError(StoreError):
    """The key has no active listing."""
