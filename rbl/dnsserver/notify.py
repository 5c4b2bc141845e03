"""NOTIFY (RFC 1996) to the configured secondaries when a zone's serial changes.

``zone_changed(zone)`` is called after the follower applied change-log rows to
a zone. Bursts are coalesced: at most one NOTIFY per zone per ``interval``
seconds; a change inside that window schedules one more at its end, carrying
the serial current then.

Each secondary gets its NOTIFYs through a channel of its own (``Channel``,
opened by ``open_channel``: a UDP socket of the target's address family,
connected to it, rbl.dnsserver.notifyport), so an IPv6 secondary is reached
from an IPv6 socket and an ICMP error names the secondary it came from. A
NOTIFY is resent with doubling timeouts, capped at ``max_timeout``, until the
secondary answers it (same id, QR set, opcode NOTIFY, NOERROR) or a newer
serial of the zone replaces it: a secondary that is down for an hour is
notified when it comes back. At most one NOTIFY is pending per zone and
target, and one replacing a NOTIFY that had to be resent keeps its backoff, so
a dead secondary costs one datagram per ``max_timeout`` per zone however
often the zone changes.

Logging is per outcome, never per retry: a line when a NOTIFY is
acknowledged; one when a target starts failing (a send error, an ICMP error,
or a NOTIFY still unanswered after ``FAILING_AFTER`` sends: one lost datagram
is not a failure), naming the reason; and one when it recovers.

A target with a TSIG key (``[[transfer.secondaries]]`` ``key``) gets its
NOTIFYs signed (RFC 8945, rbl.dnsserver.tsig), and only an answer signed by
that key, over our request's MAC, acknowledges one: an unsigned or badly
signed answer is a failure ("answered not signed"), retried as silence is.

The clock is injected (``reactor`` or ``task.Clock``; its seconds are also
the TSIG time). Imports nothing from rbl.store; every packet is built by
``notify_packet`` and signed in ``_send``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from rbl.dnsserver.tsig import Key
from rbl.dnsserver.wire import CLASS_IN, HEADER, QUESTION_TAIL, TYPE_SOA, encode_name
from rbl.dnsserver.zone import Zone

OPCODE_NOTIFY: Final = 4
NOTIFY_FLAGS: Final = OPCODE_NOTIFY << 3 | 0x04  # opcode NOTIFY, AA
DEFAULT_INTERVAL: Final = 1.0
DEFAULT_TIMEOUT: Final = 1.0
DEFAULT_MAX_TIMEOUT: Final = 60.0
FAILING_AFTER: Final = 2  # sends of one NOTIFY left unanswered before the target is failing
KEPT_MACS: Final = 4  # signed sends of one NOTIFY whose (late) answers still acknowledge it
RCODE_NAMES: Final = {
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
    9: "NOTAUTH",
    10: "NOTZONE",
}

Target = tuple[str, int]

log = Logger(namespace="rbl.notify")


class Channel(Protocol):
    """Where one target's NOTIFYs go out (rbl.dnsserver.notifyport.NotifyChannel)."""

    @property
    def alive(self) -> bool:
        """False once its socket is gone (an error closed it): the next send opens another."""

    def send(self, packet: bytes) -> None:
        """Send one datagram to the target; raises (OSError...) when it cannot be sent."""

    def close(self) -> None:
        """Release the socket."""


# Opens the channel for a target; the channel reports back through the sender's
# ``received(target, datagram)`` and ``failed(target, reason)``. May raise.
Opener = Callable[[Target, "NotifySender"], Channel]


def describe_target(target: Target) -> str:
    host, port = target
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(slots=True)
class _Pending:
    """One NOTIFY to one secondary, waiting for its answer."""

    zone: str
    serial: int
    target: Target
    query_id: int
    started: float
    sends: int = 0
    timeout: float = DEFAULT_TIMEOUT
    call: IDelayedCall | None = field(default=None, repr=False)
    # MACs of the last signed sends: an answer's TSIG digest opens with the one it answers
    macs: list[bytes] = field(default_factory=list, repr=False)


@dataclass(slots=True)
class TargetState:
    """One secondary: its channel, and whether it is in a failure streak."""

    target: Target
    channel: Channel | None = None
    failing: str | None = None  # the reason the current streak started with
    failing_since: float = 0.0
    acknowledged: dict[str, int] = field(default_factory=dict)  # zone -> last serial acked


