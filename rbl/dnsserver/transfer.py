"""Zone transfers out: AXFR (RFC 5936) and IXFR (RFC 1995) over TCP, behind an ACL.

What a secondary loads must answer what rbl answers, so the records are
generated from the zone's in-memory index with the rules of the zone-file dump
(``rbl.dumps.writer``):

* a listed IPv4 network becomes octet-boundary wildcards (``*.2.0.192`` for
  192.0.2.0/24), other prefix lengths the covering set of next-boundary names;
  IPv6 on nibble boundaries; single addresses are plain names;
* an exclusion (allowlisted address) or a more specific entry inside a listed
  network is cut out: the network is written as the CIDR pieces around it;
* an exact domain is a name, ``*.domain`` a wildcard; nodes below a listed
  wildcard are repaired as the dump does (an allowlisted one holds only an
  HINFO record, so A and TXT are NODATA as rbl answers);
* the RFC 5782 test points are in the index and hence in the transfer.

A zone file cannot substitute per query, so a wildcard's TXT names the listing
(``192.0.2.0/24``, ``*.example.com``) where rbl names the queried key; A
records, NXDOMAIN and NODATA agree. Partial reversed names below a wildcard
(``5.0.10`` under 10.0.0.0/16) match the wildcard in DNS where rbl says NODATA.

IXFR: no history is kept, so an IXFR whose serial is older than the zone's is
answered with a full AXFR-style response (RFC 1995 section 4), and one that is
current with the single SOA (up to date). Over UDP both AXFR and IXFR stay
REFUSED (``rbl.dnsserver.slowpath``), so secondaries retry over TCP.

Access: only clients inside ``allow`` networks may transfer; everyone else gets
REFUSED. With ``[transfer] tsig`` keys, a transfer must also be signed
(rbl.dnsserver.tsig, through dnspython), and its messages are signed back.

A transfer reads one view of the zone when the request arrives (``ZoneView``:
copies of the index arrays, on the reactor thread, milliseconds), so it is
consistent at one serial; its messages are then built a few at a time while
DNS goes on answering (rbl.dnsserver.protocol sends them cooperatively, and
stops while the secondary's connection is full). Building a 1M-listing zone
in one go blocked DNS for 7 s and held 66 MB of messages. Imports nothing
from rbl.store.
"""

from __future__ import annotations

import heapq
import ipaddress
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from rbl.config import ZoneSettings
from rbl.dnsserver.tsig import TsigKeys
from rbl.dnsserver.wire import (
    CLASS_IN,
    HEADER,
    QUESTION_TAIL,
    RCODE_FORMERR,
    RCODE_REFUSED,
    RR_TAIL,
    TYPE_A,
    TYPE_AXFR,
    TYPE_IXFR,
    TYPE_SOA,
    TYPE_TXT,
    encode_name,
    txt_rdata,
)
from rbl.dnsserver.zone import Zone
from rbl.index.tables import EXCLUDED, Value
from rbl.model.keys import ZoneKind
from rbl.zonedata.names import cidr_blocks, ip_text, wildcard_shadows, zone_names

MESSAGE_TARGET: Final = 16384  # bytes per transfer message, as BIND and Knot use
TYPE_HINFO: Final = 13
HINFO_EXCLUDED: Final = b"\x03rbl" + bytes((23,)) + b"allowlisted: not listed"  # CPU, OS
_POINTER_TO_QNAME: Final = b"\xc0\x0c"
_SERIAL_HALF: Final = 1 << 31

Record = tuple[str, int, bytes]
"""(owner relative to the apex, "" for the apex itself; type; rdata)"""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class TransferPolicy:
    """Who may transfer: client networks (an empty tuple refuses everyone)."""

    allow: tuple[Network, ...] = ()

    @classmethod
    def from_strings(cls, networks: Iterable[str]) -> TransferPolicy:
        return cls(tuple(ipaddress.ip_network(text, strict=False) for text in networks))

    def allows(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.allow)


