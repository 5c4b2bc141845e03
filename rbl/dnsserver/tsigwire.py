"""TSIG records on the wire (RFC 8945): find one in a message, digest, append.

Pure byte work with ``hmac`` and ``hashlib``, no DNS library: the slow path
verifies a signed query and signs the answer dnslib or the fast path built
without re-rendering it, a zone transfer's messages are signed as they leave,
and a NOTIFY is signed and its answer checked. rbl.dnsserver.tsig decides what
a verified or failed signature means; dnspython is the oracle the tests hold
this module to. Imports nothing from rbl.store.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from rbl.dnsserver.wire import RR_TAIL, encode_name, read_name

TYPE_TSIG: Final = 250
TYPE_OPT: Final = 41
CLASS_ANY: Final = 255
RCODE_FORMERR: Final = 1
RCODE_NOTAUTH: Final = 9
BADSIG: Final = 16
BADKEY: Final = 17
BADTIME: Final = 18
BADTRUNC: Final = 22
ERROR_NAMES: Final = {BADSIG: "BADSIG", BADKEY: "BADKEY", BADTIME: "BADTIME", BADTRUNC: "BADTRUNC"}
# Type TSIG: a message without these two bytes has no TSIG record (the slow
# path's cheap test before walking the message; a hit may be a false alarm).
MARK: Final = b"\x00\xfa"
MAX_RECORDS: Final = 64  # records walked in a query or a NOTIFY answer; more is not one
DEFAULT_FUDGE: Final = 300  # seconds of clock skew allowed (RFC 8945 section 10)

Hash = Callable[..., "hashlib._Hash"]
HASHES: Final[dict[str, Hash]] = {
    "hmac-sha1": hashlib.sha1,
    "hmac-sha224": hashlib.sha224,
    "hmac-sha256": hashlib.sha256,
    "hmac-sha384": hashlib.sha384,
    "hmac-sha512": hashlib.sha512,
}
_TIMERS: Final = struct.Struct(">HIH")  # time signed (48 bits), fudge


def name_wire(name: str) -> bytes:
    """Canonical wire form (lowercase, uncompressed) of a dotted name."""
    return encode_name(name.lower())


@dataclass(frozen=True, slots=True)
class Found:
    """A message's TSIG record, where it starts, and what else the walk saw."""

    start: int  # offset of the TSIG record: the message before it is what was signed
    key: bytes  # the owner: the key's name, canonical wire form
    algorithm: bytes  # canonical wire form
    time_signed: int
    fudge: int
    mac: bytes
    original_id: int
    error: int
    other: bytes
    question_end: int  # offset past the question (12 without one)
    opt_payload: int  # the OPT record's UDP payload size; 0 without OPT


def find(data: bytes) -> Found | None:
    """The TSIG record of ``data``; None without one; ValueError when malformed or misplaced.

    RFC 8945 section 5.1: the TSIG record must be the last record of the
    additional section, and there is at most one; anything else is FORMERR.
    """
    if len(data) < 12:
        raise ValueError("shorter than a header")
    questions, answers, authority, additional = struct.unpack_from(">HHHH", data, 4)
    total = answers + authority + additional
    if questions > 1 or total > MAX_RECORDS:
        raise ValueError(f"{questions} questions and {total} records")
    position = 12
    if questions:
        position = read_name(data, position)[1] + 4
    question_end = position
    opt_payload = 0
    for number in range(total):
        start = position
        owner, position = read_name(data, position)
        if position + 10 > len(data):
            raise ValueError("record header past the end of the message")
        rtype, rclass, ttl, rdlength = RR_TAIL.unpack_from(data, position)
        position += 10
        rdata_end = position + rdlength
        if rdata_end > len(data):
            raise ValueError("record data past the end of the message")
        if rtype == TYPE_OPT:
            opt_payload = rclass
        if rtype == TYPE_TSIG:
            if number != total - 1 or number < answers + authority:
                raise ValueError("a TSIG record that is not the last additional record")
            if rclass != CLASS_ANY or ttl != 0:
                raise ValueError("a TSIG record not of class ANY with TTL 0")
            return _rdata(data, start, owner, position, rdata_end, question_end, opt_payload)
        position = rdata_end
    return None


def _rdata(
    data: bytes, start: int, owner: bytes, position: int, end: int, qend: int, opt: int
) -> Found:
    algorithm, position = read_name(data, position)
    if position + 10 > end:
        raise ValueError("TSIG data too short")
    high, low, fudge = _TIMERS.unpack_from(data, position)
    (size,) = struct.unpack_from(">H", data, position + 8)
    position += 10
    mac = data[position : position + size]
    position += size
    if position + 6 > end:
        raise ValueError("TSIG data too short")
    original_id, error, other_size = struct.unpack_from(">HHH", data, position)
    position += 6
    other = data[position : position + other_size]
    if position + other_size != end:
        raise ValueError("TSIG data of the wrong length")
    return Found(
        start, owner, algorithm, high << 32 | low, fudge, mac, original_id, error, other, qend, opt
    )


def timers(time_signed: int, fudge: int) -> bytes:
    return _TIMERS.pack((time_signed >> 32) & 0xFFFF, time_signed & 0xFFFFFFFF, fudge)


def variables(
    key: bytes, algorithm: bytes, time_signed: int, fudge: int, error: int, other: bytes
) -> bytes:
    """The TSIG variables every digest but a transfer's later messages ends with (4.3.3)."""
    return b"".join(
        (
            key,
            struct.pack(">HI", CLASS_ANY, 0),
            algorithm,
            timers(time_signed, fudge),
            struct.pack(">HH", error, len(other)),
            other,
        )
    )


def digest(secret: bytes, hash_: Hash, parts: Iterable[bytes]) -> bytes:
    mac = hmac.new(secret, digestmod=hash_)
    for part in parts:
        mac.update(part)
    return mac.digest()


def prior(mac: bytes) -> bytes:
    """A MAC as it opens the digest of an answer: its length, then itself (4.3.1)."""
    return struct.pack(">H", len(mac)) + mac if mac else b""


def unsigned(data: bytes, found: Found) -> bytes:
    """The message as it was signed: before the TSIG record, one record fewer, original id."""
    count = struct.unpack_from(">H", data, 10)[0] - 1
    return (
        struct.pack(">H", found.original_id)
        + data[2:10]
        + struct.pack(">H", count)
        + data[12 : found.start]
    )


def stripped(data: bytes, found: Found) -> bytes:
    """The message without its TSIG record (the id as received), for the responder."""
    count = struct.unpack_from(">H", data, 10)[0] - 1
    return data[0:10] + struct.pack(">H", count) + data[12 : found.start]


def record(
    key: bytes,
    algorithm: bytes,
    time_signed: int,
    fudge: int,
    mac: bytes,
    original_id: int,
    error: int = 0,
    other: bytes = b"",
) -> bytes:
    """A TSIG resource record (owner uncompressed, as RFC 8945 section 4.2 asks)."""
    rdata = b"".join(
        (
            algorithm,
            timers(time_signed, fudge),
            struct.pack(">H", len(mac)),
            mac,
            struct.pack(">HHH", original_id, error, len(other)),
            other,
        )
    )
    return key + RR_TAIL.pack(TYPE_TSIG, CLASS_ANY, 0, len(rdata)) + rdata


def append(message: bytes, tsig: bytes) -> bytes:
    """``message`` with ``tsig`` added as its last additional record."""
    count = struct.unpack_from(">H", message, 10)[0] + 1
    return message[0:10] + struct.pack(">H", count) + message[12:] + tsig
