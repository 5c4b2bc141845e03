"""Real secondaries of rbl (Debian's nsd, BIND's named, knotd) behind one interface.

``running_secondary(kind, directory, zones, primary_port)`` writes a minimal
configuration in ``directory`` (a port of its own on 127.0.0.1, no chroot, no
user switch, every file in ``directory``), starts the daemon in the foreground
as the current user, and yields a ``Secondary`` once its port answers: it
transfers ``zones`` from 127.0.0.1@``primary_port`` and takes NOTIFY from
``notify_from``. ``tsig`` (rbl's ``name:algorithm:base64`` spec) signs the SOA
refresh queries and the transfers; with ``signed_notify`` NSD and Knot also
refuse an unsigned NOTIFY (BIND takes NOTIFY from a primary's address whatever
its signature). On leaving, the daemon gets SIGTERM, then SIGKILL; its log tail
is printed for the failure report. ``available``/``require`` say whether a
binary is installed (``require`` skips, or fails under CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.name
import dns.rdatatype

from rbl.config.tsigkeys import parse_key
from tests.support.dns_client import server_query
from tests.support.ports import free_port
from tests.support.processes import require_peer, stop

KINDS = ("nsd", "bind", "knot")
BINARIES = {"nsd": "nsd", "bind": "named", "knot": "knotd"}
PACKAGES = {"nsd": "nsd", "bind": "bind9", "knot": "knot"}


def binary(kind: str) -> str | None:
    """The daemon's path (PATH, else /usr/sbin), or None where it is not installed."""
    name = BINARIES[kind]
    found = shutil.which(name)
    if found is None and os.path.exists(f"/usr/sbin/{name}"):
        found = f"/usr/sbin/{name}"
    return found


def available(kind: str) -> bool:
    return binary(kind) is not None


def missing(kind: str) -> str | None:
    """Why ``kind`` cannot run here, or None."""
    if available(kind):
        return None
    return f"{BINARIES[kind]} is not installed (apt-get install {PACKAGES[kind]})"


def require(kind: str) -> None:
    """Skip the test where ``kind`` is missing; under CI, where it must be, fail it."""
    require_peer(missing(kind), BINARIES[kind])


def ask(port: int, qname: dns.name.Name | str, rdtype: str = "A") -> dns.message.Message:
    """One UDP query to 127.0.0.1:``port``."""
    return server_query("127.0.0.1", port, qname, rdtype, timeout=2)


def soa_serial(port: int, zone: str) -> int | None:
    """The serial 127.0.0.1:``port`` answers for ``zone``; None without an authoritative SOA."""
    try:
        reply = ask(port, dns.name.from_text(zone), "SOA")
    except Exception:
        return None
    for rrset in reply.answer:
        if rrset.rdtype == dns.rdatatype.SOA:
            return int(rrset[0].serial)
    return None


def summary(reply: dns.message.Message) -> tuple[int, frozenset[str]]:
    """rcode and A addresses: what a DNSBL client reads from an answer."""
    return reply.rcode(), frozenset(
        r.to_text() for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for r in rrset
    )


@dataclass
class Key:
    name: str  # without the final dot
    algorithm: str
    secret: str  # base64, as written

    @classmethod
    def parse(cls, spec: str) -> Key:
        name, algorithm, _ = parse_key(spec)
        return cls(name.rstrip("."), algorithm, spec.split(":", 2)[2])


@dataclass
class Plan:
    """What every configuration says, whatever the daemon."""

    directory: Path
    port: int
    zones: tuple[str, ...]
    primary: int
    key: Key | None
    notify_from: str
    signed_notify: bool


def nsd_config(plan: Plan) -> str:
    d, key = plan.directory, plan.key
    text = f"""
server:
    port: {plan.port}
    ip-address: 127.0.0.1
    username: ""
    chroot: ""
    database: ""
    zonesdir: "{d}"
    pidfile: "{d}/nsd.pid"
    xfrdfile: "{d}/xfrd.state"
    zonelistfile: "{d}/zone.list"
    xfrdir: "{d}"
    logfile: "{d}/secondary.log"
    verbosity: 2
    zonefiles-write: 1  # keep a copy of each transferred zone: a restart resumes from it
remote-control:
    control-enable: no
"""
    if key:
        text += f'key:\n    name: "{key.name}"\n    algorithm: {key.algorithm}\n'
        text += f'    secret: "{key.secret}"\n'
    xfr = key.name if key else "NOKEY"
    notify = key.name if key and plan.signed_notify else "NOKEY"
    for zone in plan.zones:
        text += f'zone:\n    name: "{zone}"\n    zonefile: "{zone}.zone"\n'
        text += f"    request-xfr: 127.0.0.1@{plan.primary} {xfr}\n"
        text += f"    allow-notify: {plan.notify_from} {notify}\n"
    return text


def bind_config(plan: Plan) -> str:
    d, key = plan.directory, plan.key
    text = f"""
options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {plan.port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    allow-query {{ any; }};
}};
controls {{ }};
logging {{
    channel file {{ file "{d}/secondary.log"; severity info; print-time yes;
                    print-category yes; print-severity yes; }};
    category default {{ file; }};
    category xfer-in {{ file; }};
    category notify {{ file; }};
}};
"""
    primary = f"127.0.0.1 port {plan.primary}"
    if key:  # the server clause signs every message to the primary: SOA queries too
        text += f'key "{key.name}" {{ algorithm {key.algorithm}; secret "{key.secret}"; }};\n'
        text += f'server 127.0.0.1 {{ keys {{ "{key.name}"; }}; }};\n'
        primary += f' key "{key.name}"'
    for zone in plan.zones:
        text += f'zone "{zone}" {{\n    type secondary;\n    file "{zone}.db";\n'
        text += f"    primaries {{ {primary}; }};\n"
        text += f"    allow-notify {{ {plan.notify_from}; }};\n}};\n"
    return text


