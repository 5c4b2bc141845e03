"""IXFR (RFC 1995) from the zone history: the difference takes the zone at S to the zone now.

The strong property: for change-log rows applied through the real follower in
random batches, the condensed difference from every serial the zone had,
applied to the records of the zone at that serial, gives exactly the records
of the zone now (those an AXFR carries), deleting only records that were there
and adding only records that were not. On the wire, dnspython parses the
messages and a small RFC 1995 reader applies them to the AXFR taken at S.
"""

from __future__ import annotations

import base64

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.tsigkeyring
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.testing import MemoryReactor

from rbl.config.reconfigure import ReloadReport
from rbl.dnsserver.responder import Responder
from rbl.dnsserver.transfer import TransferPolicy, Transfers, view_of
from rbl.dnsserver.tsig import TsigKeys
from rbl.dnsserver.xfrlog import TransferStats, TransferWatch
from rbl.dnsserver.zone import Zone
from rbl.index.tables import ZoneIndex
from rbl.model.changes import OP_DELETE, OP_EXCLUDE, OP_SET, OP_UNEXCLUDE
from rbl.server.dnsservice import make_dns
from rbl.server.follower import IndexFollower
from rbl.store.reader import Change
from rbl.zonedata.difference import difference
from rbl.zonedata.history import AHEAD, IXFR_OFF, NOT_IN_HISTORY, NoDifference, ZoneHistory
from rbl.zonedata.records import zone_records
from tests.support.dns_zones import CONFIG, DOMAIN_ZONE, IP_ZONE, make_settings

IP_KEYS = [
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.1.2.3",
    "10.1.2.4",
    "10.1.2.128/25",
    "10.1.4.0/22",
    "10.2.0.1",
    "192.0.2.1",
    "2001:db8::/32",
    "2001:db8::/47",
    "2001:db8:1::/48",
    "2001:db8:1::1",
    "2001:db8:1:2::/64",
]
DOMAIN_KEYS = [
    "example.com",
    "*.example.com",
    "a.example.com",
    "*.a.example.com",
    "b.a.example.com",
    "*.b.a.example.com",
    "c.b.a.example.com",
    "x.y.example.com",
    "example.net",
    "*.other.example.net",
    "z.other.example.net",
]
OPS = [OP_SET, OP_SET, OP_DELETE, OP_EXCLUDE, OP_UNEXCLUDE]
CODES = [None, "127.0.0.3", "127.0.0.2,127.0.0.4"]
TXTS = [None, "own {key}"]
LOOPBACK = TransferPolicy.from_strings(["127.0.0.0/8"])

Row = tuple[str, str, str | None, str | None]


def follower() -> IndexFollower:
    zones = {z.name: Zone(z, ZoneIndex(z.kind)) for z in make_settings().zones}
    return IndexFollower(zones)


class Log:
    """Change-log rows with increasing ids, applied through the follower in batches."""

    def __init__(self, follow: IndexFollower, zone: str) -> None:
        self.follow, self.zone, self.last = follow, zone, 1  # the zone starts at serial 1

    def apply(self, rows: list[Row]) -> None:
        batch = []
        for key, op, codes, txt in rows:
            self.last += 1
            batch.append(Change(self.last, self.zone, key, op, codes, txt))
        self.follow.apply(batch)


def records(zone: Zone) -> set[tuple[str, str, str]]:
    return {record[:3] for record in zone_records(view_of(zone))}


def rows(keys: list[str]) -> st.SearchStrategy[list[Row]]:
    row = st.tuples(
        st.sampled_from(keys), st.sampled_from(OPS), st.sampled_from(CODES), st.sampled_from(TXTS)
    )
    return st.lists(row, max_size=8)


