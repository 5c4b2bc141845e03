"""What a scrape reports, gathered from the objects that count.

The DNS path, the policy feed and the dump job keep plain integer attributes
(bumping one costs nanoseconds); nothing here runs per packet. A DNS process
is summed up as a JSON-able *snapshot*, so that ``--workers`` children can
send theirs to the first process over a pipe (rbl.metrics.report) and one
scrape shows every process, each under its own ``worker`` label: a child that
restarts starts its counters at zero, which Prometheus reads as a reset only
when the series is its own.

Store figures (listings by state, hits by feed, ingest offsets) come from
``ListingReader.store_stats`` in a thread, cached for ``STORE_REFRESH``
seconds so a busy scraper does not scan the hits table at its own rate.
Imports no SQLAlchemy: ``--dns-only`` nodes serve metrics too.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rbl import __version__
from rbl.metrics.exposition import Family
from rbl.metrics.transfers import transfer_families
from rbl.metrics.tsig import tsig_families, tsig_snapshot
from rbl.store.reader import StoreStats

if TYPE_CHECKING:
    from rbl.dnsserver.protocol import Counters
    from rbl.dnsserver.responder import Responder
    from rbl.dnsserver.xfrlog import TransferStats
    from rbl.dnsserver.zone import Zone
    from rbl.feeds.policyd import PolicyServerFactory
    from rbl.feeds.recorder import HitRecorder

STARTED = time.time()  # close enough to the process start for process_start_time_seconds
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """Current resident set size (Linux /proc; the peak elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class DnsCounted(Protocol):
    """What a DNS process counts: packets (``counters``) and answers (``responder``)."""

    counters: Counters
    responder: Responder
    transfer_stats: TransferStats


class DumpRun(Protocol):
    """The figures of one dump run (rbl.dumps.writer.DumpReport)."""

    @property
    def seconds(self) -> float: ...

    @property
    def total_bytes(self) -> int: ...


class DumpRuns(Protocol):
    """The dump timer's counters (rbl.dumps.service.DumpService)."""

    runs: int
    failures: int

    @property
    def last_report(self) -> DumpRun | None: ...


def dns_snapshot(dns: DnsCounted, zones: Mapping[str, Zone], position: int) -> dict[str, Any]:
    """One DNS process's counters and index sizes, as JSON-able data.

    ``dns`` is the DnsServerService, ``zones`` the served Zone objects by
    name, ``position`` the change-log id applied.
    """
    counters = dns.counters
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "queries": [
            [zone, rcode, count] for (zone, rcode), count in dns.responder.query_counts().items()
        ],
        "udp": counters.udp_queries,
        "tcp": counters.tcp_queries,
        "errors": counters.errors,
        "rate_limited": counters.rate_limited,
        "slipped": counters.slipped,
        "tcp_refused": counters.tcp_refused,
        "tcp_timeouts": counters.tcp_timeouts,
        "entries": {name: len(zone.index) for name, zone in zones.items()},
        "serials": {name: zone.serial for name, zone in zones.items()},
        "position": position,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss": resident_bytes(),
        "started": STARTED,
        "transfers": dns.transfer_stats.snapshot(),
        "tsig": tsig_snapshot(dns.responder.tsig),
    }


