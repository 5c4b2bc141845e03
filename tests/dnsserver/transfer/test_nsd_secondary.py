"""A real NSD secondary (Debian's nsd) transfers from rbl and answers as rbl does.

Flow: start the primary (tests/dnsserver/transfer/primary.py: rbl's responder, transfers
and NOTIFY sender), start ``nsd -d`` with ``request-xfr`` pointing at it, wait
until NSD serves the zones, compare answers for listed and unlisted names, then
add a listing through the change log and expect NSD to answer it with the new
serial within seconds (NOTIFY, then IXFR answered with a full transfer).
Skipped only when nsd is missing outside CI. tests/dnsserver/transfer/test_secondaries.py
runs NSD, BIND and Knot after a real ``rbl serve``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dns_client import dom, rev
from tests.support.dns_zones import DOMAIN_ZONE, IP_ZONE
from tests.support.ports import free_port
from tests.support.processes import REPO, subprocess_env
from tests.support.secondaries import (
    Secondary,
    ask,
    require,
    running_secondary,
    soa_serial,
    stop,
    summary,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[int, Secondary, Path]]:
    require("nsd")
    nsd_port = free_port()
    ready = tmp_path / "ready.json"
    changes = tmp_path / "changes.jsonl"
    log = (tmp_path / "primary.log").open("wb")
    primary = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.dnsserver.transfer.primary",
            str(ready),
            str(changes),
            str(nsd_port),
        ],
        cwd=REPO,
        env=subprocess_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert primary.poll() is None, (tmp_path / "primary.log").read_text()
            assert time.monotonic() < deadline, "primary not ready"
            time.sleep(0.05)
        time.sleep(0.05)
        primary_port = json.loads(ready.read_text())["port"]
        zones = (IP_ZONE, DOMAIN_ZONE)
        with running_secondary("nsd", tmp_path, zones, primary_port, port=nsd_port) as nsd:
            yield primary_port, nsd, changes
    finally:
        stop(primary)
        log.close()
        print((tmp_path / "primary.log").read_text()[-3000:])


def test_nsd_secondary_answers_as_rbl(servers: tuple[int, Secondary, Path]) -> None:
    primary, nsd, changes = servers
    secondary = nsd.port
    nsd.wait_serial(1, 30, IP_ZONE)
    nsd.wait_serial(1, 30, DOMAIN_ZONE)
    names = [
        rev(a)
        for a in (
            "192.0.2.1",
            "192.0.2.2",
            "198.51.100.6",
            "198.51.100.7",
            "127.0.0.2",
            "127.0.0.1",
            "2001:db8:1:2::99",
            "2001:db8::5",
            "203.0.113.10",
            "::ffff:7f00:2",
        )
    ] + [
        dom(n)
        for n in (
            "example.com",
            "www.example.com",
            "x.spam.example",
            "ok.spam.example",
            "a.safe.spam.example",
            "test",
            "invalid",
        )
    ]
    for qname in names:
        assert summary(ask(primary, qname, "A")) == summary(ask(secondary, qname, "A")), qname
        assert ask(primary, qname, "TXT").rcode() == ask(secondary, qname, "TXT").rcode(), qname
    # A single address: the same TXT too.
    ours = ask(primary, rev("192.0.2.1"), "TXT").answer
    theirs = ask(secondary, rev("192.0.2.1"), "TXT").answer
    assert [r.to_text() for r in ours[0]] == [r.to_text() for r in theirs[0]]

    new = rev("192.0.2.200")
    assert ask(secondary, new, "A").rcode() == 3  # NXDOMAIN
    row = {
        "id": 5,
        "zone": IP_ZONE,
        "key": "192.0.2.200",
        "op": "set",
        "codes": "127.0.0.7",
        "txt": None,
    }
    with changes.open("a") as out:
        out.write(json.dumps(row) + "\n")
    deadline = time.monotonic() + 5
    while soa_serial(primary, IP_ZONE) != 5:
        assert time.monotonic() < deadline, "the primary did not take the change"
        time.sleep(0.05)
    nsd.wait_serial(5, 10, IP_ZONE)  # refresh is an hour: only NOTIFY gets it here
    assert summary(ask(secondary, new, "A")) == (0, frozenset({"127.0.0.7"}))
    assert summary(ask(secondary, new, "A")) == summary(ask(primary, new, "A"))
