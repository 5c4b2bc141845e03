"""NOTIFY sender: retries with capped backoff until answered or superseded, one log line per
failure streak and one per recovery, coalescing of bursts (task.Clock, fake sockets)."""

from __future__ import annotations

import errno
import itertools

import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
from twisted.internet import task
from twisted.internet.testing import FakeDatagramTransport
from twisted.logger import capturedLogs, formatEvent

from rbl.dnsserver.notify import NotifySender, Target
from rbl.dnsserver.notifyport import NotifyChannel
from rbl.dnsserver.zone import Zone
from tests.support.dns_zones import IP_ZONE, make_responder

SECONDARY = ("127.0.0.1", 5300)
SECONDARY6 = ("2001:db8::53", 53)


class Socket(FakeDatagramTransport):
    """A channel's socket: records datagrams; ``error`` makes sends fail."""

    def __init__(self) -> None:
        super().__init__()
        self.error: OSError | None = None
        self.closed = False

    def write(self, packet: bytes, addr: object = None) -> None:
        if self.error is not None:
            raise self.error
        super().write(packet, addr)

    def stopListening(self) -> None:
        self.closed = True


class Sockets:
    """The opener: one fake connected socket per target, as rbl.dnsserver.notifyport opens."""

    def __init__(self) -> None:
        self.channels: dict[Target, NotifyChannel] = {}
        self.sockets: dict[Target, Socket] = {}
        self.refuse: set[Target] = set()

    def __call__(self, target: Target, sender: NotifySender) -> NotifyChannel:
        if target in self.refuse:
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        channel = NotifyChannel(target, sender)
        self.sockets[target] = Socket()
        channel.makeConnection(self.sockets[target])
        self.channels[target] = channel
        return channel

    def socket(self, target: Target = SECONDARY) -> Socket:
        return self.sockets[target]

    def sent(self, target: Target = SECONDARY) -> list[dns.message.Message]:
        return [dns.message.from_wire(packet) for packet, _ in self.socket(target).written]

    def answer(
        self, query: dns.message.Message, target: Target = SECONDARY, rcode: int = 0
    ) -> None:
        reply = dns.message.make_response(query)
        reply.set_rcode(rcode)
        self.channels[target].datagramReceived(reply.to_wire(), target)


def setup(
    targets: tuple[Target, ...] = (SECONDARY,), max_timeout: float = 8.0
) -> tuple[NotifySender, Sockets, task.Clock, Zone]:
    clock = task.Clock()
    sockets = Sockets()
    sender = NotifySender(
        targets, clock, sockets, interval=1.0, timeout=1.0, max_timeout=max_timeout
    )
    sender.start()
    zone = make_responder({}, {}).zones[0]
    return sender, sockets, clock, zone


def lines(events: list[dict[str, object]]) -> list[str]:
    return [str(formatEvent(event)) for event in events]


def test_notify_is_an_authoritative_soa_query_with_opcode_notify() -> None:
    sender, sockets, _clock, zone = setup()
    sender.zone_changed(zone)
    (message,) = sockets.sent()
    assert message.opcode() == dns.opcode.NOTIFY
    assert message.flags & dns.flags.AA
    assert str(message.question[0].name) == IP_ZONE + "."
    assert message.question[0].rdtype == dns.rdatatype.SOA


def test_each_target_has_a_socket_of_its_own() -> None:
    sender, sockets, _clock, zone = setup((SECONDARY, SECONDARY6))
    sender.zone_changed(zone)
    assert len(sockets.sent(SECONDARY)) == len(sockets.sent(SECONDARY6)) == 1
    assert sockets.socket(SECONDARY) is not sockets.socket(SECONDARY6)


def test_retries_back_off_to_the_cap_and_go_on_until_answered() -> None:
    sender, sockets, clock, zone = setup(max_timeout=8.0)
    sender.zone_changed(zone)
    times = [0.0]
    for _ in range(60):  # a minute, a second at a time: record when each send went out
        before = len(sockets.socket().written)
        clock.advance(1.0)
        if len(sockets.socket().written) > before:
            times.append(clock.seconds())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[:4] == [1.0, 2.0, 4.0, 8.0]  # doubling...
    assert set(gaps[4:]) == {8.0}  # ...capped, and never given up (well past 5 sends)
    assert len(times) > 8
    messages = sockets.sent()
    assert len({m.id for m in messages}) == 1  # one NOTIFY, resent
    sockets.answer(messages[0])
    assert sender.outstanding == 0 and sender.acknowledged == 1
    assert sender.states[SECONDARY].acknowledged == {IP_ZONE: zone.serial}
    clock.advance(100)
    assert len(sockets.socket().written) == len(times)
    assert not clock.getDelayedCalls()


