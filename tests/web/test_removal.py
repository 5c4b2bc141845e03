"""Removal through the site only for the right party, on SQLite and PostgreSQL.

Self-service removes only what the trap feed listed for one address or one
exact name; every other listing goes to an operator, and the page says so.
Each request is kept with its own message, email and token, and its status
page shows only that request. The form's rate limit counts a whole IPv4 /24
or IPv6 /64, and each listing takes a bounded number of requests. Bytes go
through the real HTTP parser (``tests.support.web_site.Web``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from rbl.model.keys import ZoneKind, parse_key
from rbl.store.listings import add_listing
from rbl.store.requests import approve_request
from rbl.store.schema import removal_requests
from tests.support.web_site import CLIENT, NOW, PROXY, SPARE, Web, build_web

ZONE = "bl.example.org"

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TOKEN_LINK = re.compile(r"/request/[A-Za-z0-9_-]{32}")


@pytest.fixture
def web(database_url: str) -> Iterator[Web]:
    built = build_web(database_url)
    yield built
    built.engine.dispose()


@pytest.fixture
def self_service(database_url: str) -> Iterator[Web]:
    built = build_web(database_url, delisting={"self_service": True})
    yield built
    built.engine.dispose()


def state_shown(web: Web, location: str) -> str:
    page = web.get(location)
    assert page.status == 200, page.body
    found = re.search(r'<span id="state" class="state (\w+)">', page.body)
    assert found, page.body
    return found.group(1)


def stored(web: Web) -> list[tuple[str, str, str | None, str]]:
    with web.engine.connect() as conn:
        rows = conn.execute(
            select(
                removal_requests.c.key,
                removal_requests.c.message,
                removal_requests.c.email,
                removal_requests.c.state,
            ).order_by(removal_requests.c.id)
        )
        return [(r.key, r.message, r.email, r.state) for r in rows]


# -- self-service only for the trap feed's single-address listings ------------------------


@pytest.mark.parametrize(
    ("asked", "zone", "why"),
    [
        ("45.3.0.0/24", "bl.example.org", "a network"),
        ("45.3.0.9", "bl.example.org", "a network"),
        (SPARE, "bl.example.org", "listed by the operator"),
        ("spam.example", "dbl.example.org", "listed by the operator"),
    ],
)
def test_self_service_sends_the_operators_listings_and_networks_to_review(
    self_service: Web, asked: str, zone: str, why: str
) -> None:
    response = self_service.ask_removal(asked, zone=zone)
    assert response.status == 303, response.body
    assert state_shown(self_service, response.header("location")) == "pending"
    assert '<span class="state listed">' in self_service.get(f"/lookup/{asked}").body
    form = self_service.get(f"/remove/{asked}?zone={zone}").body
    assert "An operator will review this request" in form and why in form
    assert "Removal is immediate" not in form


def test_self_service_removes_a_trap_listing_of_one_address_at_once(self_service: Web) -> None:
    form = self_service.get("/remove/45.1.2.3").body
    assert "Removal is immediate" in form and "An operator will review" not in form
    response = self_service.ask_removal("45.1.2.3")
    assert state_shown(self_service, response.header("location")) == "approved"
    assert "not listed</span>" in self_service.get("/lookup/45.1.2.3").body
    # Listed again by the feed within the period: the form says an operator decides now.
    with self_service.engine.begin() as conn:
        key = parse_key(ZoneKind.IP, "45.1.2.3")
        add_listing(conn, ZONE, key, ("127.0.0.2",), actor="policy", now=NOW, source="trap")
    form = self_service.get("/remove/45.1.2.3").body
    assert "already removed by self-service within the last 30 days" in form
    again = self_service.ask_removal("45.1.2.3", peer="203.0.113.5")
    assert state_shown(self_service, again.header("location")) == "pending"


# -- every request kept, each status page its own -----------------------------------------


def test_a_strangers_request_does_not_swallow_the_owners(web: Web) -> None:
    junk = web.ask_removal("45.1.2.3", message="junk", peer="203.0.113.5")
    owner = web.ask_removal(
        "45.1.2.3", message="Closed the relay.", email="noc@isp.example", peer=CLIENT
    )
    assert junk.status == owner.status == 303
    mine, theirs = owner.header("location"), junk.header("location")
    assert TOKEN_LINK.fullmatch(mine) and TOKEN_LINK.fullmatch(theirs) and mine != theirs
    assert stored(web) == [
        ("45.1.2.3", "junk", None, "pending"),
        ("45.1.2.3", "Closed the relay.", "noc@isp.example", "pending"),
    ]
    # No page links anyone's request: the status link is its holder's alone.
    for path in ("/lookup/45.1.2.3", "/remove/45.1.2.3"):
        body = web.get(path).body
        assert not TOKEN_LINK.search(body), path
        assert "2 removal requests are waiting for review" in body
    assert 'id="remove-link"' in web.get("/lookup/45.1.2.3").body  # the owner can still ask
    status = web.get(mine).body
    assert theirs not in status and "junk" not in status


def test_approving_one_request_closes_the_others_and_each_page_tells_its_own(web: Web) -> None:
    junk = web.ask_removal("45.1.2.3", message="junk", peer="203.0.113.5").header("location")
    owner = web.ask_removal("45.1.2.3", message="Closed the relay.").header("location")
    with web.engine.begin() as conn:
        approve_request(conn, owner.rsplit("/", 1)[1], actor="carol", message="Thanks.", now=NOW)
    assert state_shown(web, owner) == "approved" and "Thanks." in web.get(owner).body
    closed = web.get(junk).body
    assert state_shown(web, junk) == "closed" and "The listing was removed" in closed
    assert "Thanks." not in closed and "Closed the relay." not in closed and owner not in closed


def test_pending_requests_per_listing_are_capped_with_a_clear_answer(database_url: str) -> None:
    web = build_web(database_url, delisting={"max_pending_per_key": 3})
    peers = [f"198.51.{i}.7" for i in range(10)]
    for peer in peers[:3]:
        assert web.ask_removal("45.3.0.0/24", message=f"from {peer}", peer=peer).status == 303
    refused = web.ask_removal("45.3.0.9", message="the owner", peer=peers[3])
    assert refused.status == 429
    assert "3 removal requests for 45.3.0.0/24 are already waiting" in refused.body
    assert len(stored(web)) == 3
    web.engine.dispose()


def test_each_listing_takes_a_bounded_number_of_requests_an_hour(database_url: str) -> None:
    web = build_web(database_url, delisting={"requests_per_key_per_hour": 2})
    for i in range(2):
        peer = f"198.51.{i}.7"
        assert web.ask_removal("45.3.0.0/24", message=f"m{i}", peer=peer).status == 303
    refused = web.ask_removal("45.3.0.5", message="again", peer="198.51.50.7")
    assert refused.status == 429, refused.body
    assert "2 removal requests for 45.3.0.0/24 in the last hour" in refused.body
    assert 0 < int(refused.header("retry-after")) <= 3600
    assert web.ask_removal("45.1.2.3", peer="198.51.50.7").status == 303  # another listing
    web.clock.advance(3601)
    assert web.ask_removal("45.3.0.0/24", message="later", peer="198.51.51.7").status == 303
    web.engine.dispose()


# -- the form's rate limit counts networks, not addresses ---------------------------------


def test_the_form_rate_limit_counts_a_whole_ipv4_24(database_url: str) -> None:
    web = build_web(database_url, requests_per_hour=2)
    keys = ["45.1.2.3", "45.3.0.0/24", SPARE]
    for i, key in enumerate(keys[:2]):
        assert web.ask_removal(key, peer=f"198.51.100.{i + 1}").status == 303
    limited = web.ask_removal(keys[2], peer="198.51.100.200")
    assert limited.status == 429 and "198.51.100.0/24" in limited.body
    assert web.ask_removal(keys[2], peer="198.51.101.1").status == 303
    web.engine.dispose()


def test_the_form_rate_limit_counts_a_whole_ipv6_64(database_url: str) -> None:
    web = build_web(database_url, requests_per_hour=2)

    def ask(client: str, key: str) -> int:
        forwarded = {"X-Forwarded-For": client}
        fields = {"csrf": web.token(peer=PROXY, headers=forwarded), "message": "m"}
        body = urlencode(fields).encode()
        return web.request("POST", f"/remove/{key}", body, {**FORM, **forwarded}, peer=PROXY).status

    assert ask("2001:db8:1:2::5", "45.1.2.3") == 303
    assert ask("2001:db8:1:2:ffff:1:2:3", "45.3.0.0/24") == 303
    assert ask("2001:db8:1:2::9", SPARE) == 429
    assert ask("2001:db8:1:3::5", SPARE) == 303
    web.engine.dispose()
