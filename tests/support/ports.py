"""Ports for a test to give a server, a peer or a stand-in, picked so that they cannot clash.

A port found by binding port 0 and closing is ephemeral: the next ``bind(0)`` or
outgoing connection anywhere on the machine may take it before the test does (CI
saw ``rbl serve`` bind the DNS port a test had just picked for its policy feed).
``free_port`` picks below the kernel's ephemeral range, where nothing is handed
out unasked, checks the port binds for UDP and TCP on the host, and never gives
the same port twice in one test run. ``closed_port`` is such a port nobody
listens on: datagrams to it come back ICMP port unreachable, connections refused.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOWEST = 20000  # above the registered services a test machine may run
_given: set[int] = set()
_pick = random.Random()  # its own: hypothesis seeds the shared one inside @given


def _ephemeral_start() -> int:
    """The kernel's first ephemeral port (Linux; 32768 where the range cannot be read)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
    return max(low, _LOWEST + 1000)


def _binds(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(family, kind) as probe:
                probe.bind((host, port))
    except OSError:
        return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now for UDP and TCP on ``host`` that no one takes meanwhile, unique per run."""
    top = _ephemeral_start()
    for _ in range(1000):
        port = _pick.randrange(_LOWEST, top)
        if port not in _given and _binds(host, port):
            _given.add(port)
            return port
    raise RuntimeError(f"no free port on {host} in {_LOWEST}-{top - 1}")


def closed_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that nothing listens on, and nothing will unless the test binds it."""
    return free_port(host)
