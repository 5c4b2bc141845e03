"""The public site under abuse, through the real HTTP parser, on SQLite and PostgreSQL.

Oversize and slow requests are refused by the channel before the site sees
them; floods of forms and lookups end in 403, 429 or 503, never in database
rows or a false "not listed"; bad input anywhere is a 4xx page naming what
was wrong; and no route but ``POST /remove/...`` changes the database,
whatever the method. Bytes are fed into the Site's channel over a
StringTransport and the clock is a ``task.Clock``, so deadlines are exact.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.testing import StringTransport
from twisted.web.server import Site

from rbl.store.database import open_engine
from rbl.store.schema import metadata, removal_requests
from rbl.store.website import SiteStore
from rbl.web.limits import (
    MAX_BODY,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_REQUEST_LINE,
    LimitedSite,
    client_network,
)
from rbl.web.site import make_site
from tests.web.test_site import (
    CLIENT,
    NOW,
    PROXY,
    SPARE,
    Web,
    make_settings,
    seed,
    synchronous,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def build_web(
    database_url: str,
    run: Callable[..., defer.Deferred[Any]] = synchronous,
    *,
    max_db_jobs: int = 50,
    delisting: dict[str, Any] | None = None,
    **web: object,
) -> Web:
    site_settings = make_settings(**web)
    if delisting:
        site_settings = replace(
            site_settings, delisting=replace(site_settings.delisting, **delisting)
        )
    engine = open_engine(database_url)
    seed(engine, site_settings)
    clock = task.Clock()
    clock.advance(NOW.timestamp())
    site = make_site(
        site_settings, SiteStore(engine), run, clock, b"k" * 32, max_db_jobs=max_db_jobs
    )
    return Web(site, clock, engine, site_settings)


@pytest.fixture
def web(database_url: str) -> Iterator[Web]:
    built = build_web(database_url)
    yield built
    built.engine.dispose()


def snapshot(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table, as text, to compare before and after."""
    with engine.connect() as conn:
        return {
            table.name: sorted(repr(tuple(row)) for row in conn.execute(select(table)))
            for table in metadata.sorted_tables
        }


def request_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(removal_requests)).scalar_one())


class Connection:
    """One channel of the site over a StringTransport, fed raw bytes."""

    def __init__(self, site: Site, peer: str = CLIENT) -> None:
        protocol = site.buildProtocol(IPv4Address("TCP", peer, 40000))
        assert protocol is not None
        self.protocol = protocol
        self.transport = StringTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
            peerAddress=IPv4Address("TCP", peer, 40000),
        )
        protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    @property
    def answer(self) -> bytes:
        return self.transport.value()

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)

    def lose(self) -> None:
        self.protocol.connectionLost(None)