def check_every_serial(zone_name: str, keys: list[str], batches: list[list[Row]]) -> None:
    follow = follower()
    zone = follow.zones[zone_name]
    log = Log(follow, zone_name)
    seen = [(zone.serial, records(zone))]
    for batch in batches:
        log.apply(batch)
        if batch:
            seen.append((zone.serial, records(zone)))
    now = records(zone)
    for serial, then in seen:
        changes = zone.history.since(serial)
        assert not isinstance(changes, NoDifference), changes
        deleted, added = difference(zone.settings, zone.index, changes)
        gone = {record[:3] for record in deleted}
        new = {record[:3] for record in added}
        assert len(gone) == len(deleted) and len(new) == len(added)
        assert gone <= then  # RFC 1995: only records the secondary holds are deleted
        assert not new & (then - gone)  # ... and only records it lacks are added
        assert (then - gone) | new == now


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows(IP_KEYS), min_size=1, max_size=5))
def test_ip_difference_from_every_serial_gives_the_zone_now(batches: list[list[Row]]) -> None:
    check_every_serial(IP_ZONE, IP_KEYS, batches)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows(DOMAIN_KEYS), min_size=1, max_size=5))
def test_domain_difference_from_every_serial_gives_the_zone_now(batches: list[list[Row]]) -> None:
    check_every_serial(DOMAIN_ZONE, DOMAIN_KEYS, batches)


def test_many_changes_to_one_key_condense_to_one_deletion_and_one_addition() -> None:
    follow = follower()
    zone = follow.zones[IP_ZONE]
    log = Log(follow, IP_ZONE)
    log.apply([("192.0.2.1", OP_SET, "127.0.0.2", None)])
    serial = zone.serial
    for code in range(3, 10):
        log.apply([("192.0.2.1", OP_SET, f"127.0.0.{code}", None)])
    changes = zone.history.since(serial)
    assert not isinstance(changes, NoDifference)
    deleted, added = difference(zone.settings, zone.index, changes)
    assert [r[1:3] for r in deleted] == [("A", "127.0.0.2")]
    assert [r[1:3] for r in added] == [("A", "127.0.0.9")]  # the TXT did not change
    log.apply([("192.0.2.1", OP_SET, "127.0.0.2", None)])  # back where it was: nothing
    changes = zone.history.since(serial)
    assert changes == {}


def test_history_is_bounded_and_says_why_it_cannot_answer() -> None:
    history = ZoneHistory(limit=3)
    history.reset(10, "rbl started")
    follow = follower()
    zone = follow.zones[IP_ZONE]
    zone.history = history
    zone.set_serial(10)
    log = Log(follow, IP_ZONE)
    log.last = 10
    log.apply([("10.2.0.1", OP_SET, None, None)])  # 11
    log.apply([("192.0.2.1", OP_SET, None, None)])  # 12
    assert not isinstance(history.since(10), NoDifference)
    log.apply([("10.1.2.3", OP_SET, None, None), ("10.1.2.4", OP_SET, None, None)])  # 14
    assert len(history) == 3
    assert history.since(10) == NoDifference(
        NOT_IN_HISTORY,
        "serial 10 is not in the history (it starts at serial 11: more than 3 changes since "
        "([transfer] ixfr_history))",
    )
    texts = {11: {"192.0.2.1", "10.1.2.3", "10.1.2.4"}, 12: {"10.1.2.3", "10.1.2.4"}}
    for serial, keys in texts.items():
        changes = history.since(serial)
        assert not isinstance(changes, NoDifference) and {key.text for key in changes} == keys
    assert "not in the history" in str(history.since(13))  # a serial the zone never had
    history.resize(0)
    assert history.since(14) == NoDifference(IXFR_OFF, "IXFR is off ([transfer] ixfr_history = 0)")


def test_a_row_of_another_kind_restarts_the_history() -> None:
    follow = follower()
    zone = follow.zones[IP_ZONE]
    log = Log(follow, IP_ZONE)
    log.apply([("10.2.0.1", OP_SET, None, None)])
    serial = zone.serial
    log.apply([("10.2.0.1", "settings", None, None)])
    assert "is a 'settings'" in str(zone.history.since(serial))
    assert zone.history.since(zone.serial) == {}


# -- on the wire -------------------------------------------------------------------------


def ixfr_query(zone: Zone, serial: int) -> dns.message.Message:
    query = dns.message.make_query(zone.name, "IXFR")
    soa = dns.rrset.from_text(zone.name + ".", 0, "IN", "SOA", f"ns1. h. {serial} 1 1 1 1")
    query.authority.append(soa)
    return query


def axfr_set(transfers: Transfers, zone: Zone) -> set[str]:
    query = dns.message.make_query(zone.name, "AXFR")
    found: set[str] = set()
    for data in transfers.respond(query.to_wire(), "127.0.0.1"):
        for rrset in dns.message.from_wire(data, one_rr_per_rrset=True).answer:
            if rrset.rdtype != dns.rdatatype.SOA:
                found.add(rrset.to_text())
    return found


