"""Signed queries that are not transfers (SOA refresh, NOTIFY-style probes): verified, answered,
signed; every RFC 8945 failure answered as the RFC asks. dnspython builds the queries (good and
bad) and checks the answers, as a secondary would."""

from __future__ import annotations

import base64
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig
import dns.tsigkeyring
import pytest
from twisted.logger import globalLogPublisher

from rbl.dnsserver.responder import Responder
from rbl.dnsserver.tsig import TsigKeys
from rbl.index.tables import Value
from tests.support.dns_client import make_query
from tests.support.dns_zones import IP_ZONE, make_responder

SECRET = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OTHER_SECRET = base64.b64encode(b"fedcba9876543210fedcba9876543210").decode()
KEY = f"xfr-key:hmac-sha256:{SECRET}"
FLEET = f"fleet-key:hmac-sha256:{OTHER_SECRET}"
KEYRING = dns.tsigkeyring.from_text({"xfr-key.": ("hmac-sha256", SECRET)})
FLEET_RING = dns.tsigkeyring.from_text({"fleet-key.": ("hmac-sha256", OTHER_SECRET)})
DNSKEY = KEYRING[dns.name.from_text("xfr-key.")]
CLIENT = "192.0.2.1"


def responder(
    specs: tuple[str, ...] = (KEY,),
    bindings: tuple[tuple[str, str | None], ...] = (),
    clock: Callable[[], float] = time.time,
) -> Responder:
    served = make_responder()
    served.tsig = TsigKeys(specs, bindings, clock)
    return served


def signed(
    qname: str = IP_ZONE,
    rdtype: str = "SOA",
    keyring: Any = KEYRING,
    name: str = "xfr-key.",
    **kw: Any,
) -> dns.message.Message:
    query = make_query(qname, rdtype, **kw)
    query.use_tsig(keyring, keyname=name, algorithm=dns.tsig.HMAC_SHA256)
    query.to_wire()  # computes query.mac
    return query


def tsig_of(wire: bytes) -> Any:
    """The TSIG record of an answer, read by dnspython without checking it."""
    message = dns.message.from_wire(wire, keyring=lambda *_: False)
    assert message.tsig is not None
    return message.tsig[0]


def hand_signed(
    query: dns.message.Message,
    *,
    time_signed: int | None = None,
    mac_size: int | None = None,
    flip: bool = False,
    extend: bytes = b"",
    key: dns.tsig.Key = DNSKEY,
) -> bytes:
    """``query`` signed through dnspython's own digest, then tampered with as asked."""
    unsigned = query.to_wire()
    when = int(time.time()) if time_signed is None else time_signed
    rdata = dns.rdtypes.ANY.TSIG.TSIG(
        dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm, when, 300, b"", query.id, 0, b""
    )
    tsig, _ = dns.tsig.sign(unsigned, key, rdata, time=when)
    mac = tsig.mac[:mac_size] if mac_size is not None else tsig.mac
    if flip:
        mac = bytes([mac[0] ^ 1]) + mac[1:]
    mac += extend
    return with_record(unsigned, tsig_record(key.name, tsig.replace(mac=mac)))


def tsig_record(owner: dns.name.Name, rdata: Any, rclass: int = 255, ttl: int = 0) -> bytes:
    data = rdata.to_wire()
    return owner.to_wire() + struct.pack(">HHIH", 250, rclass, ttl, len(data)) + data


def with_record(wire: bytes, record: bytes, section: int = 11) -> bytes:
    """``record`` appended, counted in the section whose count is at byte ``section - 1``."""
    count = struct.unpack_from(">H", wire, section - 1)[0] + 1
    return wire[: section - 1] + struct.pack(">H", count) + wire[section + 1 :] + record


def verified_answer(reply: bytes | None, query: dns.message.Message) -> dns.message.Message:
    assert reply is not None
    message = dns.message.from_wire(reply, keyring=KEYRING, request_mac=query.mac)
    assert message.had_tsig
    return message


@pytest.mark.parametrize("udp", [True, False])
@pytest.mark.parametrize("edns", [None, 0])
def test_signed_soa_query_gets_the_usual_answer_signed(udp: bool, edns: int | None) -> None:
    served = responder()
    query = signed(edns=edns)
    answer = verified_answer(served.respond(query.to_wire(), udp, CLIENT), query)
    plain = dns.message.from_wire(
        served.respond(make_query(IP_ZONE, "SOA", edns=edns).to_wire(), udp)
    )
    assert answer.rcode() == dns.rcode.NOERROR and answer.flags & dns.flags.AA
    assert answer.answer == plain.answer and answer.answer[0].rdtype == dns.rdatatype.SOA
    assert answer.edns == plain.edns
    assert served.tsig is not None and served.tsig.verified == 1


