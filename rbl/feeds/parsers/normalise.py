"""Canonical forms of the values parsers pull out of log lines.

Client IPs go through ``ipaddress`` (IPv4-mapped IPv6 becomes plain IPv4, the
``IPv6:`` prefix of address literals is dropped) and must be ASCII: Python's
``str.isdigit`` and ``int`` take ``²`` or Arabic-Indic digits, which would make
a second, shadow text for one address. Mail addresses lose their angle
brackets, get one canonical local part (``"trap"@x`` is ``trap@x``, see
addresses.canonical) and are lowercased, ``<>`` being the null sender ``""``;
HELO names are only stripped. Nothing else is rewritten: BATV, SRS or callback
probe senders stay as logged, their normalisation is the policy's job.
Imports only the standard library and rbl.model.traphit.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from rbl.feeds.parsers import addresses
from rbl.model.traphit import ParseError


@lru_cache(maxsize=1 << 14)
def client_ip(text: str) -> str:
    """The canonical text of a client address; raise ParseError naming it.

    Cached: bulk logs repeat the same few clients, and ``ipaddress`` is the
    most expensive step of a line.
    """
    if not text.isascii():
        raise ParseError(f"client address {text[:100]!r} has characters other than ASCII")
    raw = text[5:] if text[:5].lower() == "ipv6:" else text
    if _canonical_ipv4(raw):
        return raw
    if "%" in raw:
        raise ParseError(f"client address {text!r} has a scope (%zone)")
    try:
        address = ipaddress.ip_address(raw)
    except ValueError as exc:
        raise ParseError(f"client address {text[:100]!r} is not an IP address") from exc
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _canonical_ipv4(text: str) -> bool:
    """A dotted quad already in canonical form (most log lines): no parsing needed."""
    parts = text.split(".")
    return len(parts) == 4 and all(
        part.isascii()
        and part.isdigit()
        and len(part) <= 3
        and (part == "0" or part[0] != "0")
        and int(part) < 256
        for part in parts
    )


def mail_address(text: str) -> str:
    """``<Trap@Example.ORG>`` -> ``trap@example.org``; ``<>`` -> ``""``; ``"a"@b`` -> ``a@b``."""
    address = text.strip()
    if address[:1] == "<":
        address = address[1:]
    if address[-1:] == ">":
        address = address[:-1]
    scanned = addresses.exim(address, 0)
    if scanned is not None and scanned[0] == len(address):
        return scanned[1]
    return address.lower()


def helo_name(text: str | None) -> str | None:
    """The HELO argument as given, stripped; None when there was none."""
    if text is None:
        return None
    return text.strip() or None
