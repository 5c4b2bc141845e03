"""How the pages say things: times, setup checks, return codes, key paths, the templates.

The Jinja2 environment autoescapes and refuses undefined names; the filters
here are the only formatting the templates do. Evidence times are never
finer than ``[public] time_resolution``. Imports the store only for the
names of the setup checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import jinja2

from rbl.config import ZoneSettings
from rbl.store.public import (
    HELO_ADDRESS,
    HELO_NOT_FCRDNS,
    HELO_NOT_FQDN,
    NO_FCRDNS,
    NO_HELO,
    PublicStatus,
)

TEMPLATES = Path(__file__).parent / "templates"


def templates() -> jinja2.Environment:
    """The site's templates; ``evidence_time`` and the globals are set per configuration."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["utc"] = utc
    environment.filters["keypath"] = key_path
    return environment


def key_path(key: str) -> str:
    """A key as a path segment of /lookup/ or /remove/ (a network keeps its "/")."""
    return quote(key, safe=":*/")


def utc(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def evidence_time(moment: datetime | None, resolution: str = "day") -> str:
    """A time derived from the evidence, no finer than ``[public] time_resolution``.

    Minutes would let a sender that mails each candidate recipient at its own
    minute read off which ones were traps (from first/last seen, or an
    expiry that is a hit's time plus the listing period).
    """
    if moment is None:
        return ""
    at = moment.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H:00 UTC") if resolution == "hour" else at.strftime("%Y-%m-%d")


# What each setup problem means, as the page says it; the counts go in front.
CHECK_TEXT = {
    NO_HELO: "gave no HELO name at all",
    HELO_ADDRESS: "gave an IP address (or an address literal in brackets) as HELO, not a host name",
    HELO_NOT_FQDN: "gave a HELO that is not a fully qualified host name",
    NO_FCRDNS: (
        "came from an address without a forward-confirmed host name "
        "(a PTR record whose name resolves back to the address)"
    ),
    HELO_NOT_FCRDNS: "gave a HELO that is not the host name the address's PTR record confirms",
}


def check_lines(status: PublicStatus) -> list[str]:
    """The setup checks as sentences: counts only, never the HELO a sender wrote."""
    lines = []
    for check in status.checks:
        noun = "connection" if status.checked == 1 else "connections"
        lines.append(f"{check.connections} of {status.checked} {noun} {CHECK_TEXT[check.problem]}.")
    return lines


def code_rows(
    zone: ZoneSettings, codes: Iterable[str], *, all_codes: bool = False
) -> list[tuple[str, str]]:
    """(code, meaning) for each code; with ``all_codes``, the zone's other codes after them."""
    meanings = dict(zone.code_meanings)
    wanted = list(codes)
    if all_codes:
        wanted += [code for code, _ in zone.code_meanings if code not in wanted]
    return [(code, meanings.get(code, "listed")) for code in wanted]
