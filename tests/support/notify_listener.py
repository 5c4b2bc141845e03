"""A stand-in secondary that takes NOTIFY on a real UDP socket (IPv4 or IPv6 loopback).

``NotifyListener(host)`` binds an ephemeral port (``port`` once bound, or a
given one, e.g. a port that was closed a moment ago), answers each NOTIFY as a
secondary does (same id, QR, opcode NOTIFY, NOERROR) from a thread, and keeps
what it heard: ``heard`` is a list of (zone, source address). ``listening``
gives one for a ``with`` block; ``close`` ends it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import dns.message
import dns.opcode


class NotifyListener:
    def __init__(self, host: str, port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.1)
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        self.heard: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        """As ``[transfer] notify`` writes it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            query = dns.message.from_wire(data)
            if query.opcode() != dns.opcode.NOTIFY:
                continue
            self.heard.append((str(query.question[0].name).rstrip("."), str(addr[0])))
            self.sock.sendto(dns.message.make_response(query).to_wire(), addr)

    def wait_for(self, zone: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(heard == zone for heard, _ in self.heard):
            if time.monotonic() > deadline:
                raise AssertionError(f"no NOTIFY for {zone} at {self.endpoint}: {self.heard}")
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@contextmanager
def listening(host: str, port: int = 0) -> Iterator[NotifyListener]:
    """A NotifyListener for the block, closed after it."""
    listener = NotifyListener(host, port)
    try:
        yield listener
    finally:
        listener.close()
