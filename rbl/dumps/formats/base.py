"""What a dump format is and what it is given: the zone's view, serial and time.

A format writes one file per zone: ``header``, then the entries of the
zone's view (``rbl.zonedata.view``: IP networks in address order, or domain
names sorted; an allowlisted key is an entry with value id ``EXCLUDED``)
a chunk at a time through ``entries``, then ``footer``. Each returns text;
the writer (rbl.dumps.writer) streams it into the file. A chunk, not an
entry, is the unit: a million entries times five formats made one method
call each, and the dump spent a third of its time calling. Formats are
found by ``plugins`` (see the package doc), so the writer knows none of
them by name.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from datetime import datetime
from functools import cache, cached_property
from typing import Protocol

from rbl.config import ZoneSettings
from rbl.index.tables import Value
from rbl.zonedata.records import Records, ValueTexts
from rbl.zonedata.view import DomainEntry, IpEntry, ZoneView

Entry = IpEntry | DomainEntry


class ZoneDump:
    """One zone being dumped: its settings, view, serial and generation time."""

    def __init__(self, zone: ZoneSettings, view: ZoneView, serial: int, now: datetime) -> None:
        self.zone = zone
        self.view = view
        self.serial = serial
        self.now = now
        self.records = Records(view)  # the zone file's records, as AXFR's
        self.texts: ValueTexts = self.records.texts

    @cached_property
    def default_value(self) -> Value:
        """The zone's own answer: its default codes and its TXT template."""
        return Value(tuple(self.zone.default_codes), None)

    @cached_property
    def default_vid(self) -> int | None:
        """The value id of listings that answer just the zone's default, if any do."""
        return self.view.value_id(self.default_value)

    @cached_property
    def test_vid(self) -> int:
        """The RFC 5782 test points' value id: never written to plain lists."""
        return self.view.test_value_id()

    @cached_property
    def domain_entries(self) -> list[DomainEntry]:
        return self.view.domain_entries()


class Format(Protocol):
    """One file per zone; ``family`` 4 or 6 takes only that family's IP entries."""

    @property
    def suffix(self) -> str:
        """The file is ZONE/ZONE<suffix>."""

    @property
    def family(self) -> int | None:
        """4 or 6: only that family's IP entries; None: every entry."""

    def header(self, dump: ZoneDump) -> str: ...

    def entries(self, dump: ZoneDump, chunk: Sequence[Entry]) -> str:
        """The lines of consecutive entries (listings and exclusions, in view order)."""

    def footer(self, dump: ZoneDump) -> str: ...


class FormatModule(Protocol):
    def formats(self, zone: ZoneSettings) -> Sequence[Format]: ...


@cache
def plugins() -> tuple[FormatModule, ...]:
    """Every format module of this package, by name: found once a process (the package's
    files do not change under it), not with a directory scan for every zone dumped."""
    package = importlib.import_module(__package__ or "rbl.dumps.formats")
    names = sorted(info.name for info in pkgutil.iter_modules(package.__path__))
    modules: tuple[FormatModule, ...] = tuple(
        importlib.import_module(f"{package.__name__}.{name}") for name in names if name != "base"
    )
    return modules


def formats_for(zone: ZoneSettings) -> list[Format]:
    """The formats written for ``zone``, in file order."""
    return [each for module in plugins() for each in module.formats(zone)]


def zone_files(zone: ZoneSettings) -> tuple[str, ...]:
    """The uncompressed files of a zone, relative to the dump directory."""
    name = zone.name
    return tuple(f"{name}/{name}{each.suffix}" for each in formats_for(zone))
