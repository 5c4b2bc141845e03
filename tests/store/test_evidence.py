"""Trap hits into a real SQLite store: evidence, listings, change log, expiry."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from rbl.config import ListingSettings, parse_settings
from rbl.errors import NotListedError, StoreError
from rbl.model.keys import ZoneKind, parse_key
from rbl.model.traphit import TrapHit
from rbl.model.traps import TrapMatcher, parse_trap
from rbl.policy.allowlist import Allowlist
from rbl.policy.listing import Rules
from rbl.store.database import open_engine
from rbl.store.evidence import expire_listings
from rbl.store.listings import add_listing, reject_hold, release_hold, remove_listing
from rbl.store.schema import audit_log, change_log, hits, listings
from tests.support.trap_hits import store_hits, trap_hit

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SETTINGS = parse_settings(
    {
        "zones": [
            {"name": "bl.example.org", "kind": "ip", "ns": ["ns1.example.org"]},
            {
                "name": "dbl.example.org",
                "kind": "domain",
                "ns": ["ns1.example.org"],
                "default_code": "127.0.1.2",
            },
        ],
        "listing": {"domain_zone": "dbl.example.org"},
    },
    source=Path("test.toml"),
)
IP_ZONE = SETTINGS.zone("bl.example.org")
DOMAIN_ZONE = SETTINGS.zone("dbl.example.org")
MATCHER = TrapMatcher([parse_trap("trap@example.org"), parse_trap("@abandoned.example")])


def hit(**changes: object) -> TrapHit:
    return trap_hit(**changes)


def record(
    engine: Engine,
    batch: list[TrapHit],
    *,
    now: datetime = NOW,
    listing: ListingSettings | None = None,
    allow: Allowlist | None = None,
):  # type: ignore[no-untyped-def]
    rules = Rules.from_settings(listing or SETTINGS.listing)
    return store_hits(
        engine,
        batch,
        matcher=MATCHER,
        rules=rules,
        ip_zone=IP_ZONE,
        domain_zone=DOMAIN_ZONE,
        allow=allow,
        now=now,
    )


def rows(engine: Engine, table):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return list(conn.execute(select(table).order_by(table.c.id)))


def fresh(tmp: str | Path) -> Engine:
    return open_engine(f"sqlite:///{tmp}/rbl.sqlite")


def test_a_trap_hit_lists_the_address_with_evidence(tmp_path: Path) -> None:
    engine = fresh(tmp_path)
    result = record(engine, [hit(), hit(rcpt_to="someone@example.org", client_ip="45.9.9.9")])
    assert result.actions == {"list": 1, "ignore": 1}
    (listing,) = [r for r in rows(engine, listings) if r.zone == "bl.example.org"]
    assert (listing.key, listing.state, listing.source, listing.hit_count) == (
        "45.1.2.3",
        "active",
        "trap",
        1,
    )
    assert listing.expires_at.replace(tzinfo=UTC) == NOW + timedelta(days=7)
    (evidence,) = rows(engine, hits)  # the non-trap recipient is not evidence
    assert (evidence.rcpt_to, evidence.trap_domain, evidence.sender_domain) == (
        "trap@example.org",
        "example.org",
        "spam.example",
    )
    assert evidence.action == "list" and evidence.counted
    assert [(c.zone, c.key, c.op) for c in rows(engine, change_log)] == [
        ("bl.example.org", "45.1.2.3", "set")
    ]
    assert [(a.actor, a.action) for a in rows(engine, audit_log)] == [("policy", "list")]


def test_whole_domain_traps_and_plus_details_match(tmp_path: Path) -> None:
    engine = fresh(tmp_path)
    result = record(
        engine,
        [
            hit(rcpt_to="Anyone@Abandoned.Example", client_ip="45.1.1.1"),
            hit(rcpt_to="trap+tag@example.org", client_ip="45.1.1.2"),
        ],
    )
    assert result.actions == {"list": 2}


def test_probes_reserved_and_allowlisted_are_recorded_only(tmp_path: Path) -> None:
    engine = fresh(tmp_path)
    allow = Allowlist([parse_key(ZoneKind.IP, "45.7.0.0/16")])
    result = record(
        engine,
        [hit(mail_from=""), hit(client_ip="10.0.0.1"), hit(client_ip="45.7.1.1")],
        allow=allow,
    )
    assert result.actions == {"record": 3}
    assert [r.reason for r in rows(engine, hits)] == [
        "not listed: null sender: a bounce or a sender-verification callback",
        "never listed: 10.0.0.0/8 is reserved or our own",
        "never listed: allowlisted",
    ]
    assert rows(engine, listings) == [] and rows(engine, change_log) == []


def test_threshold_across_batches_and_within_one(tmp_path: Path) -> None:
    engine = fresh(tmp_path)
    listing = ListingSettings(threshold=2, domain_zone="dbl.example.org")
    first = record(engine, [hit()], listing=listing)
    assert first.actions == {"record": 1}
    second = record(engine, [hit(at=NOW + timedelta(hours=1))], listing=listing)
    assert second.actions == {"list": 1}
    both = record(
        engine,
        [hit(client_ip="45.2.2.2"), hit(client_ip="45.2.2.2", at=NOW + timedelta(seconds=1))],
        listing=listing,
    )
    assert both.actions == {"record": 1, "list": 1}


def test_expiry_then_a_repeat_offender_stays_twice_as_long(tmp_path: Path) -> None:
    engine = fresh(tmp_path)
    record(engine, [hit()])
    with engine.begin() as conn:
        assert expire_listings(conn, now=NOW + timedelta(days=6)) == []
        ended = expire_listings(conn, now=NOW + timedelta(days=7, seconds=1))
    assert "bl.example.org 45.1.2.3" in ended
    again = NOW + timedelta(days=10)
    assert record(engine, [hit(at=again)], now=again).actions == {"list": 1}
    listing = next(r for r in rows(engine, listings) if r.key == "45.1.2.3")
    assert listing.times_listed == 2 and listing.hit_count == 2
    assert listing.expires_at.replace(tzinfo=UTC) == again + timedelta(days=14)
    assert [(c.key, c.op) for c in rows(engine, change_log) if c.zone == "bl.example.org"] == [
        ("45.1.2.3", "set"),
        ("45.1.2.3", "delete"),
        ("45.1.2.3", "set"),
    ]


def test_only_hits_newer_than_a_delisting_relist(tmp_path: Path) -> None:
    engine = fresh(tmp_path)
    record(engine, [hit()])
    delisted = NOW + timedelta(hours=1)
    with engine.begin() as conn:
        remove_listing(
            conn,
            "bl.example.org",
            parse_key(ZoneKind.IP, "45.1.2.3"),
            reason="fixed",
            actor="op",
            now=delisted,
        )
    old = record(engine, [hit(at=NOW + timedelta(minutes=30))], now=delisted)
    assert old.actions == {"record": 1}
    new = record(engine, [hit(at=delisted + timedelta(minutes=1))], now=delisted)
    assert new.actions == {"list": 1}


def test_manual_listings_keep_their_terms(tmp_path: Path) -> None:
    engine = fresh(tmp_path)
    with engine.begin() as conn:
        add_listing(
            conn,
            "bl.example.org",
            parse_key(ZoneKind.IP, "45.1.2.3"),
            ("127.0.0.3",),
            reason="operator",
            actor="op",
            now=NOW,
        )
    assert record(engine, [hit()]).actions == {"record": 1}
    listing = rows(engine, listings)[0]
    assert (listing.source, listing.codes, listing.expires_at) == ("manual", "127.0.0.3", None)


def test_domain_listed_only_when_the_verified_host_is_inside_it(tmp_path: Path) -> None:
    engine = fresh(tmp_path)
    record(
        engine,
        [
            hit(client_ip="45.3.3.3", client_name="mail.spam.example"),
            hit(
                client_ip="45.4.4.4",
                client_name="mx.victim.example",
                mail_from="forged@innocent.example",
            ),
            hit(
                client_ip="45.5.5.5",
                client_name="mail-1.outbound.outlook.com",
                mail_from="someone@outlook.com",
            ),
        ],
    )
    domains = [(r.key, r.codes) for r in rows(engine, listings) if r.zone == "dbl.example.org"]
    assert domains == [("spam.example", "127.0.1.2")]


batches = st.lists(
    st.builds(
        hit,
        at=st.integers(0, 20 * 24).map(lambda h: NOW + timedelta(hours=h)),
        client_ip=st.sampled_from(["45.1.1.1", "45.1.1.2", "45.1.1.3", "10.9.9.9"]),
        mail_from=st.sampled_from(["a@spam.example", "", "b@other.example"]),
        rcpt_to=st.sampled_from(["trap@example.org", "user@example.org"]),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches, st.integers(1, 6), st.integers(1, 3))
def test_same_evidence_same_list_however_it_is_batched(
    evidence: list[TrapHit], split: int, threshold: int
) -> None:
    evidence = sorted(evidence, key=lambda h: h.at)
    listing = ListingSettings(threshold=threshold, domain_zone="dbl.example.org")
    outcomes = []
    for size in (len(evidence), split):
        with tempfile.TemporaryDirectory() as tmp:
            engine = fresh(tmp)
            for start in range(0, len(evidence), size):
                record(
                    engine,
                    evidence[start : start + size],
                    listing=listing,
                    now=NOW + timedelta(days=30),
                )
            outcomes.append(
                (
                    [
                        (r.zone, r.key, r.state, r.hit_count, r.expires_at)
                        for r in rows(engine, listings)
                    ],
                    [(h.client_ip, h.action, h.reason) for h in rows(engine, hits)],
                )
            )
            engine.dispose()
    assert outcomes[0] == outcomes[1]


def test_one_attempt_logged_twice_counts_once_even_across_batches(tmp_path: Path) -> None:
    engine = fresh(tmp_path)
    grey = hit(mail_from="a@spam.example", helo=None)
    trapping = hit(
        mail_from="a@spam.example",
        helo="spam.example",
        trap_asserted=True,
        at=NOW + timedelta(microseconds=300),
    )
    assert record(engine, [grey, trapping]).actions == {"list": 1, "duplicate": 1}
    assert record(engine, [trapping]).actions == {"duplicate": 1}
    assert len(rows(engine, hits)) == 1
    # spamd's GREY line has no HELO, its "new entry"/"Trapping" twin has: the one kept gets it.
    assert [h.helo for h in rows(engine, hits)] == ["spam.example"]


def test_overlong_fields_are_stored_cut_to_their_columns_and_count_once(
    database_url: str,
) -> None:
    """A sender controls HELO and MAIL FROM: 1,000 characters must not make PostgreSQL
    refuse the batch (which would stop a live feed and an ingest run for good). The
    fields are cut to their columns, the raw line keeps everything, and the attempt
    still counts once when it comes again."""
    engine = open_engine(database_url)
    long_helo = "h" * 1000 + ".example"
    long_from = "x" * 400 + "@spam.example"
    long_name = "n" * 300 + ".example"
    raw = f"helo={long_helo} from=<{long_from}>"
    attempt = hit(helo=long_helo, mail_from=long_from, client_name=long_name, raw=raw)
    try:
        first = record(engine, [attempt])
        again = record(engine, [attempt])  # a retried batch, or the same line logged twice
        stored = rows(engine, hits)
    finally:
        engine.dispose()
    assert first.actions["list"] == 1 and again.actions["duplicate"] == 1
    assert len(stored) == 1
    row = stored[0]
    assert row.helo == long_helo[: hits.c.helo.type.length]
    assert row.mail_from == long_from[: hits.c.mail_from.type.length]
    assert row.client_name is None  # no verified host name is that long
    assert row.raw == raw


def test_nul_and_control_characters_from_a_sender_are_stored(database_url: str) -> None:
    """PostgreSQL refuses NUL in text; a HELO or log line carrying one must not stop the feed."""
    engine = open_engine(database_url)
    attempt = hit(helo="bad\x00helo", mail_from="a\x00b@spam.example", raw="line with \x00 in it")
    try:
        result = record(engine, [attempt])
        again = record(engine, [attempt])
        stored = rows(engine, hits)
    finally:
        engine.dispose()
    assert result.actions["list"] == 1 and again.actions["duplicate"] == 1
    assert len(stored) == 1
    assert "\x00" not in stored[0].helo and "bad" in stored[0].helo
    assert stored[0].raw.startswith("line with ") and stored[0].raw.endswith(" in it")


GMAIL_IP = "209.85.220.41"


def gmail(**changes: object) -> TrapHit:
    """Issue 11: one hit from a big provider's outbound host listed it at threshold 1."""
    base: dict[str, object] = {
        "client_ip": GMAIL_IP,
        "client_name": "mail-xyz.google.com",
        "helo": "mail-xyz.google.com",  # inside the verified name: would tie an RHSBL domain
        "mail_from": "someone@gmail.com",
        "stage": "data",
    }
    base.update(changes)
    return hit(**base)


