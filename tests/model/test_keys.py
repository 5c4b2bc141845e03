"""rbl.model.keys: listing keys parsed once, at the edge, into canonical values."""

from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rbl.errors import KeyFormatError, RblError
from rbl.model.keys import (
    DomainKey,
    IpKey,
    ZoneKind,
    parse_domain_key,
    parse_ip_key,
    parse_key,
)
from rbl.model.keys import (
    test_point_conflict as point_conflict,
)

# -- IP keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "family", "network", "prefixlen"),
    [
        ("192.0.2.1", 4, "192.0.2.1", 32),
        ("192.0.2.0/24", 4, "192.0.2.0", 24),
        ("10.0.0.0/8", 4, "10.0.0.0", 8),
        ("  198.51.100.7 ", 4, "198.51.100.7", 32),
        ("2001:db8::1", 6, "2001:db8::1", 128),
        ("2001:DB8::/32", 6, "2001:db8::", 32),
        ("2001:db8:1:2::/64", 6, "2001:db8:1:2::", 64),
        ("2001::/16", 6, "2001::", 16),
        ("::ffff:192.0.2.1", 6, "::ffff:c000:201", 128),
    ],
)
def test_parse_ip_key(text: str, family: int, network: str, prefixlen: int) -> None:
    key = parse_ip_key(text)
    assert key == IpKey(family, int(ipaddress.ip_address(network)), prefixlen)


@pytest.mark.parametrize(
    "text",
    ["192.0.2.1/24", "10.0.0.1/8", "2001:db8::1/64", "2001:db8:0:0:1::/63"],
)
def test_host_bits_set_is_rejected_naming_the_input(text: str) -> None:
    with pytest.raises(KeyFormatError) as caught:
        parse_ip_key(text)
    assert repr(text) in str(caught.value)
    assert "host bits" in str(caught.value)


@pytest.mark.parametrize(
    "text", ["10.0.0.0/7", "0.0.0.0/0", "128.0.0.0/1", "2000::/15", "::/0", "2000::/3"]
)
def test_too_wide_prefix_is_rejected(text: str) -> None:
    with pytest.raises(KeyFormatError) as caught:
        parse_ip_key(text)
    assert repr(text) in str(caught.value)
    assert "wider than" in str(caught.value)


@pytest.mark.parametrize("text", ["10.0.0.0/8", "2000::/16"])
def test_narrowest_allowed_prefix_is_accepted(text: str) -> None:
    assert parse_ip_key(text).text == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "192.0.2",
        "192.0.2.256",
        "192.0.2.0/33",
        "2001:db8::/129",
        "192.0.2.0/",
        "2001:db8:::1",
        "example.com",
        "192.0.2.1 192.0.2.2",
    ],
)
def test_garbage_is_rejected_naming_the_input(text: str) -> None:
    with pytest.raises(KeyFormatError) as caught:
        parse_ip_key(text)
    assert repr(text) in str(caught.value)
    assert isinstance(caught.value, RblError)


def test_ip_key_text_last_and_covers() -> None:
    key = parse_ip_key("192.0.2.0/24")
    assert key.text == "192.0.2.0/24"
    assert key.last == int(ipaddress.IPv4Address("192.0.2.255"))
    assert key.covers(4, int(ipaddress.IPv4Address("192.0.2.0")))
    assert key.covers(4, int(ipaddress.IPv4Address("192.0.2.255")))
    assert not key.covers(4, int(ipaddress.IPv4Address("192.0.3.0")))
    assert not key.covers(4, int(ipaddress.IPv4Address("192.0.1.255")))
    # Same integer, other family: not covered.
    assert not key.covers(6, int(ipaddress.IPv4Address("192.0.2.1")))
    host = parse_ip_key("2001:db8::1")
    assert host.text == "2001:db8::1"
    assert host.last == host.network


@st.composite
def ip_networks(draw: st.DrawFn) -> IpKey:
    family = draw(st.sampled_from([4, 6]))
    bits = 32 if family == 4 else 128
    prefixlen = draw(st.integers(8 if family == 4 else 16, bits))
    address = draw(st.integers(0, (1 << bits) - 1))
    network = address >> (bits - prefixlen) << (bits - prefixlen)
    return IpKey(family, network, prefixlen)


@given(ip_networks())
def test_ip_key_text_round_trips(key: IpKey) -> None:
    assert parse_ip_key(key.text) == key
    # The text is what ipaddress, an independent formatter, would print.
    network_class = ipaddress.IPv4Network if key.family == 4 else ipaddress.IPv6Network
    expected = network_class((key.network, key.prefixlen))
    if key.prefixlen == expected.max_prefixlen:
        assert key.text == str(expected.network_address)
    else:
        assert key.text == str(expected)
    assert key.last == int(expected.broadcast_address)


