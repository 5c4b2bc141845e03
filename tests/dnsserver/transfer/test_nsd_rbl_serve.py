"""The whole path with a real ``rbl serve``: NSD transfers the zones, and a listing made
with the CLI reaches NSD through the change log, NOTIFY and a transfer."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import dns.name
import pytest

from tests.support.config import write_config
from tests.support.nsd import (
    NSD,
    NSD_CONF,
    NSD_ZONE,
    ask,
    free_port,
    soa_serial,
    stop,
    summary,
    wait_serial,
)
from tests.support.processes import rbl_command
from tests.support.server import start_server, stop_server

pytestmark = pytest.mark.slow

TRANSFER = """
[transfer]
allow = ["127.0.0.1/32"]
notify = ["127.0.0.1:{port}"]
"""


def name(relative: str, zone: str) -> dns.name.Name:
    return dns.name.from_text(f"{relative}.{zone}")


SECRET = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
NSD_KEY = """
key:
    name: "xfr-key"
    algorithm: hmac-sha256
    secret: "{secret}"
"""


@pytest.mark.parametrize("signed", [False, True], ids=["address-acl", "tsig"])
def test_nsd_follows_rbl_serve(tmp_path: Path, signed: bool) -> None:
    if NSD is None:
        if os.environ.get("CI"):
            pytest.fail("nsd is not installed (apt-get install nsd)")
        pytest.skip("nsd is not installed")
    nsd_port = free_port()
    config = tmp_path / "rbl.toml"
    transfer = TRANSFER.format(port=nsd_port)
    if signed:
        transfer += f'tsig = ["xfr-key:hmac-sha256:{SECRET}"]\n'
    write_config(tmp_path, extra=transfer)
    for key in ("45.1.1.1", "45.2.0.0/16", "45.3.3.0/25"):
        rbl_command(config, "list", "add", key, "--reason", "transfer test")
    rbl_command(config, "list", "add", "*.spam.example", "--reason", "transfer test")
    server = start_server(config)
    conf = tmp_path / "nsd.conf"
    zones = "".join(
        NSD_ZONE.format(zone=zone, primary=server.port)
        for zone in ("bl.example.org", "dbl.example.org")
    )
    if signed:  # NSD requests the transfer signed with the shared key
        zones = zones.replace(" NOKEY\n    allow-notify", " xfr-key\n    allow-notify")
    conf.write_text(
        NSD_CONF.format(port=nsd_port, dir=tmp_path)
        + (NSD_KEY.format(secret=SECRET) if signed else "")
        + zones
    )
    nsd = subprocess.Popen(
        [NSD, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        for zone in ("bl.example.org", "dbl.example.org"):
            serial = soa_serial(server.port, zone)
            assert serial is not None
            wait_serial(nsd_port, zone, serial, 30)
        names = [
            name(r, "bl.example.org")
            for r in (
                "1.1.1.45",
                "2.1.1.45",
                "9.9.2.45",
                "5.3.3.45",
                "200.3.3.45",
                "2.0.0.127",
                "1.0.0.127",
            )
        ]
        names += [
            name(r, "dbl.example.org")
            for r in ("a.spam.example", "test", "invalid", "other.example")
        ]
        for qname in names:
            assert summary(ask(server.port, qname, "A")) == summary(ask(nsd_port, qname, "A")), (
                qname
            )
        before = soa_serial(server.port, "bl.example.org")
        rbl_command(config, "list", "add", "45.7.7.7", "--reason", "after the transfer")
        new = name("7.7.7.45", "bl.example.org")
        deadline_serial = None
        for _ in range(50):
            deadline_serial = soa_serial(server.port, "bl.example.org")
            if deadline_serial != before:
                break
            __import__("time").sleep(0.1)
        assert deadline_serial is not None and deadline_serial != before
        wait_serial(nsd_port, "bl.example.org", deadline_serial, 10)  # NOTIFY, then transfer
        assert summary(ask(nsd_port, new, "A")) == summary(ask(server.port, new, "A"))
        assert ask(nsd_port, new, "A").rcode() == 0
    finally:
        stop(nsd)
        nsd_log = tmp_path / "nsd.log"
        if nsd_log.exists():
            print(nsd_log.read_text()[-2500:])
        print(conf.read_text())
        stop_server(server)
