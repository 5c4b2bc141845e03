"""``[feeds.policy] reject_listed``: the policy feed rejects clients the trap IP zone lists.

The lookup reads the same index DNS answers from (allowlist exclusions, networks,
IPv6 nibbles); the feed answers with it only when asked to, only at RCPT, after a
trap hit is durable, and DUNNO whenever the lookup fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from rbl.config import ConfigError, ZoneKind, parse_settings
from rbl.dnsserver.zone import Zone
from rbl.feeds.listed import ListedReplies, address_labels
from rbl.feeds.policyd import PolicyServerFactory
from rbl.index.tables import Value
from rbl.model.traphit import TrapHit
from tests.support.dns_zones import IP_LISTINGS, make_index, make_settings
from tests.support.policy_requests import DUNNO, request

DEFER = b"action=DEFER_IF_PERMIT Service temporarily unavailable\n\n"


@pytest.fixture
def replies() -> ListedReplies:
    settings = make_settings()
    ip_zone = next(zone for zone in settings.zones if zone.kind is ZoneKind.IP)
    return ListedReplies(Zone(ip_zone, make_index(ZoneKind.IP, IP_LISTINGS)))


def test_labels_are_the_dnsbl_query_labels() -> None:
    assert address_labels("192.0.2.1") == [b"1", b"2", b"0", b"192"]
    six = address_labels("2001:db8::5")
    assert six is not None and len(six) == 32
    assert b"".join(reversed(six)) == b"20010db8000000000000000000000005"
    assert address_labels("not an address") is None


def test_listed_clients_get_reject_rbl_clients_reply(replies: ListedReplies) -> None:
    reply = replies("192.0.2.1")
    assert reply is not None
    assert reply.startswith(
        b"action=554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using "
        + replies.zone.name.encode()
        + b"; "
    )
    assert reply.endswith(b"\n\n") and reply.count(b"\n") == 2
    # Inside a listed network, and an IPv6 address inside a listed /64.
    assert replies("198.51.100.20") is not None
    assert replies("2001:db8:1:2::77") is not None


def test_unlisted_and_excluded_clients_get_nothing(replies: ListedReplies) -> None:
    assert replies("192.0.2.2") is None
    assert replies("198.51.100.7") is None  # excluded (allowlisted) inside the /24
    assert replies("2001:db8:1:3::1") is None
    assert replies("garbage") is None


def test_the_reply_is_one_line_of_printable_ascii() -> None:
    settings = make_settings()
    ip_zone = next(zone for zone in settings.zones if zone.kind is ZoneKind.IP)
    zone = Zone(
        ip_zone, make_index(ZoneKind.IP, {"192.0.2.9": Value(("127.0.0.2",), "a\u202eb é")})
    )
    reply = ListedReplies(zone)("192.0.2.9")
    assert reply is not None and reply.isascii()
    assert reply.rstrip(b"\n").count(b"\n") == 0
    assert reply.endswith(b"a?b ?\n\n")


class Feed:
    """A policy feed whose listed clients the test sets, on a fake connection."""

    def __init__(self, *, reject_listed: bool = True, wait: bool = False) -> None:
        self.clock = Clock()
        self.listed: set[str] = set()
        self.failing = False
        self.waiting: list[Deferred[bool]] = []
        self.factory = PolicyServerFactory(
            lambda rcpt: rcpt == "trap@example.org",
            self.submit if wait else (lambda hit: None),
            self.clock,
            listed=self.lookup,
            reject_listed=reject_listed,
        )
        protocol = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        assert protocol is not None
        self.protocol = protocol
        self.transport = StringTransport()  # type: ignore[no-untyped-call]
        protocol.makeConnection(self.transport)  # type: ignore[no-untyped-call]

    def submit(self, hit: TrapHit) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()
        self.waiting.append(d)
        return d

    def lookup(self, client_ip: str) -> bytes | None:
        if self.failing:
            raise RuntimeError("index gone")
        return b"action=554 listed\n\n" if client_ip in self.listed else None

    def ask(self, **attributes: str) -> bytes:
        before = len(self.transport.value())  # type: ignore[no-untyped-call]
        self.protocol.dataReceived(request(**attributes))  # type: ignore[no-untyped-call]
        value: bytes = self.transport.value()  # type: ignore[no-untyped-call]
        return value[before:]

    def close(self) -> None:
        self.protocol.connectionLost(Failure(ConnectionDone()))  # type: ignore[no-untyped-call]


REJECT = b"action=554 listed\n\n"


def test_a_listed_client_is_rejected_at_rcpt_and_others_pass() -> None:
    feed = Feed()
    feed.listed.add("192.0.2.1")
    assert feed.ask(recipient="user@example.org") == REJECT
    assert feed.ask(recipient="user@example.org", client_address="192.0.2.2") == DUNNO
    # Other stages and requests are never rejected.
    assert feed.ask(recipient="user@example.org", protocol_state="DATA") == DUNNO
    assert feed.ask(recipient="user@example.org", protocol_state="END-OF-MESSAGE") == DUNNO
    assert feed.ask(recipient="user@example.org", request="junk") == DUNNO
    assert feed.factory.rejected == 1
    feed.close()


def test_off_by_default_the_feed_only_observes() -> None:
    feed = Feed(reject_listed=False)
    feed.listed.add("192.0.2.1")
    assert feed.ask(recipient="user@example.org") == DUNNO
    assert feed.ask() == DUNNO  # the trap hit itself
    assert feed.factory.rejected == 0
    feed.factory.configure(feed.factory.allow, reject_listed=True)  # a reload turns it on
    assert feed.ask(recipient="user@example.org") == REJECT
    feed.close()


def test_a_trap_hit_is_rejected_once_durable_and_deferred_when_not() -> None:
    feed = Feed(wait=True)
    assert feed.ask() == b""  # waits for the store (and the listing in DNS)
    feed.listed.add("192.0.2.1")  # the hit's listing, now in the index
    feed.waiting[0].callback(True)
    assert feed.transport.value() == REJECT  # type: ignore[no-untyped-call]
    assert feed.ask() == b""
    feed.waiting[1].callback(False)  # not stored: try again later, never a reject
    assert feed.transport.value() == REJECT + DEFER  # type: ignore[no-untyped-call]
    feed.close()


def test_a_failing_lookup_answers_dunno_and_counts_an_error() -> None:
    feed = Feed()
    feed.listed.add("192.0.2.1")
    feed.failing = True
    assert feed.ask(recipient="user@example.org") == DUNNO
    assert (feed.factory.errors, feed.factory.rejected) == (1, 0)
    feed.close()


def test_config_reject_listed(tmp_path: Path) -> None:
    base = {
        "zones": [{"name": "bl.example.org", "kind": "ip", "ns": ["ns1.example.org"]}],
        "feeds": {"policy": {"listen": "127.0.0.1:10031"}},
    }
    settings = parse_settings(base, source=tmp_path / "rbl.toml")
    assert settings.policy_feed.reject_listed is False
    base["feeds"] = {"policy": {"listen": "127.0.0.1:10031", "reject_listed": True}}
    assert parse_settings(base, source=tmp_path / "rbl.toml").policy_feed.reject_listed is True
    base["feeds"] = {"policy": {"listen": "127.0.0.1:10031", "reject_listed": "yes"}}
    with pytest.raises(ConfigError, match=r"reject_listed must be true or false, not 'yes'"):
        parse_settings(base, source=tmp_path / "rbl.toml")
