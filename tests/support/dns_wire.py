"""Raw DNS wire builders for the fuzz tests: no validation, so they build what dnspython
refuses to (labels over 63 bytes, compression pointer loops, wrong section counts)."""

from __future__ import annotations

from collections.abc import Iterable


def raw_header(
    qid: int = 0x1234,
    flags: int = 0x0100,
    qd: int = 1,
    an: int = 0,
    ns: int = 0,
    ar: int = 0,
) -> bytes:
    """A 12-byte header; ``flags`` is the 16-bit flags word (QR, opcode, ..., rcode)."""
    return b"".join((v & 0xFFFF).to_bytes(2, "big") for v in (qid, flags, qd, an, ns, ar))


def raw_name(labels: Iterable[bytes], end: bytes = b"\x00") -> bytes:
    """Labels as length-prefixed bytes (the length byte is ``len & 0xFF``, unchecked).

    ``end`` closes the name: the root label, a compression pointer, or nothing.
    """
    out = bytearray()
    for label in labels:
        out.append(len(label) & 0xFF)
        out += label
    return bytes(out) + end


def raw_question(name: bytes, qtype: int = 1, qclass: int = 1) -> bytes:
    return name + _u16(qtype) + _u16(qclass)


def raw_rr(owner: bytes, rtype: int, rclass: int, ttl: int, rdata: bytes) -> bytes:
    tail = _u16(rtype) + _u16(rclass) + (ttl & 0xFFFFFFFF).to_bytes(4, "big")
    return owner + tail + _u16(len(rdata)) + rdata


def raw_opt(
    payload: int = 1232,
    *,
    version: int = 0,
    do: bool = False,
    ext_rcode: int = 0,
    options: bytes = b"",
    owner: bytes = b"\x00",
) -> bytes:
    """An OPT pseudo-record (RFC 6891 6.1.2); ``options`` is the raw RDATA."""
    ttl = (ext_rcode & 0xFF) << 24 | (version & 0xFF) << 16 | (0x8000 if do else 0)
    return raw_rr(owner, 41, payload & 0xFFFF, ttl, options)


def raw_option(code: int, data: bytes) -> bytes:
    """One EDNS option: code, length, data."""
    return _u16(code) + _u16(len(data)) + data


def _u16(value: int) -> bytes:
    return (value & 0xFFFF).to_bytes(2, "big")
