"""``[[transfer.secondaries]]``: one table per secondary, naming its network, key and NOTIFY.

    [[transfer.secondaries]]
    address = "192.0.2.53"          # or "192.0.2.53:5300", "[2001:db8::53]:53"
    key = "ns2-key"                 # a key of [transfer] tsig (optional)
    notify = true                   # NOTIFY address:port, signed with the key (default)

    [[transfer.secondaries]]
    network = "198.51.100.0/28"     # an anycast fleet: transfers only, no NOTIFY
    key = "fleet-key"

An entry lets its address or network transfer (beside ``[transfer] allow``);
with ``key``, a client there must sign with that key and no other, and no
client outside the entries that name a key may use it. The flat settings
(``allow``, ``notify``, ``tsig``) keep working as they did. Pure: imports no
DNS library, nothing outside rbl.config.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rbl.config.readers import Reader
from rbl.config.tsigkeys import parse_key
from rbl.config.values import parse_ip_endpoint
from rbl.errors import ConfigError

if TYPE_CHECKING:
    from rbl.config.sections import TransferSettings

_KEYS = ("address", "network", "key", "notify")


@dataclass(frozen=True, slots=True)
class SecondarySettings:
    """One secondary (or a network of them)."""

    network: str  # CIDR, normalised (an address is its /32 or /128)
    key: str | None = None  # the key's name, canonical ("name."), from [transfer] tsig
    notify: tuple[str, int] | None = None  # where NOTIFY goes; None: not notified


@dataclass(frozen=True, slots=True)
class Secondaries(Reader):
    """An array of tables, each checked on its own (``check_secondaries`` checks the keys)."""

    def read(self, value: object, key: str, where: str) -> tuple[SecondarySettings, ...]:
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise ConfigError(f"{where}: {key} must be an array of tables ([[transfer.{key}]])")
        entries = tuple(
            _entry(item, f"{where} {key} entry {number}") for number, item in enumerate(value, 1)
        )
        seen: dict[str, int] = {}
        for number, entry in enumerate(entries, 1):
            if entry.network in seen:
                raise ConfigError(
                    f"{where}: {key} entries {seen[entry.network]} and {number} both name "
                    f"{entry.network}"
                )
            seen[entry.network] = number
        return entries


def _entry(item: Mapping[str, Any], where: str) -> SecondarySettings:
    unknown = sorted(set(item) - set(_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {', '.join(unknown)}; expected some of {', '.join(_KEYS)}"
        )
    address, network = item.get("address"), item.get("network")
    if address is not None and network is not None:
        raise ConfigError(f"{where}: give address (one secondary) or network, not both")
    if address is None and network is None:
        raise ConfigError(f"{where}: needs an address (one secondary) or a network")
    key = item.get("key")
    if key is not None and (not isinstance(key, str) or not key.strip()):
        raise ConfigError(f"{where}: key must be the name of a key in [transfer] tsig")
    name = None if key is None else key.strip().rstrip(".").lower() + "."
    notify_flag = item.get("notify", address is not None)
    if not isinstance(notify_flag, bool):
        raise ConfigError(f"{where}: notify must be true or false, not {notify_flag!r}")
    if network is not None:
        if notify_flag:
            raise ConfigError(
                f"{where}: notify needs an address: a network ({network!r}) cannot be notified"
            )
        if not isinstance(network, str):
            raise ConfigError(f"{where}: network must be a CIDR network such as '192.0.2.0/28'")
        try:
            parsed = ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise ConfigError(f"{where}: network {network!r}: {exc}") from None
        return SecondarySettings(str(parsed), name, None)
    host, port = parse_ip_endpoint(address, where, "address")
    return SecondarySettings(
        str(ipaddress.ip_network(host)), name, (host, port) if notify_flag else None
    )


def check_secondaries(transfer: TransferSettings, where: str) -> TransferSettings:
    """Every key an entry names is one of ``[transfer] tsig``."""
    known = {parse_key(spec)[0] for spec in transfer.tsig}
    for number, entry in enumerate(transfer.secondaries, 1):
        if entry.key is not None and entry.key not in known:
            names = ", ".join(sorted(k.rstrip(".") for k in known)) or "none"
            raise ConfigError(
                f"{where}: secondaries entry {number} ({entry.network}): key "
                f"{entry.key.rstrip('.')!r} is not in tsig (keys: {names})"
            )
    return transfer


def transfer_networks(transfer: TransferSettings) -> tuple[str, ...]:
    """Who may transfer: ``allow`` and every entry's network."""
    return tuple(dict.fromkeys((*transfer.allow, *(e.network for e in transfer.secondaries))))


def notify_targets(transfer: TransferSettings) -> tuple[tuple[str, int], ...]:
    """Where NOTIFY goes: ``notify`` and every entry with notify."""
    entries = (e.notify for e in transfer.secondaries if e.notify is not None)
    return tuple(dict.fromkeys((*transfer.notify, *entries)))


def notify_keys(transfer: TransferSettings) -> dict[tuple[str, int], str]:
    """The key each NOTIFY target's NOTIFYs are signed with (entries with a key)."""
    return {
        e.notify: e.key for e in transfer.secondaries if e.notify is not None and e.key is not None
    }


def key_bindings(transfer: TransferSettings) -> tuple[tuple[str, str | None], ...]:
    """(network, key name or None) of each entry, for rbl.dnsserver.tsig."""
    return tuple((e.network, e.key) for e in transfer.secondaries)