@given(ip_networks(), st.integers(1, 127))
def test_host_bits_always_rejected(key: IpKey, offset: int) -> None:
    bits = 32 if key.family == 4 else 128
    size = 1 << (bits - key.prefixlen)
    if size == 1:
        return
    address_class = ipaddress.IPv4Address if key.family == 4 else ipaddress.IPv6Address
    address = address_class(key.network + 1 + offset % (size - 1))
    text = f"{address}/{key.prefixlen}"
    with pytest.raises(KeyFormatError, match="host bits"):
        parse_ip_key(text)


# -- domain keys ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com", DomainKey("example.com")),
        ("Example.COM", DomainKey("example.com")),
        ("example.com.", DomainKey("example.com")),
        ("  mail.Example.com. ", DomainKey("mail.example.com")),
        ("*.example.com", DomainKey("example.com", subdomains=True)),
        ("*.EXAMPLE.com.", DomainKey("example.com", subdomains=True)),
        ("bücher.de", DomainKey("xn--bcher-kva.de")),
        ("*.Bücher.DE", DomainKey("xn--bcher-kva.de", subdomains=True)),
        ("_dmarc.example.com", DomainKey("_dmarc.example.com")),
        ("a-b.example", DomainKey("a-b.example")),
        ("com", DomainKey("com")),
        ("a" * 63 + ".com", DomainKey("a" * 63 + ".com")),
    ],
)
def test_parse_domain_key(text: str, expected: DomainKey) -> None:
    assert parse_domain_key(text) == expected


def test_domain_key_text() -> None:
    assert parse_domain_key("*.Example.com").text == "*.example.com"
    assert parse_domain_key("Example.com.").text == "example.com"


@pytest.mark.parametrize(
    "text",
    [
        "",
        ".",
        "*.",
        "*",
        "a..b",
        "-a.com",
        "a-.com",
        "ex ample.com",
        "exa!mple.com",
        "*.*.example.com",
        "foo.*.example.com",
        "a" * 64 + ".com",
        ".".join(["a" * 63] * 4),  # 255 characters
        "192.0.2.1/24",
    ],
)
def test_bad_domain_is_rejected_naming_the_input(text: str) -> None:
    with pytest.raises(KeyFormatError) as caught:
        parse_domain_key(text)
    assert repr(text) in str(caught.value)


def test_too_long_domain_message() -> None:
    text = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters
    assert parse_domain_key(text).name == text
    with pytest.raises(KeyFormatError, match="longer than 253"):
        parse_domain_key(text + "d")


def test_parse_key_dispatches_on_kind() -> None:
    assert parse_key(ZoneKind.IP, "192.0.2.1") == parse_ip_key("192.0.2.1")
    assert parse_key(ZoneKind.DOMAIN, "*.example.com") == DomainKey("example.com", True)
    with pytest.raises(KeyFormatError):
        parse_key(ZoneKind.IP, "example.com")
    with pytest.raises(KeyFormatError):
        parse_key(ZoneKind.DOMAIN, "2001:db8::/32")


_LABEL = st.from_regex(r"[a-z0-9_]([a-z0-9_-]{0,10}[a-z0-9_])?", fullmatch=True)


@given(st.lists(_LABEL, min_size=1, max_size=5), st.booleans(), st.randoms())
def test_domain_key_text_round_trips(labels: list[str], star: bool, rnd: random.Random) -> None:
    name = ".".join(labels)
    key = DomainKey(name, star)
    assert parse_domain_key(key.text) == key
    shouted = "".join(c.upper() if rnd.random() < 0.5 else c for c in key.text)
    assert parse_domain_key(shouted + ".") == key


# -- RFC 5782 test points -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.2",
        "127.0.0.1",
        "127.0.0.0/30",
        "127.0.0.0/24",
        "127.0.0.0/8",
        "::ffff:7f00:2",
        "::ffff:7f00:1",
        "::ffff:7f00:0/120",
        "::/16",
    ],
)
def test_point_conflict_for_ip_keys_covering_a_test_address(text: str) -> None:
    reason = point_conflict(parse_ip_key(text))
    assert reason is not None
    assert parse_ip_key(text).text in reason


@pytest.mark.parametrize(
    "text",
    ["127.0.0.3", "127.0.0.4/30", "127.0.1.0/24", "::ffff:7f00:3", "::ffff:7f00:100/120", "::1"],
)
def test_no_point_conflict_next_to_test_addresses(text: str) -> None:
    assert point_conflict(parse_ip_key(text)) is None


def test_point_conflict_for_names() -> None:
    assert point_conflict(parse_domain_key("test")) is not None
    assert point_conflict(parse_domain_key("INVALID.")) is not None
    assert point_conflict(parse_domain_key("*.test")) is None
    assert point_conflict(parse_domain_key("test.example")) is None
    assert point_conflict(parse_domain_key("example.test")) is None


def test_scoped_ipv6_address_is_refused_naming_it() -> None:
    with pytest.raises(KeyFormatError, match="fe80::1%eth0"):
        parse_ip_key("fe80::1%eth0")


def test_domain_with_two_trailing_dots_is_refused() -> None:
    assert parse_domain_key("example.com.").name == "example.com"
    with pytest.raises(KeyFormatError, match=r"example\.com\.\."):
        parse_domain_key("example.com..")
