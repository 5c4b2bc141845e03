"""Probes by shape and held listings, end to end: JSON lines through ``rbl ingest``, the
review CLI, and what the DNS side (snapshot, change log) and the dump files see."""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from rbl.cli import main
from rbl.config import load_settings, parse_settings
from rbl.dumps.writer import write_dumps
from rbl.errors import ConfigError
from rbl.feeds.parsers import jsonlines
from rbl.feeds.parsers.context import ParseContext
from rbl.model.keys import parse_ip_key
from rbl.model.traphit import ParseError
from rbl.server.follower import IndexFollower, build_zones, load_index
from rbl.store.database import open_engine
from rbl.store.public import public_status
from rbl.store.reader import ListingReader
from rbl.store.schema import audit_log, listings
from tests.support.config import database_url_of

START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
GMAIL = "209.85.220.41"
OUTLOOK = "40.107.22.41"


def run(config: Path, *args: str) -> Result:
    result = CliRunner().invoke(main, ["-c", str(config), "--actor", "alice", *args])
    return result


def line(ip: str, sender: str, *, stage: str | None, name: str | None = None) -> str:
    record: dict[str, object] = {
        "time": START.isoformat(),
        "ip": ip,
        "from": sender,
        "to": "trap@example.org",
        "helo": name or "spam.example",
    }
    if name is not None:
        record["client_name"] = name
    if stage is not None:
        record["stage"] = stage
    return json.dumps(record)


LOG = [
    line(GMAIL, "someone@gmail.com", stage="data", name="mail-xyz.google.com"),
    line(OUTLOOK, "a@outlook.com", stage="rcpt", name="mail-x.outbound.protection.outlook.com"),
    line("45.1.1.1", "postmaster@paypal.example", stage="rcpt"),  # phishing, at RCPT
    line("45.1.1.2", "mailer-daemon@bank.example", stage=None),  # phishing, stage unknown
    line("45.1.1.3", "double-bounce@mx.example.net", stage="rcpt", name="mx.example.net"),
    line("45.1.1.4", "", stage="data"),  # a bounce to the trap: backscatter
]


def listed(follower: IndexFollower, address: str) -> bool:
    zone = follower.zones["bl.example.org"]
    return bool(zone.index.v4.lookup(int(ipaddress.IPv4Address(address))))


def snapshot(config: Path) -> IndexFollower:
    """A DNS process's view at start-up: ``rbl serve`` loads it the same way."""
    follower = IndexFollower(build_zones(load_settings(config)))
    reader = ListingReader(database_url_of(config))
    try:
        load_index(reader, follower)
    finally:
        reader.close()
    return follower


def catch_up(config: Path, follower: IndexFollower) -> None:
    reader = ListingReader(database_url_of(config))
    try:
        while batch := reader.read_changes(follower.position, 100):
            follower.apply(batch)
    finally:
        reader.close()


def dumped(config: Path, directory: Path) -> str:
    """Every dump file's text (rbldnsd, plain, zone file) for the IP zone."""
    reader = ListingReader(database_url_of(config))
    try:
        write_dumps(load_settings(config), reader, directory, datetime.now(UTC))
    finally:
        reader.close()
    return "\n".join(
        path.read_text()
        for path in sorted(directory.rglob("*"))
        if path.suffix in {".txt", ".ip4set", ".zone"}
    )


@pytest.fixture
def ingested(config_path: Path, tmp_path: Path) -> Path:
    assert run(config_path, "traps", "add", "trap@example.org").exit_code == 0
    log = tmp_path / "hits.jsonl"
    log.write_text("\n".join(LOG) + "\n")
    result = run(config_path, "ingest", "--format", "json", str(log))
    assert result.exit_code == 0, result.output
    assert "listed: 2" in result.output and "held for review: 2" in result.output
    return config_path


