"""NSD, BIND and Knot follow a real ``rbl serve`` by IXFR, and by AXFR when the history
cannot answer.

For each kind: a zone of a few thousand listings, the secondary's first AXFR,
then ``rbl list add`` (NOTIFY; the secondary asks IXFR; the transfer log says
IXFR and a few hundred bytes; the secondary answers the new listing), a
removal, several changes in one IXFR, more changes than ``[transfer]
ixfr_history`` keeps (answered in full, the log says why) and a restart of rbl
serve with a change made meanwhile (it NOTIFYs at start; its history starts
anew: in full again, then by IXFR);
a secondary stopped across ``rbl db prune`` still gets the difference (the
history is rbl serve's memory, not the change log). After each step the
secondary answers as rbl does.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.support.config import write_config
from tests.support.ports import free_port
from tests.support.processes import rbl_command
from tests.support.secondaries import (
    KINDS,
    Secondary,
    running_secondary,
    summary,
)
from tests.support.server import RunningServer, start_server, stop_server

pytestmark = pytest.mark.slow

ZONE = "bl.example.org"
HISTORY = 6
KEY = "xfr-key:hmac-sha256:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
BASE = "".join(f"45.1.{n >> 8}.{n & 255}\n" for n in range(3000)) + "45.9.0.0/16\n"


def serial_of(server: RunningServer) -> int:
    return int(server.query(ZONE, "SOA").answer[0][0].serial)


def transfer_line(server: RunningServer, to: int, timeout: float = 20) -> re.Match[str]:
    """The log line of the transfer that brought a secondary to serial ``to``."""
    pattern = (
        rf"transfer {ZONE} (AXFR|IXFR|IXFR \(fell back to AXFR\)) to 127\.0\.0\.1: complete, "
        rf"serial (\S+) -> {to}, (\d+) records, (\d+) bytes[^\n]*"
    )
    deadline = time.monotonic() + timeout
    while (found := re.search(pattern, server.log())) is None:
        assert time.monotonic() < deadline, f"no transfer to {to}:\n{server.log()[-3000:]}"
        time.sleep(0.05)
    return found


class Step:
    """Change rbl, wait for the secondary to serve the new serial, and say how it got it."""

    def __init__(self, config: Path, server: RunningServer, secondary: Secondary) -> None:
        self.config, self.server, self.secondary = config, server, secondary

    def __call__(self, *commands: tuple[str, ...], stdin: str | None = None) -> re.Match[str]:
        before = serial_of(self.server)
        for command in commands:
            rbl_command(self.config, *command, stdin=stdin)
        deadline = time.monotonic() + 10
        while serial_of(self.server) == before:
            assert time.monotonic() < deadline, "rbl serve did not take the change"
            time.sleep(0.02)
        time.sleep(0.3)  # let rbl take every row before the secondary asks
        serial = serial_of(self.server)
        began = time.monotonic()
        self.secondary.wait_serial(serial, 20)  # the machine may be shared and busy
        print(f"{self.secondary.kind}: {commands[0][:3]} -> {time.monotonic() - began:.2f}s")
        return transfer_line(self.server, serial)

    def same(self, *relative: str) -> None:
        for name in relative:
            qname = f"{name}.{ZONE}"
            assert summary(self.secondary.query(qname)) == summary(self.server.query(qname)), name


def add(key: str, *more: str) -> tuple[str, ...]:
    return ("list", "add", key, "--reason", "ixfr test", *more)


def primary(tmp_path: Path, signed: bool) -> tuple[Path, int, int]:
    """A configuration (DNS on a fixed port, so rbl can restart on it) with the base zone."""
    # Both restart on their ports (rbl serve, and the secondary of the offline tests).
    dns_port, notify_port = free_port(), free_port()
    config = write_config(
        tmp_path,
        extra=(
            f'\n[transfer]\nallow = ["127.0.0.1/32"]\nnotify = ["127.0.0.1:{notify_port}"]\n'
            f"ixfr_history = {HISTORY}\n" + (f'tsig = ["{KEY}"]\n' if signed else "")
        ),
    )
    config.write_text(config.read_text().replace('"127.0.0.1:0"', f'"127.0.0.1:{dns_port}"', 1))
    rbl_command(config, "list", "import", "-", "--zone", ZONE, "--reason", "base", stdin=BASE)
    return config, dns_port, notify_port


def cases() -> list[object]:
    return [
        pytest.param(kind, signed, id=f"{kind}-{'tsig' if signed else 'acl'}")
        for signed in (False, True)
        for kind in KINDS
    ]


@pytest.mark.parametrize(("kind", "signed"), cases())
def test_secondary_follows_by_ixfr_and_falls_back_to_axfr(
    tmp_path: Path, kind: str, signed: bool
) -> None:
    config, dns_port, notify_port = primary(tmp_path, signed)
    tsig = KEY if signed else None
    server = start_server(config)
    try:
        with running_secondary(
            kind, tmp_path, ZONE, dns_port, port=notify_port, tsig=tsig
        ) as secondary:
            secondary.wait_serial(serial_of(server), 20)
            step = Step(config, server, secondary)

            found = step(add("45.7.7.7"))
            assert found.group(1) == "IXFR" and int(found.group(4)) < 600, found.group(0)
            step.same("7.7.7.45", "8.7.7.45", "1.0.1.45")

            found = step(("list", "remove", "45.1.0.9", "--reason", "gone", "--yes"))
            assert found.group(1) == "IXFR" and int(found.group(4)) < 600, found.group(0)
            step.same("9.0.1.45", "10.0.1.45")

            rows = "45.7.7.7 :127.0.0.5\n45.7.7.8\n45.1.0.10 :127.0.0.3\n"
            found = step(("list", "import", "-", "--zone", ZONE, "--reason", "x"), stdin=rows)
            assert found.group(1) == "IXFR" and int(found.group(4)) < 1200, found.group(0)
            step.same("7.7.7.45", "8.7.7.45", "10.0.1.45")

            many = "".join(f"45.8.0.{n}\n" for n in range(HISTORY + 4))
            found = step(("list", "import", "-", "--zone", ZONE, "--reason", "x"), stdin=many)
            assert found.group(1) != "IXFR", found.group(0)
            assert f"more than {HISTORY} changes" in found.group(0)
            step.same("0.0.8.45", f"{HISTORY + 3}.0.8.45", "7.7.7.45")

            serial = serial_of(server)
            stop_server(server)
            rbl_command(config, *add("45.7.7.9"))  # while rbl serve is down
            server = step.server = start_server(config)
            # the restarted rbl NOTIFYs at start; its history starts anew: in full
            restarted = serial_of(server)
            assert restarted > serial
            secondary.wait_serial(restarted, 20)
            found = transfer_line(server, restarted)
            assert found.group(1) != "IXFR" and found.group(2) == str(serial), found.group(0)
            assert "not in the history" in found.group(0)
            step.same("9.7.7.45", "1.0.1.45")

            found = step(add("45.7.7.10"))  # the history holds the change since the start
            assert found.group(1) == "IXFR", found.group(0)
            step.same("10.7.7.45")

    finally:
        stop_server(server)
        print(server.log()[-4000:])


@pytest.mark.parametrize(("kind", "signed"), cases())
def test_secondary_offline_across_the_history_gets_the_zone_in_full(
    tmp_path: Path, kind: str, signed: bool
) -> None:
    """Stopped while more changes than ``ixfr_history`` happen, a secondary restarts on its
    saved zone, asks IXFR from its old serial, gets the whole zone and converges."""
    config, dns_port, notify_port = primary(tmp_path, signed)
    tsig = KEY if signed else None
    server = start_server(config)
    try:
        with running_secondary(
            kind, tmp_path, ZONE, dns_port, port=notify_port, tsig=tsig
        ) as secondary:
            old = serial_of(server)
            secondary.wait_serial(old, 20)
            time.sleep(
                1.5
            )  # it saves the zone (NSD's zonefiles-write, BIND's file, Knot's journal)
        many = "".join(f"45.8.0.{n}\n" for n in range(HISTORY + 4))
        rbl_command(config, "list", "import", "-", "--zone", ZONE, "--reason", "x", stdin=many)
        deadline = time.monotonic() + 10
        while serial_of(server) == old:
            assert time.monotonic() < deadline, "rbl serve did not take the change"
            time.sleep(0.02)
        time.sleep(0.3)
        new = serial_of(server)
        with running_secondary(
            kind, tmp_path, ZONE, dns_port, port=notify_port, tsig=tsig
        ) as secondary:
            secondary.wait_serial(new, 30)  # its own refresh at start, or the next NOTIFY
            found = transfer_line(server, new)
            print(found.group(0))
            assert found.group(1) != "IXFR" and found.group(2) == str(old), found.group(0)
            assert f"more than {HISTORY} changes" in found.group(0)
            step = Step(config, server, secondary)
            step.same("0.0.8.45", f"{HISTORY + 3}.0.8.45", "1.0.1.45")
            found = step(add("45.7.7.12"))  # and by IXFR from there
            assert found.group(1) == "IXFR", found.group(0)
            step.same("12.7.7.45")
    finally:
        stop_server(server)
        print(server.log()[-4000:])


@pytest.mark.parametrize("kind", KINDS)
def test_secondary_offline_across_a_prune_converges_by_ixfr(tmp_path: Path, kind: str) -> None:
    """``rbl db prune`` deletes the change-log rows a stopped secondary is behind; rbl serve,
    current, keeps its history in memory, so the secondary still gets the difference."""
    config, dns_port, notify_port = primary(tmp_path, False)
    server = start_server(config)
    try:
        with running_secondary(kind, tmp_path, ZONE, dns_port, port=notify_port) as secondary:
            old = serial_of(server)
            secondary.wait_serial(old, 20)
            time.sleep(1.5)  # it saves the zone, to restart from it
        for n in range(3):
            rbl_command(config, *add(f"45.6.0.{n}"))
        deadline = time.monotonic() + 10
        while serial_of(server) - old < 3:
            assert time.monotonic() < deadline, "rbl serve did not take the changes"
            time.sleep(0.02)
        time.sleep(1.1)
        pruned = rbl_command(config, "db", "prune", "--keep", "1s").stdout
        deleted = int(re.search(r"pruned (\d+) change-log row", pruned).group(1))  # type: ignore[union-attr]
        assert deleted >= 3, pruned  # the rows the secondary is behind are gone
        new = serial_of(server)
        with running_secondary(kind, tmp_path, ZONE, dns_port, port=notify_port) as secondary:
            secondary.wait_serial(new, 30)
            found = transfer_line(server, new)
            print(found.group(0))
            assert found.group(1) == "IXFR" and found.group(2) == str(old), found.group(0)
            Step(config, server, secondary).same("0.0.6.45", "2.0.6.45", "3.0.6.45", "1.0.1.45")
    finally:
        stop_server(server)
        print(server.log()[-4000:])
