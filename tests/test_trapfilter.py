"""rbl.trapfilter: which texts name a trap, and how they are redacted (whole, never in part)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rbl.trapfilter import REDACTED, TrapFilter, TrapTextError

TRAPS = TrapFilter.of(["trap@example.org", "o'brien@example.net"], ["abandoned.example"])


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("mail to trap@example.org now", "mail to [redacted] now"),
        ("<TRAP@Example.ORG>", "<[redacted]>"),
        ("trap+news@example.org;", "[redacted];"),
        ("prvs=1234abcd=trap@example.org", "[redacted]"),
        ("SRS0=hh=tt=example.org=trap@forwarder.example", "[redacted]"),
        ("box-trap@example.org", "[redacted]"),
        ("o&#39;brien@example.net", "[redacted]"),
        ("boss@abandoned.example.", "[redacted]"),
        ("see /lookup/abandoned.example", "see /lookup/[redacted]"),
        ("twice: trap@example.org, trap@example.org", "twice: [redacted], [redacted]"),
        ("trap@example.org.evil.example", "[redacted]"),
        # Not traps: other addresses at the domain, other names ending in the trap domain.
        ("other@example.org", "other@example.org"),
        ("bl.example.org and mail.abandoned.example", "bl.example.org and mail.abandoned.example"),
    ],
)
def test_redaction(text: str, shown: str) -> None:
    assert TRAPS.redact(text) == shown


def test_check_names_the_trap_and_without_drops_what_a_visitor_sent() -> None:
    with pytest.raises(TrapTextError, match=r"--message names the trap trap@example\.org"):
        TRAPS.check("hit Trap@example.org", "--message")
    assert TRAPS.check("all clear", "--message") == "all clear"
    echo = TRAPS.without(["/lookup/abandoned.example"])
    assert echo.redact("abandoned.example trap@example.org") == "abandoned.example [redacted]"
    assert len(echo) == len(TRAPS) - 1 and TRAPS.without(["nothing"]) is TRAPS


ADDRESS_CHARS = st.text("abcdefghijklmnopqrstuvwxyz0123456789._+-=@<>\"' ;:,/", max_size=20)


@given(ADDRESS_CHARS, ADDRESS_CHARS, st.sampled_from(["trap@example.org", "x@abandoned.example"]))
def test_no_text_around_a_trap_gets_it_through(before: str, after: str, trap: str) -> None:
    shown = TRAPS.redact(before + trap.upper() + after)
    assert trap not in shown.lower()
    assert REDACTED in shown
