"""The value forms a setting is written in: durations, endpoints, templates, domains.

Pure functions from one TOML value to a checked Python value, raising ConfigError that
names where the value was (file, section, key). rbl.config.fields builds its readers
from these; the CLI uses parse_duration and parse_endpoint for its options too.
"""

from __future__ import annotations

import ipaddress
import math
import string
from collections.abc import Sequence

from rbl.errors import ConfigError, KeyFormatError
from rbl.model.keys import normalise_domain

DEFAULT_PORT = 53
DAY = 86400.0
MAX_DURATION = 3650 * DAY  # ten years: past it a listing or a window means "for ever"

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY, "w": 7 * DAY}


def parse_duration(value: object, where: str, *, maximum: float = MAX_DURATION) -> float:
    """Seconds from a number or a string such as "90s", "30m", "12h", "7d", "2w".

    Bounded (``maximum``, ten years unless the setting says less): a typo such as
    ``3000000d`` would otherwise pass here and overflow the first date computed from it.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{where}: {value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip()[-1:].lower() in _UNITS:
        text = value.strip()
        try:
            seconds = float(text[:-1]) * _UNITS[text[-1].lower()]
        except (ValueError, OverflowError):
            raise ConfigError(f"{where}: {value!r} is not a duration like 7d or 12h") from None
    else:
        raise ConfigError(f"{where}: {value!r} is not a duration like 7d, 12h, 30m or 90s")
    if not math.isfinite(seconds):
        raise ConfigError(f"{where}: {value!r} is not a finite duration")
    if seconds <= 0:
        raise ConfigError(f"{where}: duration {value!r} must be positive")
    if seconds > maximum:
        raise ConfigError(f"{where}: {value!r} is longer than the bound of {describe(maximum)}")
    return seconds


def describe(seconds: float) -> str:
    """A duration in the largest unit that divides it ("3650d (10 years)", "1d", "90s")."""
    if seconds == MAX_DURATION:
        return "3650d (10 years)"
    for unit in ("w", "d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{seconds / _UNITS[unit]:g}{unit}"
    return f"{seconds:g}s"


def parse_endpoint(item: object, where: str) -> tuple[str, int]:
    """Parse ``127.0.0.1:53``, ``[::1]:53``, ``::1`` or ``0.0.0.0`` (port 53 when absent)."""
    if not isinstance(item, str):
        raise ConfigError(f"{where}: listen entry {item!r} is not a string")
    if item.startswith("["):
        host, closed, rest = item[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ConfigError(f"{where}: listen entry {item!r} is not '[address]:port'")
        port_text = rest[1:] if rest else str(DEFAULT_PORT)
    elif item.count(":") > 1:  # a bare IPv6 address
        host, port_text = item, str(DEFAULT_PORT)
    else:
        host, sep, port_text = item.partition(":")
        if not sep:
            port_text = str(DEFAULT_PORT)
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{where}: listen entry {item!r} has no numeric port") from None
    if not host or not 0 <= port <= 65535:
        raise ConfigError(f"{where}: listen entry {item!r} is not 'address:port'")
    return host, port


def parse_ip_endpoint(item: object, where: str, what: str) -> tuple[str, int]:
    """``parse_endpoint`` for a peer rbl sends datagrams to (a secondary: NOTIFY, the
    doctor's SOA queries): an IP address, never a name, which would fail only at the
    first send. ``what`` names the entry in the error (``address``, ``notify entry``)."""
    try:
        host, port = parse_endpoint(item, where)
        ipaddress.ip_address(host)
    except (ConfigError, ValueError):
        raise ConfigError(
            f"{where}: {what} {item!r} is not an IP address (with an optional :port)"
        ) from None
    return host, port


def check_template(template: str, allowed: frozenset[str], where: str) -> str:
    """Reject templates that would fail or leak at answer time: unknown fields, format specs."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"{where}: template {template!r} is malformed: {exc}") from exc
    for _, field_name, spec, conversion in parts:
        if field_name is None:
            continue
        if field_name not in allowed or spec or conversion:
            names = ", ".join("{" + name + "}" for name in sorted(allowed))
            raise ConfigError(f"{where}: template {template!r} may only use {names}")
    return template


def parse_domain(text: str, where: str, item: str) -> str:
    """A domain in canonical form (lower case, no trailing dot); the error names ``item``."""
    try:
        return normalise_domain(text.rstrip("."))
    except KeyFormatError as exc:
        raise ConfigError(f"{where}: {item}: {exc}") from exc


def parse_networks(value: object, name: str, where: str) -> tuple[str, ...]:
    """A list of addresses or CIDR networks, each checked, kept as written."""
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise ConfigError(f"{where}: {name} must be a list of addresses or CIDR networks")
    networks: Sequence[str] = value
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise ConfigError(f"{where}: {name} entry {network!r}: {exc}") from exc
    return tuple(networks)
