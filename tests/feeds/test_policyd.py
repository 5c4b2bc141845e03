"""The Postfix policy feed: framing, TrapHits, robustness, and one real TCP socket."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, Logger
from twisted.python.failure import Failure

from rbl.feeds.policyd import (
    IDLE_TIMEOUT,
    MAX_ATTRIBUTES,
    MAX_LINE,
    MAX_WAITING,
    PolicyProtocol,
    PolicyServerFactory,
)
from rbl.model.traphit import TrapHit
from rbl.model.traps import TrapMatcher, parse_trap
from tests.support.policy_requests import DUNNO, request
from tests.support.processes import REPO, subprocess_env

DATA = Path(__file__).parents[1] / "data" / "postfix"
# A request as Postfix 3.7.11 sent it from smtpd_recipient_restrictions (captured).
CAPTURED = (DATA / "rcpt_request.txt").read_bytes()
NOW = 1_700_000_000.0
TRAPS = {"trap@example.org", "spamtrap@example.org"}


@dataclass
class Harness:
    factory: PolicyServerFactory
    protocol: PolicyProtocol
    transport: StringTransport
    clock: Clock
    hits: list[TrapHit] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)

    def send(self, data: bytes, chunk: int | None = None) -> None:
        if chunk is None:
            self.protocol.dataReceived(data)  # type: ignore[no-untyped-call]
            return
        for start in range(0, len(data), chunk):
            self.protocol.dataReceived(data[start : start + chunk])  # type: ignore[no-untyped-call]

    def replies(self) -> bytes:
        value: bytes = self.transport.value()  # type: ignore[no-untyped-call]
        return value

    def close(self) -> None:
        self.protocol.connectionLost(Failure(ConnectionDone()))  # type: ignore[no-untyped-call]


def make(
    is_trap: Callable[[str], bool] | None = None,
    submit: Callable[[TrapHit], Deferred[bool] | None] | None = None,
) -> Harness:
    clock = Clock()
    clock.advance(NOW)
    hits: list[TrapHit] = []
    asked: list[str] = []

    def default_is_trap(recipient: str) -> bool:
        asked.append(recipient)
        return recipient in TRAPS

    factory = PolicyServerFactory(is_trap or default_is_trap, submit or hits.append, clock)
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    assert protocol is not None
    transport = StringTransport()  # type: ignore[no-untyped-call]
    protocol.makeConnection(transport)  # type: ignore[no-untyped-call]
    return Harness(factory, protocol, transport, clock, hits, asked)


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = make()
    yield h
    h.close()


def test_captured_postfix_request_gives_one_hit(harness: Harness) -> None:
    harness.send(CAPTURED)
    assert harness.replies() == DUNNO
    assert harness.asked == ["spamtrap@example.org"]
    assert harness.hits == [
        TrapHit(
            at=datetime.fromtimestamp(NOW, UTC),
            client_ip="127.0.0.1",
            rcpt_to="spamtrap@example.org",
            mail_from="Bulk@Sender.example.net",
            helo="spammer.example.net",
            feed="policy",
            raw=(
                "request=smtpd_access_policy protocol_state=RCPT client_address=127.0.0.1"
                " client_name=localhost helo_name=spammer.example.net"
                " sender=Bulk@Sender.example.net recipient=SpamTrap@Example.org queue_id="
                " instance=7e23.6b03e6b0.b09fe.0"
            ),
            client_name="localhost",
            trap_asserted=False,
            stage="rcpt",
            attempt="instance:7e23.6b03e6b0.b09fe.0",  # one per smtpd transaction
        )
    ]
    assert (harness.factory.requests, harness.factory.hits) == (1, 1)
    assert harness.factory.malformed == harness.factory.errors == 0
    assert not harness.transport.disconnecting


def test_hit_time_comes_from_the_clock(harness: Harness) -> None:
    harness.clock.advance(90.5)
    harness.send(request())
    assert harness.hits[0].at == datetime.fromtimestamp(NOW + 90.5, UTC)
    assert harness.hits[0].at.tzinfo is UTC


def test_pipelined_requests_on_one_connection(harness: Harness) -> None:
    harness.send(
        request(recipient="trap@example.org")
        + request(recipient="user@example.org")
        + request(recipient="SPAMTRAP@example.org", client_address="192.0.2.9")
    )
    assert harness.replies() == DUNNO * 3
    assert [(h.client_ip, h.rcpt_to) for h in harness.hits] == [
        ("192.0.2.1", "trap@example.org"),
        ("192.0.2.9", "spamtrap@example.org"),
    ]
    assert harness.factory.requests == 3


def test_requests_one_after_another_reuse_the_connection(harness: Harness) -> None:
    for n in range(5):
        harness.send(request(client_address=f"192.0.2.{n}"))
        assert harness.replies() == DUNNO * (n + 1)
    assert [h.client_ip for h in harness.hits] == [f"192.0.2.{n}" for n in range(5)]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 13, 64, 511])
def test_requests_in_small_chunks(chunk: int) -> None:
    h = make()
    data = request() + CAPTURED + request(recipient="nobody@example.org")
    h.send(data, chunk=chunk)
    assert h.replies() == DUNNO * 3
    whole = make()
    whole.send(data)
    assert h.hits == whole.hits
    assert len(h.hits) == 2


def test_reply_comes_only_after_the_empty_line(harness: Harness) -> None:
    data = request()
    harness.send(data[:-1])
    assert harness.replies() == b""
    assert harness.hits == []
    harness.send(data[-1:])
    assert harness.replies() == DUNNO
    assert len(harness.hits) == 1


def test_non_trap_recipient_is_answered_without_a_hit(harness: Harness) -> None:
    harness.send(request(recipient="Someone@Example.ORG"))
    assert harness.replies() == DUNNO
    assert harness.hits == []
    assert harness.asked == ["someone@example.org"]
    assert (harness.factory.requests, harness.factory.hits) == (1, 0)


@pytest.mark.parametrize(
    "attributes",
    [
        {"protocol_state": "CONNECT"},
        {"protocol_state": "EHLO"},
        {"protocol_state": "HELO"},
        {"protocol_state": "MAIL"},
        {"protocol_state": "VRFY"},
        {"protocol_state": "ETRN"},
        {"protocol_state": "DATA"},
        {"protocol_state": "END-OF-MESSAGE"},
        {"protocol_state": None},
        {"request": "junk"},
        {"request": None},
    ],
)
def test_other_states_and_requests_get_dunno_and_no_hit(
    harness: Harness, attributes: dict[str, Any]
) -> None:
    harness.send(request(**attributes))
    assert harness.replies() == DUNNO
    assert harness.hits == []
    assert harness.asked == []
    assert harness.factory.requests == 1
    assert harness.factory.malformed == 0


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:DB8::0:1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("::FFFF:C000:0207", "192.0.2.7"),
        ("fe80::1%eth0", "fe80::1"),
    ],
)
def test_client_addresses_are_normalised(harness: Harness, given: str, canonical: str) -> None:
    harness.send(request(client_address=given))
    assert harness.replies() == DUNNO
    assert harness.hits[0].client_ip == canonical
    assert f"client_address={given}" in harness.hits[0].raw  # raw keeps what Postfix sent


def test_null_sender(harness: Harness) -> None:
    harness.send(request(sender=""))
    assert harness.hits[0].mail_from == ""
    assert " sender= " in harness.hits[0].raw


def test_unknown_client_name_and_empty_helo(harness: Harness) -> None:
    harness.send(
        request(client_name="unknown", reverse_client_name="rdns.example.net", helo_name="")
    )
    hit = harness.hits[0]
    assert hit.client_name is None  # reverse_client_name is not verified: never used
    assert hit.helo is None
    assert "client_name=unknown" in hit.raw
    assert "rdns.example.net" not in hit.raw


def test_missing_optional_attributes(harness: Harness) -> None:
    harness.send(
        b"request=smtpd_access_policy\nprotocol_state=RCPT\n"
        b"client_address=192.0.2.1\nrecipient=trap@example.org\n\n"
    )
    hit = harness.hits[0]
    assert (hit.client_name, hit.helo, hit.mail_from) == (None, None, "")
    assert hit.raw == (
        "request=smtpd_access_policy protocol_state=RCPT client_address=192.0.2.1"
        " recipient=trap@example.org"
    )


def test_raw_keeps_only_what_matters_on_one_line(harness: Harness) -> None:
    harness.send(
        request(
            sender='"odd local"@example.net',
            helo_name="bad\thelo",
            sasl_username="secret-user",
            ccert_subject="CN=someone",
        )
    )
    raw = harness.hits[0].raw
    assert "\n" not in raw and "\t" not in raw
    assert 'sender="\\"odd local\\"@example.net"' in raw
    assert 'helo_name="bad\\thelo"' in raw
    assert "secret-user" not in raw and "CN=someone" not in raw
    assert "protocol_name" not in raw and "size=" not in raw


def test_non_utf8_bytes_do_not_break_the_request(harness: Harness) -> None:
    harness.send(request(helo_name="x").replace(b"helo_name=x", b"helo_name=\xff\xfe"))
    assert harness.replies() == DUNNO
    assert harness.hits[0].helo == "\ufffd\ufffd"


@pytest.mark.parametrize("address", ["", "unknown", "999.1.1.1", "192.0.2", "not an address", None])
def test_malformed_client_address_is_counted(harness: Harness, address: str | None) -> None:
    harness.send(request(client_address=address))  # type: ignore[arg-type]
    assert harness.replies() == DUNNO
    assert harness.hits == []
    assert harness.factory.malformed == 1
    harness.send(request())  # the connection goes on
    assert harness.replies() == DUNNO * 2
    assert len(harness.hits) == 1
    assert harness.factory.malformed == 1


def test_line_without_equals_makes_the_request_malformed(harness: Harness) -> None:
    harness.send(request().replace(b"protocol_name=ESMTP\n", b"garbage\n"))
    assert harness.replies() == DUNNO
    assert harness.hits == []
    assert harness.factory.malformed == 1


def test_blank_lines_between_requests_are_ignored(harness: Harness) -> None:
    harness.send(b"\n\n" + request() + b"\n" + request())
    assert harness.replies() == DUNNO * 2
    assert harness.factory.requests == 2


def test_crlf_from_a_hand_typed_client_is_tolerated(harness: Harness) -> None:
    harness.send(request().replace(b"\n", b"\r\n"))
    assert harness.replies() == DUNNO
    assert harness.hits[0].rcpt_to == "trap@example.org"
    assert harness.hits[0].helo == "mail.example.net"


def recording_logger() -> tuple[Logger, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    return Logger(observer=cast(ILogObserver, events.append)), events


DEFER = b"action=DEFER_IF_PERMIT Service temporarily unavailable\n\n"


@pytest.mark.parametrize(
    ("failing", "answer"),
    [
        ("is_trap", DUNNO),  # not known to be a trap hit: real mail must not wait
        ("submit", DEFER),  # a trap hit that was not kept: the sender tries again
    ],
)
def test_exceptions_from_callbacks_are_answered_and_logged_once(
    failing: str, answer: bytes
) -> None:
    def broken(_: object) -> Any:
        raise RuntimeError("database is down")

    h = make(**{failing: broken})
    log, events = recording_logger()
    h.factory.log = log
    h.send(request() + request())
    assert h.replies() == answer * 2
    assert not h.transport.disconnecting
    assert (h.factory.errors, h.factory.hits, h.factory.requests) == (2, 0, 2)
    assert h.factory.deferred == (2 if answer == DEFER else 0)
    assert len(events) == 1  # logged once, not per request
    failure = events[0]["log_failure"]
    assert isinstance(failure.value, RuntimeError)
    h.clock.advance(61)
    h.send(request())
    assert h.replies() == answer * 3
    assert len(events) == 2
    assert events[1]["unlogged"] == 1
    h.close()


def test_submit_failure_then_recovery_counts_hits() -> None:
    calls: list[TrapHit] = []

    def flaky(hit: TrapHit) -> None:
        calls.append(hit)
        if len(calls) == 1:
            raise OSError("queue full")

    h = make(submit=flaky)
    h.factory.log = recording_logger()[0]
    h.send(request() + request())
    assert h.replies() == DEFER + DUNNO
    assert (h.factory.errors, h.factory.hits, h.factory.deferred) == (1, 1, 1)
    h.close()


def waiting_harness() -> tuple[Harness, list[tuple[TrapHit, Deferred[bool]]]]:
    """A harness whose ``submit`` hands back a Deferred the test fires by hand."""
    waiting: list[tuple[TrapHit, Deferred[bool]]] = []

    def submit(hit: TrapHit) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()
        waiting.append((hit, d))
        return d

    return make(submit=submit), waiting


def test_trap_hit_is_answered_only_once_durable() -> None:
    h, waiting = waiting_harness()
    h.send(request(recipient="user@example.org"))
    assert h.replies() == DUNNO  # not a trap: at once
    h.send(request())
    assert h.replies() == DUNNO and len(waiting) == 1
    waiting[0][1].callback(True)
    assert h.replies() == DUNNO * 2
    h.send(request())
    waiting[1][1].callback(False)
    assert h.replies() == DUNNO * 2 + DEFER
    assert (h.factory.hits, h.factory.deferred, h.factory.errors) == (2, 1, 0)
    h.close()


def test_answers_keep_request_order_on_one_connection() -> None:
    h, waiting = waiting_harness()
    h.send(
        request(recipient="trap@example.org", queue_id="A")
        + request(recipient="user@example.org")
        + request(recipient="spamtrap@example.org", queue_id="C")
        + request(recipient="other@example.org")
    )
    assert h.replies() == b""  # the first answer waits, so every later one does
    waiting[1][1].callback(False)  # the third request's answer is ready first...
    assert h.replies() == b""
    waiting[0][1].callback(True)  # ...but goes out after the first two
    assert h.replies() == DUNNO + DUNNO + DEFER + DUNNO
    h.close()


def test_a_failed_durability_deferred_is_an_error_and_a_deferral() -> None:
    h, waiting = waiting_harness()
    h.factory.log = recording_logger()[0]
    h.send(request())
    waiting[0][1].errback(RuntimeError("bug"))
    assert h.replies() == DEFER
    assert (h.factory.errors, h.factory.deferred) == (1, 1)
    h.close()


def test_answer_after_the_peer_left_is_not_written() -> None:
    h, waiting = waiting_harness()
    h.send(request())
    h.close()
    waiting[0][1].callback(True)
    assert h.replies() == b""


def test_a_pipelining_peer_is_paused_until_answered() -> None:
    h, waiting = waiting_harness()
    h.send(request() * MAX_WAITING)
    assert h.transport.producerState == "paused"
    for _hit, d in waiting[: MAX_WAITING // 2 + 1]:
        d.callback(True)
    assert h.transport.producerState == "producing"
    assert h.replies() == DUNNO * (MAX_WAITING // 2 + 1)
    h.close()


def test_overlong_line_drops_the_connection(harness: Harness) -> None:
    harness.send(b"request=smtpd_access_policy\nhelo_name=" + b"x" * MAX_LINE + b"\n\n" + request())
    assert harness.transport.disconnecting
    assert harness.replies() == b""
    assert harness.hits == []


def test_overlong_unterminated_line_drops_the_connection(harness: Harness) -> None:
    harness.send(b"helo_name=", chunk=None)
    harness.send(b"x" * (MAX_LINE + 1), chunk=1000)
    assert harness.transport.disconnecting


def test_line_of_the_maximum_length_is_accepted(harness: Harness) -> None:
    helo = "h" * (MAX_LINE - len("helo_name="))
    harness.send(request(helo_name=helo))
    assert harness.replies() == DUNNO
    assert harness.hits[0].helo == helo
    assert not harness.transport.disconnecting


def test_too_many_attributes_drop_the_connection(harness: Harness) -> None:
    filler = b"".join(b"x%d=y\n" % n for n in range(MAX_ATTRIBUTES))
    harness.send(filler + request())
    assert harness.transport.disconnecting
    assert harness.replies() == b""
    assert harness.factory.requests == 0


def test_attribute_limit_is_per_request(harness: Harness) -> None:
    half = b"".join(b"x%d=y\n" % n for n in range(MAX_ATTRIBUTES // 2))
    harness.send((half + request()) * 3)
    assert not harness.transport.disconnecting
    assert harness.replies() == DUNNO * 3


def test_idle_connection_times_out(harness: Harness) -> None:
    harness.clock.advance(IDLE_TIMEOUT - 1)
    assert not harness.transport.disconnecting
    harness.send(request())  # activity restarts the timer
    harness.clock.advance(IDLE_TIMEOUT - 1)
    assert not harness.transport.disconnecting
    harness.clock.advance(1)
    assert harness.transport.disconnecting


def test_idle_timeout_outlasts_postfix_max_idle() -> None:
    assert IDLE_TIMEOUT > 300  # smtpd_policy_service_max_idle: Postfix closes first


def test_closed_connection_cancels_its_timer() -> None:
    h = make()
    assert len(h.clock.getDelayedCalls()) == 1
    h.close()
    assert h.clock.getDelayedCalls() == []
    h.clock.advance(IDLE_TIMEOUT * 2)
    assert not h.transport.disconnecting


def test_no_per_request_logging(harness: Harness) -> None:
    log, events = recording_logger()
    harness.factory.log = log
    harness.send(request() * 10 + request(client_address="bogus") + request(protocol_state="MAIL"))
    assert events == []


def read_json_line(stream: Any) -> dict[str, Any]:
    line = stream.readline()
    assert line, "policy server exited early"
    record: dict[str, Any] = json.loads(line)
    return record


@pytest.mark.slow
def test_real_tcp_socket_with_the_real_reactor() -> None:
    script = REPO / "tests" / "data" / "postfix" / "policy_server.py"
    process = subprocess.Popen(
        [sys.executable, str(script), "trap@example.org"],
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    try:
        assert process.stdout is not None
        port = read_json_line(process.stdout)["port"]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request(client_address="::ffff:198.51.100.7", sender=""))
            sock.sendall(request(recipient="user@example.org") + CAPTURED[:100])
            received = b""
            while received.count(b"\n\n") < 2:
                chunk = sock.recv(4096)
                assert chunk, "connection closed early"
                received += chunk
            sock.sendall(CAPTURED[100:])
            while received.count(b"\n\n") < 3:
                chunk = sock.recv(4096)
                assert chunk, "connection closed early"
                received += chunk
            assert received == DUNNO * 3
        hit = read_json_line(process.stdout)["hit"]
        assert hit["client_ip"] == "198.51.100.7"
        assert hit["rcpt_to"] == "trap@example.org"
        assert hit["mail_from"] == ""
        assert hit["feed"] == "policy"
        process.terminate()
        counters = read_json_line(process.stdout)["counters"]
        assert counters == {"requests": 3, "hits": 1, "malformed": 0, "errors": 0}
        process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=15)
        if process.stdout is not None:
            process.stdout.close()


def test_the_policy_feed_counts_a_utf8_recipient_of_a_punycode_trap() -> None:
    """Postfix passes an SMTPUTF8 recipient to the policy service in UTF-8."""
    matcher = TrapMatcher([parse_trap("@xn--bcher-kva.example"), parse_trap("trap@example.org")])
    harness = make(is_trap=matcher)
    try:
        harness.send(request(recipient="Spam@bücher.example"))
        harness.send(request(recipient="user@example.org"))
        assert harness.replies() == DUNNO * 2
        assert [hit.rcpt_to for hit in harness.hits] == ["spam@bücher.example"]
    finally:
        harness.close()