def apply_ixfr(base: set[str], messages: list[dns.message.Message], old: int) -> set[str]:
    """An RFC 1995 reader: SOA(new), then (SOA(old) deletions SOA(new) additions)..., SOA(new)."""
    rrsets = [rrset for message in messages for rrset in message.answer]
    first, last = rrsets[0], rrsets[-1]
    assert first.rdtype == last.rdtype == dns.rdatatype.SOA and first == last
    current = set(base)
    deleting = True
    assert rrsets[1].rdtype == dns.rdatatype.SOA and rrsets[1][0].serial == old
    for rrset in rrsets[2:-1]:
        if rrset.rdtype == dns.rdatatype.SOA:
            deleting = not deleting
            continue
        text = rrset.to_text()
        if deleting:
            assert text in current
            current.discard(text)
        else:
            assert text not in current
            current.add(text)
    return current


def test_ixfr_on_the_wire_takes_an_axfr_at_s_to_the_axfr_now_and_is_small() -> None:
    follow = follower()
    zone = follow.zones[IP_ZONE]
    log = Log(follow, IP_ZONE)
    log.apply([(f"45.0.{n >> 8}.{n & 255}", OP_SET, None, None) for n in range(2000)])
    log.apply([("10.1.0.0/16", OP_SET, "127.0.0.3", "net {key}")])
    transfers = Transfers(list(follow.zones.values()), LOOPBACK)
    serial, base = zone.serial, axfr_set(transfers, zone)
    log.apply([("45.0.0.8", OP_EXCLUDE, None, None), ("45.0.0.7", OP_DELETE, None, None)])
    log.apply([("192.0.2.99", OP_SET, "127.0.0.4", None)])
    log.apply([("192.0.2.99", OP_SET, "127.0.0.5", None)])
    query = ixfr_query(zone, serial)
    stats = TransferStats()
    watch = TransferWatch(stats, query.to_wire(), "127.0.0.1")
    wires = list(watch.measure(transfers.stream(query.to_wire(), "127.0.0.1", watch.fell_back)))
    watch.finish("complete")
    assert watch.kind == "ixfr" and watch.fallback is None
    assert sum(map(len, wires)) < 2000  # the zone is ~100 KB; the difference a few records
    messages = [dns.message.from_wire(data, one_rr_per_rrset=True) for data in wires]
    assert messages[0].answer[0][0].serial == zone.serial
    assert apply_ixfr(base, messages, serial) == axfr_set(transfers, zone)
    # A hole in a network re-renders the network: as many records as an AXFR carries for it.
    log.apply([("10.1.2.0/24", OP_EXCLUDE, None, None)])
    wires = transfers.respond(ixfr_query(zone, serial).to_wire(), "127.0.0.1")
    messages = [dns.message.from_wire(data, one_rr_per_rrset=True) for data in wires]
    assert apply_ixfr(base, messages, serial) == axfr_set(transfers, zone)


def test_ixfr_up_to_date_ahead_and_unknown() -> None:
    follow = follower()
    zone = follow.zones[IP_ZONE]
    log = Log(follow, IP_ZONE)
    log.apply([("192.0.2.1", OP_SET, None, None)])
    transfers = Transfers(list(follow.zones.values()), LOOPBACK)
    up_to_date = transfers.respond(ixfr_query(zone, zone.serial).to_wire(), "127.0.0.1")
    answer = dns.message.from_wire(up_to_date[0]).answer
    assert len(up_to_date) == 1 and len(answer) == 1 and answer[0].rdtype == dns.rdatatype.SOA
    older = (zone.serial - 40) % 2**32
    for serial, why in ((zone.serial + 5, "ahead"), (older, "not in the history")):
        reasons: list[NoDifference] = []
        full = transfers.stream(ixfr_query(zone, serial).to_wire(), "127.0.0.1", reasons.append)
        second = dns.message.from_wire(next(iter(full)), one_rr_per_rrset=True).answer[1]
        assert second.rdtype == dns.rdatatype.NS  # AXFR-style
        assert why in reasons[0].text
        assert reasons[0].cause == (AHEAD if why == "ahead" else NOT_IN_HISTORY)


