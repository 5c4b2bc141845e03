"""Listing keys: what a DNSBL entry is about, parsed and normalised.

An IP zone holds IPv4 and IPv6 networks (a single address is a /32 or /128);
a domain zone holds names, either exactly (``example.com``) or every strict
subdomain (``*.example.com``). Keys are parsed once, at the edge, so the store
and the index only ever see canonical values. Pure: imports nothing but the
standard library and rbl.errors.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Final

from rbl.errors import KeyFormatError


class ZoneKind(StrEnum):
    """What a zone lists: client IPs (DNSBL) or domain names (RHSBL)."""

    IP = "ip"
    DOMAIN = "domain"


# Networks wider than this would list a large part of the internet on a typo.
MIN_PREFIXLEN: Final = {4: 8, 6: 16}
MAX_PREFIXLEN: Final = {4: 32, 6: 128}

# RFC 5782 section 5: the test points every DNSBL answers the same way.
TEST_LISTED_V4: Final = int(ipaddress.IPv4Address("127.0.0.2"))
TEST_UNLISTED_V4: Final = int(ipaddress.IPv4Address("127.0.0.1"))
TEST_LISTED_V6: Final = int(ipaddress.IPv6Address("::ffff:7f00:2"))
TEST_UNLISTED_V6: Final = int(ipaddress.IPv6Address("::ffff:7f00:1"))
# Per family: the addresses that always answer the same (listed, not listed).
TEST_ADDRESSES: Final = {
    4: (TEST_LISTED_V4, TEST_UNLISTED_V4),
    6: (TEST_LISTED_V6, TEST_UNLISTED_V6),
}
TEST_LISTED_NAME: Final = "test"
TEST_UNLISTED_NAME: Final = "invalid"

_LDH: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class IpKey:
    """An IPv4 or IPv6 network; ``network`` is the integer of its first address."""

    family: int
    network: int
    prefixlen: int

    @property
    def text(self) -> str:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = (
            ipaddress.IPv4Address(self.network)
            if self.family == 4
            else ipaddress.IPv6Address(self.network)
        )
        if self.prefixlen == MAX_PREFIXLEN[self.family]:
            return str(address)
        return f"{address}/{self.prefixlen}"

    @property
    def last(self) -> int:
        """The integer of the last address inside the network."""
        return self.network | ((1 << (MAX_PREFIXLEN[self.family] - self.prefixlen)) - 1)

    def covers(self, family: int, address: int) -> bool:
        return family == self.family and self.network <= address <= self.last

    def widen(self, prefixlen: int) -> IpKey:
        """The network of ``prefixlen`` bits that holds this one (itself if not wider)."""
        if prefixlen >= self.prefixlen:
            return self
        bits = MAX_PREFIXLEN[self.family]
        mask = ((1 << prefixlen) - 1) << (bits - prefixlen)
        return IpKey(self.family, self.network & mask, prefixlen)

    def overlaps(self, other: IpKey) -> bool:
        """Do the two networks share an address? (One then holds the other.)"""
        return (
            self.family == other.family
            and self.network <= other.last
            and other.network <= self.last
        )

    @property
    def packed(self) -> bytes:
        """The first address as big-endian bytes (4 or 16), as the store's network columns."""
        return self.network.to_bytes(4 if self.family == 4 else 16, "big")


@dataclass(frozen=True, slots=True)
class DomainKey:
    """A domain name (lowercase A-labels, no trailing dot); ``subdomains`` means ``*.name``."""

    name: str
    subdomains: bool = False

    @property
    def text(self) -> str:
        return f"*.{self.name}" if self.subdomains else self.name


ListingKey = IpKey | DomainKey


def parse_ip_key(text: str) -> IpKey:
    """Parse ``192.0.2.1``, ``192.0.2.0/24``, ``2001:db8::/64``; host bits must be clear."""
    raw = text.strip()
    if not raw.isascii():  # ipaddress is ASCII-only today; say so rather than rely on it
        raise KeyFormatError(f"{text[:100]!r} is not an IP address or network: not ASCII")
    if "%" in raw:
        raise KeyFormatError(f"{text!r} has a scope (%zone); listings are global addresses")
    try:
        network = ipaddress.ip_network(raw, strict=True)
    except ValueError as exc:
        raise KeyFormatError(f"{text!r} is not an IP address or network: {exc}") from exc
    family = network.version
    if network.prefixlen < MIN_PREFIXLEN[family]:
        raise KeyFormatError(
            f"{text!r} is wider than /{MIN_PREFIXLEN[family]}; "
            "refusing to list that much address space in one entry"
        )
    return IpKey(family, int(network.network_address), network.prefixlen)


