"""Postfix SMTP access policy delegation: a live feed of RCPT TO attempts.

Postfix (``check_policy_service inet:HOST:PORT`` in
``smtpd_recipient_restrictions``) sends one request per SMTP command as
``name=value`` lines ended by an empty line, and waits for ``action=...``
plus an empty line; a connection carries many requests, one at a time
(SMTPD_POLICY_README). For every RCPT request whose recipient the caller's
``is_trap`` accepts, this feed builds a TrapHit and hands it to ``submit``.

The feed only observes, and an answer means the evidence is kept: a trap hit
is answered ``action=DUNNO`` once ``submit``'s Deferred says it is durable (in
``rbl serve`` that is also once a listing the hit caused is in DNS, so the
``reject_rbl_client`` lookup Postfix makes next sees it: rbl.feeds.recorder),
and ``action=DEFER_IF_PERMIT`` when it says it is not (queue full, store down
past the deadline) or ``submit`` raises, so the sender tries again later and
the attempt is seen again. That is a 4xx only if no later restriction rejects
the mail, and only trap recipients ever get it. Every other request is
answered DUNNO at once, also when ``is_trap`` raises (a bug there must not
hold up real mail). Errors are counted and logged at most once a minute,
never per request. Answers on a connection keep the order of its requests.
A peer that sends an overlong line or too many attributes is not Postfix and
is dropped; one that pipelines many requests is paused until they are answered.

With ``reject_listed`` (``[feeds.policy] reject_listed``, off by default) the
feed also rejects: a RCPT request from a client that ``listed`` finds in the
trap IP zone (the in-memory index, rbl.feeds.listed) is answered with the
reject ``reject_rbl_client`` would give, a trap hit's request once its hit is
durable. It closes the window a resolver's cached NXDOMAIN leaves open behind
postscreen; a failure of the lookup answers DUNNO.

Who may connect: a policy request names its client address and recipient, and
the feed believes them, so whoever can connect can have any address listed.
Only clients inside ``allow`` (loopback unless configured) are served; a
connection from anyone else is closed at once, counted (``refused_unallowed``)
and logged at most once a minute. At most ``max_connections`` are open at once
and ``max_per_client`` from one address; past either a new connection is closed
at once (``refused_busy``), so idle connections cannot use up the process's
file descriptors.

Imports Twisted and ``rbl.model.traphit``; never the store, which ``submit`` reaches.
"""

from __future__ import annotations

import ipaddress
import json
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure

from rbl.model.traphit import TrapHit

MAX_LINE = 8192  # bytes; Postfix truncates long attribute values well below this
MAX_ATTRIBUTES = 100  # per request; Postfix 3.x sends about 40
# Postfix closes a policy connection idle for smtpd_policy_service_max_idle (300 s
# by default) itself. Were the server to close first, Postfix would find the
# connection dead at its next request, sleep one second and reconnect
# (attr_clnt_request), delaying that RCPT. So the server waits longer than Postfix
# and only reclaims connections of dead or misbehaving peers.
IDLE_TIMEOUT = 360.0  # seconds
ERROR_LOG_INTERVAL = 60.0  # seconds between two logged exceptions (or refusals)
LOOPBACK = ("127.0.0.0/8", "::1/128")  # the default ``allow``: Postfix on this host
MAX_CONNECTIONS = 1000
MAX_PER_CLIENT = 200  # Postfix opens one per smtpd process (default_process_limit 100)
MAX_WAITING = 32  # unanswered requests on one connection before it stops being read

REPLY = b"action=DUNNO\n\n"
DEFER = b"action=DEFER_IF_PERMIT Service temporarily unavailable\n\n"
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


class _Reply:
    """One request's answer, in the connection's queue until every earlier one is sent."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | None = None) -> None:
        self.data = data


class PolicyProtocol(LineOnlyReceiver):
    """One Postfix policy client connection: many requests, answered in order."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE

    def __init__(self, factory: PolicyServerFactory, client: str = "") -> None:
        self.factory = factory
        self.client = client  # the peer's canonical address, as counted per client
        self._attributes: dict[str, str] = {}
        self._count = 0  # attribute lines in the current request
        self._broken = False  # the current request had a line without "="
        self._timeout: IDelayedCall | None = None
        self._replies: deque[_Reply] = deque()  # oldest first
        self._paused = False
        self._lost = False  # answers that come after the peer left are not sent

    def connectionMade(self) -> None:
        self.factory.connections.add(self)
        self._timeout = self.factory.clock.callLater(self.factory.idle_timeout, self._timedOut)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        self._replies.clear()
        self.factory.connectionClosed(self)
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
            self._timeout.reset(self.factory.idle_timeout)
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
        answer = self.factory.handle(attributes, broken)  # never raises
        if isinstance(answer, bytes):
            if not self._replies:
                self._send(answer)
            else:
                self._replies.append(_Reply(answer))
            return
        reply = _Reply()
        self._replies.append(reply)
        if len(self._replies) >= MAX_WAITING and not self._paused:
            self._pause(True)
        answer.addCallback(self._answered, reply)

    def _answered(self, data: bytes, reply: _Reply) -> None:
        reply.data = data
        while self._replies:
            ready = self._replies[0].data
            if ready is None:
                break
            self._replies.popleft()
            self._send(ready)
        if self._paused and len(self._replies) < MAX_WAITING // 2:
            self._pause(False)

    def _pause(self, paused: bool) -> None:
        """Stop or resume reading: a pipelining peer waits for its answers."""
        producer = IPushProducer(self.transport, None)
        if producer is None or self._lost:
            return
        self._paused = paused
        if paused:
            producer.pauseProducing()
        else:
            producer.resumeProducing()

    def _send(self, data: bytes) -> None:
        if self.transport is not None and not self._lost:
            self.transport.write(data)


