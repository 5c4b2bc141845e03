"""The listing policy: pure decisions, property-tested."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rbl.config import ListingSettings
from rbl.model.suffixes import is_public_suffix
from rbl.model.traphit import TrapHit
from rbl.policy.listing import Action, Decision, History, Rules, decide, decide_domain
from rbl.policy.senders import (
    backscatter_reason,
    normalise_sender,
    own_domain,
    probe_reason,
    tied_domain,
)
from tests.support.trap_hits import trap_hit

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RULES = Rules.from_settings(ListingSettings(own_networks=("45.0.0.0/24",)))


def hit(**changes: object) -> TrapHit:
    return trap_hit(**{"raw": "line", **changes})


def test_first_hit_lists_for_the_base_duration() -> None:
    decision = decide(hit(), is_trap=True, history=History(), rules=RULES, now=NOW)
    assert decision.action is Action.LIST
    assert decision.expires_at == NOW + timedelta(days=7)
    assert decision.counts


def test_not_a_trap_is_ignored_unless_the_feed_asserts_it() -> None:
    assert (
        decide(hit(), is_trap=False, history=History(), rules=RULES, now=NOW).action
        is Action.IGNORE
    )
    asserted = decide(
        hit(rcpt_to=None, trap_asserted=True),
        is_trap=False,
        history=History(),
        rules=RULES,
        now=NOW,
    )
    assert asserted.action is Action.LIST


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.5",
        "10.1.2.3",
        "192.168.1.1",
        "172.16.0.9",
        "100.64.0.1",
        "169.254.1.1",
        "192.0.2.10",
        "198.51.100.1",
        "203.0.113.9",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::5",
        "2001:db8::1",
        "45.0.0.77",
    ],
)
def test_reserved_and_own_networks_are_never_listed(address: str) -> None:
    decision = decide(hit(client_ip=address), is_trap=True, history=History(), rules=RULES, now=NOW)
    assert decision.action is Action.RECORD
    assert "never listed" in decision.reason
    assert not decision.counts


def test_allowlisted_is_recorded_not_listed() -> None:
    decision = decide(hit(), is_trap=True, history=History(allowlisted=True), rules=RULES, now=NOW)
    assert (decision.action, decision.reason) == (Action.RECORD, "never listed: allowlisted")


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"mail_from": ""}, "null sender"),
        ({"mail_from": "", "stage": "rcpt"}, "null sender"),
        (
            {"mail_from": "double-bounce@example.net", "client_name": "mx.example.net"},
            "address-verification",
        ),
        (  # Postfix: double-bounce@$myorigin, seen at RCPT
            {
                "mail_from": "double-bounce@mx.example.net",
                "client_name": "mx.example.net",
                "stage": "rcpt",
            },
            "address-verification",
        ),
        (  # no verified name: the HELO stands in
            {"mail_from": "postmaster@example.net", "helo": "mx.example.net"},
            "address-verification",
        ),
        (
            {"rcpt_to": "mx1.example.net-1503146097-testing@example.org", "stage": "rcpt"},
            "random-recipient probe",
        ),
    ],
)
def test_callback_probes_are_evidence_but_never_list(
    changes: dict[str, object], fragment: str
) -> None:
    probe = hit(**changes)
    assert fragment in (probe_reason(probe) or "")
    decision = decide(probe, is_trap=True, history=History(), rules=RULES, now=NOW)
    assert decision.action is Action.RECORD and not decision.counts


@pytest.mark.parametrize("stage", [None, "rcpt", "data"])
@pytest.mark.parametrize("local", ["postmaster", "mailer-daemon", "double-bounce", "Postmaster"])
@pytest.mark.parametrize(
    ("sender_domain", "client_name", "helo"),
    [
        ("paypal.example", None, "spam.example"),  # phishing in a stranger's name
        ("paypal.example", "host.spam.example", "spam.example"),
        # A verified name elsewhere is not overruled by a HELO the sender chose.
        ("paypal.example", "host.spam.example", "mx.paypal.example"),
        ("example", None, "mx.example"),  # a bare TLD is nobody's own domain
    ],
)
def test_postmaster_of_another_domain_is_an_ordinary_sender(
    stage: str | None, local: str, sender_domain: str, client_name: str | None, helo: str
) -> None:
    """Issue 11: the local part alone made phishing unlistable, at every stage."""
    phish = hit(
        mail_from=f"{local}@{sender_domain}", client_name=client_name, helo=helo, stage=stage
    )
    assert probe_reason(phish) is None
    decision = decide(phish, is_trap=True, history=History(), rules=RULES, now=NOW)
    assert decision.action is Action.LIST and decision.counts


@pytest.mark.parametrize(
    "changes",
    [
        {"mail_from": "double-bounce@example.net", "client_name": "mx.example.net"},
        {"mail_from": "postmaster@example.net", "helo": "mx.example.net"},
        {"rcpt_to": "mx1.example.net-1503146097-testing@example.org"},
    ],
)
def test_a_message_sent_is_no_probe_whatever_its_shape(changes: dict[str, object]) -> None:
    """An Exim <= arrival or a Postfix DATA verdict carried a message: probes never do."""
    sent = hit(stage="data", **changes)
    assert probe_reason(sent) is None
    assert decide(sent, is_trap=True, history=History(), rules=RULES, now=NOW).action is (
        Action.LIST
    )


def test_a_bounce_to_a_trap_is_backscatter_recorded_not_listed() -> None:
    bounce = hit(mail_from="", stage="data")
    assert probe_reason(bounce) is None
    assert "backscatter" in (backscatter_reason(bounce) or "")
    decision = decide(bounce, is_trap=True, history=History(), rules=RULES, now=NOW)
    assert decision.action is Action.RECORD and not decision.counts
    assert "backscatter" in decision.reason
    assert backscatter_reason(hit(stage="data")) is None
    assert backscatter_reason(hit(mail_from="", stage="rcpt")) is None


def test_a_big_providers_host_is_held_not_listed() -> None:
    """Issue 11 reproduction: one hit from Gmail's outbound IP listed it at threshold 1."""
    gmail = hit(
        client_ip="209.85.220.41",
        client_name="mail-xyz.google.com",
        mail_from="someone@gmail.com",
        helo="mail-xyz.google.com",
        stage="data",
    )
    assert RULES.threshold == 1
    decision = decide(gmail, is_trap=True, history=History(), rules=RULES, now=NOW)
    assert decision.action is Action.HOLD
    assert "mail-xyz.google.com" in decision.reason and "(google.com)" in decision.reason
    assert decision.expires_at == NOW + timedelta(days=7) and decision.counts
    # Held stays held, later hits extending it, even one without the provider's name.
    later = replace(gmail, at=NOW + timedelta(hours=1), client_name=None)
    held = History(held=True, held_expires_at=decision.expires_at)
    again = decide(later, is_trap=True, history=held, rules=RULES, now=NOW)
    assert again.action is Action.HOLD and again.expires_at == later.at + timedelta(days=7)
    older = decide(gmail, is_trap=True, history=held, rules=RULES, now=NOW)
    assert (older.action, older.expires_at) == (Action.RECORD, decision.expires_at)
    # Once the operator released it, it is a listing like any other.
    active = History(active=True, active_expires_at=NOW + timedelta(days=1), earlier_listings=0)
    assert decide(later, is_trap=True, history=active, rules=RULES, now=NOW).action is (
        Action.EXTEND
    )


