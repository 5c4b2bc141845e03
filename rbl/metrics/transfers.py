"""Zone transfers served and NOTIFY to secondaries, as metric families.

Transfers are counted by every DNS process (``--workers`` children share the
TCP port, so any of them may serve one): they travel in the process snapshot
(``transfer_stats.snapshot()``, rbl.dnsserver.xfrlog) under its ``worker``
label. NOTIFY goes out from the first process only, so it is read from the
sender itself. Pure: objects in, families out; nothing here runs per packet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rbl.metrics.exposition import Family

if TYPE_CHECKING:
    from rbl.dnsserver.notify import NotifySender


def transfer_families(snapshots: Mapping[str, Mapping[str, Any]]) -> list[Family]:
    """Transfers by type (axfr, ixfr, ixfr_axfr: an IXFR answered in full) and outcome."""
    count = Family(
        "rbl_transfers_total",
        "counter",
        "Zone transfers served, by type (axfr, ixfr, ixfr_axfr: an IXFR answered with the "
        "whole zone) and outcome (complete, refused, aborted by the client, failed).",
    )
    size = Family("rbl_transfer_bytes_total", "counter", "Bytes of transfer messages sent.")
    records = Family("rbl_transfer_records_total", "counter", "Records sent in zone transfers.")
    seconds = Family(
        "rbl_transfer_seconds_total",
        "counter",
        "Time spent sending zone transfers (divide by rbl_transfers_total for the mean).",
    )
    fallbacks = Family(
        "rbl_transfer_ixfr_fallbacks_total",
        "counter",
        "IXFRs answered with the whole zone, by cause: history (the secondary's serial is "
        "older than the IXFR history or unknown: [transfer] ixfr_history, a restart, a "
        "snapshot or settings reload), ahead (newer than rbl's), off (ixfr_history = 0).",
    )
    for worker, snap in snapshots.items():
        stats = snap.get("transfers")
        if not stats:
            continue
        for kind, outcome, n in stats["counts"]:
            count.add(n, worker=worker, type=kind, outcome=outcome)
        for family, key in ((size, "bytes"), (records, "records"), (seconds, "seconds")):
            for kind, value in stats[key].items():
                family.add(value, worker=worker, type=kind)
        for cause, n in stats.get("fallbacks", {}).items():
            fallbacks.add(n, worker=worker, cause=cause)
    return [count, size, records, seconds, fallbacks]


def notify_families(sender: NotifySender | None) -> list[Family]:
    """NOTIFY datagrams sent, answers, failing targets and each target's acknowledged serial."""
    if sender is None:
        return []
    from rbl.dnsserver.notify import describe_target

    sent = Family("rbl_notify_sent_total", "counter", "NOTIFY datagrams sent, retries included.")
    sent.add(sender.sent)
    acked = Family("rbl_notify_acknowledged_total", "counter", "NOTIFYs a secondary acknowledged.")
    acked.add(sender.acknowledged)
    superseded = Family(
        "rbl_notify_superseded_total",
        "counter",
        "NOTIFYs replaced by a newer serial of their zone before any answer.",
    )
    superseded.add(sender.superseded)
    failing = Family(
        "rbl_notify_failing_targets",
        "gauge",
        "Secondaries whose NOTIFYs are failing now (timeouts, ICMP errors, send errors).",
    )
    failing.add(len(sender.failing_targets()))
    target_failing = Family(
        "rbl_notify_target_failing", "gauge", "1 while NOTIFYs to this secondary are failing."
    )
    serial = Family(
        "rbl_notify_acknowledged_serial",
        "gauge",
        "The last serial of each zone a secondary acknowledged a NOTIFY for.",
    )
    for state in sender.states.values():
        target = describe_target(state.target)
        target_failing.add(0 if state.failing is None else 1, target=target)
        for zone, number in state.acknowledged.items():
            serial.add(number, target=target, zone=zone)
    return [sent, acked, superseded, failing, target_failing, serial]
