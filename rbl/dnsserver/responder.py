"""Turn a query packet into a response packet.

The common query (one question, class IN, no compression in the question, at
most an EDNS0 OPT record) is answered straight from the raw bytes with
pre-built fragments: no dnslib, no allocation beyond the reply. Everything
else goes to ``rbl.dnsserver.slowpath``, which uses dnslib and is also the
reference the tests hold the fast path to. Both resolve names through
``Zone.resolve`` so they cannot disagree about what is listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from rbl.dnsserver import slowpath
from rbl.dnsserver.wire import (
    HEADER,
    RCODE_NXDOMAIN,
    RCODE_REFUSED,
    TYPE_A,
    TYPE_ANY,
    TYPE_NS,
    TYPE_SOA,
    TYPE_TXT,
    opt_rr,
)
from rbl.dnsserver.zone import APEX, LISTED, NXDOMAIN, Zone

_ONE_QUESTION: Final = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_ONE_QUESTION_EDNS: Final = b"\x00\x01\x00\x00\x00\x00\x00\x01"
TCP_LIMIT: Final = 65535


class Responder:
    """Answers queries for a set of zones; safe to share between UDP and TCP."""

    def __init__(self, zones: Sequence[Zone], udp_payload: int = 1232) -> None:
        self.zones = tuple(zones)
        self.udp_payload = udp_payload
        self._opt = opt_rr(udp_payload, False)
        self._opt_do = opt_rr(udp_payload, True)

    def respond(self, data: bytes, udp: bool) -> bytes | None:
        """The response to send, or None to stay silent (runts, responses)."""
        try:
            reply = self.fast(data, udp)
        except Exception:
            reply = None
        if reply is None:
            return slowpath.respond(self, data, udp)
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
        labels: list[bytes] = []
        i = 12
        length = low[12]
        while length:
            if length > 63:
                return None
            i += 1
            labels.append(low[i : i + length])
            i += length
            length = low[i]  # IndexError past the end: declined by respond()
        qend = i + 5
        if qend > size or data[i + 3] != 0 or data[i + 4] != 1:  # class IN only
            return None
        qtype = data[i + 1] << 8 | data[i + 2]
        if 128 <= qtype < 255 or qtype == 0:
            return None
        if edns:
            if (
                size < qend + 11
                or data[qend] != 0
                or data[qend + 1] != 0
                or data[qend + 2] != 41
                or data[qend + 6] != 0  # EDNS version other than 0: BADVERS, slow path
                or qend + 11 + (data[qend + 9] << 8 | data[qend + 10]) != size
            ):
                return None
            payload = data[qend + 3] << 8 | data[qend + 4]
            opt = self._opt_do if data[qend + 7] & 0x80 else self._opt
            limit = (max(512, min(payload, self.udp_payload))) if udp else TCP_LIMIT
            additional = 1
        else:
            if qend != size:
                return None
            opt = b""
            limit = 512 if udp else TCP_LIMIT
            additional = 0
        rd = 0x84 | (data[2] & 0x01)  # QR, AA, RD copied
        cd = data[3] & 0x10  # CD copied; RA, AD and Z clear
        question = data[12:qend]
        zone = None
        for candidate in self.zones:
            if labels[-candidate.nlabels :] == candidate.label_list and (
                zone is None or candidate.nlabels > zone.nlabels
            ):
                zone = candidate
        if zone is None:
            return b"".join(
                (
                    HEADER.pack(
                        data[0:2], rd & 0x01 | 0x80, cd | RCODE_REFUSED, 1, 0, 0, additional
                    ),
                    question,
                    opt,
                )
            )
        rel = labels[: len(labels) - zone.nlabels]
        outcome, vid = zone.resolve(rel)
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
                        cd | (RCODE_NXDOMAIN if outcome is NXDOMAIN else 0),
                        1,
                        0,
                        1,
                        additional,
                    ),
                    question,
                    zone.negative_authority(i - len(zone.wire)),
                    opt,
                )
            )
        if len(reply) > limit:
            rcode = RCODE_NXDOMAIN if outcome is NXDOMAIN else 0
            return b"".join(
                (
                    HEADER.pack(data[0:2], rd | 0x02, cd | rcode, 1, 0, 0, additional),
                    question,
                    opt,
                )
            )
        return reply
