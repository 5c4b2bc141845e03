"""Readers: how one TOML value becomes a setting's value, with its type and range.

A setting names its reader beside its field (rbl.config.fields.setting), so the type,
the range and the error wording are stated once and every section reads the same way.
Each reader raises ConfigError naming the file, section and key (``where: key ...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rbl.config.values import (
    MAX_DURATION,
    check_template,
    parse_domain,
    parse_duration,
    parse_endpoint,
    parse_ip_endpoint,
    parse_networks,
)
from rbl.errors import ConfigError


class Reader:
    """Reads one TOML value; ``missing`` answers for a required setting left out."""

    def read(self, value: object, key: str, where: str) -> Any:
        raise NotImplementedError

    def missing(self, key: str, where: str) -> Any:
        raise ConfigError(f"{where}: {key} is required")


def _typed(value: object, kind: type | tuple[type, ...], key: str, where: str) -> Any:
    """``value`` if it is a ``kind`` (never a bool standing in for a number)."""
    if isinstance(value, bool) or not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else "number"
        raise ConfigError(f"{where}: {key} must be a {expected}, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Int(Reader):
    """A whole number within ``low..high``."""

    low: int
    high: int

    def read(self, value: object, key: str, where: str) -> int:
        number: int = _typed(value, int, key, where)
        if not self.low <= number <= self.high:
            raise ConfigError(f"{where}: {key} {number} is outside {self.low}..{self.high}")
        return number


@dataclass(frozen=True, slots=True)
class Number(Reader):
    """An int or float within ``low..high``, kept as a float.

    ``unit`` follows the range in the message (" seconds"); ``as_seconds`` shows the
    value as ``20s`` rather than as written.
    """

    low: float
    high: float
    unit: str = ""
    as_seconds: bool = False

    def read(self, value: object, key: str, where: str) -> float:
        number: int | float = _typed(value, (int, float), key, where)
        if not self.low <= number <= self.high:
            shown = f"{float(number):g}s" if self.as_seconds else f"{number}"
            raise ConfigError(
                f"{where}: {key} {shown} is outside {self.low}..{self.high}{self.unit}"
            )
        return float(number)


@dataclass(frozen=True, slots=True)
class Duration(Reader):
    """Seconds from a number or "90s", "30m", "12h", "7d", "2w", at most ``maximum``.

    ``within`` is a range the seconds must lie in (``unit`` follows it in the message);
    ``least`` a minimum with its own wording (``below``); ``zero_off``: a plain 0 turns
    the thing off and is kept as 0.
    """

    maximum: float = MAX_DURATION
    within: tuple[float, float] | None = None
    unit: str = ""
    least: float = 0.0
    below: str = ""
    zero_off: bool = False

    def read(self, value: object, key: str, where: str) -> float:
        if self.zero_off and value == 0 and not isinstance(value, bool):
            return 0.0
        seconds = parse_duration(value, f"{where} {key}", maximum=self.maximum)
        if self.within is not None and not self.within[0] <= seconds <= self.within[1]:
            low, high = self.within
            raise ConfigError(f"{where}: {key} {seconds:g}s is outside {low}..{high}{self.unit}")
        if seconds < self.least:
            raise ConfigError(f"{where}: {key} {seconds:g}s {self.below}")
        return seconds


@dataclass(frozen=True, slots=True)
class Text(Reader):
    """A string, as written."""

    def read(self, value: object, key: str, where: str) -> str:
        text: str = _typed(value, str, key, where)
        return text


@dataclass(frozen=True, slots=True)
class Flag(Reader):
    """true or false."""

    def read(self, value: object, key: str, where: str) -> bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be true or false, not {value!r}")
        return value


@dataclass(frozen=True, slots=True)
class Choice(Reader):
    """One of a few words, each standing for a value (``quoted``: "'a' or 'b'" wording)."""

    values: Mapping[str, Any]
    quoted: bool = False

    def read(self, value: object, key: str, where: str) -> Any:
        word: str = _typed(value, str, key, where)
        if word not in self.values:
            if self.quoted:
                expected = " or ".join(repr(name) for name in self.values)
            else:
                expected = "one of " + ", ".join(self.values)
            raise ConfigError(f"{where}: {key} {word!r} is not {expected}")
        return self.values[word]


@dataclass(frozen=True, slots=True)
class Networks(Reader):
    """A list of addresses or CIDR networks, each checked, kept as written."""

    def read(self, value: object, key: str, where: str) -> tuple[str, ...]:
        return parse_networks(value, key, where)


@dataclass(frozen=True, slots=True)
class Endpoint(Reader):
    """One "address:port" to listen on (port 53 when absent)."""

    def read(self, value: object, key: str, where: str) -> tuple[str, int]:
        return parse_endpoint(value, f"{where} {key}")


@dataclass(frozen=True, slots=True)
class Endpoints(Reader):
    """A list of "address:port"; ``non_empty``: at least one, and required; ``ip_only``:
    IP addresses, no host names (a secondary rbl sends datagrams to, as BIND's
    also-notify: a name would fail only when the first NOTIFY is sent)."""

    non_empty: bool = False
    ip_only: bool = False

    def read(self, value: object, key: str, where: str) -> tuple[tuple[str, int], ...]:
        if not isinstance(value, list) or (self.non_empty and not value):
            raise self._wrong(key, where)
        if self.ip_only:
            return tuple(parse_ip_endpoint(item, where, f"{key} entry") for item in value)
        return tuple(parse_endpoint(item, where) for item in value)

    def missing(self, key: str, where: str) -> Any:
        raise self._wrong(key, where)

    def _wrong(self, key: str, where: str) -> ConfigError:
        some = "non-empty list" if self.non_empty else "list"
        return ConfigError(f"{where}: {key} must be a {some} of 'address:port'")


@dataclass(frozen=True, slots=True)
class Template(Reader):
    """A str.format template that may use only the ``allowed`` fields, plainly."""

    allowed: frozenset[str]

    def read(self, value: object, key: str, where: str) -> str:
        return check_template(_typed(value, str, key, where), self.allowed, f"{where} {key}")


@dataclass(frozen=True, slots=True)
class Domain(Reader):
    """A domain name, in canonical form."""

    def read(self, value: object, key: str, where: str) -> str:
        return parse_domain(_typed(value, str, key, where), where, key)


@dataclass(frozen=True, slots=True)
class HostNames(Reader):
    """A non-empty list of host names, each in canonical form; required."""

    def read(self, value: object, key: str, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value or not all(isinstance(n, str) for n in value):
            raise self._wrong(key, where)
        return tuple(parse_domain(name, where, key) for name in value)

    def missing(self, key: str, where: str) -> Any:
        raise self._wrong(key, where)

    def _wrong(self, key: str, where: str) -> ConfigError:
        return ConfigError(f"{where}: {key} must be a non-empty list of host names")


@dataclass(frozen=True, slots=True)
class Given(Reader):
    """Read by the section's own code (it needs more than the value: other sections)."""

    what: str

    def read(self, value: object, key: str, where: str) -> Any:
        raise TypeError(f"{key} ({self.what}) is read by its section, not by a reader")
