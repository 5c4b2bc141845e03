"""rbl.config.fields: every setting declares its reader beside its field, read one way."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from rbl import config
from rbl.config.fields import keys_of, read_section, rule_of, setting
from rbl.config.readers import Duration, Given, Int, Number
from rbl.errors import ConfigError

SECTIONS = [
    getattr(config, name)
    for name in config.__all__
    if name.endswith("Settings") and isinstance(getattr(config, name), type)
]


@pytest.mark.parametrize("section", SECTIONS, ids=lambda section: section.__name__)
def test_every_field_declares_how_a_file_sets_it(section: type) -> None:
    unset = [item.name for item in fields(section) if rule_of(item) is None]
    assert unset == (["source"] if section is config.Settings else [])


def test_the_top_level_keys_are_the_tables_a_file_may_hold() -> None:
    assert keys_of(config.Settings) == {
        "database",
        "delisting",
        "dns",
        "dumps",
        "feeds",
        "listing",
        "metrics",
        "public",
        "sync",
        "transfer",
        "web",
        "zones",
    }
    assert "ipv6_prefix" in keys_of(config.ZoneSettings)  # a zone's prefixes stand flat
    assert "default_code" in keys_of(config.ZoneSettings)  # the key, not the field's name


def test_a_given_setting_is_never_read_by_a_reader() -> None:
    with pytest.raises(TypeError):
        Given("zones").read("x", "ip_zone", "here")


def test_a_made_up_section_reads_like_the_real_ones() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True, slots=True)
    class Made:
        count: int = setting(3, Int(1, 5))
        ratio: float = setting(1.0, Number(0.5, 2, unit=" times"))
        every: float = setting(60.0, Duration(maximum=3600), key="interval")

    assert read_section(Made, {}, "[made]") == Made(3, 1.0, 60.0)
    assert read_section(Made, {"count": 5, "interval": "2m"}, "[made]") == Made(5, 1.0, 120.0)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"count": 6}, "[made]: count 6 is outside 1..5"),
        ({"ratio": 3}, "[made]: ratio 3 is outside 0.5..2 times"),
        ({"every": 1}, "[made]: unknown setting(s) every; expected some of count, interval, ratio"),
        ({"interval": "2h"}, "[made] interval: '2h' is longer than the bound of 1h"),
    ]
    for data, message in bad:
        with pytest.raises(ConfigError) as caught:
            read_section(Made, data, "[made]")
        assert str(caught.value) == message
