"""SIGHUP reload: a real ``rbl serve`` takes new zone settings and limits without a
restart, keeps running on a broken file, and says which changes need a restart."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from rbl.config import load_settings
from tests.support.processes import rbl_command
from tests.support.server import RunningServer, start_server, stop_server

pytestmark = pytest.mark.slow

LISTED = "1.1.1.45.bl.example.org"


def answer(server: RunningServer, name: str, rdtype: str = "A") -> dns.message.Message:
    return server.query(name, rdtype)


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def edit(config: Path, old: str, new: str) -> None:
    text = config.read_text()
    assert old in text, f"{old!r} not in {config}"
    config.write_text(text.replace(old, new, 1))


def ttl_and_txt(server: RunningServer) -> tuple[int, str]:
    found = answer(server, LISTED, "TXT")
    rrset = found.answer[0]
    return rrset.ttl, b"".join(rrset[0].strings).decode()


def test_sighup_applies_zone_settings_and_keeps_serving(config_path: Path) -> None:
    rbl_command(config_path, "list", "add", "45.1.1.1", "--reason", "reload")
    server = start_server(config_path)
    try:
        assert ttl_and_txt(server) == (300, "Listed: https://www.example.org/lookup/45.1.1.1")
        serial = answer(server, "bl.example.org", "SOA").answer[0][0].serial
        edit(config_path, "ttl = 300", "ttl = 60")
        edit(config_path, 'txt = "Listed: {url}"', 'txt = "Blocked {key}, see {url}"')
        edit(config_path, "minimum = 120", "minimum = 30")
        os.kill(server.process.pid, signal.SIGHUP)
        wait_for(lambda: ttl_and_txt(server)[0] == 60)
        assert ttl_and_txt(server) == (
            60,
            "Blocked 45.1.1.1, see https://www.example.org/lookup/45.1.1.1",
        )
        negative = answer(server, "2.2.2.45.bl.example.org")
        assert negative.rcode() == dns.rcode.NXDOMAIN
        assert negative.authority[0].ttl == 30  # min(ttl, SOA minimum)
        # New content, new serial (an OP_SETTINGS row, rbl.server.settingsmarks); the index stays.
        wait_for(lambda: answer(server, "bl.example.org", "SOA").answer[0][0].serial > serial)
        assert answer(server, "bl.example.org", "SOA").answer[0][0].minimum == 30
        # Listings keep flowing after the reload.
        rbl_command(config_path, "list", "add", "45.3.3.3", "--reason", "after reload")
        wait_for(lambda: answer(server, "3.3.3.45.bl.example.org").rcode() == dns.rcode.NOERROR)
        assert server.process.poll() is None
        assert "reloaded" in server.log() and "[[zones]]" in server.log()
    finally:
        stop_server(server)
    assert server.process.returncode == 0


def test_a_broken_file_keeps_the_running_configuration(tmp_path: Path) -> None:
    from tests.support.config import write_config

    config = write_config(tmp_path)
    rbl_command(config, "list", "add", "45.1.1.1", "--reason", "reload")
    server = start_server(config)
    try:
        good = config.read_text()
        config.write_text(good.replace("ttl = 300", "ttl = -5"))
        os.kill(server.process.pid, signal.SIGHUP)
        wait_for(lambda: "keeping the running configuration" in server.log())
        assert "ttl" in server.log().split("keeping the running configuration")[0].splitlines()[-1]
        assert ttl_and_txt(server)[0] == 300
        config.write_text("this is [not toml")
        os.kill(server.process.pid, signal.SIGHUP)
        wait_for(lambda: server.log().count("keeping the running configuration") == 2)
        assert answer(server, LISTED).rcode() == dns.rcode.NOERROR
        # A listen address or a new zone needs a restart: said, not applied.
        config.write_text(
            good.replace('listen = ["127.0.0.1:0"]', 'listen = ["127.0.0.1:1"]').replace(
                'name = "dbl.example.org"', 'name = "rhsbl.example.org"'
            )
        )
        os.kill(server.process.pid, signal.SIGHUP)
        wait_for(lambda: "restart rbl serve to apply" in server.log())
        line = next(ln for ln in server.log().splitlines() if "restart rbl serve to apply" in ln)
        assert "[dns] listen" in line and "[[zones]]" in line
        assert answer(server, LISTED).rcode() == dns.rcode.NOERROR
        assert answer(server, "x.dbl.example.org").rcode() == dns.rcode.NXDOMAIN
        assert answer(server, "x.rhsbl.example.org").rcode() == dns.rcode.REFUSED
        assert server.process.poll() is None
    finally:
        stop_server(server)


def test_workers_reload_too(config_path: Path) -> None:
    rbl_command(config_path, "list", "add", "45.1.1.1", "--reason", "reload")
    server = start_server(config_path, "--workers", "2")
    try:
        workers = server.info["workers"]
        assert isinstance(workers, list) and len(workers) == 1

        def all_ttls() -> set[int]:
            # Fresh source ports spread the queries over both processes.
            return {answer(server, LISTED).answer[0].ttl for _ in range(40)}

        wait_for(lambda: all_ttls() == {300})
        edit(config_path, "ttl = 300", "ttl = 77")
        os.kill(server.process.pid, signal.SIGHUP)
        wait_for(lambda: all_ttls() == {77})
        assert all(os.path.exists(f"/proc/{pid}") for pid in workers)  # reloaded, not restarted
    finally:
        stop_server(server)


def test_apply_settings_reports_each_section(tmp_path: Path) -> None:
    """In-process: which sections apply, which wait for a restart, and the limits reach
    the live limiter and TCP factory objects."""
    from dataclasses import replace

    from twisted.internet import task

    from rbl.config import RateLimitSettings, TcpSettings
    from rbl.server.reload import apply_settings
    from rbl.server.service import make_service
    from tests.support.config import write_config

    config = write_config(tmp_path)
    rbl_command(config, "list", "add", "45.1.1.1", "--reason", "reload")
    settings = load_settings(config)
    server = make_service(settings, task.Clock(), dns_only=True)
    assert apply_settings(server, settings).applied == []
    limits = RateLimitSettings(responses_per_second=7, slip=0, exempt=())
    tcp = TcpSettings(max_connections=5, max_per_client=2, idle_timeout=1.5)
    new = replace(settings, dns=replace(settings.dns, rate_limit=limits, tcp=tcp))
    report = apply_settings(server, new)
    assert report.applied == ["[dns.rate_limit]", "[dns.tcp]"] and report.needs_restart == []
    assert server.dns.limiter.settings == limits
    assert server.dns.tcp_factory.settings == tcp
    moved = replace(new, dns=replace(new.dns, listen=(("127.0.0.1", 1),)))
    assert apply_settings(server, moved).needs_restart == ["[dns] listen"]
    # Still reported on the next reload: the process still listens where it started.
    assert apply_settings(server, moved).needs_restart == ["[dns] listen"]
    assert apply_settings(server, moved).applied == []
    allowed = replace(moved, transfer=replace(moved.transfer, allow=("192.0.2.0/24",)))
    assert "[transfer]" in apply_settings(server, allowed).applied
    assert server.dns.tcp_factory.transfers is server.dns.transfers is not None
    assert server.dns.transfers.policy.allows("192.0.2.9")


def test_sighup_applies_web_settings(tmp_path: Path) -> None:
    import urllib.request

    from tests.support.config import write_config

    config = write_config(tmp_path)
    config.write_text(
        config.read_text() + '\n[web]\nlisten = "127.0.0.1:0"\ntitle = "Old Title List"\n'
    )
    server = start_server(config)
    try:
        web = server.info["web"]
        assert isinstance(web, dict)

        def page() -> str:
            url = f"http://{web['host']}:{web['port']}/"
            with urllib.request.urlopen(url, timeout=10) as response:
                return str(response.read().decode())

        assert "Old Title List" in page()
        edit(config, 'title = "Old Title List"', 'title = "New Title List"')
        os.kill(server.process.pid, signal.SIGHUP)
        wait_for(lambda: "New Title List" in page())
    finally:
        stop_server(server)
