"""The files ``rbl list import`` and ``rbl traps import`` read, one entry a line.

Each line is decoded here, so a line that is not UTF-8 is an error naming the file and
the line instead of a traceback from the decoder; comments and blank lines are passed
over; and an import is all or nothing, its bad lines reported together by number.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from rbl.errors import KeyFormatError

SHOWN_ERRORS = 20  # bad lines named in the message; the rest are counted


def read_lines(source: BinaryIO) -> Iterator[tuple[int, str]]:
    """(number, text) for each line of a binary file; a line that is not UTF-8 is an error
    naming the file and the line, instead of a traceback from the decoder."""
    name = source_name(source)
    for number, raw in enumerate(source, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise KeyFormatError(
                f"{name}:{number}: not UTF-8 text (byte 0x{raw[exc.start]:02X} at column "
                f"{exc.start + 1}); nothing imported"
            ) from None
        yield number, line


def entry_lines(source: BinaryIO) -> Iterator[tuple[int, str]]:
    """(number, text) for each line that holds an entry: '#' starts a comment, and
    blank lines are passed over."""
    for number, line in read_lines(source):
        text = line.split("#", 1)[0].strip()
        if text:
            yield number, text


def source_name(source: BinaryIO) -> str:
    """The file's name as the messages give it (``<stdin>`` for '-')."""
    return str(getattr(source, "name", "<stdin>"))


def refuse_bad_lines(errors: list[str]) -> None:
    """Nothing is imported if any line is bad: the error names them (the first few)."""
    if errors:
        shown = "\n".join(errors[:SHOWN_ERRORS])
        left = len(errors) - SHOWN_ERRORS
        more = f"\n... and {left} more" if left > 0 else ""
        raise KeyFormatError(f"{len(errors)} bad line(s), nothing imported:\n{shown}{more}")
