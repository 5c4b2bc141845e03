"""IPv6 listing by prefix and escalation: policy units and the store (SQLite, PostgreSQL).

A trap hit from an IPv6 address lists its /64 (the zone's ``ipv6_prefix``) and
the hits of every address inside it count together; escalation (off by
default) lists the /48 (or an IPv4 /24) once enough listings inside it are
active. The same evidence gives the same list however it is batched.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from rbl.config import ListingSettings, PrefixSettings, ZoneSettings, parse_settings
from rbl.errors import ConfigError
from rbl.model.keys import IpKey, parse_ip_key
from rbl.model.traphit import TrapHit
from rbl.model.traps import TrapMatcher, parse_trap
from rbl.policy.allowlist import Allowlist
from rbl.policy.listing import (
    LATEST,
    Action,
    History,
    Rules,
    escalate,
    escalation_key,
    listing_key,
)
from rbl.store.allowlist import add_allowed
from rbl.store.database import open_engine
from rbl.store.listings import covering_listings, remove_listing
from rbl.store.queries import evidence_for
from rbl.store.requests import open_request
from rbl.store.schema import change_log, hits, listings
from tests.support.trap_hits import store_hits, trap_hit

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ZONES = [{"name": "bl.example.org", "kind": "ip", "ns": ["ns1.example.org"]}]
SETTINGS = parse_settings({"zones": ZONES}, source=Path("test.toml"))
IP_ZONE = SETTINGS.zone("bl.example.org")
RULES = Rules.from_settings(ListingSettings(own_networks=("2a01:99:0:7::10/124",)))
MATCHER = TrapMatcher([parse_trap("trap@example.org")])
DEFAULT = PrefixSettings()
ESCALATING = PrefixSettings(ipv6_escalate_after=3, ipv4_escalate_after=2)


def hit(client_ip: str, at: datetime = NOW, **changes: object) -> TrapHit:
    return trap_hit(
        **{"client_ip": client_ip, "at": at, "raw": f"raw line from {client_ip}", **changes}
    )


def zone(prefixes: PrefixSettings) -> ZoneSettings:
    return replace(IP_ZONE, prefixes=prefixes)


def record(
    engine: Engine,
    batch: list[TrapHit],
    *,
    prefixes: PrefixSettings = DEFAULT,
    threshold: int = 1,
    allow: Allowlist | None = None,
    now: datetime = NOW,
):  # type: ignore[no-untyped-def]
    rules = Rules.from_settings(ListingSettings(threshold=threshold))
    return store_hits(
        engine, batch, matcher=MATCHER, rules=rules, ip_zone=zone(prefixes), allow=allow, now=now
    )


def active(engine: Engine) -> dict[str, tuple[int, datetime | None, str | None]]:
    with engine.connect() as conn:
        return {
            row.key: (
                row.hit_count,
                row.expires_at and row.expires_at.replace(tzinfo=UTC),
                row.reason,
            )
            for row in conn.execute(select(listings).where(listings.c.state == "active"))
        }


# -- policy: pure ------------------------------------------------------------------------


def test_an_ipv6_address_lists_its_64_and_ipv4_its_address() -> None:
    assert listing_key("2a01:4f8:1:2::5", PrefixSettings(), RULES).text == "2a01:4f8:1:2::/64"
    assert listing_key("2a01:4f8:1:2::5", PrefixSettings(ipv6_prefix=56), RULES).text == (
        "2a01:4f8:1::/56"
    )
    assert listing_key("2a01:4f8:1:2::5", PrefixSettings(ipv6_prefix=128), RULES).text == (
        "2a01:4f8:1:2::5"
    )
    assert listing_key("45.1.2.3", PrefixSettings(), RULES).text == "45.1.2.3"


def test_a_prefix_holding_our_own_network_lists_the_address_alone() -> None:
    """The operator's /124 inside a spammer's /64: listing the /64 would list our hosts."""
    assert listing_key("2a01:99:0:7::99", PrefixSettings(), RULES).text == "2a01:99:0:7::99"
    assert listing_key("2a01:99:0:8::99", PrefixSettings(), RULES).text == "2a01:99:0:8::/64"


def test_escalation_is_off_by_default_and_only_from_the_base_width() -> None:
    key = parse_ip_key("2a01:4f8:1:2::/64")
    assert escalation_key(key, PrefixSettings()) is None
    assert escalation_key(key, ESCALATING) == parse_ip_key("2a01:4f8:1::/48")
    assert escalation_key(parse_ip_key("2a01:4f8:1:2::5"), ESCALATING) is None  # a fallback /128
    assert escalation_key(parse_ip_key("45.1.2.3"), ESCALATING) == parse_ip_key("45.1.2.0/24")
    assert escalation_key(parse_ip_key("45.1.2.3"), PrefixSettings()) is None


WIDE = parse_ip_key("2a01:4f8:1::/48")


def members(*days: int | None) -> dict[str, datetime | None]:
    return {
        f"2a01:4f8:1:{i}::/64": None if d is None else NOW + timedelta(days=d)
        for i, d in enumerate(days)
    }


def test_escalation_needs_n_alive_listings_and_lives_while_n_do() -> None:
    assert (
        escalate(WIDE, members(3, 5), after=3, history=History(), rules=RULES, at=NOW, now=NOW)
        is None
    )
    decision = escalate(
        WIDE, members(3, 5, 7, 1), after=3, history=History(), rules=RULES, at=NOW, now=NOW
    )
    assert decision is not None and decision.action is Action.LIST
    assert decision.expires_at == NOW + timedelta(days=3)  # three stay listed until then
    assert decision.reason.startswith("escalated: 4 listed networks inside it (at least 3): ")
    assert "2a01:4f8:1:3::/64" in decision.reason and "@" not in decision.reason
    # A listing inside that has already ended does not count.
    stale = members(3, 5, -1)
    assert escalate(WIDE, stale, after=3, history=History(), rules=RULES, at=NOW, now=NOW) is None
    # A manual (no expiry) listing lives for good.
    forever = escalate(
        WIDE, members(None, None, None), after=3, history=History(), rules=RULES, at=NOW, now=NOW
    )
    assert forever is not None and forever.expires_at == LATEST


def test_escalation_extends_never_shortens_and_respects_the_operator() -> None:
    listed = History(active=True, active_expires_at=NOW + timedelta(days=4))
    four = members(5, 6, 7)
    extended = escalate(WIDE, four, after=3, history=listed, rules=RULES, at=NOW, now=NOW)
    assert extended is not None and extended.action is Action.EXTEND
    assert extended.expires_at == NOW + timedelta(days=5)
    later = History(active=True, active_expires_at=NOW + timedelta(days=9))
    assert escalate(WIDE, four, after=3, history=later, rules=RULES, at=NOW, now=NOW) is None
    for history in (
        History(delisted_at=NOW),  # delisted by the operator: only newer evidence
        History(allowlisted=True),
        History(active=True, active_manual=True),
        History(held=True),
    ):
        assert escalate(WIDE, four, after=3, history=history, rules=RULES, at=NOW, now=NOW) is None
    own = parse_ip_key("2a01:99::/48")  # holds the operator's /124
    inside = {f"2a01:99:0:{i}::/64": NOW + timedelta(days=5) for i in range(3)}
    assert escalate(own, inside, after=3, history=History(), rules=RULES, at=NOW, now=NOW) is None


@given(
    st.lists(st.one_of(st.none(), st.integers(-10, 100)), max_size=12),
    st.integers(2, 5),
    st.one_of(st.none(), st.integers(-10, 100)),
)
def test_escalation_lives_exactly_while_n_inside_would(
    days: list[int | None], after: int, listed_until: int | None
) -> None:
    """Listed (or extended) only with ``after`` alive; until the ``after``-th latest expiry;
    never shortened, never into the past."""
    inside = members(*days)
    history = (
        History()
        if listed_until is None
        else History(active=True, active_expires_at=NOW + timedelta(days=listed_until))
    )
    decision = escalate(WIDE, inside, after=after, history=history, rules=RULES, at=NOW, now=NOW)
    ends = sorted(
        (NOW + timedelta(days=d) if d is not None else LATEST for d in days), reverse=True
    )
    alive = [end for end in ends if end > NOW]
    if len(alive) < after or (history.active_expires_at or NOW) >= alive[after - 1]:
        assert decision is None
        return
    assert decision is not None
    assert decision.action is (Action.EXTEND if history.active else Action.LIST)
    assert decision.expires_at == alive[after - 1] > NOW


def test_prefix_settings_from_the_zone_table() -> None:
    def load(**items: object) -> PrefixSettings:
        zones = [{**ZONES[0], **items}]
        return parse_settings({"zones": zones}, source=Path("t.toml")).zones[0].prefixes

    assert load() == PrefixSettings(ipv6_prefix=64, ipv6_escalate_after=0, ipv4_escalate_after=0)
    assert load(ipv6_prefix=128).ipv6_prefix == 128
    assert load(ipv6_escalate_after=4, ipv6_escalate_prefix=56) == PrefixSettings(
        ipv6_escalate_prefix=56, ipv6_escalate_after=4
    )
    assert load(ipv4_escalate_after=5).ipv4_escalate_after == 5
    for bad, message in (
        ({"ipv6_prefix": 32}, "outside 48..128"),
        ({"ipv6_prefix": 56, "ipv6_escalate_prefix": 64, "ipv6_escalate_after": 2}, "wider"),
        ({"ipv4_escalate_after": 1}, r"0 \(off\) or 2 or more"),
        ({"ipv4_escalate_prefix": 8}, "outside 16..31"),
        ({"ipv6_prefix": "64"}, "must be a int"),
    ):
        with pytest.raises(ConfigError, match=message):
            load(**bad)
    domain = {"name": "dbl.example.org", "kind": "domain", "ns": ["ns1.example.org"]}
    with pytest.raises(ConfigError, match="only apply to an ip zone"):
        parse_settings({"zones": [{**domain, "ipv6_prefix": 64}]}, source=Path("t.toml"))


# -- the store ---------------------------------------------------------------------------


def test_hits_rotating_inside_one_64_count_together(database_url: str) -> None:
    engine = open_engine(database_url)
    try:
        first = record(engine, [hit("2a01:4f8:1:2::5")], threshold=2)
        second = record(
            engine, [hit("2a01:4f8:1:2:ffff::9", NOW + timedelta(hours=1))], threshold=2
        )
        elsewhere = record(engine, [hit("2a01:4f8:1:3::5", NOW + timedelta(hours=2))], threshold=2)
        listed = active(engine)
        with engine.connect() as conn:
            log = [(c.key, c.op) for c in conn.execute(select(change_log))]
            stored = [(h.client_ip, h.family, h.network) for h in conn.execute(select(hits))]
            covering = [
                c.key
                for c in covering_listings(conn, "bl.example.org", parse_ip_key("2a01:4f8:1:2::77"))
            ]
            total, evidence = evidence_for(conn, parse_ip_key("2a01:4f8:1:2::/64"), 10)
    finally:
        engine.dispose()
    assert first.actions == {"record": 1} and second.actions == {"list": 1}
    assert second.listed == ["bl.example.org 2a01:4f8:1:2::/64"]
    assert elsewhere.actions == {"record": 1}  # another /64: its own count
    assert list(listed) == ["2a01:4f8:1:2::/64"]
    assert listed["2a01:4f8:1:2::/64"][0] == 1  # the listing hit; the first one only counted
    assert log == [("2a01:4f8:1:2::/64", "set")]
    assert stored[0] == (
        "2a01:4f8:1:2::5",
        6,
        IpKey(6, 0x2A0104F8000100020000000000000005, 128).packed,
    )
    assert covering == ["2a01:4f8:1:2::/64"]  # an address never seen is listed through it
    assert total == 2 and {e.client_ip for e in evidence} == {
        "2a01:4f8:1:2::5",
        "2a01:4f8:1:2:ffff::9",
    }


def test_ipv6_prefix_128_keeps_single_addresses(database_url: str) -> None:
    engine = open_engine(database_url)
    try:
        result = record(
            engine,
            [hit("2a01:4f8:1:2::5"), hit("2a01:4f8:1:2::6")],
            prefixes=PrefixSettings(ipv6_prefix=128),
            threshold=2,
        )
        listed = active(engine)
    finally:
        engine.dispose()
    assert result.actions == {"record": 2} and listed == {}


def test_an_allowlisted_address_inside_a_listed_64(database_url: str) -> None:
    """Its hits never count, the /64 is listed on the others' evidence, and the address
    itself is not listed (DNS excludes it; every store lookup agrees)."""
    engine = open_engine(database_url)
    good = "2a01:4f8:1:2::25"
    try:
        with engine.begin() as conn:
            add_allowed(
                conn,
                parse_ip_key(good),
                reason="our customer's relay",
                actor="op",
                now=NOW,
                zones=["bl.example.org"],
            )
        allow = Allowlist([parse_ip_key(good)])
        alone = record(engine, [hit(good), hit(good, NOW + timedelta(minutes=1))], allow=allow)
        other = record(engine, [hit("2a01:4f8:1:2::66", NOW + timedelta(minutes=2))], allow=allow)
        with engine.connect() as conn:
            mine = covering_listings(conn, "bl.example.org", parse_ip_key(good))
            theirs = covering_listings(conn, "bl.example.org", parse_ip_key("2a01:4f8:1:2::67"))
    finally:
        engine.dispose()
    assert alone.actions == {"record": 2}
    assert other.actions == {"list": 1}
    assert mine == []
    assert [c.key for c in theirs] == ["2a01:4f8:1:2::/64"]


def test_removal_of_an_address_inside_a_listed_64_finds_the_listing(database_url: str) -> None:
    engine = open_engine(database_url)
    try:
        record(engine, [hit("2a01:4f8:1:2::5")])
        with engine.begin() as conn:
            request = open_request(
                conn,
                "bl.example.org",
                parse_ip_key("2a01:4f8:1:2::abc"),
                message="we fixed the infected host",
                email=None,
                client_ip=None,
                now=NOW,
                self_service_period=timedelta(days=30),
            )
        listed = active(engine)
    finally:
        engine.dispose()
    assert request.key == "2a01:4f8:1:2::/64"
    assert (
        request.state == "approved"
    )  # a trap listing of one /64 is self-service, as one address was
    assert listed == {}


def test_escalation_to_the_48_and_what_ends_it(database_url: str) -> None:
    engine = open_engine(database_url)
    try:
        result = record(
            engine,
            [hit(f"2a01:4f8:1:{i}::5", NOW + timedelta(minutes=i)) for i in range(1, 4)],
            prefixes=ESCALATING,
        )
        listed = active(engine)
        with engine.connect() as conn:
            covering = [
                c.key
                for c in covering_listings(conn, "bl.example.org", parse_ip_key("2a01:4f8:1:1::5"))
            ]
            outside = covering_listings(conn, "bl.example.org", parse_ip_key("2a01:4f8:1:99::1"))
        with engine.begin() as conn:
            remove_listing(
                conn,
                "bl.example.org",
                "2a01:4f8:1::/48",
                reason="ISP acted",
                actor="op",
                now=NOW + timedelta(hours=1),
            )
        # Older evidence does not escalate it again; a newer listing inside does.
        again = record(
            engine,
            [hit("2a01:4f8:1:4::5", NOW + timedelta(hours=2))],
            prefixes=ESCALATING,
            now=NOW + timedelta(hours=2),
        )
    finally:
        engine.dispose()
    assert result.actions == {"list": 3}
    assert result.listed[-1] == "bl.example.org 2a01:4f8:1::/48"
    wide = listed["2a01:4f8:1::/48"]
    assert wide[1] == NOW + timedelta(minutes=1, days=7)  # while three /64s stay listed
    assert wide[2] == (
        "escalated: 3 listed networks inside it (at least 3): "
        "2a01:4f8:1:1::/64, 2a01:4f8:1:2::/64, 2a01:4f8:1:3::/64"
    )
    assert covering == ["2a01:4f8:1:1::/64", "2a01:4f8:1::/48"]
    assert [c.key for c in outside] == ["2a01:4f8:1::/48"]
    assert "bl.example.org 2a01:4f8:1::/48" in again.listed


def test_ipv4_escalation_to_the_24(database_url: str) -> None:
    engine = open_engine(database_url)
    try:
        off = record(engine, [hit("45.7.7.1"), hit("45.7.7.2")])
        on = record(
            engine,
            [hit("45.8.8.1"), hit("45.8.8.2", NOW + timedelta(minutes=1))],
            prefixes=ESCALATING,
        )
        listed = active(engine)
    finally:
        engine.dispose()
    assert off.listed == ["bl.example.org 45.7.7.1", "bl.example.org 45.7.7.2"]
    assert on.listed[-1] == "bl.example.org 45.8.8.0/24"
    assert "45.7.7.0/24" not in listed
    assert listed["45.8.8.0/24"][2] == (
        "escalated: 2 listed addresses inside it (at least 2): 45.8.8.1, 45.8.8.2"
    )


rotating = st.lists(
    st.builds(
        hit,
        client_ip=st.sampled_from(
            [
                "2a01:4f8:1:1::1",
                "2a01:4f8:1:1::2",
                "2a01:4f8:1:2::1",
                "2a01:4f8:1:3::1",
                "2a01:4f8:2:1::1",
                "45.8.8.1",
                "45.8.8.2",
                "45.8.9.1",
            ]
        ),
        at=st.integers(0, 20 * 24).map(lambda h: NOW + timedelta(hours=h)),
        mail_from=st.sampled_from(["a@spam.example", ""]),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rotating, st.integers(1, 6), st.integers(1, 3))
def test_same_evidence_same_prefix_list_however_it_is_batched(
    evidence: list[TrapHit], split: int, threshold: int
) -> None:
    evidence = sorted(evidence, key=lambda h: h.at)
    prefixes = PrefixSettings(ipv6_escalate_after=2, ipv4_escalate_after=2)
    outcomes = []
    for size in (len(evidence), split):
        with tempfile.TemporaryDirectory() as tmp:
            engine = open_engine(f"sqlite:///{tmp}/rbl.sqlite")
            for start in range(0, len(evidence), size):
                record(
                    engine,
                    evidence[start : start + size],
                    prefixes=prefixes,
                    threshold=threshold,
                    now=NOW + timedelta(days=20),
                )
            with engine.connect() as conn:
                outcomes.append(
                    (
                        sorted(
                            (r.key, r.state, r.hit_count, r.expires_at, r.reason)
                            for r in conn.execute(select(listings))
                        ),
                        [(h.client_ip, h.action, h.reason) for h in conn.execute(select(hits))],
                    )
                )
            engine.dispose()
    assert outcomes[0] == outcomes[1]


def test_migration_0007_gives_existing_hits_their_network(database_url: str) -> None:
    """Hits stored before 0007 count toward their /64 after the upgrade (and 0007 goes
    down again: the store is brought to head, down to 0005, then up)."""
    from sqlalchemy import create_engine, insert
    from sqlalchemy.pool import NullPool

    from rbl.store.database import MIGRATIONS, upgrade

    def downgrade(engine: Engine, revision: str) -> None:
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, revision)

    engine = create_engine(database_url, poolclass=NullPool)
    try:
        upgrade(engine)
        downgrade(engine, "0005")
        with engine.begin() as conn:  # only the columns 0005 has
            for n, ip in enumerate(("2a01:4f8:1:2::5", "45.1.2.3")):
                conn.execute(
                    insert(hits).values(
                        at=NOW - timedelta(hours=1),
                        client_ip=ip,
                        feed="test",
                        raw=f"line {n}",
                        action="record",
                        counted=True,
                        reason="old",
                    )
                )
        upgrade(engine)
        with engine.connect() as conn:
            stored = {
                row.client_ip: (row.family, row.network) for row in conn.execute(select(hits))
            }
        result = record(engine, [hit("2a01:4f8:1:2::77")], threshold=2)
    finally:
        engine.dispose()
    assert stored == {
        "2a01:4f8:1:2::5": (6, parse_ip_key("2a01:4f8:1:2::5").packed),
        "45.1.2.3": (4, bytes([45, 1, 2, 3])),
    }
    assert result.listed == ["bl.example.org 2a01:4f8:1:2::/64"]  # the old hit counted
