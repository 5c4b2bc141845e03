"""NSD, BIND and Knot, each a real secondary of a real ``rbl serve``, answer as rbl does.

Flow for each kind: list a few keys with the CLI (an IPv4 address, an IPv4 /24
with an allowlisted address inside, an IPv6 address, a domain and a ``*.name``
wildcard with an allowlisted name under it), start ``rbl serve`` with transfers
allowed to 127.0.0.1 and NOTIFY to the secondary's port, start the secondary,
wait until it serves rbl's serials, compare A, TXT and rcodes for listed,
excepted and unlisted names, then ``rbl list add`` and expect the secondary to
serve the new serial within seconds: only NOTIFY gets it there (the SOA refresh
is far longer). With TSIG the same, every message signed: flat ``[transfer] tsig``,
and a key bound to the secondary in ``[[transfer.secondaries]]`` (signed NOTIFY, which
NSD and Knot are set to require). A secondary with a wrong key gets nothing, and rbl
logs the TSIG error once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from rbl.zonedata.records import EXCEPTED_TYPE
from tests.support.config import write_config
from tests.support.ports import free_port
from tests.support.processes import rbl_command
from tests.support.secondaries import (
    KINDS,
    Secondary,
    require,
    running_secondary,
    summary,
)
from tests.support.server import RunningServer, start_server, stop_server

pytestmark = pytest.mark.slow

IP_ZONE, DOMAIN_ZONE = "bl.example.org", "dbl.example.org"
ZONES = (IP_ZONE, DOMAIN_ZONE)
KEY = "xfr-key:hmac-sha256:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
TRANSFER = """
[transfer]
allow = ["127.0.0.1/32"]
notify = ["127.0.0.1:{port}"]
"""
LISTED = (
    "45.1.1.1",
    "45.3.3.0/24",
    "45.4.4.0/25",
    "2001:db8:1::1",
    "*.spam.example",
    "plain.example",
)
ALLOWED = ("45.3.3.5", "ok.spam.example")
NAMES = [
    f"{relative}.{IP_ZONE}"
    for relative in (
        "1.1.1.45",  # listed address
        "2.1.1.45",  # unlisted neighbour
        "9.3.3.45",  # inside the /24
        "5.3.3.45",  # allowlisted inside the /24
        "1.4.3.45",  # outside it
        "5.4.4.45",  # inside the /25
        "200.4.4.45",  # outside it
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2",  # the IPv6 address
        "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2",
        "2.0.0.127",  # the test point
        "1.0.0.127",
    )
] + [
    f"{relative}.{DOMAIN_ZONE}"
    for relative in (
        "plain.example",
        "www.plain.example",
        "a.spam.example",
        "x.y.spam.example",
        "ok.spam.example",  # allowlisted under the wildcard
        "spam.example",
        "other.example",
        "test",
        "invalid",
    )
]
WILDCARD_MATCHES = {f"a.spam.example.{DOMAIN_ZONE}", f"x.y.spam.example.{DOMAIN_ZONE}"}


def serving(server: RunningServer, zone: str) -> int:
    reply = server.query(zone, "SOA")
    return int(reply.answer[0][0].serial)


def same_answers(
    server: RunningServer, secondary: Secondary, qname: str, *, texts: bool = True
) -> None:
    """The same rcode and A records; the same TXT too unless ``texts`` is False."""
    name = dns.name.from_text(qname)
    ours, theirs = server.query(name, "A"), secondary.query(name, "A")
    assert summary(theirs) == summary(ours), qname
    ours, theirs = server.query(name, "TXT"), secondary.query(name, "TXT")
    assert theirs.rcode() == ours.rcode(), qname
    if texts:
        expected = [sorted(r.to_text() for r in rrset) for rrset in ours.answer]
        assert [sorted(r.to_text() for r in rrset) for rrset in theirs.answer] == expected, qname


# The key bound to the secondary: it must sign with it, and its NOTIFYs are signed (NSD and
# Knot are set to refuse unsigned ones).
PER_SECONDARY = """
[transfer]
tsig = ["{key}"]

