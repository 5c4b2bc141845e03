"""Zone transfers out: AXFR (RFC 5936) and IXFR (RFC 1995) over TCP, behind an ACL.

What a secondary loads must answer what rbl answers: the records come from
the zone's in-memory index through the generator the zone-file dump uses too
(``rbl.zonedata.records``, which describes them); this module only renders
them as wire messages.

IXFR: answered from the zone's history with the condensed difference
(rbl.dnsserver.ixfr); a current serial gets the single SOA (up to date), and
a serial the history cannot answer from (older than it, unknown, ahead of
ours) a full AXFR-style response (RFC 1995 section 4), the reason given to the
transfer log. Over UDP both AXFR and IXFR stay REFUSED
(``rbl.dnsserver.slowpath``), so secondaries retry over TCP.

Access: only clients inside ``allow`` networks may transfer; everyone else gets
REFUSED. A signed transfer request is verified (rbl.dnsserver.tsig: NOTAUTH
with BADKEY, BADSIG, BADTIME or BADTRUNC when it fails, RFC 8945) and every
message of its answer is signed back; with ``[transfer] tsig`` keys a client
must sign (with its own key when ``[[transfer.secondaries]]`` binds one).

A zone whose served settings disagree with the ones the change log last
recorded (``Zone.agrees``: this node not yet reloaded like the others, or its
own new settings not yet recorded) is REFUSED too, with a log line: its
content does not match the serial its SOA shows.

A transfer reads one view of the zone when the request arrives (``rbl.zonedata.view.ZoneView``:
copies of the index arrays, on the reactor thread, milliseconds), so it is
consistent at one serial; its messages are then built a few at a time while
DNS goes on answering (rbl.dnsserver.protocol sends them cooperatively, and
stops while the secondary's connection is full). Building a 1M-listing zone
in one go blocked DNS for 7 s and held 66 MB of messages. Imports nothing
from rbl.store.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from twisted.logger import Logger

from rbl.dnsserver.clients import client_address
from rbl.dnsserver.ixfr import ixfr_messages
from rbl.dnsserver.tsig import NO_KEYS, TsigKeys
from rbl.dnsserver.tsigwire import MARK
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
    read_name,
    txt_rdata,
)
from rbl.dnsserver.zone import Zone
from rbl.zonedata.history import AHEAD, NoDifference
from rbl.zonedata.records import EXCEPTED_TYPE, TXT, A, Record, zone_records
from rbl.zonedata.view import ZoneView

log = Logger(namespace="rbl.transfer")

MESSAGE_TARGET: Final = 16384  # bytes per transfer message, as BIND and Knot use
_POINTER_TO_QNAME: Final = b"\xc0\x0c"
_SERIAL_HALF: Final = 1 << 31

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class TransferPolicy:
    """Who may transfer: client networks (an empty tuple refuses everyone)."""

    allow: tuple[Network, ...] = ()

    @classmethod
    def from_strings(cls, networks: Iterable[str]) -> TransferPolicy:
        return cls(tuple(ipaddress.ip_network(text, strict=False) for text in networks))

    def allows(self, host: str) -> bool:
        address = client_address(host)
        return address is not None and any(address in network for network in self.allow)


# -- the records of a zone, as wire records ------------------------------------------


def view_of(zone: Zone) -> ZoneView:
    """The zone's view for a transfer: copies of its index, at its current serial."""
    return ZoneView.of_index(zone.settings, zone.index)


