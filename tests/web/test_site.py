"""The public site against a real SQLite store, through the real HTTP parser.

Requests are fed as raw bytes into the Site's HTTPChannel over a
StringTransport, so headers, body limits and status lines are the real ones;
``run`` is synchronous, so every response is complete when ``dataReceived``
returns. The clock is a ``task.Clock`` (tokens, rate limit, "now").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from twisted.internet import defer, task
from twisted.internet.testing import MemoryReactorClock

from rbl.config import PrefixSettings, Settings
from rbl.model.traphit import TrapHit
from rbl.model.traps import TrapMatcher, parse_trap
from rbl.policy.allowlist import Allowlist
from rbl.policy.listing import Rules
from rbl.store.database import open_engine
from rbl.store.evidence import record_hits
from rbl.store.traps import add_trap
from rbl.store.website import SiteStore
from rbl.web.chart import hits_chart
from rbl.web.limits import MAX_BODY
from rbl.web.service import WebService
from rbl.web.site import make_site
from tests.support.web_site import (
    NOW,
    PROXY,
    TRAP,
    Web,
    make_settings,
    seed,
    synchronous,
)


def build(
    tmp_path: Path,
    settings: Settings | None = None,
    run: Callable[..., defer.Deferred[Any]] = synchronous,
) -> Web:
    settings = settings or make_settings()
    engine = open_engine(f"sqlite:///{tmp_path}/rbl.sqlite")
    seed(engine, settings)
    clock = task.Clock()
    clock.advance(NOW.timestamp())
    site = make_site(settings, SiteStore(engine), run, clock, b"s" * 32)
    return Web(site, clock, engine, settings)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    built = build(tmp_path)
    yield built
    built.engine.dispose()


def test_home_page_explains_the_zones_and_codes(web: Web) -> None:
    page = web.get("/")
    assert page.status == 200
    assert page.header("content-type") == "text/html; charset=utf-8"
    assert "Example &lt;Trap&gt; List" in page.body  # the title, escaped
    assert "abuse desk, +1 555 0100" in page.body
    for text in ("bl.example.org", "dbl.example.org", "127.0.0.3", "snowshoe network"):
        assert text in page.body
    assert "domain seen in trap mail" in page.body
    assert 'action="/lookup"' in page.body


def test_every_response_carries_the_security_headers(web: Web) -> None:
    for page in (web.get("/"), web.get("/nope"), web.request("PUT", "/")):
        csp = page.header("content-security-policy")
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert page.header("x-content-type-options") == "nosniff"
        assert page.header("referrer-policy") == "no-referrer"
        assert page.header("x-frame-options") == "DENY"


@pytest.mark.parametrize(
    ("query", "location"),
    [
        ("45.1.2.3", "/lookup/45.1.2.3"),
        ("  45.1.2.3 ", "/lookup/45.1.2.3"),
        ("2001:DB8::1", "/lookup/2001:db8::1"),
        ("45.3.0.0/24", "/lookup/45.3.0.0/24"),
        ("Spam.Example.", "/lookup/spam.example"),
        ("bücher.example", "/lookup/xn--bcher-kva.example"),
    ],
)
def test_lookup_normalises_and_redirects(web: Web, query: str, location: str) -> None:
    page = web.get("/lookup?" + urlencode({"q": query}))
    assert page.status == 303
    assert page.header("location") == location


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("", "Enter an IP address or a domain name"),
        ("999.1.2.3", "not an IP address"),
        ("45.1.2.3/16x", "not an IP address"),
        ("45.1.2.3/24", "host bits set"),
        ("exa mple.com", "contains spaces"),
        ("bad!name.example", "characters other than"),
        ("x" * 400, "longer than 300"),
    ],
)
def test_lookup_of_bad_input_is_a_400_naming_it(web: Web, query: str, problem: str) -> None:
    page = web.get("/lookup?" + urlencode({"q": query}))
    assert page.status == 400
    assert problem in page.body
    if query.strip() and len(query) < 300:
        assert query.replace("!", "!") in page.body.replace("&#39;", "'")


def test_a_non_canonical_lookup_path_redirects(web: Web) -> None:
    page = web.get("/lookup/SPAM.example")
    assert page.status == 301
    assert page.header("location") == "/lookup/spam.example"
    assert web.get("/lookup/45.1.2.03").status == 400


def test_status_page_of_a_listed_address(web: Web) -> None:
    page = web.get("/lookup/45.1.2.3")
    assert page.status == 200
    body = page.body
    assert "<code>bl.example.org</code>" in body
    assert '<span class="state listed">listed</span>' in body
    assert "<code>127.0.0.2</code> spam trap hits" in body
    assert "Trap hits</dt><dd>3</dd>" in body
    # Dates from the evidence are days: minutes would mark which message hit a trap.
    assert "First seen</dt><dd>2026-11-20</dd>" in body
    assert "Last seen</dt><dd>2026-11-23</dd>" in body
    assert "Expires</dt><dd>2026-11-30</dd>" in body
    assert "11:00" not in body
    assert 'href="/remove/45.1.2.3?zone=bl.example.org"' in body
    # The evidence: counts per day with a text alternative, and setup checks; no hit rows.
    assert '<svg role="img"' in body and '<desc id="chart-desc">4 hits' in body
    assert "most on 2026-11-23 (2)" in body
    assert "4 trap hits recorded,\nfirst on 2026-11-13, last on 2026-11-23." in body
    assert "<td>" not in body and "postfix" not in body
    assert "example.org</" not in body.replace("bl.example.org</", "")  # no trap domain
    assert (
        "<li>4 of 4 connections gave a HELO that is not a fully qualified host name.</li>" in body
    )
    assert "<li>4 of 4 connections came from an address without a forward-confirmed" in body


def test_status_page_of_an_address_inside_a_listed_network(web: Web) -> None:
    body = web.get("/lookup/45.3.0.9").body
    assert "Listed as part of <code>45.3.0.0/24</code>" in body
    assert "<code>127.0.0.3</code> snowshoe network" in body
    assert "Expires</dt><dd>only when removed" in body
    assert "No trap hits are recorded for 45.3.0.9" in body


def test_status_page_of_addresses_inside_a_listed_64_and_an_escalated_48(web: Web) -> None:
    """An IPv6 hit lists its /64; two listed /64s escalate the /48 (configured). The page
    for any address inside says which listing covers it, why, and counts that network's
    hits, never the trap."""
    zone = web.settings.zone("bl.example.org")
    escalating = replace(zone, prefixes=PrefixSettings(ipv6_escalate_after=2))
    with web.engine.begin() as conn:
        record_hits(
            conn,
            [
                TrapHit(
                    at=NOW - timedelta(hours=i),
                    client_ip=f"2a01:4f8:1:{i}::5",
                    rcpt_to=TRAP,
                    mail_from="a@spam.example",
                    helo="spam.example",
                    feed="postfix",
                    raw=f"to=<{TRAP}>",
                )
                for i in (1, 2)
            ],
            matcher=TrapMatcher([parse_trap(TRAP)]),
            allow=Allowlist(),
            rules=Rules.from_settings(web.settings.listing),
            ip_zone=escalating,
            domain_zone=None,
            now=NOW,
        )
    rotated = web.get("/lookup/2a01:4f8:1:1::77").body  # never hit a trap itself
    assert '<span class="state listed">listed</span>' in rotated
    assert "Listed as part of <code>2a01:4f8:1:1::/64</code>." in rotated
    assert "1 trap hit recorded from addresses inside <code>2a01:4f8:1:1::/64</code>" in rotated
    assert 'href="/remove/2a01:4f8:1:1::77?zone=bl.example.org"' in rotated
    beside = web.get("/lookup/2a01:4f8:1:99::1").body
    assert "Listed as part of <code>2a01:4f8:1::/48</code>." in beside
    assert (
        "Listed because 2 listings inside it are active: "
        "<code>2a01:4f8:1:1::/64</code>, <code>2a01:4f8:1:2::/64</code>."
    ) in beside
    assert "2 trap hits recorded from addresses inside <code>2a01:4f8:1::/48</code>" in beside
    outside = web.get("/lookup/2a01:4f8:2::1").body
    assert "not listed</span>" in outside and "Never listed here" in outside
    for body in (rotated, beside):
        assert TRAP not in body and "secret-trap" not in body


def test_status_page_of_an_unlisted_and_an_ended_listing(web: Web) -> None:
    clean = web.get("/lookup/45.9.9.9")
    assert clean.status == 200
    assert "not listed</span>" in clean.body and "Never listed here" in clean.body
    assert "/remove/" not in clean.body
    ended = web.get("/lookup/45.2.2.2")
    assert "not listed</span>" in ended.body
    assert "Was listed until 2026-11-21." in ended.body


def test_domain_status_page_uses_the_domain_zone(web: Web) -> None:
    body = web.get("/lookup/mail.spam.example").body
    assert "<code>dbl.example.org</code>" in body and "bl.example.org</code>:" not in body.replace(
        "dbl.example.org</code>:", ""
    )
    assert "Never listed here" in body
    listed = web.get("/lookup/spam.example").body
    assert "domain seen in trap mail" in listed


def test_what_a_sender_wrote_is_never_shown(web: Web) -> None:
    """HELO and MAIL FROM are the sender's to choose, per message: shown, they mark it."""
    body = web.get("/lookup/45.1.2.3").body
    assert "script" not in body and "alert" not in body and "spam.example" not in body
    # A domain's evidence is its verified hosts' hits, not hits that name it as sender.
    domain = web.get("/lookup/spam.example").body
    assert "No trap hits are recorded for spam.example" in domain
    assert "45.1.2.3" not in domain