[[transfer.secondaries]]
address = "127.0.0.1:{port}"
key = "xfr-key"
"""
MODES = ("address-acl", "tsig", "tsig-per-secondary")


def case(kind: str, mode: str) -> object:
    return pytest.param(kind, mode, id=f"{kind}-{mode}")


def transfer_config(mode: str, port: int) -> str:
    if mode == "tsig-per-secondary":
        return PER_SECONDARY.format(key=KEY, port=port)
    return TRANSFER.format(port=port) + (f'tsig = ["{KEY}"]\n' if mode == "tsig" else "")


@contextmanager
def following(
    tmp_path: Path, kind: str, mode: str, *, secondary_key: str | None = None, wait: bool = True
) -> Iterator[tuple[Path, RunningServer, Secondary]]:
    """``rbl serve`` with the listings, and ``kind`` serving both zones at rbl's serials.

    ``secondary_key`` gives the secondary another key than rbl's (then, ``wait`` False,
    nothing is waited for).
    """
    require(kind)
    port = free_port()
    config = write_config(tmp_path, extra=transfer_config(mode, port))
    for key in LISTED:
        rbl_command(config, "list", "add", key, "--reason", "secondaries test")
    for key in ALLOWED:
        rbl_command(config, "allowlist", "add", key, "--reason", "secondaries test")
    server = start_server(config)
    try:
        with running_secondary(
            kind,
            tmp_path,
            ZONES,
            server.port,
            port=port,
            tsig=secondary_key or (KEY if mode != "address-acl" else None),
            signed_notify=mode == "tsig-per-secondary",
        ) as secondary:
            began = time.monotonic()
            for zone in ZONES if wait else ():
                secondary.wait_serial(serving(server, zone), 15, zone)
            print(
                f"{kind}: answering {secondary.started:.2f}s, zones {time.monotonic() - began:.2f}s"
            )
            yield config, server, secondary
    finally:
        stop_server(server)
        print(server.log()[-3000:])


@pytest.mark.parametrize(("kind", "mode"), [case(kind, mode) for mode in MODES for kind in KINDS])
def test_secondary_follows_rbl_serve(tmp_path: Path, kind: str, mode: str) -> None:
    with following(tmp_path, kind, mode) as (config, server, secondary):
        for qname in NAMES:
            same_answers(server, secondary, qname, texts=qname not in WILDCARD_MATCHES)
        before = serving(server, IP_ZONE)
        rbl_command(config, "list", "add", "45.7.7.7", "--reason", "after the transfer")
        added = time.monotonic()
        while serving(server, IP_ZONE) == before:
            assert time.monotonic() - added < 5, "rbl serve did not take the change"
            time.sleep(0.02)
        secondary.wait_serial(serving(server, IP_ZONE), 5)  # NOTIFY, then a transfer
        print(f"{kind}: new serial {time.monotonic() - added:.2f}s after the CLI returned")
        same_answers(server, secondary, f"7.7.7.45.{IP_ZONE}")
        assert secondary.query(f"7.7.7.45.{IP_ZONE}", "A").rcode() == 0
        assert "expected a TSIG" not in secondary.log()  # BIND's SOA query got a signed answer
        assert "TSIG" not in server.log(), server.log()[-2000:]  # no TSIG failure logged
        if mode == "tsig-per-secondary":  # the signed NOTIFY's answer was signed back
            assert "acknowledged" in server.log()


WRONG_KEY = "xfr-key:hmac-sha256:ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="


@pytest.mark.parametrize("kind", KINDS)
def test_a_secondary_with_a_wrong_key_gets_nothing_and_rbl_says_so_once(
    tmp_path: Path, kind: str
) -> None:
    """Same key name, another secret: every request is BADSIG; one log line, a metric."""
    with following(tmp_path, kind, "tsig", secondary_key=WRONG_KEY, wait=False) as (
        config,
        server,
        secondary,
    ):
        rbl_command(config, "list", "add", "45.8.8.8", "--reason", "a NOTIFY to prompt it")
        deadline = time.monotonic() + 20
        while server.log().count("TSIG BADSIG") == 0:
            assert time.monotonic() < deadline, f"no TSIG error logged:\n{server.log()[-3000:]}"
            time.sleep(0.1)
        time.sleep(3)  # more attempts: still one line
        assert secondary.serial(IP_ZONE) is None, "the secondary got the zone with a wrong key"
        log = server.log()
        (line,) = [text for text in log.splitlines() if "TSIG" in text]
        assert "TSIG BADSIG from 127.0.0.1 with key xfr-key" in line, line


@pytest.mark.parametrize("kind", KINDS)
def test_wildcard_txt_names_the_listing_on_secondaries(tmp_path: Path, kind: str) -> None:
    """The one documented difference (rbl.zonedata.records): under ``*.spam.example``
    rbl's TXT names the queried domain, a secondary's the listing it matched."""
    with following(tmp_path, kind, "address-acl") as (_, server, secondary):
        for qname in sorted(WILDCARD_MATCHES):
            queried = qname.removesuffix(f".{DOMAIN_ZONE}")
            ours = [r.to_text() for rrset in server.query(qname, "TXT").answer for r in rrset]
            theirs = [r.to_text() for rrset in secondary.query(qname, "TXT").answer for r in rrset]
            assert len(ours) == 1 and queried in ours[0], (qname, ours)
            assert theirs == [ours[0].replace(queried, "*.spam.example")], (qname, theirs)


EXCEPTED = f"ok.spam.example.{DOMAIN_ZONE}"


@pytest.mark.parametrize("kind", KINDS)
def test_an_excepted_name_tells_nothing_and_lists_nothing(tmp_path: Path, kind: str) -> None:
    """The allowlisted name under ``*.spam.example`` is in the zone (else the wildcard
    would answer for it) as one empty record of a private-use type: the transfer says
    nothing of why, and each secondary answers A, TXT and ANY without a listing."""
    with following(tmp_path, kind, "address-acl") as (_, server, secondary):
        transferred = dns.query.xfr(
            "127.0.0.1", DOMAIN_ZONE, port=server.port, timeout=5, relativize=False
        )
        records = [rrset for message in transferred for rrset in message.answer]
        text = "\n".join(rrset.to_text() for rrset in records)
        assert "allowlist" not in text.lower() and "HINFO" not in text
        at_name = [rrset for rrset in records if rrset.name.to_text() == f"{EXCEPTED}."]
        assert [(rrset.rdtype, [rdata.to_wire() for rdata in rrset]) for rrset in at_name] == [
            (EXCEPTED_TYPE, [b""])
        ]
        for rdtype in ("A", "TXT", "ANY"):
            reply = secondary.query(EXCEPTED, rdtype)
            print(f"{kind} {EXCEPTED} {rdtype}: {dns.rcode.to_text(reply.rcode())} {reply.answer}")
            assert reply.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
            kinds = {rrset.rdtype for rrset in reply.answer}
            assert not kinds & {dns.rdatatype.A, dns.rdatatype.TXT}, (kind, rdtype, reply)
        assert summary(secondary.query(EXCEPTED, "A")) == summary(server.query(EXCEPTED, "A"))
        below = secondary.query(f"x.{EXCEPTED}", "A")  # the entry covers its subtree too
        assert below.rcode() == dns.rcode.NXDOMAIN and not below.answer
