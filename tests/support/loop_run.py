"""The whole loop as an operator runs it, inside a private network and mount namespace.

``rbl serve`` with zones/example.toml (SOA minimum 300, only its paths changed),
unbound on 127.0.0.1:53 as the resolver Postfix uses (a stub zone for
bl.example.org, cached or not), and a Postfix on 45.33.14.1:25 whose RCPT
restrictions ask rbl's policy feed and then its zone, with or without postscreen
in front. Each of ``--ips`` fresh addresses 45.33.14.x sends one RCPT to a trap
(session 1), quits, and comes straight back with a normal RCPT (session 2),
which must be refused. Writes what happened, with timings and Postfix's log
lines, as JSON.

Run by tests/feeds/test_loop_live.py, as root:
``unshare --net --mount python -m tests.support.loop_run --out OUT.json --workdir DIR ...``;
the namespace lets clients bind 45.33.14.x (loopback addresses, 127/8, are never
listed) and gives Postfix its own /etc/resolv.conf. Refuses to run outside one.
By hand, ``--minimum`` and ``--retry-for`` measure how long a failing setup takes
to refuse the client (one more session a second until one is refused).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dns.exception
import dns.rcode

from tests.support.dns_client import server_query
from tests.support.postfix import MAIN_CF_HEAD, SERVICES, running
from tests.support.processes import REPO, rbl_command
from tests.support.server import RunningServer, start_server, stop_server

PREFIX = "45.33.14"
SERVER_IP = f"{PREFIX}.1"
FIRST_CLIENT = 10  # clients are 45.33.14.10, .11, ...
TRAP = "spamtrap@example.org"
NORMAL = "someone@example.org"
ZONE = "bl.example.org"
UNBOUND = shutil.which("unbound") or "/usr/sbin/unbound"
WATCH_LIMIT = 10.0  # seconds the direct DNS watcher waits for a listing

# The restrictions as docs/DEPLOYMENT.md gives them: the policy answer, then the zone.
MAIN_CF = (
    MAIN_CF_HEAD
    + """\
mydestination = example.org
inet_interfaces = {server_ip}
relay_domains =
local_transport = discard:local
default_transport = discard:relay
smtpd_policy_service_default_action = DUNNO
smtpd_recipient_restrictions =
    permit_mynetworks,
    reject_unauth_destination,
    check_policy_service inet:{policy},
    reject_rbl_client {zone}
"""
)

POSTSCREEN_CF = """\
postscreen_dnsbl_sites = {zone}
postscreen_dnsbl_threshold = 1
postscreen_dnsbl_action = enforce
postscreen_greet_action = ignore
postscreen_greet_wait = 1s
"""

SMTPD_LINE = "{server_ip}:25 inet n - n - - smtpd\n"
POSTSCREEN_LINES = """\
{server_ip}:25 inet n - n - 1 postscreen
smtpd     pass  - - n - - smtpd
dnsblog   unix  - - n - 0 dnsblog
tlsproxy  unix  - - n - 0 tlsproxy
"""

UNBOUND_CONF = """\
server:
    interface: 127.0.0.1
    port: 53
    do-ip6: no
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: "{dir}/unbound.pid"
    use-syslog: no
    logfile: "{dir}/unbound.log"
    verbosity: 1
    log-queries: yes
    log-replies: yes
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    # Only the iterator: no DNSSEC validation, bl.example.org is not signed.
    module-config: "iterator"
    domain-insecure: "{zone}"
    do-not-query-localhost: no
    # Postfix looks up every client's name; there is no network to ask.
    local-zone: "{reverse}." static
stub-zone:
    name: "{zone}"
    stub-addr: 127.0.0.1@{dns_port}
    stub-no-cache: {no_cache}
"""


def run(*command: str) -> None:
    subprocess.run(command, check=True, timeout=60, stdin=subprocess.DEVNULL)


def enter_namespace(workdir: Path) -> None:
    """Loopback up with the clients' /24 on it, and a resolv.conf naming unbound."""
    if [name for _, name in socket.if_nameindex()] != ["lo"]:
        raise SystemExit("loop_run: run me in a new network namespace (unshare --net --mount)")
    run("ip", "link", "set", "lo", "up")
    run("ip", "addr", "add", f"{SERVER_IP}/24", "dev", "lo")
    resolv = workdir / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:2 attempts:2\n")
    run("mount", "--bind", str(resolv), "/etc/resolv.conf")