def test_a_big_providers_host_is_held_not_listed(database_url: str) -> None:
    engine = open_engine(database_url)
    try:
        first = record(engine, [gmail()])
        later = NOW + timedelta(hours=2)
        second = record(engine, [gmail(at=later)], now=later)
        listing_rows, hit_rows = rows(engine, listings), rows(engine, hits)
        changes, audits = rows(engine, change_log), rows(engine, audit_log)
    finally:
        engine.dispose()
    assert first.actions == {"hold": 1} and first.listed == []
    assert first.held == ["bl.example.org 209.85.220.41"]
    assert second.actions == {"hold": 1} and second.held == []  # already held
    (listing,) = listing_rows  # no RHSBL listing for the tied domain either
    assert (listing.zone, listing.key, listing.state, listing.hit_count) == (
        "bl.example.org",
        GMAIL_IP,
        "held",
        2,
    )
    assert listing.times_listed == 0  # not a listing episode until released
    assert "mail-xyz.google.com is a big provider's outbound host" in listing.reason
    assert listing.expires_at.replace(tzinfo=UTC) == later + timedelta(days=7)
    assert [h.action for h in hit_rows] == ["hold", "hold"] and all(h.counted for h in hit_rows)
    assert changes == []  # nothing for DNS to follow
    assert [(a.actor, a.action, a.key) for a in audits] == [("policy", "hold", GMAIL_IP)]