def test_opt_in_hours_and_trap_domains(tmp_path: Path) -> None:
    settings = make_settings()
    public = replace(settings.public, time_resolution="hour", show_trap_domains=True)
    web = build(tmp_path, replace(settings, public=public))
    with web.engine.begin() as conn:
        for trap in (TRAP, "@abandoned.example"):
            add_trap(conn, parse_trap(trap), note=None, actor="t", now=NOW)
        record_hits(
            conn,
            [
                TrapHit(
                    at=NOW - timedelta(minutes=5),
                    client_ip="45.1.2.3",
                    rcpt_to="anyone@abandoned.example",
                    mail_from="",
                    helo="mail.isp.example",
                    client_name="mail.isp.example",
                    feed="postfix",
                    raw="x",
                )
            ],
            matcher=TrapMatcher([parse_trap(TRAP), parse_trap("@abandoned.example")]),
            allow=Allowlist(),
            rules=Rules.from_settings(settings.listing),
            ip_zone=settings.zone("bl.example.org"),
            domain_zone=None,
            now=NOW,
        )
    web.clock.advance(60)  # past FILTER_REFRESH: the new trap is read
    body = web.get("/lookup/45.1.2.3").body
    assert "First seen</dt><dd>2026-11-20 11:00 UTC</dd>" in body
    assert "<td>2026-11-23 10:00 UTC</td><td>1</td>" in body  # hits per hour
    assert "<td>2026-11-23 11:00 UTC</td><td>2</td>" in body
    # Address traps' domains, with counts; never the domain that is itself the trap.
    assert "Trap domains hit: example.org (4)." in body
    assert "abandoned.example" not in body
    assert "<li>4 of 5 connections gave a HELO that is not a fully qualified" in body
    web.engine.dispose()