def test_signed_listed_and_unlisted_queries_are_signed() -> None:
    served = responder()
    for name, rcode in (
        (f"2.0.0.127.{IP_ZONE}", dns.rcode.NOERROR),
        (f"9.9.9.9.{IP_ZONE}", dns.rcode.NXDOMAIN),
    ):
        query = signed(name, "A")
        answer = verified_answer(served.respond(query.to_wire(), True, CLIENT), query)
        assert answer.rcode() == rcode


def test_signed_transfer_over_udp_is_refused_signed() -> None:
    query = signed(rdtype="AXFR")
    answer = verified_answer(responder().respond(query.to_wire(), True, CLIENT), query)
    assert answer.rcode() == dns.rcode.REFUSED


def test_signed_ixfr_over_udp_is_the_current_soa_signed() -> None:
    """RFC 1995 section 2: the SOA alone (ask over TCP), signed like any answer to a key."""
    query = signed(rdtype="IXFR")
    answer = verified_answer(responder().respond(query.to_wire(), True, CLIENT), query)
    assert answer.rcode() == dns.rcode.NOERROR
    assert [rrset.rdtype for rrset in answer.answer] == [dns.rdatatype.SOA]


def test_unsigned_queries_are_untouched() -> None:
    keyed, plain = responder(), make_responder()
    for name, rdtype in ((IP_ZONE, "SOA"), (f"2.0.0.127.{IP_ZONE}", "A"), ("example.com", "A")):
        data = make_query(name, rdtype).to_wire()
        assert keyed.fast(data, True) is not None  # still the fast path
        assert keyed.respond(data, True, CLIENT) == plain.respond(data, True)


def test_unknown_key_is_badkey_unsigned() -> None:
    other = dns.tsigkeyring.from_text({"nobody.": ("hmac-sha256", SECRET)})
    query = signed(keyring=other, name="nobody.")
    reply = responder().respond(query.to_wire(), True, CLIENT)
    assert reply is not None
    with pytest.raises(dns.tsig.PeerBadKey):
        dns.message.from_wire(reply, keyring=other, request_mac=query.mac)
    assert dns.message.from_wire(reply, keyring=lambda *_: False).rcode() == dns.rcode.NOTAUTH
    assert tsig_of(reply).mac == b""  # unsigned (RFC 8945 5.3.2)


def test_no_keys_configured_is_badkey() -> None:
    query = signed()
    reply = make_responder().respond(query.to_wire(), True, CLIENT)
    assert reply is not None and tsig_of(reply).error == dns.rcode.BADKEY


def test_another_algorithm_under_a_known_name_is_badkey() -> None:
    query = make_query(IP_ZONE, "SOA")
    query.use_tsig(
        {dns.name.from_text("xfr-key."): dns.tsig.Key("xfr-key.", SECRET, "hmac-sha512")}
    )
    reply = responder().respond(query.to_wire(), True, CLIENT)
    assert reply is not None and tsig_of(reply).error == dns.rcode.BADKEY


def test_bad_mac_is_badsig_unsigned() -> None:
    reply = responder().respond(hand_signed(make_query(IP_ZONE, "SOA"), flip=True), True, CLIENT)
    assert reply is not None
    record = tsig_of(reply)
    assert record.error == dns.rcode.BADSIG and record.mac == b""
    assert dns.message.from_wire(reply, keyring=lambda *_: False).rcode() == dns.rcode.NOTAUTH


def test_clock_skew_is_badtime_signed_with_our_time() -> None:
    now = time.time() + 1000  # our clock is 1000 s ahead of the client's
    query = signed()
    reply = responder(clock=lambda: now).respond(query.to_wire(), True, CLIENT)
    assert reply is not None
    with pytest.raises(dns.tsig.PeerBadTime):
        dns.message.from_wire(reply, keyring=KEYRING, request_mac=query.mac)
    record = tsig_of(reply)
    assert int.from_bytes(record.other, "big") == int(now)
    assert record.time_signed == tsig_of(query.to_wire()).time_signed
    # Signed (RFC 8945 5.3.2): dnspython's digest over the same message gives the same MAC.
    start = len(reply) - len(tsig_record(DNSKEY.name, record))
    unsigned = reply[:10] + b"\x00\x00" + reply[12:start]
    expected, _ = dns.tsig.sign(
        unsigned, DNSKEY, record, time=record.time_signed, request_mac=query.mac
    )
    assert record.mac == expected.mac and len(record.mac) == 32


