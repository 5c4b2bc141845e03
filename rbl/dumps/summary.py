"""What a dump says about itself: per-zone counts (summary.json, summary.csv) and
SHA256SUMS. Counts only: no listed keys, no evidence, no trap addresses.

``Tally`` counts the store's rows as they go into the zone's index (listings
by code and prefix length, allowlist entries; IP listings as ``load_rows``
counted them per value), the way the dump always counted them: every active
listing except those touching an RFC 5782 test point. ``rbl dump --zone``
keeps the other zones' summaries and checksums from the previous generation.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from rbl.config import Settings, ZoneSettings
from rbl.index.tables import Value
from rbl.model.codes import DEFAULT_CODE
from rbl.model.keys import ZoneKind, test_point_conflict
from rbl.zonedata.snapshot import (
    AllowRow,
    DomainRow,
    IpCounts,
    domain_key,
    is_test_point,
)

if TYPE_CHECKING:
    from rbl.dumps.publish import Generation

SUMS_NAME: Final = "SHA256SUMS"
SUMMARY_JSON: Final = "summary.json"
SUMMARY_CSV: Final = "summary.csv"


def stamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class ZoneSummary:
    """Counts for one zone: what mirrors may publish. No keys, no evidence."""

    zone: str
    kind: str
    serial: int
    generated: str
    listings: int
    exclusions: int
    by_code: dict[str, int]
    by_prefix: dict[str, int]
    files: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        document: dict[str, object] = {each.name: getattr(self, each.name) for each in fields(self)}
        document["files"] = list(self.files)
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> ZoneSummary:
        """A summary as ``as_json`` wrote it (KeyError, TypeError, ValueError if not)."""
        return cls(**{each.name: _READ[each.name](document[each.name]) for each in fields(cls)})


def _same(value: Any) -> Any:
    return value


_READ: Final[dict[str, Callable[[Any], Any]]] = {
    "zone": _same,
    "kind": _same,
    "generated": _same,
    "serial": int,
    "listings": int,
    "exclusions": int,
    "by_code": dict,
    "by_prefix": dict,
    "files": tuple,
}


class Tally:
    """Counts one zone's rows while they pass through to its index."""

    def __init__(self, zone: ZoneSettings) -> None:
        self.zone = zone
        self.exclusions = 0
        # (codes, family or 0 for a domain, prefix length or 1 for *.name): rows
        self._counts: dict[tuple[str | None, int, int], int] = {}

    def ip_loaded(self, counts: IpCounts, values: Sequence[Value | None]) -> None:
        """Count the IP rows ``load_rows`` loaded (test points are never loaded)."""
        for (_zone, family, prefixlen), per_value in counts.items():
            for vid, count in per_value.items():
                value = values[vid]
                codes = ",".join(value.codes) if value is not None else None
                self._count(codes, (family, prefixlen), count)

    def domain_rows(self, rows: Iterable[DomainRow]) -> Iterator[DomainRow]:
        for row in rows:
            key = domain_key(row[1])
            if not test_point_conflict(key):
                self._count(row[2], (0, int(key.subdomains)))
            yield row

    def allow_rows(self, rows: Iterable[AllowRow]) -> Iterator[AllowRow]:
        ip = self.zone.kind is ZoneKind.IP
        for row in rows:
            _key, family, prefixlen, network = row
            if not ip:
                self.exclusions += family == 0
            elif family in (4, 6) and network is not None:
                self.exclusions += not is_test_point(
                    family, int.from_bytes(network, "big"), prefixlen
                )
            yield row

    def _count(self, codes: str | None, prefix: tuple[int, int], count: int = 1) -> None:
        key = (codes, *prefix)
        self._counts[key] = self._counts.get(key, 0) + count

    def summary(self, serial: int, now: datetime, files: tuple[str, ...]) -> ZoneSummary:
        by_code: dict[str, int] = {}
        prefixes: dict[tuple[int, int], int] = {}
        for (codes, family, prefixlen), count in self._counts.items():
            for code in (codes or DEFAULT_CODE).split(","):
                by_code[code] = by_code.get(code, 0) + count
            prefixes[(family, prefixlen)] = prefixes.get((family, prefixlen), 0) + count
        if self.zone.kind is ZoneKind.IP:
            by_prefix = {
                f"ipv{family}/{prefixlen}": count
                for (family, prefixlen), count in sorted(prefixes.items())
            }
        else:
            by_prefix = {"exact": prefixes.get((0, 0), 0), "subdomains": prefixes.get((0, 1), 0)}
        return ZoneSummary(
            zone=self.zone.name,
            kind=self.zone.kind.value,
            serial=serial,
            generated=stamp(now),
            listings=sum(self._counts.values()),
            exclusions=self.exclusions,
            by_code=dict(sorted(by_code.items())),
            by_prefix=by_prefix,
            files=files,
        )


def write_summaries(
    generation: Generation, summaries: Sequence[ZoneSummary], now: datetime
) -> None:
    document = {"generated": stamp(now), "zones": [s.as_json() for s in summaries]}
    generation.write_bytes(
        SUMMARY_JSON, (json.dumps(document, indent=2, sort_keys=False) + "\n").encode()
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["zone", "kind", "serial", "generated", "metric", "item", "count"])
    for s in summaries:
        head = [s.zone, s.kind, s.serial, s.generated]
        writer.writerow([*head, "listings", "", s.listings])
        writer.writerow([*head, "exclusions", "", s.exclusions])
        for code, count in s.by_code.items():
            writer.writerow([*head, "code", code, count])
        for prefix, count in s.by_prefix.items():
            writer.writerow([*head, "prefix", prefix, count])
    generation.write_bytes(SUMMARY_CSV, out.getvalue().encode())


def write_sums(generation: Generation, kept: dict[str, str]) -> None:
    sums = dict(kept)
    sums.update({rel: digest for rel, (digest, _size) in generation.digests.items()})
    text = "".join(f"{digest}  {rel}\n" for rel, digest in sorted(sums.items()))
    generation.write_bytes(SUMS_NAME, text.encode())


def previous_summaries(directory: Path, settings: Settings, written: set[str]) -> list[ZoneSummary]:
    """Summaries of configured zones this run did not write (``rbl dump --zone``)."""
    configured = {zone.name for zone in settings.zones} - written
    if not configured:
        return []
    try:
        document = json.loads((directory / SUMMARY_JSON).read_text())
        zones = document["zones"]
        return [ZoneSummary.from_json(z) for z in zones if z.get("zone") in configured]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def previous_sums(directory: Path, zones: set[str]) -> dict[str, str]:
    """SHA256SUMS lines of the zones kept from an earlier run."""
    if not zones:
        return {}
    try:
        text = (directory / SUMS_NAME).read_text()
    except OSError:
        return {}
    kept = {}
    for line in text.splitlines():
        digest, _sep, rel = line.partition("  ")
        if rel.split("/", 1)[0] in zones and (directory / rel).is_file():
            kept[rel] = digest
    return kept