def knot_config(plan: Plan) -> str:
    d, key = plan.directory, plan.key
    text = f"""
server:
    rundir: "{d}"
    pidfile: "{d}/knot.pid"
    listen: 127.0.0.1@{plan.port}
control:
    listen: "{d}/knot.sock"
log:
  - target: "{d}/secondary.log"
    any: info
database:
    storage: "{d}"
"""
    if key:
        text += f"key:\n  - id: {key.name}\n    algorithm: {key.algorithm}\n"
        text += f"    secret: {key.secret}\n"
    text += f"remote:\n  - id: primary\n    address: 127.0.0.1@{plan.primary}\n"
    if key:
        text += f"    key: {key.name}\n"
    text += f"acl:\n  - id: notify\n    address: {plan.notify_from}\n    action: notify\n"
    if key and plan.signed_notify:
        text += f"    key: {key.name}\n"
    # No zone file: the zone lives in the journal, and only what was transferred is served.
    text += f"""template:
  - id: default
    storage: "{d}"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: all
    journal-max-usage: 4G  # the default 100M cannot hold a 1M-listing zone (bench-transfer)
zone:
"""
    for zone in plan.zones:
        text += f"  - domain: {zone}\n    master: primary\n    acl: notify\n"
    return text


CONFIGS = {"nsd": nsd_config, "bind": bind_config, "knot": knot_config}


def command(kind: str, daemon: str, conf: Path) -> list[str]:
    if kind == "nsd":
        return [daemon, "-d", "-c", str(conf)]
    if kind == "bind":  # -f: foreground with the configured logging (-g would force stderr)
        return [daemon, "-f", "-c", str(conf)]
    return [daemon, "-c", str(conf)]


@dataclass
class Secondary:
    """A running secondary: ask it, read its log, wait for a serial."""

    kind: str
    port: int
    zones: tuple[str, ...]
    directory: Path
    process: subprocess.Popen[bytes]
    started: float  # seconds from launch until its port answered

    def query(
        self, qname: dns.name.Name | str, rdtype: str = "A", *, tcp: bool = False
    ) -> dns.message.Message:
        return server_query("127.0.0.1", self.port, qname, rdtype, tcp=tcp, timeout=2)

    def serial(self, zone: str | None = None) -> int | None:
        """Its SOA serial for ``zone`` (the first by default); None while it has no zone."""
        return soa_serial(self.port, zone or self.zones[0])

    def wait_serial(self, serial: int, timeout: float = 10.0, zone: str | None = None) -> float:
        """Seconds until it serves ``serial``; after ``timeout``, AssertionError with its log."""
        begun = time.monotonic()
        while time.monotonic() - begun < timeout:
            if self.serial(zone) == serial:
                return time.monotonic() - begun
            assert self.process.poll() is None, f"{self.kind} exited:\n{self.log()[-3000:]}"
            time.sleep(0.05)
        raise AssertionError(
            f"{self.kind} did not reach serial {serial} of {zone or self.zones[0]} in {timeout}s"
            f" (has {self.serial(zone)}):\n{self.log()[-3000:]}"
        )

    def log(self) -> str:
        """Its log file and whatever it wrote to stdout/stderr."""
        parts = [
            path.read_text(errors="replace")
            for path in (self.directory / "secondary.log", self.directory / "output.log")
            if path.exists()
        ]
        return "\n".join(parts)


@contextmanager
def running_secondary(
    kind: str,
    directory: Path,
    zones: str | Sequence[str],
    primary_port: int,
    *,
    port: int | None = None,
    tsig: str | None = None,
    notify_from: str = "127.0.0.1",
    signed_notify: bool = False,
    timeout: float = 20.0,
) -> Iterator[Secondary]:
    """``kind`` (nsd, bind, knot) as secondary of ``zones``, files in ``directory/kind``.

    ``port`` is taken before the primary starts when the primary must NOTIFY it.
    """
    require(kind)
    daemon = binary(kind)
    assert daemon is not None
    home = directory / kind
    home.mkdir(parents=True, exist_ok=True)
    names = (zones,) if isinstance(zones, str) else tuple(zones)
    plan = Plan(
        home,
        port or free_port(),
        names,
        primary_port,
        Key.parse(tsig) if tsig else None,
        notify_from,
        signed_notify,
    )
    conf = home / f"{kind}.conf"
    conf.write_text(CONFIGS[kind](plan))
    launched = time.monotonic()
    with (home / "output.log").open("wb") as output:
        process = subprocess.Popen(
            command(kind, daemon, conf), stdout=output, stderr=subprocess.STDOUT, cwd=home
        )
    secondary = Secondary(kind, plan.port, names, home, process, 0.0)
    try:
        wait_answering(secondary, timeout)
        secondary.started = time.monotonic() - launched
        yield secondary
    finally:
        stop(process)
        print(f"--- {kind} ({conf}):\n{secondary.log()[-4000:]}")


def wait_answering(secondary: Secondary, timeout: float) -> None:
    """Until its port gives any answer (SERVFAIL while the zone is not there yet counts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if secondary.process.poll() is not None:
            raise AssertionError(
                f"{secondary.kind} exited {secondary.process.returncode}:\n{secondary.log()}"
            )
        try:
            server_query("127.0.0.1", secondary.port, secondary.zones[0], "SOA", timeout=0.2)
            return
        except Exception:
            time.sleep(0.05)
    raise AssertionError(f"{secondary.kind} not answering in {timeout}s:\n{secondary.log()}")
