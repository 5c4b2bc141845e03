"""A real ``rbl serve`` with the compiled hot path and with it forced off: the same answers.

Both servers read the same store; the queries (dnspython's, plus raw packets
the C declines or rejects) go to each over UDP and the reply bytes must be
equal. The start log says which path runs; /metrics counts the answers by
zone and rcode, and the rate limiter drops and slips, alike on both paths.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import pytest

from rbl.dnsserver.hotpath import ENV
from tests.support.dns_client import make_query
from tests.support.dns_wire import raw_header, raw_name, raw_opt, raw_question
from tests.support.processes import rbl_command
from tests.support.scrape import scrape, total
from tests.support.server import RunningServer, start_server, stop_server

pytest.importorskip("rbl.dnsserver._hotpath")

ZONE = "bl.example.org"
COMPILED = "answering with the compiled hot path"
FORCED = f"compiled hot path not available: {ENV}=0 forces the Python path; answering in Python"
METRICS = '\n[metrics]\nlisten = "127.0.0.1:0"\n'
NAMES = [
    (f"5.2.0.192.{ZONE}", "A"),
    (f"5.2.0.192.{ZONE}", "TXT"),
    (f"5.2.0.192.{ZONE}", "ANY"),
    (f"9.2.0.192.{ZONE}", "A"),  # NXDOMAIN
    (f"77.2.0.192.{ZONE}", "TXT"),  # its own TXT
    (f"78.2.0.192.{ZONE}", "ANY"),  # two codes
    (f"2.0.0.127.{ZONE}", "TXT"),  # RFC 5782 test point
    (f"1.0.0.127.{ZONE}", "A"),  # its excluded twin
    (f"7.100.51.198.{ZONE}", "A"),  # the /24
    (ZONE, "SOA"),
    (ZONE, "NS"),
    ("example.net", "A"),  # REFUSED
    ("example.com.dbl.example.org", "A"),  # a domain zone: Python on both
    (f"5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.{ZONE}", "TXT"),  # IPv6
]


def packets() -> list[bytes]:
    found = []
    for edns in (None, 0):
        for do in (False, True):
            for name, rdtype in NAMES:
                if edns is None and do:
                    continue
                found.append(make_query(name, rdtype, edns=edns, do=do, qid=0x4242).to_wire())
    name = raw_name([b"5", b"2", b"0", b"192", b"bl", b"example", b"org"])
    found += [
        raw_header(ar=1) + raw_question(name, 16) + raw_opt(300),  # a small payload: TC
        raw_header(ar=1) + raw_question(name) + raw_opt(version=1),  # BADVERS
        raw_header() + raw_question(b"\x01a\xc0\x0c"),  # a pointer loop: FORMERR
        raw_header(qd=2) + raw_question(name) * 2,
        (raw_header() + raw_question(name))[:-3],  # cut short
        b"\x12\x34\x81\x00" + bytes(8),  # a response: silence
    ]
    return found


def ask(server: RunningServer, data: bytes) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        sock.sendto(data, (server.host, server.port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningServer]]:
    from tests.support.config import write_config

    directory = tmp_path_factory.mktemp("hotpath")
    config = write_config(directory, extra=METRICS)
    rbl_command(config, "db", "init")
    for key in ("192.0.2.5", "198.51.100.0/24", "2001:db8::5"):
        rbl_command(config, "list", "add", key, "--reason", "hot path test")
    rbl_command(config, "list", "add", "example.com", "--reason", "hot path test")
    rbl_command(config, "list", "add", "192.0.2.77", "--txt", "own {key} text", "--reason", "t")
    rbl_command(config, "list", "add", "192.0.2.78", "--code", "127.0.0.3", "--code", "127.0.0.4",
                "--reason", "t")  # fmt: skip
    running: dict[str, RunningServer] = {}
    try:
        running["c"] = start_server(config, env={ENV: "1"})
        running["python"] = start_server(config, env={ENV: "0"})
        yield running
    finally:
        for server in running.values():
            stop_server(server)


@pytest.mark.slow
def test_the_start_log_names_the_path(servers: dict[str, RunningServer]) -> None:
    assert COMPILED in servers["c"].log() and "not available" not in servers["c"].log()
    assert FORCED in servers["python"].log()


@pytest.mark.slow
def test_same_answers_on_both_paths(servers: dict[str, RunningServer]) -> None:
    answered = 0
    for data in packets():
        c, python = ask(servers["c"], data), ask(servers["python"], data)
        assert c == python, data
        if c is not None:
            answered += 1
            dns.message.from_wire(c)  # dnspython parses it
    assert answered == len(packets()) - 1  # all but the response


@pytest.mark.slow
def test_counts_are_the_same_on_both_paths(servers: dict[str, RunningServer]) -> None:
    counts = {}
    for name, server in servers.items():
        for data in packets():
            ask(server, data)
        samples = scrape(server.info["metrics"])  # type: ignore[arg-type]
        counts[name] = {key: v for key, v in samples.items() if key[0] == "rbl_dns_responses_total"}
        assert total(samples, "rbl_dns_responses_total", zone=ZONE, rcode="NXDOMAIN") > 0
        assert total(samples, "rbl_dns_queries_total", transport="udp") >= len(packets())
    assert counts["c"] == counts["python"]


@pytest.mark.slow
@pytest.mark.parametrize("path", [{ENV: "1"}, {ENV: "0"}], ids=["c", "python"])
def test_rate_limit_verdicts_on_both_paths(tmp_path: Path, path: dict[str, str]) -> None:
    from tests.support.config import write_config

    limit = 10
    config = write_config(tmp_path)
    text = config.read_text().replace(
        'listen = ["127.0.0.1:0"]\n',
        'listen = ["127.0.0.1:0"]\n\n[dns.rate_limit]\n'
        f"responses_per_second = {limit}\nslip = 2\nipv4_prefix = 32\nexempt = []\n",
        1,
    )
    config.write_text(text)
    rbl_command(config, "db", "init")
    server = start_server(config, env=path)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.6", 0))
            query = make_query(f"2.0.0.127.{ZONE}", "A").to_wire()
            for _ in range(3 * limit):
                sock.sendto(query, (server.host, server.port))
            sock.settimeout(1.0)
            replies = []
            while True:
                try:
                    replies.append(dns.message.from_wire(sock.recv(4096)))
                except TimeoutError:
                    break
        answered = [r for r in replies if not r.flags & dns.flags.TC]
        slipped = [r for r in replies if r.flags & dns.flags.TC]
        assert limit <= len(answered) <= 2 * limit
        assert slipped and not any(r.answer for r in slipped)
        assert len(answered) + len(slipped) < 3 * limit  # some were dropped
    finally:
        stop_server(server)
