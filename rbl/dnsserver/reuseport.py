"""Ports that share their number with other processes (SO_REUSEPORT) for ``--workers``.

Each worker process binds its own UDP and TCP sockets to the same address
and port and the kernel spreads packets and connections over them. Linux
only lets sockets of the same user share a port this way, so all workers
bind before any of them drops privileges.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import tcp

from rbl.dnsserver.protocol import DnsUdpPort


def _reuse(sock: socket.socket) -> socket.socket:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


class SharedUdpPort(DnsUdpPort):
    def createInternetSocket(self) -> socket.socket:
        return _reuse(super().createInternetSocket())


class SharedTcpPort(tcp.Port):
    def createInternetSocket(self) -> socket.socket:
        return _reuse(super().createInternetSocket())  # type: ignore[no-untyped-call]


def listen_tcp(port: int, factory: Any, interface: str, reactor: Any) -> SharedTcpPort:
    listening = SharedTcpPort(port, factory, 128, interface, reactor)
    listening.startListening()
    return listening
