"""Issue 11 evasion and provider classes through a real Postfix: XCLIENT says who connects
(address, verified name, HELO), ``check_policy_service`` hands each RCPT to the policy
feed, and the hits it produced go through the listing policy into a real store."""

from __future__ import annotations

import ipaddress
import shutil
import smtplib
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from rbl.config import parse_settings
from rbl.model.traphit import TrapHit
from rbl.model.traps import TrapMatcher, parse_trap
from rbl.policy.allowlist import Allowlist
from rbl.policy.listing import Rules
from rbl.server.follower import IndexFollower, build_zones, load_index
from rbl.store.database import open_engine
from rbl.store.evidence import record_hits
from rbl.store.reader import ListingReader
from rbl.store.schema import hits, listings
from tests.support.hostile_sessions import TRAP
from tests.support.postfix import (
    MAIN_CF,
    PolicyServer,
    run_postfix,
    stop_policy_server,
    unavailable,
)
from tests.support.processes import require_peer

pytestmark = pytest.mark.slow

SETTINGS = parse_settings(
    {"zones": [{"name": "bl.example.org", "kind": "ip", "ns": ["ns1.example.org"]}]},
    source=Path("test.toml"),
)
# (client address, XCLIENT NAME, HELO, MAIL FROM)
SESSIONS = [
    ("209.85.220.41", "mail-xyz.google.com", "mail-xyz.google.com", "someone@gmail.com"),
    ("45.1.1.1", "host.spam.example", "spam.example", "postmaster@paypal.example"),
    ("45.1.1.2", "[UNAVAILABLE]", "bank-security.example", "mailer-daemon@bank.example"),
    ("45.1.1.3", "mx.example.net", "mx.example.net", "double-bounce@mx.example.net"),
    ("45.1.1.4", "mx.example.net", "mx.example.net", ""),
]


@pytest.fixture
def xclient_mta(
    tmp_path: Path,
    policy_server: PolicyServer,
) -> Iterator[int]:
    """The live test's Postfix, trusting XCLIENT from loopback."""
    require_peer(unavailable(), "Postfix")
    assert "smtpd_authorized_xclient_hosts = 127.0.0.0/8" in MAIN_CF
    directory = Path(tempfile.mkdtemp(prefix="rbl-postfix-"))
    directory.chmod(0o755)
    try:
        yield from run_postfix(directory, tmp_path, policy_server)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def send(port: int, address: str, name: str, helo: str, sender: str) -> None:
    """One SMTP session as ``address`` would have it: stops after RCPT, as a probe does."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname=helo, timeout=30) as smtp:
        smtp.ehlo()
        code, reply = smtp.docmd("XCLIENT", f"ADDR={address} NAME={name} HELO={helo}")
        assert code == 220, reply
        smtp.ehlo(helo)
        assert smtp.mail(sender)[0] == 250
        # The feed answers DUNNO (never a 4xx); the instance's own access map then
        # refuses the trap address, as an operator's would.
        code = smtp.rcpt(TRAP)[0]
        assert code in (250, 550, 554), code


def test_probes_by_shape_and_provider_holds_with_real_postfix(
    xclient_mta: int,
    policy_server: PolicyServer,
    database_url: str,
) -> None:
    for session in SESSIONS:
        send(xclient_mta, *session)
    records = stop_policy_server(policy_server)
    found = [record["hit"] for record in records if "hit" in record]
    batch = [
        TrapHit(**{**fields, "at": datetime.fromisoformat(str(fields["at"]))})  # type: ignore[arg-type, dict-item]
        for fields in found
    ]
    assert [(h.client_ip, h.mail_from, h.stage) for h in batch] == [
        (address, sender, "rcpt") for address, _, _, sender in SESSIONS
    ]
    assert batch[0].client_name == "mail-xyz.google.com" and batch[2].client_name is None
    engine = open_engine(database_url)
    try:
        with engine.begin() as conn:
            result = record_hits(
                conn,
                batch,
                matcher=TrapMatcher([parse_trap(TRAP)]),
                allow=Allowlist(),
                rules=Rules.from_settings(SETTINGS.listing),
                ip_zone=SETTINGS.zone("bl.example.org"),
                domain_zone=None,
                now=datetime.now(UTC),
            )
        with engine.connect() as conn:
            states = dict(conn.execute(select(listings.c.key, listings.c.state)).all())
            reasons = dict(conn.execute(select(hits.c.client_ip, hits.c.reason)).all())
    finally:
        engine.dispose()
    assert result.actions == {"list": 2, "hold": 1, "record": 2}
    assert states == {"209.85.220.41": "held", "45.1.1.1": "active", "45.1.1.2": "active"}
    assert "address-verification probe" in reasons["45.1.1.3"]
    assert "null sender" in reasons["45.1.1.4"]
    follower = IndexFollower(build_zones(SETTINGS))
    reader = ListingReader(database_url)
    try:
        load_index(reader, follower)
    finally:
        reader.close()
    zone = follower.zones["bl.example.org"]
    in_dns = {
        address
        for address, *_ in SESSIONS
        if zone.index.v4.lookup(int(ipaddress.IPv4Address(address)))
    }
    assert in_dns == {"45.1.1.1", "45.1.1.2"}
