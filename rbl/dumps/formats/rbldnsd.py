"""rbldnsd data: ip4set (IPv4), ip6trie (IPv6) and dnset (domains), with ``!`` exclusions.

What they answer is what ``rbl serve`` answers (checked against a real
rbldnsd in tests/dumps/test_rbldnsd_fidelity.py):

* the RFC 5782 test points are included (they are in the zone's index);
* allowlist entries are exclusions: ``!`` lines. rbldnsd's ip4set stores
  entries per octet level (/32, /24, /16, /8) and answers every value of the
  most specific level, exclusions first; rbl answers the longest prefix. So
  where two nested entries fall on the same octet level (a /25 exclusion
  around a /26 listing, a /20 around a /22 with other codes), the outer one
  is written as the CIDR pieces around the inner one;
* IPv6 goes to ip6trie, not ip6tset: ip6tset holds only /64 listings with one
  value, and trap listings are single /128 addresses. ip6trie holds one value
  per prefix, so a multi-code IPv6 listing answers its first code there;
* TXT templates: rbl's ``{key}`` (and the key inside ``{url}``) becomes
  rbldnsd's ``$``, a literal ``$`` becomes ``$$``. In dnset, ``$`` is the
  listed name, so under a ``*.name`` listing rbldnsd's text names the listed
  domain where rbl names the queried one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

from rbl.config import ZoneSettings
from rbl.dumps.formats.base import Entry, Format, ZoneDump
from rbl.dumps.summary import stamp
from rbl.index.tables import EXCLUDED
from rbl.model.keys import ZoneKind
from rbl.zonedata.names import ip_text
from rbl.zonedata.view import IpEntry

CLOCK_SKEW: Final = 600  # seconds $TIMESTAMP is early: mirrors' clocks may lag


def formats(zone: ZoneSettings) -> Sequence[Format]:
    if zone.kind is ZoneKind.IP:
        return (Rbldnsd("ip4set", 4), Rbldnsd("ip6trie", 6))
    return (Rbldnsd("dnset", None),)


def rbldnsd_text(text: str) -> str:
    """A literal part of a TXT template for rbldnsd: ``$`` doubled, no line breaks."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return cleaned.replace("$", "$$")


@dataclass(slots=True)
class Rbldnsd:
    kind: str  # rbldnsd's dataset type, also the file suffix
    family: int | None
    _tails: dict[int, list[str]] = field(default_factory=dict)

    @property
    def suffix(self) -> str:
        return f".{self.kind}"

    def header(self, dump: ZoneDump) -> str:
        zone, serial, soa = dump.zone, dump.serial, dump.zone.soa
        early = dump.now - timedelta(seconds=CLOCK_SKEW)
        default = dump.default_value
        template = "$".join(rbldnsd_text(part) for part in dump.texts.parts_of(default))
        return (
            f"# rbl dump of {zone.name} as rbldnsd {self.kind} data, generated "
            f"{stamp(dump.now)}, serial {serial}\n"
            f"# load with: rbldnsd ... {zone.name}:{self.kind}:{zone.name}.{self.kind}\n"
            f"$SOA {zone.ttl} {soa.mname} {soa.rname} {serial} {soa.refresh} {soa.retry} "
            f"{soa.expire} {soa.minimum}\n"
            f"$NS {zone.ttl} {' '.join(zone.ns)}\n"
            f"$TTL {zone.ttl}\n"
            # rbldnsd refuses data stamped in its future, so the stamp is a little early
            # for mirrors whose clocks lag; they stop answering SOA expire seconds after
            # the dump was generated, as a DNS secondary would.
            f"$TIMESTAMP {early.strftime('%Y:%m:%d:%H:%M:%S')} +{soa.expire + CLOCK_SKEW}\n"
            f":{default.codes[0]}:{template}\n"
        )

    def _keys(self, entry: Entry) -> list[str]:
        """rbldnsd's ip4set answers the most specific octet level, so nested entries on
        one level are written as pieces; ip6trie is longest-prefix already."""
        if isinstance(entry, IpEntry) and entry.children and entry.family == 4:
            level = -(-entry.prefixlen // 8)
            same = [(n, p) for n, p in entry.children if -(-p // 8) == level]
            if same:
                return [ip_text(4, n, p) for n, p in entry.pieces(same)]
        return [entry.key]

    def _tail(self, dump: ZoneDump, vid: int) -> list[str]:
        """What follows the key: one line per code (rbldnsd answers them all)."""
        found = self._tails.get(vid)
        if found is None:
            template = "$".join(rbldnsd_text(part) for part in dump.texts.parts(vid))
            codes = dump.texts.value(vid).codes
            found = [f" :{code}:{template}" for code in codes]
            if vid == dump.default_vid:
                found[0] = ""
            self._tails[vid] = found
        return found

    def entries(self, dump: ZoneDump, chunk: Sequence[Entry]) -> str:
        tails = self._tails
        lines = []
        for entry in chunk:
            vid = entry.vid
            if vid == EXCLUDED:
                lines += [f"!{key}" for key in self._keys(entry)]
                continue
            tail = tails.get(vid) or self._tail(dump, vid)
            if len(tail) == 1 and not (isinstance(entry, IpEntry) and entry.children):
                lines.append(entry.key + tail[0])  # the common case: one key, one code
            else:
                lines += [key + each for key in self._keys(entry) for each in tail]
        return "\n".join(lines) + "\n" if lines else ""

    def footer(self, dump: ZoneDump) -> str:
        return ""
