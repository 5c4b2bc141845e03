"""Requests into a real ``twisted.web`` Site as raw bytes, answers parsed by http.client.

The Site's own HTTPChannel reads the request from a StringTransport, so
headers, body limits and status lines are the real ones; with a synchronous
``run`` every response is complete when ``dataReceived`` returns.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from http.client import HTTPResponse

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.web.server import Site


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


class _Socket:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, *_args: object, **_kwargs: object) -> io.BytesIO:
        return io.BytesIO(self.data)


def fetch(
    site: Site,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    peer: str = "198.51.100.7",
    chunked: bool = False,
) -> Response:
    """One request on a fresh connection from ``peer``; the whole response."""
    channel = site.buildProtocol(IPv4Address("TCP", peer, 40000))
    assert channel is not None
    transport = StringTransport(
        hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
        peerAddress=IPv4Address("TCP", peer, 40000),
    )
    channel.makeConnection(transport)
    lines = [f"{method} {path} HTTP/1.1", "Host: lists.example.org", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        payload = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 4096]), body[i : i + 4096])
            for i in range(0, len(body), 4096)
        )
        body = payload + b"0\r\n\r\n"
    elif body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    channel.dataReceived(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    raw = transport.value()
    channel.connectionLost(None)  # type: ignore[arg-type]
    response = HTTPResponse(_Socket(raw), method=method)  # type: ignore[arg-type]
    response.begin()
    text = response.read().decode("utf-8")
    return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, text)
