"""Real ``rbl serve`` nodes: a SIGHUP that changes what a zone serves moves its serial.

* one node with a real NSD, BIND or Knot secondary: a new TTL by SIGHUP gives a
  new serial and a NOTIFY, and the secondary serves the new TTL within seconds
  (its SOA refresh is an hour: only the NOTIFY brings it);
* two nodes on one database (SQLite and PostgreSQL), started together: one
  settings row per zone, the same serials; one reloaded with a new TTL, both
  move to the same new serial, the other (stale settings) refuses AXFR with a
  log line until it is reloaded too, which writes no second row.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.xfr
import pytest
from sqlalchemy import select

from rbl.model.changes import OP_SETTINGS
from rbl.store.database import open_engine
from rbl.store.schema import change_log
from tests.support.config import database_url_of, write_config
from tests.support.ports import free_port
from tests.support.processes import rbl_command
from tests.support.scrape import scrape, value
from tests.support.secondaries import KINDS, require, running_secondary
from tests.support.server import RunningServer, start_server, stop_server

pytestmark = pytest.mark.slow

ZONE = "bl.example.org"
ZONES = (ZONE, "dbl.example.org")
LISTED = f"1.1.1.45.{ZONE}"
METRICS = """
[metrics]
listen = "127.0.0.1:0"
"""
TRANSFER = """
[transfer]
allow = ["127.0.0.1/32"]
notify = ["127.0.0.1:{port}"]
"""


def serial(server: RunningServer, zone: str = ZONE) -> int:
    return int(server.query(zone, "SOA").answer[0][0].serial)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < timeout, what
        time.sleep(0.02)
    return time.monotonic() - began


def reload_ttl(config: Path, servers: list[RunningServer], ttl: int) -> None:
    text = config.read_text()
    assert "ttl = 300" in text
    config.write_text(text.replace("ttl = 300", f"ttl = {ttl}", 1))
    for server in servers:
        os.kill(server.process.pid, signal.SIGHUP)


def settings_rows(config: Path) -> list[tuple[int, str]]:
    engine = open_engine(database_url_of(config), create=False)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(change_log.c.id, change_log.c.zone)
                .where(change_log.c.op == OP_SETTINGS)
                .order_by(change_log.c.id)
            )
            return [(row.id, row.zone) for row in rows]
    finally:
        engine.dispose()


def agrees(server: RunningServer) -> float | None:
    address = server.info["metrics"]
    assert isinstance(address, dict)
    return value(scrape(address), "rbl_zone_settings_agree", worker="0", zone=ZONE)


def axfr(server: RunningServer, zone: str = ZONE) -> list[dns.message.Message]:
    return list(dns.query.xfr(server.host, zone, port=server.port, timeout=5, lifetime=10))


def refused(server: RunningServer) -> bool:
    try:
        axfr(server)
    except dns.xfr.TransferError as exc:
        return exc.rcode == dns.rcode.REFUSED
    return False


@pytest.mark.parametrize("kind", KINDS)
def test_a_new_ttl_by_sighup_reaches_a_real_secondary(tmp_path: Path, kind: str) -> None:
    require(kind)
    port = free_port()
    config = write_config(tmp_path, extra=TRANSFER.format(port=port))
    rbl_command(config, "list", "add", "45.1.1.1", "--reason", "settings test")
    server = start_server(config)
    try:
        with running_secondary(kind, tmp_path, ZONES, server.port, port=port) as secondary:
            before = serial(server)
            secondary.wait_serial(before, 15, ZONE)
            assert secondary.query(LISTED, "A").answer[0].ttl == 300
            reload_ttl(config, [server], 60)
            sighup = time.monotonic()
            wait_for(lambda: serial(server) != before, 10, "rbl serve kept its serial")
            after = serial(server)
            assert after > before
            assert server.query(LISTED, "A").answer[0].ttl == 60
            secondary.wait_serial(after, 10, ZONE)  # NOTIFY: the SOA refresh is an hour
            took = time.monotonic() - sighup
            assert secondary.query(LISTED, "A").answer[0].ttl == 60
            print(f"{kind}: serving ttl 60 at serial {after} {took:.2f}s after SIGHUP")
            log = server.log()
            assert log.count(f"recorded new settings of {ZONE} ") == 2  # at start, at SIGHUP
            assert log.count("recorded new settings of dbl.example.org ") == 1  # at start
            # acknowledged, or (the first NOTIFY at start may have found the secondary not yet
        # up) the end of that failure streak with this serial
        target = re.escape(f"127.0.0.1:{port}")
        acked = rf"NOTIFY {re.escape(ZONE)} serial {after} to {target} acknowledged"
        recovered = (
            rf"NOTIFY to {target} recovered after [0-9.]+s failing: "
            rf"{re.escape(ZONE)} serial {after} acknowledged"
        )
        assert re.search(f"{acked}|{recovered}", log), log[-3000:]
    finally:
        stop_server(server)
        print(server.log()[-3000:])


def test_nodes_on_one_database_keep_identical_serials_and_a_stale_one_refuses(
    config_path: Path,
) -> None:
    text = config_path.read_text() + '\n[transfer]\nallow = ["127.0.0.1/32"]\n' + METRICS
    config_path.write_text(text)
    rbl_command(config_path, "list", "add", "45.1.1.1", "--reason", "settings test")
    started: list[RunningServer] = []
    threads = [
        threading.Thread(target=lambda: started.append(start_server(config_path, "--dns-only")))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    try:
        assert len(started) == 2
        first, second = started
        rows = settings_rows(config_path)
        assert sorted(zone for _, zone in rows) == sorted(ZONES)  # once, though both started
        for zone in ZONES:
            assert serial(first, zone) == serial(second, zone)
        before = serial(first)
        assert before == max(row for row, zone in rows if zone == ZONE)
        assert not refused(first) and not refused(second)
        assert agrees(first) == agrees(second) == 1
        # Only the first reloads: both move to its row; the second now serves stale settings.
        reload_ttl(config_path, [first], 60)
        wait_for(lambda: serial(second) != before, 10, "the second node kept its serial")
        wait_for(lambda: serial(first) == serial(second), 5, "the serials differ")
        moved = serial(first)
        assert moved > before and len(settings_rows(config_path)) == 3
        assert serial(first, "dbl.example.org") == serial(second, "dbl.example.org")
        assert second.query(LISTED, "A").answer[0].ttl == 300  # not reloaded
        assert refused(second), "a node with stale settings transferred the zone"
        assert "refusing a transfer of bl.example.org to 127.0.0.1" in second.log()
        assert agrees(second) == 0 and agrees(first) == 1
        served = axfr(first)
        assert served[0].answer[0][0].serial == moved
        assert {rrset.ttl for message in served for rrset in message.answer} >= {60}
        # The second reloads the same file: it agrees, and no second row is written.
        os.kill(second.process.pid, signal.SIGHUP)
        wait_for(lambda: second.query(LISTED, "A").answer[0].ttl == 60, 10, "no reload")
        wait_for(lambda: not refused(second), 5, "the reloaded node still refuses")
        assert len(settings_rows(config_path)) == 3
        assert serial(first) == serial(second) == moved
        assert agrees(second) == 1
    finally:
        for server in started:
            stop_server(server)


def test_a_node_that_cannot_start_records_nothing(tmp_path: Path) -> None:
    """Its ports are taken: it never served, so the fleet's recorded settings stay."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        config = write_config(tmp_path)
        config.write_text(config.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}", 1))
        rbl_command(config, "db", "init")
        with pytest.raises(AssertionError, match="rbl serve exited"):
            start_server(config, "--dns-only", timeout=30)
    assert settings_rows(config) == []
