"""rbl.model.codes: which 127.0.0.0/8 addresses a listing may answer with."""

from __future__ import annotations

import pytest

from rbl.errors import CodeError, RblError
from rbl.model.codes import MAX_CODES, parse_code, parse_codes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.2", "127.0.0.2"),
        ("127.0.0.10", "127.0.0.10"),
        (" 127.0.0.4\t", "127.0.0.4"),
        ("127.1.0.0", "127.1.0.0"),
        ("127.255.254.255", "127.255.254.255"),
    ],
)
def test_parse_code_accepts_listing_codes(text: str, expected: str) -> None:
    assert parse_code(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("127.0.0.1", "never a listing"),
        ("127.0.0.0", "never a listing"),
        ("127.255.255.0", "reserved"),
        ("127.255.255.2", "reserved"),
        ("127.255.255.255", "reserved"),
        ("10.0.0.2", "outside 127.0.0.0/8"),
        ("128.0.0.2", "outside 127.0.0.0/8"),
        ("garbage", "not an IPv4 address"),
        ("", "not an IPv4 address"),
        ("127.0.0.256", "not an IPv4 address"),
        ("127.0.0.02", "not an IPv4 address"),
        ("::1", "not an IPv4 address"),
    ],
)
def test_parse_code_rejects_and_names_the_input(text: str, why: str) -> None:
    with pytest.raises(CodeError) as caught:
        parse_code(text)
    message = str(caught.value)
    assert repr(text) in message
    assert why in message
    assert isinstance(caught.value, RblError)


def test_parse_codes_sorts_numerically_and_deduplicates() -> None:
    assert parse_codes("127.0.0.10, 127.0.0.9,127.0.0.2,127.0.0.9") == (
        "127.0.0.2",
        "127.0.0.9",
        "127.0.0.10",
    )


def test_parse_codes_ignores_empty_parts() -> None:
    assert parse_codes(",127.0.0.3,, ") == ("127.0.0.3",)


def test_parse_codes_single() -> None:
    assert parse_codes("127.0.0.2") == ("127.0.0.2",)


@pytest.mark.parametrize("text", ["", " ", ",", " , ,"])
def test_parse_codes_requires_one_code(text: str) -> None:
    with pytest.raises(CodeError, match="no return code"):
        parse_codes(text)


def test_parse_codes_names_the_bad_part() -> None:
    with pytest.raises(CodeError) as caught:
        parse_codes("127.0.0.2,127.0.0.1")
    assert "'127.0.0.1'" in str(caught.value)


def many(count: int) -> str:
    """``count`` distinct codes, the longest form last (127.0.x.y)."""
    return ",".join(f"127.0.{n // 250}.{n % 250 + 2}" for n in range(count))


def test_at_most_max_codes_per_listing() -> None:
    """BIND 9.18.28+ refuses a whole zone with more than 100 A records at one name."""
    assert MAX_CODES == 100
    assert len(parse_codes(many(100))) == 100
    with pytest.raises(CodeError) as caught:
        parse_codes(many(101))
    message = str(caught.value)
    assert "101 codes, at most 100 per listing" in message
    assert "max-records-per-type" in message
    assert "'127.0.0.2,127.0.0.3," in message  # the input, shortened
    assert len(message) < 300
    with pytest.raises(CodeError, match="101 codes"):
        parse_codes(many(101) + ",127.0.0.2")  # duplicates do not count twice, 101 do
    assert len(parse_codes(many(100) + ",127.0.0.2")) == 100