def test_the_trap_address_never_appears(web: Web) -> None:
    created = web.ask_removal("45.1.2.3", message=f"was it {TRAP.upper()[:3]}?")
    assert created.status == 303
    pages = [
        web.get("/"),
        web.get("/lookup/45.1.2.3"),
        web.get("/lookup/45.1.2.0/24"),
        web.get("/lookup/example.org"),
        web.get("/remove/45.1.2.3"),
        web.get(created.header("location")),
        web.get("/lookup?q=" + TRAP),
        web.get("/lookup?q=" + TRAP.replace("@", "@@")),
        web.get("/nope"),
    ]
    for page in pages:
        assert TRAP not in page.body and "secret-trap" not in page.body
        assert TRAP not in str(page.headers)
    assert "example.org" in pages[1].body


def test_removal_request_flow_and_status_page(web: Web) -> None:
    response = web.ask_removal("45.1.2.3", email="postmaster@isp.example")
    assert response.status == 303
    location = response.header("location")
    assert re.fullmatch(r"/request/[A-Za-z0-9_-]{32}", location)
    status = web.get(location)
    assert status.status == 200
    assert '<span id="state" class="state pending">pending</span>' in status.body
    assert "2026-11-23 12:00 UTC" in status.body
    assert "postmaster@isp.example" not in status.body  # the status link is public
    # The lookup page says a request is waiting, never links it, and still offers the form.
    lookup = web.get("/lookup/45.1.2.3").body
    assert "1 removal request is waiting for review" in lookup
    assert location not in lookup and 'id="remove-link"' in lookup
    # Asking again is a second request with its own status page.
    fields = {"csrf": web.token(), "message": "Please."}
    again = web.post("/remove/45.1.2.3", fields)
    assert again.status == 303 and again.header("location") != location
    form = web.get("/remove/45.1.2.3").body
    assert "2 removal requests are waiting for review" in form and location not in form