# -- the records of a zone -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZoneView:
    """One consistent view of a zone, taken at once; its records are generated later.

    The index arrays and domain dicts are copied (memory copies, milliseconds
    for a million entries); value ids stay valid because values are only ever
    appended. The follower may change the zone, and a reload its settings,
    while a transfer of this view is still being written.
    """

    settings: ZoneSettings
    values: Sequence[Value | None]
    v4: list[tuple[int, Sequence[int], Sequence[int]]]
    v6: list[tuple[int, Sequence[int], Sequence[int]]]
    exact: dict[str, int]
    subtree: dict[str, int]

    @classmethod
    def of(cls, zone: Zone) -> ZoneView:
        index = zone.index
        if zone.is_ip:
            return cls(
                zone.settings, index.values, index.v4.snapshot(), index.v6.snapshot(), {}, {}
            )
        domains = index.domains
        return cls(
            zone.settings,
            index.values,
            [],
            [],
            {name.decode("ascii"): vid for name, vid in domains.exact.items()},
            {name.decode("ascii"): vid for name, vid in domains.subtree.items()},
        )


def zone_records(view: ZoneView) -> Iterator[Record]:
    """Every record below the apex (not the SOA and NS), generated from the view."""
    if view.settings.kind is ZoneKind.IP:
        yield from _ip_records(view, 4, view.v4)
        yield from _ip_records(view, 6, view.v6)
    else:
        yield from _domain_records(view)


def _value_records(view: ZoneView, owner: str, vid: int, key: str) -> Iterator[Record]:
    value = view.values[vid]
    codes = value.codes if value is not None else ()
    for code in codes:
        yield owner, TYPE_A, ipaddress.IPv4Address(code).packed
    template = value.txt if value is not None else None
    yield owner, TYPE_TXT, txt_rdata(view.settings.txt_for(key, template))


def _ip_records(
    view: ZoneView, family: int, levels: list[tuple[int, Sequence[int], Sequence[int]]]
) -> Iterator[Record]:
    """Each entry's records once all entries inside it are known (a sweep with a stack).

    Entries arrive in nesting order (network, then prefix length) from a lazy
    merge of the levels; CIDRs nest or are disjoint, so the stack holds the
    chain of entries containing the current one, and an entry is complete
    when the sweep passes its last address. Memory: the stack, not the zone.
    """
    bits = 32 if family == 4 else 128
    entries = heapq.merge(*(_level_entries(*level) for level in levels))
    # (last address, network, prefix length, value id, immediate children)
    stack: list[tuple[int, int, int, int, list[tuple[int, int]]]] = []
    for network, prefixlen, vid in entries:
        while stack and stack[-1][0] < network:
            yield from _entry_records(view, family, bits, stack.pop())
        if stack:
            stack[-1][4].append((network, prefixlen))
        stack.append((network | ((1 << (bits - prefixlen)) - 1), network, prefixlen, vid, []))
    while stack:
        yield from _entry_records(view, family, bits, stack.pop())


def _level_entries(
    prefixlen: int, keys: Sequence[int], vals: Sequence[int]
) -> Iterator[tuple[int, int, int]]:
    for network, vid in zip(keys, vals, strict=True):
        yield network, prefixlen, vid


def _entry_records(
    view: ZoneView,
    family: int,
    bits: int,
    entry: tuple[int, int, int, int, list[tuple[int, int]]],
) -> Iterator[Record]:
    """A listed entry's names, around the entries inside it (cut out as holes)."""
    _last, network, prefixlen, vid, holes = entry
    if vid == EXCLUDED:
        return
    pieces: Iterable[tuple[int, int]] = (
        _pieces(network, prefixlen, holes, bits) if holes else ((network, prefixlen),)
    )
    listing = ip_text(family, network, prefixlen)
    for n, p in pieces:
        for name, wildcard, address in zone_names(family, n, p):
            key = listing if wildcard else ip_text(family, address, bits)
            yield from _value_records(view, name, vid, key)


