"""What a zone transfer served: one log line per transfer, and the counters /metrics reads.

Measured where the messages leave (rbl.dnsserver.protocol wraps the message
iterator with ``TransferWatch.measure``), not where they are built: whatever
builds them (AXFR, an IXFR difference, an AXFR-style IXFR fallback, a TSIG
error, a refusal), the figures are those of the bytes sent. The watch reads
each message's header (rcode, answer count) and, from the first two answer
records, the serial sent and whether an IXFR answer is incremental (RFC 1995:
the new SOA, then the old one) or AXFR-style. A few header reads per
message of ~16 KB; nothing here runs per query. Imports nothing from rbl.store.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

from twisted.logger import Logger

from rbl.dnsserver.wire import RR_TAIL, TYPE_AXFR, TYPE_IXFR, TYPE_SOA
from rbl.zonedata.history import NoDifference

log = Logger(namespace="rbl.transfer")

AXFR: Final = "axfr"
IXFR: Final = "ixfr"  # incremental, or the single SOA of an up-to-date secondary
IXFR_AS_AXFR: Final = "ixfr_axfr"  # an IXFR answered with the whole zone
COMPLETE: Final = "complete"  # every message handed to the connection
REFUSED: Final = "refused"  # answered with an error rcode (REFUSED, NOTAUTH, FORMERR...)
ABORTED: Final = "aborted"  # the client closed the connection before the end
FAILED: Final = "failed"  # building the messages raised
_SHOWN: Final = {AXFR: "AXFR", IXFR: "IXFR", IXFR_AS_AXFR: "IXFR (fell back to AXFR)"}
_RCODES: Final = {1: "FORMERR", 2: "SERVFAIL", 4: "NOTIMP", 5: "REFUSED", 9: "NOTAUTH"}


class TransferStats:
    """Per process: transfers by (type, outcome); bytes, records and seconds by type."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.bytes: dict[str, int] = {}
        self.records: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.fallbacks: dict[str, int] = {}  # IXFRs answered in full, by cause (zonedata.history)

    def add(
        self,
        kind: str,
        outcome: str,
        size: int,
        records: int,
        seconds: float,
        fallback: str | None = None,
    ) -> None:
        self.counts[kind, outcome] = self.counts.get((kind, outcome), 0) + 1
        if fallback is not None:
            self.fallbacks[fallback] = self.fallbacks.get(fallback, 0) + 1
        self.bytes[kind] = self.bytes.get(kind, 0) + size
        self.records[kind] = self.records.get(kind, 0) + records
        self.seconds[kind] = self.seconds.get(kind, 0.0) + seconds

    def snapshot(self) -> dict[str, Any]:
        """JSON-able, for a ``--workers`` child's report pipe."""
        return {
            "counts": [[kind, outcome, n] for (kind, outcome), n in self.counts.items()],
            "bytes": dict(self.bytes),
            "records": dict(self.records),
            "seconds": dict(self.seconds),
            "fallbacks": dict(self.fallbacks),
        }


