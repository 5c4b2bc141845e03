# mypy: allow-untyped-calls
"""The public site's defences: client address, CSRF form tokens, rate limit, response headers.

The removal form is the site's one state-changing action. Its token is an
HMAC of (issue time, nonce, client address) with a per-process secret, so
checking needs no state, and each token is refused once spent. Requests per
client network are capped in a sliding window. Behind a trusted proxy the
client is the nearest untrusted X-Forwarded-For hop. Every page carries the
same security headers (CSP with no scripts, no framing, no referrer).
Imports no store module.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections import deque
from collections.abc import Iterable, Sequence

from twisted.internet.interfaces import IReactorTime
from twisted.web import server

TOKEN_LIFETIME = 3600.0  # seconds a removal form stays valid
TOKEN_SKEW = 60.0  # a form "from the future" by this much is still accepted
RATE_WINDOW = 3600.0
MAX_SPENT_TOKENS = 100_000  # form tokens remembered as used (each for at most an hour)
MAX_TRACKED_CLIENTS = 100_000

SECURITY_HEADERS = {
    b"content-security-policy": (
        b"default-src 'none'; style-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'"
    ),
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
    b"server": b"rbl",
}

_NONCE = re.compile(r"[0-9a-f]{16}")


def secure(request: server.Request) -> None:
    """The headers every answer carries; a page that may be cached says so itself."""
    for name, value in SECURITY_HEADERS.items():
        request.setHeader(name, value)
    request.setHeader(b"cache-control", b"no-store")


def client_address(request: server.Request, trusted: Sequence[str]) -> str:
    """The transport peer; behind a trusted proxy, the nearest untrusted X-Forwarded-For hop.

    The hops are read right to left, skipping trusted proxies, so a client
    cannot choose its address by sending its own X-Forwarded-For: with one
    trusted proxy this is the left-most entry the proxy added.
    """
    peer = request.getClientAddress()
    host = str(getattr(peer, "host", "") or "unknown")
    if not trusted or not _in_networks(host, trusted):
        return host
    forwarded = b",".join(request.requestHeaders.getRawHeaders(b"x-forwarded-for", []))
    hops = [h.strip() for h in forwarded.decode("latin-1").split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            return host  # a malformed hop: trust nothing before it
        if not _in_networks(address, trusted):
            return address
    return str(ipaddress.ip_address(hops[0])) if hops else host


def _in_networks(host: str, networks: Iterable[str]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in networks)


class FormTokens:
    """CSRF tokens: an HMAC of (issue time, nonce, client address) with a process secret.

    Checking needs no state; the nonce makes every form's token distinct, so
    the tokens already used (``spend``) can be refused when replayed.
    """

    def __init__(self, secret: bytes, clock: IReactorTime) -> None:
        self.secret = secret
        self.clock = clock
        self._spent: dict[str, int] = {}  # token -> issue time, in the order they were used

    def _mac(self, issued: int, nonce: str, client: str) -> str:
        message = f"{issued}|{nonce}|{client}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()[:40]

    def issue(self, client: str) -> str:
        issued = int(self.clock.seconds())
        nonce = secrets.token_hex(8)
        return f"{issued}.{nonce}.{self._mac(issued, nonce, client)}"

    def check(self, token: str, client: str) -> bool:
        issued_text, _, rest = token.partition(".")
        nonce, _, mac = rest.partition(".")
        if not issued_text.isdigit() or len(issued_text) > 12 or not _NONCE.fullmatch(nonce):
            return False
        issued = int(issued_text)
        now = self.clock.seconds()
        if not now - TOKEN_LIFETIME <= issued <= now + TOKEN_SKEW:
            return False
        return hmac.compare_digest(mac, self._mac(issued, nonce, client))

    def spent(self, token: str) -> bool:
        """Whether ``token`` already sent a request (a replayed form)."""
        return token in self._spent

    def spend(self, token: str) -> None:
        """Remember ``token`` as used until it would have expired anyway.

        Memory is bounded: past ``MAX_SPENT_TOKENS`` the expired ones go, and if
        that is not enough the oldest (whose replay the rate limit still caps).
        """
        issued = int(token.partition(".")[0])
        if len(self._spent) >= MAX_SPENT_TOKENS:
            cutoff = self.clock.seconds() - TOKEN_LIFETIME
            self._spent = {t: i for t, i in self._spent.items() if i >= cutoff}
            while len(self._spent) >= MAX_SPENT_TOKENS:
                del self._spent[next(iter(self._spent))]
        self._spent[token] = issued


class RateLimiter:
    """At most ``limit`` events per client (network) in a sliding window, in memory."""

    def __init__(self, limit: int, clock: IReactorTime, window: float = RATE_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._events: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        now = self.clock.seconds()
        events = self._events.get(client)
        if events is None:
            if len(self._events) >= MAX_TRACKED_CLIENTS:
                self._sweep(now)
            events = self._events[client] = deque()
        while events and events[0] <= now - self.window:
            events.popleft()
        return events

    def _sweep(self, now: float) -> None:
        for client in [c for c, e in self._events.items() if not e or e[-1] <= now - self.window]:
            del self._events[client]

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may act again, or None when it may act now."""
        events = self._recent(client)
        if len(events) < self.limit:
            return None
        return max(1.0, events[0] + self.window - self.clock.seconds())

    def record(self, client: str) -> None:
        self._recent(client).append(self.clock.seconds())
