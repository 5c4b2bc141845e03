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

# RFC 5322 atext, plus anything beyond ASCII (RFC 6532 UTF-8 addresses).
_ATEXT: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~"
)
_SPECIALS: Final = frozenset(' ()<>@,;:\\".[]\x7f')
_DOT_ATOM: Final = re.compile(r"[^.]+(?:\.[^.]+)*", re.ASCII)
_EXIM_LITERAL: Final = re.compile(r"\[(?:[Ii][Pp][Vv][46]:)?[0-9A-Fa-f.:]*\]", re.ASCII)


def _atom_char(ch: str) -> bool:
    """A character Exim lets into an atom: no control, space or special (parse.c)."""
    return ch >= " " and ch not in _SPECIALS


def _domain_char(ch: str) -> bool:
    """Letters, digits and hyphens (Exim read_domain), or UTF-8 (allow_utf8_domains)."""
    return (ch.isascii() and (ch.isalnum() or ch == "-")) or ch >= "\x80"


def _quoted(text: str, at: int, value: list[str]) -> int:
    """Scan a quoted string starting at ``text[at] == '"'``; -1 when it is unterminated."""
    i = at + 1
    end = len(text)
    while i < end:
        ch = text[i]
        if ch == '"':
            return i + 1
        if ch == "\\" and i + 1 < end:
            value.append(text[i + 1])
            i += 2
            continue
        value.append(ch)
        i += 1
    return -1


def _exim_local(text: str, at: int, value: list[str]) -> int:
    """Scan an Exim local part; the end index, or -1 when there is none."""
    i = at
    end = len(text)
    start = at
    while True:
        if i < end and text[i] == '"':
            i = _quoted(text, i, value)
            if i < 0:
                return -1
        else:
            while i < end and (_atom_char(text[i]) or text[i] == "\\"):
                if text[i] == "\\" and i + 1 < end:
                    value.append(text[i + 1])
                    i += 2
                else:
                    value.append(text[i])
                    i += 1
        if i < end and text[i] == ".":
            while i < end and text[i] == ".":
                value.append(".")
                i += 1
            continue
        return i if i > start else -1


def _exim_domain(text: str, at: int) -> int:
    """Scan an Exim domain (or domain literal); the end index, or -1."""
    if at < len(text) and text[at] == "[":
        m = _EXIM_LITERAL.match(text, at)
        return m.end() if m else -1
    i = at
    end = len(text)
    while i < end and (_domain_char(text[i]) or text[i] == "."):
        i += 1
    return i if i > at else -1


def exim(text: str, at: int) -> tuple[int, str] | None:
    """The end of the Exim stored-form address at ``text[at:]`` and its canonical form.

    None when no address starts there. ``<>`` is not handled here: it is the
    caller's (Exim writes the null sender as ``<>`` or as an empty ``F=<>``).
    """
    value: list[str] = []
    i = _exim_local(text, at, value)
    if i < 0:
        return None
    local = "".join(value)
    if i < len(text) and text[i] == "@":
        j = _exim_domain(text, i + 1)
        if j < 0:
            return None
        return j, canonical(local, text[i + 1 : j])
    return i, canonical(local, None)


def postfix(text: str, at: int) -> tuple[int, str] | None:
    """The end of the Postfix external-form address at ``text[at:]`` (up to, not
    including, the closing ``>``) and its canonical form; None if there is none.

    ``text[at] == '>'`` is the null address, returned as ``(at, "")``.
    """
    end = len(text)
    i = at
    if i < end and text[i] == "@":  # source route: @a,@b:local@domain
        colon = text.find(":", i)
        if colon < 0 or " " in text[i:colon] or ">" in text[i:colon]:
            return None
        i = colon + 1
    value: list[str] = []
    if i < end and text[i] == '"':
        i = _quoted(text, i, value)
        if i < 0:
            return None
    else:
        while i < end and text[i] not in ' <>"@\\' and text[i] >= " ":
            value.append(text[i])
            i += 1
    local = "".join(value)
    if i < end and text[i] == "@":
        j = i + 1
        while j < end and text[j] not in ' <>"@\\' and text[j] >= " ":
            j += 1
        return j, canonical(local, text[i + 1 : j])
    if not local and i == at:
        return at, ""
    return i, canonical(local, None)


def canonical(local: str, domain: str | None) -> str:
    """One text for one mailbox: dot-atom local part where possible, lowercased."""
    if (
        local
        and _DOT_ATOM.fullmatch(local)
        and all(ch in _ATEXT or ch > "\x7f" or ch == "." for ch in local)
    ):
        shown = local
    else:
        shown = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if domain is None:
        return shown.lower()
    return f"{shown}@{domain}".lower()
