"""Mail addresses as MTAs write them into their logs: where one ends, and its canonical form.

A sender or recipient in a log line is text the SMTP client chose, and a
quoted local part can hold spaces, brackets and whole imitations of other
fields (``"x H=a (b) [192.0.2.9] "@example.net``). Parsers therefore never
find an address's end by looking for the next space or ``>``: they scan it
with the grammar the MTA wrote it in and get back the index just past it.

Two forms occur:

- Exim's stored form (src/parse.c ``read_local_part``/``read_domain``): dot
  separated words, each a quoted string (``"`` ... ``"``, backslash pairs
  kept) or an atom (no controls, spaces or ``()<>@,;:\\".[]``; backslash pairs
  allowed), then ``@`` and a domain of letters, digits, hyphens, dots and
  UTF-8, or a literal ``[`` hex digits, dots, colons ``]``. Comments are gone.
- Postfix's external form (src/global/quote_822_local.c): the local part as a
  dot-string, or quoted with ``"`` and ``\\`` backslash-escaped, then
  ``@domain``; an optional ``@route,...:`` prefix.

``canonical`` turns the words of a local part into one form for every feed:
the dot-atom when the value is one (``"trap"@x`` is ``trap@x``, as MTAs
route it), otherwise the value quoted with ``"`` and ``\\`` escaped; all
lowercased. Imports only the standard library.
"""

from __future__ import annotations

import re
from typing import Final

_SPECIALS: Final = frozenset(' ()<>@,;:\\".[]\x7f')
# RFC 5322 dot-atom of atext, plus anything beyond ASCII (RFC 6532 UTF-8 addresses).
_ATEXT: Final = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\x80-\U0010ffff]+"
_DOT_ATOM: Final = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
QUOTED: Final = r'"(?:[^"\\]|\\.)*"'
# parse.c read_local_part: words (quoted strings, or atoms with backslash pairs)
# separated by one or more dots, leading and trailing dots allowed.
_EXIM_WORD: Final = rf'(?:{QUOTED}|(?:[^\x00-\x20()<>@,;:\\".\[\]\x7f]|\\.)+)'
_EXIM: Final = re.compile(
    rf"(?P<local>(?:{_EXIM_WORD}|\.)(?:\.|(?<=\.){_EXIM_WORD})*)"
    r"(?:@(?P<domain>\[(?:[Ii][Pp][Vv][46]:)?[0-9A-Fa-f.:]*\]|[A-Za-z0-9.\-\x80-\U0010ffff]+))?",
    re.DOTALL,
)
# quote_822_local: a quoted local part or a dot-string, "@", the domain; maybe a route.
_POSTFIX_TEXT: Final = r'[^ <>"@\\\x00-\x1f]'
_POSTFIX: Final = re.compile(
    rf"(?:@[^ :<>\"]*:)?(?P<local>{QUOTED}|{_POSTFIX_TEXT}*)(?:@(?P<domain>{_POSTFIX_TEXT}*))?",
    re.DOTALL,
)
_PAIR_OR_QUOTE: Final = re.compile(r'\\(.)|"', re.DOTALL)


def _atom_char(ch: str) -> bool:
    """A character Exim lets into an atom: no control, space or special (parse.c)."""
    return ch >= " " and ch not in _SPECIALS


def _value(written: str) -> str:
    """A local part's value: quotes dropped, backslash pairs unescaped."""
    if '"' not in written and "\\" not in written:
        return written
    return _PAIR_OR_QUOTE.sub(lambda m: m.group(1) or "", written)


def exim(text: str, at: int) -> tuple[int, str] | None:
    """The end of the Exim stored-form address at ``text[at:]`` and its canonical form.

    None when no address starts there. ``<>`` is not handled here: it is the
    caller's (Exim writes the null sender as ``<>`` or as an empty ``F=<>``).
    """
    m = _EXIM.match(text, at)
    if m is None:
        return None
    return m.end(), canonical(_value(m.group("local")), m.group("domain"))


def exim_parts(text: str, at: int) -> tuple[int, str, str | None] | None:
    """Like ``exim``, but the local part's value (quotes dropped, pairs unescaped) and the
    domain as written: what Exim itself writes where it logs an address unquoted."""
    m = _EXIM.match(text, at)
    if m is None:
        return None
    return m.end(), _value(m.group("local")), m.group("domain")


def postfix(text: str, at: int) -> tuple[int, str] | None:
    """The end of the Postfix external-form address at ``text[at:]`` (up to, not
    including, the closing ``>``) and its canonical form; None if there is none.

    ``text[at] == '>'`` is the null address, returned as ``(at, "")``.
    """
    m = _POSTFIX.match(text, at)
    if m is None:
        return None
    local, domain = m.group("local"), m.group("domain")
    if m.end() == at:
        return at, ""
    return m.end(), canonical(_value(local), domain)


def canonical(local: str, domain: str | None) -> str:
    """One text for one mailbox: dot-atom local part where possible, lowercased."""
    if _DOT_ATOM.fullmatch(local):
        shown = local
    else:
        shown = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if domain is None:
        return shown.lower()
    return f"{shown}@{domain}".lower()
