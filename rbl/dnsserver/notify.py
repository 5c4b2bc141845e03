"""NOTIFY (RFC 1996) to the configured secondaries when a zone's serial changes.

``zone_changed(zone)`` is called after the follower applied change-log rows to
a zone. Bursts are coalesced: at most one NOTIFY per zone per ``interval``
seconds; a change inside that window schedules one more at its end, carrying
the serial current then. Each secondary gets the NOTIFY over UDP from one
ephemeral port, resent with doubling timeouts until a response with the same
id (QR set, opcode NOTIFY) comes back from that secondary or ``retries`` sends
are spent. A newer NOTIFY for a zone replaces the retries of the older one.

The clock is injected (``reactor`` or ``task.Clock``). Imports nothing from
rbl.store; the only Twisted piece is the DatagramProtocol.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import DatagramProtocol

from rbl.dnsserver.wire import CLASS_IN, HEADER, QUESTION_TAIL, TYPE_SOA, encode_name
from rbl.dnsserver.zone import Zone

OPCODE_NOTIFY: Final = 4
NOTIFY_FLAGS: Final = OPCODE_NOTIFY << 3 | 0x04  # opcode NOTIFY, AA
DEFAULT_INTERVAL: Final = 1.0
DEFAULT_TIMEOUT: Final = 1.0
DEFAULT_RETRIES: Final = 5


@dataclass(slots=True)
class _Pending:
    """One NOTIFY to one secondary, waiting for its answer."""

    zone: str
    target: tuple[str, int]
    query_id: int
    packet: bytes
    sends: int = 0
    timeout: float = DEFAULT_TIMEOUT
    call: IDelayedCall | None = field(default=None, repr=False)


class NotifySender(DatagramProtocol):
    """Sends NOTIFY for changed zones and retries until each secondary answers."""

    noisy = False

    def __init__(
        self,
        targets: Sequence[tuple[str, int]],
        clock: IReactorTime,
        *,
        interval: float = DEFAULT_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        self.targets = tuple(targets)
        self.clock = clock
        self.interval = interval
        self.timeout = timeout
        self.retries = retries
        self.sent = 0  # datagrams, retries included
        self.acknowledged = 0
        self.given_up = 0
        self._last: dict[str, float] = {}  # zone -> when its last NOTIFY went out
        self._scheduled: dict[str, IDelayedCall] = {}  # zone -> coalesced NOTIFY
        self._pending: dict[tuple[str, tuple[str, int]], _Pending] = {}

    def zone_changed(self, zone: Zone) -> None:
        """The zone's serial changed: NOTIFY now, or once the coalescing window ends."""
        if not self.targets or zone.name in self._scheduled:
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
        self._last[zone.name] = self.clock.seconds()
        for target in self.targets:
            old = self._pending.pop((zone.name, target), None)
            if old is not None and old.call is not None and old.call.active():
                old.call.cancel()
            query_id = secrets.randbelow(1 << 16)
            pending = _Pending(
                zone.name, target, query_id, notify_packet(query_id, zone.name), 0, self.timeout
            )
            self._pending[(zone.name, target)] = pending
            self._send(pending)

    def _send(self, pending: _Pending) -> None:
        pending.call = None
        if pending.sends >= self.retries:
            self._pending.pop((pending.zone, pending.target), None)
            self.given_up += 1
            return
        pending.sends += 1
        self.sent += 1
        try:
            if self.transport is not None:
                self.transport.write(pending.packet, pending.target)
        except Exception:  # an unreachable network now may be reachable at the next try
            pass
        pending.call = self.clock.callLater(pending.timeout, self._send, pending)
        pending.timeout *= 2

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if len(datagram) < 12 or not datagram[2] & 0x80:
            return
        if (datagram[2] >> 3) & 0x0F != OPCODE_NOTIFY:
            return
        query_id = int.from_bytes(datagram[0:2], "big")
        target = (str(addr[0]), int(addr[1]))
        for key, pending in list(self._pending.items()):
            if pending.query_id == query_id and pending.target == target:
                del self._pending[key]
                if pending.call is not None and pending.call.active():
                    pending.call.cancel()
                self.acknowledged += 1
                return

    def stop(self) -> None:
        """Cancel every scheduled NOTIFY and retry (service shutdown)."""
        for call in self._scheduled.values():
            if call.active():
                call.cancel()
        self._scheduled.clear()
        for pending in self._pending.values():
            if pending.call is not None and pending.call.active():
                pending.call.cancel()
        self._pending.clear()

    def stopProtocol(self) -> None:
        self.stop()

    @property
    def outstanding(self) -> int:
        return len(self._pending)


def notify_packet(query_id: int, zone: str) -> bytes:
    """A NOTIFY query: opcode 4, AA, one question (zone, SOA, IN), no answer section."""
    return (
        HEADER.pack(query_id.to_bytes(2, "big"), NOTIFY_FLAGS, 0, 1, 0, 0, 0)
        + encode_name(zone)
        + QUESTION_TAIL.pack(TYPE_SOA, CLASS_IN)
    )