def test_other_ids_and_refusals_are_not_acknowledgements() -> None:
    sender, sockets, clock, zone = setup()
    sender.zone_changed(zone)
    (query,) = sockets.sent()
    other = dns.message.make_query(IP_ZONE, "SOA")
    other.set_opcode(dns.opcode.NOTIFY)
    sockets.answer(other)  # an answer to some other id
    assert sender.outstanding == 1
    with capturedLogs() as events:
        sockets.answer(query, rcode=dns.rcode.REFUSED)
        assert sender.outstanding == 1 and sender.acknowledged == 0
        clock.advance(1.0)
        sockets.answer(query, rcode=dns.rcode.REFUSED)
    (line,) = lines(events)
    assert "NOTIFY to 127.0.0.1:5300 failing: answered REFUSED" in line
    assert len(sockets.socket().written) == 2  # still retried


def test_one_line_per_failure_streak_and_one_per_recovery() -> None:
    sender, sockets, clock, zone = setup(max_timeout=4.0)
    with capturedLogs() as events:
        sender.zone_changed(zone)
        clock.advance(1.0)  # one datagram lost: not failing yet
        assert sender.failing_targets() == []
        clock.pump([1.0] * 120)  # two minutes of silence: ~30 more sends
    assert len(sockets.socket().written) > 25
    (failing,) = lines(events)
    assert failing.startswith("NOTIFY to 127.0.0.1:5300 failing: timeout: no answer to 2 sends")
    assert f"({IP_ZONE} serial {zone.serial})" in failing
    assert sender.failing_targets() == [SECONDARY]
    with capturedLogs() as events:
        sockets.answer(sockets.sent()[-1])
        clock.advance(60)
    (recovered,) = lines(events)
    assert recovered.startswith("NOTIFY to 127.0.0.1:5300 recovered after 118.0s failing")
    assert f"{IP_ZONE} serial {zone.serial} acknowledged" in recovered
    assert sender.failing_targets() == []
    with capturedLogs() as events:  # the next change is acknowledged at once: one line
        clock.advance(5)
        sender.zone_changed(zone)
        sockets.answer(sockets.sent()[-1])
    (acknowledged,) = lines(events)
    assert acknowledged.startswith(f"NOTIFY {IP_ZONE} serial {zone.serial} to 127.0.0.1:5300")
    assert "acknowledged after 1 send(s)" in acknowledged


def test_a_recovered_target_gets_its_other_zones_at_once_in_the_same_streak() -> None:
    sender, sockets, clock, zone = setup(max_timeout=8.0)
    other = make_responder({}, {}).zones[1]
    with capturedLogs() as events:
        sender.zone_changed(zone)
        sender.zone_changed(other)
        clock.pump([1.0] * 30)  # both unanswered, backed off to 8s
        by_zone = {str(m.question[0].name).rstrip("."): m for m in sockets.sent()}
        sent = len(sockets.socket().written)
        sockets.answer(by_zone[IP_ZONE])  # the secondary is back: it answers one of them
        (resent,) = sockets.sent()[sent:]  # the other goes out now, not up to 8s later
        assert str(resent.question[0].name) == f"{other.name}."
        clock.advance(1.0)
        sockets.answer(resent)
    failing, recovered, acknowledged = lines(events)  # one streak, one recovery
    assert failing.startswith("NOTIFY to 127.0.0.1:5300 failing: timeout")
    assert recovered.startswith("NOTIFY to 127.0.0.1:5300 recovered after 27.0s failing")
    assert acknowledged.startswith(f"NOTIFY {other.name} serial {other.serial} to 127.0.0.1:5300")
    assert sender.outstanding == 0 and sender.failing_targets() == []


def test_send_errors_and_icmp_errors_are_reasons_logged_once() -> None:
    sender, sockets, clock, zone = setup((SECONDARY, SECONDARY6))
    sockets.socket(SECONDARY6).error = OSError(errno.ENETUNREACH, "Network is unreachable")
    with capturedLogs() as events:
        sender.zone_changed(zone)
        sockets.channels[SECONDARY].connectionRefused()  # ICMP port unreachable came back
        sockets.channels[SECONDARY].readError(errno.EHOSTUNREACH)  # same streak: no line
        clock.pump([1.0] * 30)
    assert sorted(lines(events)) == [
        f"NOTIFY to 127.0.0.1:5300 failing: ICMP port unreachable ({IP_ZONE} serial "
        f"{zone.serial}); retrying with backoff up to 8s until it answers",
        f"NOTIFY to [2001:db8::53]:53 failing: send error: Network is unreachable ({IP_ZONE} "
        f"serial {zone.serial}); retrying with backoff up to 8s until it answers",
    ]
    sockets.socket(SECONDARY6).error = None  # the route is back
    clock.pump([1.0] * 8)
    sockets.answer(sockets.sent(SECONDARY6)[-1], SECONDARY6)
    assert sender.failing_targets() == [SECONDARY]


