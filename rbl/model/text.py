"""What typed text may hold: one rule for the CLI and the public site.

Control characters (C0, DEL, C1), bidi overrides and lone surrogates (what
Python keeps of bytes that were not UTF-8, or a ``\\udc80`` escape) have no
place in a key, an address, a reason or a message: they would reach the
operator's terminal (``rbl requests show``) or the audit log, and no database
can store a lone surrogate. Callers name what a field may keep (tabs and line
breaks in a message). A removal request's public token, typed into the CLI or
linked from the site, has one shape, checked here for both. Pure: the standard
library only.
"""

from __future__ import annotations

import re
from typing import Final

# rbl.store.requests.new_token makes 32 URL-safe characters; 16-64 of them may be one.
REQUEST_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def forbidden_character(text: str, allowed: str = "") -> str | None:
    """The first character of ``text`` that is a control character, a bidi override or a
    lone surrogate, unless it is in ``allowed``; None when there is none."""
    for ch in text:
        if ch in allowed:
            continue
        if ch < " " or "\x7f" <= ch <= "\x9f" or ch in BIDI_CONTROLS or "\ud800" <= ch <= "\udfff":
            return ch
    return None


def describe_character(ch: str) -> str:
    """``ch`` as a person should read it in an error: a byte that was not UTF-8, or U+XXXX."""
    if "\udc80" <= ch <= "\udcff":
        return f"a byte (0x{ord(ch) - 0xDC00:02X}) that is not UTF-8"
    if "\ud800" <= ch <= "\udfff":
        return f"the lone surrogate U+{ord(ch):04X}"
    return f"the control character U+{ord(ch):04X}"