def test_truncated_mac_is_badtrunc_signed() -> None:
    reply = responder().respond(hand_signed(make_query(IP_ZONE, "SOA"), mac_size=16), True, CLIENT)
    assert reply is not None
    record = tsig_of(reply)
    assert record.error == dns.rcode.BADTRUNC and len(record.mac) == 32


@pytest.mark.parametrize("size", [8, 12, 33])
def test_mac_shorter_than_half_or_longer_than_the_hash_is_formerr(size: int) -> None:
    query = make_query(IP_ZONE, "SOA")
    data = hand_signed(query, mac_size=size) if size <= 32 else hand_signed(query, extend=b"!")
    reply = responder().respond(data, True, CLIENT)
    assert reply is not None
    assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR


def bad_placements() -> Iterator[tuple[str, bytes]]:
    query = signed()
    good = query.to_wire()
    record = good[len(make_query(IP_ZONE, "SOA").to_wire()) :]
    plain = make_query(IP_ZONE, "SOA").to_wire()
    yield "two TSIG records", with_record(good, record)
    yield "TSIG in the answer section", with_record(plain, record, section=7)
    opt = make_query(IP_ZONE, "SOA", edns=0).to_wire()[len(plain) :]
    yield "TSIG before OPT", with_record(good, opt)
    rdata = tsig_of(good)
    yield "TSIG of class IN", with_record(plain, tsig_record(DNSKEY.name, rdata, rclass=1))
    yield "TSIG with a TTL", with_record(plain, tsig_record(DNSKEY.name, rdata, ttl=5))
    yield "TSIG data cut short", with_record(plain, record[:-3])