class NotifySender:
    """Sends NOTIFY for changed zones and retries until each secondary answers."""

    def __init__(
        self,
        targets: Iterable[Target],
        clock: IReactorTime,
        open_channel: Opener,
        *,
        interval: float = DEFAULT_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        max_timeout: float = DEFAULT_MAX_TIMEOUT,
        keys: Mapping[Target, Key] | None = None,
    ) -> None:
        self.clock = clock
        self.keys = dict(keys or {})  # targets whose NOTIFYs are signed, and their answers checked
        self.open_channel = open_channel
        self.interval = interval
        self.timeout = timeout
        self.max_timeout = max_timeout
        self.sent = 0  # datagrams, retries included
        self.acknowledged = 0
        self.superseded = 0  # NOTIFYs replaced by a newer serial before an answer
        self.started = False
        self.states: dict[Target, TargetState] = {t: TargetState(t) for t in dict.fromkeys(targets)}
        self._last: dict[str, float] = {}  # zone -> when its last NOTIFY went out
        self._scheduled: dict[str, IDelayedCall] = {}  # zone -> coalesced NOTIFY
        self._pending: dict[tuple[str, Target], _Pending] = {}

    @property
    def targets(self) -> tuple[Target, ...]:
        return tuple(self.states)

    def start(self) -> None:
        """Open a channel to each target (service start)."""
        self.started = True
        for state in self.states.values():
            self._open(state)

    def set_targets(
        self, targets: Iterable[Target], keys: Mapping[Target, Key] | None = None
    ) -> None:
        """New targets (SIGHUP): the removed lose their pending NOTIFYs, the new get channels.

        ``keys`` replaces the targets' keys (the next send of a pending NOTIFY uses them).
        """
        if keys is not None:
            self.keys = dict(keys)
        wanted = tuple(dict.fromkeys(targets))
        for target in [t for t in self.states if t not in wanted]:
            for key in [k for k in self._pending if k[1] == target]:
                self._cancel(self._pending.pop(key))
            self._close(self.states.pop(target))
        for target in wanted:
            if target not in self.states:
                state = self.states[target] = TargetState(target)
                if self.started:
                    self._open(state)

    def announce(self, zones: Iterable[Zone]) -> None:
        """NOTIFY every zone not notified since start, as BIND and NSD do when they load a
        zone: changes made while this node was down reach the secondaries now, not at
        their next SOA refresh."""
        for zone in zones:
            if zone.name not in self._last and zone.name not in self._scheduled:
                self._notify(zone)

    def zone_changed(self, zone: Zone) -> None:
        """The zone's serial changed: NOTIFY now, or once the coalescing window ends."""
        if not self.states or zone.name in self._scheduled:
            return
        now = self.clock.seconds()
        last = self._last.get(zone.name)
        if last is not None and now - last < self.interval:
            self._scheduled[zone.name] = self.clock.callLater(
                last + self.interval - now, self._scheduled_send, zone
            )
            return
        self._notify(zone)

    def _scheduled_send(self, zone: Zone) -> None:
        self._scheduled.pop(zone.name, None)
        self._notify(zone)

    def _notify(self, zone: Zone) -> None:
        if not zone.agrees:  # its transfers are refused: a secondary would come in vain
            log.info(
                "no NOTIFY for {zone} at serial {serial}: this node's settings disagree "
                "with the recorded ones",
                zone=zone.name,
                serial=zone.serial,
            )
            return
        now = self._last[zone.name] = self.clock.seconds()
        for target, state in self.states.items():
            old = self._pending.pop((zone.name, target), None)
            query_id = secrets.randbelow(1 << 16)
            pending = _Pending(zone.name, zone.serial, target, query_id, now, 0, self.timeout)
            self._pending[(zone.name, target)] = pending
            if old is not None:
                due = old.call.getTime() if old.call is not None and old.call.active() else now
                self._cancel(old)
                self.superseded += 1
                if old.sends > 1 or state.failing is not None:
                    # Unanswered already: keep its backoff, so that a busy zone does
                    # not turn retries to a dead secondary into a datagram per change.
                    # The newer serial goes out when the older would have been retried.
                    pending.sends, pending.timeout = old.sends, old.timeout
                    pending.call = self.clock.callLater(max(0.0, due - now), self._send, pending)
                    continue
                log.info(
                    "NOTIFY {zone} serial {old} to {target} superseded by serial {new} "
                    "after {sends} unanswered send(s)",
                    zone=zone.name,
                    old=old.serial,
                    target=describe_target(target),
                    new=zone.serial,
                    sends=old.sends,
                )
            self._send(pending)

    def _send(self, pending: _Pending) -> None:
        pending.call = None
        state = self.states[pending.target]
        if pending.sends >= FAILING_AFTER:
            self._failing(state, f"timeout: no answer to {pending.sends} sends", pending)
        pending.sends += 1
        pending.call = self.clock.callLater(pending.timeout, self._send, pending)
        pending.timeout = min(pending.timeout * 2, self.max_timeout)
        if state.channel is None or not state.channel.alive:
            self._close(state)
            self._open(state)
        if state.channel is None:
            return  # the open failed and was reported; the next try opens again
        packet = notify_packet(pending.query_id, pending.zone)
        key = self.keys.get(pending.target)
        if key is not None:  # RFC 8945: signed, and only an answer signed back acknowledges
            packet, mac = key.sign(packet, self.clock.seconds())
            pending.macs = [*pending.macs[-(KEPT_MACS - 1) :], mac]
        try:
            state.channel.send(packet)
        except Exception as exc:  # no route, no address of that family...: try again later
            self._failing(state, f"send error: {_describe(exc)}", pending)
            return
        self.sent += 1

    def received(self, target: Target, datagram: bytes) -> None:
        """A datagram from ``target`` (its channel is connected to it, so no one else's)."""
        if len(datagram) < 12 or not datagram[2] & 0x80:
            return
        if (datagram[2] >> 3) & 0x0F != OPCODE_NOTIFY:
            return
        query_id = int.from_bytes(datagram[0:2], "big")
        for key, pending in self._pending.items():
            if pending.query_id != query_id or pending.target != target:
                continue
            state = self.states[target]
            rcode = datagram[3] & 0x0F
            signer = self.keys.get(target)
            if signer is not None:  # a keyed target's answer must be signed by its key
                now = self.clock.seconds()
                problems = [signer.check_answer(datagram, mac, now) for mac in pending.macs]
                problem = None if None in problems else (problems or ["to no signed send"])[-1]
                if problem is not None:
                    self._failing(state, f"answered {problem} (key {signer.name})", pending)
                    return
            if rcode:  # an answer, but a refusal: keep trying, as for silence
                name = RCODE_NAMES.get(rcode, str(rcode))
                self._failing(state, f"answered {name}", pending)
                return
            del self._pending[key]
            self._cancel(pending)
            self._acknowledged(state, pending)
            return

    def failed(self, target: Target, reason: str) -> None:
        """The channel to ``target`` reported an error (an ICMP unreachable)."""
        state = self.states.get(target)
        if state is None:
            return
        waiting = [p for p in self._pending.values() if p.target == target]
        self._failing(state, reason, waiting[0] if waiting else None)

    def _acknowledged(self, state: TargetState, pending: _Pending) -> None:
        self.acknowledged += 1
        state.acknowledged[pending.zone] = pending.serial
        now = self.clock.seconds()
        if state.failing is not None:
            log.info(
                "NOTIFY to {target} recovered after {down:.1f}s failing: {zone} serial "
                "{serial} acknowledged",
                target=describe_target(state.target),
                down=now - state.failing_since,
                zone=pending.zone,
                serial=pending.serial,
            )
            state.failing = None
            self._resend_now(state.target)
            return
        log.info(
            "NOTIFY {zone} serial {serial} to {target} acknowledged after {sends} send(s) "
            "in {seconds:.3f}s",
            zone=pending.zone,
            serial=pending.serial,
            target=describe_target(state.target),
            sends=pending.sends,
            seconds=now - pending.started,
        )

    def _resend_now(self, target: Target) -> None:
        """The target answers again: its other zones' NOTIFYs go out now, backoff reset.

        Left on their backoff they would wait up to ``max_timeout`` for a secondary that
        is back, and their next send would count as a new failure streak.
        """
        for pending in [p for p in self._pending.values() if p.target == target]:
            self._cancel(pending)
            pending.sends, pending.timeout = 0, self.timeout
            self._send(pending)

    def _failing(self, state: TargetState, reason: str, pending: _Pending | None) -> None:
        """The target is failing: logged when a streak starts, never again until it recovers."""
        if state.failing is not None:
            return
        state.failing = reason
        state.failing_since = self.clock.seconds()
        what = "" if pending is None else f" ({pending.zone} serial {pending.serial})"
        log.warn(
            "NOTIFY to {target} failing: {reason}{what}; retrying with backoff up to "
            "{cap:g}s until it answers",
            target=describe_target(state.target),
            reason=reason,
            what=what,
            cap=self.max_timeout,
        )

    def _open(self, state: TargetState) -> None:
        try:
            state.channel = self.open_channel(state.target, self)
        except Exception as exc:  # e.g. no IPv6 on this host yet: reported, retried at sends
            state.channel = None
            self._failing(state, f"send error: cannot open a socket: {_describe(exc)}", None)

    @staticmethod
    def _close(state: TargetState) -> None:
        channel, state.channel = state.channel, None
        if channel is not None:
            channel.close()

    @staticmethod
    def _cancel(pending: _Pending) -> None:
        if pending.call is not None and pending.call.active():
            pending.call.cancel()
        pending.call = None

    def stop(self) -> None:
        """Cancel every scheduled NOTIFY and retry, close the channels (service shutdown)."""
        self.started = False
        for call in self._scheduled.values():
            if call.active():
                call.cancel()
        self._scheduled.clear()
        for pending in self._pending.values():
            self._cancel(pending)
        self._pending.clear()
        for state in self.states.values():
            self._close(state)

    @property
    def outstanding(self) -> int:
        return len(self._pending)

    def failing_targets(self) -> list[Target]:
        return [state.target for state in self.states.values() if state.failing is not None]


def _describe(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text)


def notify_packet(query_id: int, zone: str) -> bytes:
    """A NOTIFY query: opcode 4, AA, one question (zone, SOA, IN), no answer section."""
    return (
        HEADER.pack(query_id.to_bytes(2, "big"), NOTIFY_FLAGS, 0, 1, 0, 0, 0)
        + encode_name(zone)
        + QUESTION_TAIL.pack(TYPE_SOA, CLASS_IN)
    )