@pytest.mark.parametrize(
    ("client_name", "helo", "held"),
    [
        ("o1.ptr1234.sendgrid.net", "o1.ptr1234.sendgrid.net", True),
        ("mail-db8eur05on2041.outbound.protection.outlook.com", None, True),
        ("a8-30.smtp-out.amazonses.com.", None, True),  # trailing dot, as some MTAs log it
        ("MAIL-WR1-F41.GOOGLE.COM", None, True),
        ("google.com.spam.example", None, False),  # not inside google.com
        ("notgoogle.com", None, False),  # a suffix that is not a label boundary
        (None, "mail-wr1-f41.google.com", False),  # HELO is the sender's to choose
    ],
)
def test_hold_goes_by_the_verified_name_only(
    client_name: str | None, helo: str | None, held: bool
) -> None:
    candidate = hit(client_name=client_name, helo=helo)
    action = decide(candidate, is_trap=True, history=History(), rules=RULES, now=NOW).action
    assert action is (Action.HOLD if held else Action.LIST)


def test_hold_is_configurable_by_name_and_by_network() -> None:
    rules = Rules.from_settings(
        ListingSettings(provider_hosts=("relay.example",), held_networks=("46.0.0.0/16",))
    )
    google = hit(client_name="mail-xyz.google.com")
    assert decide(google, is_trap=True, history=History(), rules=rules, now=NOW).action is (
        Action.LIST
    )
    assert rules.hold_reason(hit(client_name="out.relay.example")) is not None
    by_network = decide(
        hit(client_ip="46.0.9.9"), is_trap=True, history=History(), rules=rules, now=NOW
    )
    assert by_network.action is Action.HOLD and "46.0.0.0/16" in by_network.reason
    none = Rules.from_settings(ListingSettings(provider_hosts=()))
    assert none.hold_reason(google) is None


