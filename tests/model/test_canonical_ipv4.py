"""``canonical_ipv4`` accepts exactly the texts ``IpKey.text`` writes for IPv4 keys.

It is the fast path of a bulk import; anything it accepts must parse, through the
full parser, to the same network with the same canonical text, and every canonical
text must be accepted (else a million-line list silently takes the slow path).
"""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from rbl.errors import KeyFormatError
from rbl.model.keys import IpKey, canonical_ipv4, parse_ip_key

# U+0661: an Arabic-Indic one, a digit to str.isdigit
_NEAR = st.text(alphabet="0123456789./ x:%\x00\u0661", max_size=20)


@st.composite
def _ipv4_keys(draw: st.DrawFn) -> IpKey:
    prefixlen = draw(st.integers(8, 32))
    value = draw(st.integers(0, 2**32 - 1)) >> (32 - prefixlen) << (32 - prefixlen)
    return IpKey(4, value, prefixlen)


@given(_ipv4_keys())
def test_every_canonical_text_is_accepted(key: IpKey) -> None:
    assert canonical_ipv4(key.text) == (key.packed, key.prefixlen)


@given(st.one_of(_NEAR, _ipv4_keys().map(lambda key: key.text + draw_suffix(key))))
def test_what_it_accepts_the_full_parser_reads_the_same(text: str) -> None:
    found = canonical_ipv4(text)
    if found is None:
        return
    key = parse_ip_key(text)
    assert (key.family, key.packed, key.prefixlen, key.text) == (4, found[0], found[1], text)


@given(st.ip_addresses(v=4), st.integers(0, 40))
def test_host_bits_and_width_are_refused_as_the_full_parser_refuses(
    address: ipaddress.IPv4Address, prefixlen: int
) -> None:
    text = f"{address}/{prefixlen}"
    try:
        key = parse_ip_key(text)
    except KeyFormatError:
        assert canonical_ipv4(text) is None
        return
    assert canonical_ipv4(text) == ((key.packed, key.prefixlen) if key.text == text else None)


def draw_suffix(key: IpKey) -> str:
    """Forms next to the canonical one: /32 spelt out, a leading zero, a space."""
    return ("/32", "/0" + str(key.prefixlen), " ", "")[key.network % 4]
