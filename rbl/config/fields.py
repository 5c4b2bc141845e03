"""Settings declared beside their fields, and the one reader that parses a TOML table.

A section is a frozen dataclass; each field that a file may set carries a ``Rule`` in
its metadata (``setting(default, reader)``): the default, the reader (type and range,
rbl.config.readers) and the TOML key when it differs from the field's name. So a
setting's default, type and range are written once, the way twisted's optParameters
rows state an option, and ``read_section`` reads every section alike: unknown keys
are refused, absent ones take their default, present ones go through their reader.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, TypeVar

from rbl.config.readers import Reader
from rbl.errors import ConfigError

T = TypeVar("T")

_RULE = "rbl.config"
UNSET: Any = object()  # a Rule without a default of its own


@dataclass(frozen=True, slots=True)
class Rule:
    """How a file sets one field: its reader, its key, and (for a field the dataclass
    requires) the default a file that leaves it out gets."""

    reader: Reader
    key: str | None = None
    default: Any = UNSET


def setting(default: T, reader: Reader, *, key: str | None = None) -> T:
    """A field with ``default``, read from the file by ``reader`` (under ``key``)."""
    made: T = field(default=default, metadata={_RULE: Rule(reader, key)})
    return made


def rule(reader: Reader, *, key: str | None = None, default: Any = UNSET) -> dict[str, Rule]:
    """Metadata for ``field(metadata=rule(...))``: a field the dataclass requires (then
    ``default`` is what a file that leaves it out gets), or one whose default is a
    section (``default_factory``)."""
    return {_RULE: Rule(reader, key, default)}


def rule_of(item: Field[Any]) -> Rule | None:
    """The rule a field declares, or None for one no file sets (Settings.source)."""
    found: Rule | None = item.metadata.get(_RULE)
    return found


def _rules(section: type) -> Iterator[tuple[Field[Any], Rule]]:
    for item in fields(section):
        found = rule_of(item)
        if found is not None:
            yield item, found


def keys_of(section: type) -> set[str]:
    """The TOML keys a section's table may hold (a flat sub-section's keys included)."""
    keys: set[str] = set()
    for item, found in _rules(section):
        if isinstance(found.reader, Flat):
            keys |= keys_of(found.reader.section)
        else:
            keys.add(found.key or item.name)
    return keys


def only(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    """Refuse keys outside ``allowed``, naming them and what was expected."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(sorted(allowed))}"
        )


def table(data: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    """The sub-table ``name`` ({} when absent)."""
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {name} must be a table")
    return value


def read_values(
    section: type,
    data: Mapping[str, Any],
    where: str,
    *,
    skip: frozenset[str] = frozenset(),
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fields of ``section`` that ``data`` sets, read in declaration order.

    A field left out is absent from the answer (its dataclass default applies) unless
    the dataclass requires it: then the rule's default, or ``defaults`` (written as in
    a file, so read like one), or the reader's "is required" error. ``skip`` names
    fields the caller reads itself.
    """
    values: dict[str, Any] = {}
    for item, found in _rules(section):
        key = found.key or item.name
        if item.name in skip:
            continue
        if isinstance(found.reader, Flat):
            values[item.name] = found.reader.section(
                **read_values(found.reader.section, data, where)
            )
        elif key in data:
            values[item.name] = found.reader.read(data[key], key, where)
        elif defaults is not None and key in defaults:
            values[item.name] = found.reader.read(defaults[key], key, where)
        elif found.default is not UNSET:
            values[item.name] = found.default
        elif item.default is MISSING and item.default_factory is MISSING:
            values[item.name] = found.reader.missing(key, where)
    return values


def read_section(
    section: type[T],
    data: Mapping[str, Any],
    where: str,
    *,
    defaults: Mapping[str, Any] | None = None,
    given: Mapping[str, Any] | None = None,
) -> T:
    """The section ``data`` describes: unknown keys refused, every setting read.

    ``given`` holds the fields the caller read itself (their keys are still allowed);
    ``defaults`` file-style values for required settings left out.
    """
    given = given or {}
    only(data, keys_of(section), where)
    values = read_values(section, data, where, skip=frozenset(given), defaults=defaults)
    return section(**values, **given)


def nested(where: str, key: str) -> str:
    """How a sub-table is named in errors: ``[dns]`` -> ``[dns.tcp]``, else `` [key]``."""
    return f"{where[:-1]}.{key}]" if where.endswith("]") else f"{where} [{key}]"


@dataclass(frozen=True, slots=True)
class Table(Reader):
    """A sub-table read as its own section."""

    section: type

    def read(self, value: object, key: str, where: str) -> Any:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} must be a table")
        return read_section(self.section, value, nested(where, key))


@dataclass(frozen=True, slots=True)
class Flat(Reader):
    """A section whose keys stand in the parent's table itself (a zone's prefixes)."""

    section: type

    def read(self, value: object, key: str, where: str) -> Any:
        raise TypeError(f"{key}: a flat section is read from its parent's table")
