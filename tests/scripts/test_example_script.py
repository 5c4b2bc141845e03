"""scripts/serve-example (the quick start after its install): trap hits become listings in DNS.

The quick start promises that one command sets up and runs the server with
example data; this holds it to showing the mission. The script runs on a
copy of zones/example.toml with ephemeral ports in a fresh directory (a
fresh clone's var/), twice: each run must print the trap listings it made,
and the running server must answer them over DNS and show their evidence on
the site. The tracked log's times are long past any listing's life, so a
run that ingested it unchanged would list nothing and fail here.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.support.processes import REPO, rbl_command, subprocess_env

SCRIPT = REPO / "scripts" / "serve-example"
TEMPLATE = REPO / "zones" / "example-postfix.log"
# The template's trap hits that policy lists: trap@example.org and a hit to
# @abandoned.example.net. Not 45.60.1.9 (a callback probe), 192.168.1.20
# (private space) or 45.90.7.7 (bob@ is no trap).
TRAP_LISTED = {"45.33.12.7", "45.77.3.201"}
END = "Ctrl-C stops the server."


def load_script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("serve_example", str(SCRIPT))
    spec = importlib.util.spec_from_loader("serve_example", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["serve_example"] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


# -- the fresh log ------------------------------------------------------------------------


def test_restamping_moves_the_last_line_to_now_and_keeps_the_gaps() -> None:
    example = load_script()
    lines = TEMPLATE.read_text().splitlines(keepends=True)
    now = datetime(2026, 12, 3, 10, 0, 5, 700000, tzinfo=UTC)
    fresh = example.restamp(lines, now)
    assert len(fresh) == len(lines)
    assert fresh[-1].startswith("Dec  3 10:00:05 mx1 postfix/qmgr[3001]: ")
    # 06:02:11 was 5 min 19 s before the last line (06:07:30)
    assert fresh[0].startswith("Dec  3 09:54:46 mx1 postfix/smtpd[4121]: NOQUEUE: reject: ")
    for old, new in zip(lines, fresh, strict=True):
        assert new[15:] == old[15:]  # only the stamp changed


def test_restamping_across_midnight_and_new_year() -> None:
    example = load_script()
    lines = ["Dec 31 23:59:50 mx1 postfix/smtpd[1]: one\n", "Jan  1 00:00:10 mx1 x: two\n"]
    now = datetime(2027, 3, 1, 0, 0, 5, tzinfo=UTC)
    assert example.restamp(lines, now) == [
        "Feb 28 23:59:45 mx1 postfix/smtpd[1]: one\n",
        "Mar  1 00:00:05 mx1 x: two\n",
    ]


def test_lines_without_a_stamp_are_kept() -> None:
    example = load_script()
    lines = ["not a stamp\n", "Nov 23 06:02:11 mx1 a\n", "Nox 23 06:02:11 mx1 b\n"]
    now = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)
    assert example.restamp(lines, now) == [
        "not a stamp\n",
        "Dec  3 10:00:00 mx1 a\n",
        "Nox 23 06:02:11 mx1 b\n",
    ]
    assert example.restamp(["no stamps\n"], now) == ["no stamps\n"]


def test_query_names() -> None:
    example = load_script()
    assert example.query_name("45.33.12.7", "bl.example.org") == "7.12.33.45.bl.example.org"
    assert example.query_name("198.51.100.0/24", "bl") == "0.100.51.198.bl"
    assert example.query_name("2001:db8::/64", "bl") == ".".join(
        [*reversed("20010db8" + "0" * 24), "bl"]
    )
    assert example.query_name("*.spammer.example", "dbl") == "spammer.example.dbl"


# -- the run ------------------------------------------------------------------------------


def example_config(directory: Path) -> Path:
    """zones/example.toml with every listener on an ephemeral port; its var/ is directory/var."""
    text = (REPO / "zones" / "example.toml").read_text()
    for port in ("5353", "10031", "8080", "9153"):
        assert f'127.0.0.1:{port}"' in text
        text = text.replace(f'127.0.0.1:{port}"', '127.0.0.1:0"')
    (directory / "zones").mkdir()
    config = directory / "zones" / "example.toml"
    config.write_text(text)
    return config


class Run:
    """scripts/serve-example as a process whose printed report is collected as it comes."""

    def __init__(self, config: Path, var: Path) -> None:
        self.stderr = (var.parent / f"serve-{time.monotonic_ns()}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--config", str(config), "--var", str(var)],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=subprocess_env(),
            cwd=var.parent,
        )
        self.lines: list[str] = []
        self.done = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if END in line:
                self.done.set()
        self.done.set()

    def report(self, timeout: float = 180) -> str:
        self.done.wait(timeout)
        text = "".join(self.lines)
        log = Path(self.stderr.name).read_text(errors="replace")
        assert END in text, f"no report in {timeout}s:\n{text}\n{log[-3000:]}"
        return text

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(timeout=30)
        self.reader.join(timeout=10)
        assert self.process.stdout is not None
        self.process.stdout.close()
        self.stderr.close()
        return code


def listed_in_report(report: str) -> dict[str, str]:
    """``key -> printed DNS answer`` from the report's trap listings."""
    found = {}
    for match in re.finditer(
        r"^  (\S+) in bl\.example\.org \(127\.0\.0\.2\):\n"
        r"    dig @127\.0\.0\.1 -p (\d+) (\S+) ANY \+short  ->  (.*)\n"
        r"    evidence page:  http://127\.0\.0\.1:(\d+)/lookup/(\S+)\n",
        report,
        re.MULTILINE,
    ):
        key, _port, _name, answer, _web, page_key = match.groups()
        assert page_key == key
        found[key] = answer
    return found