def test_threshold_counts_hits_in_the_window() -> None:
    rules = Rules.from_settings(ListingSettings(threshold=3))
    first = decide(hit(), is_trap=True, history=History(hits_in_window=1), rules=rules, now=NOW)
    assert first.action is Action.RECORD and first.reason == "not listed yet: 2 of 3 hits"
    assert first.counts
    third = decide(hit(), is_trap=True, history=History(hits_in_window=2), rules=rules, now=NOW)
    assert third.action is Action.LIST


def test_repeat_offenders_stay_longer_up_to_the_cap() -> None:
    durations = [
        decide(
            hit(), is_trap=True, history=History(earlier_listings=n), rules=RULES, now=NOW
        ).expires_at
        - NOW  # type: ignore[operator]
        for n in range(6)
    ]
    assert durations[:4] == [timedelta(days=d) for d in (7, 14, 28, 56)]
    assert durations[4] == durations[5] == timedelta(days=90)


def test_active_listing_is_extended_only_forward() -> None:
    later = NOW + timedelta(days=30)
    kept = decide(
        hit(),
        is_trap=True,
        rules=RULES,
        now=NOW,
        history=History(active=True, active_expires_at=later, earlier_listings=0),
    )
    assert kept.action is Action.RECORD and kept.expires_at == later and kept.counts
    extended = decide(
        hit(),
        is_trap=True,
        rules=RULES,
        now=NOW,
        history=History(active=True, active_expires_at=NOW + timedelta(days=1)),
    )
    assert extended.action is Action.EXTEND
    assert extended.expires_at == NOW + timedelta(days=7)


def test_old_evidence_does_not_extend_into_the_past() -> None:
    decision = decide(
        hit(at=NOW - timedelta(days=7)),
        is_trap=True,
        rules=RULES,
        now=NOW,
        history=History(active=True, active_expires_at=None),
    )
    assert decision.action is Action.RECORD and decision.expires_at is None


def test_operator_listings_are_left_alone() -> None:
    decision = decide(
        hit(), is_trap=True, rules=RULES, now=NOW, history=History(active=True, active_manual=True)
    )
    assert decision.action is Action.RECORD


