"""IXFR from a real ``rbl serve``, with dnspython as the secondary (``dns.query.inbound_xfr``).

dnspython loads an AXFR, then applies rbl's IXFR answers to it (RFC 1995, its own
reader); after each change the result must equal a fresh AXFR, the transfer log
must say IXFR with the difference's size, and the metrics count it as ``ixfr``.
A restart of rbl serve with a change made meanwhile leaves the history unable to
answer: the IXFR is answered in full, and the log says why.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import dns.query
import dns.xfr
import dns.zone
import pytest

from tests.support.config import write_config
from tests.support.ports import free_port
from tests.support.processes import rbl_command
from tests.support.scrape import scrape, total
from tests.support.server import RunningServer, start_server, stop_server

pytestmark = pytest.mark.slow

ZONE = "bl.example.org"


def serial_of(server: RunningServer, zone: str = ZONE) -> int:
    return int(server.query(zone, "SOA").answer[0][0].serial)


def changed(
    server: RunningServer, config: Path, *args: str, stdin: str | None = None, zone: str = ZONE
) -> int:
    """Run an ``rbl`` command and wait until the server serves a new serial of ``zone``."""
    before = serial_of(server, zone)
    rbl_command(config, *args, stdin=stdin)
    deadline = time.monotonic() + 10
    while serial_of(server, zone) == before:
        assert time.monotonic() < deadline, "rbl serve did not take the change"
        time.sleep(0.02)
    return serial_of(server, zone)


def axfr(server: RunningServer, name: str = ZONE) -> dns.zone.Zone:
    zone = dns.zone.Zone(name)
    dns.query.inbound_xfr(server.host, zone, port=server.port, timeout=10)
    return zone


def ixfr(server: RunningServer, zone: dns.zone.Zone) -> None:
    query, _serial = dns.xfr.make_query(zone)
    assert query.question[0].rdtype == dns.rdatatype.IXFR
    dns.query.inbound_xfr(server.host, zone, query, port=server.port, timeout=10)


def log_line(server: RunningServer, pattern: str) -> re.Match[str]:
    deadline = time.monotonic() + 10
    while (found := re.search(pattern, server.log())) is None:
        assert time.monotonic() < deadline, f"no {pattern!r} in:\n{server.log()[-3000:]}"
        time.sleep(0.05)
    return found


def test_dnspython_follows_rbl_by_ixfr(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(
        tmp_path,
        extra='\n[transfer]\nallow = ["127.0.0.1/32"]\n\n[metrics]\nlisten = "127.0.0.1:0"\n',
    )
    config.write_text(config.read_text().replace('127.0.0.1:0"]', f'127.0.0.1:{port}"]', 1))
    rbl_command(
        config,
        "list",
        "import",
        "-",
        "--zone",
        ZONE,
        "--reason",
        "base",
        stdin="".join(f"45.1.{n >> 8}.{n & 255}\n" for n in range(2000)) + "45.9.0.0/16\n",
    )
    server = start_server(config)
    try:
        secondary = axfr(server)
        steps: list[tuple[str, ...]] = [
            ("list", "add", "45.7.7.7", "--reason", "new"),
            ("list", "remove", "45.1.0.9", "--reason", "gone", "--yes"),
            ("allowlist", "add", "45.9.3.3", "--reason", "hole in a network"),
            ("list", "add", "45.7.7.7", "--code", "127.0.0.5", "--reason", "changed"),
        ]
        sizes = []
        for step in steps:
            before = serial_of(server)
            after = changed(server, config, *step)
            ixfr(server, secondary)
            assert secondary == axfr(server), step
            found = log_line(
                server,
                rf"transfer {ZONE} IXFR to 127\.0\.0\.1: complete, serial {before} -> {after}, "
                r"(\d+) records, (\d+) bytes",
            )
            sizes.append(int(found.group(2)))
        assert max(sizes[:2]) < 600 and sizes[3] < 600, sizes  # one listing: a few hundred bytes
        # several changes, one IXFR: 45.7.7.7 changes twice (one A out, one in), 45.7.7.8 is new
        before = serial_of(server)
        for code in ("127.0.0.6", "127.0.0.7"):
            changed(server, config, "list", "add", "45.7.7.7", "--code", code, "--reason", "x")
        after = changed(server, config, "list", "add", "45.7.7.8", "--reason", "x")
        ixfr(server, secondary)
        assert secondary == axfr(server)
        log_line(
            server,
            rf"IXFR to 127\.0\.0\.1: complete, serial {before} -> {after}, 8 records",  # 4 SOA
        )
        samples = scrape(server.info["metrics"])  # type: ignore[arg-type]
        assert total(samples, "rbl_transfers_total", type="ixfr", outcome="complete") >= 5
        assert total(samples, "rbl_transfers_total", type="ixfr_axfr") == 0
        stop_server(server)

        rbl_command(config, "list", "add", "45.7.7.9", "--reason", "while rbl was down")
        server = start_server(config)
        ixfr(server, secondary)  # answered in full: rbl's history starts after a restart
        assert secondary == axfr(server)
        log_line(
            server,
            rf"transfer {ZONE} IXFR \(fell back to AXFR\) to 127\.0\.0\.1: complete, "
            rf"serial {after} -> .*in full because serial {after} is not in the history",
        )
    finally:
        stop_server(server)


def test_dnspython_follows_a_domain_zone_by_ixfr(tmp_path: Path) -> None:
    """Wildcards, names below them and allowlisted names under them (the records that
    repair DNS wildcard semantics) change by IXFR exactly as a fresh AXFR has them."""
    zone = "dbl.example.org"
    config = write_config(tmp_path, extra='\n[transfer]\nallow = ["127.0.0.1/32"]\n')
    for key in ("plain.example", "a.b.spam.example", "other.example"):
        rbl_command(config, "list", "add", key, "--reason", "base")
    server = start_server(config)
    try:
        secondary = axfr(server, zone)
        steps: list[tuple[str, ...]] = [
            ("list", "add", "*.spam.example", "--reason", "wildcard over a listed name"),
            ("allowlist", "add", "ok.spam.example", "--reason", "excepted under it"),
            ("list", "add", "x.y.spam.example", "--reason", "below the wildcard"),
            ("list", "remove", "a.b.spam.example", "--reason", "gone", "--yes"),
            ("list", "remove", "*.spam.example", "--reason", "gone", "--yes"),
            ("list", "add", "*.other.example", "--code", "127.0.1.9", "--reason", "x"),
        ]
        for step in steps:
            before = serial_of(server, zone)
            after = changed(server, config, *step, zone=zone)
            ixfr(server, secondary)
            assert secondary == axfr(server, zone), step
            log_line(
                server,
                rf"transfer {zone} IXFR to 127\.0\.0\.1: complete, serial {before} -> {after}",
            )
    finally:
        stop_server(server)