def check_served(var: Path, report: str, config: Path) -> None:
    """Each printed trap listing answers over DNS, has an evidence page and fresh evidence."""
    info = json.loads((var / "example-ready.json").read_text())
    dns_port = info["dns"][0]["port"]
    web_port = info["web"]["port"]
    printed = listed_in_report(report)
    assert set(printed) == TRAP_LISTED, report
    for key, answer in printed.items():
        name = ".".join([*reversed(key.split(".")), "bl.example.org"])
        assert f"dig @127.0.0.1 -p {dns_port} {name} ANY +short" in report
        assert answer.startswith("127.0.0.2 "), answer
        reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=dns_port)
        assert reply.rcode() == dns.rcode.NOERROR
        assert [item.to_text() for rrset in reply.answer for item in rrset] == ["127.0.0.2"]
        assert f"evidence page:  http://127.0.0.1:{web_port}/lookup/{key}" in report
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/lookup/{key}") as page:
            html = page.read().decode()
        assert "Sent mail to spamtraps" in html  # the code's meaning, on a listed key's page
        assert "trap@example.org" not in html and "abandoned.example.net" not in html
        shown = rbl_command(config, "show", key).stdout
        assert "feed=postfix" in shown
        stamp = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)Z \S+ feed=postfix", shown)
        assert stamp is not None, shown
        seen = datetime.fromisoformat(stamp[1]).replace(tzinfo=UTC)
        assert (datetime.now(UTC) - seen).total_seconds() < 900  # stamped just now
    assert re.search(r"^lines: 6 .* quarantined: 0$", report, re.MULTILINE)


@pytest.mark.slow
def test_the_example_lists_its_trap_hits_and_serves_them_twice(tmp_path: Path) -> None:
    config = example_config(tmp_path)
    var = tmp_path / "var"
    assert not var.exists()  # a fresh clone has no var/
    for attempt in ("first", "second"):
        run = Run(config, var)
        try:
            report = run.report()
            check_served(var, report, config)
            if attempt == "first":
                assert "listed: 2  extended: 0" in report
                assert "imported into bl.example.org: 6 added" in report
            else:  # nothing imported twice; the new hits extend the listings
                assert "listed: 0  extended: 2" in report
                assert "imported into bl.example.org: 0 added, 0 changed, 6 unchanged" in report
        finally:
            code = run.stop()
        assert code == 0, Path(run.stderr.name).read_text(errors="replace")[-3000:]