def test_an_ixfr_whose_soa_owner_is_a_bad_name_is_formerr() -> None:
    follow = follower()
    zone = follow.zones[IP_ZONE]
    transfers = Transfers(list(follow.zones.values()), LOOPBACK)
    wire = ixfr_query(zone, zone.serial).to_wire()
    question_end = 12 + len(zone.wire_root) + 4
    assert wire[question_end : question_end + 2] == b"\xc0\x0c"  # the owner points at the QNAME
    for owner in (b"\xc0\xff", b"\x80\x00", bytes([question_end >> 8 | 0xC0, question_end & 255])):
        bad = wire[:question_end] + owner + wire[question_end + 2 :]  # forward, reserved, loop
        (reply,) = transfers.respond(bad, "127.0.0.1")
        assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR, owner
    (good,) = transfers.respond(wire, "127.0.0.1")
    assert dns.message.from_wire(good).rcode() == dns.rcode.NOERROR


def test_signed_ixfr_verifies_as_one_stream() -> None:
    secret = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    follow = follower()
    zone = follow.zones[IP_ZONE]
    log = Log(follow, IP_ZONE)
    log.apply([("192.0.2.1", OP_SET, None, None)])
    serial = zone.serial
    log.apply([("192.0.2.2", OP_SET, None, None)])
    transfers = Transfers(
        list(follow.zones.values()), LOOPBACK, TsigKeys([f"k:hmac-sha256:{secret}"])
    )
    keyring = dns.tsigkeyring.from_text({"k.": ("hmac-sha256", secret)})
    query = ixfr_query(zone, serial)
    query.use_tsig(keyring, keyname="k.", algorithm=dns.tsig.HMAC_SHA256)
    wires = transfers.respond(query.to_wire(), "127.0.0.1")
    reply = dns.message.from_wire(
        wires[0], keyring=keyring, request_mac=query.mac, xfr=True, multi=True
    )
    assert reply.had_tsig
    owners = {rrset.name.to_text() for rrset in reply.answer}
    assert "2.2.0.192.bl.example.org." in owners


def test_a_reload_resizes_the_history_and_a_zone_settings_change_restarts_it() -> None:
    old = make_settings({**CONFIG, "transfer": {"allow": ["127.0.0.1/32"], "ixfr_history": 5}})
    follow = IndexFollower({z.name: Zone(z, ZoneIndex(z.kind)) for z in old.zones})
    zone = follow.zones[IP_ZONE]
    zone.history.resize(old.transfer.ixfr_history)
    service = make_dns(old, Responder(list(follow.zones.values())), MemoryReactor())
    log = Log(follow, IP_ZONE)
    log.apply([("192.0.2.1", OP_SET, None, None)])
    serial = zone.serial
    log.apply([("192.0.2.2", OP_SET, None, None)])
    assert not isinstance(zone.history.since(serial), NoDifference)

    zones = [dict(z) for z in CONFIG["zones"]]
    zones[0]["ttl"] = 1234  # every record of the zone changes with it
    new = make_settings(
        {**CONFIG, "zones": zones, "transfer": {"allow": ["127.0.0.1/32"], "ixfr_history": 5}}
    )
    service.reconfigure(old, new, ReloadReport())
    assert "settings were reloaded" in str(zone.history.since(serial))

    off = make_settings(
        {**CONFIG, "zones": zones, "transfer": {"allow": ["127.0.0.1/32"], "ixfr_history": 0}}
    )
    service.reconfigure(new, off, ReloadReport())
    assert "IXFR is off" in str(zone.history.since(zone.serial))


def test_a_snapshot_reload_restarts_the_history() -> None:
    """A node behind the change-log prune loads a fresh snapshot (rbl.server.changes): the
    rows it skipped are in no history, so secondaries older than it get the whole zone."""
    follow = follower()
    zone = follow.zones[IP_ZONE]
    log = Log(follow, IP_ZONE)
    log.apply([("192.0.2.1", OP_SET, None, None)])
    serial = zone.serial
    log.apply([("192.0.2.2", OP_SET, None, None)])
    zone.use_index(ZoneIndex(zone.settings.kind), 40)
    assert "a snapshot was reloaded" in str(zone.history.since(serial))
    assert zone.history.since(40) == {}
