"""DNSBL return codes: the 127.0.0.x addresses an A answer carries.

Codes live in 127.0.0.0/8 (RFC 5782 section 2.1). 127.0.0.0 and 127.0.0.1 are
never listing codes (127.0.0.1 is the "not listed" test point and a common
resolver failure answer), and 127.255.255.0/24 is reserved for error signals
such as "query refused", so a listing can never claim them.

A listing answers one A record per code, and BIND 9.18.28+ refuses a whole
zone holding more than 100 records of one type at one name (its
``max-records-per-type`` default), so a listing carries at most ``MAX_CODES``.
``listings.codes`` and ``change_log.codes`` (VARCHAR(1600)) hold 100 of the
longest codes, comma-separated. Pure.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from rbl.errors import CodeError

# The RFC 5782 test points answer it, and a listing whose zone and row name no code.
DEFAULT_CODE: Final = "127.0.0.2"

# BIND's max-records-per-type default: one more A record at a name and a BIND
# secondary refuses the whole zone.
MAX_CODES: Final = 100

_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_RESERVED = ipaddress.IPv4Network("127.255.255.0/24")


def parse_code(text: str) -> str:
    """Return the canonical dotted form of a listing code, or raise CodeError naming it."""
    try:
        address = ipaddress.IPv4Address(text.strip())
    except ValueError as exc:
        raise CodeError(f"return code {text!r} is not an IPv4 address") from exc
    if address not in _LOOPBACK:
        raise CodeError(f"return code {text!r} is outside 127.0.0.0/8")
    if address in _RESERVED:
        raise CodeError(f"return code {text!r} is in 127.255.255.0/24, reserved for errors")
    if int(address) & 0xFFFFFF < 2:
        raise CodeError(f"return code {text!r} is 127.0.0.0 or 127.0.0.1, never a listing")
    return str(address)


def parse_codes(text: str) -> tuple[str, ...]:
    """Parse a comma-separated set of codes into a sorted, de-duplicated tuple."""
    codes = {parse_code(part) for part in text.split(",") if part.strip()}
    if not codes:
        raise CodeError(f"no return code in {text!r}")
    check_count(codes, text)
    return tuple(sorted(codes, key=lambda code: ipaddress.IPv4Address(code)))


def check_count(codes: tuple[str, ...] | set[str], text: str) -> None:
    """CodeError when ``codes`` (parsed from ``text``) are more than a listing may carry."""
    if len(codes) > MAX_CODES:
        shown = text if len(text) <= 60 else f"{text[:40]}...{text[-15:]}"
        raise CodeError(
            f"return codes {shown!r}: {len(codes)} codes, at most {MAX_CODES} per listing "
            f"(BIND 9.18.28+ refuses a zone with more than {MAX_CODES} A records at one "
            "name: max-records-per-type)"
        )
