"""Response rate limiting: the limiter's counting, the slip reply, its settings, a real server.

The server tests send a burst of UDP queries from one loopback address
(127.0.0.0/8 is all local, so 127.0.0.2 and 127.0.0.3 are distinct clients)
and count what comes back. A burst may straddle a second boundary, which
gives the prefix a fresh window, so they assert ranges, never rates.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rbl.config import RateLimitSettings
from rbl.dnsserver.ratelimit import ANSWER, DROP, SLIP, ResponseRateLimiter, slip_reply
from rbl.errors import ConfigError
from tests.support.dns_client import rev, wire
from tests.support.dns_zones import CONFIG, make_settings
from tests.support.server import RunningServer, start_server, stop_server

ZONE = "bl.example.org"
LISTED_NAME = f"2.0.0.127.{ZONE}."  # RFC 5782 test point: always listed


def header(qd: int = 1, flags: int = 0x0100) -> bytes:
    """A raw 12-byte header with ``qd`` questions and no other records."""
    return b"\x12\x34" + flags.to_bytes(2, "big") + qd.to_bytes(2, "big") + bytes(6)


QUESTION_A = b"\x01a\x00\x00\x01\x00\x01"  # a. IN A


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(clock: FakeClock | None = None, **overrides: object) -> ResponseRateLimiter:
    values: dict[str, object] = {"responses_per_second": 5, "slip": 2, "exempt": ()}
    values.update(overrides)
    made = ResponseRateLimiter(RateLimitSettings(**values), clock or FakeClock())  # type: ignore[arg-type]
    made.tick()
    return made


# -- the limiter ------------------------------------------------------------------------


def test_a_prefix_gets_its_limit_then_every_second_limited_packet_slips() -> None:
    rrl = limiter()
    verdicts = [rrl.check("192.0.2.1") for _ in range(11)]
    assert verdicts == [ANSWER] * 5 + [DROP, SLIP, DROP, SLIP, DROP, SLIP]


def test_each_of_n_processes_allows_its_share_and_keeps_it_on_reload() -> None:
    settings = RateLimitSettings(responses_per_second=10, slip=0, exempt=())
    rrl = ResponseRateLimiter(settings, FakeClock(), processes=3)
    rrl.tick()
    assert [rrl.check("192.0.2.1") for _ in range(5)] == [ANSWER] * 4 + [DROP]  # 10/3 up
    rrl.configure(RateLimitSettings(responses_per_second=20, slip=0, exempt=()))
    assert [rrl.check("192.0.2.1") for _ in range(8)] == [ANSWER] * 7 + [DROP]  # 20/3 up


def test_addresses_of_one_prefix_share_the_limit_and_other_prefixes_do_not() -> None:
    rrl = limiter()
    verdicts = [rrl.check(f"192.0.2.{i}") for i in range(1, 8)]
    assert verdicts.count(ANSWER) == 5  # one /24
    assert rrl.check("192.0.3.1") == ANSWER  # the next /24
    rrl = limiter(ipv4_prefix=32)
    assert all(rrl.check(f"192.0.2.{i}") == ANSWER for i in range(1, 50))


def test_ipv6_prefixes_and_mapped_ipv4() -> None:
    rrl = limiter(slip=0)
    same_56 = ["2001:db8:0:ff::1", "2001:db8:0:1::2", "2001:db8::3", "2001:db8:0:80::4"]
    assert [rrl.check(host) for host in same_56 * 2] == [ANSWER] * 5 + [DROP] * 3
    assert rrl.check("2001:db8:0:100::1") == ANSWER  # another /56
    assert rrl.check("fe80::1%eth0") == ANSWER  # a scope id does not break parsing
    # An IPv4 client on a dual-stack socket counts under its IPv4 /24.
    rrl = limiter(slip=0)
    for _ in range(5):
        assert rrl.check("198.51.100.1") == ANSWER
    assert rrl.check("::ffff:198.51.100.9") == DROP


def test_a_new_second_gives_every_prefix_a_fresh_window() -> None:
    clock = FakeClock(1000.2)
    rrl = limiter(clock, slip=0)
    assert [rrl.check("192.0.2.1") for _ in range(6)][-1] == DROP
    clock.now = 1000.9
    rrl.tick()
    assert rrl.check("192.0.2.1") == DROP  # same second
    clock.now = 1001.0
    rrl.tick()
    assert rrl.check("192.0.2.1") == ANSWER
    assert rrl.tracked == 1


def test_exempt_networks_are_never_limited_even_inside_a_limited_prefix() -> None:
    rrl = limiter(exempt=("192.0.2.128/25", "2001:db8::/32", "10.0.0.0/8"))
    for _ in range(100):
        assert rrl.check("192.0.2.200") == ANSWER
        assert rrl.check("2001:db8:1::1") == ANSWER
        assert rrl.check("10.1.2.3") == ANSWER
    # The other half of the /24 is not exempt, and exempt traffic used none of its credit.
    assert [rrl.check("192.0.2.1") for _ in range(6)].count(ANSWER) == 5


def test_the_default_exempts_loopback() -> None:
    rrl = ResponseRateLimiter(RateLimitSettings(responses_per_second=1), FakeClock())
    rrl.tick()
    assert all(rrl.check(host) == ANSWER for host in ["127.0.0.1", "::1"] * 50)
    assert [rrl.check("192.0.2.1") for _ in range(2)] == [ANSWER, DROP]


def test_slip_one_slips_every_limited_packet_and_zero_none() -> None:
    rrl = limiter(slip=1)
    assert [rrl.check("192.0.2.1") for _ in range(8)] == [ANSWER] * 5 + [SLIP] * 3
    rrl = limiter(slip=0)
    assert [rrl.check("192.0.2.1") for _ in range(8)] == [ANSWER] * 5 + [DROP] * 3


def test_configure_replaces_the_settings_at_run_time() -> None:
    rrl = limiter(slip=0)
    assert [rrl.check("192.0.2.1") for _ in range(6)][-1] == DROP
    rrl.configure(RateLimitSettings(responses_per_second=0))
    assert not rrl.enabled
    assert all(rrl.check("192.0.2.1") == ANSWER for _ in range(100))
    rrl.configure(RateLimitSettings(responses_per_second=2, slip=0, exempt=()))
    rrl.tick()
    assert [rrl.check("192.0.2.1") for _ in range(3)] == [ANSWER, ANSWER, DROP]


def test_a_random_source_flood_cannot_grow_the_table() -> None:
    rrl = ResponseRateLimiter(
        RateLimitSettings(responses_per_second=3, slip=0, exempt=("198.18.0.0/15",)),
        FakeClock(),
        max_clients=100,
    )
    rrl.tick()
    assert rrl.check("192.0.2.1") == ANSWER  # a prefix counted before the flood
    answered = sum(rrl.check(f"10.{i >> 8 & 255}.{i & 255}.1") == ANSWER for i in range(5000))
    assert rrl.tracked == 100
    # 99 flood prefixes got in before the table filled; the rest share one bucket of 3.
    assert answered == 99 + 3
    # Known prefixes keep their own count, and exempt addresses stay exempt.
    assert [rrl.check("192.0.2.77") for _ in range(3)] == [ANSWER, ANSWER, DROP]
    assert all(rrl.check("198.19.0.1") == ANSWER for _ in range(10))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 255)), max_size=200),
    st.integers(1, 6),
    st.integers(0, 3),
)
def test_per_prefix_totals_follow_the_rule(
    packets: list[tuple[int, int]], limit: int, slip: int
) -> None:
    """In one window a prefix with n packets gets min(n, limit) answers; every
    slip-th packet of the rest is slipped."""
    rrl = limiter(responses_per_second=limit, slip=slip)
    seen: dict[int, list[int]] = {}
    for prefix, host in packets:
        seen.setdefault(prefix, []).append(rrl.check(f"203.0.{prefix}.{host}"))
    for verdicts in seen.values():
        n = len(verdicts)
        over = max(0, n - limit)
        assert verdicts.count(ANSWER) == min(n, limit)
        assert verdicts.count(SLIP) == (over // slip if slip else 0)
        assert verdicts[: min(n, limit)] == [ANSWER] * min(n, limit)


# -- the slip reply ---------------------------------------------------------------------


def test_slip_reply_is_an_empty_truncated_answer_with_the_question() -> None:
    query = dns.message.make_query(rev("192.0.2.1"), "TXT", use_edns=0, want_dnssec=True)
    query.flags |= dns.flags.CD
    raw = slip_reply(query.to_wire())
    assert raw is not None
    reply = dns.message.from_wire(raw)
    assert reply.id == query.id
    assert reply.flags & (dns.flags.QR | dns.flags.AA | dns.flags.TC | dns.flags.RD) == (
        dns.flags.QR | dns.flags.AA | dns.flags.TC | dns.flags.RD
    )
    assert not reply.flags & (dns.flags.RA | dns.flags.AD | dns.flags.CD)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.question == query.question
    assert not reply.answer and not reply.authority and not reply.additional
    assert reply.edns == -1
    no_rd = dns.message.make_query(rev("192.0.2.1"), "A")
    no_rd.flags &= ~dns.flags.RD
    assert not dns.message.from_wire(slip_reply(no_rd.to_wire()) or b"").flags & dns.flags.RD


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        b"\x12\x34\x01\x00\x00\x01\x00\x00",  # runt
        wire(rev("192.0.2.1"))[:-3],  # question cut short
        header() + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",  # bad label length
        header() + b"\x01a\xc0\x0c" + b"\x00\x01\x00\x01",  # compressed question
        header(qd=2) + QUESTION_A * 2,  # two questions
        header(qd=0),
        header(flags=0x8000) + QUESTION_A,  # a response
        header() + b"\x01a\x01b",  # no root label
        header() + QUESTION_A[:-1],  # no complete QCLASS
    ],
)
def test_slip_reply_drops_what_it_cannot_echo(packet: bytes) -> None:
    assert slip_reply(packet) is None


@given(st.binary(max_size=80))
def test_slip_reply_never_fails_on_junk(packet: bytes) -> None:
    raw = slip_reply(packet)
    if raw is not None:
        assert dns.message.from_wire(raw).flags & dns.flags.TC


# -- settings ---------------------------------------------------------------------------


def dns_config(**tables: dict[str, object]) -> dict[str, object]:
    """The helpers' two-zone configuration with these [dns] subtables."""
    return {**CONFIG, "dns": dict(tables)}