def test_a_newer_serial_supersedes_the_pending_notify() -> None:
    sender, sockets, clock, zone = setup((SECONDARY, ("127.0.0.1", 5301)))
    sender.zone_changed(zone)
    clock.advance(1.0)  # retries to both, and the coalescing window has passed
    old = sockets.sent()[0]
    zone.set_serial(zone.serial + 1)
    sender.zone_changed(zone)
    assert sender.outstanding == 2  # one per zone and target, never more
    assert sender.superseded == 2
    sockets.answer(old)  # the older NOTIFY's answer, late: acknowledges nothing
    assert sender.outstanding == 2 and sender.acknowledged == 0
    assert len(sockets.sent()) == 2  # resent once already: the new one keeps the backoff...
    clock.advance(2.0)  # ...and goes out when the older would have been retried
    assert len(sockets.sent()) == 3 and sockets.sent()[-1].id != old.id
    for target in sender.targets:
        sockets.answer(sockets.sent(target)[-1], target)
    assert sender.outstanding == 0 and sender.acknowledged == 2
    assert {s.acknowledged[IP_ZONE] for s in sender.states.values()} == {zone.serial}
    sender.stop()
    assert not clock.getDelayedCalls()
    assert all(sockets.socket(t).closed for t in sender.targets)


def test_a_busy_zone_does_not_undo_the_backoff_to_a_dead_target() -> None:
    sender, sockets, clock, zone = setup(max_timeout=8.0)
    sender.zone_changed(zone)
    for _ in range(120):  # a change every second for two minutes; nobody answers
        clock.advance(1.0)
        zone.set_serial(zone.serial + 1)
        sender.zone_changed(zone)
    sends = sockets.sent()
    assert len(sends) <= 4 + 120 // 8 + 1  # 1, 2, 4 s, then every 8 s: not one a change
    assert sender.outstanding == 1
    clock.advance(8.0)
    latest = sockets.sent()[-1]
    assert latest.id != sends[0].id  # the newest serial's NOTIFY goes out at the retry slot
    sockets.answer(latest)
    assert sender.states[SECONDARY].acknowledged == {IP_ZONE: zone.serial}
    assert sender.failing_targets() == []


def test_bursts_are_coalesced_to_one_notify_per_second() -> None:
    sender, sockets, clock, zone = setup()
    sender.zone_changed(zone)
    sockets.answer(sockets.sent()[0])
    for _ in range(50):
        clock.advance(0.01)
        sender.zone_changed(zone)
    assert len(sockets.sent()) == 1
    clock.advance(0.5)  # the window ends one second after the first NOTIFY
    assert len(sockets.sent()) == 2
    sockets.answer(sockets.sent()[1])
    clock.advance(5)
    assert len(sockets.sent()) == 2
    sender.zone_changed(zone)  # quiet for a while: goes out at once
    assert len(sockets.sent()) == 3


def test_a_socket_that_cannot_be_opened_is_a_failure_retried_at_each_send() -> None:
    clock = task.Clock()
    sockets = Sockets()
    sockets.refuse.add(SECONDARY6)
    sender = NotifySender([SECONDARY6], clock, sockets, timeout=1.0, max_timeout=4.0)
    with capturedLogs() as events:
        sender.start()
        zone = make_responder({}, {}).zones[0]
        sender.zone_changed(zone)
        clock.pump([1.0] * 5)
    (line,) = lines(events)
    assert "failing: send error: cannot open a socket: Address family not supported" in line
    sockets.refuse.clear()  # IPv6 came up
    clock.pump([1.0] * 4)
    sockets.answer(sockets.sent(SECONDARY6)[-1], SECONDARY6)
    assert sender.failing_targets() == [] and sender.acknowledged == 1


def test_new_targets_on_reload() -> None:
    sender, sockets, clock, zone = setup()
    sender.zone_changed(zone)
    sender.set_targets([SECONDARY6])
    assert sender.outstanding == 0  # the removed target's NOTIFY is dropped
    assert sockets.socket(SECONDARY).closed
    clock.advance(2)
    sender.zone_changed(zone)
    assert len(sockets.sent(SECONDARY6)) == 1


def test_no_targets_sends_nothing() -> None:
    sender, sockets, clock, zone = setup(())
    sender.zone_changed(zone)
    clock.advance(10)
    assert sockets.channels == {}