def test_self_service_removes_at_once(tmp_path: Path) -> None:
    settings = make_settings()
    settings = replace(settings, delisting=replace(settings.delisting, self_service=True))
    web = build(tmp_path, settings)
    assert "Removal is immediate" in web.get("/remove/45.1.2.3").body
    response = web.ask_removal("45.1.2.3")
    assert response.status == 303
    status = web.get(response.header("location")).body
    assert "state approved" in status and "(self-service)" in status
    assert "removed by self-service" in status
    assert "not listed</span>" in web.get("/lookup/45.1.2.3").body
    web.engine.dispose()


def test_removal_of_an_unlisted_key(web: Web) -> None:
    form = web.get("/remove/45.9.9.9")
    assert form.status == 200 and "not listed in <code>bl.example.org</code>" in form.body
    fields = {"csrf": web.token(), "zone": "bl.example.org", "message": "hi"}
    response = web.post("/remove/45.9.9.9", fields)
    assert response.status == 409
    assert "45.9.9.9 is not listed in bl.example.org" in response.body
    wrong_zone = web.get("/remove/45.1.2.3?zone=dbl.example.org")
    assert wrong_zone.status == 400 and "not a ip zone" in wrong_zone.body


def test_csrf_token_missing_forged_expired_or_foreign(web: Web) -> None:
    good = web.form("45.1.2.3")
    cases = {
        "missing": {"zone": "bl.example.org"},
        "forged": {**good, "csrf": good["csrf"][:-4] + "0000"},
        "garbage": {**good, "csrf": "x.y"},
    }
    for name, fields in cases.items():
        response = web.post("/remove/45.1.2.3", {**fields, "message": "Fixed."})
        assert response.status == 403, name
        assert "This form has expired or did not come from this site" in response.body
        assert ">Fixed.</textarea>" in response.body  # the message is kept
    other_client = web.post("/remove/45.1.2.3", {**good, "message": "x"}, peer="203.0.113.5")
    assert other_client.status == 403
    web.clock.advance(3601)
    expired = web.post("/remove/45.1.2.3", {**good, "message": "Fixed."})
    assert expired.status == 403
    fresh = web.ask_removal("45.1.2.3")
    assert fresh.status == 303


@pytest.mark.parametrize(
    ("message", "email", "problem"),
    [
        ("", "", "the message is required"),
        ("   \r\n ", "", "the message is required"),
        ("x" * 4001, "", "The message has 4001 characters; at most 4000"),
        ("ok", "no-at-sign.example", "does not look like an email address"),
        ("ok", "two@@example.org", "does not look like an email address"),
        ("ok", "with space@example.org", "does not look like an email address"),
        ("ok", "a@" + "b" * 320 + ".example", "does not look like an email address"),
    ],
)
def test_form_validation_errors(web: Web, message: str, email: str, problem: str) -> None:
    fields = {**web.form("45.1.2.3"), "message": message, "email": email}
    response = web.post("/remove/45.1.2.3", fields)
    assert response.status == 400
    assert problem in response.body
    assert 'name="csrf"' in response.body  # re-rendered with a fresh token