def test_rate_limit_settings_defaults_and_values() -> None:
    assert make_settings().dns.rate_limit == RateLimitSettings(
        responses_per_second=2000,
        slip=2,
        ipv4_prefix=24,
        ipv6_prefix=56,
        exempt=("127.0.0.0/8", "::1/128"),
    )
    given_settings = make_settings(
        dns_config(
            rate_limit={
                "responses_per_second": 0,
                "slip": 1,
                "ipv4_prefix": 32,
                "ipv6_prefix": 64,
                "exempt": [],
            }
        )
    ).dns.rate_limit
    assert given_settings == RateLimitSettings(0, 1, 32, 64, ())


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"responses_per_second": -1}, "responses_per_second -1 is outside 0..1000000000"),
        ({"responses_per_second": "many"}, "responses_per_second must be a int, not 'many'"),
        ({"responses_per_second": True}, "responses_per_second must be a int, not True"),
        ({"slip": 11}, "slip 11 is outside 0..10"),
        ({"ipv4_prefix": 33}, "ipv4_prefix 33 is outside 0..32"),
        ({"ipv6_prefix": 129}, "ipv6_prefix 129 is outside 0..128"),
        ({"exempt": "127.0.0.0/8"}, "exempt must be a list of addresses or CIDR networks"),
        ({"exempt": ["10.0.0.0/33"]}, "exempt entry '10.0.0.0/33'"),
        ({"burst": 5}, "unknown setting(s) burst"),
    ],
)
def test_rate_limit_settings_errors_name_the_key_and_value(
    table: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(dns_config(rate_limit=table))
    assert "[dns.rate_limit]" in str(caught.value)
    assert message in str(caught.value)


# -- a real server ----------------------------------------------------------------------

LIMIT = 20
BURST = 3 * LIMIT


def serve_limited(config: Path, limit: int, slip: int) -> Iterator[RunningServer]:
    """``rbl serve`` limiting each loopback address (a /32) except 127.0.0.4."""
    text = config.read_text()
    config.write_text(
        text.replace(
            'listen = ["127.0.0.1:0"]\n',
            'listen = ["127.0.0.1:0"]\n\n'
            "[dns.rate_limit]\n"
            f"responses_per_second = {limit}\n"
            f"slip = {slip}\n"
            "ipv4_prefix = 32\n"
            'exempt = ["127.0.0.4/32"]\n',
            1,
        )
    )
    server = start_server(config)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def limited_server(config_path: Path) -> Iterator[RunningServer]:
    yield from serve_limited(config_path, LIMIT, 2)


@pytest.fixture
def slip_always_server(config_path: Path) -> Iterator[RunningServer]:
    yield from serve_limited(config_path, 1, 1)


def burst(server: RunningServer, source: str, count: int) -> list[dns.message.Message]:
    """Send ``count`` queries at once from ``source`` and collect the replies that come."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        # Start early in a second so the burst most likely falls into one window.
        while time.monotonic() % 1.0 > 0.3:
            time.sleep(0.01)
        for i in range(count):
            query = dns.message.make_query(LISTED_NAME, "A", id=i)
            sock.sendto(query.to_wire(), (server.host, server.port))
        replies: list[dns.message.Message] = []
        sock.settimeout(1.0)  # a second of silence: whatever is missing was dropped
        while len(replies) < count:
            try:
                data = sock.recv(4096)
            except TimeoutError:
                break
            replies.append(dns.message.from_wire(data))
        return replies


def split(replies: list[dns.message.Message]) -> tuple[int, int]:
    answered = [r for r in replies if not r.flags & dns.flags.TC]
    slipped = [r for r in replies if r.flags & dns.flags.TC]
    for reply in answered:
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer
    for reply in slipped:
        assert reply.rcode() == dns.rcode.NOERROR
        assert not reply.answer and not reply.authority
        assert str(reply.question[0].name) == LISTED_NAME
    return len(answered), len(slipped)


@pytest.mark.slow
def test_server_drops_over_the_limit_and_slips_every_second(limited_server: RunningServer) -> None:
    replies = burst(limited_server, "127.0.0.2", BURST)
    answered, slipped = split(replies)
    assert len({r.id for r in replies}) == len(replies)
    # One window: 20 answers, 20 slipped, 20 dropped. Straddling two windows:
    # at most 2 x 20 answers, and at least half of the rest slipped.
    assert LIMIT <= answered <= 2 * LIMIT
    assert (BURST - answered) // 2 - 1 <= slipped <= (BURST - answered + 1) // 2
    assert answered + slipped < BURST  # some were dropped


@pytest.mark.slow
def test_other_clients_and_exempt_ones_are_unaffected(limited_server: RunningServer) -> None:
    limited = burst(limited_server, "127.0.0.2", BURST)
    # Right after, in the same second: another address (its own /32) is answered,
    query = dns.message.make_query(LISTED_NAME, "A")
    reply = dns.query.udp(
        query, limited_server.host, port=limited_server.port, timeout=3, source="127.0.0.3"
    )
    assert reply.rcode() == dns.rcode.NOERROR and not reply.flags & dns.flags.TC
    # and an exempt address gets every answer.
    exempt = burst(limited_server, "127.0.0.4", BURST)
    assert split(exempt) == (BURST, 0)
    assert split(limited)[0] <= 2 * LIMIT


@pytest.mark.slow
def test_a_slipped_client_gets_its_answer_over_tcp(slip_always_server: RunningServer) -> None:
    """One answer a second over UDP, every other query slipped: a real client still gets all."""
    server = slip_always_server
    used = []
    for _ in range(6):
        query = dns.message.make_query(LISTED_NAME, "A")
        reply, used_tcp = dns.query.udp_with_fallback(
            query, server.host, port=server.port, timeout=3, source="127.0.0.5"
        )
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer
        used.append(used_tcp)
    assert True in used  # six queries cannot each fall into a new second
