"""End to end in headless Chromium: look up a listing, ask for removal, see it approved.

A real ``rbl serve`` with the lookup site; Chromium driven through
chromedriver's W3C WebDriver HTTP API with only the standard library; the
operator approves from the real CLI and dnspython sees the NXDOMAIN.
Needs Debian's ``chromium`` and ``chromium-driver``: skipped without them,
except under CI, where a missing browser is a failure.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.support.config import write_config
from tests.support.ports import free_port
from tests.support.processes import rbl_command
from tests.support.server import RunningServer, start_server, stop_server

pytestmark = pytest.mark.slow

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C WebDriver element key
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1100,1000",
]
WEB_CONFIG = """
[web]
listen = "127.0.0.1:0"
title = "Example DNSBL"
contact = "postmaster at example.org"
"""


def _browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    message = "needs chromium and chromedriver (apt-get install -y chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class WebDriver:
    """Just enough of the W3C WebDriver protocol, over urllib."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = ""

    def call(self, method: str, path: str, payload: object = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.load(response)["value"]
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"WebDriver {method} {path}: {exc.read()!r}") from exc

    def start(self, chromium: str, profile: Path) -> None:
        options = {"binary": chromium, "args": [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]}
        capabilities = {"browserName": "chrome", "goog:chromeOptions": options}
        value = self.call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})
        self.session = value["sessionId"]

    def s(self, method: str, path: str, payload: object = None) -> Any:
        return self.call(method, f"/session/{self.session}{path}", payload)

    def open(self, url: str) -> None:
        self.s("POST", "/url", {"url": url})

    def find(self, css: str) -> str:
        found = self.s("POST", "/element", {"using": "css selector", "value": css})
        assert isinstance(found, dict) and ELEMENT in found, f"{css}: {found}"
        return str(found[ELEMENT])

    def click(self, css: str) -> None:
        self.s("POST", f"/element/{self.find(css)}/click", {})

    def type(self, css: str, text: str) -> None:
        self.s("POST", f"/element/{self.find(css)}/value", {"text": text})

    def text(self, css: str = "body") -> str:
        return str(self.s("GET", f"/element/{self.find(css)}/text"))

    def current_url(self) -> str:
        return str(self.s("GET", "/url"))

    def wait_for_url(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Clicks that submit a form return before the next page has loaded."""
        deadline = time.monotonic() + timeout
        while True:
            url = self.current_url()
            found = re.fullmatch(pattern, url)
            if found:
                return found
            assert time.monotonic() < deadline, f"still at {url}: {self.text()}"
            time.sleep(0.05)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.s("GET", "/screenshot")))

    def quit(self) -> None:
        if self.session:
            self.s("DELETE", "")
            self.session = ""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    chromium, driver_path = _browser()
    port = free_port()
    log = (tmp_path / "chromedriver.log").open("wb")
    process = subprocess.Popen(
        [driver_path, f"--port={port}"], stdout=log, stderr=subprocess.STDOUT
    )
    driver = WebDriver(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if driver.call("GET", "/status").get("ready"):
                    break
            except (OSError, AssertionError):
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise AssertionError("chromedriver did not start")
            time.sleep(0.1)
        driver.start(chromium, tmp_path / "chromium-profile")
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            process.terminate()
            process.wait(timeout=15)
            log.close()


def web_port(server: RunningServer) -> int:
    web = server.info.get("web")
    if isinstance(web, dict):
        return int(web["port"])
    found = re.search(r"serving the lookup site on \S+ port (\d+)", server.log())
    assert found, f"no lookup site in the server log:\n{server.log()}"
    return int(found.group(1))


def answer(server: RunningServer, name: str) -> dns.message.Message:
    return server.query(name, timeout=2)


def test_lookup_removal_request_and_approval_in_chromium(
    tmp_path: Path, browser: WebDriver
) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text() + WEB_CONFIG)
    rbl_command(config, "list", "add", "45.8.8.8", "--reason", "test")
    server = start_server(config)
    try:
        assert answer(server, "8.8.8.45.bl.example.org").rcode() == dns.rcode.NOERROR
        base = f"http://127.0.0.1:{web_port(server)}"

        browser.open(f"{base}/lookup/45.8.8.8")
        page = browser.text()
        assert "bl.example.org: listed" in page and "127.0.0.2" in page
        browser.screenshot(tmp_path / "lookup.png")
        browser.click("#remove-link")
        browser.wait_for_url(re.escape(f"{base}/remove/45.8.8.8") + r"\?zone=bl\.example\.org")
        browser.type("#message", "The compromised account is closed; we rate-limit now.")
        browser.type("#email", "postmaster@customer.example")
        browser.click("#submit")
        token = browser.wait_for_url(re.escape(base) + r"/request/([A-Za-z0-9_-]+)")
        assert browser.text("#state") == "pending"
        assert "Removal request for 45.8.8.8" in browser.text()

        approved = rbl_command(config, "requests", "approve", token.group(1), "--message", "ok")
        assert "approved" in approved.stdout
        deadline = time.monotonic() + 1.0
        while answer(server, "8.8.8.45.bl.example.org").rcode() != dns.rcode.NXDOMAIN:
            assert time.monotonic() < deadline, "still listed in DNS 1 s after the approval"
            time.sleep(0.05)

        browser.s("POST", "/refresh", {})
        assert browser.text("#state") == "approved"
        assert "ok" in browser.text(".answer")
        browser.screenshot(tmp_path / "request.png")
        browser.open(f"{base}/lookup/45.8.8.8")
        assert "bl.example.org: not listed" in browser.text()
    finally:
        stop_server(server)


def test_a_listed_party_reads_the_evidence_and_asks_for_removal(
    tmp_path: Path, browser: WebDriver
) -> None:
    """What a listed party sees: dates, counts and checks on its own setup; never a trap."""
    config = write_config(tmp_path)
    config.write_text(config.read_text() + WEB_CONFIG)
    rbl_command(config, "traps", "add", "trap@example.org", "@abandoned.example")
    now = time.time()
    sent = [  # (HELO, forward-confirmed name, MAIL FROM): a spambot and a stray real server
        ("localhost", None, "trap@example.org"),
        ("WIN-7QX2", None, "x@abandoned.example"),
        ("desktop", None, "sales@spam.example"),
        ("[45.9.9.9]", None, "sales@spam.example"),
        ("mail.isp.example", "mail.isp.example", "newsletter@isp.example"),
    ]
    lines = [
        json.dumps(
            {
                "time": now - 3600 * (i + 1),
                "ip": "45.9.9.9",
                "to": "trap@example.org" if i % 2 else "anyone@abandoned.example",
                "from": mail_from,
                "helo": helo,
                "client_name": name,
            }
        )
        for i, (helo, name, mail_from) in enumerate(sent)
    ]
    source = tmp_path / "hits.jsonl"
    source.write_text("\n".join(lines) + "\n")
    rbl_command(config, "ingest", "--format", "json", str(source))
    server = start_server(config)
    try:
        base = f"http://127.0.0.1:{web_port(server)}"
        browser.open(base + "/")
        browser.type("#q", "45.9.9.9")
        browser.click("form.lookup button")
        browser.wait_for_url(re.escape(f"{base}/lookup/45.9.9.9"))
        page = browser.text()
        assert "bl.example.org: listed" in page
        assert "5 trap hits recorded" in page
        checks = browser.text("ul.checks")
        assert "3 of 5 connections gave a HELO that is not a fully qualified host name" in checks
        assert "1 of 5 connections gave an IP address" in checks
        assert "4 of 5 connections came from an address without a forward-confirmed" in checks
        assert "A real mail server greets (HELO/EHLO) with its own fully qualified" in page
        for secret in ("trap@example.org", "abandoned.example", "localhost", "WIN-7QX2", "spam."):
            assert secret not in page, secret
        browser.s("POST", "/window/rect", {"width": 1100, "height": 1700})
        Path("/tmp/public").mkdir(exist_ok=True)
        browser.screenshot(Path("/tmp/public/listed-party-lookup.png"))
        browser.click("#remove-link")
        browser.wait_for_url(re.escape(f"{base}/remove/45.9.9.9") + r"\?zone=bl\.example\.org")
        browser.type("#message", "The desktop with the bot is wiped; mail leaves via our relay.")
        browser.click("#submit")
        browser.wait_for_url(re.escape(base) + r"/request/([A-Za-z0-9_-]+)")
        assert browser.text("#state") == "pending"
        browser.screenshot(Path("/tmp/public/listed-party-request.png"))
    finally:
        stop_server(server)
