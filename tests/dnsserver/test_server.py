"""A real ``rbl serve`` on loopback, queried by dnspython over UDP and TCP."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import socket
import struct
import time
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.support.processes import rbl_command
from tests.support.server import RunningServer, start_server, stop_server

pytestmark = pytest.mark.slow

ZONE = "bl.example.org"
DZONE = "dbl.example.org"


def ip_name(address: str, zone: str = ZONE) -> str:
    """The DNSBL query name: reversed octets, or 32 reversed nibbles for IPv6 (RFC 5782)."""
    parsed = ipaddress.ip_address(address)
    if parsed.version == 4:
        labels = reversed(str(parsed).split("."))
    else:
        labels = reversed(parsed.exploded.replace(":", ""))
    return ".".join(labels) + f".{zone}."


def udp(
    server: RunningServer, name: str, rdtype: str = "A", **kwargs: object
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kwargs)  # type: ignore[arg-type]
    return dns.query.udp(query, server.host, port=server.port, timeout=3)


def tcp(server: RunningServer, name: str, rdtype: str = "A") -> dns.message.Message:
    return server.query(name, rdtype, tcp=True)


def addresses(response: dns.message.Message) -> set[str]:
    return {
        rr.address for rrset in response.answer for rr in rrset if rrset.rdtype == dns.rdatatype.A
    }


def wait_for(predicate, timeout: float = 1.0) -> float:  # type: ignore[no-untyped-def]
    """Poll until predicate() is true; return the seconds it took, fail after ``timeout``."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.02)


def test_rfc5782_test_points_over_udp_and_tcp(serve: RunningServer) -> None:
    for ask in (udp, tcp):
        listed = ask(serve, ip_name("127.0.0.2"))
        assert listed.rcode() == dns.rcode.NOERROR
        assert addresses(listed) == {"127.0.0.2"}
        assert listed.flags & dns.flags.AA and not listed.flags & dns.flags.RA
        unlisted = ask(serve, ip_name("127.0.0.1"))
        assert unlisted.rcode() == dns.rcode.NXDOMAIN
        assert unlisted.authority[0].rdtype == dns.rdatatype.SOA
        assert ask(serve, ip_name("::ffff:7f00:2")).rcode() == dns.rcode.NOERROR
        assert ask(serve, ip_name("::ffff:7f00:1")).rcode() == dns.rcode.NXDOMAIN
        assert addresses(ask(serve, f"test.{DZONE}")) == {"127.0.0.2"}
        assert ask(serve, f"invalid.{DZONE}").rcode() == dns.rcode.NXDOMAIN


def test_listing_added_and_removed_reaches_dns_within_one_second(
    serve: RunningServer, config_path: Path
) -> None:
    name = ip_name("192.0.2.77")
    assert udp(serve, name).rcode() == dns.rcode.NXDOMAIN
    rbl_command(
        config_path,
        "list",
        "add",
        "192.0.2.0/24",
        "--code",
        "127.0.0.3",
        "--code",
        "127.0.0.4",
        "--reason",
        "test",
    )
    wait_for(lambda: udp(serve, name).rcode() == dns.rcode.NOERROR, timeout=1.0)
    response = udp(serve, name, "TXT")
    assert addresses(udp(serve, name)) == {"127.0.0.3", "127.0.0.4"}
    texts = [b"".join(rr.strings).decode() for rr in response.answer[0]]
    assert texts == ["Listed: https://www.example.org/lookup/192.0.2.77"]
    rbl_command(config_path, "list", "remove", "192.0.2.0/24", "--reason", "test", "--yes")
    wait_for(lambda: udp(serve, name).rcode() == dns.rcode.NXDOMAIN, timeout=1.0)


def test_ipv6_prefix_and_rhsbl_listings(serve: RunningServer, config_path: Path) -> None:
    rbl_command(config_path, "list", "add", "2001:db8:1::/64", "--reason", "test")
    rbl_command(config_path, "list", "add", "*.spam.example", "--reason", "test")
    rbl_command(
        config_path, "list", "add", "exact.example", "--code", "127.0.1.3", "--reason", "test"
    )
    inside = ip_name("2001:db8:1::99")
    wait_for(lambda: udp(serve, inside).rcode() == dns.rcode.NOERROR)
    assert addresses(udp(serve, inside)) == {"127.0.0.2"}
    assert udp(serve, ip_name("2001:db8:2::99")).rcode() == dns.rcode.NXDOMAIN
    wait_for(lambda: udp(serve, f"exact.example.{DZONE}").rcode() == dns.rcode.NOERROR)
    assert addresses(udp(serve, f"exact.example.{DZONE}")) == {"127.0.1.3"}
    assert udp(serve, f"sub.exact.example.{DZONE}").rcode() == dns.rcode.NXDOMAIN
    assert addresses(udp(serve, f"a.b.spam.example.{DZONE}")) == {"127.0.1.2"}
    # spam.example itself is not listed by *.spam.example, but names exist below it.
    apex_of_subtree = udp(serve, f"spam.example.{DZONE}")
    assert apex_of_subtree.rcode() == dns.rcode.NOERROR and not apex_of_subtree.answer
    assert udp(serve, f"example.{DZONE}").rcode() == dns.rcode.NOERROR
    assert udp(serve, f"other.{DZONE}").rcode() == dns.rcode.NXDOMAIN


