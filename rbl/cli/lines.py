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
    naming the file and the line, instead of a traceback from the decoder.

    The file is read and decoded whole (an import is all or nothing anyway): a million
    lines decoded one by one cost more than the rest of their parsing. Lines end at
    ``\n`` only, as a binary file's lines do.
    """
    data = source.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        number = data.count(b"\n", 0, start) + 1
        raise KeyFormatError(
            f"{source_name(source)}:{number}: not UTF-8 text (byte 0x{data[exc.start]:02X} "
            f"at column {exc.start - start + 1}); nothing imported"
        ) from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the end of the last line, not a line
    yield from enumerate(lines, 1)


def entry_lines(source: BinaryIO) -> Iterator[tuple[int, str]]:
    """(number, text) for each line that holds an entry: '#' starts a comment, and
    blank lines are passed over."""
    for number, line in read_lines(source):
        text = (line.split("#", 1)[0] if "#" in line else line).strip()
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