def test_release_lists_a_held_key_and_reject_drops_it(database_url: str) -> None:
    engine = open_engine(database_url)
    other = "209.85.220.42"
    try:
        record(engine, [gmail(), gmail(client_ip=other)])
        later = NOW + timedelta(hours=1)
        with engine.begin() as conn:
            released = release_hold(
                conn, "bl.example.org", GMAIL_IP, reason="reviewed", actor="alice", now=later
            )
            rejected = reject_hold(
                conn, "bl.example.org", other, reason="shared relay", actor="bob", now=later
            )
            with pytest.raises(NotListedError, match="no listing held for review"):
                release_hold(
                    conn, "bl.example.org", other, reason="again", actor="alice", now=later
                )
        changes, audits = rows(engine, change_log), rows(engine, audit_log)
        # Evidence older than the rejection does not hold it again; newer evidence does.
        older = NOW + timedelta(seconds=1)
        assert record(engine, [gmail(client_ip=other, at=older)], now=later).actions == {
            "record": 1
        }
        newer = later + timedelta(minutes=5)
        assert record(engine, [gmail(client_ip=other, at=newer)], now=newer).actions == {"hold": 1}
        # Once released, it is a listing like any other: provider hits extend it.
        extended = record(engine, [gmail(at=newer)], now=newer)
    finally:
        engine.dispose()
    assert (released.state, released.times_listed, released.codes) == ("active", 1, ("127.0.0.2",))
    assert (rejected.state, rejected.delisted_at) == ("removed", later)
    assert [(c.key, c.op, c.codes) for c in changes] == [(GMAIL_IP, "set", "127.0.0.2")]
    assert [(a.actor, a.action, a.key, a.reason) for a in audits[2:]] == [
        ("alice", "release", GMAIL_IP, "reviewed"),
        ("bob", "reject", other, "shared relay"),
    ]
    assert extended.actions == {"extend": 1}


