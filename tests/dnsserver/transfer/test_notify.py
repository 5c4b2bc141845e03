"""NOTIFY sender: retries with backoff until answered, coalescing of bursts (task.Clock)."""

from __future__ import annotations

import dns.message
import dns.opcode
import dns.rdatatype
from twisted.internet import task
from twisted.internet.testing import FakeDatagramTransport

from rbl.dnsserver.notify import NotifySender
from rbl.dnsserver.zone import Zone
from tests.support.dns_zones import IP_ZONE, make_responder

SECONDARY = ("127.0.0.1", 5300)


def setup(
    targets: tuple[tuple[str, int], ...] = (SECONDARY,),
) -> tuple[NotifySender, FakeDatagramTransport, task.Clock, Zone]:
    clock = task.Clock()
    sender = NotifySender(targets, clock, interval=1.0, timeout=1.0, retries=4)
    transport = FakeDatagramTransport()
    sender.makeConnection(transport)
    zone = make_responder({}, {}).zones[0]
    return sender, transport, clock, zone


def sent(transport: FakeDatagramTransport) -> list[dns.message.Message]:
    return [dns.message.from_wire(packet) for packet, _addr in transport.written]


def ack(
    sender: NotifySender, query: dns.message.Message, addr: tuple[str, int] = SECONDARY
) -> None:
    reply = dns.message.make_response(query)
    sender.datagramReceived(reply.to_wire(), addr)


def test_notify_is_an_authoritative_soa_query_with_opcode_notify() -> None:
    sender, transport, _clock, zone = setup()
    sender.zone_changed(zone)
    (message,) = sent(transport)
    assert message.opcode() == dns.opcode.NOTIFY
    assert message.flags & dns.flags.AA
    assert str(message.question[0].name) == IP_ZONE + "."
    assert message.question[0].rdtype == dns.rdatatype.SOA
    assert transport.written[0][1] == SECONDARY


def test_retries_with_backoff_until_answered() -> None:
    sender, transport, clock, zone = setup()
    sender.zone_changed(zone)
    clock.advance(1.0)  # first timeout: 1 s
    assert len(transport.written) == 2
    clock.advance(1.5)
    assert len(transport.written) == 2  # second timeout is 2 s
    clock.advance(0.5)
    assert len(transport.written) == 3
    messages = sent(transport)
    assert len({m.id for m in messages}) == 1
    ack(sender, messages[0], ("192.0.2.9", 5300))  # from elsewhere: ignored
    assert sender.outstanding == 1
    ack(sender, messages[0])
    assert sender.outstanding == 0 and sender.acknowledged == 1
    clock.advance(100)
    assert len(transport.written) == 3
    assert not clock.getDelayedCalls()


def test_gives_up_after_the_retries() -> None:
    sender, transport, clock, zone = setup()
    sender.zone_changed(zone)
    clock.pump([1, 2, 4, 8, 16])
    assert len(transport.written) == 4
    assert sender.given_up == 1 and sender.outstanding == 0


def test_bursts_are_coalesced_to_one_notify_per_second() -> None:
    sender, transport, clock, zone = setup()
    sender.zone_changed(zone)
    ack(sender, sent(transport)[0])
    for _ in range(50):
        clock.advance(0.01)
        sender.zone_changed(zone)
    assert len(transport.written) == 1
    clock.advance(0.5)  # the window ends one second after the first NOTIFY
    assert len(transport.written) == 2
    ack(sender, sent(transport)[1])
    clock.advance(5)
    assert len(transport.written) == 2
    sender.zone_changed(zone)  # quiet for a while: goes out at once
    assert len(transport.written) == 3


def test_a_newer_notify_replaces_the_retries_of_the_older() -> None:
    sender, transport, clock, zone = setup(((SECONDARY), ("127.0.0.1", 5301)))
    sender.zone_changed(zone)
    assert len(transport.written) == 2
    clock.advance(1.0)  # retries to both, and the coalescing window has passed
    assert len(transport.written) == 4
    sender.zone_changed(zone)
    assert len(transport.written) == 6
    assert sender.outstanding == 2
    old_ids = {m.id for m in sent(transport)[:2]}
    for (_packet, addr), message in zip(transport.written[4:], sent(transport)[4:], strict=True):
        ack(sender, message, addr)
    assert sender.outstanding == 0 and sender.acknowledged == 2
    assert old_ids  # the older NOTIFYs' retries were cancelled, not acknowledged
    sender.stop()
    assert not clock.getDelayedCalls()


def test_no_targets_sends_nothing() -> None:
    sender, transport, clock, zone = setup(())
    sender.zone_changed(zone)
    clock.advance(10)
    assert transport.written == []
