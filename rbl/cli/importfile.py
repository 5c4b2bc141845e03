"""The lines of an ``rbl list import`` file, each parsed into the row the store takes.

A million-line list is mostly bare IPv4 addresses in canonical form: those take a
fast path (``canonical_ipv4``, exact: it accepts only what ``IpKey.text`` would
write), everything else the full parser, which also says what is wrong with a line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from rbl.cli.keys import key_for
from rbl.cli.lines import entry_lines
from rbl.config import ZoneSettings, check_template
from rbl.errors import CodeError, ConfigError, KeyFormatError
from rbl.model.codes import parse_codes
from rbl.model.keys import ZoneKind, canonical_ipv4
from rbl.model.suffixes import check_not_public_suffix
from rbl.store.importer import ImportRow
from rbl.store.listings import import_row


def parse_import(
    source: BinaryIO, zone: ZoneSettings, default: tuple[str, ...]
) -> Iterator[tuple[int, ImportRow | str]]:
    """Each entry of ``source``: (line number, its row, or why it cannot be one)."""
    default_text = ",".join(default)
    fast = zone.kind is ZoneKind.IP
    for number, text in entry_lines(source):
        key_text, _, rest = text.partition(" ")
        if fast and not rest:
            found = canonical_ipv4(key_text)
            if found is not None:
                yield number, (key_text, 4, found[1], found[0], default_text, None)
                continue
        try:
            yield number, _parse_entry(zone, key_text, rest.strip(), default)
        except (KeyFormatError, CodeError, ConfigError) as exc:
            yield number, str(exc)


def _parse_entry(
    zone: ZoneSettings, key_text: str, rest: str, default: tuple[str, ...]
) -> ImportRow:
    """One line the full way: KEY [:CODES[:TXT]]."""
    codes, txt = default, None
    if rest:
        if not rest.startswith(":"):
            raise KeyFormatError(f"expected ':CODES[:TXT]' after the key, got {rest!r}")
        code_text, _, txt_text = rest[1:].partition(":")
        if code_text.strip():
            codes = parse_codes(code_text)
        if txt_text:
            txt = check_template(txt_text, frozenset({"key", "url"}), "TXT")
    key = key_for(zone, key_text)
    check_not_public_suffix(key)  # here too: every bad line is reported, not the first
    return import_row(key, ",".join(codes), txt)