def test_only_hits_after_a_delisting_list_again() -> None:
    delisted = NOW - timedelta(hours=1)
    old = decide(
        hit(at=delisted - timedelta(minutes=5)),
        is_trap=True,
        rules=RULES,
        now=NOW,
        history=History(delisted_at=delisted, earlier_listings=1),
    )
    assert old.action is Action.RECORD and not old.counts
    new = decide(
        hit(at=delisted + timedelta(minutes=5)),
        is_trap=True,
        rules=RULES,
        now=NOW,
        history=History(delisted_at=delisted, earlier_listings=1),
    )
    assert new.action is Action.LIST


def test_evidence_older_than_a_listing_lives_does_not_list() -> None:
    old = decide(
        hit(at=NOW - timedelta(days=8)), is_trap=True, history=History(), rules=RULES, now=NOW
    )
    assert old.action is Action.RECORD and old.counts


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        ("prvs=1234abcdef=User@Example.COM", "user@example.com"),
        ("prvs=user=1234abcdef@example.com", "user@example.com"),
        ("prvs=notatag=user@example.com", "prvs=notatag=user@example.com"),
        ("plain@example.com", "plain@example.com"),
        ("", ""),
        (None, None),
    ],
)
def test_batv_senders_are_normalised_in_both_tag_orders(
    sender: str | None, expected: str | None
) -> None:
    assert normalise_sender(sender) == expected


@pytest.mark.parametrize(
    ("client_name", "mail_from", "helo", "expected"),
    [
        ("mail.spam.example", "x@spam.example", "whatever", "spam.example"),
        ("mail.spam.example", "prvs=1234abcdef=x@spam.example", None, "spam.example"),
        ("mx.victim.example", "x@spam.example", "mx.victim.example", "mx.victim.example"),
        (None, "x@spam.example", "spam.example", None),  # no verified name: never
        ("mail.other.example", "x@spam.example", "spam.example", None),  # forged sender
        ("host.example", "x@ample.example", None, None),  # suffix is not a label boundary
    ],
)
def test_domains_are_tied_only_through_the_verified_host_name(
    client_name: str | None, mail_from: str, helo: str | None, expected: str | None
) -> None:
    assert tied_domain(hit(client_name=client_name, mail_from=mail_from, helo=helo)) == expected


public_v4 = st.integers(0x2D000000, 0x5FFFFFFF).map(
    lambda n: f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
)
histories = st.builds(
    History,
    hits_in_window=st.integers(0, 20),
    earlier_listings=st.integers(0, 12),
    active=st.booleans(),
    active_expires_at=st.none() | st.integers(-30, 200).map(lambda d: NOW + timedelta(days=d)),
    active_manual=st.booleans(),
    allowlisted=st.booleans(),
    delisted_at=st.none() | st.integers(-30, 30).map(lambda d: NOW + timedelta(days=d)),
    held=st.booleans(),
    held_expires_at=st.none() | st.integers(-30, 200).map(lambda d: NOW + timedelta(days=d)),
).filter(lambda h: not (h.active and h.held))  # the store never has both
# Few names, so that a sender's domain, the verified name and the HELO often meet.
DOMAINS = ["example.net", "mx.example.net", "paypal.example", "spam.example", "google.com", "net"]
HOSTS = [None, "mx.example.net", "host.spam.example", "mail-x.google.com", "example.net"]
PROBE_LOCALS = ["postmaster", "mailer-daemon", "double-bounce", "PostMaster"]
senders = st.sampled_from(["", None]) | st.builds(
    "{}@{}".format, st.sampled_from([*PROBE_LOCALS, "a", "seller"]), st.sampled_from(DOMAINS)
)
hits_strategy = st.builds(
    hit,
    at=st.integers(-40, 1).map(lambda d: NOW + timedelta(days=d)),
    client_ip=public_v4 | st.sampled_from(["10.0.0.1", "127.0.0.2", "2001:db8::5", "fe80::2"]),
    mail_from=senders,
    rcpt_to=st.sampled_from(["trap@example.org", "h-1503146097-testing@example.org", None]),
    trap_asserted=st.booleans(),
    client_name=st.sampled_from(HOSTS),
    helo=st.sampled_from([*HOSTS, "[45.1.2.3]"]),
    stage=st.sampled_from([None, "rcpt", "data"]),
)
rules_strategy = st.builds(
    lambda threshold, factor: Rules.from_settings(
        ListingSettings(threshold=threshold, repeat_factor=factor)
    ),
    st.integers(1, 5),
    st.floats(1.0, 4.0),
)


