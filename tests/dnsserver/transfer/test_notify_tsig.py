"""Signed NOTIFY: a target with a key gets its NOTIFYs signed (dnspython verifies them as the
secondary would), and only an answer signed by that key over our request acknowledges one;
unsigned or wrongly signed answers are failures, logged once, retried (task.Clock, fake sockets).
"""

from __future__ import annotations

import base64
import time

import dns.message
import dns.opcode
import dns.rcode
import dns.tsigkeyring
from twisted.internet import task
from twisted.internet.testing import FakeDatagramTransport
from twisted.logger import capturedLogs, formatEvent

from rbl.dnsserver.notify import NotifySender, Target
from rbl.dnsserver.notifyport import NotifyChannel
from rbl.dnsserver.tsig import Key
from tests.support.dns_zones import IP_ZONE, make_responder

SECRET = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
KEY = Key.from_spec(f"ns2-key:hmac-sha256:{SECRET}")
KEYRING = dns.tsigkeyring.from_text({"ns2-key.": ("hmac-sha256", SECRET)})
WRONG = dns.tsigkeyring.from_text(
    {"ns2-key.": ("hmac-sha256", base64.b64encode(b"x" * 32).decode())}
)
KEYED: Target = ("127.0.0.1", 5300)
PLAIN: Target = ("127.0.0.2", 5300)


class Opener:
    def __init__(self) -> None:
        self.sockets: dict[Target, FakeDatagramTransport] = {}
        self.channels: dict[Target, NotifyChannel] = {}

    def __call__(self, target: Target, sender: NotifySender) -> NotifyChannel:
        channel = NotifyChannel(target, sender)
        self.sockets[target] = FakeDatagramTransport()
        channel.makeConnection(self.sockets[target])
        self.channels[target] = channel
        return channel

    def written(self, target: Target) -> list[bytes]:
        return [packet for packet, _ in self.sockets[target].written]


def setup() -> tuple[NotifySender, Opener, task.Clock]:
    clock = task.Clock()
    clock.advance(time.time())  # TSIG times are wall-clock seconds
    opener = Opener()
    sender = NotifySender((KEYED, PLAIN), clock, opener, keys={KEYED: KEY})
    sender.start()
    sender.zone_changed(make_responder({}, {}).zones[0])
    return sender, opener, clock


def test_a_keyed_target_gets_a_signed_notify_and_a_plain_one_does_not() -> None:
    _sender, opener, _clock = setup()
    (signed,) = opener.written(KEYED)
    message = dns.message.from_wire(signed, keyring=KEYRING)  # raises unless the MAC verifies
    assert message.had_tsig and message.opcode() == dns.opcode.NOTIFY
    assert str(message.question[0].name) == IP_ZONE + "."
    (plain,) = opener.written(PLAIN)
    assert not dns.message.from_wire(plain).had_tsig


def answer(query: bytes, keyring: object | None) -> bytes:
    request = dns.message.from_wire(query, keyring=KEYRING)
    reply = dns.message.make_response(request)  # signed with the request's key, over its MAC
    if keyring is None:
        reply = dns.message.make_response(dns.message.from_wire(query, keyring=lambda *_: False))
        reply.tsig = None
        reply.want_tsig_sign = False
    elif keyring is not KEYRING:
        reply.use_tsig(keyring, keyname="ns2-key.")
        reply.request_mac = request.mac
    return reply.to_wire()


def test_only_an_answer_signed_by_the_key_acknowledges() -> None:
    sender, opener, clock = setup()
    (query,) = opener.written(KEYED)
    with capturedLogs() as events:
        opener.channels[KEYED].datagramReceived(answer(query, None), KEYED)
        assert sender.acknowledged == 0 and sender.outstanding == 2
        opener.channels[KEYED].datagramReceived(answer(query, WRONG), KEYED)
        assert sender.acknowledged == 0
    (line,) = [str(formatEvent(event)) for event in events]
    assert "NOTIFY to 127.0.0.1:5300 failing: answered not signed (key ns2-key.)" in line
    clock.advance(1.0)  # retried, signed again
    retry = opener.written(KEYED)[-1]
    assert len(opener.written(KEYED)) == 2 and dns.message.from_wire(retry, keyring=KEYRING)
    assert retry != query  # a MAC of its own
    opener.channels[KEYED].datagramReceived(answer(retry, KEYRING), KEYED)
    assert sender.acknowledged == 1
    assert sender.states[KEYED].failing is None


def test_a_late_answer_to_an_earlier_send_acknowledges() -> None:
    sender, opener, clock = setup()
    (first,) = opener.written(KEYED)
    clock.advance(1.0)
    assert len(opener.written(KEYED)) == 2
    opener.channels[KEYED].datagramReceived(answer(first, KEYRING), KEYED)  # over the first MAC
    assert sender.acknowledged == 1 and sender.states[KEYED].failing is None


def test_an_unsigned_answer_acknowledges_a_target_without_key() -> None:
    sender, opener, _clock = setup()
    (query,) = opener.written(PLAIN)
    reply = dns.message.make_response(dns.message.from_wire(query))
    opener.channels[PLAIN].datagramReceived(reply.to_wire(), PLAIN)
    assert sender.acknowledged == 1


def test_reload_replaces_the_keys() -> None:
    sender, opener, clock = setup()
    sender.set_targets((KEYED, PLAIN), {})
    clock.advance(1.0)
    assert not dns.message.from_wire(opener.written(KEYED)[-1]).had_tsig