@pytest.mark.parametrize(
    ("what", "data"), list(bad_placements()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_malformed_or_misplaced_tsig_is_formerr(what: str, data: bytes) -> None:
    reply = responder().respond(data, True, CLIENT)
    assert reply is not None, what
    assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR, what


def test_keys_bound_to_networks() -> None:
    served = responder((KEY, FLEET), (("192.0.2.0/24", "xfr-key"), ("198.51.100.0/28", None)))
    own = signed()
    assert verified_answer(served.respond(own.to_wire(), True, "192.0.2.7"), own)
    for host, query in (
        ("192.0.2.7", signed(keyring=FLEET_RING, name="fleet-key.")),  # not its key
        ("203.0.113.9", signed()),  # a bound key from elsewhere
        ("198.51.100.1", signed()),  # an entry without key: bound keys are not its
    ):
        reply = served.respond(query.to_wire(), True, host)
        assert reply is not None and tsig_of(reply).error == dns.rcode.BADKEY, host
    fleet = signed(keyring=FLEET_RING, name="fleet-key.")  # unbound: usable outside the entries
    answer = dns.message.from_wire(
        served.respond(fleet.to_wire(), True, "203.0.113.9") or b"",
        keyring=FLEET_RING,
        request_mac=fleet.mac,
    )
    assert answer.rcode() == dns.rcode.NOERROR


def test_udp_answer_too_big_once_signed_is_truncated_and_signed() -> None:
    codes = tuple(f"127.0.0.{i}" for i in range(2, 30))  # 28 A records: 491 octets, 573 signed
    served = make_responder({"203.0.113.20": Value(codes)})
    served.tsig = TsigKeys((KEY,))
    name = f"20.113.0.203.{IP_ZONE}"
    unsigned = served.respond(make_query(name, "A").to_wire(), True)
    assert unsigned is not None and 430 < len(unsigned) <= 512
    assert not dns.message.from_wire(unsigned).flags & dns.flags.TC
    query = signed(name, "A")
    reply = served.respond(query.to_wire(), True, CLIENT)
    assert reply is not None and len(reply) <= 512
    answer = verified_answer(reply, query)
    assert answer.flags & dns.flags.TC and not answer.answer
    assert answer.question == query.question
    whole = verified_answer(served.respond(query.to_wire(), False, CLIENT), query)  # TCP
    assert not whole.flags & dns.flags.TC and len(whole.answer[0]) == len(codes)


def test_failures_are_logged_once_per_client_key_and_error() -> None:
    events: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == "rbl.tsig":
            events.append(event)

    served = responder()
    globalLogPublisher.addObserver(observe)
    try:
        for _ in range(5):
            served.respond(hand_signed(make_query(IP_ZONE, "SOA"), flip=True), True, CLIENT)
        assert len(events) == 1 and events[0]["error"] == "BADSIG"
        served.respond(hand_signed(make_query(IP_ZONE, "SOA"), flip=True), True, "192.0.2.99")
        assert len(events) == 2  # another client
        good = signed()
        served.respond(good.to_wire(), True, CLIENT)  # the streak ends
        served.respond(hand_signed(make_query(IP_ZONE, "SOA"), flip=True), True, CLIENT)
        assert len(events) == 3
    finally:
        globalLogPublisher.removeObserver(observe)
    assert served.tsig is not None and served.tsig.errors == {"BADSIG": 7}
    assert served.outside_rcodes[9] == 7


def test_tsig_counts_are_metrics() -> None:
    from rbl.metrics.exposition import render
    from rbl.metrics.tsig import tsig_families, tsig_snapshot

    served = responder()
    good = signed()
    served.respond(good.to_wire(), True, CLIENT)
    served.respond(hand_signed(make_query(IP_ZONE, "SOA"), flip=True), True, CLIENT)
    served.respond(signed(keyring=FLEET_RING, name="fleet-key.").to_wire(), True, CLIENT)
    text = render(tsig_families({"0": {"tsig": tsig_snapshot(served.tsig)}})).decode()
    assert 'rbl_tsig_verified_total{worker="0"} 1' in text
    assert 'rbl_tsig_errors_total{error="BADKEY",worker="0"} 1' in text
    assert 'rbl_tsig_errors_total{error="BADSIG",worker="0"} 1' in text


def test_mutated_signed_queries_never_raise() -> None:
    """Untrusted bytes reach tsigwire.find: 3000 mutations of signed queries, each answered
    (FORMERR, NOTAUTH, a signed answer) or dropped, never an exception, never slow."""
    import random

    served = responder((KEY, FLEET), (("192.0.2.0/24", "xfr-key"),))
    seeds = [signed().to_wire(), signed(edns=0).to_wire(), signed(rdtype="IXFR").to_wire()]
    chaos = random.Random(14)
    began = time.monotonic()
    answered = 0
    for _ in range(3000):
        data = bytearray(chaos.choice(seeds))
        for _ in range(chaos.randint(1, 4)):
            if not data:
                break
            spot = chaos.randrange(len(data))
            choice = chaos.random()
            if choice < 0.6:
                data[spot] = chaos.randrange(256)
            elif choice < 0.8:
                del data[spot:]
            else:
                data[spot:spot] = bytes(chaos.randrange(256) for _ in range(chaos.randint(1, 8)))
        reply = served.respond(bytes(data), chaos.random() < 0.5, CLIENT)
        answered += reply is not None
    assert answered > 2000
    assert time.monotonic() - began < 10


@pytest.mark.slow
def test_rbl_serve_answers_signed_queries_over_udp_and_tcp(tmp_path: Path) -> None:
    """A real ``rbl serve`` with the key bound to 127.0.0.1: dnspython's own client verifies."""
    import dns.query

    from tests.support.config import write_config
    from tests.support.server import start_server, stop_server

    extra = f'\n[transfer]\ntsig = ["{KEY}"]\n[[transfer.secondaries]]\n'
    extra += 'address = "127.0.0.1"\nkey = "xfr-key"\nnotify = false\n'
    server = start_server(write_config(tmp_path, extra=extra))
    try:
        for send in (dns.query.udp, dns.query.tcp):
            query = signed()
            answer = send(query, "127.0.0.1", port=server.port, timeout=5)  # raises unless signed
            assert answer.had_tsig and answer.answer[0].rdtype == dns.rdatatype.SOA
        forged = make_query(IP_ZONE, "SOA")
        forged.use_tsig(FLEET_RING, keyname="fleet-key.")  # not a key rbl knows
        wire = forged.to_wire()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(5)
            udp.sendto(wire, ("127.0.0.1", server.port))
            reply = udp.recv(4096)
        assert tsig_of(reply).error == dns.rcode.BADKEY
    finally:
        stop_server(server)
    assert "TSIG BADKEY from 127.0.0.1 with key fleet-key" in server.log()