@settings(max_examples=500, deadline=None)
@given(hits_strategy, st.booleans(), histories, rules_strategy)
def test_policy_invariants(hit_: TrapHit, is_trap: bool, history: History, rules: Rules) -> None:
    decision = decide(hit_, is_trap=is_trap, history=history, rules=rules, now=NOW)
    # Repeatable: the same evidence gives the same decision, from an equal copy too.
    assert decision == decide(
        replace(hit_), is_trap=is_trap, history=replace(history), rules=rules, now=NOW
    )
    if decision.action in (Action.LIST, Action.EXTEND, Action.HOLD):
        assert is_trap or hit_.trap_asserted
        assert not history.allowlisted
        assert probe_reason(hit_) is None and backscatter_reason(hit_) is None
        assert hit_.client_ip not in ("10.0.0.1", "127.0.0.2", "2001:db8::5", "fe80::2")
        assert history.hits_in_window + 1 >= rules.threshold
        assert not (history.active and history.active_manual)
        assert history.delisted_at is None or hit_.at > history.delisted_at
        assert decision.expires_at is not None and decision.expires_at > NOW
        assert decision.expires_at - hit_.at <= rules.max_duration
        assert (decision.action is Action.EXTEND) == history.active
    if decision.action is Action.LIST:  # never a big provider's host, never a held one
        assert rules.hold_reason(hit_) is None and not history.held
    if decision.action is Action.HOLD:
        assert history.held or rules.hold_reason(hit_) is not None
    if decision.action is Action.EXTEND and history.active_expires_at is not None:
        assert decision.expires_at > history.active_expires_at  # type: ignore[operator]
    assert decision.reason


@settings(max_examples=300, deadline=None)
@given(hits_strategy)
def test_a_data_stage_hit_is_never_a_probe(hit_: TrapHit) -> None:
    assert probe_reason(replace(hit_, stage="data")) is None


@settings(max_examples=500, deadline=None)
@given(
    hits_strategy,
    st.sampled_from(PROBE_LOCALS),
    st.sampled_from(DOMAINS),
    histories,
    rules_strategy,
)
def test_a_probe_name_at_a_strangers_domain_is_an_ordinary_sender(
    hit_: TrapHit, local: str, domain: str, history: History, rules: Rules
) -> None:
    """postmaster@, mailer-daemon@, double-bounce@ of a domain not the client's own: the
    same decision as any other sender of that domain, at every stage."""
    assume(not own_domain(hit_, domain))
    named = replace(hit_, mail_from=f"{local}@{domain}")
    ordinary = replace(hit_, mail_from=f"seller@{domain}")
    assert probe_reason(named) is None or probe_reason(ordinary) is not None
    assert decide(named, is_trap=True, history=history, rules=rules, now=NOW) == decide(
        ordinary, is_trap=True, history=history, rules=rules, now=NOW
    )


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 30), rules_strategy)
def test_duration_is_monotone_and_capped(listings: int, rules: Rules) -> None:
    assert rules.duration_for(listings) <= rules.duration_for(listings + 1) <= rules.max_duration


# The domain of the sending host follows the host's own listing (decide_domain).
HOST_LISTED = Decision(Action.LIST, "1 trap hit(s) within the window", NOW + timedelta(days=7))
OWN = hit(client_name="mx.spam.example", mail_from="seller@spam.example")