def _trap_hits(config_path: Path, *addresses: str) -> None:
    """``rbl ingest`` of one trap hit from each address, as the trap feed lists them."""
    log = config_path.parent / f"hits-{addresses[0]}.json"
    log.write_text(
        "".join(
            json.dumps(
                {
                    "time": time.time() - 10,
                    "ip": ip,
                    "from": "a@spam.example",
                    "helo": "x",
                    "to": "trap@example.org",
                    "trap": True,
                }
            )
            + "\n"
            for ip in addresses
        )
    )
    rbl_command(config_path, "ingest", "--format", "json", str(log))


def test_one_ipv6_hit_lists_its_64_and_escalation_its_48(config_path: Path) -> None:
    """After one trap hit, every address of the sender's /64 is listed and the next /64
    is not; an allowlisted address inside stays unlisted; two listed /64s (configured)
    list their /48, the allowlisted address still excluded."""
    text = config_path.read_text()
    config_path.write_text(
        text.replace('lookup_url = "https', 'ipv6_escalate_after = 2\nlookup_url = "https', 1)
    )
    server = start_server(config_path)
    try:
        hit, rotated, neighbour = "2a01:4f8:1:1::5", "2a01:4f8:1:1:dead:beef:0:1", "2a01:4f8:1:2::5"
        assert udp(server, ip_name(rotated)).rcode() == dns.rcode.NXDOMAIN
        _trap_hits(config_path, hit)
        wait_for(lambda: udp(server, ip_name(rotated)).rcode() == dns.rcode.NOERROR)
        assert addresses(udp(server, ip_name(hit))) == {"127.0.0.2"}
        assert addresses(tcp(server, ip_name(rotated))) == {"127.0.0.2"}
        assert udp(server, ip_name(neighbour)).rcode() == dns.rcode.NXDOMAIN
        assert udp(server, ip_name("2a01:4f8:1:99::1")).rcode() == dns.rcode.NXDOMAIN
        good = "2a01:4f8:1:1::25"
        rbl_command(config_path, "allowlist", "add", good, "--reason", "a customer's relay")
        wait_for(lambda: udp(server, ip_name(good)).rcode() == dns.rcode.NXDOMAIN)
        assert udp(server, ip_name(rotated)).rcode() == dns.rcode.NOERROR
        _trap_hits(config_path, neighbour)
        beside = ip_name("2a01:4f8:1:99::1")
        wait_for(lambda: udp(server, beside).rcode() == dns.rcode.NOERROR)
        assert addresses(udp(server, ip_name(neighbour))) == {"127.0.0.2"}
        assert udp(server, ip_name(good)).rcode() == dns.rcode.NXDOMAIN
        assert udp(server, ip_name("2a01:4f8:2::1")).rcode() == dns.rcode.NXDOMAIN
    finally:
        stop_server(server)


