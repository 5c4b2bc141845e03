"""Turn a query packet into a response packet.

The common query (one question, class IN, no compression in the question, at
most an EDNS0 OPT record) is answered straight from the raw bytes with
pre-built fragments: no dnslib, no allocation beyond the reply. Everything
else goes to ``rbl.dnsserver.slowpath``, which uses dnslib and is also the
reference the tests hold the fast path to. Both resolve names through
``Zone.resolve`` so they cannot disagree about what is listed.

Both paths count every answer they send by zone and rcode for metrics: a
slot in a 16-entry list per zone (``Zone.rcodes``), or ``outside_rcodes`` for
answers outside every zone and unparseable queries. Bumping a list slot
allocates nothing, so the fast path stays lean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from rbl.dnsserver import slowpath
from rbl.dnsserver.tsig import TsigKeys
from rbl.dnsserver.wire import (
    HEADER,
    OPT_HEAD,
    QUESTION_TAIL,
    RCODE_NXDOMAIN,
    RCODE_REFUSED,
    TYPE_A,
    TYPE_ANY,
    TYPE_NS,
    TYPE_SOA,
    TYPE_TXT,
    opt_rr,
)
from rbl.dnsserver.zone import APEX, LISTED, NXDOMAIN, OCTETS, Zone

_ONE_QUESTION: Final = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_ONE_QUESTION_EDNS: Final = b"\x00\x01\x00\x00\x00\x00\x00\x01"
_OPT_START: Final = b"\x00\x00\x29"  # root owner, type OPT
TCP_LIMIT: Final = 65535
# Rcode mnemonics (RFC 6895) by counter slot: the 16 header rcodes, then
# BADVERS (16), the one extended rcode rbl sends (in the OPT record).
RCODE_NAMES: Final = (
    "NOERROR",
    "FORMERR",
    "SERVFAIL",
    "NXDOMAIN",
    "NOTIMP",
    "REFUSED",
    "YXDOMAIN",
    "YXRRSET",
    "NXRRSET",
    "NOTAUTH",
    "NOTZONE",
    "DSOTYPENI",
    "RCODE12",
    "RCODE13",
    "RCODE14",
    "RCODE15",
    "BADVERS",
)


class Responder:
    """Answers queries for a set of zones; safe to share between UDP and TCP."""

    def __init__(self, zones: Sequence[Zone], udp_payload: int = 1232) -> None:
        self.zones = tuple(zones)
        self.udp_payload = udp_payload
        self._opt = opt_rr(udp_payload, False)
        self._opt_do = opt_rr(udp_payload, True)
        self.outside_rcodes = [0] * len(RCODE_NAMES)  # outside every zone, or unparseable
        # Verifies signed queries and signs their answers (the slow path's); None: no keys.
        self.tsig: TsigKeys | None = None

    def query_counts(self) -> dict[tuple[str, str], int]:
        """Answers sent so far by (zone name, rcode mnemonic); zone "" is outside every zone."""
        counts: dict[tuple[str, str], int] = {}
        for name, rcodes in [("", self.outside_rcodes)] + [(z.name, z.rcodes) for z in self.zones]:
            for rcode, count in enumerate(rcodes):
                if count:
                    key = (name, RCODE_NAMES[rcode])
                    counts[key] = counts.get(key, 0) + count
        return counts

    def respond(self, data: bytes, udp: bool, host: str = "") -> bytes | None:
        """The response to send, or None to stay silent (runts, responses).

        ``host`` is the client's address: which TSIG keys it may sign with.
        """
        try:
            reply = self.fast(data, udp)
        except Exception:
            reply = None
        if reply is None:
            return slowpath.respond(self, data, udp, host)
        return reply

    def find_zone(self, labels: Sequence[bytes]) -> Zone | None:
        """The zone whose apex is a suffix of the lowercase labels (deepest first)."""
        count = len(labels)
        best: Zone | None = None
        for zone in self.zones:
            k = zone.nlabels
            if (
                count >= k
                and tuple(labels[count - k :]) == zone.labels
                and (best is None or k > best.nlabels)
            ):
                best = zone
        return best

    def fast(self, data: bytes, udp: bool) -> bytes | None:
        """Answer the common query from raw bytes, or return None to decline."""
        size = len(data)
        if size < 17 or data[2] & 0xF8:  # QR set or an opcode other than QUERY
            return None
        counts = data[4:12]
        if counts == _ONE_QUESTION:
            edns = False
        elif counts == _ONE_QUESTION_EDNS:
            edns = True
        else:
            return None
        low = data.lower()
        # Find the end of the question from the tail: it is last without EDNS, and
        # followed by exactly 11 bytes when the OPT record carries no options.
        # Anything else (EDNS options, junk) takes the label walk.
        if not edns:
            qend = size
        elif low[size - 11 : size - 8] == _OPT_START and low[size - 2 :] == b"\x00\x00":
            qend = size - 11
        else:
            found = _question_end(low, size)
            if found is None:
                return None
            qend = found
        if qend < 17 or qend > 12 + 255 + 4:  # no name, or one past 255 octets (RFC 1035 2.3.4)
            return None
        qtype, qclass = QUESTION_TAIL.unpack_from(data, qend - 4)
        if qclass != 1 or 128 <= qtype < 255 or qtype == 0:  # class IN, no meta types
            return None
        if edns:
            if size < qend + 11:
                return None
            root, rtype, payload, _, version, flags, rdlength = OPT_HEAD.unpack_from(data, qend)
            if root or rtype != 41 or version or qend + 11 + rdlength != size:
                return None  # not an OPT, EDNS version > 0 (BADVERS), or trailing junk
            opt = self._opt_do if flags & 0x8000 else self._opt
            limit = (max(512, min(payload, self.udp_payload))) if udp else TCP_LIMIT
            additional = 1
        else:
            opt = b""
            limit = 512 if udp else TCP_LIMIT
            additional = 0
        rd = 0x84 | (data[2] & 0x01)  # QR, AA, RD copied
        cd = data[3] & 0x10  # CD copied; RA, AD and Z clear
        question = data[12:qend]
        qname = low[12 : qend - 4]
        zone = None
        for candidate in self.zones:
            if qname.endswith(candidate.wire_root) and (
                zone is None or candidate.nlabels > zone.nlabels
            ):
                zone = candidate
        if zone is None:
            if _question_end(low, size) != qend:
                return None  # malformed: the dnslib path answers FORMERR
            self.outside_rcodes[RCODE_REFUSED] += 1
            return b"".join(
                (
                    HEADER.pack(
                        data[0:2], rd & 0x01 | 0x80, cd | RCODE_REFUSED, 1, 0, 0, additional
                    ),
                    question,
                    opt,
                )
            )
        # Split the labels below the apex; they must end exactly where the apex
        # starts, which also proves the apex match is on a label boundary.
        apex = len(qname) - len(zone.wire_root)
        rel: list[bytes] = []
        j = 0
        while j < apex:
            length = qname[j]
            if length == 0 or length > 63:
                return None
            j += 1
            rel.append(qname[j : j + length])
            j += length
        if j != apex:
            return None
        if zone.is_ip and len(rel) == 4:  # the common DNSBL query, resolved inline
            octet = OCTETS.get
            d, c, b, a = octet(rel[0]), octet(rel[1]), octet(rel[2]), octet(rel[3])
            if a is not None and b is not None and c is not None and d is not None:
                vid = zone.v4_lookup(a << 24 | b << 16 | c << 8 | d) or 0
                outcome = LISTED if vid else NXDOMAIN
                if not vid and len(b"".join(rel)) == 4:  # maybe an IPv6 non-terminal too
                    outcome, vid = zone.resolve(rel)
            else:
                outcome, vid = zone.resolve(rel)
        else:
            outcome, vid = zone.resolve(rel)
        rcode = RCODE_NXDOMAIN if outcome is NXDOMAIN else 0
        answers = 0
        answer = b""
        if outcome is LISTED:
            if qtype == TYPE_A:
                answers, answer = zone.a_answer(vid)
            elif qtype == TYPE_TXT:
                answers, answer = 1, zone.txt_answer(vid, rel)
            elif qtype == TYPE_ANY:
                answers, answer = zone.a_answer(vid)
                answers += 1
                answer += zone.txt_answer(vid, rel)
        elif outcome is APEX:
            if qtype in (TYPE_SOA, TYPE_ANY):
                answers, answer = 1, b"\xc0\x0c" + zone.soa_answer_tail
            if qtype in (TYPE_NS, TYPE_ANY):
                answers += len(zone.ns_tails)
                answer += b"".join(b"\xc0\x0c" + tail for tail in zone.ns_tails)
        if answers:
            reply = b"".join(
                (
                    HEADER.pack(data[0:2], rd, cd, 1, answers, 0, additional),
                    question,
                    answer,
                    opt,
                )
            )
        else:
            reply = b"".join(
                (
                    HEADER.pack(
                        data[0:2],
                        rd,
                        cd | rcode,
                        1,
                        0,
                        1,
                        additional,
                    ),
                    question,
                    zone.negative_authority(12 + apex),
                    opt,
                )
            )
        zone.rcodes[rcode] += 1  # nothing below can fail and send us to the slow path
        if len(reply) > limit:
            return b"".join(
                (
                    HEADER.pack(data[0:2], rd | 0x02, cd | rcode, 1, 0, 0, additional),
                    question,
                    opt,
                )
            )
        return reply


def _question_end(low: bytes, size: int) -> int | None:
    """Offset just past QTYPE/QCLASS, walking the QNAME's labels; None if malformed."""
    i = 12
    while i < size:
        length = low[i]
        if length == 0:
            return i + 5 if i + 5 <= size else None
        if length > 63:
            return None
        i += 1 + length
    return None