def _pieces(
    network: int, prefixlen: int, holes: Sequence[tuple[int, int]], bits: int
) -> Iterator[tuple[int, int]]:
    """The CIDR blocks of ``network/prefixlen`` outside its sorted, disjoint ``holes``."""
    start = network
    for hole, hole_len in holes:
        if hole > start:
            yield from cidr_blocks(start, hole - 1, bits)
        start = hole + (1 << (bits - hole_len))
    end = network | ((1 << (bits - prefixlen)) - 1)
    if start <= end:
        yield from cidr_blocks(start, end, bits)


def _domain_records(view: ZoneView) -> Iterator[Record]:
    exact, subtree = view.exact, view.subtree
    entries = [(name, False, vid) for name, vid in exact.items()]
    entries += [(name, True, vid) for name, vid in subtree.items()]
    entries.sort()
    for name, wildcard, vid in entries:
        if vid == EXCLUDED:
            continue
        key = f"*.{name}" if wildcard else name
        yield from _value_records(view, key, vid, key)
    if any(vid != EXCLUDED for vid in subtree.values()):
        yield from _wildcard_shadows(view, exact, subtree)


def _wildcard_shadows(
    view: ZoneView, exact: dict[str, int], subtree: dict[str, int]
) -> Iterator[Record]:
    """What a DNS wildcard does differently from rbl's ``*.name`` (rbl.zonedata.names).

    Any owner below a listed ``*.A`` makes its subtree exist, so each such node
    gets A's records itself (HINFO only if allowlisted) and ``*.node`` repeats
    them, unless the node has entries of its own.
    """
    for name, ancestor, vid in wildcard_shadows(exact, subtree):
        own = exact.get(name)
        if own == EXCLUDED:
            yield name, TYPE_HINFO, HINFO_EXCLUDED
        elif own is None:
            yield from _value_records(view, name, vid, name)
        if name not in subtree:
            yield from _value_records(view, f"*.{name}", vid, f"*.{ancestor}")


# -- the messages ------------------------------------------------------------------------


def is_transfer(data: bytes) -> bool:
    """Cheap test on raw bytes: a QUERY whose one question asks AXFR or IXFR."""
    if len(data) < 17 or data[2] & 0xF8 or data[4:6] != b"\x00\x01":
        return False
    end = _question_end(data)
    if end is None:
        return False
    qtype = QUESTION_TAIL.unpack_from(data, end - 4)[0]
    return qtype in (TYPE_AXFR, TYPE_IXFR)


def _question_end(data: bytes) -> int | None:
    i = 12
    while i < len(data):
        length = data[i]
        if length == 0:
            return i + 5 if i + 5 <= len(data) else None
        if length > 63:
            return None
        i += 1 + length
    return None


class Transfers:
    """Answers AXFR/IXFR queries for a set of zones, for clients the policy allows."""

    def __init__(
        self, zones: Sequence[Zone], policy: TransferPolicy, tsig: TsigKeys | None = None
    ) -> None:
        self.zones = {zone.wire_root: zone for zone in zones}
        self.policy = policy
        self.tsig = tsig  # when set, every transfer must be signed by one of these keys
        self.served = 0
        self.refused = 0

    def respond(self, data: bytes, host: str) -> list[bytes]:
        """The response messages for a transfer query from ``host``, all at once (tests)."""
        return list(self.stream(data, host))

    def stream(self, data: bytes, host: str) -> Iterator[bytes]:
        """The response messages for a transfer query from ``host`` (see ``is_transfer``).

        Checks and the zone's view happen now; the messages are built as the
        iterator is read, so the caller can send them a few at a time.
        """
        if self.tsig is None:
            return self._stream(data, host)
        request = self.tsig.verify(data)
        if request is None:
            self.refused += 1
            end = _question_end(data)
            return iter([_error(data, None if end is None else data[12:end], RCODE_REFUSED)])
        return self.tsig.sign(request, self._stream(data, host))

    def _stream(self, data: bytes, host: str) -> Iterator[bytes]:
        end = _question_end(data)
        if end is None:
            return iter([_error(data, None, RCODE_FORMERR)])
        question = data[12:end]
        qname = data[12 : end - 4].lower()
        qtype, qclass = QUESTION_TAIL.unpack_from(data, end - 4)
        zone = self.zones.get(qname)
        if zone is None or qclass != CLASS_IN or not self.policy.allows(host):
            self.refused += 1
            return iter([_error(data, question, RCODE_REFUSED)])
        self.served += 1
        if qtype == TYPE_IXFR:
            serial = _ixfr_serial(data, end)
            if serial is None:
                return iter([_error(data, question, RCODE_FORMERR)])
            if not _serial_older(serial, zone.serial):
                # Up to date (or ahead): the current SOA alone (RFC 1995 section 2).
                return pack_messages(data[0:2], data[2] & 0x01, question, [_soa_rr(zone)])
        return axfr_messages(zone, data[0:2], data[2] & 0x01, question)


