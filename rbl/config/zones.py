"""The ``[[zones]]`` tables: each DNSBL or RHSBL zone, its SOA and its listing widths.

A zone's table is read like every section (rbl.config.fields), with what only a zone
has: its errors name it once its name is known, its SOA defaults follow its name and
first NS, and the prefix settings apply to IP zones alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from rbl.config.fields import (
    Flat,
    Table,
    keys_of,
    only,
    read_section,
    read_values,
    rule,
    setting,
)
from rbl.config.fields import table as sub_table
from rbl.config.readers import Choice, Domain, HostNames, Int, Reader, Template, Text
from rbl.errors import CodeError, ConfigError
from rbl.model.codes import DEFAULT_CODE, parse_code, parse_codes
from rbl.model.keys import ZoneKind

_SOA_NUMBER = Int(0, 2**31 - 1)


@dataclass(frozen=True, slots=True)
class RName(Reader):
    """The SOA mailbox, as ``hostmaster.example.org`` or ``hostmaster@example.org``."""

    def read(self, value: object, key: str, where: str) -> str:
        written = Text().read(value, key, where)
        mailbox, at, domain = written.partition("@")
        if at and "." in mailbox:
            raise ConfigError(
                f"{where}: {key} {written!r}: a mailbox with a dot cannot be written "
                "unambiguously in a SOA; use one without (e.g. hostmaster@)"
            )
        return Domain().read(f"{mailbox}.{domain}" if at else written, key, where)


@dataclass(frozen=True, slots=True)
class SoaSettings:
    # Left out: the zone's first NS, and hostmaster.<zone> (read_zone passes both).
    mname: str = field(metadata=rule(Domain()))
    rname: str = field(metadata=rule(RName()))
    refresh: int = setting(3600, _SOA_NUMBER)
    retry: int = setting(600, _SOA_NUMBER)
    expire: int = setting(604800, _SOA_NUMBER)
    minimum: int = setting(300, _SOA_NUMBER)


@dataclass(frozen=True, slots=True)
class PrefixSettings:
    """How wide a trap listing in an IP zone is (rbl.policy.listing.listing_key, escalation).

    Spammers rotate addresses inside the /64 a provider gives one customer, so an
    IPv6 hit lists (and counts toward) its /ipv6_prefix. Escalation lists the wider
    network once ``*_escalate_after`` trap listings inside it are active; 0 is off.
    """

    ipv6_prefix: int = setting(64, Int(48, 128))  # 128 lists single addresses as before
    # 32..ipv6_prefix-1, e.g. 48 or 56 (when left out, at most ipv6_prefix-1)
    ipv6_escalate_prefix: int = setting(48, Int(32, 127))
    # listed /ipv6_prefix networks inside it; 0 = off
    ipv6_escalate_after: int = setting(0, Int(0, 65536))
    ipv4_escalate_prefix: int = setting(24, Int(16, 31))  # UCEPROTECT level 2 style
    ipv4_escalate_after: int = setting(0, Int(0, 65536))  # listed addresses inside it; 0 = off


@dataclass(frozen=True, slots=True)
class Codes(Reader):
    """A comma-separated set of return codes, sorted and de-duplicated."""

    def read(self, value: object, key: str, where: str) -> tuple[str, ...]:
        try:
            return parse_codes(Text().read(value, key, where))
        except CodeError as exc:
            raise ConfigError(f"{where}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class CodeMeanings(Reader):
    """A table of one return code to the text saying what it means."""

    def read(self, value: object, key: str, where: str) -> tuple[tuple[str, str], ...]:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} must be a table")
        try:
            return tuple(sorted((parse_code(code), str(text)) for code, text in value.items()))
        except CodeError as exc:
            raise ConfigError(f"{where}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ZoneSettings:
    """One DNSBL or RHSBL zone: its apex, what it lists and how answers look."""

    name: str = field(metadata=rule(Domain()))
    kind: ZoneKind = field(
        metadata=rule(
            Choice({"ip": ZoneKind.IP, "domain": ZoneKind.DOMAIN}, quoted=True), default=ZoneKind.IP
        )
    )
    soa: SoaSettings = field(metadata=rule(Table(SoaSettings)))  # read_zone gives its defaults
    ns: tuple[str, ...] = field(metadata=rule(HostNames()))
    ttl: int = setting(300, Int(0, 604800))
    default_codes: tuple[str, ...] = setting((DEFAULT_CODE,), Codes(), key="default_code")
    txt: str = setting("Listed: {url}", Template(frozenset({"key", "url"})))
    lookup_url: str = setting("", Template(frozenset({"key"})))
    code_meanings: tuple[tuple[str, str], ...] = setting((), CodeMeanings(), key="codes")
    prefixes: PrefixSettings = field(
        default_factory=PrefixSettings, metadata=rule(Flat(PrefixSettings))
    )

    def txt_for(self, key_text: str, template: str | None = None) -> str:
        """The TXT string for a listed key, from the listing's or the zone's template."""
        url = self.lookup_url.format(key=key_text) if self.lookup_url else ""
        return (self.txt if template is None else template).format(key=key_text, url=url)


def read_zone(data: object, where: str) -> ZoneSettings:
    """One ``[[zones]]`` table; ``where`` names it by position, then by name."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} is not a table")
    only(data, keys_of(ZoneSettings), where)
    name = read_values(ZoneSettings, data, where, skip=_ALL_BUT_NAME)["name"]
    where = f"{where} ({name})"
    values = read_values(ZoneSettings, data, where, skip=frozenset({"name", "soa", "prefixes"}))
    soa = read_section(
        SoaSettings,
        sub_table(data, "soa", where),
        f"{where} [soa]",
        defaults={"mname": values["ns"][0], "rname": f"hostmaster.{name}"},
    )
    prefixes = _prefixes(data, values["kind"], where)
    return ZoneSettings(name=name, soa=soa, prefixes=prefixes, **values)


_ALL_BUT_NAME = frozenset(item.name for item in fields(ZoneSettings) if item.name != "name")


def _prefixes(data: dict[str, Any], kind: ZoneKind, where: str) -> PrefixSettings:
    given = [item.name for item in fields(PrefixSettings) if item.name in data]
    if given and kind is not ZoneKind.IP:
        raise ConfigError(f"{where}: {', '.join(given)} only apply to an ip zone")
    prefixes = PrefixSettings(**read_values(PrefixSettings, data, where))
    if "ipv6_escalate_prefix" not in data:  # the default stays wider than ipv6_prefix
        wider = min(prefixes.ipv6_escalate_prefix, prefixes.ipv6_prefix - 1)
        prefixes = replace(prefixes, ipv6_escalate_prefix=wider)
    if prefixes.ipv6_escalate_after and prefixes.ipv6_escalate_prefix >= prefixes.ipv6_prefix:
        raise ConfigError(
            f"{where}: ipv6_escalate_prefix /{prefixes.ipv6_escalate_prefix} must be wider "
            f"than ipv6_prefix /{prefixes.ipv6_prefix}"
        )
    for name in ("ipv6_escalate_after", "ipv4_escalate_after"):
        if getattr(prefixes, name) == 1:
            raise ConfigError(
                f"{where}: {name} 1 would list the wider network on every listing; "
                "use 0 (off) or 2 or more"
            )
    return prefixes
