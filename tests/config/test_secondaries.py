"""``[[transfer.secondaries]]``: per-secondary network, key and NOTIFY, read from real TOML;
every mistake is a ConfigError naming the entry and what is wrong; the flat settings still work."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rbl.config import ConfigError, load_settings
from rbl.config.secondaries import (
    SecondarySettings,
    key_bindings,
    notify_keys,
    notify_targets,
    transfer_networks,
)

SECRET = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
ZONE = """
[[zones]]
name = "bl.example.org"
ns = ["ns1.example.org"]
"""


def load(tmp_path: Path, transfer: str) -> object:
    path = tmp_path / "rbl.toml"
    path.write_text(ZONE + textwrap.dedent(transfer))
    return load_settings(path).transfer


def test_entries_with_flat_settings(tmp_path: Path) -> None:
    transfer = load(
        tmp_path,
        f"""
        [transfer]
        allow = ["10.0.0.0/8"]
        notify = ["10.0.0.53:53"]
        tsig = ["ns2-key:hmac-sha256:{SECRET}", "fleet-key:hmac-sha512:{SECRET}"]

        [[transfer.secondaries]]
        address = "192.0.2.53"
        key = "NS2-Key."

        [[transfer.secondaries]]
        address = "[2001:db8::53]:5300"
        notify = false

        [[transfer.secondaries]]
        network = "198.51.100.0/28"
        key = "fleet-key"
        """,
    )
    assert transfer.secondaries == (  # type: ignore[attr-defined]
        SecondarySettings("192.0.2.53/32", "ns2-key.", ("192.0.2.53", 53)),
        SecondarySettings("2001:db8::53/128", None, None),
        SecondarySettings("198.51.100.0/28", "fleet-key.", None),
    )
    assert transfer_networks(transfer) == (  # type: ignore[arg-type]
        "10.0.0.0/8",
        "192.0.2.53/32",
        "2001:db8::53/128",
        "198.51.100.0/28",
    )
    assert notify_targets(transfer) == (("10.0.0.53", 53), ("192.0.2.53", 53))  # type: ignore[arg-type]
    assert notify_keys(transfer) == {("192.0.2.53", 53): "ns2-key."}  # type: ignore[arg-type]
    assert key_bindings(transfer)[2] == ("198.51.100.0/28", "fleet-key.")  # type: ignore[arg-type]


def test_old_flat_settings_alone(tmp_path: Path) -> None:
    transfer = load(
        tmp_path,
        f"""
        [transfer]
        allow = ["127.0.0.1/32"]
        notify = ["127.0.0.1:5300"]
        tsig = ["xfr-key:hmac-sha256:{SECRET}"]
        """,
    )
    assert transfer.secondaries == ()  # type: ignore[attr-defined]
    assert notify_targets(transfer) == (("127.0.0.1", 5300),)  # type: ignore[arg-type]
    assert transfer_networks(transfer) == ("127.0.0.1/32",)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ('address = "192.0.2.1"\nnetwork = "192.0.2.0/24"', "entry 1: give address"),
        ('key = "k"', "entry 1: needs an address (one secondary) or a network"),
        ('address = "ns2.example.org"', "address 'ns2.example.org' is not an IP address"),
        ('network = "192.0.2.0/33"', "network '192.0.2.0/33'"),
        (
            'network = "192.0.2.0/24"\nnotify = true',
            "('192.0.2.0/24') cannot be notified",
        ),
        ('address = "192.0.2.1"\nnotify = "yes"', "notify must be true or false"),
        (
            'address = "192.0.2.1"\nkey = "nokey"',
            "(192.0.2.1/32): key 'nokey' is not in tsig",
        ),
        ('address = "192.0.2.1"\nport = 53', "unknown setting(s) port"),
        ('address = "192.0.2.1"\nkey = 5', "key must be the name of a key"),
    ],
)
def test_bad_entries(tmp_path: Path, entries: str, message: str) -> None:
    text = f'[transfer]\ntsig = ["k:hmac-sha256:{SECRET}"]\n[[transfer.secondaries]]\n{entries}\n'
    with pytest.raises(ConfigError, match=r"rbl\.toml \[transfer\].*" + _escape(message)):
        load(tmp_path, text)


def test_the_same_network_twice(tmp_path: Path) -> None:
    text = '[[transfer.secondaries]]\naddress = "192.0.2.1"\n[[transfer.secondaries]]\n'
    text += 'network = "192.0.2.1/32"\n'
    with pytest.raises(ConfigError, match=r"entries 1 and 2 both name 192\.0\.2\.1/32"):
        load(tmp_path, text)


def test_not_an_array_of_tables(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"secondaries must be an array of tables"):
        load(tmp_path, '[transfer]\nsecondaries = ["192.0.2.1"]\n')


def _escape(text: str) -> str:
    import re

    return re.escape(text)
