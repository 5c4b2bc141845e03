"""The text rule and the zone guess the CLI and the site share (rbl.model.text, rbl.model.guess)."""

from __future__ import annotations

import pytest

from rbl.errors import KeyFormatError
from rbl.model.guess import guess_kind
from rbl.model.keys import ZoneKind, parse_key
from rbl.model.text import REQUEST_TOKEN, describe_character, forbidden_character


@pytest.mark.parametrize(
    ("text", "allowed", "found"),
    [
        ("plain text, with ünïcödé", "", None),
        ("a\x00b", "", "\x00"),
        ("a\x1b[2J", "", "\x1b"),
        ("del\x7f", "", "\x7f"),
        ("c1\x85", "", "\x85"),
        ("\u202eevil", "", "\u202e"),
        ("line\nbreak", "", "\n"),
        ("line\nbreak\tand tab", "\t\n", None),
        ("not utf-8 \udcff", "", "\udcff"),  # surrogateescape of the byte 0xFF
        ("lone \ud800 surrogate", "", "\ud800"),
        ("lone \udfff", "\t\n", "\udfff"),
    ],
)
def test_forbidden_character(text: str, allowed: str, found: str | None) -> None:
    assert forbidden_character(text, allowed) == found


def test_describe_character() -> None:
    assert describe_character("\x1b") == "the control character U+001B"
    assert describe_character("\udcff") == "a byte (0xFF) that is not UTF-8"
    assert describe_character("\ud800") == "the lone surrogate U+D800"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("192.0.2.1", ZoneKind.IP),
        ("192.0.2.0/24", ZoneKind.IP),
        ("2001:db8::1", ZoneKind.IP),
        ("::/0", ZoneKind.IP),
        ("999.1.2.3", ZoneKind.IP),  # a bad address, not a domain: its error says so
        ("1.2.3.4.5", ZoneKind.IP),
        ("1234", ZoneKind.DOMAIN),  # no dot: ipaddress never reads it, a domain label may be
        ("1234/24", ZoneKind.DOMAIN),
        ("spam.example", ZoneKind.DOMAIN),
        ("*.spam.example", ZoneKind.DOMAIN),
        ("123.example", ZoneKind.DOMAIN),
        ("", ZoneKind.DOMAIN),
    ],
)
def test_guess_kind(text: str, kind: ZoneKind) -> None:
    assert guess_kind(text) is kind


def test_1234_is_what_the_key_parsers_make_of_it() -> None:
    """The guess agrees with rbl.model.keys: "1234" is a domain name and no IP key."""
    with pytest.raises(KeyFormatError, match="'1234' is not an IP address"):
        parse_key(ZoneKind.IP, "1234")
    assert parse_key(guess_kind("1234"), "1234").text == "1234"


@pytest.mark.parametrize(
    ("token", "matches"),
    [
        ("A" * 32, True),
        ("a-b_c" * 4, True),
        ("x" * 15, False),
        ("x" * 65, False),
        ("x<y" * 8, False),
    ],
)
def test_request_token_shape(token: str, matches: bool) -> None:
    assert bool(REQUEST_TOKEN.fullmatch(token)) is matches