def example_config(
    workdir: Path, minimum: int | None = None, *, reject_listed: bool = False
) -> Path:
    """zones/example.toml with its database and dumps in ``workdir``; nothing else changed
    unless ``minimum`` replaces bl.example.org's SOA minimum or ``reject_listed`` turns
    on the policy feed's rejects."""
    text = (REPO / "zones" / "example.toml").read_text()
    replaced = {
        'url = "sqlite:///../var/rbl-example.sqlite"': f'url = "sqlite:///{workdir}/rbl.sqlite"',
        'directory = "../var/dumps"': f'directory = "{workdir}/dumps"',
    }
    if minimum is not None:
        replaced["minimum = 300"] = f"minimum = {minimum}"
    if reject_listed:
        replaced["# reject_listed = false"] = "reject_listed = true"
    for old, new in replaced.items():
        assert old in text, f"zones/example.toml no longer has {old!r}"
        text = text.replace(old, new)
    config = workdir / "rbl.toml"
    config.write_text(text)
    return config


def query(port: int, name: str, qtype: str = "A") -> int:
    return int(server_query("127.0.0.1", port, name, qtype, timeout=2).rcode())


def wait_answering(port: int, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            query(port, name, "SOA")
            return
        except (OSError, dns.exception.Timeout):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def rbl(
    workdir: Path, workers: int, minimum: int | None = None, *, reject_listed: bool = False
) -> Iterator[RunningServer]:
    config = example_config(workdir, minimum, reject_listed=reject_listed)
    rbl_command(config, "traps", "add", TRAP)
    server = start_server(config, *(["--workers", str(workers)] if workers > 1 else []))
    try:
        yield server
    finally:
        stop_server(server)


@contextmanager
def unbound(workdir: Path, dns_port: int, *, no_cache: bool) -> Iterator[None]:
    conf = workdir / "unbound.conf"
    conf.write_text(
        UNBOUND_CONF.format(
            dir=workdir,
            zone=ZONE,
            dns_port=dns_port,
            no_cache="yes" if no_cache else "no",
            reverse=".".join(reversed(PREFIX.split("."))) + ".in-addr.arpa",
        )
    )
    run(UNBOUND + "-checkconf", str(conf))
    with (workdir / "unbound.out").open("w") as out:
        process = subprocess.Popen(
            [UNBOUND, "-d", "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_answering(53, ZONE)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@contextmanager
def postfix(workdir: Path, policy: tuple[str, int], *, postscreen: bool) -> Iterator[Path]:
    """A Postfix instance on 45.33.14.1:25; yields its directory (maillog inside)."""
    directory = workdir / "postfix"
    for sub in ("queue", "data"):
        (directory / sub).mkdir(parents=True)
    shutil.chown(directory / "data", "postfix")
    main = MAIN_CF.format(
        dir=directory, server_ip=SERVER_IP, policy=f"{policy[0]}:{policy[1]}", zone=ZONE
    )
    front = POSTSCREEN_LINES if postscreen else SMTPD_LINE
    (directory / "main.cf").write_text(
        main + (POSTSCREEN_CF.format(zone=ZONE) if postscreen else "")
    )
    (directory / "master.cf").write_text(front.format(server_ip=SERVER_IP) + SERVICES)
    with running(directory, workdir / "postfix-control.log", (SERVER_IP, 25)):
        yield directory


class Watcher(threading.Thread):
    """Asks rbl itself (not unbound) for ``name`` until it is listed: when it became visible."""

    def __init__(self, dns_port: int, name: str) -> None:
        super().__init__(daemon=True)
        self.dns_port, self.name = dns_port, name
        self.visible: float | None = None
        self.started_at = time.monotonic()

    def run(self) -> None:
        while time.monotonic() - self.started_at < WATCH_LIMIT:
            try:
                if query(self.dns_port, self.name) == dns.rcode.NOERROR:
                    self.visible = time.monotonic()
                    return
            except (OSError, dns.exception.Timeout):
                pass
            time.sleep(0.005)


def rcpt_session(ip: str, rcpt: str) -> dict[str, object]:
    """One SMTP session from ``ip``: EHLO, MAIL FROM, one RCPT, QUIT; the replies and times."""
    result: dict[str, object] = {"rcpt": rcpt}
    start = time.monotonic()
    try:
        with smtplib.SMTP(
            SERVER_IP, 25, local_hostname="mail.spam.example", timeout=30, source_address=(ip, 0)
        ) as smtp:
            result["connected"] = time.monotonic()
            code, text = smtp.ehlo()
            result["ehlo"] = code
            code, text = smtp.docmd("MAIL", "FROM:<offer@spam.example>")
            result["mail"] = f"{code} {text.decode(errors='replace')}"
            sent = time.monotonic()
            code, text = smtp.docmd("RCPT", f"TO:<{rcpt}>")
            result["rcpt_sent"] = sent
            result["rcpt_replied"] = time.monotonic()
            result["code"] = code
            result["reply"] = f"{code} {text.decode(errors='replace')}"
            smtp.docmd("QUIT")
    except (OSError, smtplib.SMTPException) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["start"] = start
    result["end"] = time.monotonic()
    return result


def client(ip: str, dns_port: int, retry_for: float = 0.0) -> dict[str, object]:
    """Session 1 to the trap, then at once session 2 to a normal recipient, from ``ip``;
    if that is accepted, with ``retry_for``, one more session a second until one is
    refused or that many seconds have passed (how long the loop takes when it fails)."""
    name = ".".join(reversed(ip.split("."))) + "." + ZONE
    assert query(dns_port, name) == dns.rcode.NXDOMAIN, f"{ip} listed before its trap hit"
    watcher = Watcher(dns_port, name)
    watcher.start()
    first = rcpt_session(ip, TRAP)
    second = rcpt_session(ip, NORMAL)
    watcher.join()
    sent = first.get("rcpt_sent")
    record: dict[str, object] = {"ip": ip, "trap_session": first, "next_session": second}
    if isinstance(sent, float) and watcher.visible is not None:
        record["visible_after_trap_rcpt"] = watcher.visible - sent
        replied = first.get("rcpt_replied")
        if isinstance(replied, float):
            record["visible_before_trap_reply"] = watcher.visible <= replied
    code = second.get("code")
    record["next_session_rejected"] = refused = isinstance(code, int) and 500 <= code < 600
    if retry_for and not refused and isinstance(sent, float):
        retries = []
        while not refused and time.monotonic() - sent < retry_for:
            time.sleep(1.0)
            retries.append(later := rcpt_session(ip, NORMAL))
            code = later.get("code")
            refused = isinstance(code, int) and 500 <= code < 600
        record["retries"] = len(retries)
        replied = retries[-1].get("rcpt_replied") if retries else None
        if refused and isinstance(replied, float):
            record["first_refused_after_trap_rcpt"] = replied - sent
            record["first_refusal"] = retries[-1]["reply"]
    return record


def log_lines(directory: Path, ip: str) -> list[str]:
    raw = (directory / "maillog").read_bytes().decode("utf-8", "replace")
    return [line for line in raw.split("\n") if f"[{ip}]" in line]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ips", type=int, default=20)
    parser.add_argument("--postscreen", action="store_true")
    parser.add_argument("--stub-no-cache", action="store_true")
    parser.add_argument("--reject-listed", action="store_true", help="[feeds.policy] reject_listed")
    parser.add_argument("--workers", type=int, default=1, help="rbl serve --workers")
    parser.add_argument("--minimum", type=int, help="the zone's SOA minimum, for the example's 300")
    parser.add_argument(
        "--retry-for", type=float, default=0.0, help="seconds to retry an accepted client"
    )
    args = parser.parse_args(argv)
    workdir: Path = args.workdir
    workdir.chmod(0o755)  # Postfix's daemons run as the postfix user
    enter_namespace(workdir)
    with ExitStack() as stack:
        server = stack.enter_context(
            rbl(workdir, args.workers, args.minimum, reject_listed=args.reject_listed)
        )
        dns_port = server.endpoint("dns")[1]
        stack.enter_context(unbound(workdir, dns_port, no_cache=args.stub_no_cache))
        directory = stack.enter_context(
            postfix(workdir, server.endpoint("policy"), postscreen=args.postscreen)
        )
        clients = []
        for n in range(args.ips):
            clients.append(client(f"{PREFIX}.{FIRST_CLIENT + n}", dns_port, args.retry_for))
        time.sleep(0.5)  # Postfix's last lines
        for record in clients:
            record["log"] = log_lines(directory, str(record["ip"]))
        maillog = (directory / "maillog").read_bytes().decode("utf-8", "replace")
        versions = {"postfix": postconf_version(directory), "unbound": unbound_version()}
    result = {
        "postscreen": args.postscreen,
        "stub_no_cache": args.stub_no_cache,
        "workers": args.workers,
        "minimum": args.minimum,
        "clients": clients,
        "versions": versions,
        "maillog": maillog.split("\n")[:-1],
        "machine": os.uname().nodename,
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    args.out.write_text(json.dumps(result, indent=1))


def postconf_version(directory: Path) -> str:
    out = subprocess.run(
        ["postconf", "-c", str(directory), "-h", "mail_version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return out.stdout.strip()


def unbound_version() -> str:
    out = subprocess.run([UNBOUND, "-V"], capture_output=True, text=True, check=False, timeout=30)
    return out.stdout.split("\n", 1)[0].strip()


if __name__ == "__main__":
    main(sys.argv[1:])
