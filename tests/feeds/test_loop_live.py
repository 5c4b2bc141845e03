"""Hit to rejection at the sender's next attempt, through a real Postfix and a real resolver.

Each variant runs tests/support/loop_run.py in its own network and mount namespace:
``rbl serve`` with zones/example.toml (SOA minimum 300 s), unbound as the
resolver Postfix uses, and Postfix with ``check_policy_service`` then
``reject_rbl_client`` (docs/DEPLOYMENT.md), alone or behind postscreen. Twenty
fresh addresses each send a RCPT to a trap, quit, and come straight back.

What is asserted is what docs/DEPLOYMENT.md tells an operator: with smtpd
alone the next session is refused whatever the resolver caches (the policy
answer to the trap RCPT waits until the listing is in DNS, so the first DNSBL
lookup of that client already sees it); behind postscreen the resolver must
not cache rbl's zone (unbound ``stub-no-cache: yes``), because postscreen looks
the client up when it connects, before its trap hit, and that NXDOMAIN would
be kept for the SOA minimum. Run with ``-s`` for the figures.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.loop_run import UNBOUND
from tests.support.postfix import POSTFIX
from tests.support.processes import REPO, require_peer, subprocess_env

pytestmark = pytest.mark.slow

IPS = 20


def unavailable() -> str | None:
    """Why this machine cannot run the loop, or None."""
    if os.geteuid() != 0:
        return "the loop test needs root (network namespaces, Postfix's master)"
    for path, package in ((POSTFIX, "postfix"), (UNBOUND, "unbound")):
        if not Path(path).exists():
            return f"{path} is missing (apt-get install {package})"
    for tool, package in (("unshare", "util-linux"), ("ip", "iproute2")):
        if shutil.which(tool) is None:
            return f"{tool} is missing (apt-get install {package})"
    probe = subprocess.run(
        ["unshare", "--net", "--mount", "--", "true"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if probe.returncode != 0:  # a container without CAP_SYS_ADMIN
        return f"cannot make a network and mount namespace: {probe.stderr.strip()}"
    return None


@dataclass(frozen=True)
class Loop:
    """One variant's run: every client's two sessions, as loop_run wrote them."""

    label: str
    result: dict[str, Any]

    @property
    def clients(self) -> list[dict[str, Any]]:
        clients: list[dict[str, Any]] = self.result["clients"]
        return clients

    def rejected(self) -> list[dict[str, Any]]:
        return [c for c in self.clients if c["next_session_rejected"]]

    def figures(self) -> str:
        """One line: how many next sessions were refused, and the times (ms) behind it."""
        n = len(self.clients)
        trap_refused = sum(1 for c in self.clients if 500 <= c["trap_session"].get("code", 0) < 600)
        before = sum(1 for c in self.clients if c.get("visible_before_trap_reply"))
        return (
            f"{self.label}: next session rejected {len(self.rejected())}/{n}; "
            f"trap RCPT refused {trap_refused}/{n}; "
            f"the 5 ms poller saw the listing before the trap RCPT's reply {before}/{n}; "
            f"ms median/max: trap RCPT to listed in rbl {self.spread(visible)}, "
            f"trap RCPT reply {self.spread(trap_reply)}, "
            f"trap RCPT to next session's RCPT reply {self.spread(next_reply)}"
        )

    def spread(self, measure: Callable[[dict[str, Any]], float | None]) -> str:
        values = [v * 1000 for v in map(measure, self.clients) if v is not None]
        if not values:
            return "-"
        return f"{statistics.median(values):.0f}/{max(values):.0f}"


def visible(client: dict[str, Any]) -> float | None:
    value: float | None = client.get("visible_after_trap_rcpt")
    return value


def trap_reply(client: dict[str, Any]) -> float | None:
    trap = client["trap_session"]
    return trap["rcpt_replied"] - trap["rcpt_sent"] if "rcpt_replied" in trap else None


def next_reply(client: dict[str, Any]) -> float | None:
    trap, following = client["trap_session"], client["next_session"]
    if "rcpt_sent" not in trap or "rcpt_replied" not in following:
        return None
    elapsed: float = following["rcpt_replied"] - trap["rcpt_sent"]
    return elapsed


class Loops:
    """Runs each variant once per module, in its own namespaces."""

    def __init__(self) -> None:
        self.done: dict[tuple[bool, bool, int, bool], Loop] = {}

    def run(
        self,
        *,
        postscreen: bool,
        stub_no_cache: bool,
        workers: int = 1,
        reject_listed: bool = False,
    ) -> Loop:
        key = (postscreen, stub_no_cache, workers, reject_listed)
        if key not in self.done:
            self.done[key] = self._run(postscreen, stub_no_cache, workers, reject_listed)
            print("\n" + self.done[key].figures())
        return self.done[key]

    def _run(
        self, postscreen: bool, stub_no_cache: bool, workers: int, reject_listed: bool
    ) -> Loop:
        label = ("postscreen+smtpd" if postscreen else "smtpd") + (
            ", unbound stub-no-cache" if stub_no_cache else ", unbound caching"
        )
        if workers > 1:
            label += f", rbl serve --workers {workers}"
        if reject_listed:
            label += ", reject_listed"
        # Not under tmp_path: Postfix's daemons (the postfix user) must reach it.
        workdir = Path(tempfile.mkdtemp(prefix="rbl-loop-"))
        try:
            out = workdir / "result.json"
            command = [
                "unshare", "--net", "--mount", "--",
                sys.executable, "-m", "tests.support.loop_run",
                "--workdir", str(workdir), "--out", str(out), "--ips", str(IPS),
            ]  # fmt: skip
            if postscreen:
                command.append("--postscreen")
            if stub_no_cache:
                command.append("--stub-no-cache")
            command += ["--workers", str(workers)]
            if reject_listed:
                command.append("--reject-listed")
            done = subprocess.run(
                command,
                cwd=REPO,
                env=subprocess_env(),
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            assert done.returncode == 0 and out.exists(), (
                f"{label}: loop_run exited {done.returncode}\n{done.stdout}\n{done.stderr}"
            )
            result = json.loads(out.read_text())
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        capture = os.environ.get("RBL_CAPTURE_LOGS")
        if capture:  # Postfix's own lines, postscreen's among them
            name = "loop." + re.sub(r"[^a-z0-9]+", "-", label).strip("-") + ".raw"
            Path(capture, name).write_text("\n".join(result["maillog"]) + "\n")
        return Loop(label, result)


@pytest.fixture(scope="module")
def loops() -> Loops:
    require_peer(unavailable(), "Postfix and unbound")
    return Loops()


def assert_every_next_session_rejected(loop: Loop, by: str) -> None:
    """Both sessions of every client refused by smtpd's ``reject_rbl_client``."""
    assert len(loop.clients) == IPS
    for client in loop.clients:
        trap, following = client["trap_session"], client["next_session"]
        assert "error" not in trap and "error" not in following, client
        # The policy answer to the trap RCPT waits for the listing, so the DNSBL lookup
        # Postfix makes right after it already sees the listing: the trap RCPT is refused.
        assert trap["code"] == 554 and f"blocked using {by}" in trap["reply"], (
            loop.figures(),
            client,
        )
        assert following["code"] == 554, (loop.figures(), client)
        assert f"blocked using {by}" in following["reply"], client
        refusals = [line for line in client["log"] if f"blocked using {by}" in line]
        assert len(refusals) == 2 and all("NOQUEUE: reject: RCPT" in x for x in refusals), client


