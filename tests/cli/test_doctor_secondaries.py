"""``rbl doctor`` asks each secondary for each zone's serial: real secondaries (NSD, BIND,
Knot) of a real ``rbl serve``, one NOTIFYed (current), one only polling at its SOA refresh
(stale after a change), and an address where nothing answers."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.support.config import write_config
from tests.support.ports import closed_port, free_port
from tests.support.processes import rbl_command
from tests.support.secondaries import KINDS, running_secondary, soa_serial
from tests.support.server import start_server, stop_server

pytestmark = pytest.mark.slow

ZONES = ("bl.example.org", "dbl.example.org")
STALE_AFTER = 8  # seconds: the check right after a change must run well within it


def doctor(config: Path, server_at: str) -> subprocess.CompletedProcess[str]:
    return rbl_command(config, "doctor", "--server", server_at, "--timeout", "1", check=False)


@pytest.mark.parametrize("kind", KINDS)
def test_doctor_fails_a_stale_and_an_unreachable_secondary(tmp_path: Path, kind: str) -> None:
    notified_port, polling_port = free_port(), free_port()
    transfer = (
        '\n[transfer]\nallow = ["127.0.0.1/32"]\n'
        f'notify = ["127.0.0.1:{notified_port}"]\n'
        f'check = ["127.0.0.1:{polling_port}"]\n'  # not NOTIFYed: it polls every refresh (1h)
        f'stale_after = "{STALE_AFTER}s"\n'
    )
    config = write_config(tmp_path, extra=transfer)
    rbl_command(config, "list", "add", "45.1.1.1", "--reason", "doctor test")
    server = start_server(config)
    at = f"{server.host}:{server.port}"
    try:
        with (
            running_secondary(
                kind, tmp_path / "notified", ZONES, server.port, port=notified_port
            ) as notified_secondary,
            running_secondary(
                kind, tmp_path / "polling", ZONES, server.port, port=polling_port
            ) as polling_secondary,
        ):
            notified, polling = notified_secondary.port, polling_secondary.port
            serial = soa_serial(server.port, ZONES[0])
            assert serial is not None
            for secondary in (notified_secondary, polling_secondary):
                for zone in ZONES:
                    secondary.wait_serial(soa_serial(server.port, zone) or 0, 30, zone)
            result = doctor(config, at)
            assert result.returncode == 0, result.stdout
            for port in (notified, polling):
                line = f"OK    secondary 127.0.0.1:{port} bl.example.org: serial {serial}, current"
                assert line in result.stdout

            rbl_command(config, "list", "add", "45.2.2.2", "--reason", "a change")
            changed = time.monotonic()  # the change row was written before this
            new = serial
            while new == serial:
                time.sleep(0.1)
                new = soa_serial(server.port, ZONES[0])
            notified_secondary.wait_serial(new or 0, 10)  # NOTIFY, then a transfer
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
            assert (
                f"OK    secondary 127.0.0.1:{notified} bl.example.org: serial {new}, current"
                in (late.stdout)
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
