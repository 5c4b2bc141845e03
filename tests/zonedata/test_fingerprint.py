"""A zone's fingerprint moves with what it serves, and only with that, the same on every node."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from rbl.config import ZoneSettings
from rbl.zonedata.fingerprint import fingerprint
from tests.support.dns_zones import make_settings


def zone() -> ZoneSettings:
    return make_settings().zones[0]


def test_the_same_settings_give_the_same_fingerprint_in_another_process() -> None:
    """Nodes compare fingerprints through the store: no hash seed, no dict order in it."""
    code = (
        "from tests.support.dns_zones import make_settings;"
        "from rbl.zonedata.fingerprint import fingerprint;"
        "print(fingerprint(make_settings().zones[0]))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )
    assert other.stdout.strip() == fingerprint(zone())
    assert len(fingerprint(zone())) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"ttl": 60},
        {"txt": "other {key}"},
        {"lookup_url": "https://example.net/{key}"},
        {"ns": ("ns9.example.org",)},
        {"default_codes": ("127.0.0.3",)},
    ],
    ids=lambda change: next(iter(change)),
)
def test_every_served_setting_moves_it(change: dict[str, object]) -> None:
    assert fingerprint(replace(zone(), **change)) != fingerprint(zone())  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["mname", "rname", "refresh", "retry", "expire", "minimum"])
def test_every_soa_field_moves_it(field: str) -> None:
    soa = zone().soa
    value = getattr(soa, field)
    changed = f"x.{value}" if isinstance(value, str) else value + 1
    assert fingerprint(replace(zone(), soa=replace(soa, **{field: changed}))) != fingerprint(zone())


def test_what_is_not_served_leaves_it() -> None:
    """The site's code meanings and the listing widths shape no answer."""
    same = replace(
        zone(),
        code_meanings=(("127.0.0.2", "spam"),),
        prefixes=replace(zone().prefixes, ipv6_prefix=56),
    )
    assert fingerprint(same) == fingerprint(zone())
