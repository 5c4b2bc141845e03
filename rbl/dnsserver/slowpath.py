"""The general responder, built on dnslib: every query the fast path declines.

That is: EDNS versions other than 0, other opcodes, classes, meta types,
compressed or odd questions, and garbage. It is also the reference the tests
hold the fast path to. A packet that cannot be parsed but has a header gets
FORMERR; runts and responses get nothing (no reflection of junk). Every
answer is counted by its header rcode, under its zone or outside every zone
(see rbl.dnsserver.responder).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dnslib

from rbl.dnsserver import signedquery
from rbl.dnsserver.tsigwire import MARK
from rbl.dnsserver.wire import (
    CLASS_ANY,
    CLASS_IN,
    RCODE_BADVERS,
    RCODE_FORMERR,
    RCODE_NOTIMP,
    RCODE_NXDOMAIN,
    RCODE_REFUSED,
    TYPE_A,
    TYPE_ANY,
    TYPE_AXFR,
    TYPE_IXFR,
    TYPE_NS,
    TYPE_OPT,
    TYPE_SOA,
    TYPE_TXT,
    read_name,
)
from rbl.dnsserver.zone import Outcome, Zone

if TYPE_CHECKING:
    from rbl.dnsserver.responder import Responder

_NO_RECORDS = b"\x00" * 6  # answer, authority and additional counts of a plain query


def respond(responder: Responder, data: bytes, udp: bool, host: str = "") -> bytes | None:
    if len(data) < 12 or data[2] & 0x80:
        return None
    if data[6:12] != _NO_RECORDS and MARK in data:  # maybe signed: verify, answer, sign
        signed = signedquery.respond(responder, data, udp, host)
        if signed is not None:
            return signed
    zone: Zone | None = None
    try:
        query = dnslib.DNSRecord.parse(_for_dnslib(data))
    except Exception:  # dnslib raises DNSError, but also UnicodeDecodeError and friends
        reply = formerr(data)
    else:
        try:
            reply, zone = _answer(responder, query, udp)
        except Exception:
            reply = formerr(data)
    rcodes = responder.outside_rcodes if zone is None else zone.rcodes
    code = reply[3] & 0x0F
    if code == 0 and reply[10:12] != b"\x00\x00" and reply[-10:-8] == b"\x00\x29":
        code |= reply[-6] << 4  # the OPT record (last, no options) carries the upper bits
    rcodes[code if code < len(rcodes) else 0] += 1
    return reply


def formerr(data: bytes) -> bytes:
    """FORMERR echoing the id and opcode of an unparseable packet, no sections."""
    return data[0:2] + bytes(((data[2] & 0x79) | 0x80, RCODE_FORMERR)) + b"\x00" * 8


MAX_QUERY_RECORDS = 8  # answer + authority + additional: OPT, TSIG, an IXFR's SOA, a few spare


def _for_dnslib(data: bytes) -> bytes:
    """The part of a query dnslib needs to see: header, question and OPT records.

    dnslib expands every compressed name in full, with no 255-octet limit and
    no limit on pointer hops: one 64 KiB packet of 10,000 questions pointing
    into a 900-link pointer chain cost it 26 s of CPU and 500 MiB, and a few
    records whose names (or names inside their data) ran through such a chain
    cost 19 ms each (tests/dnsserver/test_fuzz.py). So the packet is walked here first,
    cheaply and strictly: at most one question and ``MAX_QUERY_RECORDS``
    records, names of at most 255 octets whose pointers go backwards, record
    data inside the packet. A query's answer and authority sections and its
    additional records other than OPT mean nothing to this server (a TSIG record was
    verified and taken out before, rbl.dnsserver.signedquery), so dnslib is given only
    the question and the OPT records. Anything malformed raises: FORMERR,
    unparsed, which also keeps that FORMERR from echoing thousands of questions
    past the UDP size limit.
    """
    questions = int.from_bytes(data[4:6], "big")
    counts = [int.from_bytes(data[i : i + 2], "big") for i in (6, 8, 10)]
    if questions > 1 or sum(counts) > MAX_QUERY_RECORDS:
        raise ValueError(f"{questions} questions and {sum(counts)} records: not a query to parse")
    position = 12
    if questions:
        position = _name_end(data, position) + 4
    question_end = position
    opts: list[bytes] = []
    for section, count in enumerate(counts):
        for _ in range(count):
            start = position
            position = _name_end(data, position)
            if position + 10 > len(data):
                raise ValueError("record header past the end of the packet")
            rtype = int.from_bytes(data[position : position + 2], "big")
            rdlength = int.from_bytes(data[position + 8 : position + 10], "big")
            position += 10 + rdlength
            if position > len(data):
                raise ValueError("record data past the end of the packet")
            if rtype == TYPE_OPT and section == 2:  # an OPT elsewhere means nothing
                opts.append(data[start:position])
    if question_end > len(data):
        raise ValueError("question past the end of the packet")
    if not opts and not any(counts) and position == len(data):
        return data  # the common slow-path query: nothing to take out
    header = data[0:4] + questions.to_bytes(2, "big") + b"\x00\x00\x00\x00"
    return header + len(opts).to_bytes(2, "big") + data[12:question_end] + b"".join(opts)


def _name_end(data: bytes, position: int) -> int:
    """Where the name at ``position`` ends; raises unless it is a sane name (``read_name``)."""
    return read_name(data, position)[1]


def _header(query: Any, rcode: int, *, aa: bool) -> Any:
    head = query.header
    return dnslib.DNSHeader(
        id=head.id,
        qr=1,
        opcode=head.opcode,
        aa=int(aa),
        rd=head.rd,
        ra=0,
        ad=0,
        cd=head.cd,
        rcode=rcode & 0xF,
    )


def _answer(responder: Responder, query: Any, udp: bool) -> tuple[bytes, Zone | None]:
    """The reply, and the zone it counts under (None: outside every zone)."""
    opts = [rr for rr in query.ar if rr.rtype == TYPE_OPT]
    edns = opts[0] if len(opts) == 1 else None
    do = bool(edns is not None and edns.ttl & 0x8000)

    def reply(rcode: int, *, aa: bool = False, question: bool = True) -> Any:
        record = dnslib.DNSRecord(_header(query, rcode, aa=aa))
        if question:
            for q in query.questions:
                record.add_question(q)
        if edns is not None:
            record.add_ar(
                dnslib.EDNS0(
                    udp_len=responder.udp_payload, flags="do" if do else "", ext_rcode=rcode >> 4
                )
            )
        return record

    if len(opts) > 1 or (edns is not None and edns.rname.label):
        return _pack(reply(RCODE_FORMERR)), None
    if edns is not None and (edns.ttl >> 16) & 0xFF != 0:
        return _pack(reply(RCODE_BADVERS)), None
    if query.header.opcode != 0:
        return _pack(reply(RCODE_NOTIMP)), None
    if len(query.questions) != 1:
        return _pack(reply(RCODE_FORMERR)), None
    question = query.questions[0]
    if question.qclass not in (CLASS_IN, CLASS_ANY):
        return _pack(reply(RCODE_REFUSED)), None
    labels = [bytes(label).lower() for label in question.qname.label]
    zone = responder.find_zone(labels)
    if zone is None:
        return _pack(reply(RCODE_REFUSED)), None
    qtype = question.qtype
    if qtype == TYPE_IXFR and udp and zone.nlabels == len(labels):
        # RFC 1995 section 2: an IXFR over UDP whose answer does not fit gets the current SOA
        # alone, which tells the client to ask over TCP (or that it is up to date). Public.
        record = reply(0, aa=True)
        record.add_answer(dnslib.RR(zone.name, TYPE_SOA, ttl=zone.ttl, rdata=_soa(zone)))
        return _pack(record), zone
    if qtype in (TYPE_AXFR, TYPE_IXFR):
        return _pack(reply(RCODE_REFUSED)), zone
    if 128 <= qtype < TYPE_ANY or qtype == 0:
        return _pack(reply(RCODE_NOTIMP)), zone

    rel = labels[: len(labels) - zone.nlabels]
    outcome, vid = zone.resolve(rel)
    qname = question.qname
    answers: list[Any] = []
    if outcome is Outcome.LISTED:
        if qtype in (TYPE_A, TYPE_ANY):
            value = zone.index.values[vid]
            for code in value.codes if value is not None else ():
                answers.append(dnslib.RR(qname, TYPE_A, ttl=zone.ttl, rdata=dnslib.A(code)))
        if qtype in (TYPE_TXT, TYPE_ANY):
            text = zone.txt_text(vid, rel).encode("utf-8")
            chunks = [text[i : i + 255] for i in range(0, len(text), 255)] or [b""]
            answers.append(dnslib.RR(qname, TYPE_TXT, ttl=zone.ttl, rdata=dnslib.TXT(chunks)))
    elif outcome is Outcome.APEX:
        if qtype in (TYPE_SOA, TYPE_ANY):
            answers.append(dnslib.RR(qname, TYPE_SOA, ttl=zone.ttl, rdata=_soa(zone)))
        if qtype in (TYPE_NS, TYPE_ANY):
            answers.extend(
                dnslib.RR(qname, TYPE_NS, ttl=zone.ttl, rdata=dnslib.NS(ns))
                for ns in zone.settings.ns
            )
    rcode = RCODE_NXDOMAIN if outcome is Outcome.NXDOMAIN else 0
    record = reply(rcode, aa=True)
    for answer in answers:
        record.add_answer(answer)
    if not answers:
        record.add_auth(dnslib.RR(zone.name, TYPE_SOA, ttl=zone.negative_ttl, rdata=_soa(zone)))
    packed = _pack(record)
    limit = (
        max(512, min(edns.rclass if edns is not None else 512, responder.udp_payload))
        if udp
        else 65535
    )
    if len(packed) > limit:
        truncated = reply(rcode, aa=True)
        truncated.header.tc = 1
        return _pack(truncated), zone
    return packed, zone


def _soa(zone: Zone) -> Any:
    soa = zone.settings.soa
    return dnslib.SOA(
        soa.mname,
        soa.rname,
        (zone.serial, soa.refresh, soa.retry, soa.expire, soa.minimum),
    )


def _pack(record: Any) -> bytes:
    return bytes(record.pack())
