# mypy: allow-untyped-calls
"""The socket NOTIFY goes to one secondary from: UDP of the target's family, connected to it.

One socket per target, not one for all: an IPv4 socket cannot reach an IPv6
secondary (the send fails), and an unconnected socket hears of no ICMP error.
Connected, the kernel reports "port unreachable" (nothing listens there) and
"host/network unreachable" on this socket, so the sender can say which
secondary is failing and why. Twisted's epoll reactor takes such an error
(EPOLLERR without input) for the end of the socket and would close the port;
this port reads the error (SO_ERROR) instead, hands it to the sender as the
reason and goes on reading. A socket that did close anyway is replaced at the
next try (``alive``).
Imports nothing from rbl.store.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

from twisted.internet import udp
from twisted.internet.protocol import DatagramProtocol

from rbl.dnsserver.notify import NotifySender, Opener, Target

_ICMP = {
    errno.ECONNREFUSED: "ICMP port unreachable",
    errno.EHOSTUNREACH: "ICMP host unreachable",
    errno.ENETUNREACH: "ICMP network unreachable",
}


def icmp_reason(number: int) -> str:
    return _ICMP.get(number) or f"ICMP error: {os.strerror(number)}"


class NotifyChannel(DatagramProtocol):
    """Datagrams to and from one target; errors go to the sender as reasons."""

    noisy = False

    def __init__(self, target: Target, sender: NotifySender) -> None:
        self.target = target
        self.sender = sender
        self.lost = False

    @property
    def alive(self) -> bool:
        return self.transport is not None and not self.lost

    def stopProtocol(self) -> None:
        self.lost = True  # closed, by us or by the reactor after an error

    def send(self, packet: bytes) -> None:
        if self.transport is None:
            raise ConnectionError("the socket is closed")
        self.transport.write(packet, None)  # connected: the kernel knows where

    def close(self) -> None:
        port, self.transport = self.transport, None
        if port is not None:
            port.stopListening()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.sender.received(self.target, datagram)

    def connectionRefused(self) -> None:
        self.sender.failed(self.target, icmp_reason(errno.ECONNREFUSED))

    def readError(self, number: int) -> None:
        self.sender.failed(self.target, icmp_reason(number))


class _ConnectedPort(udp.Port):
    """A connected UDP port whose errors are reasons for the sender."""

    stopping = False

    def stopListening(self) -> Any:
        self.stopping = True
        return super().stopListening()

    def connectionLost(self, reason: Any = None) -> None:
        """The reactor saw a socket error: hand it to the sender and keep the socket.

        Reading SO_ERROR clears the error, so the socket is readable again and
        stays open (reopening one per retry would log Twisted's "starting on"
        and "Closed" lines for every retry).
        """
        if not self.stopping and isinstance(self.protocol, NotifyChannel):
            try:
                number = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            except (OSError, AttributeError):
                number = 0
            if number:
                self.protocol.readError(number)
                self.startReading()
                return
        super().connectionLost(reason)

    def doRead(self) -> None:
        for _ in range(16):  # a burst of queued errors and answers; then yield
            try:
                super().doRead()
                return
            except OSError as exc:  # EHOSTUNREACH, ENETUNREACH... from an earlier send
                protocol = self.protocol
                if isinstance(protocol, NotifyChannel):
                    protocol.readError(exc.errno or 0)


def udp_opener(reactor: Any) -> Opener:
    """Opens, for each target, an ephemeral UDP port of its family connected to it."""

    def open_channel(target: Target, sender: NotifySender) -> NotifyChannel:
        host, port_number = target
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            socket.inet_pton(family, host.split("%", 1)[0])
        except OSError:
            raise ValueError(f"{host!r} is not an IP address") from None
        channel = NotifyChannel(target, sender)
        interface = "::" if family == socket.AF_INET6 else "0.0.0.0"
        port = _ConnectedPort(0, channel, interface=interface, reactor=reactor)
        port.startListening()
        try:
            port.connect(host, port_number)
        except Exception:
            port.stopListening()
            raise
        return channel

    return open_channel