def dns_families(snapshots: Mapping[str, Mapping[str, Any]]) -> list[Family]:
    """Families for every process's snapshot, labelled ``worker`` ("0" is the first)."""
    queries = Family(
        "rbl_dns_responses_total",
        "counter",
        "DNS responses sent, by zone (empty: outside every zone) and response code.",
    )
    packets = Family(
        "rbl_dns_queries_total", "counter", "DNS queries received, by transport (udp, tcp)."
    )
    dropped = Family(
        "rbl_dns_dropped_total",
        "counter",
        "Queries not answered: rate_limited (RRL) or error (send failures, bugs).",
    )
    slipped = Family(
        "rbl_dns_slipped_total",
        "counter",
        "Rate-limited queries answered with an empty truncated reply (TC=1) instead.",
    )
    tcp_refused = Family(
        "rbl_dns_tcp_refused_total", "counter", "TCP connections closed at the connection limits."
    )
    tcp_timeouts = Family(
        "rbl_dns_tcp_timeouts_total", "counter", "TCP connections closed for being idle."
    )
    entries = Family(
        "rbl_index_entries",
        "gauge",
        "Entries in the in-memory DNS index (listings, exclusions and test points).",
    )
    serials = Family("rbl_zone_serial", "gauge", "SOA serial each process answers with.")
    position = Family(
        "rbl_change_log_position", "gauge", "Last change-log id applied to the index."
    )
    cpu = Family("process_cpu_seconds_total", "counter", "User and system CPU time.")
    rss = Family("process_resident_memory_bytes", "gauge", "Resident memory size.")
    started = Family("process_start_time_seconds", "gauge", "Start time, seconds since the epoch.")
    for worker, snap in snapshots.items():
        for zone, rcode, count in snap.get("queries", ()):
            queries.add(count, worker=worker, zone=zone, rcode=rcode)
        packets.add(snap["udp"], worker=worker, transport="udp")
        packets.add(snap["tcp"], worker=worker, transport="tcp")
        dropped.add(snap["rate_limited"], worker=worker, reason="rate_limited")
        dropped.add(snap["errors"], worker=worker, reason="error")
        slipped.add(snap["slipped"], worker=worker)
        tcp_refused.add(snap["tcp_refused"], worker=worker)
        tcp_timeouts.add(snap["tcp_timeouts"], worker=worker)
        for zone, count in snap["entries"].items():
            entries.add(count, worker=worker, zone=zone)
        for zone, serial in snap["serials"].items():
            serials.add(serial, worker=worker, zone=zone)
        position.add(snap["position"], worker=worker)
        cpu.add(snap["cpu"], worker=worker)
        rss.add(snap["rss"], worker=worker)
        started.add(snap["started"], worker=worker)
    return [
        queries,
        packets,
        dropped,
        slipped,
        tcp_refused,
        tcp_timeouts,
        entries,
        serials,
        position,
        cpu,
        rss,
        started,
        *transfer_families(snapshots),
        *tsig_families(snapshots),
    ]


def store_families(
    stats: StoreStats | None,
    now: datetime,
    backlog: Callable[[str, str, int], int | None],
) -> list[Family]:
    """Listings, stored hits, ingest lag and backlog; only ``rbl_database_up 0`` without stats.

    ``backlog(name, identity, offset)`` gives the unread bytes of an ingested
    file, or None when this machine cannot tell (not here, or not readable).
    """
    up = Family("rbl_database_up", "gauge", "1 when the last statistics query of the store worked.")
    up.add(0 if stats is None else 1)
    if stats is None:
        return [up]
    listings = Family("rbl_listings", "gauge", "Listings in the store, by zone and state.")
    for zone, state, count in stats.listings:
        listings.add(count, zone=zone, state=state)
    hits = Family("rbl_trap_hits", "gauge", "Trap hits stored as evidence, by feed.")
    newest = Family(
        "rbl_trap_hit_newest_timestamp_seconds", "gauge", "Time of the newest stored hit, by feed."
    )
    lag = Family(
        "rbl_ingest_lag_seconds",
        "gauge",
        "Seconds since the newest stored hit of each feed: grows when a feed stalls.",
    )
    for feed, count, at in stats.hits:
        hits.add(count, feed=feed)
        if at is not None:
            newest.add(at.timestamp(), feed=feed)
            lag.add(max(0.0, (now - at).total_seconds()), feed=feed)
    offsets = Family(
        "rbl_ingest_offset_bytes",
        "gauge",
        "Bytes of each ingested log committed to the store, by format.",
    )
    updated = Family(
        "rbl_ingest_updated_timestamp_seconds",
        "gauge",
        "When each ingested log last committed a batch.",
    )
    unread = Family(
        "rbl_ingest_backlog_bytes",
        "gauge",
        "Bytes of each ingested log not yet committed (files readable on this machine).",
    )
    # One position per file and format (one syslog read by a parser per format).
    latest: dict[tuple[str, str], tuple[str, int, datetime | None]] = {}
    for name, identity, fmt, offset, at in stats.sources:
        latest[name, fmt] = (identity, offset, at)  # rows come by id: the newest file wins
    for (name, fmt), (identity, offset, at) in latest.items():
        offsets.add(offset, source=name, format=fmt)
        if at is not None:
            updated.add(at.timestamp(), source=name, format=fmt)
        behind = backlog(name, identity, offset)
        if behind is not None:
            unread.add(behind, source=name, format=fmt)
    kept = Family(
        "rbl_quarantine_lines",
        "gauge",
        "Lines and live-feed hits set aside because they could not be parsed or stored, "
        "by source and state (new: waiting for a fix).",
    )
    for source, state, count in stats.quarantine:
        kept.add(count, source=source, state=state)
    return [up, listings, hits, newest, lag, offsets, updated, unread, kept]


def single(name: str, kind: str, text: str, value: float) -> Family:
    """A family of one unlabelled sample."""
    family = Family(name, kind, text)
    family.add(value)
    return family


