"""TSIG on zone transfers: unsigned or wrongly signed requests are refused; the answer is a
correctly signed multi-message stream (checked with dnspython as the secondary would)."""

from __future__ import annotations

import base64
import time

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import pytest

from rbl.config.tsigkeys import parse_key
from rbl.dnsserver.transfer import TransferPolicy, Transfers
from rbl.dnsserver.tsig import TsigKeys
from rbl.errors import ConfigError
from rbl.index.tables import Value
from rbl.model.keys import ZoneKind
from rbl.model.keys import parse_key as parse_listing_key
from tests.support.dns_zones import IP_ZONE, make_responder

SECRET = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
KEY = f"xfr-key:hmac-sha256:{SECRET}"


def transfers() -> Transfers:
    responder = make_responder()
    zone = next(z for z in responder.zones if z.name == IP_ZONE)
    for n in range(3000):  # enough records for several messages
        zone.index.set(
            parse_listing_key(ZoneKind.IP, f"45.{n >> 8}.{n & 255}.1"), Value(("127.0.0.2",))
        )
    return Transfers(responder.zones, TransferPolicy.from_strings(["127.0.0.0/8"]), TsigKeys([KEY]))


def signed_query(keyring: dict, keyname: str) -> dns.message.Message:  # type: ignore[type-arg]
    query = dns.message.make_query(IP_ZONE, "AXFR")
    query.use_tsig(keyring, keyname=keyname, algorithm=dns.tsig.HMAC_SHA256)
    query.to_wire()
    return query


def test_signed_transfer_verifies_as_one_stream() -> None:
    keyring = dns.tsigkeyring.from_text({"xfr-key.": ("hmac-sha256", SECRET)})
    query = signed_query(keyring, "xfr-key.")
    messages = transfers().respond(query.to_wire(), "127.0.0.1")
    assert len(messages) > 1
    context = None
    records = 0
    for number, wire in enumerate(messages):
        reply = dns.message.from_wire(
            wire,
            keyring=keyring,
            request_mac=query.mac,
            xfr=True,
            multi=True,
            tsig_ctx=context,
            one_rr_per_rrset=True,
        )
        assert reply.had_tsig and reply.rcode() == dns.rcode.NOERROR, number
        context = reply.tsig_ctx
        records += sum(len(rrset) for rrset in reply.answer)
    assert records > 3000


def test_unsigned_requests_are_refused_and_forged_ones_get_badsig() -> None:
    service = transfers()
    plain = dns.message.make_query(IP_ZONE, "AXFR").to_wire()
    (reply,) = service.respond(plain, "127.0.0.1")
    assert dns.message.from_wire(reply).rcode() == dns.rcode.REFUSED
    other = dns.tsigkeyring.from_text(
        {"xfr-key.": ("hmac-sha256", base64.b64encode(b"x" * 32).decode())}
    )
    query = signed_query(other, "xfr-key.")
    (forged,) = service.respond(query.to_wire(), "127.0.0.1")
    with pytest.raises(dns.tsig.PeerBadSignature):  # NOTAUTH, TSIG error BADSIG
        dns.message.from_wire(forged, keyring=other, request_mac=query.mac)
    assert service.refused == 2 and service.served == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nokey", "not 'name:algorithm:base64-secret'"),
        (f"k:hmac-md4:{SECRET}", "algorithm 'hmac-md4'"),
        ("k:hmac-sha256:!!!", "not base64"),
        (f"k:hmac-sha256:{base64.b64encode(b'short').decode()}", "shorter than 16 bytes"),
    ],
)
def test_bad_keys_are_config_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_key(spec)


def test_a_one_message_transfer_keeps_both_soas() -> None:
    from pathlib import Path

    from rbl.config import parse_settings
    from rbl.dnsserver.zone import Zone
    from rbl.index.tables import ZoneIndex

    settings = parse_settings(
        {"zones": [{"name": IP_ZONE, "ns": ["ns1.example.org"]}]}, source=Path("t.toml")
    )
    small = Zone(settings.zones[0], ZoneIndex(ZoneKind.IP))  # test points only: one message
    service = Transfers([small], TransferPolicy.from_strings(["127.0.0.1/32"]), TsigKeys([KEY]))
    keyring = dns.tsigkeyring.from_text({"xfr-key.": ("hmac-sha256", SECRET)})
    query = signed_query(keyring, "xfr-key.")
    (wire,) = service.respond(query.to_wire(), "127.0.0.1")
    reply = dns.message.from_wire(
        wire, keyring=keyring, request_mac=query.mac, xfr=True, one_rr_per_rrset=True
    )
    kinds = [rrset.rdtype for rrset in reply.answer]
    assert kinds[0] == kinds[-1] == dns.rdatatype.SOA and len(kinds) > 2


