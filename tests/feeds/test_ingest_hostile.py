"""``rbl ingest`` of real hostile Exim and Postfix logs lists exactly the real senders.

The logs are tests/data/logs/{exim,postfix}.hostile.log: what real Exim 4.96
and Postfix wrote for the hostile sessions of tests/support/hostile_sessions.py (HELOs, senders
and recipients imitating other fields, 46.46.46.x and imitated.example among
them). Their stamps are moved to an hour ago so the hits are fresh evidence.
On both backends: the IP zone holds exactly the connecting addresses whose
trap hits the parser read, the domain zone only the real forward-confirmed
sender's domain, no imitated address or domain anywhere, every trap line read
or refused (reported as malformed), none silently lost.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.database import db_rows
from tests.support.hostile_sessions import IMITATED_DOMAIN, IMITATED_IPS, TRAP, TRAP_DOMAIN
from tests.support.log_samples import LOGS, load
from tests.support.processes import rbl_command

pytestmark = pytest.mark.slow
AN_HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)
# Connecting addresses whose trap hits the sample expectations say are read.
EXIM_LISTED = {f"45.33.12.{n}" for n in (1, 2, 4, 5, 6, 7, 8, 9, 10, 11)}
POSTFIX_LISTED = {f"45.33.13.{n}" for n in (1, 2, 3, 4, 5, 6, 8, 9, 10)}


def fresh(line: str) -> str:
    """The line with its Exim or syslog stamp moved to an hour ago."""
    line = re.sub(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", AN_HOUR_AGO.strftime("%Y-%m-%d %H:%M:%S"), line
    )
    return re.sub(
        r"^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d", AN_HOUR_AGO.strftime("%b %d %H:%M:%S"), line
    )


def test_ingest_of_hostile_real_logs_lists_only_the_real_senders(
    config_path: Path, tmp_path: Path
) -> None:
    with config_path.open("a") as config:  # the RHSBL zone for domains tied to the sender
        config.write('\n[listing]\nip_zone = "bl.example.org"\ndomain_zone = "dbl.example.org"\n')
    rbl_command(config_path, "traps", "add", TRAP, "@" + TRAP_DOMAIN)
    refused = 0
    trap_hits = 0
    for fmt in ("exim", "postfix"):
        cases = load(LOGS / f"{fmt}.hostile.log")
        refused += sum(1 for case in cases if case.error is not None)
        trap_hits += sum(
            1
            for case in cases
            for hit in case.hits or ()
            if hit["rcpt_to"] == TRAP or str(hit["rcpt_to"]).endswith("@" + TRAP_DOMAIN)
        )
        log = tmp_path / f"{fmt}.log"
        log.write_text("".join(fresh(case.line) + "\n" for case in cases), encoding="utf-8")
        result = rbl_command(config_path, "ingest", "--format", fmt, str(log))
        malformed = sum(1 for case in cases if case.error is not None)
        assert f"malformed: {malformed}" in result.stdout, result.stdout
    assert refused == 1 and trap_hits == 22

    listed = db_rows(
        config_path, "SELECT zone, key FROM listings WHERE state = 'active' ORDER BY zone, key"
    )
    ips = {str(key) for zone, key in listed if zone == "bl.example.org"}
    domains = {str(key) for zone, key in listed if zone == "dbl.example.org"}
    assert ips == EXIM_LISTED | POSTFIX_LISTED
    assert not ips & set(IMITATED_IPS)
    # Only names tied to the verified client name: session 10's sender domain, and
    # session 2's HELO through Postfix (equal to its name); never the imitated one.
    assert domains == {"real-spam.example", "mail.real2.example"}, domains
    assert not any(IMITATED_DOMAIN in domain for domain in domains)

    stored = db_rows(config_path, "SELECT client_ip, client_name, rcpt_to FROM hits")
    trapped = [row for row in stored if row[2] == TRAP or str(row[2]).endswith("@" + TRAP_DOMAIN)]
    assert len(trapped) == trap_hits  # every trap hit the parser read is kept
    assert not {row[0] for row in stored} & set(IMITATED_IPS)
    assert not any(IMITATED_DOMAIN in str(row[1] or "") for row in stored)
