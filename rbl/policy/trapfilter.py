"""The one check every public output passes: no trap address, no whole-domain trap. Pure.

``TrapFilter`` is built from the store's trap list, active and retired traps
alike (a retired trap may be revived, and its address is as secret as ever).
The site runs every page through it, the dump writer and the DNS follower
every TXT text, /metrics its whole exposition, and the CLI refuses operator
text (decision messages, TXT templates) that it finds a trap in.

What counts as naming a trap, found by scanning the domain names in a text:

* an address trap ``local@domain``: ``domain`` right after an ``@`` (even
  with more after it: ``trap@example.org.evil``), with the
  text before it ending in ``local`` (case-insensitive, after HTML
  unescaping, also with a ``+detail`` dropped), so wrapped forms such as
  BATV's ``prvs=tag=local@domain`` count; or SRS's ``domain=local``;
* a whole-domain trap ``@domain``: the name ``domain`` itself, anywhere, or
  right after an ``@`` with more after it.

A name that merely ends in a trap domain (``mail.traps.example``) is another
domain and is left alone: the operator's own zone names often share a parent
with a trap domain. A match is replaced whole: the entire token (the run of
address characters around it, local part included) becomes ``[redacted]``;
never a partial address.

Domains are compared in their IDNA ASCII form (rbl.model.idn, the form traps are
stored in): ``trap@bücher.example`` in a log line names the trap
``trap@xn--bcher-kva.example`` and is redacted. In text that is not all
ASCII a name's labels are runs of letters, marks, digits and format
characters of any script (so a combining accent, a soft hyphen or a
fullwidth letter does not cut a name short), separated by any of the dots
IDNA knows (``。`` too). Imports only the standard library and rbl.model.idn.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from rbl.errors import RblError
from rbl.model.idn import DOTS, ascii_domain, ascii_label

REDACTED = "[redacted]"

_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+")
# What an address or a name is made of; a match is widened to the whole run.
_TOKEN = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-@=!#$*?^`{|}~"
)
# A local part as it may appear in text: RFC 5321 atoms, and &#39; style escapes.
_LOCAL = _TOKEN | frozenset("'&;/")
_ASCII_LABEL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _wide(ch: str) -> bool:
    """A character beyond ASCII that may be part of a domain label or a local part:
    a letter, mark or digit of any script, or a format character (soft hyphen,
    zero-width joiners), which nameprep drops or keeps inside a label."""
    category = unicodedata.category(ch)
    return category[0] in "LMN" or category == "Cf"


def _label_char(ch: str) -> bool:
    return ch in _ASCII_LABEL if ch.isascii() else _wide(ch)


# Where a name beyond ASCII may be: runs that _names then scans character by character.
_WIDE_RUN = re.compile(
    rf"(?:[A-Za-z0-9_-]|[^\x00-\x7f\s])+(?:[{DOTS}](?:[A-Za-z0-9_-]|[^\x00-\x7f\s])+)+"
)


def _names(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, ASCII form, lowercased) of each dotted name in ``text``."""
    if text.isascii():
        for found in _NAME.finditer(text):
            yield found.start(), found.end(), found.group().lower()
        return
    for run in _WIDE_RUN.finditer(text):
        if run.group().isascii():
            yield run.start(), run.end(), run.group().lower()
        else:
            yield from _wide_names(text, run.start(), run.end())


def _wide_names(text: str, i: int, size: int) -> Iterator[tuple[int, int, str]]:
    """The names in ``text[i:size]``, a run that holds characters beyond ASCII."""
    while i < size:
        if not _label_char(text[i]):
            i += 1
            continue
        start, labels = i, []
        while True:
            j = i
            while i < size and _label_char(text[i]):
                i += 1
            labels.append(text[j:i])
            if i + 1 < size and text[i] in DOTS and _label_char(text[i + 1]):
                i += 1
                continue
            break
        if len(labels) > 1:
            yield start, i, ".".join(ascii_label(label) for label in labels)


class TrapTextError(RblError):
    """Public text names a trap."""