def axfr_messages(
    zone: Zone,
    query_id: bytes,
    rd: int,
    question: bytes,
    target: int = MESSAGE_TARGET,
) -> Iterator[bytes]:
    """SOA, NS, every record, SOA: split into messages of about ``target`` bytes.

    The zone is read now (``ZoneView``: its records, SOA, NS and TTL at this
    serial); the messages are built as the iterator is read. Owners are
    written relative to the question's QNAME (the apex) through a compression
    pointer, so the question is repeated in every message.
    """
    view = ZoneView.of(zone)
    soa = _soa_rr(zone)
    ns = [_POINTER_TO_QNAME + tail for tail in zone.ns_tails]
    ttl = zone.ttl

    def records() -> Iterator[bytes]:
        yield soa
        yield from ns
        for owner, rtype, rdata in zone_records(view):
            yield _owner(owner) + RR_TAIL.pack(rtype, CLASS_IN, ttl, len(rdata)) + rdata
        yield soa

    return pack_messages(query_id, rd, question, records(), target)


def pack_messages(
    query_id: bytes,
    rd: int,
    question: bytes,
    records: Iterable[bytes],
    target: int = MESSAGE_TARGET,
) -> Iterator[bytes]:
    base = 12 + len(question)
    batch: list[bytes] = []
    size = base
    for record in records:
        if batch and size + len(record) > target:
            yield _message(query_id, rd, question, batch)
            batch, size = [], base
        batch.append(record)
        size += len(record)
    if batch:
        yield _message(query_id, rd, question, batch)


def _message(query_id: bytes, rd: int, question: bytes, records: list[bytes]) -> bytes:
    head = HEADER.pack(query_id, 0x84 | rd, 0, 1, len(records), 0, 0)
    return b"".join((head, question, *records))


def _owner(relative: str) -> bytes:
    if not relative:
        return _POINTER_TO_QNAME
    return encode_name(relative)[:-1] + _POINTER_TO_QNAME


def _soa_rr(zone: Zone) -> bytes:
    return _POINTER_TO_QNAME + zone.soa_answer_tail


def _error(data: bytes, question: bytes | None, rcode: int) -> bytes:
    flags = 0x80 | (data[2] & 0x79)
    if question is None:
        return HEADER.pack(data[0:2], flags, rcode, 0, 0, 0, 0)
    return HEADER.pack(data[0:2], flags, rcode, 1, 0, 0, 0) + question


def _ixfr_serial(data: bytes, end: int) -> int | None:
    """The serial of the SOA in an IXFR query's authority section (RFC 1995 section 3)."""
    if data[8:10] != b"\x00\x01":
        return None
    i = end
    while i < len(data):  # the owner: a name or a pointer
        length = data[i]
        if length >= 0xC0:
            i += 2
            break
        if length == 0:
            i += 1
            break
        i += 1 + length
    if i + 10 > len(data):
        return None
    rtype, _class, _ttl, rdlength = RR_TAIL.unpack_from(data, i)
    rdata = data[i + 10 : i + 10 + rdlength]
    if rtype != TYPE_SOA or len(rdata) != rdlength or rdlength < 22:
        return None
    serial: int = struct.unpack_from(">I", rdata, rdlength - 20)[0]
    return serial


def _serial_older(theirs: int, ours: int) -> bool:
    """RFC 1982 serial arithmetic: is ``theirs`` before ``ours``?"""
    return theirs != ours and (ours - theirs) % (1 << 32) < _SERIAL_HALF