def test_a_host_listing_lists_its_own_domain_until_the_same_time() -> None:
    follows = decide_domain(OWN, "spam.example", HOST_LISTED, history=History(), now=NOW)
    assert follows == Decision(
        Action.LIST, "sending host mx.spam.example (45.1.2.3) is inside it", HOST_LISTED.expires_at
    )
    recorded = Decision(Action.RECORD, "not listed yet: 1 of 2 hits")
    assert decide_domain(OWN, "spam.example", recorded, history=History(), now=NOW) is None


@pytest.mark.parametrize(
    ("domain", "history"),
    [
        ("co.uk", History()),  # a public suffix is nobody's own domain
        ("spam.example", History(allowlisted=True)),
        ("spam.example", History(active=True, active_manual=True)),  # the operator's
        ("spam.example", History(delisted_at=NOW + timedelta(minutes=1))),  # delisted later
        ("spam.example", History(active=True, active_expires_at=NOW + timedelta(days=9))),
    ],
)
def test_a_domain_is_left_alone(domain: str, history: History) -> None:
    assert decide_domain(OWN, domain, HOST_LISTED, history=history, now=NOW) is None


def test_an_active_domain_listing_is_extended_only_forward() -> None:
    history = History(active=True, active_expires_at=NOW + timedelta(days=1))
    follows = decide_domain(OWN, "spam.example", HOST_LISTED, history=history, now=NOW)
    assert follows is not None and follows.action is Action.EXTEND
    assert follows.expires_at == HOST_LISTED.expires_at


def _domain_as_the_store_decided(
    hit_: TrapHit, domain: str, host: Decision, history: History
) -> Decision | None:
    """The rule rbl.store.evidence applied itself before it moved into the policy."""
    if host.action not in (Action.LIST, Action.EXTEND):
        return None
    if is_public_suffix(domain) or history.allowlisted:
        return None
    if history.active and history.active_manual:
        return None
    if history.delisted_at is not None and hit_.at <= history.delisted_at:
        return None
    expires = host.expires_at
    if history.active:
        if (
            history.active_expires_at is not None
            and expires is not None
            and history.active_expires_at >= expires
        ):
            return None
        action = Action.EXTEND
    else:
        action = Action.LIST
    reason = f"sending host {hit_.client_name} ({hit_.client_ip}) is inside it"
    return Decision(action, reason, expires)


@settings(max_examples=500, deadline=None)
@given(hits_strategy, histories.filter(lambda h: not h.held), rules_strategy)
def test_domain_invariants(hit_: TrapHit, history: History, rules: Rules) -> None:
    """The domain follows the host's real decision, by the rules of ``decide``, exactly
    as the store decided before (the store never holds a domain listing)."""
    host = decide(hit_, is_trap=True, history=History(), rules=rules, now=NOW)
    domain = tied_domain(hit_) or "spam.example"
    follows = decide_domain(hit_, domain, host, history=history, now=NOW)
    assert follows == _domain_as_the_store_decided(hit_, domain, host, history)
    if follows is not None:
        assert host.action in (Action.LIST, Action.EXTEND)
        assert follows.expires_at == host.expires_at and host.expires_at > NOW  # type: ignore[operator]
        assert not history.allowlisted and not (history.active and history.active_manual)
        assert history.delisted_at is None or hit_.at > history.delisted_at
        assert (follows.action is Action.EXTEND) == history.active
        if follows.action is Action.EXTEND and history.active_expires_at is not None:
            assert follows.expires_at > history.active_expires_at  # type: ignore[operator]


@settings(max_examples=300, deadline=None)
@given(hits_strategy, histories)
def test_a_held_domain_waits_for_the_operator(hit_: TrapHit, history: History) -> None:
    held = replace(history, active=False, active_expires_at=None, held=True)
    assert decide_domain(hit_, "spam.example", HOST_LISTED, history=held, now=NOW) is None
