"""The public site over a seeded store, asked through the real HTTP parser.

``make_settings`` is the site's configuration (two zones with their codes, a
trusted proxy); ``seed`` puts hits with hostile HELO and sender, an ended, a
network, a spare and a domain listing into a store; ``Web`` wraps a Site with
its ``task.Clock`` and asks it through tests/support/web_requests.py, with the
form tokens a removal needs. ``build_web`` makes one on any database URL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine
from twisted.internet import defer, task
from twisted.web.server import Site

from rbl.config import Settings, parse_settings
from rbl.model.keys import ZoneKind, parse_key
from rbl.model.traphit import TrapHit
from rbl.model.traps import TrapMatcher, parse_trap
from rbl.policy.allowlist import Allowlist
from rbl.policy.listing import Rules
from rbl.store.database import open_engine
from rbl.store.evidence import record_hits
from rbl.store.listings import add_listing, remove_listing
from rbl.store.website import SiteStore
from rbl.web.site import make_site
from tests.support.web_requests import Response, fetch

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TRAP = "secret-trap@example.org"
HOSTILE_HELO = "<script>alert('helo')</script>"
HOSTILE_SENDER = '"><script>alert(1)</script>@spam.example'
CLIENT = "198.51.100.7"
PROXY = "192.0.2.10"
SPARE = "45.4.4.4"  # listed, never asked about


def make_settings(**web: object) -> Settings:
    return parse_settings(
        {
            "zones": [
                {
                    "name": "bl.example.org",
                    "kind": "ip",
                    "ns": ["ns1.example.org"],
                    "codes": {"127.0.0.2": "spam trap hits", "127.0.0.3": "snowshoe network"},
                },
                {
                    "name": "dbl.example.org",
                    "kind": "domain",
                    "ns": ["ns1.example.org"],
                    "default_code": "127.0.1.2",
                    "codes": {"127.0.1.2": "domain seen in trap mail"},
                },
            ],
            "listing": {"domain_zone": "dbl.example.org"},
            "web": {
                "listen": "127.0.0.1:0",
                "title": "Example <Trap> List",
                "contact": "abuse desk, +1 555 0100",
                "trusted_proxies": [PROXY],
                **web,
            },
        },
        source=Path("test.toml"),
    )


@dataclass
class Web:
    site: Site
    clock: task.Clock
    engine: Engine
    settings: Settings

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        peer: str = CLIENT,
        chunked: bool = False,
    ) -> Response:
        return fetch(self.site, method, path, body, headers, peer=peer, chunked=chunked)

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, fields: dict[str, str], **kwargs: Any) -> Response:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return self.request("POST", path, urlencode(fields).encode(), headers=headers, **kwargs)

    def form(self, key: str, peer: str = CLIENT, **kwargs: Any) -> dict[str, str]:
        page = self.get(f"/remove/{key}", peer=peer, **kwargs)
        assert page.status == 200, page.body
        token = re.search(r'name="csrf" value="([^"]+)"', page.body)
        zone = re.search(r'name="zone" value="([^"]+)"', page.body)
        assert token and zone, page.body
        return {"csrf": token.group(1), "zone": zone.group(1)}

    def token(self, peer: str = CLIENT, **kwargs: Any) -> str:
        """A form token from the page of a listing no test asks to remove."""
        return self.form(SPARE, peer=peer, **kwargs)["csrf"]

    def ask_removal(
        self, key: str, message: str = "Fixed the open relay.", peer: str = CLIENT, **more: str
    ) -> Response:
        fields = {"csrf": self.token(peer), "message": message, "email": "", **more}
        return self.post(f"/remove/{key}", fields, peer=peer)


def synchronous(function: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
    return defer.maybeDeferred(function, *args)


def seed(engine: Engine, settings: Settings) -> None:
    matcher = TrapMatcher([parse_trap(TRAP)])
    batch = [
        TrapHit(
            at=NOW - ago,
            client_ip="45.1.2.3",
            rcpt_to=TRAP,
            mail_from=HOSTILE_SENDER,
            helo=HOSTILE_HELO,
            feed="postfix",
            raw=f"postfix/smtpd: NOQUEUE: reject: RCPT from x[45.1.2.3]: to=<{TRAP}>",
        )
        for ago in (
            timedelta(hours=1),
            timedelta(hours=2),
            timedelta(days=3, hours=1),
            timedelta(days=10, hours=1),
        )
    ]
    with engine.begin() as conn:
        record_hits(
            conn,
            batch,
            matcher=matcher,
            allow=Allowlist(),
            rules=Rules.from_settings(settings.listing),
            ip_zone=settings.zone("bl.example.org"),
            domain_zone=None,
            now=NOW,
        )
        ended = parse_key(ZoneKind.IP, "45.2.2.2")
        add_listing(
            conn, "bl.example.org", ended, ("127.0.0.2",), actor="t", now=NOW - timedelta(days=9)
        )
        remove_listing(
            conn, "bl.example.org", ended, reason="gone", actor="t", now=NOW - timedelta(days=2)
        )
        add_listing(
            conn,
            "bl.example.org",
            parse_key(ZoneKind.IP, "45.3.0.0/24"),
            ("127.0.0.3",),
            actor="t",
            now=NOW - timedelta(days=1),
        )
        add_listing(
            conn,
            "bl.example.org",
            parse_key(ZoneKind.IP, SPARE),
            ("127.0.0.2",),
            actor="t",
            now=NOW,
        )
        add_listing(
            conn,
            "dbl.example.org",
            parse_key(ZoneKind.DOMAIN, "spam.example"),
            ("127.0.1.2",),
            actor="t",
            now=NOW,
        )


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
