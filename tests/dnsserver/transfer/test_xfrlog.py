"""One log line and the counters per transfer served, measured on the bytes that left.

The TCP protocol runs on a StringTransport with a hand-turned cooperator
(tests/support/cooperation.py), so a test can drop the connection between two
messages; dnspython parses what was written, the oracle for the figures.
"""

from __future__ import annotations

import dns.message
import dns.rdatatype
import dns.rrset
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure

from rbl.dnsserver.protocol import Counters, DnsStreamFactory, DnsStreamProtocol
from rbl.dnsserver.responder import Responder
from rbl.dnsserver.transfer import TransferPolicy, Transfers
from rbl.index.tables import Value
from rbl.model.keys import ZoneKind, parse_key
from tests.support.cooperation import Steps, split_messages
from tests.support.dns_client import make_query
from tests.support.dns_zones import IP_ORIGIN, IP_ZONE, make_responder

CLIENT = "127.0.0.9"


def served(count: int = 50) -> tuple[Responder, DnsStreamFactory]:
    resp = make_responder({}, {})
    zone = resp.zones[0]
    for n in range(count):
        zone.index.set(parse_key(ZoneKind.IP, f"45.0.{n >> 8}.{n & 255}"), Value(("127.0.0.2",)))
    zone.set_serial(40)
    policy = TransferPolicy.from_strings(["127.0.0.0/8"])
    return resp, DnsStreamFactory(resp, Counters(), Transfers(resp.zones, policy))


def connect(
    factory: DnsStreamFactory, steps: Steps, client: str = CLIENT
) -> tuple[DnsStreamProtocol, StringTransport]:
    factory.cooperate = steps.cooperator.cooperate
    factory.transfer_clock = lambda: 100.0  # every transfer takes no time
    protocol = factory.buildProtocol(IPv4Address("TCP", client, 5353))
    assert protocol is not None
    transport = StringTransport(peerAddress=IPv4Address("TCP", client, 40000))
    protocol.makeConnection(transport)
    return protocol, transport


def ask(protocol: DnsStreamProtocol, query: dns.message.Message) -> None:
    data = query.to_wire()
    protocol.dataReceived(len(data).to_bytes(2, "big") + data)


def ixfr(serial: int) -> dns.message.Message:
    query = make_query(IP_ORIGIN, "IXFR")
    soa = dns.rrset.from_text(IP_ORIGIN, 0, "IN", "SOA", f". . {serial} 0 0 0 0")
    query.authority.append(soa)
    return query


def transfer(
    factory: DnsStreamFactory, query: dns.message.Message, client: str = CLIENT
) -> tuple[list[bytes], list[str]]:
    steps = Steps()
    protocol, transport = connect(factory, steps, client)
    with capturedLogs() as events:
        ask(protocol, query)
        steps.run()
    protocol.setTimeout(None)
    return split_messages(transport.value()), [str(formatEvent(e)) for e in events]


def test_an_axfr_is_one_line_with_what_was_sent() -> None:
    _resp, factory = served(2000)
    messages, lines = transfer(factory, make_query(IP_ORIGIN, "AXFR"))
    records = sum(_count(m) for m in messages)
    size = sum(len(m) for m in messages)
    assert len(messages) > 1
    assert lines == [
        f"transfer {IP_ZONE} AXFR to {CLIENT}: complete, serial - -> 40, {records} records, "
        f"{size} bytes in {len(messages)} messages, 0.000s"
    ]
    stats = factory.transfer_stats
    assert stats.counts == {("axfr", "complete"): 1}
    assert stats.bytes == {"axfr": size} and stats.records == {"axfr": records}


def _count(message: bytes) -> int:
    return int.from_bytes(message[6:8], "big")  # ANCOUNT


def test_ixfr_up_to_date_and_ixfr_answered_in_full_are_told_apart() -> None:
    _resp, factory = served()
    messages, lines = transfer(factory, ixfr(40))
    assert [_count(m) for m in messages] == [1]
    assert lines[0].startswith(
        f"transfer {IP_ZONE} IXFR to {CLIENT}: complete, serial 40 -> 40, 1 "
    )
    messages, lines = transfer(factory, ixfr(12))
    second = dns.message.from_wire(messages[0], one_rr_per_rrset=True).answer[1]
    assert second.rdtype != dns.rdatatype.SOA  # AXFR-style: the whole zone after the SOA
    assert lines[0].startswith(
        f"transfer {IP_ZONE} IXFR (fell back to AXFR) to {CLIENT}: complete, serial 12 -> 40, "
    )
    assert factory.transfer_stats.counts == {("ixfr", "complete"): 1, ("ixfr_axfr", "complete"): 1}


def test_a_refused_transfer_is_counted_as_refused() -> None:
    _resp, factory = served()
    messages, lines = transfer(factory, make_query(IP_ORIGIN, "AXFR"), client="192.0.2.1")
    assert len(messages) == 1
    assert lines == [
        f"transfer {IP_ZONE} AXFR to 192.0.2.1: refused (REFUSED), serial - -> -, 0 records, "
        f"{len(messages[0])} bytes in 1 messages, 0.000s"
    ]
    assert factory.transfer_stats.counts == {("axfr", "refused"): 1}


def test_a_client_that_goes_away_mid_transfer_is_an_abort() -> None:
    _resp, factory = served(5000)
    steps = Steps(one_at_a_time=True)
    protocol, transport = connect(factory, steps)
    with capturedLogs() as events:
        ask(protocol, make_query(IP_ORIGIN, "AXFR"))
        for _ in range(3):
            steps.pending.pop(0)()  # three messages out
        protocol.connectionLost(Failure(ConnectionError("closed by the client")))
        steps.run()
    (line,) = [str(formatEvent(e)) for e in events]
    assert f"AXFR to {CLIENT}: aborted by the client, serial - -> 40" in line
    assert "in 3 messages" in line
    assert len(split_messages(transport.value())) == 3
    assert factory.transfer_stats.counts == {("axfr", "aborted"): 1}
