"""Incremental zone transfer (RFC 1995): the difference from a secondary's serial to ours.

A secondary at serial S asks IXFR with S's SOA in the authority section. From
the zone's history (rbl.zonedata.history, kept by the change follower) the
changes after S are condensed to one (then, now) state per key, and
rbl.zonedata.difference turns them into the records to delete and to add,
with the generator AXFR uses, so the records are those an AXFR would carry.
The answer is one difference sequence (RFC 1995 section 4)::

    SOA(now)  SOA(S) deleted...  SOA(now) added...  SOA(now)

split into messages as AXFR is (rbl.dnsserver.transfer.pack_messages) and
signed the same way. The difference is computed when the request arrives
(reactor thread; the cost is the changes, not the zone), so it is consistent
at one serial. When the history cannot answer (S older than it, unknown, IXFR
off) ``ixfr_messages`` says why and the caller answers AXFR-style. Imports
nothing from rbl.store.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from rbl.dnsserver.zone import Zone
from rbl.zonedata.difference import difference
from rbl.zonedata.history import NoDifference

POINTER_TO_QNAME = b"\xc0\x0c"


def soa_at(zone: Zone, serial: int) -> bytes:
    """The zone's SOA record (owner: the question's QNAME) with ``serial`` in it."""
    tail = zone.soa_answer_tail
    return POINTER_TO_QNAME + tail[:-20] + struct.pack(">I", serial) + tail[-16:]


def ixfr_records(zone: Zone, serial: int) -> list[bytes] | NoDifference:
    """The answer records from ``serial`` to the zone's, or why there is no difference."""
    from rbl.dnsserver.transfer import wire_records  # transfer imports this module

    changes = zone.history.since(serial)
    if isinstance(changes, NoDifference):
        return changes
    deleted, added = difference(zone.settings, zone.index, changes)
    now = soa_at(zone, zone.serial)
    ttl = zone.ttl
    return [
        now,
        soa_at(zone, serial),
        *wire_records(deleted, ttl),
        now,
        *wire_records(added, ttl),
        now,
    ]


def ixfr_messages(
    zone: Zone, query_id: bytes, rd: int, question: bytes, serial: int
) -> Iterator[bytes] | NoDifference:
    """The IXFR answer messages from ``serial``, or why it must be a full transfer."""
    from rbl.dnsserver.transfer import pack_messages  # transfer imports this module

    records = ixfr_records(zone, serial)
    if isinstance(records, NoDifference):
        return records
    return pack_messages(query_id, rd, question, records)
