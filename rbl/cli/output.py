"""What the CLI prints reaches the operator's terminal escaped: senders write HELO, MAIL FROM,
raw log lines and removal messages, and a terminal obeys what it is sent (ANSI ESC sequences
clear the screen or retitle the window, a carriage return overwrites a line, bidi controls
reorder it so ``moc.elpmaxe`` reads as something else).

``safe(text)`` escapes one field: every control (C0, DEL, C1), format character (bidi
controls U+202A-202E, U+2066-2069, U+200E/F, U+061C, zero-width characters, BOM), lone
surrogate (a byte that was not UTF-8) and line or paragraph separator becomes ``\\xNN``,
``\\uNNNN`` or ``\\UNNNNNNNN``; a tab or newline inside a field is escaped too, so it
cannot forge a column or a line. ``echo(line)`` prints a line made of such fields and
literal text: it escapes the same characters but keeps the tabs and newlines the command
itself wrote. Every command prints through ``echo``; ``rbl serve`` logs through
``log_observer``, which escapes each log line the same way (a log line may quote a
raw hit). Imports click (and Twisted's logger, for ``log_observer``).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import IO, TYPE_CHECKING

import click

if TYPE_CHECKING:
    from twisted.logger import FileLogObserver, LogEvent

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


@lru_cache(maxsize=4096)
def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # Python's surrogateescape: the byte that was not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES


def safe(text: object, keep: str = "") -> str:
    """``text`` with every character a terminal could act on escaped (except those in
    ``keep``); plain text comes back unchanged."""
    value = str(text)
    if value.isprintable() and value.isascii():
        return value  # the common case, without a look at each character
    return "".join(_escape(ch) if ch not in keep and _unsafe(ch) else ch for ch in value)


def echo(line: object = "", *, err: bool = False) -> None:
    """Print one line of output, escaped as ``safe`` does but keeping tabs and newlines."""
    click.echo(safe(line, keep="\t\n"), err=err)


def log_observer(stream: IO[str]) -> FileLogObserver:
    """A Twisted log observer writing classic text lines to ``stream``, escaped like
    ``echo`` (tracebacks keep their newlines)."""
    from twisted.logger import FileLogObserver, formatEventAsClassicLogText

    def format_event(event: LogEvent) -> str | None:
        text = formatEventAsClassicLogText(event)
        return None if text is None else safe(text, keep="\t\n")

    return FileLogObserver(stream, format_event)