@pytest.mark.parametrize("stub_no_cache", [False, True], ids=["caching", "stub-no-cache"])
def test_smtpd_rejects_the_next_session_whatever_the_resolver_caches(
    loops: Loops, stub_no_cache: bool
) -> None:
    loop = loops.run(postscreen=False, stub_no_cache=stub_no_cache)
    assert_every_next_session_rejected(loop, "bl.example.org")


def test_every_dns_process_has_the_listing_before_the_policy_answer(loops: Loops) -> None:
    """With ``--workers`` the kernel hands unbound's queries to any DNS process."""
    loop = loops.run(postscreen=False, stub_no_cache=True, workers=2)
    assert_every_next_session_rejected(loop, "bl.example.org")


def test_behind_postscreen_the_next_session_is_rejected_with_stub_no_cache(
    loops: Loops,
) -> None:
    loop = loops.run(postscreen=True, stub_no_cache=True)
    assert_every_next_session_rejected(loop, "bl.example.org")
    for client in loop.clients:
        # postscreen looked the client up before its trap hit and let it pass, and hands
        # it straight to smtpd the next time from its own cache: smtpd refuses it.
        passes = [line.rsplit(": ", 1)[1] for line in client["log"] if " PASS " in line]
        assert [p.split(" [")[0] for p in passes] == ["PASS NEW", "PASS OLD"], client


def test_behind_postscreen_a_caching_resolver_lets_the_next_session_through(
    loops: Loops,
) -> None:
    """Why docs/DEPLOYMENT.md asks for stub-no-cache behind postscreen: the NXDOMAIN for
    postscreen's connect-time lookup is kept for the SOA minimum (300 s), and smtpd's
    lookup at the trap RCPT gets it from the cache."""
    loop = loops.run(postscreen=True, stub_no_cache=False)
    assert len(loop.clients) == IPS
    assert loop.rejected() == [], loop.figures()
    for client in loop.clients:
        assert client["next_session"]["code"] == 250, client


def test_behind_postscreen_reject_listed_rejects_the_next_session_whatever_is_cached(
    loops: Loops,
) -> None:
    """``[feeds.policy] reject_listed``: smtpd consults the policy service even for a
    client postscreen passed from its cache, and rbl answers it from its own index, so
    the cached NXDOMAIN no longer matters."""
    loop = loops.run(postscreen=True, stub_no_cache=False, reject_listed=True)
    assert len(loop.clients) == IPS
    for client in loop.clients:
        following = client["next_session"]
        assert "error" not in following, client
        assert following["code"] == 554, (loop.figures(), client)
        # The policy service's reject, not reject_rbl_client's (the cached NXDOMAIN).
        assert following["reply"].startswith(
            "554 5.7.1 <someone@example.org>: Recipient address rejected: Service "
            f"unavailable; Client host [{client['ip']}] blocked using bl.example.org; "
        ), client