def status_of(answer: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert match, answer[:200]
    return int(match.group(1))


# -- 1. oversize and slow requests ----------------------------------------------------------


def test_a_declared_oversize_body_is_refused_before_it_is_read(web: Web) -> None:
    before = snapshot(web.engine)
    fields = urlencode({**web.form("45.1.2.3"), "message": "m"}).encode()
    conn = Connection(web.site)
    conn.send(
        b"POST /remove/45.1.2.3 HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Expect: 100-continue\r\nContent-Length: 104857600\r\n\r\n"
    )
    # Answered as soon as the headers ended: no "100 Continue", the write side shut.
    assert status_of(conn.answer) == 413
    assert b"100 Continue" not in conn.answer
    assert b"at most 16 KiB" in conn.answer and b"Connection: close" in conn.answer
    assert conn.closed
    answered = conn.answer
    for _ in range(64):  # the client sends its 100 MB anyway: nothing is kept or answered
        conn.send(fields + b"x" * 65536)
    assert conn.answer == answered
    assert conn.protocol._channel._dataBuffer == []  # type: ignore[attr-defined]
    conn.lose()
    assert snapshot(web.engine) == before


def test_a_chunked_body_is_cut_off_at_the_limit(web: Web) -> None:
    fields = urlencode({**web.form("45.1.2.3"), "message": "m"}).encode()
    before = snapshot(web.engine)
    conn = Connection(web.site)
    conn.send(
        b"POST /remove/45.1.2.3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
    )
    conn.send(b"%x\r\n%s\r\n" % (len(fields), fields))
    sent = len(fields)
    while not conn.answer:
        conn.send(b"1000\r\n" + b"&" * 4096 + b"\r\n")
        sent += 4096
        assert sent < 10 * MAX_BODY, "never refused"
    assert sent <= MAX_BODY + 4096
    assert status_of(conn.answer) == 413 and conn.closed
    conn.send(b"0\r\n\r\n")  # the end of the body: still no second answer, no request made
    assert conn.answer.count(b"HTTP/1.1") == 1
    conn.lose()
    assert snapshot(web.engine) == before


@pytest.mark.parametrize(
    ("head", "status", "problem"),
    [
        (b"GET /lookup?q=" + b"1" * MAX_REQUEST_LINE + b" HTTP/1.1\r\n\r\n", 414, b"request line"),
        (b"GET /" + b"a" * 3 * MAX_HEADER_BYTES, 414, b"request line"),  # never ends
        (
            b"GET / HTTP/1.1\r\n" + b"X-Big: " + b"b" * MAX_HEADER_BYTES + b"\r\n\r\n",
            431,
            b"headers are larger",
        ),
        (
            b"GET / HTTP/1.1\r\n" + b"X-Many: 1\r\n" * (MAX_HEADERS + 1) + b"\r\n",
            431,
            b"header lines",
        ),
        (b"GET / HTTP/1.1\r\n" + b"X: " + b"c" * 3 * MAX_HEADER_BYTES, 431, b"larger"),
        (b"POST /remove/x HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400, b"malformed"),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400, b"malformed"),
        (b"NONSENSE\r\n\r\n", 400, b"malformed"),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400, b"malformed"),
    ],
)
def test_oversize_or_malformed_heads_get_a_reason_and_a_closed_connection(
    web: Web, head: bytes, status: int, problem: bytes
) -> None:
    conn = Connection(web.site)
    conn.send(head)
    assert status_of(conn.answer) == status
    assert problem in conn.answer
    assert b"Traceback" not in conn.answer and conn.closed
    conn.lose()


def test_a_client_trickling_its_headers_is_dropped_at_the_deadline(web: Web) -> None:
    deadline = web.settings.web.request_timeout
    conn = Connection(web.site)
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
    for _ in range(int(deadline) - 1):  # a byte a second keeps the idle timer from firing
        web.clock.advance(1)
        conn.send(b"X")
        assert not conn.answer
    web.clock.advance(1.5)
    assert status_of(conn.answer) == 408 and conn.closed
    assert b"not complete within 20 seconds" in conn.answer
    conn.lose()
    assert not web.clock.getDelayedCalls()  # no timer outlives the connection


def test_the_deadline_restarts_for_each_request_on_a_kept_alive_connection(web: Web) -> None:
    conn = Connection(web.site)
    for _ in range(3):
        web.clock.advance(12)
        conn.send(b"GET /static/site.css HTTP/1.1\r\nHost: x\r\n\r\n")
    assert conn.answer.count(b"HTTP/1.1 200 OK") == 3 and not conn.closed
    conn.send(b"GET / HTTP/1.1\r\n")  # and then stalls
    web.clock.advance(web.settings.web.request_timeout + 1)
    assert conn.answer.count(b"HTTP/1.1 408") == 1 and conn.closed
    conn.lose()


def test_total_connections_are_bounded(web: Web) -> None:
    site = web.site
    assert isinstance(site, LimitedSite)
    site.max_connections = 3
    open_ = [Connection(site) for _ in range(3)]
    assert site.open_connections == 3
    refused = Connection(site)
    assert status_of(refused.answer) == 503 and refused.closed
    assert b"Retry-After: 10" in refused.answer and b"Too many connections" in refused.answer
    refused.send(b"GET / HTTP/1.1\r\n\r\n")  # read and dropped, not served
    assert refused.answer.count(b"HTTP/1.1") == 1
    refused.lose()
    open_[0].lose()
    assert site.open_connections == 2
    served = Connection(site)
    served.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(served.answer) == 200
    assert site.refused_connections == 1


def test_connections_per_client_are_capped_while_others_are_served(web: Web) -> None:
    site = web.site
    assert isinstance(site, LimitedSite)
    assert site.max_per_client == 20  # the default
    site.max_per_client = 3
    held = [Connection(site, peer="198.51.100.7") for _ in range(3)]
    # A fourth from the same address is closed at once: no protocol, nothing read or sent.
    assert site.buildProtocol(IPv4Address("TCP", "198.51.100.7", 40001)) is None
    assert site.refused_per_client == 1
    # A neighbour in the same /24 and any other client are still served.
    for peer in ("198.51.100.8", "203.0.113.9"):
        other = Connection(site, peer=peer)
        other.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(other.answer) == 200, peer
        other.lose()
    held[0].lose()
    again = Connection(site, peer="198.51.100.7")  # the freed slot is the client's again
    again.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(again.answer) == 200
    assert site.per_client == {"198.51.100.7/32": 3}
    for connection in [*held[1:], again]:
        connection.lose()
    assert site.per_client == {} and site.open_connections == 0


def test_an_ipv6_client_is_capped_per_64_and_a_trusted_proxy_not_at_all(web: Web) -> None:
    site = web.site
    assert isinstance(site, LimitedSite)
    site.max_per_client = 2
    for host in ("2001:db8:1:2::1", "2001:db8:1:2:ffff::7"):
        site.buildProtocol(IPv6Address("TCP", host, 40000)).makeConnection(
            StringTransport(peerAddress=IPv6Address("TCP", host, 40000))
        )
    assert site.buildProtocol(IPv6Address("TCP", "2001:db8:1:2::99", 40000)) is None
    assert site.buildProtocol(IPv6Address("TCP", "2001:db8:1:3::1", 40000)) is not None
    proxies = [Connection(site, peer=PROXY) for _ in range(5)]  # [web] trusted_proxies
    assert all(not connection.closed for connection in proxies)
    assert PROXY not in str(site.per_client)


@pytest.mark.parametrize(
    ("host", "v4", "v6", "network"),
    [
        ("198.51.100.77", 24, 64, "198.51.100.0/24"),
        ("198.51.100.77", 32, 64, "198.51.100.77/32"),
        ("2001:db8:1:2:3:4:5:6", 24, 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:3:4:5:6", 24, 48, "2001:db8:1::/48"),
        ("::ffff:198.51.100.77", 24, 64, "198.51.100.0/24"),  # IPv4-mapped counts as IPv4
        ("fe80::1%eth0", 24, 64, "fe80::/64"),
        ("unknown", 24, 64, "unknown"),
    ],
)
def test_client_network(host: str, v4: int, v6: int, network: str) -> None:
    assert client_network(host, v4, v6) == network


# -- 2. floods ------------------------------------------------------------------------------


def test_lookups_beyond_the_database_jobs_in_flight_get_503_not_a_guess(
    database_url: str,
) -> None:
    pending: list[tuple[defer.Deferred[Any], Callable[..., Any], tuple[Any, ...]]] = []

    def queued(function: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        pending.append((d, function, args))
        return d

    web = build_web(database_url, queued, max_db_jobs=3)
    conns = [Connection(web.site) for _ in range(5)]
    for conn in conns:
        conn.send(b"GET /lookup/45.9.9.9 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert len(pending) == 3 and [c.answer for c in conns[:3]] == [b"", b"", b""]
    for conn in conns[3:]:
        assert status_of(conn.answer) == 503
        assert b"retry-after: 5" in conn.answer.lower()
        assert b"not listed" not in conn.answer and b"Too many lookups" in conn.answer
    d, function, args = pending.pop(0)
    d.callback(function(*args))
    assert status_of(conns[0].answer) == 200 and b"not listed" in conns[0].answer
    again = Connection(web.site)  # a slot is free again
    again.send(b"GET /lookup/45.1.2.3 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert len(pending) == 3 and again.answer == b""
    for d, _function, _args in pending:
        d.errback(RuntimeError("gone"))
    assert status_of(again.answer) == 503 and b"Try again later" in again.answer
    web.engine.dispose()


def test_every_post_without_a_valid_token_is_403_and_changes_nothing(web: Web) -> None:
    good = web.form("45.1.2.3")
    other_client = web.form("45.1.2.3", peer="203.0.113.5")
    web.clock.advance(1)
    used = web.form("45.1.2.3")
    assert web.post("/remove/45.1.2.3", {**used, "message": "first"}).status == 303
    before = snapshot(web.engine)
    issued, nonce, mac = good["csrf"].split(".")
    cases: dict[str, dict[str, str] | bytes] = {
        "missing": {"zone": "bl.example.org"},
        "empty": {**good, "csrf": ""},
        "forged mac": {**good, "csrf": f"{issued}.{nonce}.{'0' * 40}"},
        "other nonce": {**good, "csrf": f"{issued}.{'a' * 16}.{mac}"},
        "future": {**good, "csrf": f"{int(issued) + 7200}.{nonce}.{mac}"},
        "garbage": {**good, "csrf": "x.y"},
        "overlong": {**good, "csrf": good["csrf"] + "0" * 500},
        "issued to another client": other_client,
        "replayed after use": used,
        "not ascii": b"csrf=%E2%82%AC&message=m",
        "not utf-8": b"csrf=%FF%FE&message=m",
        "key not even valid": {**good, "csrf": "nope"},
    }
    for name, fields in cases.items():
        body = fields if isinstance(fields, bytes) else urlencode({"message": "m", **fields})
        path = "/remove/bad!key" if name == "key not even valid" else "/remove/45.1.2.3"
        page = web.request("POST", path, body.encode() if isinstance(body, str) else body, FORM)
        assert page.status == 403, name
        assert "did not come from this site" in page.body or "already sent once" in page.body
        if name != "key not even valid":
            assert 'name="csrf"' in page.body, name  # the form again, with a fresh token
    replay = web.post("/remove/45.1.2.3", {**used, "message": "again"})
    assert "This form was already sent once" in replay.body
    web.clock.advance(3601)
    expired = web.post("/remove/45.1.2.3", {**good, "message": "late"})
    assert expired.status == 403 and "expired" in expired.body
    assert snapshot(web.engine) == before


def test_a_flood_of_posts_is_429_after_the_limit_and_writes_nothing(web: Web) -> None:
    limit = web.settings.web.requests_per_hour
    statuses = [web.ask_removal("45.3.0.0/24", message=f"try {i}").status for i in range(limit)]
    assert statuses == [303] * limit
    before = snapshot(web.engine)
    assert request_count(web.engine) == limit  # each one kept, with its own message
    for i in range(40):
        page = web.ask_removal(["45.1.2.3", "spam.example", SPARE][i % 3], message=f"flood {i}")
        assert page.status == 429
        assert 0 < int(page.header("retry-after")) <= 3600
    assert snapshot(web.engine) == before


# -- 3. bad input ---------------------------------------------------------------------------

LONG = "y" * 5000


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "problem"),
    [
        ("GET", "/lookup?q=%FF%FE", None, 400, "q field is not valid UTF-8"),
        ("GET", "/lookup?q=45.1.2.3%00", None, 400, "U+0000"),
        ("GET", "/lookup?q=bad%1B%5B31mname.example", None, 400, "U+001B"),
        ("GET", "/lookup?q=%E2%80%AEevil.example", None, 400, "U+202E"),
        ("GET", "/lookup?q=" + LONG[:1000], None, 400, "longer than 300"),
        ("GET", "/lookup?q=", None, 400, "Enter an IP address or a domain name"),
        ("GET", "/lookup?q=@", None, 400, "is not a domain name"),
        ("GET", "/lookup?q=1.2.3.4.5", None, 400, "1.2.3.4.5"),
        ("GET", "/lookup?q=::/0", None, 400, "wider than"),
        ("GET", "/lookup/%FF", None, 400, "The address is not valid UTF-8"),
        ("GET", "/lookup/a%00b.example", None, 400, "characters other than"),
        ("GET", "/lookup/" + LONG[:400], None, 400, "longer than 300"),
        ("GET", "/lookup/45.1.2.3/99", None, 400, "not an IP address"),
        ("GET", "/remove/45.1.2.3?zone=%00", None, 400, "zone field contains the control"),
        ("GET", "/remove/45.1.2.3?zone=%FF", None, 400, "zone field is not valid UTF-8"),
        ("GET", "/remove/45.1.2.3?zone=" + LONG[:1000], None, 400, "1000-character name"),
        ("GET", "/remove/45.1.2.3?zone=nope.example", None, 400, "is not a ip zone"),
        ("GET", "/remove/not..valid", None, 400, "not a domain name"),
        ("GET", "/request/..%2F..%2Fetc%2Fpasswd", None, 404, "no removal request"),
        ("GET", "/request/" + "A" * 65, None, 404, "no removal request"),
        ("GET", "/request/%00", None, 404, "no removal request"),
        ("GET", "/static/..%2Fsite.py", None, 404, "Not found"),
        ("GET", "/static/../templates/base.html", None, 404, "Not found"),
        ("GET", "/static/site.css/x", None, 404, "Not found"),
        ("GET", "/static/%2e%2e/limits.py", None, 404, "Not found"),
        ("GET", "/nope", None, 404, "Not found"),
        ("GET", "/remove", None, 404, "Not found"),
        ("POST", "/remove/45.1.2.3", "message=x%00y", 400, "message field contains the control"),
        ("POST", "/remove/45.1.2.3", "message=%FF", 400, "message field is not valid UTF-8"),
        ("POST", "/remove/45.1.2.3", "message=x&email=a%0Ab%40c.example", 400, "U+000A"),
        ("POST", "/remove/45.1.2.3", "message=x&email=%FF", 400, "email field is not valid"),
        ("POST", "/remove/45.1.2.3", "message=x&email=no-at", 400, "look like an email"),
        ("POST", "/remove/45.1.2.3", "message=" + LONG, 400, "at most 4000"),
        ("POST", "/remove/45.1.2.3", "message=", 400, "the message is required"),
        ("POST", "/remove/45.1.2.3", "message=x&zone=%1B", 400, "U+001B"),
        ("POST", "/remove/45.1.2.3", "message=x&zone=dbl.example.org", 400, "not a ip zone"),
        ("GET", "/lookup?q=45.1.2.3&q=%FF", None, 303, ""),  # the first value counts
    ],
)
def test_bad_input_is_a_4xx_page_naming_what_was_wrong(
    web: Web, method: str, path: str, body: str | None, status: int, problem: str
) -> None:
    before = snapshot(web.engine)
    data = b""
    if body is not None:
        token = quote(web.token())
        data = f"csrf={token}&{body}".encode()
    page = web.request(method, path, data, FORM if body is not None else None)
    assert page.status == status, page.body
    assert problem in page.body.replace("&#39;", "'"), page.body
    assert "Traceback" not in page.body
    assert snapshot(web.engine) == before


text_fields = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=400
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=text_fields)
def test_any_lookup_text_is_a_redirect_or_a_400(web: Web, query: str) -> None:
    page = web.get("/lookup?" + urlencode({"q": query}))
    assert page.status in (303, 400), (query, page.status)
    if page.status == 303:
        assert web.get(page.header("location")).status in (200, 301)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(message=text_fields, email=text_fields, zone=text_fields)
def test_any_form_text_is_answered_without_a_server_error(
    web: Web, message: str, email: str, zone: str
) -> None:
    page = web.post(
        "/remove/45.1.2.3",
        {"csrf": web.token(), "message": message, "email": email, "zone": zone},
    )
    assert page.status in (303, 400, 429), (message, email, zone, page.status)


# -- 4. nothing but POST /remove/... changes the database -----------------------------------

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


def test_only_post_remove_changes_the_database(database_url: str, tmp_path: Path) -> None:
    from rbl.dumps.resource import mount_dumps

    web = build_web(database_url, requests_per_hour=1000)
    (tmp_path / "dumps").mkdir()
    (tmp_path / "dumps" / "bl.example.org.txt").write_text("45.1.2.3\n")
    web.site.resource = mount_dumps(web.site.resource, tmp_path / "dumps")
    created = web.ask_removal("45.3.0.0/24")
    assert created.status == 303
    routes = {
        "/": ("GET",),
        "/lookup": ("GET",),
        "/lookup?q=45.1.2.3": ("GET",),
        "/lookup/45.1.2.3": ("GET",),
        "/lookup/spam.example": ("GET",),
        "/remove/45.1.2.3": ("GET", "POST"),
        "/remove/spam.example": ("GET", "POST"),
        created.header("location"): ("GET",),
        "/static/site.css": ("GET",),
        "/dumps/bl.example.org.txt": ("GET",),
        "/nope": (),
    }
    changed = []
    for path, allowed in routes.items():
        for method in METHODS:
            fields = {"csrf": web.token(), "message": "please", "zone": "", "email": ""}
            if "spam.example" in path:
                fields["zone"] = "dbl.example.org"
            before = snapshot(web.engine)
            page = web.request(method, path, urlencode(fields).encode(), FORM)
            if snapshot(web.engine) != before:
                changed.append((method, path.split("?")[0]))
            assert page.status < 500, (method, path, page.body)
            if path == "/nope":
                assert page.status == 404
            elif method in allowed or (method == "HEAD" and "GET" in allowed):
                assert page.status in (200, 303) or path == "/lookup", (method, path, page.status)
            else:
                assert page.status == 405, (method, path, page.status)
                allow = {m.strip() for m in page.header("allow").split(",")}
                assert set(allowed) <= allow and method not in allow, (method, path)
    assert changed == [("POST", "/remove/45.1.2.3"), ("POST", "/remove/spam.example")]
    web.engine.dispose()


@pytest.mark.parametrize(
    ("web", "problem"),
    [
        ({"max_connections": 0}, "max_connections 0 is outside 1..100000"),
        ({"max_connections": "many"}, "max_connections must be a int"),
        ({"request_timeout": 0.5}, "request_timeout 0.5s is outside 1..300"),
        ({"request_timeout": True}, "request_timeout must be a number"),
        ({"max_connections_per_client": 0}, "max_connections_per_client 0 is outside 1..100000"),
        ({"connection_ipv6_prefix": 129}, "connection_ipv6_prefix 129 is outside 0..128"),
        ({"removal_ipv4_prefix": 33}, "removal_ipv4_prefix 33 is outside 0..32"),
        ({"removal_ipv6_prefix": "64"}, "removal_ipv6_prefix must be a int"),
        ({"requests_per_hour": 0}, "requests_per_hour 0 is outside 1..10000"),
    ],
)
def test_web_limits_are_checked_in_the_configuration(web: dict[str, object], problem: str) -> None:
    from rbl.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(problem)):
        make_settings(**web)
    defaults = make_settings().web
    assert (defaults.max_connections, defaults.request_timeout) == (200, 20.0)
    assert defaults.max_connections_per_client == 20
    assert (defaults.removal_ipv4_prefix, defaults.removal_ipv6_prefix) == (24, 64)
    assert (defaults.connection_ipv4_prefix, defaults.connection_ipv6_prefix) == (32, 64)