FLEET_SECRET = base64.b64encode(b"fedcba9876543210fedcba9876543210").decode()
FLEET = f"fleet-key:hmac-sha256:{FLEET_SECRET}"


def keyed_transfers(keys: TsigKeys | None) -> Transfers:
    return Transfers(
        make_responder().zones, TransferPolicy.from_strings(["127.0.0.0/8", "192.0.2.0/24"]), keys
    )


def tsig_error(wire: bytes) -> int:
    message = dns.message.from_wire(wire, keyring=lambda *_: False)
    assert message.rcode() == dns.rcode.NOTAUTH and message.tsig is not None
    return int(message.tsig[0].error)


def test_a_signed_transfer_to_a_primary_without_keys_is_badkey() -> None:
    keyring = dns.tsigkeyring.from_text({"xfr-key.": ("hmac-sha256", SECRET)})
    (reply,) = keyed_transfers(None).respond(
        signed_query(keyring, "xfr-key.").to_wire(), "127.0.0.1"
    )
    assert tsig_error(reply) == dns.rcode.BADKEY


def test_a_transfer_signed_far_from_our_clock_is_badtime() -> None:
    keyring = dns.tsigkeyring.from_text({"xfr-key.": ("hmac-sha256", SECRET)})
    service = keyed_transfers(TsigKeys([KEY], clock=lambda: time.time() - 3600))
    query = signed_query(keyring, "xfr-key.")
    (reply,) = service.respond(query.to_wire(), "127.0.0.1")
    assert tsig_error(reply) == dns.rcode.BADTIME
    with pytest.raises(dns.tsig.PeerBadTime):
        dns.message.from_wire(reply, keyring=keyring, request_mac=query.mac)


def test_per_secondary_keys() -> None:
    """192.0.2.0/24 must sign with xfr-key; 127.0.0.0/8 (flat allow) with a key no entry binds."""
    own = dns.tsigkeyring.from_text({"xfr-key.": ("hmac-sha256", SECRET)})
    fleet = dns.tsigkeyring.from_text({"fleet-key.": ("hmac-sha256", FLEET_SECRET)})
    service = keyed_transfers(TsigKeys([KEY, FLEET], [("192.0.2.0/24", "xfr-key")]))
    plain = dns.message.make_query(IP_ZONE, "AXFR").to_wire()
    for host in ("192.0.2.5", "127.0.0.1"):  # both must sign
        (reply,) = service.respond(plain, host)
        assert dns.message.from_wire(reply).rcode() == dns.rcode.REFUSED, host
    (reply,) = service.respond(signed_query(fleet, "fleet-key.").to_wire(), "192.0.2.5")
    assert tsig_error(reply) == dns.rcode.BADKEY  # not its key
    (reply,) = service.respond(signed_query(own, "xfr-key.").to_wire(), "127.0.0.1")
    assert tsig_error(reply) == dns.rcode.BADKEY  # a key bound to another network
    for host, keyring, name in (("192.0.2.5", own, "xfr-key."), ("127.0.0.1", fleet, "fleet-key.")):
        query = signed_query(keyring, name)
        first = service.respond(query.to_wire(), host)[0]
        reply = dns.message.from_wire(
            first, keyring=keyring, request_mac=query.mac, xfr=True, multi=True
        )
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer, host


def test_a_signed_request_from_outside_the_acl_is_refused_signed() -> None:
    keyring = dns.tsigkeyring.from_text({"xfr-key.": ("hmac-sha256", SECRET)})
    query = signed_query(keyring, "xfr-key.")
    (reply,) = keyed_transfers(TsigKeys([KEY])).respond(query.to_wire(), "203.0.113.1")
    message = dns.message.from_wire(reply, keyring=keyring, request_mac=query.mac)
    assert message.had_tsig and message.rcode() == dns.rcode.REFUSED
