"""IDN trap domains: one ASCII form for traps as stored and recipients as MTAs log them.

``rbl traps add '@bücher.example'`` stores ``xn--bcher-kva.example``; Postfix
and Exim log an SMTPUTF8 recipient in UTF-8. The trap matcher (ingest and the
policy feed alike) must see one domain in both spellings, for address traps
too, and the mapping must be the store's own (rbl.model.keys.normalise_domain).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rbl.errors import KeyFormatError
from rbl.model.idn import ascii_domain
from rbl.model.keys import normalise_domain
from rbl.model.traps import ADDRESS, DOMAIN, TrapMatcher, TrapSpec, parse_trap
from tests.support.database import db_rows
from tests.support.log_samples import LOGS, load
from tests.support.processes import rbl_command

UNICODE = "bücher.example"
ASCII = "xn--bcher-kva.example"


@pytest.mark.parametrize("added", [f"@{UNICODE}", f"@{ASCII}", "@BÜCHER.Example."])
@pytest.mark.parametrize(
    "recipient",
    [f"anyone@{UNICODE}", f"anyone@{ASCII}", "Anyone+x@BÜCHER.example", "a@bücher\u3002example"],
)
def test_a_domain_trap_matches_in_either_form(added: str, recipient: str) -> None:
    spec = parse_trap(added)
    assert spec == TrapSpec(DOMAIN, ASCII)  # the stored form
    assert TrapMatcher([spec]).match(recipient) == spec


@pytest.mark.parametrize("added", [f"trap@{UNICODE}", f"trap@{ASCII}", "Trap@Bücher.EXAMPLE"])
@pytest.mark.parametrize("recipient", [f"trap@{UNICODE}", f"TRAP@{ASCII}", f"trap+tag@{UNICODE}."])
def test_an_address_trap_matches_in_either_form(added: str, recipient: str) -> None:
    spec = parse_trap(added)
    assert spec == TrapSpec(ADDRESS, f"trap@{ASCII}")
    matcher = TrapMatcher([spec])
    assert matcher.match(recipient) == spec
    assert matcher.match(f"other@{UNICODE}") is None
    assert matcher.match("trap@bucher.example") is None


def test_a_hand_made_unicode_spec_is_matched_as_its_ascii_form() -> None:
    matcher = TrapMatcher([TrapSpec(DOMAIN, UNICODE), TrapSpec(ADDRESS, "t@bücher.test")])
    assert matcher.match(f"x@{ASCII}") == TrapSpec(DOMAIN, ASCII)
    assert matcher("t@xn--bcher-kva.test")


@pytest.mark.parametrize(
    "domain",
    ["a..b.example", "x" * 64 + ".example", "bü\u0080cher.example", "\ufffd.example", "."],
)
def test_unconvertible_domains_stay_as_they_are_and_match_nothing(domain: str) -> None:
    assert ascii_domain(domain) == domain.lower() or not ascii_domain(domain).isascii()
    assert TrapMatcher([parse_trap(f"@{UNICODE}")]).match(f"a@{domain}") is None


LABELS = st.text("abcxyz-09üßÜ\u0308\u00ad\u3002", min_size=1, max_size=12)


@given(st.lists(LABELS, min_size=2, max_size=3).map(".".join))
def test_matching_maps_a_domain_exactly_as_the_store_does(name: str) -> None:
    """What traps add would store for a name is what the matcher makes of it in a hit."""
    try:
        stored = normalise_domain(name)
    except KeyFormatError:
        return
    assert ascii_domain(name).rstrip(".") == stored


def fresh(line: str, ago: timedelta = timedelta(hours=1)) -> str:
    """A sample line with its Exim or syslog stamp moved to an hour ago (fresh evidence)."""
    when = datetime.now(UTC) - ago
    line = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", when.strftime("%Y-%m-%d %H:%M:%S"), line)
    return re.sub(r"^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d", when.strftime("%b %d %H:%M:%S"), line)


@pytest.mark.slow
def test_ingest_of_real_smtputf8_lines_lists_the_senders_of_a_trap_added_in_unicode(
    config_path: Path, tmp_path: Path
) -> None:
    """Real Postfix and Exim lines with UTF-8 recipients, a trap added as '@bücher.example':
    stored as punycode, matched in UTF-8, the hits' trap domain kept in the stored form."""
    rbl_command(config_path, "traps", "add", f"@{UNICODE}")
    assert ASCII in rbl_command(config_path, "traps", "list").stdout
    for fmt, sample in (("postfix", "postfix.smtputf8.log"), ("exim", "exim.delivered.log")):
        log = tmp_path / sample
        lines = [fresh(case.line) for case in load(LOGS / sample)]
        log.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        rbl_command(config_path, "ingest", "--format", fmt, str(log))
    listed = {str(key) for (key,) in db_rows(config_path, "SELECT key FROM listings")}
    assert listed == {"45.33.13.20", "45.33.12.21"}
    stored = db_rows(config_path, "SELECT client_ip, rcpt_to, trap_domain FROM hits")
    assert sorted(stored) == [
        ("45.33.12.21", '"ü x"@bücher.example', ASCII),
        ("45.33.12.21", "refused@bücher.example", ASCII),
        ("45.33.12.21", "spamtrap@bücher.example", ASCII),
        ("45.33.13.20", "spamtrap@bücher.example", ASCII),
    ]