@dataclass(frozen=True, slots=True)
class TrapFilter:
    """Finds and redacts trap addresses and whole-domain traps in text for the public."""

    locals_by_domain: dict[str, frozenset[str]] = field(default_factory=dict)
    domains: frozenset[str] = frozenset()

    @classmethod
    def of(cls, addresses: Iterable[str], domains: Iterable[str]) -> TrapFilter:
        """From trap addresses (``local@domain``) and whole-domain trap names."""
        by_domain: dict[str, set[str]] = {}
        for address in addresses:
            local, at, domain = address.strip().lower().rpartition("@")
            if at and local and domain:
                by_domain.setdefault(_ascii(domain), set()).add(local)
        return cls(
            {domain: frozenset(found) for domain, found in by_domain.items()},
            frozenset(_ascii(d.strip()) for d in domains if d.strip()),
        )

    @classmethod
    def of_rows(cls, rows: Iterable[tuple[str, str]]) -> TrapFilter:
        """From rows of the traps table: (kind, value), kind ``address`` or ``domain``."""
        rows = list(rows)
        return cls.of(
            [value for kind, value in rows if kind == "address"],
            [value for kind, value in rows if kind == "domain"],
        )

    def __len__(self) -> int:
        return sum(len(found) for found in self.locals_by_domain.values()) + len(self.domains)

    def _matches(self, text: str) -> Iterator[tuple[int, int, str]]:
        """(start, end, trap) for each trap named in ``text``, spans widened to whole tokens."""
        if not self.domains and not self.locals_by_domain:
            return
        for start, end, name in _names(text):
            after_at = start > 0 and text[start - 1] == "@"
            # After an @ the address is there even if more follows (trap@example.org.evil).
            heads = [name[:i] for i in range(1, len(name) + 1)] if after_at else [name]
            domain = next((head for head in heads if head in self.domains), None)
            if domain is not None:
                yield (*_widen(text, start, end), "@" + domain)
                continue
            if after_at:
                local_start = start - 1
                while local_start > 0 and _in(text[local_start - 1], _LOCAL):
                    local_start -= 1
                local = text[local_start : start - 1]
                hit = next(
                    (
                        (found_local, head)
                        for head in heads
                        if head in self.locals_by_domain
                        and (found_local := _local_match(local, self.locals_by_domain[head]))
                    ),
                    None,
                )
                if hit is not None:
                    yield (*_widen(text, local_start, end), f"{hit[0]}@{hit[1]}")
                    continue
            wanted = self.locals_by_domain.get(name)
            if wanted is not None and end < len(text) and text[end] == "=":
                local_end = end + 1  # SRS: ...=domain=local@forwarder
                while local_end < len(text) and _in(text[local_end], _LOCAL - {"@"}):
                    local_end += 1
                srs = _local_match(text[end + 1 : local_end], wanted)
                if srs is not None:
                    yield (*_widen(text, start, local_end), f"{srs}@{name}")

    def find(self, text: str) -> str | None:
        """The first trap ``text`` names (for a refusal that says which), or None."""
        return next((trap for _, _, trap in self._matches(text)), None)

    def redact(self, text: str) -> str:
        """``text`` with every token that names a trap replaced by ``[redacted]``."""
        pieces: list[str] = []
        last = 0
        for start, end, _ in self._matches(text):
            if start < last:  # inside a token already replaced
                continue
            pieces += [text[last:start], REDACTED]
            last = end
        if not pieces:
            return text
        pieces.append(text[last:])
        return "".join(pieces)

    def check(self, text: str, what: str) -> str:
        """``text`` unchanged, or TrapTextError naming ``what`` and the trap found in it."""
        trap = self.find(text)
        if trap is not None:
            raise TrapTextError(
                f"{what} names the trap {trap}; it is shown to the public, and a trap "
                "must never be: leave the address or domain out"
            )
        return text

    def without(self, texts: Iterable[str]) -> TrapFilter:
        """This filter less the traps named in ``texts`` (what a visitor sent in).

        Echoing a visitor's own text back is no leak; redacting it would be one,
        as it would tell them they had typed a trap.
        """
        named = {trap for text in texts for _, _, trap in self._matches(text)}
        if not named:
            return self
        by_domain = {
            domain: frozenset(part for part in found if f"{part}@{domain}" not in named)
            for domain, found in self.locals_by_domain.items()
        }
        return TrapFilter(
            {domain: found for domain, found in by_domain.items() if found},
            frozenset(d for d in self.domains if "@" + d not in named),
        )


def _local_match(local: str, wanted: frozenset[str]) -> str | None:
    """Which trap local part ``local`` ends with (so contains, before its ``@``), if any.

    Also with a ``+detail`` dropped: ``trap+x@example.org`` reaches ``trap@example.org``.
    """
    text = html.unescape(local).lower()
    for variant in dict.fromkeys((text, text.partition("+")[0])):
        for start in range(len(variant)):
            if variant[start:] in wanted:
                return variant[start:]
    return None


def _widen(text: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and _in(text[start - 1], _TOKEN):
        start -= 1
    while end < len(text) and _in(text[end], _TOKEN):
        end += 1
    return start, end


def _in(ch: str, ascii_set: frozenset[str]) -> bool:
    """``ch`` is one of ``ascii_set``, or a character of a name or address beyond ASCII."""
    return ch in ascii_set if ch.isascii() else _wide(ch) or ch in DOTS


def _ascii(domain: str) -> str:
    return ascii_domain(domain.lower().rstrip(".")).rstrip(".")


NO_TRAPS = TrapFilter()

__all__ = ["NO_TRAPS", "REDACTED", "TrapFilter", "TrapTextError"]