def test_held_listings_reach_no_dns_and_no_dump_until_released(
    ingested: Path, tmp_path: Path
) -> None:
    following = snapshot(ingested)
    assert listed(following, "45.1.1.1") and listed(following, "45.1.1.2")
    for address in (GMAIL, OUTLOOK, "45.1.1.3", "45.1.1.4"):
        assert not listed(following, address), address
    text = dumped(ingested, tmp_path / "before")
    assert "45.1.1.1" in text and GMAIL not in text and OUTLOOK not in text

    held = run(ingested, "list", "held")
    assert held.exit_code == 0, held.output
    rows = held.output.splitlines()
    assert len(rows) == 2 and all("\t1 hit(s)\t" in row for row in rows)
    assert any(GMAIL in row and "mail-xyz.google.com is a big provider" in row for row in rows)

    released = run(ingested, "list", "release", GMAIL, "--reason", "reviewed: compromised", "--yes")
    assert released.exit_code == 0, released.output
    assert f"released {GMAIL}" in released.output
    rejected = run(ingested, "list", "reject", OUTLOOK, "--reason", "shared relay")
    assert rejected.exit_code == 0, rejected.output
    again = run(ingested, "list", "release", OUTLOOK, "--reason", "x", "--yes")
    assert again.exit_code != 0 and "no listing held for review" in again.output

    catch_up(ingested, following)  # a running server follows the change log
    assert listed(following, GMAIL) and not listed(following, OUTLOOK)
    fresh = snapshot(ingested)
    assert listed(fresh, GMAIL) and not listed(fresh, OUTLOOK)
    text = dumped(ingested, tmp_path / "after")
    assert GMAIL in text and OUTLOOK not in text
    assert run(ingested, "list", "held").output.strip() == "no listings are held for review"

    engine = open_engine(database_url_of(ingested))
    try:
        with engine.connect() as conn:
            audits = [
                (a.actor, a.action, a.key, a.reason)
                for a in conn.execute(select(audit_log).order_by(audit_log.c.id))
                if a.action in ("release", "reject")
            ]
            states = dict(conn.execute(select(listings.c.key, listings.c.state)).all())
    finally:
        engine.dispose()
    assert audits == [
        ("alice", "release", GMAIL, "reviewed: compromised"),
        ("alice", "reject", OUTLOOK, "shared relay"),
    ]
    assert states == {
        GMAIL: "active",
        OUTLOOK: "removed",
        "45.1.1.1": "active",
        "45.1.1.2": "active",
    }


def test_json_stage_must_be_rcpt_or_data() -> None:
    ctx = ParseContext(now=datetime.now(UTC))
    (hit,) = jsonlines.parse(LOG[0], ctx)
    assert hit.stage == "data"
    (unknown,) = jsonlines.parse(line("45.1.1.2", "a@b.example", stage=None), ctx)
    assert unknown.stage is None
    with pytest.raises(ParseError, match="field 'stage' must be"):
        jsonlines.parse(line("45.1.1.2", "a@b.example", stage="DATA "), ctx)


def listing_config(**listing: object) -> dict[str, object]:
    return {
        "zones": [{"name": "bl.example.org", "kind": "ip", "ns": ["ns1.example.org"]}],
        "listing": listing,
    }


def test_provider_hosts_default_and_configured() -> None:
    default = parse_settings(listing_config(), source=Path("t.toml")).listing
    assert {"google.com", "outlook.com", "amazonses.com", "sendgrid.net"} <= set(
        default.provider_hosts
    )
    mine = parse_settings(
        listing_config(
            provider_hosts=["Relay.Example.", "relay.example"], held_networks=["46.0.0.0/16"]
        ),
        source=Path("t.toml"),
    ).listing
    assert mine.provider_hosts == ("relay.example",) and mine.held_networks == ("46.0.0.0/16",)
    assert (
        parse_settings(
            listing_config(provider_hosts=[]), source=Path("t.toml")
        ).listing.provider_hosts
        == ()
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["com"], "'com' is a top-level domain"),
        ("google.com", "provider_hosts must be a list of domains"),
        (["bad domain.example"], "provider_hosts entry 'bad domain.example'"),
    ],
)
def test_bad_provider_hosts_name_the_entry(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_settings(listing_config(provider_hosts=value), source=Path("t.toml"))


def test_the_public_status_of_a_held_key_is_never_listed(ingested: Path) -> None:
    """Held, and after the hold is rejected: not listed, and never 'was listed until'."""
    engine = open_engine(database_url_of(ingested))
    now = datetime.now(UTC)
    try:
        with engine.connect() as conn:
            held = public_status(conn, "bl.example.org", parse_ip_key(GMAIL), now=now)
            listed_one = public_status(conn, "bl.example.org", parse_ip_key("45.1.1.1"), now=now)
        assert run(ingested, "list", "reject", GMAIL, "--reason", "relay").exit_code == 0
        with engine.connect() as conn:
            rejected = public_status(conn, "bl.example.org", parse_ip_key(GMAIL), now=now)
    finally:
        engine.dispose()
    assert listed_one.listing is not None
    for status in (held, rejected):
        assert status.listing is None and status.last_listing is None
