"""Debian's rbldnsd, loading the rbldnsd dump, answers like ``rbl serve`` on the same store.

The store has several codes, CIDRs on and off octet boundaries, nested
listings, allowlisted addresses and networks inside listings (and a listing
inside an allowlisted network), own TXT templates, IPv6, an RHSBL zone with
wildcards and an allowlisted name below one, and the RFC 5782 test points.
Both servers are asked A and TXT for listed and unlisted names with
dnspython. Skipped without rbldnsd, except in CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import ipaddress
import os
import random
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from rbl.config import load_settings
from tests.support.dump_seed import DOMAIN_ZONE, IP_ZONE, Seeded, seed
from tests.support.ports import free_port
from tests.support.processes import stop
from tests.support.server import RunningServer, start_server, stop_server

pytestmark = pytest.mark.slow

RBLDNSD = os.environ.get("RBLDNSD", "/usr/sbin/rbldnsd")
RBLDNSD_USER = "rbldns"

CONFIG = """
[dns]
listen = ["127.0.0.1:0"]

[database]
url = "sqlite:///{db}"

[sync]
poll_interval = 0.1

[[zones]]
name = "bl.example.org"
kind = "ip"
ns = ["ns1.example.org", "ns2.example.net"]
txt = "Listed: {{url}}"
lookup_url = "https://www.example.org/lookup/{{key}}"

[zones.soa]
rname = "hostmaster@example.org"
minimum = 120

