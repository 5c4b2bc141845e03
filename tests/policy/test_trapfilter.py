"""rbl.policy.trapfilter: which texts name a trap, and how they are redacted (whole only)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rbl.policy.trapfilter import REDACTED, TrapFilter, TrapTextError

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


# --- IDN: traps are stored in the ASCII form, MTAs log SMTPUTF8 recipients in UTF-8 -------

IDN_TRAPS = TrapFilter.of(["trap@xn--bcher-kva.example", "pöst@example.org"], ["bücher.test"])


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("to=<trap@bücher.example>, proto=ESMTP", "to=<[redacted]>, proto=ESMTP"),
        ("RCPT Trap@BÜCHER.example: no such user", "RCPT [redacted]: no such user"),
        ("trap@bu\u0308cher.example", "[redacted]"),  # decomposed ü: nameprep composes it
        ("trap@b\u00fc\u00adcher.example\u00bb", "[redacted]\u00bb"),  # soft hyphen, then »
        ("«trap@\uff42ücher。example»", "«[redacted]»"),  # fullwidth letter, ideographic dot
        ("trap@xn--bcher-kva.example", "[redacted]"),
        ("pöst@example.org and PÖST@example.org", "[redacted] and [redacted]"),
        ("see bücher.test and xn--bcher-kva.test", "see [redacted] and [redacted]"),
        ("a@bücher.test.evil", "[redacted]"),
        # Not traps: other mailboxes there, names that end in a trap domain.
        ("other@bücher.example", "other@bücher.example"),
        ("mail.bücher.test", "mail.bücher.test"),
        ("post@example.org — é", "post@example.org — é"),
    ],
)
def test_idn_redaction_in_both_forms(text: str, shown: str) -> None:
    assert IDN_TRAPS.redact(text) == shown


def test_traps_given_in_unicode_are_kept_in_the_ascii_form() -> None:
    given_unicode = TrapFilter.of(["trap@Bücher.example"], ["bücher.test"])
    assert given_unicode == TrapFilter.of(["trap@xn--bcher-kva.example"], ["xn--bcher-kva.test"])
    assert given_unicode.find("x trap@bücher.example") == "trap@xn--bcher-kva.example"


LABEL_PIECES = st.sampled_from(
    ["b", "ü", "u\u0308", "Ü", "\u00ad", "\uff42", "cher", "x", "-", "1", "»", " ", "@", "<"]
)
# Ways to write the label "bücher" that nameprep maps to the same ASCII form.
BUECHER = ["bücher", "BÜCHER", "bu\u0308cher", "bü\u00adcher", "\uff42ücher", "bü\u200bcher"]
DOMAIN_TEXT = st.one_of(
    st.sampled_from(BUECHER), st.lists(LABEL_PIECES, min_size=1, max_size=6).map("".join)
)


@given(
    local=st.sampled_from(["trap", "TRAP", "trap+x", "pöst", "other"]),
    first=DOMAIN_TEXT,
    dot=st.sampled_from([".", "\u3002", "\uff0e"]),
    last=st.sampled_from(["example", "EXAMPLE", "example.", "org"]),
    before=ADDRESS_CHARS,
)
def test_what_the_matcher_calls_a_trap_the_filter_redacts(
    local: str, first: str, dot: str, last: str, before: str
) -> None:
    """Any recipient text the trap matcher matches, the public filter finds and removes."""
    from rbl.model.traps import TrapMatcher, parse_trap

    matcher = TrapMatcher([parse_trap("trap@bücher.example"), parse_trap("pöst@bücher.org")])
    traps = TrapFilter.of(["trap@xn--bcher-kva.example", "pöst@xn--bcher-kva.org"], [])
    recipient = f"{local}@{first}{dot}{last}"
    if matcher.match(recipient) is None:
        return
    text = f"{before} to=<{recipient}>"
    assert traps.find(text) is not None, text
    shown = traps.redact(text)
    assert REDACTED in shown and recipient.lower() not in shown.lower(), shown


@pytest.mark.parametrize("label", BUECHER)
def test_every_spelling_of_the_label_is_the_trap_to_the_matcher(label: str) -> None:
    """The property above is not empty: each of these spellings is a match it checks."""
    from rbl.model.traps import TrapMatcher, parse_trap

    matcher = TrapMatcher([parse_trap("trap@bücher.example")])
    assert matcher.match(f"Trap+x@{label}.example") is not None
    assert matcher.match(f"trap@{label}\u3002example.") is not None
    assert matcher.match(f"other@{label}.example") is None
