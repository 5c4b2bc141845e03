"""TSIG on zone transfers: unsigned or wrongly signed requests are refused; the answer is a
correctly signed multi-message stream (checked with dnspython as the secondary would)."""

from __future__ import annotations

import base64

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
