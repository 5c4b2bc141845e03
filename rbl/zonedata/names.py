"""Owner names and address text for listings written as DNS records. Pure.

Shared by the zone-file dump (rbl.dumps) and outgoing zone transfers
(rbl.dnsserver.transfer), which must describe a listing the same way: IPv4
networks as names on octet boundaries (wildcards above /32), IPv6 on nibble
boundaries, and odd prefix lengths split into the fewest such blocks.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Final

OCTET_TEXT: Final = tuple(str(i) for i in range(256))  # "0".."255", no per-name str()


def cidr_blocks(start: int, end: int, bits: int) -> Iterator[tuple[int, int]]:
    """The fewest CIDR blocks (network, prefix length) covering start..end exactly."""
    while start <= end:
        size = (start & -start).bit_length() - 1 if start else bits
        size = min(size, (end - start + 1).bit_length() - 1)
        yield start, bits - size
        start += 1 << size


def ip_text(family: int, network: int, prefixlen: int) -> str:
    if family == 4:
        text = socket.inet_ntoa(network.to_bytes(4, "big"))
        return text if prefixlen == 32 else f"{text}/{prefixlen}"
    text = str(ipaddress.IPv6Address(network))
    return text if prefixlen == 128 else f"{text}/{prefixlen}"


def zone_names(family: int, network: int, prefixlen: int) -> Iterator[tuple[str, bool, int]]:
    """Owner names (relative to the zone) covering a CIDR block: (name, wildcard, address).

    IPv4 on octet boundaries, IPv6 on nibble boundaries.
    """
    if family == 4:
        level = (prefixlen + 7) // 8 * 8
        octets = level // 8
        for n in range(network, network + (1 << (32 - prefixlen)), 1 << (32 - level)):
            labels = [
                OCTET_TEXT[n >> 24],
                OCTET_TEXT[n >> 16 & 255],
                OCTET_TEXT[n >> 8 & 255],
                OCTET_TEXT[n & 255],
            ]
            name = ".".join(reversed(labels[:octets]))
            yield (name, False, n) if octets == 4 else ("*." + name, True, n)
    else:
        level = (prefixlen + 3) // 4 * 4
        nibbles = level // 4
        for n in range(network, network + (1 << (128 - prefixlen)), 1 << (128 - level)):
            name = ".".join(reversed(f"{n:032x}"[:nibbles]))
            yield (name, False, n) if nibbles == 32 else ("*." + name, True, n)


def listed_ancestor(subtree: dict[str, int], name: str) -> tuple[str, int] | None:
    """The nearest ``*.ancestor`` entry strictly above ``name``, if it is listed.

    ``subtree`` maps names to value ids, 0 being an exclusion (rbl.index.tables.EXCLUDED).
    """
    dot = name.find(".")
    while dot >= 0:
        name = name[dot + 1 :]
        found = subtree.get(name)
        if found is not None:
            return (name, found) if found != 0 else None
        dot = name.find(".")
    return None


def wildcard_shadows(
    exact: dict[str, int], subtree: dict[str, int]
) -> Iterator[tuple[str, str, int]]:
    """(node, ancestor, value id) for every name a DNS wildcard would answer wrongly.

    In DNS a wildcard ``*.A`` answers only for names that do not exist, and any
    owner below ``A`` (a listed name, the parent of another wildcard, the empty
    non-terminals between) makes its whole subtree exist. rbl instead walks up
    to the nearest ``*.ancestor``. Zone files and transfers therefore give each
    such node, below a listed ``*.A``, A's records (and ``*.node`` too, unless
    the node has its own ``*.node`` entry). Sorted, for repeatable output.
    """
    nodes: set[str] = set()
    for owner in (*exact, *subtree):
        found = listed_ancestor(subtree, owner)
        if found is None:
            continue
        ancestor = found[0]
        name = owner
        while name != ancestor and name not in nodes:
            nodes.add(name)
            name = name.partition(".")[2]
    for name in sorted(nodes):
        found = listed_ancestor(subtree, name)
        if found is not None:
            yield name, found[0], found[1]
