"""The zone-file dump and AXFR of one zone hold the same records.

Both render the records of ``rbl.zonedata.records`` (the text renderer of
rbl.dumps.formats.zonefile, the wire renderer of rbl.dnsserver.transfer);
dnspython parses each rendering (the master file with ``dns.zone``, the
transfer messages with ``dns.message``) and the RRs are compared, SOA and NS
included. Once from one in-memory view with every case (wildcards, allowlisted
names and networks under them, IPv6, test points, several codes, own TXT),
once end to end: the dump files of a store against a transfer from a server
that loaded the same store.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import dns.message
import dns.name
import dns.rdatatype
import dns.zone
import pytest

from rbl.config import Settings
from rbl.dnsserver.transfer import axfr_messages, view_of
from rbl.dnsserver.wire import CLASS_IN, QUESTION_TAIL, TYPE_AXFR, encode_name
from rbl.dnsserver.zone import Zone
from rbl.dumps.formats.base import ZoneDump
from rbl.dumps.formats.zonefile import ZoneFile, render
from rbl.dumps.writer import write_dumps
from rbl.index.tables import Value, ZoneIndex, load_entries
from rbl.model.keys import ListingKey, ZoneKind, parse_key
from rbl.server.follower import IndexFollower, build_zones, load_index
from rbl.zonedata.records import HINFO, Record, zone_records
from rbl.zonedata.view import ZoneView
from tests.support.dump_rich import seed_rich
from tests.support.dump_seed import DOMAIN_ZONE, IP_ZONE, NOW, Seeded, make_settings, seed

RR = tuple[str, str, int, str]
"""owner (absolute), type, TTL, rdata text"""

IP_ENTRIES: list[tuple[str, tuple[str, ...] | None, str | None]] = [
    ("192.0.2.1", ("127.0.0.2",), None),
    ("192.0.2.0/24", ("127.0.0.3", "127.0.0.4"), 'net {key} "quoted" caf\u00e9'),
    ("192.0.2.128/25", None, None),  # allowlisted inside the /24
    ("192.0.2.200", ("127.0.0.5",), None),  # listed again inside the exclusion
    ("10.0.0.0/13", ("127.0.0.2",), "{url}"),  # not on an octet boundary
    ("10.1.0.0/16", None, None),
    ("2001:db8::/32", ("127.0.0.2", "127.0.0.6"), "v6 {key}"),
    ("2001:db8:1::/48", None, None),
    ("2001:db8:1::1", ("127.0.0.7",), "x" * 300),  # long TXT: two character-strings
]
DOMAIN_ENTRIES: list[tuple[str, tuple[str, ...] | None, str | None]] = [
    ("spam.example", ("127.0.1.2", "127.0.1.3"), None),
    ("*.spam.example", ("127.0.1.2",), "below {key}"),
    ("*.bad.example", ("127.0.1.4",), None),
    ("a.b.bad.example", ("127.0.1.5",), None),
    ("good.bad.example", None, None),  # allowlisted under a wildcard: HINFO only
    ("*.fine.bad.example", None, None),  # an allowlisted subtree under a wildcard
    ("*.x.bad.example", ("127.0.1.6",), None),
]


def make_zone(settings: Settings, name: str) -> Zone:
    zone_settings = settings.zone(name)
    kind = zone_settings.kind
    entries: list[tuple[ListingKey, Value | None]] = []
    for key, codes, txt in IP_ENTRIES if kind is ZoneKind.IP else DOMAIN_ENTRIES:
        value = None if codes is None else Value(codes, txt)
        entries.append((parse_key(kind, key), value))
    index = ZoneIndex(kind)
    load_entries(index, entries)
    return Zone(zone_settings, index, serial=77)


def text_rrs(text: str, origin: str) -> Counter[RR]:
    zone = dns.zone.from_text(text, origin=origin, relativize=False)
    return Counter(
        (name.to_text(), dns.rdatatype.to_text(rdata.rdtype), ttl, rdata.to_text())
        for name, ttl, rdata in zone.iterate_rdatas()
    )


def wire_rrs(zone: Zone) -> Counter[RR]:
    question = encode_name(zone.name) + QUESTION_TAIL.pack(TYPE_AXFR, CLASS_IN)
    rrs: list[RR] = []
    for data in axfr_messages(zone, b"\x12\x34", 0, question, target=2048):
        message = dns.message.from_wire(data, one_rr_per_rrset=True)
        for rrset in message.answer:
            for rdata in rrset:
                rrs.append(
                    (
                        rrset.name.to_text(),
                        dns.rdatatype.to_text(rrset.rdtype),
                        rrset.ttl,
                        rdata.to_text(),
                    )
                )
    assert rrs[0] == rrs[-1] and rrs[0][1] == "SOA"  # an AXFR starts and ends with the SOA
    return Counter(rrs[:-1])


@pytest.mark.parametrize("name", [IP_ZONE, DOMAIN_ZONE])
def test_one_view_renders_the_same_records_as_text_and_wire(tmp_path: Path, name: str) -> None:
    settings = make_settings(tmp_path)
    zone = make_zone(settings, name)
    view = ZoneView.of_index(zone.settings, zone.index)
    records = list(zone_records(view))
    assert list(zone_records(view_of(zone))) == records  # what AXFR renders
    dump = ZoneDump(zone.settings, view, zone.serial, datetime(2026, 11, 23, tzinfo=UTC))
    text = ZoneFile(".zone", None).header(dump) + render(records)
    rendered = text_rrs(text, name)
    assert rendered == wire_rrs(zone)
    kinds = Counter(rtype for _o, rtype, _t, _r in rendered)
    assert kinds["SOA"] == 1 and kinds["NS"] == len(zone.settings.ns) and kinds["TXT"] > 5
    owners = {owner for owner, *_ in rendered}
    if name == IP_ZONE:
        assert f"2.0.0.127.{name}." in owners  # the RFC 5782 test point
        assert f"*.2.0.192.{name}." not in owners  # cut into pieces around the exclusion
        assert any(len(owner.split(".")) > 34 for owner in owners)  # IPv6 names
    else:
        assert f"good.bad.example.{name}." in owners and f"test.{name}." in owners
        assert any(r.rtype == HINFO for r in records)
    assert len(rendered) == len(records) + 1 + len(zone.settings.ns)  # no RR lost or merged


def served_zone(seeded: Seeded, name: str) -> Zone:
    zones = build_zones(seeded.settings)
    load_index(seeded.reader, IndexFollower(zones))
    return zones[name]


@pytest.mark.parametrize("make", [seed, seed_rich], ids=["seed", "rich"])
@pytest.mark.parametrize("name", [IP_ZONE, DOMAIN_ZONE])
def test_the_dump_zone_file_equals_the_transfer_of_the_served_zone(
    tmp_path: Path, make: object, name: str
) -> None:
    assert callable(make)
    seeded: Seeded = make(tmp_path)
    try:
        write_dumps(seeded.settings, seeded.reader, tmp_path / "dumps", NOW)
        zone = served_zone(seeded, name)
    finally:
        seeded.reader.close()
    text = (tmp_path / "dumps" / name / f"{name}.zone").read_text()
    assert text_rrs(text, name) == wire_rrs(zone)


def test_records_are_comparable_values() -> None:
    one = Record("1.2.0.192", "A", "127.0.0.2", "192.0.2.1")
    assert one == Record(*one) and len({one, Record(*one)}) == 1 and one < one._replace(owner="2")
