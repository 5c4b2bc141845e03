"""Signed queries that are not zone transfers: verify, answer as usual, sign the answer.

A keyed secondary signs every message it sends: BIND its SOA refresh queries
(over UDP, then TCP), Knot and NSD their IXFR-over-UDP probes and SOA checks.
An unsigned answer to one is dropped ("expected a TSIG or SIG(0)") and the
secondary never refreshes. The fast path never sees such a query (its
additional section is not one bare OPT record, so rbl.dnsserver.responder
declines it); rbl.dnsserver.slowpath hands it here when it has records beyond
its question and its bytes hold the TSIG type (``MARK``), so unsigned queries
pay one substring test, in the slow path only.

Here the signature is checked (rbl.dnsserver.tsig: a failure is answered
NOTAUTH with its TSIG error, or FORMERR), the query without its TSIG record
is answered by the normal responder (fast path or dnslib), and the answer is
signed. Over UDP a signed answer that no longer fits the client's size is sent
truncated (TC, question only), signed, so the client retries over TCP.
Imports nothing from rbl.store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rbl.dnsserver.tsig import NO_KEYS
from rbl.dnsserver.wire import HEADER, read_name

if TYPE_CHECKING:
    from rbl.dnsserver.responder import Responder

RCODE_SLOT_NOTAUTH = 9
RCODE_SLOT_FORMERR = 1


def respond(responder: Responder, data: bytes, udp: bool, host: str) -> bytes | None:
    """The signed answer, or the TSIG error; None when ``data`` carries no TSIG after all."""
    keys = responder.tsig or NO_KEYS
    checked = keys.check(data, host)
    if checked is None:
        return None
    if isinstance(checked, bytes):
        slot = RCODE_SLOT_FORMERR if checked[3] & 0x0F == 1 else RCODE_SLOT_NOTAUTH
        responder.outside_rcodes[slot] += 1
        return checked
    found_start = checked.start
    inner = data[0:10] + (int.from_bytes(data[10:12], "big") - 1).to_bytes(2, "big")
    reply = responder.respond(inner + data[12:found_start], udp, host)
    if reply is None:
        return None
    signed = keys.sign_answer(checked, reply)
    if udp:
        payload = checked.opt_payload
        limit = max(512, min(payload, responder.udp_payload)) if payload else 512
        if len(signed) > limit:
            end = _question_end(reply)
            head = HEADER.pack(reply[0:2], reply[2] | 0x02, reply[3], 1 if end > 12 else 0, 0, 0, 0)
            signed = keys.sign_answer(checked, head + reply[12:end])
    return signed


def _question_end(reply: bytes) -> int:
    if reply[4:6] == b"\x00\x00":
        return 12
    try:
        return read_name(reply, 12)[1] + 4
    except ValueError:
        return 12


__all__ = ["respond"]
