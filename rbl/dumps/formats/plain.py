"""Plain lists: one listed address, CIDR network or domain a line, ``#`` comments.

For OpenBSD spamd-setup (IPv4 in ZONE.txt, IPv6 in ZONE.ipv6.txt) and RHSBL
consumers (names in ZONE.txt). Plain lists cannot express exclusions: a
listed network with allowlisted addresses inside is written as the CIDR
pieces that remain listed, so the list is exactly the set of listed
addresses. A domain list names the listed keys; allowlisted names below a
listed ``*.name`` are not expressible there (its header says so). Test
points are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rbl.config import ZoneSettings
from rbl.dumps.formats.base import Entry, Format, ZoneDump
from rbl.dumps.summary import stamp
from rbl.index.tables import EXCLUDED
from rbl.model.keys import ZoneKind
from rbl.zonedata.names import ip_text
from rbl.zonedata.view import IpEntry


def formats(zone: ZoneSettings) -> Sequence[Format]:
    if zone.kind is ZoneKind.IP:
        return (PlainIp(".txt", 4), PlainIp(".ipv6.txt", 6))
    return (PlainDomains(".txt", None),)


@dataclass(frozen=True, slots=True)
class PlainIp:
    suffix: str
    family: int | None

    def header(self, dump: ZoneDump) -> str:
        assert self.family is not None
        count = dump.view.listed_blocks(self.family, (EXCLUDED, dump.test_vid))
        return (
            f"# rbl dump of {dump.zone.name}: IPv{self.family} addresses listed, one address "
            f"or CIDR network a line\n"
            f"# generated {stamp(dump.now)}, serial {dump.serial}, {count} entries\n"
            "# allowlisted addresses inside listed networks are left out: such a network "
            "is written as the pieces that remain listed\n"
        )

    def entries(self, dump: ZoneDump, chunk: Sequence[Entry]) -> str:
        skip = (EXCLUDED, dump.test_vid)
        lines = []
        for entry in chunk:
            if entry.vid in skip:
                continue
            assert isinstance(entry, IpEntry)
            if not entry.children:
                lines.append(entry.key)
            else:  # the exact set of listed addresses: the entry minus its children
                lines += [ip_text(entry.family, n, p) for n, p in entry.pieces()]
        return "\n".join(lines) + "\n" if lines else ""

    def footer(self, dump: ZoneDump) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class PlainDomains:
    suffix: str
    family: int | None

    def header(self, dump: ZoneDump) -> str:
        unlisted = (EXCLUDED, dump.test_vid)
        count = sum(1 for entry in dump.domain_entries if entry.vid not in unlisted)
        return (
            f"# rbl dump of {dump.zone.name}: domains listed, one a line "
            f"(*.name: every name below)\n"
            f"# generated {stamp(dump.now)}, serial {dump.serial}, {count} entries\n"
            "# allowlisted names below a listed *.name cannot be expressed here; "
            "use the .dnset or .zone file\n"
        )

    def entries(self, dump: ZoneDump, chunk: Sequence[Entry]) -> str:
        skip = (EXCLUDED, dump.test_vid)
        lines = [entry.key for entry in chunk if entry.vid not in skip]
        return "\n".join(lines) + "\n" if lines else ""

    def footer(self, dump: ZoneDump) -> str:
        return ""