def wire_records(records: Iterable[Record], ttl: int) -> Iterator[bytes]:
    """Each record as an RR whose owner points at the question's QNAME (the apex)."""
    addresses: dict[str, bytes] = {}
    for owner, rtype, value, _listing in records:
        if rtype == A:
            rdata = addresses.get(value)
            if rdata is None:
                rdata = addresses[value] = ipaddress.IPv4Address(value).packed
            tail = RR_TAIL.pack(TYPE_A, CLASS_IN, ttl, 4)
        elif rtype == TXT:
            rdata = txt_rdata(value)
            tail = RR_TAIL.pack(TYPE_TXT, CLASS_IN, ttl, len(rdata))
        else:  # EXCEPTED: an allowlisted name under a wildcard, empty
            rdata = b""
            tail = RR_TAIL.pack(EXCEPTED_TYPE, CLASS_IN, ttl, 0)
        yield _owner(owner) + tail + rdata


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
        self.tsig = tsig  # the keys; which must sign whose transfers (TsigKeys.required_for)
        self.served = 0
        self.refused = 0

    def respond(self, data: bytes, host: str) -> list[bytes]:
        """The response messages for a transfer query from ``host``, all at once (tests)."""
        return list(self.stream(data, host))

    def stream(
        self, data: bytes, host: str, fell_back: Callable[[NoDifference], None] | None = None
    ) -> Iterator[bytes]:
        """The response messages for a transfer query from ``host`` (see ``is_transfer``).

        Checks and the zone's view happen now; the messages are built as the
        iterator is read, so the caller can send them a few at a time. An IXFR
        answered in full calls ``fell_back`` with the reason.
        """
        keys = self.tsig or NO_KEYS
        checked = keys.check(data, host) if MARK in data else None
        if isinstance(checked, bytes):  # NOTAUTH (BADKEY, BADSIG...) or FORMERR
            self.refused += 1
            return iter([checked])
        if checked is not None:  # signed correctly: every message is signed back
            return keys.sign(checked, self._stream(data, host, fell_back))
        if keys.required_for(host):
            self.refused += 1
            end = _question_end(data)
            return iter([_error(data, None if end is None else data[12:end], RCODE_REFUSED)])
        return self._stream(data, host, fell_back)

    def _stream(
        self, data: bytes, host: str, fell_back: Callable[[NoDifference], None] | None = None
    ) -> Iterator[bytes]:
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
        if not zone.agrees:
            self.refused += 1
            _log_disagreement(zone, host)
            return iter([_error(data, question, RCODE_REFUSED)])
        self.served += 1
        if qtype == TYPE_IXFR:
            serial = _ixfr_serial(data, end)
            if serial is None:
                return iter([_error(data, question, RCODE_FORMERR)])
            if serial == zone.serial:
                # Up to date: the current SOA alone (RFC 1995 section 4).
                return pack_messages(data[0:2], data[2] & 0x01, question, [_soa_rr(zone)])
            if _serial_older(serial, zone.serial):
                answer = ixfr_messages(zone, data[0:2], data[2] & 0x01, question, serial)
                if not isinstance(answer, NoDifference):
                    return answer
            else:
                answer = NoDifference(
                    AHEAD, f"serial {serial} is ahead of the zone's {zone.serial}"
                )
            if fell_back is not None:
                fell_back(answer)
        return axfr_messages(zone, data[0:2], data[2] & 0x01, question)


def _log_disagreement(zone: Zone, host: str) -> None:
    log.warn(
        "refusing a transfer of {zone} to {client}: this node serves settings {ours} but the "
        "change log last recorded {recorded} for the zone; reload this node with the "
        "fleet's configuration (serial {serial})",
        zone=zone.name,
        client=host,
        ours=zone.fingerprint[:12],
        recorded=(zone.recorded or "none")[:12],
        serial=zone.serial,
    )


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
    view = view_of(zone)
    soa = _soa_rr(zone)
    ns = [_POINTER_TO_QNAME + tail for tail in zone.ns_tails]
    ttl = zone.ttl

    def records() -> Iterator[bytes]:
        yield soa
        yield from ns
        yield from wire_records(zone_records(view), ttl)
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
    """The serial of the SOA in an IXFR query's authority section (RFC 1995 section 3);
    None (FORMERR) unless it is one well-formed SOA record."""
    if data[8:10] != b"\x00\x01":
        return None
    try:
        _owner, i = read_name(data, end)
    except ValueError:
        return None
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
