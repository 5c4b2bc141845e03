"""DNS wire-format constants and record fragments, built once and reused per packet."""

from __future__ import annotations

import struct
from typing import Final

TYPE_A: Final = 1
TYPE_NS: Final = 2
TYPE_SOA: Final = 6
TYPE_TXT: Final = 16
TYPE_AAAA: Final = 28
TYPE_OPT: Final = 41
TYPE_IXFR: Final = 251
TYPE_AXFR: Final = 252
TYPE_ANY: Final = 255
CLASS_IN: Final = 1
CLASS_ANY: Final = 255

RCODE_NOERROR: Final = 0
RCODE_FORMERR: Final = 1
RCODE_SERVFAIL: Final = 2
RCODE_NXDOMAIN: Final = 3
RCODE_NOTIMP: Final = 4
RCODE_REFUSED: Final = 5
RCODE_BADVERS: Final = 16

HEADER: Final = struct.Struct(">2sBBHHHH")  # id, flags, flags, qd, an, ns, ar
QUESTION_TAIL: Final = struct.Struct(">HH")  # qtype, qclass
OPT_HEAD: Final = struct.Struct(">BHHBBHH")  # root, type, payload, ext rcode, version, flags, rdlen
RR_TAIL: Final = struct.Struct(">HHIH")  # type, class, ttl, rdlength
POINTER_TO_QNAME: Final = b"\xc0\x0c"
MAX_NAME: Final = 255  # octets of a name on the wire (RFC 1035 3.1)
MAX_HOPS: Final = 127  # compression pointers followed in one name; a 255-octet name needs fewer


def encode_name(name: str) -> bytes:
    """Uncompressed wire form of a dotted ASCII name, with the root label."""
    out = bytearray()
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode("ascii")
            out.append(len(raw))
            out += raw
    out.append(0)
    return bytes(out)


def compress_name(name: str, known: dict[tuple[bytes, ...], int], at: int) -> bytes:
    """Wire form of ``name`` written at offset ``at``, pointing at a known suffix if any.

    ``known`` maps label suffixes already in the message to their offsets; the
    suffixes written here are added to it (RFC 1035 4.1.4).
    """
    labels = tuple(label.encode("ascii") for label in name.rstrip(".").split(".") if label)
    out = bytearray()
    for i in range(len(labels)):
        suffix = labels[i:]
        if suffix in known:
            return bytes(out + pointer(known[suffix]))
        if at + len(out) < 0x4000:
            known[suffix] = at + len(out)
        out.append(len(labels[i]))
        out += labels[i]
    out.append(0)
    return bytes(out)


def pointer(offset: int) -> bytes:
    """A compression pointer to ``offset`` in the message."""
    return bytes((0xC0 | (offset >> 8), offset & 0xFF))


def rr(owner: bytes, rtype: int, ttl: int, rdata: bytes) -> bytes:
    return owner + RR_TAIL.pack(rtype, CLASS_IN, ttl, len(rdata)) + rdata


def txt_rdata(text: str) -> bytes:
    """TXT RDATA: the string split into character-strings of at most 255 bytes."""
    raw = text.encode("utf-8")
    if not raw:
        return b"\x00"
    out = bytearray()
    for start in range(0, len(raw), 255):
        chunk = raw[start : start + 255]
        out.append(len(chunk))
        out += chunk
    return bytes(out)


def opt_rr(payload: int, do: bool, ext_rcode: int = 0) -> bytes:
    """An EDNS0 OPT record advertising our UDP payload size, echoing the DO bit."""
    return b"\x00" + RR_TAIL.pack(TYPE_OPT, payload, (ext_rcode << 24) | (0x8000 if do else 0), 0)


def read_name(data: bytes, position: int) -> tuple[bytes, int]:
    """The name at ``position`` in canonical form, and the offset past it; ValueError if bad.

    Strict, for hostile packets: pointers must point backwards (RFC 1035 4.1.4: to a
    prior occurrence), at most ``MAX_HOPS`` of them, plain labels only, ``MAX_NAME`` octets at most.
    """
    out = bytearray()
    end = None
    hops = 0
    while True:
        if position >= len(data):
            raise ValueError("name past the end of the message")
        length = data[position]
        if length == 0:
            out.append(0)
            return bytes(out), position + 1 if end is None else end
        if length & 0xC0 == 0xC0:
            if position + 1 >= len(data):
                raise ValueError("compression pointer past the end of the message")
            target = (length & 0x3F) << 8 | data[position + 1]
            hops += 1
            if target >= position or hops > MAX_HOPS:
                raise ValueError("compression pointer that does not point backwards")
            if end is None:
                end = position + 2
            position = target
            continue
        if length & 0xC0:
            raise ValueError("not a plain label")
        label = data[position + 1 : position + 1 + length]
        if len(label) != length:
            raise ValueError("label past the end of the message")
        out.append(length)
        out += label.lower()
        if len(out) > MAX_NAME:
            raise ValueError("name longer than 255 octets")
        position += 1 + length