def test_a_hold_lapses_without_reaching_dns_and_cannot_be_released_late(
    database_url: str,
) -> None:
    engine = open_engine(database_url)
    late = NOW + timedelta(days=7, seconds=1)
    try:
        record(engine, [gmail()])
        with engine.begin() as conn, pytest.raises(StoreError, match="lapsed"):
            release_hold(conn, "bl.example.org", GMAIL_IP, reason="too late", actor="a", now=late)
        with engine.begin() as conn:
            assert expire_listings(conn, now=NOW + timedelta(days=6)) == []
            ended = expire_listings(conn, now=late)
        (listing,) = rows(engine, listings)
        changes, audits = rows(engine, change_log), rows(engine, audit_log)
    finally:
        engine.dispose()
    assert ended == [f"bl.example.org {GMAIL_IP}"] and listing.state == "expired"
    assert changes == []
    assert [(a.action, a.reason) for a in audits] == [
        ("hold", listing.reason),
        ("expire", "no new evidence; held for review, never published"),
    ]


def test_probes_go_by_shape_not_by_sender_name(database_url: str) -> None:
    """postmaster@ of a stranger's domain lists; the client's own double-bounce at RCPT
    and a bounce with a message are evidence only."""
    engine = open_engine(database_url)
    try:
        result = record(
            engine,
            [
                hit(client_ip="45.1.1.1", mail_from="postmaster@paypal.example", stage="rcpt"),
                hit(client_ip="45.1.1.2", mail_from="mailer-daemon@bank.example", stage=None),
                hit(
                    client_ip="45.1.1.3",
                    mail_from="double-bounce@mx.example.net",
                    client_name="mx.example.net",
                    stage="rcpt",
                ),
                hit(client_ip="45.1.1.4", mail_from="", stage="data"),
            ],
        )
        stored = {h.client_ip: (h.action, h.counted) for h in rows(engine, hits)}
        listed = sorted(r.key for r in rows(engine, listings))
    finally:
        engine.dispose()
    assert result.actions == {"list": 2, "record": 2}
    assert listed == ["45.1.1.1", "45.1.1.2"]
    assert stored["45.1.1.3"] == ("record", False) and stored["45.1.1.4"] == ("record", False)


