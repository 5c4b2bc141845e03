"""Postfix SMTP access policy delegation: a live feed of RCPT TO attempts.

Postfix (``check_policy_service inet:HOST:PORT`` in
``smtpd_recipient_restrictions``) sends one request per SMTP command as
``name=value`` lines ended by an empty line, and waits for ``action=...``
plus an empty line; a connection carries many requests, one at a time
(SMTPD_POLICY_README). For every RCPT request whose recipient the caller's
``is_trap`` accepts, this feed builds a TrapHit and hands it to ``submit``.

The feed only observes: every request is answered ``action=DUNNO``, so Postfix
goes on with its next restriction whatever happens here, including a broken
``is_trap`` or ``submit`` (counted and logged at most once a minute, never
per request). A peer that sends an overlong line or too many attributes is
not Postfix and is dropped.

Imports Twisted and ``rbl.traphit``; never the store, which ``submit`` reaches.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure

from rbl.traphit import TrapHit

MAX_LINE = 8192  # bytes; Postfix truncates long attribute values well below this
MAX_ATTRIBUTES = 100  # per request; Postfix 3.x sends about 40
# Postfix closes a policy connection idle for smtpd_policy_service_max_idle (300 s
# by default) itself. Were the server to close first, Postfix would find the
# connection dead at its next request, sleep one second and reconnect
# (attr_clnt_request), delaying that RCPT. So the server waits longer than Postfix
# and only reclaims connections of dead or misbehaving peers.
IDLE_TIMEOUT = 360.0  # seconds
ERROR_LOG_INTERVAL = 60.0  # seconds between two logged exceptions of is_trap/submit

REPLY = b"action=DUNNO\n\n"
# The attributes kept for the evidence trail, in this order; everything else
# Postfix sends (TLS, SASL, sizes...) is counted and dropped.
RAW_KEYS = (
    "request",
    "protocol_state",
    "client_address",
    "client_name",
    "helo_name",
    "sender",
    "recipient",
    "queue_id",
    "instance",
)
_KEPT = frozenset(RAW_KEYS)


def render_raw(attributes: dict[str, str]) -> str:
    """One line ``name=value ...`` of the kept attributes that Postfix sent.

    A value that is empty stays ``name=``; one with spaces, quotes, backslashes
    or control characters is written as a JSON string, so the line stays one
    unambiguous line.
    """
    parts = []
    for key in RAW_KEYS:
        value = attributes.get(key)
        if value is None:
            continue
        if any(c.isspace() or c in '"\\' or not c.isprintable() for c in value):
            value = json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}={value}")
    return " ".join(parts)


def normalise_address(text: str) -> str | None:
    """The canonical text of a client address, IPv4-mapped as IPv4; None if not an address."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        if address.scope_id is not None:  # a link-local zone means nothing to a DNSBL
            return str(ipaddress.IPv6Address(address.packed))
    return str(address)


class PolicyProtocol(LineOnlyReceiver):
    """One Postfix policy client connection: many requests, each answered DUNNO."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE

    def __init__(self, factory: PolicyServerFactory) -> None:
        self.factory = factory
        self._attributes: dict[str, str] = {}
        self._count = 0  # attribute lines in the current request
        self._broken = False  # the current request had a line without "="
        self._timeout: IDelayedCall | None = None

    def connectionMade(self) -> None:
        self._timeout = self.factory.clock.callLater(IDLE_TIMEOUT, self._timedOut)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None

    def _timedOut(self) -> None:
        self._timeout = None
        self._drop()

    def _drop(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()

    def lineReceived(self, line: bytes) -> None:
        if self._timeout is not None and self._timeout.active():
            self._timeout.reset(IDLE_TIMEOUT)
        if line.endswith(b"\r"):  # Postfix sends bare LF; a hand-typed test may not
            line = line[:-1]
        if not line:
            if self._count:  # a blank line before any attribute is not a request
                self._endRequest()
            return
        self._count += 1
        if self._count > MAX_ATTRIBUTES:
            self._drop()
            return
        name, sep, value = line.decode("utf-8", "replace").partition("=")
        if not sep:
            self._broken = True
        elif name in _KEPT:
            self._attributes[name] = value

    def lineLengthExceeded(self, line: bytes) -> None:
        self._drop()

    def _endRequest(self) -> None:
        attributes, broken = self._attributes, self._broken
        self._attributes, self._count, self._broken = {}, 0, False
        self.factory.handle(attributes, broken)  # never raises
        if self.transport is not None:
            self.transport.write(REPLY)


class PolicyServerFactory(ServerFactory):
    """Builds policy connections and turns their RCPT requests into TrapHits.

    ``is_trap`` gets the lowercased recipient; ``submit`` gets each TrapHit and
    must not block. The counters are read by metrics: ``requests`` answered,
    ``hits`` submitted, ``malformed`` RCPT requests without a usable client
    address (or with a line that is not ``name=value``), ``errors`` raised by
    ``is_trap`` or ``submit``.
    """

    noisy = False
    log = Logger()

    def __init__(
        self,
        is_trap: Callable[[str], bool],
        submit: Callable[[TrapHit], None],
        clock: IReactorTime,
        feed: str = "policy",
    ) -> None:
        self.is_trap = is_trap
        self.submit = submit
        self.clock = clock
        self.feed = feed
        self.requests = 0
        self.hits = 0
        self.malformed = 0
        self.errors = 0
        self._last_logged: float | None = None
        self._unlogged = 0

    def buildProtocol(self, addr: Any) -> PolicyProtocol:
        return PolicyProtocol(self)

    def handle(self, attributes: dict[str, str], broken: bool = False) -> None:
        """Record the hit, if any, of one complete request. Never raises."""
        self.requests += 1
        try:
            self._record(attributes, broken)
        except Exception:  # is_trap, submit or a bug here: the answer is DUNNO all the same
            self.errors += 1
            self._logError()

    def _record(self, attributes: dict[str, str], broken: bool) -> None:
        if (
            attributes.get("request") != "smtpd_access_policy"
            or attributes.get("protocol_state", "").upper() != "RCPT"
        ):
            return
        client_ip = None if broken else normalise_address(attributes.get("client_address", ""))
        if client_ip is None:
            self.malformed += 1
            return
        recipient = attributes.get("recipient", "").lower()
        if not recipient or not self.is_trap(recipient):
            return
        client_name = attributes.get("client_name") or None
        hit = TrapHit(
            at=datetime.fromtimestamp(self.clock.seconds(), UTC),
            client_ip=client_ip,
            rcpt_to=recipient,
            mail_from=attributes.get("sender", ""),
            helo=attributes.get("helo_name") or None,
            feed=self.feed,
            raw=render_raw(attributes),
            client_name=None if client_name == "unknown" else client_name,
            trap_asserted=False,
        )
        self.submit(hit)
        self.hits += 1

    def _logError(self) -> None:
        """Log the current exception unless one was logged less than a minute ago."""
        now = self.clock.seconds()
        if self._last_logged is not None and now - self._last_logged < ERROR_LOG_INTERVAL:
            self._unlogged += 1
            return
        self.log.failure(
            "policy feed {feed}: is_trap or submit failed ({unlogged} more since the last report)",
            feed=self.feed,
            unlogged=self._unlogged,
        )
        self._last_logged = now
        self._unlogged = 0