def test_hostile_form_input_is_escaped_when_re_rendered(web: Web) -> None:
    fields = {**web.form("45.1.2.3"), "message": "</textarea><script>x</script>", "email": "<b>"}
    body = web.post("/remove/45.1.2.3", fields).body
    assert "<script>" not in body and "<b>" not in body
    assert "&lt;/textarea&gt;&lt;script&gt;" in body


def test_rate_limit_per_client(tmp_path: Path) -> None:
    web = build(tmp_path, make_settings(requests_per_hour=2))
    assert web.ask_removal("45.1.2.3").status == 303
    assert web.ask_removal("45.3.0.0/24").status == 303
    limited = web.ask_removal("spam.example")
    assert limited.status == 429
    assert "Too many requests" in limited.body and "2 removal requests" in limited.body
    assert 3000 < int(limited.header("retry-after")) <= 3600
    # Another client is not limited; the first may ask again after an hour.
    assert web.ask_removal("spam.example", peer="203.0.113.5").status == 303
    web.clock.advance(3601)
    assert web.ask_removal("45.1.2.3").status == 303
    web.engine.dispose()


def test_rate_limit_keys_on_the_forwarded_client_behind_a_trusted_proxy(tmp_path: Path) -> None:
    web = build(tmp_path, make_settings(requests_per_hour=1))
    forwarded = {"X-Forwarded-For": "203.0.113.77"}

    def ask(client_headers: dict[str, str], peer: str = PROXY) -> int:
        fields = {"csrf": web.token(peer=peer, headers=client_headers), "message": "m"}
        headers = {"Content-Type": "application/x-www-form-urlencoded", **client_headers}
        body = urlencode(fields).encode()
        return web.request("POST", "/remove/45.1.2.3", body, headers, peer=peer).status

    assert ask(forwarded) == 303
    assert ask(forwarded) == 429
    # Another client (network) behind the same proxy, and a spoofed header from an
    # untrusted peer; a neighbour in the same /24 shares the limit.
    assert ask({"X-Forwarded-For": "203.0.113.78"}) == 429
    assert ask({"X-Forwarded-For": "203.0.114.78"}) == 303
    assert ask({"X-Forwarded-For": "203.0.115.99, " + PROXY}) == 303
    assert ask({"X-Forwarded-For": "203.0.113.77"}, peer="198.51.100.50") == 303
    # A client prepending its own X-Forwarded-For through the proxy gains nothing.
    assert ask({"X-Forwarded-For": "10.9.9.9, 203.0.113.77"}) == 429
    web.engine.dispose()


def test_a_body_over_the_limit_is_413(web: Web) -> None:
    fields = {**web.form("45.1.2.3"), "message": "x" * (MAX_BODY + 100)}
    response = web.post("/remove/45.1.2.3", fields)
    assert response.status == 413
    assert "at most 16 KiB" in response.body
    body = urlencode(fields).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    chunked = web.request("POST", "/remove/45.1.2.3", body, headers, chunked=True)
    assert chunked.status == 413
    assert "not listed" not in web.get("/lookup/45.1.2.3").body  # nothing was requested


def test_unknown_paths_are_404_and_other_methods_405(web: Web) -> None:
    for path in ("/nope", "/nope/", "/request/", "/static/x.css", "/remove"):
        page = web.get(path)
        assert page.status == 404, path
        assert "Not found" in page.body
    for token in ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "1", "12345678901234567890", "x<y"):
        page = web.get(f"/request/{token}")
        assert page.status == 404 and "no removal request" in page.body
    for method, path in (("PUT", "/"), ("DELETE", "/remove/45.1.2.3"), ("POST", "/lookup")):
        page = web.request(method, path)
        assert page.status == 405, (method, path)
        assert method in page.body
    assert web.request("PATCH", "/remove/45.1.2.3").header("allow") == "GET, HEAD, POST"