class PolicyServerFactory(ServerFactory):
    """Builds policy connections and turns their RCPT requests into TrapHits.

    ``is_trap`` gets the lowercased recipient; ``submit`` gets each TrapHit, must
    not block, and returns a Deferred firing True once the hit is durable (False:
    it is not, ask the sender to retry), or None when it is durable at once.
    The counters are read by metrics: ``requests`` received, ``hits`` submitted,
    ``deferred`` requests answered DEFER_IF_PERMIT, ``malformed`` RCPT requests
    without a usable client address (or with a line that is not ``name=value``),
    ``errors`` raised by ``is_trap`` or ``submit``, connections closed at once:
    ``refused_unallowed`` (client not in ``allow``) and ``refused_busy`` (over
    ``max_connections`` or ``max_per_client``); ``rejected``: requests answered with
    ``listed``'s reject (``reject_listed``).
    """

    noisy = False
    log = Logger()

    def __init__(
        self,
        is_trap: Callable[[str], bool],
        submit: Callable[[TrapHit], Deferred[bool] | None],
        clock: IReactorTime,
        feed: str = "policy",
        *,
        allow: Sequence[str] = LOOPBACK,
        max_connections: int = MAX_CONNECTIONS,
        max_per_client: int = MAX_PER_CLIENT,
        idle_timeout: float = IDLE_TIMEOUT,
        listed: Callable[[str], bytes | None] | None = None,
        reject_listed: bool = False,
    ) -> None:
        self.is_trap = is_trap
        self.listed = listed
        self.submit = submit
        self.clock = clock
        self.feed = feed
        self.requests = 0
        self.hits = 0
        self.malformed = 0
        self.errors = 0
        self.deferred = 0
        self.refused_unallowed = 0
        self.refused_busy = 0
        self.rejected = 0
        self._errors_logged = _Throttle()
        self._refusals_logged = _Throttle()
        self.connections: set[PolicyProtocol] = set()
        self.open = 0  # built and not yet closed (counted from buildProtocol on)
        self.per_client: dict[str, int] = {}
        self._all_closed: list[Deferred[None]] = []
        self.configure(allow, max_connections, max_per_client, idle_timeout, reject_listed)

    def configure(
        self,
        allow: Sequence[str],
        max_connections: int = MAX_CONNECTIONS,
        max_per_client: int = MAX_PER_CLIENT,
        idle_timeout: float = IDLE_TIMEOUT,
        reject_listed: bool = False,
    ) -> None:
        """New limits (a reload): open connections stay, new ones are checked; whether
        listed clients are rejected applies from the next request."""
        self.allow = tuple(ipaddress.ip_network(network, strict=False) for network in allow)
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.idle_timeout = idle_timeout
        self.reject_listed = reject_listed and self.listed is not None

    def allowed(self, client: str) -> bool:
        address = ipaddress.ip_address(client)
        return any(address in network for network in self.allow)

    def buildProtocol(self, addr: Any) -> PolicyProtocol | None:
        """A protocol, or None (Twisted then closes the socket at once) for a client
        outside ``allow`` or over a connection limit."""
        client = normalise_address(str(getattr(addr, "host", "")))
        if client is None or not self.allowed(client):
            self.refused_unallowed += 1
            self._logRefusal(client or repr(addr))
            return None
        count = self.per_client.get(client, 0)
        if self.open >= self.max_connections or count >= self.max_per_client:
            self.refused_busy += 1
            return None
        self.open += 1
        self.per_client[client] = count + 1
        return PolicyProtocol(self, client)

    def connectionClosed(self, protocol: PolicyProtocol) -> None:
        self.connections.discard(protocol)
        if protocol.client:
            self.open -= 1
            count = self.per_client.pop(protocol.client, 0) - 1
            if count > 0:
                self.per_client[protocol.client] = count
        if not self.connections:
            waiting, self._all_closed = self._all_closed, []
            for d in waiting:
                d.callback(None)

    def closeConnections(self, timeout: float) -> Deferred[None]:
        """Close every connection once its answers are sent (waiting ``timeout`` at most).

        On shutdown: the reactor drops open connections without sending what they
        still buffer, and the last answers would be lost with them.
        """
        done: Deferred[None] = Deferred()
        if not self.connections:
            done.callback(None)
            return done
        self._all_closed.append(done)
        for protocol in list(self.connections):
            if protocol.transport is not None:
                protocol.transport.loseConnection()
        call = self.clock.callLater(timeout, self._closeTimedOut, done)
        done.addCallback(lambda _: call.cancel() if call.active() else None)
        return done

    def _closeTimedOut(self, done: Deferred[None]) -> None:
        if done in self._all_closed:  # a peer that does not read its answers
            self._all_closed.remove(done)
            done.callback(None)

    def handle(self, attributes: dict[str, str], broken: bool = False) -> bytes | Deferred[bytes]:
        """The answer to one complete request, now or once its hit is durable. Never raises."""
        self.requests += 1
        try:
            hit = self._hit(attributes, broken)
        except Exception:  # is_trap or a bug here: not known to be a hit, so no delay
            self.errors += 1
            self._logError()
            return REPLY
        if hit is None:
            return self._rejection(self._rcpt_client(attributes, broken)) or REPLY
        try:
            durable = self.submit(hit)
        except Exception:
            self.errors += 1
            self._logError()
            return self._answer(False)
        self.hits += 1
        if durable is None:
            return self._rejection(hit.client_ip) or REPLY
        return durable.addCallbacks(self._answer, self._failed, callbackArgs=(hit.client_ip,))

    def _answer(self, durable: bool, client_ip: str | None = None) -> bytes:
        if durable:
            return self._rejection(client_ip) or REPLY
        self.deferred += 1
        return DEFER

    def _rcpt_client(self, attributes: dict[str, str], broken: bool) -> str | None:
        """The client address of a RCPT request, when a listed client would be rejected."""
        if (
            not self.reject_listed
            or broken
            or attributes.get("request") != "smtpd_access_policy"
            or attributes.get("protocol_state", "").upper() != "RCPT"
        ):
            return None
        return normalise_address(attributes.get("client_address", ""))

    def _rejection(self, client_ip: str | None) -> bytes | None:
        """``reject_listed``: the reject for a client the trap IP zone lists, else None.

        Read from the in-memory index, after a trap hit's listing is in it; a
        failure here answers DUNNO (never a reject rbl cannot stand behind)."""
        if client_ip is None or not self.reject_listed or self.listed is None:
            return None
        try:
            reply = self.listed(client_ip)
        except Exception:
            self.errors += 1
            self._logError()
            return None
        if reply is not None:
            self.rejected += 1
        return reply

    def _failed(self, failure: Failure) -> bytes:
        self.errors += 1
        self._logError(failure)
        return self._answer(False)

    def _hit(self, attributes: dict[str, str], broken: bool) -> TrapHit | None:
        if (
            attributes.get("request") != "smtpd_access_policy"
            or attributes.get("protocol_state", "").upper() != "RCPT"
        ):
            return None
        client_ip = None if broken else normalise_address(attributes.get("client_address", ""))
        if client_ip is None:
            self.malformed += 1
            return None
        recipient = attributes.get("recipient", "").lower()
        if not recipient or not self.is_trap(recipient):
            return None
        client_name = attributes.get("client_name") or None
        instance = attributes.get("instance")  # one per message transaction of one smtpd
        return TrapHit(
            at=datetime.fromtimestamp(self.clock.seconds(), UTC),
            client_ip=client_ip,
            rcpt_to=recipient,
            mail_from=attributes.get("sender", ""),
            helo=attributes.get("helo_name") or None,
            feed=self.feed,
            raw=render_raw(attributes),
            client_name=None if client_name == "unknown" else client_name,
            trap_asserted=False,
            stage="rcpt",
            attempt=f"instance:{instance}" if instance else None,
        )

    def _logRefusal(self, client: str) -> None:
        """Say that a stranger knocked, once a minute at most (never per connection)."""
        unlogged = self._refusals_logged.due(self.clock.seconds())
        if unlogged is None:
            return
        self.log.warn(
            "policy feed {feed}: closed a connection from {client}, which is not in "
            "[feeds.policy] allow ({unlogged} more refused since the last report)",
            feed=self.feed,
            client=client,
            unlogged=unlogged,
        )

    def _logError(self, failure: Failure | None = None) -> None:
        """Log ``failure`` (or the current exception) unless one was logged a minute ago."""
        unlogged = self._errors_logged.due(self.clock.seconds())
        if unlogged is None:
            return
        self.log.failure(
            "policy feed {feed}: is_trap or submit failed ({unlogged} more since the last report)",
            failure=failure,
            feed=self.feed,
            unlogged=unlogged,
        )


class _Throttle:
    """One message per ERROR_LOG_INTERVAL at most, counting those held back meanwhile."""

    __slots__ = ("held", "last")

    def __init__(self) -> None:
        self.last: float | None = None  # when the last message was let through
        self.held = 0

    def due(self, now: float) -> int | None:
        """How many were held back since the last message, if one may be logged now;
        None (and one more held back) if not yet."""
        if self.last is not None and now - self.last < ERROR_LOG_INTERVAL:
            self.held += 1
            return None
        held, self.last, self.held = self.held, now, 0
        return held