[[zones]]
name = "dbl.example.org"
kind = "domain"
ttl = 600
ns = ["ns1.example.org"]
default_code = "127.0.1.2"
txt = "Domain {{key}} listed"
"""

# Listed or not, each with a reason to be in the sample.
IP_SAMPLE = [
    "192.0.2.1", "192.0.2.77", "192.0.2.2", "198.51.100.7", "198.51.100.8", "198.51.100.255",
    "203.0.113.1", "203.0.113.70", "203.0.113.128", "10.0.0.1", "10.1.1.1", "10.1.2.3",
    "10.1.3.3", "10.255.255.255", "172.16.0.1", "172.16.5.5", "172.16.15.255", "172.16.16.0",
    "100.64.1.1", "100.64.1.100", "100.64.2.1", "100.64.2.100", "127.0.0.2", "127.0.0.1",
    "127.0.0.3", "45.200.1.2", "2001:db8::1", "2001:db8::2", "2001:db8:1::1",
    "2001:db8:1::5", "2001:db8:3:ffff::9", "2001:db8:4::3", "2001:db8:4:4::",
    "::ffff:7f00:2", "::ffff:7f00:1",
]  # fmt: skip
DOMAIN_SAMPLE = [
    "spam.example", "x.spam.example", "a.b.spam.example", "bad.example", "z.bad.example",
    "a.b.c.bad.example", "b.c.bad.example", "q.a.b.c.bad.example", "x.example", "y.x.example",
    "good.bad.example", "w.good.bad.example", "example", "test", "invalid", "clean.example",
]  # fmt: skip
# Exact names: rbldnsd's $ in a dnset is the listed name, which equals the queried one.
DOMAIN_TXT_COMPARABLE = {"spam.example", "a.b.c.bad.example", "x.example", "test"}


def rbldnsd_available() -> bool:
    if Path(RBLDNSD).is_file() and os.access(RBLDNSD, os.X_OK):
        return True
    if os.environ.get("CI"):
        pytest.fail(f"{RBLDNSD} is required in CI (apt-get install rbldnsd)")
    pytest.skip(f"{RBLDNSD} not installed")


def ask(port: int, name: str, rdtype: str) -> tuple[str, list[str]]:
    query = dns.message.make_query(name, rdtype)
    for _attempt in range(3):
        try:
            response = dns.query.udp(query, "127.0.0.1", port=port, timeout=2)
            break
        except dns.exception.Timeout:
            continue
    else:
        raise AssertionError(f"no answer from port {port} for {name} {rdtype}")
    values: list[str] = []
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.A:
            values += [r.address for r in rrset]
        elif rrset.rdtype == dns.rdatatype.TXT:
            values += [b"".join(r.strings).decode() for r in rrset]
    return dns.rcode.to_text(response.rcode()), sorted(values)


@pytest.fixture
def rbldnsd(tmp_path: Path) -> Iterator[tuple[Seeded, int]]:
    rbldnsd_available()
    seeded = seed(tmp_path)
    out = tmp_path / "dumps"
    from rbl.dumps.writer import write_dumps
    from rbl.store.settingslog import record_fingerprints
    from rbl.zonedata.fingerprint import fingerprint

    # As in a running fleet, a serving node recorded the zones' settings before the dump
    # (else ``rbl serve`` below records them at start: one serial past the dump's).
    zones = {zone.name: fingerprint(zone) for zone in seeded.settings.zones}
    record_fingerprints(seeded.settings.database.url, zones)

    write_dumps(seeded.settings, seeded.reader, out, datetime.now(UTC))
    port = free_port()
    argv = [RBLDNSD, "-n", "-b", f"127.0.0.1/{port}", "-c", "0", "-a"]
    if os.geteuid() == 0:
        # rbldnsd will not run as root: chroot into the dump and drop to its user.
        out.chmod(0o755)
        for path in out.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        argv += ["-r", str(out), "-u", RBLDNSD_USER]
    else:
        argv += ["-w", str(out)]
    argv += [
        f"{IP_ZONE}:ip4set:{IP_ZONE}/{IP_ZONE}.ip4set",
        f"{IP_ZONE}:ip6trie:{IP_ZONE}/{IP_ZONE}.ip6trie",
        f"{DOMAIN_ZONE}:dnset:{DOMAIN_ZONE}/{DOMAIN_ZONE}.dnset",
    ]
    log = (tmp_path / "rbldnsd.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"rbldnsd exited {process.returncode}: {(tmp_path / 'rbldnsd.log').read_text()}"
                )
            try:
                rcode, _ = ask(port, f"2.0.0.127.{IP_ZONE}", "A")
                if rcode == "NOERROR":
                    break
            except (AssertionError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("rbldnsd did not answer")
            time.sleep(0.1)
        yield seeded, port
    finally:
        stop(process)
        log.close()
        text = (tmp_path / "rbldnsd.log").read_text()
        assert "invalid" not in text and "warning" not in text.lower(), text


@pytest.fixture
def rbl(rbldnsd: tuple[Seeded, int]) -> Iterator[RunningServer]:
    seeded, _port = rbldnsd
    config = seeded.directory / "serve.toml"
    config.write_text(CONFIG.format(db=seeded.directory / "rbl.sqlite"))
    assert load_settings(config).zones == seeded.settings.zones
    server = start_server(config, "--dns-only")
    try:
        yield server
    finally:
        stop_server(server)


def reverse(address: str, zone: str) -> str:
    parsed = ipaddress.ip_address(address)
    if parsed.version == 4:
        return ".".join(reversed(address.split("."))) + f".{zone}"
    return ".".join(reversed(f"{int(parsed):032x}")) + f".{zone}"


def test_rbldnsd_answers_like_rbl(rbldnsd: tuple[Seeded, int], rbl: RunningServer) -> None:
    seeded, rbldnsd_port = rbldnsd
    rng = random.Random(5782)
    addresses = IP_SAMPLE + [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(100)]
    # rbldnsd writes an IPv4-mapped address as 127.0.0.2 in TXT, rbl as ::ffff:7f00:2.
    questions = [(reverse(a, IP_ZONE), not a.startswith("::ffff:")) for a in addresses]
    questions += [
        (f"{name}.{DOMAIN_ZONE}", name in DOMAIN_TXT_COMPARABLE) for name in DOMAIN_SAMPLE
    ]
    listed = 0
    empty_non_terminals: set[str] = set()
    for name, compare_txt in questions:
        ours = ask(rbl.port, name, "A")
        theirs = ask(rbldnsd_port, name, "A")
        listed += bool(ours[1])
        ours_txt = ask(rbl.port, name, "TXT")
        theirs_txt = ask(rbldnsd_port, name, "TXT")
        if ours == ("NOERROR", []) and theirs == ("NXDOMAIN", []):
            # Not listed by either: rbl answers NODATA for a name with listings below
            # it (an empty non-terminal), Debian's rbldnsd NXDOMAIN.
            empty_non_terminals.add(name)
            continue
        assert ours == theirs, f"{name} A: rbl {ours} rbldnsd {theirs}"
        assert ours_txt[0] == theirs_txt[0], f"{name} TXT rcode"
        assert bool(ours_txt[1]) == bool(theirs_txt[1]), f"{name} TXT presence"
        if compare_txt:
            assert ours_txt == theirs_txt, f"{name} TXT: rbl {ours_txt} rbldnsd {theirs_txt}"
    assert listed >= 25
    # ... and for an allowlisted name below a listed *.name (rbldnsd: an exclusion).
    assert empty_non_terminals == {
        f"{name}.{DOMAIN_ZONE}" for name in ("bad.example", "example", "good.bad.example")
    }
    # Serial and NS come from the same $SOA/$NS the dump wrote.
    for zone in (IP_ZONE, DOMAIN_ZONE):
        for port in (rbl.port, rbldnsd_port):
            response = dns.query.udp(dns.message.make_query(zone, "SOA"), "127.0.0.1", port=port)
            serials = {r.serial for rrset in response.answer for r in rrset}
            assert serials == {seeded.reader.change_positions()[zone]}, (zone, port)