def test_apex_soa_ns_negative_ttl_and_refused(serve: RunningServer) -> None:
    soa = udp(serve, ZONE, "SOA")
    assert soa.flags & dns.flags.AA
    record = soa.answer[0][0]
    assert record.mname.to_text() == "ns1.example.org." and record.minimum == 120
    ns = udp(serve, ZONE, "NS")
    assert {rr.target.to_text() for rr in ns.answer[0]} == {"ns1.example.org.", "ns2.example.net."}
    negative = udp(serve, ip_name("192.0.2.200"))
    assert negative.authority[0].ttl == 120  # min(zone ttl 300, SOA minimum 120)
    nodata = udp(serve, ip_name("127.0.0.2"), "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA
    refused = udp(serve, "www.example.com", "A")
    assert refused.rcode() == dns.rcode.REFUSED and not refused.flags & dns.flags.AA


def test_empty_non_terminals_for_qname_minimisation(serve: RunningServer) -> None:
    for partial in ("127", "0.127", "0.0.127"):
        response = udp(serve, f"{partial}.{ZONE}")
        assert response.rcode() == dns.rcode.NOERROR and not response.answer, partial
    assert udp(serve, f"0.0.10.{ZONE}").rcode() == dns.rcode.NXDOMAIN
    assert udp(serve, f"x.2.0.0.127.{ZONE}").rcode() == dns.rcode.NXDOMAIN
    assert udp(serve, f"2.0.0.0127.{ZONE}").rcode() == dns.rcode.NXDOMAIN


def test_edns_echo_and_truncation_then_full_answer_over_tcp(
    serve: RunningServer, config_path: Path
) -> None:
    long_text = "x" * 600 + " {key}"
    rbl_command(config_path, "list", "add", "198.51.100.9", "--txt", long_text, "--reason", "test")
    name = ip_name("198.51.100.9")
    wait_for(lambda: udp(serve, name).rcode() == dns.rcode.NOERROR)
    plain = udp(serve, name, "TXT")
    assert plain.flags & dns.flags.TC and not plain.answer
    with_edns = udp(serve, name, "TXT", use_edns=0, payload=4096, want_dnssec=True)
    assert with_edns.edns == 0 and with_edns.payload == 1232
    assert with_edns.ednsflags & dns.flags.DO
    assert not with_edns.flags & dns.flags.TC
    full = tcp(serve, name, "TXT")
    text = b"".join(full.answer[0][0].strings).decode()
    assert text == "x" * 600 + " 198.51.100.9"
    assert len(full.answer[0][0].strings) == 3  # split into 255-byte strings


def test_tcp_pipelined_queries_fed_in_odd_chunks(serve: RunningServer) -> None:
    queries = [dns.message.make_query(ip_name(a), "A") for a in ("127.0.0.2", "127.0.0.1")]
    stream = b"".join(struct.pack(">H", len(w)) + w for w in (q.to_wire() for q in queries))
    with socket.create_connection((serve.host, serve.port), timeout=5) as sock:
        for size in (1, 3, 2, 7, 1, 5):
            chunk, stream = stream[:size], stream[size:]
            sock.sendall(chunk)
            time.sleep(0.01)
        sock.sendall(stream)
        answers = [_read_tcp_message(sock) for _ in queries]
    assert [a.id for a in answers] == [q.id for q in queries]
    assert [a.rcode() for a in answers] == [dns.rcode.NOERROR, dns.rcode.NXDOMAIN]


def _read_tcp_message(sock: socket.socket) -> dns.message.Message:
    def exactly(count: int) -> bytes:
        data = b""
        while len(data) < count:
            part = sock.recv(count - len(data))
            assert part, "connection closed early"
            data += part
        return data

    (length,) = struct.unpack(">H", exactly(2))
    return dns.message.from_wire(exactly(length))


def test_garbage_never_stops_the_server(serve: RunningServer) -> None:
    rng = random.Random(5782)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        for _ in range(300):
            sock.sendto(rng.randbytes(rng.randrange(0, 600)), (serve.host, serve.port))
        valid = dns.message.make_query(ip_name("127.0.0.2"), "A").to_wire()
        for _ in range(200):  # mutated valid queries
            mutated = bytearray(valid)
            for _ in range(rng.randrange(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            sock.sendto(bytes(mutated), (serve.host, serve.port))
    for _ in range(20):
        with socket.create_connection((serve.host, serve.port), timeout=3) as conn:
            conn.sendall(os.urandom(rng.randrange(1, 300)))
    assert udp(serve, ip_name("127.0.0.2")).rcode() == dns.rcode.NOERROR
    assert tcp(serve, ip_name("127.0.0.2")).rcode() == dns.rcode.NOERROR
    assert serve.process.poll() is None


def test_formerr_notimp_and_badvers(serve: RunningServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(
            b"\x12\x34" + b"\x01\x00" + b"\x00\x05" + b"\x00" * 6 + b"\xff" * 5,
            (serve.host, serve.port),
        )
        reply = sock.recv(512)
    assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == dns.rcode.FORMERR
    status = dns.message.make_query(ip_name("127.0.0.2"), "A")
    status.set_opcode(2)
    assert dns.query.udp(status, serve.host, port=serve.port, timeout=3).rcode() == dns.rcode.NOTIMP
    future = dns.message.make_query(ip_name("127.0.0.2"), "A", use_edns=1)
    answer = dns.query.udp(future, serve.host, port=serve.port, timeout=3)
    assert answer.rcode() == dns.rcode.BADVERS


def test_listings_present_at_start_are_loaded(tmp_path: Path, config_path: Path) -> None:
    listing_file = tmp_path / "list.txt"
    listing_file.write_text("192.0.2.1\n192.0.2.64/26 :127.0.0.4\n2001:db8::/48\n")
    rbl_command(
        config_path, "list", "import", "--zone", ZONE, "--reason", "seed", str(listing_file)
    )
    server = start_server(config_path)
    try:
        assert server.info["listings"] == 3
        assert addresses(udp(server, ip_name("192.0.2.1"))) == {"127.0.0.2"}
        assert addresses(udp(server, ip_name("192.0.2.100"))) == {"127.0.0.4"}
        assert udp(server, ip_name("192.0.2.2")).rcode() == dns.rcode.NXDOMAIN
        assert udp(server, ip_name("2001:db8:0:ffff::1")).rcode() == dns.rcode.NOERROR
    finally:
        stop_server(server)
    assert server.process.returncode == 0


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this host has no IPv6 loopback")
def test_listens_on_ipv6_loopback(config_path: Path) -> None:
    server = start_server(config_path, "--listen", "[::1]:0")
    try:
        assert server.host == "::1"
        assert addresses(udp(server, ip_name("127.0.0.2"))) == {"127.0.0.2"}
        assert tcp(server, ip_name("127.0.0.1")).rcode() == dns.rcode.NXDOMAIN
    finally:
        stop_server(server)
