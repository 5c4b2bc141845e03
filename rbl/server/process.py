"""The ``rbl serve`` process around its services: dropping root, and saying it is ready.

The ports bind as root (``privilegedStartService``), then the process becomes
the configured user; once serving, it writes a ready file that tells a
supervisor or a test where it listens. Imports no SQLAlchemy.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
from pathlib import Path

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.logger import Logger

from rbl.server.service import Server

log = Logger(namespace="rbl")  # the serve command's own lines: loaded, answering, stopped


def drop_privileges(user: str) -> None:
    """Become ``user`` after binding privileged ports (only when started as root)."""
    if os.getuid() != 0:
        return
    entry = pwd.getpwnam(user)
    groups = [g.gr_gid for g in grp.getgrall() if user in g.gr_mem]
    os.setgroups(groups)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)


def write_ready_file(path: Path, server: Server) -> None:
    """Tell a supervisor or a test where we listen, atomically."""
    payload: dict[str, object] = {
        "pid": os.getpid(),
        "dns": [{"host": host, "port": port} for host, port in server.dns.bound],
        "listings": server.load.listings,
        "load_seconds": round(server.load.seconds, 3),
        "position": server.load.position,
    }
    if server.writer is not None and server.writer.policy_port is not None:
        address = server.writer.policy_port.getHost()
        if isinstance(address, IPv4Address | IPv6Address):
            payload["policy"] = {"host": address.host, "port": address.port}
    if server.supervisor is not None:
        payload["workers"] = server.supervisor.pids()
    if server.metrics is not None and server.metrics.port is not None:
        host, port = server.metrics.bound
        payload["metrics"] = {"host": host, "port": port}
    if server.web is not None and server.web.port is not None:
        host, port = server.web.bound
        payload["web"] = {"host": host, "port": port}
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload) + "\n")
    os.replace(temporary, path)
