"""A TCP forwarder between a client and its server that a test can cut and restore.

``FaultProxy(host, port)`` listens on 127.0.0.1 (an ephemeral port) and pipes
every connection to ``host:port``. ``cut()`` resets every current connection
and refuses new ones (accepted and reset at once, as a firewall that rejects
would) until ``restore()``: what a database client sees when its server goes
away. Threads, not the reactor, so it works beside a subprocess or in-process
Twisted alike. ``faults`` counts the cuts made, ``refused`` the connections
reset while cut.

``Forwarder`` is the gentler kind: on ``cut()`` it closes (FIN, not RST) every
connection and turns new ones away, so libpq sees its server close the
connection; ``url()`` points a database URL at it.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

BUFFER = 65536


def _reset(sock: socket.socket) -> None:
    """Close with RST rather than FIN: the peer's next read or write fails at once."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class FaultProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._closed = False
        self.faults = 0
        self.refused = 0
        self.connections = 0
        self._acceptor = threading.Thread(target=self._accept, name="faultproxy", daemon=True)
        self._acceptor.start()

    @classmethod
    def for_url(cls, url: str) -> tuple[FaultProxy, str]:
        """A proxy to the server of a database URL, and the same URL through the proxy."""
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None, url
        proxy = cls(parts.hostname, parts.port)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
        return proxy, urlunsplit(parts._replace(netloc=netloc))

    def cut(self) -> None:
        """Reset every connection through the proxy and refuse new ones."""
        with self._lock:
            self._cut = True
            self.faults += 1
            sockets, self._open = self._open, set()
        for sock in sockets:
            _reset(sock)

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.faults -= 1  # closing is not a fault
        self._listener.close()
        self._acceptor.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _address = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                refuse = self._cut
                if refuse:
                    self.refused += 1
            if refuse:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if self._cut:  # cut while connecting
                    self.refused += 1
                    _reset(client)
                    _reset(upstream)
                    continue
                self._open.update((client, upstream))
                self.connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(BUFFER)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass  # reset by cut(), or by either end
        with self._lock:
            mine = source in self._open
            self._open.discard(source)
            self._open.discard(sink)
        if mine:  # an end closed on its own: pass the close on
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


class Forwarder:
    """127.0.0.1:port -> upstream. ``cut()`` drops every connection and turns new ones away
    (accepted, then closed at once: libpq sees the server close the connection)."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = int(self.listener.getsockname()[1])
        self.is_cut = False
        self.closed = False
        self.cuts = 0
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _peer = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.is_cut:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            client.settimeout(None)
            with self.lock:
                self.open.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(source)
            self._drop(sink)

    def _drop(self, sock: socket.socket) -> None:
        with self.lock:
            self.open.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def cut(self) -> None:
        self.is_cut = True
        self.cuts += 1
        with self.lock:
            victims = list(self.open)
        for sock in victims:
            self._drop(sock)

    def restore(self) -> None:
        self.is_cut = False

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.listener.close()
        self.thread.join(timeout=5)

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        return urlunsplit(
            parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host)
        )
