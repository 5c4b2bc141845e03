"""What an operator sees of secondaries in a real ``rbl serve``: NOTIFY over IPv4 and IPv6
to real sockets on loopback, an unreachable one failing and recovering, and the log line
and /metrics of real transfers over TCP."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path

import dns.message
import dns.name
import dns.rdatatype
import dns.rrset
import pytest

from tests.support.config import record_zone_settings, write_config
from tests.support.notify_listener import listening
from tests.support.ports import closed_port
from tests.support.processes import rbl_command
from tests.support.scrape import scrape, total, value, wait_for
from tests.support.server import RunningServer, start_server, stop_server

pytestmark = pytest.mark.slow

ZONE = "bl.example.org"


def wait_log(server: RunningServer, pattern: str, timeout: float = 15.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while True:
        found = re.search(pattern, server.log())
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line matching {pattern!r}:\n{server.log()[-3000:]}")
        time.sleep(0.05)


def raw_transfer(server: RunningServer, query: dns.message.Message) -> list[bytes]:
    """The messages of one transfer, as sent (until the closing SOA, or one error)."""
    data = query.to_wire()
    messages: list[bytes] = []
    soas = 0
    with socket.create_connection((server.host, server.port), timeout=10) as conn:
        conn.sendall(len(data).to_bytes(2, "big") + data)
        reader = conn.makefile("rb")
        while True:
            size = int.from_bytes(reader.read(2), "big")
            message = reader.read(size)
            messages.append(message)
            parsed = dns.message.from_wire(message, one_rr_per_rrset=True)
            soas += sum(1 for rrset in parsed.answer if rrset.rdtype == dns.rdatatype.SOA)
            lone_soa = len(messages) == 1 and len(parsed.answer) == 1
            if parsed.rcode() or soas >= 2 or lone_soa:
                return messages


def ixfr(serial: int) -> dns.message.Message:
    query = dns.message.make_query(ZONE, "IXFR")
    owner = dns.name.from_text(ZONE)
    query.authority.append(dns.rrset.from_text(owner, 0, "IN", "SOA", f". . {serial} 0 0 0 0"))
    return query


def test_notify_v4_v6_failure_recovery_and_transfer_figures(tmp_path: Path) -> None:
    down = closed_port("::1")
    with listening("127.0.0.1") as v4, listening("::1") as v6:
        config = write_config(
            tmp_path,
            extra=(
                f'\n[transfer]\nallow = ["127.0.0.1/32"]\n'
                f'notify = ["{v4.endpoint}", "{v6.endpoint}", "[::1]:{down}"]\n'
                '\n[metrics]\nlisten = "127.0.0.1:0"\n'
            ),
        )
        record_zone_settings(config)  # no settings rows (and NOTIFYs) at start
        server = start_server(config)
        try:
            for key in ("45.1.1.1", "45.1.1.3"):  # two rows: an IXFR from the first is behind
                rbl_command(config, "list", "add", key, "--reason", "notify test")
            v4.wait_for(ZONE)
            v6.wait_for(ZONE)
            assert {source for _, source in v6.heard} == {"::1"}  # from an IPv6 socket
            wait_log(server, rf"NOTIFY to \[::1\]:{down} failing: ICMP port unreachable \({ZONE}")
            with listening("::1", down) as back:  # the secondary comes back
                back.wait_for(ZONE)
                wait_log(server, rf"NOTIFY to \[::1\]:{down} recovered after [0-9.]+s failing")
            log = server.log()
            assert log.count(f"NOTIFY to [::1]:{down} failing") == 1
            assert log.count("NotifyChannel starting on") == 3  # one socket per target, kept
            assert re.search(rf"NOTIFY {ZONE} serial \d+ to {re.escape(v6.endpoint)} ack", log)
            serial = server.query(ZONE, "SOA").answer[0][0].serial

            axfr = raw_transfer(server, dns.message.make_query(ZONE, "AXFR"))
            records = sum(int.from_bytes(m[6:8], "big") for m in axfr)
            size = sum(len(m) for m in axfr)
            wait_log(
                server,
                rf"transfer {ZONE} AXFR to 127\.0\.0\.1: complete, serial - -> {serial}, "
                rf"{records} records, {size} bytes in {len(axfr)} messages, [0-9.]+s",
            )
            # One listing behind, from the history: the difference (4 SOAs, A and TXT).
            (incremental,) = raw_transfer(server, ixfr(serial - 1))
            wait_log(
                server, rf"IXFR to 127.0.0.1: complete, serial {serial - 1} -> {serial}, 6 records"
            )
            raw_transfer(server, ixfr(serial + 100))  # ahead of rbl: the whole zone
            wait_log(
                server,
                r"IXFR \(fell back to AXFR\) to 127.0.0.1: complete, serial \d+ -> .* in full "
                rf"because serial {serial + 100} is ahead",
            )
            (current,) = raw_transfer(server, ixfr(serial))
            wait_log(server, rf"IXFR to 127.0.0.1: complete, serial {serial} -> {serial}, 1 rec")
            raw_transfer(server, dns.message.make_query("example.com", "AXFR"))
            wait_log(server, r"transfer example.com AXFR to 127.0.0.1: refused \(REFUSED\)")

            address = server.info["metrics"]
            assert isinstance(address, dict)
            samples = scrape(address)
            for kind, outcome, count in (
                ("axfr", "complete", 1),
                ("ixfr_axfr", "complete", 1),
                ("ixfr", "complete", 2),
                ("axfr", "refused", 1),
            ):
                assert total(samples, "rbl_transfers_total", type=kind, outcome=outcome) == count
            assert total(samples, "rbl_transfer_records_total", type="ixfr") == 6 + 1
            assert total(samples, "rbl_transfer_ixfr_fallbacks_total", cause="ahead") == 1
            sent = len(incremental) + len(current)
            assert total(samples, "rbl_transfer_bytes_total", type="ixfr") == sent
            assert total(samples, "rbl_transfer_records_total", type="axfr") == records
            assert value(samples, "rbl_notify_failing_targets") == 0
            assert (value(samples, "rbl_notify_acknowledged_total") or 0) >= 3
            for target in (v4.endpoint, v6.endpoint, f"[::1]:{down}"):
                acked = value(samples, "rbl_notify_acknowledged_serial", target=target, zone=ZONE)
                assert acked == serial, target
        finally:
            stop_server(server)


def test_new_notify_targets_on_sighup(tmp_path: Path) -> None:
    with listening("127.0.0.1") as first, listening("::1") as second:
        config = write_config(
            tmp_path,
            extra=f'\n[transfer]\nallow = ["127.0.0.1/32"]\nnotify = ["{first.endpoint}"]\n',
        )
        server = start_server(config)
        try:
            rbl_command(config, "list", "add", "45.1.1.1", "--reason", "notify test")
            first.wait_for(ZONE)
            config.write_text(config.read_text().replace(first.endpoint, second.endpoint))
            os.kill(server.process.pid, signal.SIGHUP)
            wait_log(server, r"reloaded .*\[transfer\] notify")
            heard = len(first.heard)
            rbl_command(config, "list", "add", "45.1.1.2", "--reason", "notify test")
            second.wait_for(ZONE)
            time.sleep(0.5)
            assert len(first.heard) == heard  # no longer a target
        finally:
            stop_server(server)


def test_a_target_down_shows_in_metrics(tmp_path: Path) -> None:
    down = closed_port("127.0.0.1")
    config = write_config(
        tmp_path,
        extra=(
            f'\n[transfer]\nallow = ["127.0.0.1/32"]\nnotify = ["127.0.0.1:{down}"]\n'
            '\n[metrics]\nlisten = "127.0.0.1:0"\n'
        ),
    )
    server = start_server(config)
    try:
        rbl_command(config, "list", "add", "45.1.1.2", "--reason", "notify test")
        wait_log(server, rf"NOTIFY to 127.0.0.1:{down} failing: ICMP port unreachable")
        address = server.info["metrics"]
        assert isinstance(address, dict)
        wait_for(lambda: value(scrape(address), "rbl_notify_failing_targets") == 1)
        samples = scrape(address)
        assert value(samples, "rbl_notify_target_failing", target=f"127.0.0.1:{down}") == 1
    finally:
        stop_server(server)


def test_notify_at_start_for_changes_made_while_down(tmp_path: Path) -> None:
    """A listing made while no rbl serve runs (the CLI writes the store) reaches the
    secondaries when rbl serve starts: it NOTIFYs every zone once, as BIND and NSD do on
    loading a zone, not only when a serial moves while it runs."""
    with listening("127.0.0.1") as secondary:
        config = write_config(
            tmp_path,
            extra=f'\n[transfer]\nallow = ["127.0.0.1/32"]\nnotify = ["{secondary.endpoint}"]\n',
        )
        record_zone_settings(config)  # no settings row at start: only the announcement
        rbl_command(config, "list", "add", "45.1.1.1", "--reason", "made while down")
        server = start_server(config)
        try:
            secondary.wait_for(ZONE, timeout=5)
            wait_log(server, rf"NOTIFY {re.escape(ZONE)} serial \d+ to 127\.0\.0\.1.*acknowledged")
            time.sleep(1.5)
            assert [zone for zone, _ in secondary.heard].count(ZONE) == 1, secondary.heard
        finally:
            stop_server(server)