def policy_families(factory: PolicyServerFactory, recorder: HitRecorder) -> list[Family]:
    """The live policy feed: requests answered, hits, deferrals and the write queue."""
    families = [
        single(name, "counter", text, value)
        for name, value, text in (
            ("rbl_policy_requests_total", factory.requests, "Policy requests answered."),
            ("rbl_policy_hits_total", factory.hits, "Policy requests that were trap hits."),
            (
                "rbl_policy_malformed_total",
                factory.malformed,
                "RCPT requests without a usable client.",
            ),
            (
                "rbl_policy_errors_total",
                factory.errors,
                "Requests whose trap check or recording failed.",
            ),
            (
                "rbl_policy_rejected_total",
                factory.rejected,
                "RCPT requests from listed clients answered with a reject (reject_listed).",
            ),
            (
                "rbl_policy_deferred_total",
                factory.deferred,
                "Hits answered DEFER_IF_PERMIT (store busy).",
            ),
            (
                "rbl_policy_refused_unallowed_total",
                factory.refused_unallowed,
                "Connections closed at once: client not in [feeds.policy] allow.",
            ),
            (
                "rbl_policy_refused_busy_total",
                factory.refused_busy,
                "Connections closed at once: over max_connections or max_per_client.",
            ),
        )
    ]
    return [
        *families,
        single(
            "rbl_recorder_written_total",
            "counter",
            "Live-feed hits written to the store.",
            recorder.written,
        ),
        single(
            "rbl_recorder_queued", "gauge", "Live-feed hits waiting to be written.", recorder.queued
        ),
        single(
            "rbl_recorder_failures",
            "gauge",
            "Consecutive failed writes (0 when the store works).",
            recorder.failures,
        ),
        single(
            "rbl_recorder_set_aside_total",
            "counter",
            "Live-feed hits the store refused for good (logged whole, answered 4xx).",
            recorder.set_aside,
        ),
        single(
            "rbl_recorder_quarantined_total",
            "counter",
            "Live-feed hits set aside and kept in the store's quarantine.",
            recorder.quarantined,
        ),
        single(
            "rbl_policy_visibility_waits_total",
            "counter",
            "Trap hits whose answer waited for their new listing to be in every DNS process.",
            recorder.waited,
        ),
        single(
            "rbl_policy_visibility_timeouts_total",
            "counter",
            "Of those, hits answered at commit_timeout before every DNS process showed it.",
            recorder.not_visible,
        ),
        single(
            "rbl_policy_visibility_wait_seconds_total",
            "counter",
            "Time those hits waited between commit and visible in DNS, in all.",
            recorder.visible_seconds,
        ),
    ]


def dump_families(dumps: DumpRuns | None, directory: Path | None, now: float) -> list[Family]:
    """Dump runs and the age of the files mirrors see (from SHA256SUMS, written last)."""
    families = []
    if dumps is not None:
        families += [
            single("rbl_dump_runs_total", "counter", "Dumps written by this process.", dumps.runs),
            single("rbl_dump_failures_total", "counter", "Dumps that failed.", dumps.failures),
        ]
        report = dumps.last_report
        if report is not None:
            families += [
                single(
                    "rbl_dump_duration_seconds",
                    "gauge",
                    "How long the last dump took.",
                    report.seconds,
                ),
                single(
                    "rbl_dump_bytes",
                    "gauge",
                    "Bytes of files the last dump wrote.",
                    report.total_bytes,
                ),
            ]
    if directory is not None:
        try:
            written = (directory / "SHA256SUMS").stat().st_mtime
        except OSError:
            return families
        families += [
            single(
                "rbl_dump_age_seconds",
                "gauge",
                "Seconds since the published dump was completed.",
                max(0.0, now - written),
            ),
            single(
                "rbl_dump_timestamp_seconds",
                "gauge",
                "When the published dump was completed.",
                written,
            ),
        ]
    return families


def info_families(role: str) -> list[Family]:
    info = Family("rbl_build_info", "gauge", "Version and role of this rbl process.")
    info.add(1, version=__version__, role=role)
    return [info]


def file_backlog(name: str, identity: str, offset: int) -> int | None:
    """Unread bytes of ``name`` if it is the file ``identity`` names, else its size."""
    if name == "-":
        return None
    try:
        with open(name, "rb") as handle:
            from rbl.feeds.logfile import file_identity  # a writer process: SQLAlchemy is loaded

            size = os.fstat(handle.fileno()).st_size
            if file_identity(handle) != identity:
                return size  # rotated: the whole new file is still to read
    except OSError:
        return None
    return max(0, size - offset)
