"""``rbl doctor`` asks each secondary for each zone's serial: real NSD secondaries of a
real ``rbl serve``, one NOTIFYed (current), one only polling at its SOA refresh (stale
after a change), and an address where nothing answers."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.config import write_config
from tests.support.notify_listener import closed_port
from tests.support.nsd import NSD, NSD_CONF, NSD_ZONE, free_port, soa_serial, stop, wait_serial
from tests.support.processes import rbl_command
from tests.support.server import start_server, stop_server

pytestmark = pytest.mark.slow

ZONES = ("bl.example.org", "dbl.example.org")
STALE_AFTER = 8  # seconds: the check right after a change must run well within it


@contextmanager
def nsd(directory: Path, primary: int, port: int, *, notified: bool) -> Iterator[int]:
    """An NSD secondary of both zones; NOTIFYed, it listens on ::1 (NOTIFY comes over
    IPv6); without NOTIFY (on 127.0.0.1) it refreshes only at the SOA refresh."""
    assert NSD is not None
    directory.mkdir()
    zones = "".join(NSD_ZONE.format(zone=zone, primary=primary) for zone in ZONES)
    server = NSD_CONF.format(port=port, dir=directory)
    if notified:
        server = server.replace("ip-address: 127.0.0.1", "ip-address: ::1")
        zones = zones.replace("allow-notify: 127.0.0.1 NOKEY", "allow-notify: ::1 NOKEY")
    else:  # NOTIFYs are refused: it polls every refresh (an hour)
        zones = zones.replace("    allow-notify: 127.0.0.1 NOKEY\n", "")
    conf = directory / "nsd.conf"
    conf.write_text(server + zones)
    process = subprocess.Popen(
        [NSD, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        yield port
    finally:
        stop(process)


def doctor(config: Path, server_at: str) -> subprocess.CompletedProcess[str]:
    return rbl_command(config, "doctor", "--server", server_at, "--timeout", "1", check=False)


def test_doctor_fails_a_stale_and_an_unreachable_secondary(tmp_path: Path) -> None:
    if NSD is None:
        if os.environ.get("CI"):
            pytest.fail("nsd is not installed (apt-get install nsd)")
        pytest.skip("nsd is not installed")
    notified_port, polling_port = free_port(), free_port()
    transfer = (
        '\n[transfer]\nallow = ["127.0.0.1/32"]\n'
        f'notify = ["[::1]:{notified_port}"]\n'
        f'check = ["127.0.0.1:{polling_port}"]\n'
        f'stale_after = "{STALE_AFTER}s"\n'
    )
    config = write_config(tmp_path, extra=transfer)
    rbl_command(config, "list", "add", "45.1.1.1", "--reason", "doctor test")
    server = start_server(config)
    at = f"{server.host}:{server.port}"
    try:
        with (
            nsd(tmp_path / "notified", server.port, notified_port, notified=True) as notified,
            nsd(tmp_path / "polling", server.port, polling_port, notified=False) as polling,
        ):
            serial = soa_serial(server.port, ZONES[0])
            assert serial is not None
            for host, port in (("::1", notified), ("127.0.0.1", polling)):
                for zone in ZONES:
                    wait_serial(port, zone, soa_serial(server.port, zone) or 0, 30, host)
            result = doctor(config, at)
            assert result.returncode == 0, result.stdout
            for where in (f"[::1]:{notified}", f"127.0.0.1:{polling}"):
                line = f"OK    secondary {where} bl.example.org: serial {serial}, current"
                assert line in result.stdout

            rbl_command(config, "list", "add", "45.2.2.2", "--reason", "a change")
            changed = time.monotonic()  # the change row was written before this
            new = serial
            while new == serial:
                time.sleep(0.1)
                new = soa_serial(server.port, ZONES[0])
            wait_serial(notified, ZONES[0], new or 0, 10, "::1")  # NOTIFY over IPv6, a transfer
            soon = doctor(config, at)  # behind, but not yet for stale_after
            assert soon.returncode == 0, soon.stdout
            assert (
                f"OK    secondary 127.0.0.1:{polling} bl.example.org: serves serial {serial}, "
                f"rbl's is {new} (1 change(s) behind for"
            ) in soon.stdout
            time.sleep(max(0.0, changed + STALE_AFTER + 0.5 - time.monotonic()))
            late = doctor(config, at)
            assert late.returncode == 1, late.stdout
            assert (
                f"FAIL  secondary 127.0.0.1:{polling} bl.example.org: serves serial {serial}, "
                f"rbl's is {new} (1 change(s) behind for"
            ) in late.stdout
            assert f"longer than stale_after {STALE_AFTER}s)" in late.stdout
            assert f"OK    secondary [::1]:{notified} bl.example.org: serial {new}, current" in (
                late.stdout
            )
            assert f"OK    secondary 127.0.0.1:{polling} dbl.example.org: serial" in late.stdout
            assert late.stdout.count("FAIL") == 1
    finally:
        stop_server(server)

    nobody = closed_port("127.0.0.1")
    config.write_text(
        config.read_text().replace(
            f'check = ["127.0.0.1:{polling_port}"]', f'check = ["127.0.0.1:{nobody}"]'
        )
    )
    down = doctor(config, "127.0.0.1:9")
    assert down.returncode == 1
    assert f"FAIL  secondary 127.0.0.1:{nobody} bl.example.org: no answer in 1s: unreachable" in (
        down.stdout
    )
