"""No public output reveals a trap, and the evidence page is no trap oracle.

A store with address traps (one of them retired), a domain-wide trap, and
hostile trap hits: MAIL FROM a trap address, MAIL FROM another trap, a HELO
holding a trap address, a whole-domain trap as sender; an operator's answer
and a listing's TXT that name traps. Then the oracle attack: one IP sends to
many candidate recipients, each with its own marker in MAIL FROM and HELO
and at its own minute, and only some candidates are traps. Every public
output is fetched (every site route through the real twisted.web Site, the
dump files the writer makes, DNS TXT from the responder for every listed key,
the /metrics text) and none may hold a trap address, the domain-wide trap or
a marker; and the page for the attacking IP must be the same whichever of the
candidates were traps. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dns.message
import dns.rdatatype
import pytest
from twisted.internet import defer, task

from rbl.config import Settings, parse_settings
from rbl.dumps.writer import write_dumps
from rbl.metrics.service import MetricsCollector
from rbl.model.keys import ZoneKind, parse_key
from rbl.model.traphit import TrapHit
from rbl.model.traps import TrapMatcher, parse_trap
from rbl.policy.allowlist import Allowlist
from rbl.policy.listing import Rules
from rbl.policy.trapfilter import TrapTextError
from rbl.server.reload import reload_from_file
from rbl.server.service import make_service
from rbl.store.database import open_engine
from rbl.store.evidence import record_hits
from rbl.store.listings import add_listing
from rbl.store.reader import ListingReader
from rbl.store.requests import deny_request, open_request
from rbl.store.traps import add_trap, remove_trap
from rbl.store.website import SiteStore
from rbl.web.site import make_site
from tests.support.pg_databases import PgDatabases
from tests.support.web_requests import Response, fetch

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TRAP_A = "trap-alpha@example.org"
TRAP_B = "trap-bravo@example.net"
TRAP_C = "trap-charlie@example.com"
RETIRED = "retired-trap@example.org"  # inactive now: still never shown
WHOLE_DOMAIN = "abandoned.example"  # every address there is a trap
HOSTILE_IP = "45.10.0.1"
ORACLE_IP = "45.20.0.1"
# The same attack from one IPv6 /64, a new address for every candidate: the /64 is
# listed and its page counts them all, and must not tell which were traps either.
ORACLE_64 = "2a01:4f8:20:1::/64"
ORACLE_64_LOOKUP = "2a01:4f8:20:1::ffff"  # inside it, never used itself
CANDIDATES = [f"user{i:02d}@victims.example" for i in range(12)]
SUBSET_ONE = (1, 4, 7, 9)  # which candidates are traps, in one run ...
SUBSET_TWO = (0, 2, 5, 11)  # ... and in the other: same size, so the same counts


def marker(i: int) -> str:
    return f"mk{i:02d}q"


def hostile_hits() -> list[TrapHit]:
    """Trap text where a sender controls it: MAIL FROM, HELO, the whole-domain trap."""

    def hit(minute: int, rcpt: str, mail_from: str, helo: str, feed: str = "postfix") -> TrapHit:
        return TrapHit(
            at=NOW - timedelta(hours=3, minutes=minute),
            client_ip=HOSTILE_IP,
            rcpt_to=rcpt,
            mail_from=mail_from,
            helo=helo,
            feed=feed,
            raw=f"postfix/smtpd: reject: RCPT from x[{HOSTILE_IP}]: to=<{rcpt}> from=<{mail_from}>",
        )

    return [
        hit(1, TRAP_A, TRAP_A, "mx.spammer.example"),  # MAIL FROM = the trap itself
        hit(2, TRAP_A, TRAP_B, "mx.spammer.example"),  # MAIL FROM = another trap
        hit(3, TRAP_B, "x@spammer.example", f"[{TRAP_C}]"),  # a trap inside HELO
        hit(4, f"anyone@{WHOLE_DOMAIN}", f"boss@{WHOLE_DOMAIN}", WHOLE_DOMAIN),
        hit(5, TRAP_C, RETIRED, f"helo.{RETIRED}"),
        hit(6, TRAP_C, f"prvs=1234abcd={TRAP_A}", "203.0.113.9"),  # BATV-wrapped trap
        hit(7, TRAP_A, "a@spammer.example", "spammer", feed=f"box-{TRAP_A}"),  # a metrics label
    ]


def oracle_hits() -> list[TrapHit]:
    return [
        TrapHit(
            at=NOW - timedelta(hours=2, minutes=i),
            client_ip=ORACLE_IP,
            rcpt_to=candidate,
            mail_from=f"{marker(i)}@markers.example",
            helo=f"{marker(i)}.markers.example",
            feed="postfix",
            raw=f"RCPT from x[{ORACLE_IP}]: to=<{candidate}> from=<{marker(i)}@markers.example>",
        )
        for i, candidate in enumerate(CANDIDATES)
    ]


def rotating_hits() -> list[TrapHit]:
    return [
        replace(hit, client_ip=f"2a01:4f8:20:1::{i + 1:x}", raw=hit.raw.replace(ORACLE_IP, "v6"))
        for i, hit in enumerate(oracle_hits())
    ]


def make_settings(url: str, dump_dir: Path) -> Settings:
    return parse_settings(
        {
            "database": {"url": url},
            "zones": [
                {
                    "name": "bl.example.org",
                    "kind": "ip",
                    "ns": ["ns1.example.org"],
                    "lookup_url": "https://lists.example.org/lookup/{key}",
                },
                {
                    "name": "dbl.example.org",
                    "kind": "domain",
                    "ns": ["ns1.example.org"],
                    "default_code": "127.0.1.2",
                    "txt": "Domain {key} listed",
                },
            ],
            "listing": {"domain_zone": "dbl.example.org"},
            "web": {"listen": "127.0.0.1:0", "title": "Example list"},
            "dumps": {"directory": str(dump_dir)},
        },
        source=Path("test.toml"),
    )


def synchronous(function: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
    return defer.maybeDeferred(function, *args)


@dataclass
class Outputs:
    """Every public output of one store, as text, by where it came from."""

    texts: dict[str, str]
    oracle_page: str
    oracle_64_page: str = ""


def seed(url: str, settings: Settings, traps_among_candidates: tuple[int, ...]) -> str:
    """Traps, hostile hits, the oracle attack, a denied request; returns the request token."""
    engine = open_engine(url)
    specs = [parse_trap(t) for t in (TRAP_A, TRAP_B, TRAP_C, RETIRED, "@" + WHOLE_DOMAIN)]
    specs += [parse_trap(CANDIDATES[i]) for i in traps_among_candidates]
    try:
        with engine.begin() as conn:
            for spec in specs:
                add_trap(conn, spec, note=None, actor="t", now=NOW - timedelta(days=30))
            rules = Rules.from_settings(settings.listing)
            for batch in (hostile_hits(), oracle_hits(), rotating_hits()):
                record_hits(
                    conn,
                    batch,
                    matcher=TrapMatcher(specs),
                    allow=Allowlist(),
                    rules=rules,
                    ip_zone=settings.zone("bl.example.org"),
                    domain_zone=settings.zone("dbl.example.org"),
                    now=NOW,
                )
            remove_trap(conn, parse_trap(RETIRED), reason="retired", actor="t", now=NOW)
            # Text an operator wrote: the store takes it, the outputs must not show it.
            add_listing(
                conn,
                "bl.example.org",
                parse_key(ZoneKind.IP, "45.30.0.0/24"),
                ("127.0.0.3",),
                txt=f"Snowshoe; spam to {TRAP_A} and @{WHOLE_DOMAIN}: {{url}}",
                actor="t",
                now=NOW,
            )
            request = open_request(
                conn,
                "bl.example.org",
                parse_key(ZoneKind.IP, HOSTILE_IP),
                message="We fixed it.",
                email=None,
                client_ip="198.51.100.7",
                now=NOW,
                self_service_period=None,
            )
            deny_request(
                conn,
                request.token,
                actor="t",
                message=f"Your host mailed {TRAP_B} and {TRAP_C.upper()} at {WHOLE_DOMAIN}.",
                now=NOW,
            )
            return request.token
    finally:
        engine.dispose()


def collect(url: str, settings: Settings, token: str) -> Outputs:
    clock = task.Clock()
    clock.advance(NOW.timestamp())
    texts: dict[str, str] = {}
    engine = open_engine(url)
    site = make_site(settings, SiteStore(engine), synchronous, clock, b"s" * 32)
    try:
        paths = [
            "/",
            f"/lookup/{HOSTILE_IP}",
            f"/lookup/{ORACLE_IP}",
            f"/lookup/{ORACLE_64_LOOKUP}",
            f"/lookup/{ORACLE_64}",
            "/lookup/45.10.0.0/24",
            "/lookup/45.30.0.9",
            "/lookup/example.org",
            "/lookup/example.net",
            "/lookup/victims.example",
            "/lookup/markers.example",
            "/lookup/spammer.example",
            f"/lookup?q={HOSTILE_IP}",
            f"/remove/{HOSTILE_IP}",
            f"/remove/{ORACLE_IP}",
            f"/request/{token}",
            "/request/" + "A" * 32,
            "/static/site.css",
            "/nope",
        ]
        for path in paths:
            response = fetch(site, "GET", path)
            assert response.status in (200, 303, 404), (path, response.status, response.body)
            texts[f"site {path}"] = _whole(response)
        oracle_page = fetch(site, "GET", f"/lookup/{ORACLE_IP}").body
        oracle_64_page = fetch(site, "GET", f"/lookup/{ORACLE_64_LOOKUP}").body
    finally:
        engine.dispose()
    reader = ListingReader(url)
    try:
        dump_dir = Path(settings.dumps.directory or "")
        write_dumps(settings, reader, dump_dir, NOW)
        for path in sorted(dump_dir.rglob("*")):
            if path.is_file() and not path.name.endswith(".gz"):
                texts[f"dump {path.relative_to(dump_dir)}"] = path.read_text()
    finally:
        reader.close()
    server = make_service(settings, clock, dns_only=True)
    try:
        responder = server.dns.responder
        for name in (
            "1.0.10.45.bl.example.org",
            "1.0.20.45.bl.example.org",
            "9.0.30.45.bl.example.org",
            "spammer.example.dbl.example.org",
            "markers.example.dbl.example.org",
        ):
            for rdtype in ("TXT", "A"):
                query = dns.message.make_query(name, rdtype)
                wire = responder.respond(query.to_wire(), True)
                assert wire is not None
                texts[f"dns {name} {rdtype}"] = dns.message.from_wire(wire).to_text()
        metrics_reader = ListingReader(url)
        collector = MetricsCollector(server, metrics_reader, synchronous, clock)
        scraped: list[bytes] = []
        collector.collect().addCallback(scraped.append)
        metrics_reader.close()
        texts["metrics"] = scraped[0].decode()
    finally:
        server.follower.zones.clear()
    return Outputs(texts, oracle_page, oracle_64_page)


def _whole(response: Response) -> str:
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return f"{response.status}\n{headers}\n\n{response.body}"


SECRETS = [
    TRAP_A,
    TRAP_B,
    TRAP_C,
    RETIRED,
    "trap-alpha",
    "trap-bravo",
    "trap-charlie",
    "retired-trap",
    WHOLE_DOMAIN,
    *CANDIDATES,
    *(f"user{i:02d}" for i in range(12)),
    *(marker(i) for i in range(12)),
]


def leaks(outputs: Outputs) -> list[str]:
    found = []
    for where, text in outputs.texts.items():
        lowered = text.lower()
        for secret in SECRETS:
            if secret.lower() in lowered:
                found.append(f"{secret!r} in {where}")
    return found


@pytest.fixture
def runs(
    tmp_path: Path, database_url: str, pg_databases: PgDatabases | None
) -> Iterator[Callable[[tuple[int, ...]], Outputs]]:
    """Seed a fresh store with a given set of candidates as traps; collect its outputs."""
    made: list[str] = []
    extra: list[str] = []

    def run(subset: tuple[int, ...]) -> Outputs:
        url = database_url
        if made and database_url.startswith("sqlite"):
            url = f"sqlite:///{tmp_path / f'rbl{len(made)}.sqlite'}"
        elif made:
            assert pg_databases is not None
            extra.append(pg_databases.create())
            url = pg_databases.url_of(extra[-1])
        made.append(url)
        settings = make_settings(url, tmp_path / f"dumps{len(made)}")
        token = seed(url, settings, subset)
        return collect(url, settings, token)

    yield run
    for name in extra:
        assert pg_databases is not None
        pg_databases.drop(name)


def test_no_trap_or_marker_reaches_any_public_output(
    runs: Callable[[tuple[int, ...]], Outputs],
) -> None:
    outputs = runs(SUBSET_ONE)
    assert len(outputs.texts) > 30
    # The outputs are real: the listings are there and the evidence is counted.
    assert "listed</span>" in outputs.texts[f"site /lookup/{HOSTILE_IP}"]
    assert "45.20.0.1" in outputs.texts["dump bl.example.org/bl.example.org.txt"]
    (answer,) = [
        t for w, t in outputs.texts.items() if w.startswith("site /request/") and "AAAA" not in w
    ]
    assert leaks(outputs) == []
    # Operator-written text that named traps is there, with the traps replaced whole.
    assert "denied" in answer and "[redacted]" in answer
    assert (
        "Snowshoe; spam to [redacted] and [redacted]:"
        in outputs.texts["dns 9.0.30.45.bl.example.org TXT"]
    )
    assert (
        "Snowshoe; spam to [redacted]" in outputs.texts["dump bl.example.org/bl.example.org.zone"]
    )
    assert 'feed="[redacted]"' in outputs.texts["metrics"]


def test_the_evidence_page_cannot_tell_which_candidates_were_traps(
    runs: Callable[[tuple[int, ...]], Outputs],
) -> None:
    first, second = runs(SUBSET_ONE), runs(SUBSET_TWO)
    one, two = first.oracle_page, second.oracle_page
    assert "4 trap hits" in one
    assert re.sub(r"/request/[\w-]+", "", one) == re.sub(r"/request/[\w-]+", "", two)
    assert f"Listed as part of <code>{ORACLE_64}</code>" in first.oracle_64_page
    assert f"4 trap hits recorded from addresses inside <code>{ORACLE_64}</code>" in (
        first.oracle_64_page
    )
    assert first.oracle_64_page == second.oracle_64_page


def test_serve_refuses_a_zone_txt_naming_a_trap(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(database_url, tmp_path / "dumps")
    seed(database_url, settings, ())
    zones = list(settings.zones)
    zones[1] = replace(zones[1], txt=f"Listed; ask {TRAP_B.upper()}")
    naming = replace(settings, zones=tuple(zones))
    with pytest.raises(TrapTextError, match=r"zone dbl\.example\.org txt names the trap trap-b"):
        make_service(naming, task.Clock(), dns_only=True)
    # Nor does a reload take one: the running zone keeps its text.
    server = make_service(settings, task.Clock(), dns_only=True)
    report = reload_from_file(server, lambda: naming, "test.toml")
    assert report.error is not None and "names the trap trap-bravo@example.net" in report.error
    assert server.follower.zones["dbl.example.org"].settings.txt == "Domain {key} listed"
