"""Write every zone as flat files for mirrors: plain lists, rbldnsd data, zone files.

One call of ``write_dumps`` writes a *generation* into ``DIRECTORY``::

    DIRECTORY/<zone>/<zone>.txt          plain list (OpenBSD spamd-setup: IPv4; RHSBL: names)
    DIRECTORY/<zone>/<zone>.ipv6.txt     plain list of the IPv6 listings (IP zones)
    DIRECTORY/<zone>/<zone>.ip4set       rbldnsd ip4set data (IP zones)
    DIRECTORY/<zone>/<zone>.ip6trie      rbldnsd ip6trie data (IP zones)
    DIRECTORY/<zone>/<zone>.dnset        rbldnsd dnset data (domain zones)
    DIRECTORY/<zone>/<zone>.zone         RFC 1035 master file
    ... and a ``.gz`` of each
    DIRECTORY/summary.json, summary.csv  counts per zone (by code, by prefix length); no keys
    DIRECTORY/SHA256SUMS                 ``sha256sum -c`` input for every file above

The pieces: the formats are plug-ins (rbl.dumps.formats, one module each),
the files are published atomically (rbl.dumps.publish: temporary files,
fsync, renames, a journal for crashes, one dump at a time per directory),
the counts and checksums come from rbl.dumps.summary. This module ties them
together: each zone's view is loaded the way DNS loads it (the store's
snapshot rows through rbl.zonedata.snapshot into an rbl.index ZoneIndex),
so the zone files hold the records a zone transfer sends
(rbl.zonedata.records), and every format writes from one walk of that view.

Summaries hold counts only: no listed keys, no evidence, no trap addresses
(this never reads the hits table). Every TXT text (the zone's template or a
listing's own) passes the trap filter (``rbl.policy.trapfilter``, built from
the store's trap list at the start of each dump): a trap address or
whole-domain trap an operator wrote into one becomes ``[redacted]``. Imports
neither Twisted nor SQLAlchemy: rows come from ``rbl.store.reader.ListingReader``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Final

from rbl.config import Settings, ZoneSettings
from rbl.dumps.formats.base import Entry, Format, ZoneDump, formats_for, zone_files
from rbl.dumps.publish import Generation, Sink, finish_interrupted_commit, locked
from rbl.dumps.publish import remove_stale_temporaries as remove_stale
from rbl.dumps.summary import (
    Tally,
    ZoneSummary,
    previous_summaries,
    previous_sums,
    write_summaries,
    write_sums,
)
from rbl.index.tables import ZoneIndex
from rbl.model.keys import ZoneKind
from rbl.policy.trapfilter import TrapFilter
from rbl.store.reader import ListingReader
from rbl.zonedata.snapshot import AllowRow, IpCounts, RowValues, load_rows
from rbl.zonedata.view import ZoneView

DEFAULT_GZIP_LEVEL: Final = 6
_FLUSH_ROWS: Final = 8192


@dataclass(frozen=True, slots=True)
class DumpReport:
    """What one ``write_dumps`` wrote: the zones' summaries and every file's size."""

    directory: Path
    generated: datetime
    seconds: float
    zones: Sequence[ZoneSummary]
    files: dict[str, int] = field(default_factory=dict)  # relative path -> bytes

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())


def write_dumps(
    settings: Settings,
    reader: ListingReader,
    directory: Path,
    now: datetime,
    *,
    zones: Sequence[str] | None = None,
    gzip_level: int = DEFAULT_GZIP_LEVEL,
) -> DumpReport:
    """Write one generation of every format for ``zones`` (default all); see the module doc."""
    started = time.monotonic()
    now = now.astimezone(UTC).replace(microsecond=0)
    chosen = [settings.zone(name) for name in zones] if zones else list(settings.zones)
    directory = Path(directory)
    with locked(directory):
        finish_interrupted_commit(directory)
        remove_stale(directory, [zone.name for zone in settings.zones])
        # before the rows, as the DNS snapshot does
        _last, positions = reader.zone_positions([zone.name for zone in chosen])
        allow = list(reader.iter_allowlist())
        traps = reader.trap_filter()
        generation = Generation(directory, gzip_level)
        try:
            summaries = []
            for zone in chosen:
                serial = positions.get(zone.name, 0) % (1 << 32) or 1
                tally = Tally(zone)
                view = _load_view(zone, reader, tally, allow, traps)
                _write_zone(generation, ZoneDump(zone, view, serial, now))
                summaries.append(tally.summary(serial, now, zone_files(zone)))
            generation.wait()
            kept = previous_summaries(directory, settings, {z.name for z in chosen})
            write_summaries(generation, sorted([*kept, *summaries], key=lambda s: s.zone), now)
            write_sums(generation, previous_sums(directory, {s.zone for s in kept}))
            generation.commit()
        except BaseException:
            generation.abort()
            raise
    sizes = {rel: size for rel, (_digest, size) in generation.digests.items()}
    return DumpReport(directory, now, time.monotonic() - started, tuple(summaries), sizes)


def _load_view(
    zone: ZoneSettings,
    reader: ListingReader,
    tally: Tally,
    allow: list[AllowRow],
    traps: TrapFilter,
) -> ZoneView:
    """The zone's index loaded from the store as ``rbl serve`` loads it, counted on the way."""
    index = ZoneIndex(zone.kind)
    names = [zone.name]
    ip = zone.kind is ZoneKind.IP
    ip_rows = reader.iter_ip_rows(names) if ip else ()
    domain_rows = tally.domain_rows(() if ip else reader.iter_domain_rows(names))
    counts: IpCounts = {}
    allow_rows = tally.allow_rows(allow)
    load_rows({zone.name: index}, ip_rows, domain_rows, allow_rows, RowValues(traps), counts)
    tally.ip_loaded(counts, index.values)
    return ZoneView.of_index(zone, index, traps)


def _write_zone(generation: Generation, dump: ZoneDump) -> None:
    """Every format's file of one zone, from one walk of its view."""
    base = f"{dump.zone.name}/{dump.zone.name}"
    files = [(each, generation.open(base + each.suffix)) for each in formats_for(dump.zone)]
    for each, sink in files:
        sink.add(each.header(dump))
    if dump.view.is_ip:
        for family in (4, 6):
            chosen = [(each, sink) for each, sink in files if each.family in (None, family)]
            _write_entries(dump, chosen, dump.view.ip_entries(family), files)
    else:
        _write_entries(dump, files, dump.domain_entries, files)
    for each, sink in files:
        sink.add(each.footer(dump))
        generation.close(sink)


def _write_entries(
    dump: ZoneDump,
    chosen: list[tuple[Format, Sink]],
    entries: Iterable[Entry],
    files: list[tuple[Format, Sink]],
) -> None:
    """Entries a chunk at a time: every chosen format writes a chunk in one call, then
    every file flushes (the entries come lazily, so memory holds one chunk)."""
    walk = iter(entries)
    while chunk := list(islice(walk, _FLUSH_ROWS)):
        for each, sink in chosen:
            sink.add(each.entries(dump, chunk))
        for _each, sink in files:
            sink.flush()
