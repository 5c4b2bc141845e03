# mypy: allow-untyped-calls
"""HTTP-level limits of the public site: body, request line, headers, slow clients, connections.

twisted.web reads a whole request body before the resource sees it, answers
an oversize header block with a bare 400, and only times out a connection
that is idle (a client trickling one byte every few seconds never is). The
channel here refuses before reading: a Content-Length over ``MAX_BODY`` is
answered 413 as soon as the headers end (no ``100 Continue``, no body read),
a chunked body is cut off at the limit, an overlong request line is 414, too
many or too large headers 431, and a request not fully received within
``REQUEST_DEADLINE`` seconds of its first byte is 408. Each refusal is a short
text answer with ``Connection: close``; the write side is shut, what the
client still sends is discarded (at most ``LINGER_BYTES``, for at most
``LINGER`` seconds, so the answer is not lost to a reset) and the connection
is then aborted. ``LimitedSite`` also bounds the connections open at once:
past ``max_connections`` a new connection gets a 503 with Retry-After, and
past ``max_per_client`` from one client (address, or IPv6 /64: see
``client_network``) a new one from that client is closed at once, so one
client holding slow connections cannot take the site from everyone else.
Imports no store module.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from twisted.internet.interfaces import IDelayedCall, ITransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.resource import Resource

MAX_BODY = 16 * 1024  # a removal form is a few KiB at most
MAX_REQUEST_LINE = 4096  # bytes of "METHOD /path?query HTTP/1.1"
MAX_HEADER_BYTES = 8192  # request line and header lines together
MAX_HEADERS = 50  # header lines per request
REQUEST_DEADLINE = 20.0  # seconds from a request's first byte to its last
IDLE_TIMEOUT = 15.0  # seconds a connection may stay silent (twisted's timeOut)
LINGER = 2.0  # seconds a refused client's data is still drained before the abort
LINGER_BYTES = 1024 * 1024  # ... and at most this much of it (discarded, never kept)
BUSY_RETRY = 10  # Retry-After of the "too many connections" answer
MAX_CONNECTIONS = 200
MAX_PER_CLIENT = 20  # connections one client may hold open at once
CLIENT_PREFIXES = (32, 64)  # a client for the connection cap: an IPv4 address, an IPv6 /64


def client_network(host: str, ipv4_prefix: int, ipv6_prefix: int) -> str:
    """The network ``host`` is counted under: its IPv4 /``ipv4_prefix`` or IPv6 /``ipv6_prefix``.

    One party usually holds a whole IPv6 /64 (and often many addresses of an
    IPv4 /24), so limits per full address are limits on nothing. An IPv4-mapped
    IPv6 address counts as its IPv4 address; text that is no address counts as
    itself.
    """
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = ipv4_prefix if address.version == 4 else ipv6_prefix
    shift = address.max_prefixlen - prefix
    first = type(address)((int(address) >> shift) << shift)
    return f"{first}/{prefix}"


def refusal(code: int, message: str, headers: dict[bytes, bytes] | None = None) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection, its body one line of text."""
    body = (message + "\n").encode("utf-8")
    reason = http.RESPONSES.get(code, b"Error")
    lines = [
        b"HTTP/1.1 %d %s" % (code, reason),
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Length: %d" % len(body),
        b"Connection: close",
        b"Cache-Control: no-store",
        b"X-Content-Type-Options: nosniff",
        *(name + b": " + value for name, value in (headers or {}).items()),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _Closer:
    """Shut the write side, drain a little of what still comes, then abort."""

    def __init__(self, transport: ITransport, call_later: Any) -> None:
        self.transport = transport
        self.drained = 0
        self.timer: IDelayedCall | None = None
        half_close = getattr(transport, "loseWriteConnection", None)
        if half_close is None:  # not TCP (tests' StringTransport): close outright
            transport.loseConnection()
            return
        half_close()
        self.timer = call_later(LINGER, self.abort)

    def drain(self, data: bytes) -> None:
        self.drained += len(data)
        if self.drained > LINGER_BYTES:
            self.abort()

    def abort(self) -> None:
        self.cancel()
        abort = getattr(self.transport, "abortConnection", None)
        (abort or self.transport.loseConnection)()

    def cancel(self) -> None:
        timer, self.timer = self.timer, None
        if timer is not None and timer.active():
            timer.cancel()


class LimitedChannel(http.HTTPChannel):
    """An HTTP/1.1 channel that refuses oversize or slow requests before buffering them."""

    maxHeaders = MAX_HEADERS
    totalHeadersSize = MAX_HEADER_BYTES
    MAX_LENGTH = MAX_HEADER_BYTES  # a line that has not ended by now never will be accepted
    request_deadline = REQUEST_DEADLINE

    _closer: _Closer | None = None
    _deadline: IDelayedCall | None = None

    @property
    def refused(self) -> bool:
        return self._closer is not None

    def refuse(self, code: int, message: str) -> None:
        """Answer ``code`` with ``message`` now and read nothing more of this connection."""
        if self._closer is not None or self.transport is None:
            return
        self._cancel_deadline()
        self.setTimeout(None)
        self.transport.write(refusal(code, message))
        self._closer = _Closer(self.transport, self.callLater)

    # -- parsing, with the limits checked first

    client: str | None = None  # what the site counts this connection under (None: uncapped)

    def connectionMade(self) -> None:
        super().connectionMade()
        self._start_deadline()
        site = getattr(self, "site", None)
        if isinstance(site, LimitedSite):
            site.connection_made(self)

    def dataReceived(self, data: bytes) -> None:
        if self._closer is not None:
            self._closer.drain(data)
            return
        if self._deadline is None and not self._handlingRequest:
            self._start_deadline()
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._closer is not None:
            return
        if self._receivedHeaderSize == 0 and len(line) > MAX_REQUEST_LINE:
            self.refuse(
                http.REQUEST_URI_TOO_LONG,
                f"The request line is longer than {MAX_REQUEST_LINE} bytes; "
                "lookups and addresses are far shorter.",
            )
            return
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self._headers_too_large()
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        if self._receivedHeaderSize == 0:
            self.refuse(
                http.REQUEST_URI_TOO_LONG,
                f"The request line is longer than {MAX_REQUEST_LINE} bytes.",
            )
        else:
            self._headers_too_large()

    def _headers_too_large(self) -> None:
        self.refuse(
            431,  # Request Header Fields Too Large (RFC 6585), not in twisted.web.http
            f"The request headers are larger than {self.totalHeadersSize} bytes.",
        )

    def headerReceived(self, line: bytes) -> bool:
        if self._closer is not None:
            return False
        if self._receivedHeaderCount >= self.maxHeaders:
            self.refuse(431, f"The request has more than {self.maxHeaders} header lines.")
            return False
        ok: bool = super().headerReceived(line)
        return ok

    def allHeadersReceived(self) -> None:
        if self._closer is not None:
            return
        if self.length is not None and self.length > MAX_BODY:
            self.refuse(http.REQUEST_ENTITY_TOO_LARGE, body_too_large())
            return
        super().allHeadersReceived()

    def rawDataReceived(self, data: bytes) -> None:
        if self._closer is not None:
            self._closer.drain(data)
            return
        super().rawDataReceived(data)

    def allContentReceived(self) -> None:
        if self._closer is not None:
            return  # the request was refused: never hand it to the site
        self._cancel_deadline()
        super().allContentReceived()

    def _respondToBadRequestAndDisconnect(self) -> None:
        self.refuse(
            http.BAD_REQUEST, "The request is malformed (request line, header or body framing)."
        )

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_deadline()
        if self._closer is not None:
            self._closer.cancel()
        site = getattr(self, "site", None)
        if isinstance(site, LimitedSite):
            site.connection_closed(self)
        super().connectionLost(reason)

    # -- slow clients

    def _start_deadline(self) -> None:
        self._cancel_deadline()
        self._deadline = self.callLater(self.request_deadline, self._too_slow)

    def _cancel_deadline(self) -> None:
        deadline, self._deadline = self._deadline, None
        if deadline is not None and deadline.active():
            deadline.cancel()

    def _too_slow(self) -> None:
        self._deadline = None
        if self._handlingRequest or self._closer is not None:
            return
        self.refuse(
            http.REQUEST_TIMEOUT,
            f"The request was not complete within {self.request_deadline:g} seconds.",
        )


def body_too_large() -> str:
    return f"A request body may be at most {MAX_BODY // 1024} KiB."


class LimitedRequest(server.Request):
    """Counts a chunked body and has the channel refuse it once it passes ``MAX_BODY``.

    Also answers a method a plain ``Resource`` (the ``/dumps/`` files) has no
    ``render_*`` for with 405 and an Allow header; twisted.web says 501 for
    methods outside GET, HEAD and POST.
    """

    _body_seen = 0

    def render(self, resrc: Resource) -> None:
        if type(resrc).render is Resource.render:
            method = self.method.decode("ascii", "replace")
            allowed = sorted(
                name.removeprefix("render_")
                for name in dir(resrc)
                if name.startswith("render_") and name[7:].isupper()
            )
            if method not in allowed and not (method == "HEAD" and "GET" in allowed):
                self._not_allowed(method, allowed)
                return
        super().render(resrc)

    def _not_allowed(self, method: str, allowed: list[str]) -> None:
        body = f"{method[:20]} is not allowed here; use {' or '.join(allowed)}.\n".encode()
        self.setResponseCode(http.NOT_ALLOWED)
        self.setHeader(b"allow", ", ".join(allowed).encode("ascii"))
        self.setHeader(b"content-type", b"text/plain; charset=utf-8")
        self.setHeader(b"content-length", str(len(body)).encode("ascii"))
        self.setHeader(b"x-content-type-options", b"nosniff")
        self.write(body)
        self.finish()

    def handleContentChunk(self, data: bytes) -> None:
        self._body_seen += len(data)
        if self._body_seen > MAX_BODY:
            refuse = getattr(self.channel, "refuse", None)
            if refuse is not None:
                refuse(http.REQUEST_ENTITY_TOO_LARGE, body_too_large())
            return
        super().handleContentChunk(data)


class _Busy(Protocol):
    """What a connection past ``max_connections`` gets: a 503 and the door."""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(
            refusal(
                http.SERVICE_UNAVAILABLE,
                "Too many connections are open to this site; please try again shortly.",
                {b"Retry-After": str(BUSY_RETRY).encode("ascii")},
            )
        )
        reactor: Any = getattr(self.factory, "reactor", None)
        self.closer = _Closer(self.transport, reactor.callLater)

    def dataReceived(self, data: bytes) -> None:
        self.closer.drain(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.closer.cancel()


class LimitedSite(server.Site):
    """A Site whose channels are ``LimitedChannel``s, at most ``max_connections`` at once.

    Each client (``client_network`` of its address, with ``client_prefixes``)
    holds at most ``max_per_client`` of them; a connection past that is closed
    at once, before a byte is read or written, while other clients are still
    served. Connections from ``uncapped`` networks (the trusted proxies, which
    carry many clients each) count only toward ``max_connections``.
    """

    requestFactory = LimitedRequest

    def __init__(
        self,
        resource: Resource,
        *,
        reactor: Any,
        max_connections: int = MAX_CONNECTIONS,
        max_per_client: int = MAX_PER_CLIENT,
        client_prefixes: tuple[int, int] = CLIENT_PREFIXES,
        uncapped: Sequence[str] = (),
        request_deadline: float = REQUEST_DEADLINE,
        timeout: float = IDLE_TIMEOUT,
    ) -> None:
        super().__init__(resource, requestFactory=LimitedRequest, reactor=reactor, timeout=timeout)
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.client_prefixes = client_prefixes
        self.uncapped = tuple(ipaddress.ip_network(net, strict=False) for net in uncapped)
        self.request_deadline = request_deadline
        self.open_connections = 0
        self.refused_connections = 0  # over max_connections: answered 503
        self.refused_per_client = 0  # over max_per_client: closed at once
        self.per_client: dict[str, int] = {}
        self.channels: set[LimitedChannel] = set()  # open ones, for a graceful stop

    def protocol(self) -> Any:  # twisted.web.http's factory function, with our channel
        channel = LimitedChannel()
        channel.request_deadline = self.request_deadline
        return http._GenericHTTPChannelProtocol(channel)

    def client_of(self, addr: Any) -> str | None:
        """What a peer's connections are counted under; None for an uncapped peer."""
        host = str(getattr(addr, "host", "") or "unknown")
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return host
        if any(address in network for network in self.uncapped):
            return None
        return client_network(host, *self.client_prefixes)

    def buildProtocol(self, addr: Any) -> Any:
        client = self.client_of(addr)
        if client is not None and self.per_client.get(client, 0) >= self.max_per_client:
            self.refused_per_client += 1
            return None  # Twisted closes the socket at once
        if self.open_connections >= self.max_connections:
            self.refused_connections += 1
            busy = _Busy()
            busy.factory = self
            return busy
        self.open_connections += 1
        return super().buildProtocol(addr)

    def connection_made(self, channel: LimitedChannel) -> None:
        """Count an accepted connection under its client (the channel gives it back on close)."""
        self.channels.add(channel)
        transport = channel.transport
        channel.client = self.client_of(None if transport is None else transport.getPeer())
        if channel.client is not None:
            self.per_client[channel.client] = self.per_client.get(channel.client, 0) + 1

    def connection_closed(self, channel: LimitedChannel) -> None:
        if channel not in self.channels:
            return  # already counted out
        self.channels.discard(channel)
        self.open_connections = max(0, self.open_connections - 1)
        client, channel.client = channel.client, None
        if client is not None:
            left = self.per_client.pop(client, 0) - 1
            if left > 0:
                self.per_client[client] = left

    def close_connections(self) -> None:
        """Close every connection once what it has written is sent (a graceful stop)."""
        for channel in list(self.channels):
            channel.loseConnection()


__all__ = [
    "MAX_BODY",
    "LimitedChannel",
    "LimitedRequest",
    "LimitedSite",
    "client_network",
    "refusal",
]