def test_head_and_the_stylesheet(web: Web) -> None:
    head = web.request("HEAD", "/")
    assert head.status == 200 and head.body == ""
    css = web.get("/static/site.css")
    assert css.status == 200 and css.header("content-type") == "text/css; charset=utf-8"
    assert "font" in css.body


def test_database_failure_is_503_never_not_listed(tmp_path: Path) -> None:
    def broken(function: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        return defer.fail(RuntimeError("database is locked"))

    web = build(tmp_path, run=broken)
    for path in ("/lookup/45.1.2.3", "/lookup/45.9.9.9", "/request/" + "A" * 32):
        page = web.get(path)
        assert page.status == 503
        assert "Try again later" in page.body
        assert "not listed" not in page.body and "database is locked" not in page.body
    web.engine.dispose()


def test_hits_chart_geometry() -> None:
    day = NOW.date()
    chart = hits_chart([(day - timedelta(days=2), 0), (day - timedelta(days=1), 4), (day, 1)])
    assert [(b.x, b.height, b.count) for b in chart.bars] == [(0, 0, 0), (6, 80, 4), (12, 20, 1)]
    assert chart.width == 18 and chart.total == 5 and chart.busiest == (day - timedelta(days=1), 4)
    empty = hits_chart([(day, 0)])
    assert empty.busiest is None and empty.bars[0].height == 0


def test_web_service_binds_on_privileged_start_and_stops(tmp_path: Path) -> None:
    web = build(tmp_path)
    reactor = MemoryReactorClock()  # the stop waits for requests in flight on its clock
    service = WebService(("127.0.0.1", 0), web.site, reactor)
    service.privilegedStartService()
    service.startService()
    ((port, factory, _backlog, interface),) = reactor.tcpServers
    assert (port, factory, interface) == (0, web.site, "127.0.0.1")
    assert service.port is not None and service.bound[0] == "0.0.0.0"
    service.stopService()
    assert service.port is None
    web.engine.dispose()


def test_1234_is_looked_up_as_a_domain_as_the_cli_takes_it(web: Web) -> None:
    """One rule (rbl.model.guess) for the site and ``rbl list add``: "1234" is a domain."""
    page = web.get("/lookup?q=1234")
    assert page.status == 303 and page.header("location") == "/lookup/1234"
    status = web.get("/lookup/1234")
    assert status.status == 200
    assert "<code>dbl.example.org</code>" in status.body
    assert "<code>bl.example.org</code>" not in status.body


def test_1234_without_a_domain_zone_is_a_400_naming_it(tmp_path: Path) -> None:
    settings = make_settings()
    ip_only = replace(settings, zones=(settings.zone("bl.example.org"),))
    web = build(tmp_path, ip_only)
    page = web.get("/lookup?q=1234")
    assert page.status == 400
    assert "no domain zone, so &#39;1234&#39; cannot be listed here" in page.body
    web.engine.dispose()


@pytest.mark.parametrize("surrogate", ["%ED%A0%80", "%ED%B3%BF"])  # U+D800, U+DCFF as UTF-8
def test_a_lone_surrogate_is_refused_by_the_site(web: Web, surrogate: str) -> None:
    """The CLI refuses lone surrogates (rbl.model.text); the site never lets one through."""
    query = web.get(f"/lookup?q=x{surrogate}.example")
    assert query.status == 400 and "The q field is not valid UTF-8" in query.body
    path = web.get(f"/lookup/x{surrogate}.example")
    assert path.status == 400 and "The address is not valid UTF-8" in path.body
    fields = urlencode(web.form("45.1.2.3")) + f"&message=hi{surrogate}"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    posted = web.request("POST", "/remove/45.1.2.3", fields.encode(), headers)
    assert posted.status == 400 and "The message field is not valid UTF-8" in posted.body