# --- attempt keys (issue 12 item 6) ---------------------------------------------------------


def test_attempts_in_one_second_from_two_smtpd_processes_count_twice(database_url: str) -> None:
    """Same client, sender, trap and second, but two smtpd processes (or two postscreen
    connections): two attempts, both evidence; each repeated (a retried batch, or the
    same line ingested again) still counts once, and the key is stored with the hit."""
    engine = open_engine(database_url)
    one = hit(attempt="pid:4321", raw="first")
    other = hit(attempt="pid:4322", at=NOW + timedelta(microseconds=5), raw="second")
    port_a, port_b = hit(attempt="port:5001"), hit(attempt="port:5002")
    try:
        first = record(engine, [one, other])
        again = record(engine, [other, one])
        ports = record(engine, [port_a, port_b], now=NOW + timedelta(seconds=1))
        stored = rows(engine, hits)
    finally:
        engine.dispose()
    assert first.actions == {"list": 1, "extend": 1}
    assert again.actions == {"duplicate": 2}
    assert ports.actions == {"duplicate": 2}  # port: cannot tell them from pid: ones
    assert sorted(h.attempt for h in stored) == ["pid:4321", "pid:4322"]


def test_one_attempt_logged_twice_with_its_key_still_counts_once(database_url: str) -> None:
    """Postfix "hold" then "reject" of one RCPT (the same smtpd pid); a policy request
    (instance:) and the log line (pid:) of one RCPT; a keyed hit and an unkeyed one
    (spamd, exim): kinds that cannot tell attempts apart merge as before."""
    engine = open_engine(database_url)
    hold = hit(attempt="pid:77", raw="hold")
    reject = hit(attempt="pid:77", at=NOW + timedelta(microseconds=9), raw="reject")
    policy = hit(attempt="instance:1a2b.65f0c0de.3c4d.0", raw="policy")
    unkeyed = hit(raw="spamd")
    try:
        result = record(engine, [hold, reject, policy, unkeyed])
        stored = rows(engine, hits)
    finally:
        engine.dispose()
    assert result.actions == {"list": 1, "duplicate": 3}
    assert [h.raw for h in stored] == ["hold"]


def test_an_unkeyed_hit_stored_first_merges_keyed_ones_across_batches(tmp_path: Path) -> None:
    engine = fresh(tmp_path)
    assert record(engine, [hit()]).actions == {"list": 1}
    assert record(engine, [hit(attempt="pid:1")]).actions == {"duplicate": 1}
    later = NOW + timedelta(seconds=5)
    assert record(engine, [hit(at=later, attempt="queue:4ABC")]).actions == {"extend": 1}
    assert record(engine, [hit(at=later, attempt="queue:4ABD")]).actions == {"record": 1}
    assert record(engine, [hit(at=later)]).actions == {"duplicate": 1}


def test_an_overlong_attempt_is_cut_to_its_column_and_still_merges(tmp_path: Path) -> None:
    engine = fresh(tmp_path)
    long = hit(attempt="instance:" + "7" * 200)
    assert record(engine, [long]).actions == {"list": 1}
    assert record(engine, [long]).actions == {"duplicate": 1}
    (row,) = rows(engine, hits)
    assert row.attempt == long.attempt[: hits.c.attempt.type.length]  # type: ignore[index]


def test_migration_0008_keeps_stored_hits_and_their_merging(database_url: str) -> None:
    """A database at 0005 with a hit: after 0008 the hit is there without an attempt and
    still merges a keyed repeat of itself, and a new attempt is kept apart from another."""
    from sqlalchemy import create_engine, insert

    from rbl.store.database import current_revision, head_revision, upgrade

    raw = create_engine(database_url)
    try:
        upgrade(raw, "0005")
        with raw.begin() as conn:
            conn.execute(  # the columns 0005 has; Core writes "at" as the store does
                insert(hits).values(
                    at=NOW,
                    client_ip="45.1.2.3",
                    rcpt_to="trap@example.org",
                    mail_from="seller@spam.example",
                    feed="postfix",
                    raw="old",
                    action="list",
                    counted=True,
                    reason="old",
                )
            )
    finally:
        raw.dispose()
    engine = open_engine(database_url)
    try:
        assert current_revision(engine) == head_revision()
        assert record(engine, [hit(attempt="pid:1")]).actions == {"duplicate": 1}
        stored = rows(engine, hits)
    finally:
        engine.dispose()
    assert [(h.raw, h.attempt) for h in stored] == [("old", None)]