def canonical_ipv4(text: str) -> tuple[bytes, int] | None:
    """(network as 4 bytes, prefix length) when ``text`` is exactly the canonical text
    of an IPv4 key (``192.0.2.1``, ``192.0.2.0/24``: what ``IpKey.text`` gives, host
    bits clear, not wider than /8), else None: the caller parses it the slow way,
    which also says what is wrong. A million-line import asks this for every line."""
    address, slash, length = text.partition("/")
    try:
        packed = socket.inet_aton(address)
    except (OSError, ValueError):  # not an address, or an embedded NUL
        return None
    if socket.inet_ntoa(packed) != address:  # 1.2.3, 010.0.0.1, 0x7f.1, spaces...
        return None
    if not slash:
        return packed, 32
    if not (length.isascii() and length.isdigit()) or length[0] == "0" or len(length) > 2:
        return None
    prefixlen = int(length)
    if not MIN_PREFIXLEN[4] <= prefixlen < 32:  # /32 is written without it
        return None
    if int.from_bytes(packed, "big") & ((1 << (32 - prefixlen)) - 1):
        return None
    return packed, prefixlen


@lru_cache(maxsize=16384)
def address_key(text: str) -> IpKey:
    """The /32 or /128 key of one address; cached, and quick for canonical IPv4.

    The ingest path asks this for every hit (policy, allowlist, listing), and
    ``ipaddress`` costs microseconds a call.
    """
    parts = text.split(".")
    if len(parts) == 4:
        value = 0
        for part in parts:
            if (
                not (part.isascii() and part.isdigit())
                or len(part) > 3
                or (part[0] == "0" and part != "0")
            ):
                break
            octet = int(part)
            if octet > 255:
                break
            value = value << 8 | octet
        else:
            return IpKey(4, value, 32)
    if not text.isascii():  # int() and ipaddress would read Unicode digits as ASCII ones
        raise KeyFormatError(f"{text[:100]!r} is not an IP address: characters other than ASCII")
    try:
        address = ipaddress.ip_address(text)
    except ValueError as exc:
        raise KeyFormatError(f"{text!r} is not an IP address") from exc
    return IpKey(address.version, int(address), MAX_PREFIXLEN[address.version])


def parse_domain_key(text: str) -> DomainKey:
    """Parse ``example.com`` or ``*.example.com`` into lowercase A-label form."""
    raw = text.strip()
    raw = raw[:-1] if raw.endswith(".") else raw  # one trailing dot: the root
    subdomains = raw.startswith("*.")
    if subdomains:
        raw = raw[2:]
    name = normalise_domain(raw, original=text)
    return DomainKey(name, subdomains)


def normalise_domain(raw: str, *, original: str | None = None) -> str:
    """Lowercase, IDNA-encode and check a domain name; raise KeyFormatError naming it."""
    shown = repr(original if original is not None else raw)
    if not raw:
        raise KeyFormatError(f"{shown} is not a domain name: it is empty")
    try:
        ascii_name = raw.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise KeyFormatError(f"{shown} is not a domain name: {exc}") from exc
    if len(ascii_name) > 253:
        raise KeyFormatError(f"{shown} is longer than 253 characters")
    for label in ascii_name.split("."):
        if not 1 <= len(label) <= 63:
            raise KeyFormatError(f"{shown} has an empty label or one over 63 characters")
        if not set(label) <= _LDH:
            raise KeyFormatError(
                f"{shown} has a label with characters other than letters, digits, '-' or '_'"
            )
        if label.startswith("-") or label.endswith("-"):
            raise KeyFormatError(f"{shown} has a label starting or ending with '-'")
    return ascii_name


def parse_key(kind: ZoneKind, text: str) -> ListingKey:
    """Parse a key for a zone of the given kind."""
    if kind is ZoneKind.IP:
        return parse_ip_key(text)
    return parse_domain_key(text)


def test_address_conflict(family: int, network: int, prefixlen: int, text: str) -> str | None:
    """Why the network ``text`` (``network/prefixlen``) may not be listed, or None: it
    holds an RFC 5782 test address. For keys not made into an IpKey (a bulk import)."""
    last = network | ((1 << (MAX_PREFIXLEN[family] - prefixlen)) - 1)
    if any(network <= point <= last for point in TEST_ADDRESSES[family]):
        return f"{text} covers an RFC 5782 test address, which always answers the same"
    return None


def test_point_conflict(key: ListingKey) -> str | None:
    """Why a key may not be listed because it would change an RFC 5782 test point, or None."""
    if isinstance(key, IpKey):
        return test_address_conflict(key.family, key.network, key.prefixlen, key.text)
    if key.name in (TEST_LISTED_NAME, TEST_UNLISTED_NAME) and not key.subdomains:
        return f"{key.text} is an RFC 5782 test name, which always answers the same"
    return None
