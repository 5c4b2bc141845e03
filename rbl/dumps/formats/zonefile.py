"""RFC 1035 master files: the text rendering of the zone's records (ZONE.zone).

The records are those AXFR sends (``rbl.zonedata.records``, which says how
listings become names and wildcards); this module only writes them as text,
after the SOA and NS. Consecutive records of one owner made for one listing
share its line prefix: the owner is written once. A single address (most of
a trap zone's entries) is written straight from its value's codes and text,
as ``render`` would write its records: the dump writes a million of them,
and tests/zonedata/test_dump_equals_axfr.py holds the two ways equal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from rbl.config import ZoneSettings
from rbl.dumps.formats.base import Entry, Format, ZoneDump
from rbl.dumps.summary import stamp
from rbl.index.tables import EXCLUDED
from rbl.model.keys import MAX_PREFIXLEN
from rbl.zonedata.records import HINFO_CPU, TXT, A, Record, owner_name
from rbl.zonedata.view import IpEntry

# The longest text of an address (IPv6, 39 characters): a TXT that stays one plain
# string with it in every gap does so with any address.
_LONGEST_ADDRESS: Final = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"


def formats(zone: ZoneSettings) -> Sequence[Format]:
    return (ZoneFile(".zone", None),)


def zone_txt(text: str) -> str:
    """TXT RDATA in master-file syntax: quoted character-strings of at most 255 bytes."""
    raw = text.encode("utf-8")
    if not raw:
        return '""'
    strings = []
    for start in range(0, len(raw), 255):
        out = []
        for byte in raw[start : start + 255]:
            if byte in (0x22, 0x5C):
                out.append("\\" + chr(byte))
            elif 0x20 <= byte < 0x7F:
                out.append(chr(byte))
            else:
                out.append(f"\\{byte:03d}")
        strings.append('"' + "".join(out) + '"')
    return " ".join(strings)


def _txt_field(text: str) -> str:
    plain = text.isascii() and text.isprintable() and '"' not in text and "\\" not in text
    if plain and len(text) <= 255:
        return f'"{text}"'  # what zone_txt gives, without the byte loop
    return zone_txt(text)


def render(records: Iterable[Record]) -> str:
    """Records as master-file lines."""
    out = []
    last_owner = last_listing = None
    for owner, rtype, value, listing in records:
        head = "\t" if owner == last_owner and listing == last_listing else owner
        last_owner, last_listing = owner, listing
        if rtype == A:
            out.append(f"{head}\tA\t{value}\n")
        elif rtype == TXT:
            out.append(f"{head}\tTXT\t{_txt_field(value)}\n")
        else:
            out.append(f'{head}\t{rtype}\t"{HINFO_CPU}" "{value}"\n')
    return "".join(out)


@dataclass(slots=True)
class ZoneFile:
    suffix: str
    family: int | None
    # vid: a single address's lines up to its TXT, the TXT's parts, and whether
    # the TXT needs no escaping and fits one string whatever the address is
    _heads: dict[int, tuple[str, list[str], bool]] = field(default_factory=dict)

    def header(self, dump: ZoneDump) -> str:
        zone, soa = dump.zone, dump.zone.soa
        lines = [
            f"; rbl dump of {zone.name} as an RFC 1035 zone, generated {stamp(dump.now)}, "
            f"serial {dump.serial}\n",
            "; wildcards answer with the listing's own key in TXT ({key} cannot vary per query)\n",
            f"$ORIGIN {zone.name}.\n",
            f"$TTL {zone.ttl}\n",
            f"@\tIN\tSOA\t{soa.mname}. {soa.rname}. ( {dump.serial} {soa.refresh} {soa.retry} "
            f"{soa.expire} {soa.minimum} )\n",
        ]
        lines += [f"\tIN\tNS\t{ns}.\n" for ns in zone.ns]
        return "".join(lines)

    def entries(self, dump: ZoneDump, chunk: Sequence[Entry]) -> str:
        records, heads = dump.records, self._heads
        out = []
        for entry in chunk:
            vid = entry.vid
            if vid == EXCLUDED:
                continue
            if isinstance(entry, IpEntry) and entry.prefixlen == MAX_PREFIXLEN[entry.family]:
                head, parts, plain = heads.get(vid) or self._head(dump, vid)
                owner = owner_name(entry.family, entry.network)
                text = entry.key.join(parts)
                if plain:  # an address's text is plain: what _txt_field would give
                    out.append(f'{owner}{head}"{text}"\n')
                else:
                    out.append(f"{owner}{head}{_txt_field(text)}\n")
            else:
                out.append(render(records.of_entries((entry,))))
        return "".join(out)

    def _head(self, dump: ZoneDump, vid: int) -> tuple[str, list[str], bool]:
        """What follows a single address's owner up to its TXT text: ``render``'s lines
        for its A records (owner written once), then the TXT's start; with the TXT's
        parts and whether ``_txt_field`` would only quote it (for the longest address)."""
        codes, parts = dump.records.made_of(vid)
        head = f"\tA\t{codes[0]}\n" + "".join(f"\t\tA\t{code}\n" for code in codes[1:])
        longest = _LONGEST_ADDRESS.join(parts)
        plain = _txt_field(longest) == f'"{longest}"'
        self._heads[vid] = made = (head + "\t\tTXT\t", parts, plain)
        return made

    def footer(self, dump: ZoneDump) -> str:
        return render(dump.records.shadows())