class TransferWatch:
    """One transfer on its way out: counts what is sent, logs and counts once at its end."""

    def __init__(
        self,
        stats: TransferStats,
        query: bytes,
        client: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stats = stats
        self.client = client
        self.clock = clock
        self.started = clock()
        self.zone, qtype, self.from_serial = _read_query(query)
        self.asked = IXFR if qtype == TYPE_IXFR else AXFR
        self.messages = 0
        self.size = 0
        self.records = 0
        self.rcode = 0
        self.to_serial: int | None = None
        self._types: list[int] = []  # the first two answer records' types
        self.fallback: NoDifference | None = None  # why an IXFR was answered with the whole zone
        self.done = False

    def fell_back(self, reason: NoDifference) -> None:
        """The IXFR is answered AXFR-style, for ``reason`` (logged with the transfer)."""
        self.fallback = reason

    def measure(self, messages: Iterator[bytes]) -> Iterator[bytes]:
        for message in messages:
            self._saw(message)
            yield message

    def _saw(self, message: bytes) -> None:
        self.messages += 1
        self.size += len(message)
        if len(message) < 12:
            return
        count = int.from_bytes(message[6:8], "big")
        self.records += count
        if self.messages == 1:
            self.rcode = message[3] & 0x0F
        if len(self._types) < 2 and count:
            for rtype, serial in _first_records(message, 2 - len(self._types)):
                if not self._types and rtype == TYPE_SOA:
                    self.to_serial = serial
                self._types.append(rtype)

    @property
    def kind(self) -> str:
        if self.asked == AXFR:
            return AXFR
        if len(self._types) < 2 or self._types[1] == TYPE_SOA:
            return IXFR  # a lone SOA (up to date) or new SOA, old SOA: a difference
        return IXFR_AS_AXFR

    def finish(self, outcome: str) -> None:
        """Count and log this transfer (once: later calls are ignored)."""
        if self.done:
            return
        self.done = True
        if outcome == COMPLETE and self.rcode:
            outcome = REFUSED
        seconds = self.clock() - self.started
        kind = self.kind
        fallback = self.fallback if kind == IXFR_AS_AXFR else None
        cause = None if fallback is None else fallback.cause
        self.stats.add(kind, outcome, self.size, self.records, seconds, cause)
        shown = outcome
        if outcome == REFUSED:
            shown = f"refused ({_RCODES.get(self.rcode, str(self.rcode))})"
        elif outcome == ABORTED:
            shown = "aborted by the client"
        why = "" if fallback is None else f"; in full because {fallback.text}"
        log.info(
            "transfer {zone} {kind} to {client}: {outcome}, serial {from_serial} -> "
            "{to_serial}, {records} records, {size} bytes in {messages} messages, "
            "{seconds:.3f}s{why}",
            zone=self.zone,
            kind=_SHOWN[kind],
            client=self.client,
            outcome=shown,
            from_serial="-" if self.from_serial is None else self.from_serial,
            to_serial="-" if self.to_serial is None else self.to_serial,
            records=self.records,
            size=self.size,
            messages=self.messages,
            seconds=seconds,
            why=why,
            transfer_kind=kind,
            transfer_outcome=outcome,
            transfer_fallback=None if fallback is None else fallback.cause,
        )


def _skip_name(data: bytes, i: int) -> int:
    """The offset after the (possibly compressed) name at ``i``; past the end when cut."""
    while i < len(data):
        length = data[i]
        if length >= 0xC0:
            return i + 2
        if length == 0:
            return i + 1
        i += 1 + length
    return len(data) + 1


def _name_text(data: bytes, i: int) -> str:
    labels = []
    while i < len(data) and 0 < data[i] < 64:
        labels.append(data[i + 1 : i + 1 + data[i]].decode("ascii", "replace"))
        i += 1 + data[i]
    return ".".join(labels).lower() or "."


def _read_query(query: bytes) -> tuple[str, int, int | None]:
    """The zone, the qtype and (IXFR) the serial of the SOA in the authority section."""
    if len(query) < 17:
        return "?", TYPE_AXFR, None
    end = _skip_name(query, 12)
    if end + 4 > len(query):
        return "?", TYPE_AXFR, None
    qtype = int.from_bytes(query[end : end + 2], "big")
    serial = None
    if qtype == TYPE_IXFR and query[8:10] == b"\x00\x01":
        for rtype, found in _records(query, end + 4, 1):
            if rtype == TYPE_SOA:
                serial = found
    return _name_text(query, 12), qtype, serial


def _first_records(message: bytes, limit: int) -> list[tuple[int, int | None]]:
    """(type, SOA serial or None) of the first ``limit`` answer records."""
    i = 12
    for _ in range(int.from_bytes(message[4:6], "big")):
        i = _skip_name(message, i) + 4
    return _records(message, i, limit)


def _records(data: bytes, i: int, limit: int) -> list[tuple[int, int | None]]:
    found: list[tuple[int, int | None]] = []
    while len(found) < limit:
        i = _skip_name(data, i)
        if i + RR_TAIL.size > len(data):
            break
        rtype, _class, _ttl, rdlength = RR_TAIL.unpack_from(data, i)
        i += RR_TAIL.size
        serial = None
        if rtype == TYPE_SOA and rdlength >= 22 and i + rdlength <= len(data):
            serial = struct.unpack_from(">I", data, i + rdlength - 20)[0]
        found.append((rtype, serial))
        i += rdlength
    return found
