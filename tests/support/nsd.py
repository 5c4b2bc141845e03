"""A real NSD (Debian's nsd) as rbl's secondary: its configuration, and asking it.

``NSD_CONF`` is a server on 127.0.0.1:``port`` keeping everything in one
directory; ``NSD_ZONE`` a zone it transfers from a primary on
127.0.0.1:``primary`` and takes NOTIFY for. ``NSD`` is None where nsd is not
installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import dns.message
import dns.name
import dns.rdatatype

from tests.support.dns_client import server_query

NSD = shutil.which("nsd") or ("/usr/sbin/nsd" if os.path.exists("/usr/sbin/nsd") else None)

NSD_CONF = """
server:
    port: {port}
    ip-address: 127.0.0.1
    username: ""
    chroot: ""
    database: ""
    zonesdir: "{dir}"
    pidfile: "{dir}/nsd.pid"
    xfrdfile: "{dir}/xfrd.state"
    zonelistfile: "{dir}/zone.list"
    xfrdir: "{dir}"
    logfile: "{dir}/nsd.log"
    verbosity: 2
remote-control:
    control-enable: no
"""
NSD_ZONE = """
zone:
    name: "{zone}"
    zonefile: "{zone}.zone"
    request-xfr: 127.0.0.1@{primary} NOKEY
    allow-notify: 127.0.0.1 NOKEY
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        port: int = udp.getsockname()[1]
    return port


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def ask(
    port: int, qname: dns.name.Name, rdtype: str, host: str = "127.0.0.1"
) -> dns.message.Message:
    return server_query(host, port, qname, rdtype, timeout=2)


def soa_serial(port: int, zone: str, host: str = "127.0.0.1") -> int | None:
    try:
        reply = ask(port, dns.name.from_text(zone), "SOA", host)
    except Exception:
        return None
    for rrset in reply.answer:
        if rrset.rdtype == dns.rdatatype.SOA:
            return int(rrset[0].serial)
    return None


def wait_serial(port: int, zone: str, serial: int, timeout: float, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if soa_serial(port, zone, host) == serial:
            return
        time.sleep(0.1)
    found = soa_serial(port, zone, host)
    raise AssertionError(f"NSD did not reach serial {serial} of {zone}: {found}")


def summary(reply: dns.message.Message) -> tuple[int, frozenset[str]]:
    return reply.rcode(), frozenset(
        r.to_text() for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for r in rrset
    )
