"""Throwaway Postfix instances for the live tests: configuration, start, stop, policy peer.

Each instance has its own main.cf, master.cf and queue in a directory of its
own (not under pytest's 0700 tmp: Postfix's daemons run as the postfix user),
no service chrooted (a chroot would need copies of /etc files under the
queue), everything delivered to ``discard`` unless a test says otherwise.
``running`` starts one, waits until it listens, and stops it (its master gone)
afterwards. ``MAIN_CF`` and ``run_postfix`` are the instance that asks a
policy server (tests/data/postfix/policy_server.py, ``start_policy_server``)
about every RCPT and refuses the hostile sessions' traps. Needs the Debian
``postfix`` package and root, as Postfix's master does (``unavailable``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.support.hostile_sessions import TRAP, TRAP_DOMAIN
from tests.support.ports import free_port
from tests.support.processes import REPO, subprocess_env

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POLICY_SERVER = REPO / "tests" / "data" / "postfix" / "policy_server.py"
# A trap as rbl traps add stores '@bücher.example' addresses: in the IDNA ASCII form.
IDN_TRAP = "spamtrap@xn--bcher-kva.example"

# What every instance's main.cf says: its own directories, names and loopback, no TLS.
MAIN_CF_HEAD = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.example.org
mydomain = example.org
myorigin = example.org
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
smtpd_tls_security_level = none
smtp_tls_security_level = none
"""

MAIN_CF = (
    MAIN_CF_HEAD
    + """\
mydestination = example.org, {trap_domain}, bücher.example
inet_interfaces = 127.0.0.1
relay_domains =
local_transport = discard:trap
default_transport = discard:relay
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_recipient_restrictions =
    check_policy_service inet:127.0.0.1:{policy_port},
    permit_mynetworks,
    check_recipient_access inline:{{ {{{trap}=REJECT no such user}},
        {{{trap_domain}=REJECT no such user}}, {{spamtrap@bücher.example=REJECT no such user}} }},
    reject_unauth_destination
"""
)

# The services every instance runs besides its front (smtpd or postscreen) lines.
SERVICES = """\
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""
MASTER_CF = "127.0.0.1:{smtp_port} inet n - n - - smtpd\n" + SERVICES


def unavailable() -> str | None:
    """Why this machine cannot run a Postfix instance, or None."""
    if not Path(POSTFIX).exists():
        return "Postfix is not installed (apt-get install postfix)"
    if os.geteuid() != 0:
        return "Postfix's master must start as root"
    return None


def control(directory: Path, command: str, log: IO[str], *, check: bool = True) -> None:
    """``postfix -c directory command`` (start, stop, abort), its output into ``log``."""
    subprocess.run(
        [POSTFIX, "-c", str(directory), command],
        check=check,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def wait_listening(port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wait_exited(pid: int, timeout: float = 15.0) -> None:
    """Wait until the (not our child) process ``pid`` is gone, then kill it if it lingers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
                return  # a zombie waiting for an init that does not reap
        except (ProcessLookupError, FileNotFoundError):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


@contextmanager
def running(directory: Path, log_path: Path, *listening: tuple[str, int]) -> Iterator[None]:
    """The instance configured in ``directory``, started and listening on every
    ``(host, port)``; stopped, and its master gone, on exit. ``postfix start``'s and
    ``stop``'s output go to ``log_path``; a start that fails aborts the instance."""
    with log_path.open("w") as log:
        try:
            control(directory, "start", log)
            for host, port in listening:
                wait_listening(port, host)
        except Exception:
            log.flush()
            maillog = directory / "maillog"
            detail = maillog.read_text(errors="replace") if maillog.exists() else ""
            subprocess.run([POSTFIX, "-c", str(directory), "abort"], check=False, timeout=60)
            raise AssertionError(
                f"Postfix did not start:\n{log_path.read_text()}\n{detail}"
            ) from None
        master = int((directory / "queue" / "pid" / "master.pid").read_text())
        try:
            yield
        finally:
            control(directory, "stop", log, check=False)
            wait_exited(master)


def read_maillog(directory: Path) -> list[str]:
    """An instance's log so far, decoded as rbl ingest decodes it."""
    raw = (directory / "maillog").read_bytes()
    return raw.decode("utf-8", "replace").split("\n")[:-1]


@dataclass
class PolicyServer:
    process: subprocess.Popen[str]
    port: int

    def records(self) -> list[dict[str, object]]:
        assert self.process.stdout is not None
        return [json.loads(line) for line in self.process.stdout]


def start_policy_server(*traps: str) -> PolicyServer:
    """tests/data/postfix/policy_server.py (rbl's policy feed) on a free port: one JSON
    line per submitted TrapHit."""
    process = subprocess.Popen(
        [sys.executable, str(POLICY_SERVER), *traps],
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    if not first:
        process.wait(timeout=15)
        raise AssertionError(f"policy server exited {process.returncode} before listening")
    return PolicyServer(process, json.loads(first)["port"])


def stop_policy_server(server: PolicyServer) -> list[dict[str, object]]:
    """Stop the server and return everything it printed after its port."""
    server.process.terminate()
    try:
        records = server.records()
        server.process.wait(timeout=15)
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=15)
    return records


def run_postfix(directory: Path, tmp_path: Path, policy_server: PolicyServer) -> Iterator[int]:
    """The instance of ``MAIN_CF`` in ``directory``, asking ``policy_server``; yields its
    SMTP port while it runs."""
    for sub in ("queue", "data"):
        (directory / sub).mkdir()
    shutil.chown(directory / "data", "postfix")
    smtp_port = free_port()
    (directory / "main.cf").write_text(
        MAIN_CF.format(
            dir=directory, policy_port=policy_server.port, trap=TRAP, trap_domain=TRAP_DOMAIN
        )
    )
    (directory / "master.cf").write_text(MASTER_CF.format(smtp_port=smtp_port))
    with running(directory, tmp_path / "postfix-control.log", ("127.0.0.1", smtp_port)):
        yield smtp_port
