"""A zone's DNS records, generated once for every renderer. Pure.

The one description of a zone as DNS records below its apex (not the SOA
and NS): AXFR/IXFR render them as wire messages (rbl.dnsserver.transfer),
the zone-file dump as master-file text (rbl.dumps.formats.zonefile). What a
secondary or a mirror loads answers what rbl answers:

* a listed IPv4 network becomes octet-boundary wildcards (``*.2.0.192`` for
  192.0.2.0/24), other prefix lengths the covering set of next-boundary
  names; IPv6 on nibble boundaries; single addresses are plain names;
* an exclusion (allowlisted address) or a more specific entry inside a listed
  network is cut out: the network is written as the CIDR pieces around it;
* an exact domain is a name, ``*.domain`` a wildcard; nodes below a listed
  wildcard are repaired (rbl.zonedata.names.wildcard_shadows): an
  allowlisted one holds only an empty record of a private-use type
  (``EXCEPTED``), so A and TXT are NODATA as rbl answers;
* the RFC 5782 test points are in the index and hence in the records.

A zone file cannot substitute per query, so a wildcard's TXT names the listing
(``192.0.2.0/24``, ``*.example.com``) where rbl names the queried key; A
records, NXDOMAIN and NODATA agree. Partial reversed names below a wildcard
(``5.0.10`` under 10.0.0.0/16) match the wildcard in DNS where rbl says NODATA;
where IPv4 and IPv6 names of one zone collide (an IPv6 /16 wildcard below an
IPv4 name), DNS wildcard rules can differ from rbl, which reads both.

Records are values (``Record``, a named tuple): equal records compare equal,
so two generations of a zone can be compared record by record (IXFR).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final, NamedTuple

from rbl.index.tables import EXCLUDED, Value
from rbl.zonedata.names import OCTET_TEXT, ip_text, wildcard_shadows, zone_names
from rbl.zonedata.view import DomainEntry, IpEntry, ZoneView

A: Final = "A"
TXT: Final = "TXT"
# An allowlisted name below a listed wildcard must exist, or the wildcard would
# answer for it; an empty non-terminal cannot be made without publishing a name
# below it. So it holds one record that says nothing: the first private-use type
# (RFC 6895; BIND's own signing records use 65534) with empty RDATA (RFC 3597
# syntax in master files). A, TXT and every type a client asks are NODATA. It was
# HINFO "rbl" "allowlisted: not listed", which published the allowlist's reason.
EXCEPTED: Final = "TYPE65280"
EXCEPTED_TYPE: Final = 65280
_MARK: Final = "\x00"  # stands for the key while a template is formatted and redacted


class Record(NamedTuple):
    """One record: owner relative to the apex, type (A, TXT, EXCEPTED), its value (the
    address, the text, "" for EXCEPTED) and the listing key it was made for."""

    owner: str
    rtype: str
    value: str
    listing: str


class ValueTexts:
    """Codes and TXT text per value id of a view, each template formatted once.

    A TXT text is the listing's template (or the zone's) with the key put in,
    passed through the view's trap filter: ``key.join(parts(vid))``.
    """

    def __init__(self, view: ZoneView) -> None:
        self.view = view
        self._parts: dict[int, list[str]] = {}

    def parts_of(self, value: Value) -> list[str]:
        """The text of ``value`` split where the key goes."""
        text = self.view.settings.txt_for(_MARK, value.txt)
        return self.view.traps.redact(text).split(_MARK)

    def parts(self, vid: int) -> list[str]:
        found = self._parts.get(vid)
        if found is None:
            found = self._parts[vid] = self.parts_of(self.value(vid))
        return found

    def value(self, vid: int) -> Value:
        value = self.view.values[vid]
        assert value is not None, "value id 0 is an exclusion"
        return value

    def text(self, vid: int, key: str) -> str:
        return key.join(self.parts(vid))


def _record(fields: tuple[str, str, str, str]) -> Record:
    """``Record(*fields)`` without NamedTuple's Python-level ``__new__`` (a dump makes
    two or more a listing)."""
    return tuple.__new__(Record, fields)


class Records:
    """The records of one view, entry by entry (for renderers that also write other
    formats from the same walk) or all at once (``all``)."""

    def __init__(self, view: ZoneView) -> None:
        self.view = view
        self.texts = ValueTexts(view)
        self._made: dict[int, tuple[tuple[str, ...], list[str]]] = {}  # vid: codes, TXT parts

    def all(self) -> Iterator[Record]:
        """Every record below the apex, in the order the zone-file dump writes them."""
        view = self.view
        if view.is_ip:
            for family in (4, 6):
                for entry in view.ip_entries(family):
                    yield from self.ip_entry(entry)
        else:
            for domain in view.domain_entries():
                yield from self.domain_entry(domain)
            yield from self.shadows()

    def made_of(self, vid: int) -> tuple[tuple[str, ...], list[str]]:
        """A value's codes and TXT parts (``key.join(parts)`` is the text), made once."""
        made = self._made.get(vid)
        if made is None:
            made = self._made[vid] = (self.texts.value(vid).codes, self.texts.parts(vid))
        return made

    def value(self, owner: str, vid: int, key: str, listing: str) -> list[Record]:
        """A records for every code, then TXT naming ``key``."""
        codes, parts = self._made.get(vid) or self.made_of(vid)
        txt = _record((owner, TXT, key.join(parts), listing))
        if len(codes) == 1:
            return [_record((owner, A, codes[0], listing)), txt]
        records = [_record((owner, A, code, listing)) for code in codes]
        records.append(txt)
        return records

    def ip_entry(self, entry: IpEntry) -> list[Record]:
        """A listed network's names, around the entries inside it (cut out as holes)."""
        return self.of_entries((entry,))

    def of_entries(self, entries: Iterable[IpEntry | DomainEntry]) -> list[Record]:
        """The records of consecutive entries, in order, in one call: a dump renders a
        million entries a chunk at a time, and a call per entry cost it seconds."""
        records: list[Record] = []
        value = self.value
        for entry in entries:
            vid = entry.vid
            if vid == EXCLUDED:
                continue
            if isinstance(entry, DomainEntry):
                key = entry.key
                records += value(key, vid, key, key)
                continue
            family = entry.family
            bits = 32 if family == 4 else 128
            if entry.prefixlen == bits:  # the common case: one address
                records += value(owner_name(family, entry.network), vid, entry.key, entry.key)
            else:
                records += self._network(entry, bits)
        return records

    def _network(self, entry: IpEntry, bits: int) -> Iterator[Record]:
        family, listing = entry.family, entry.key
        for n, p in entry.pieces():
            for name, wildcard, address in zone_names(family, n, p):
                key = listing if wildcard else ip_text(family, address, bits)
                yield from self.value(name, entry.vid, key, listing)

    def domain_entry(self, entry: DomainEntry) -> list[Record]:
        return self.of_entries((entry,))

    def shadows(self) -> Iterator[Record]:
        """What a DNS wildcard does differently from rbl's ``*.name`` (rbl.zonedata.names).

        Any owner below a listed ``*.A`` makes its subtree exist, so each such node
        gets A's records itself (EXCEPTED only if allowlisted) and ``*.node`` repeats
        them, unless the node has entries of its own.
        """
        exact, subtree = self.view.exact, self.view.subtree
        if not any(vid != EXCLUDED for vid in subtree.values()):
            return
        for name, ancestor, vid in wildcard_shadows(exact, subtree):
            listing = f"*.{ancestor}"
            own = exact.get(name)
            if own == EXCLUDED:
                yield Record(name, EXCEPTED, "", listing)
            elif own is None:
                yield from self.value(name, vid, name, listing)
            if name not in subtree:
                yield from self.value(f"*.{name}", vid, listing, listing)


def owner_name(family: int, address: int) -> str:
    """The owner name of one address (relative to the apex)."""
    if family == 4:
        return (
            f"{OCTET_TEXT[address & 255]}.{OCTET_TEXT[address >> 8 & 255]}."
            f"{OCTET_TEXT[address >> 16 & 255]}.{OCTET_TEXT[address >> 24]}"
        )
    return ".".join(reversed(f"{address:032x}"))


def zone_records(view: ZoneView) -> Iterator[Record]:
    """Every record below the apex (not the SOA and NS), generated from the view."""
    return Records(view).all()
