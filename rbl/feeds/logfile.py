"""Reading a log file line by line, and following it as it grows and is rotated.

A regular file is known by ``file_identity`` (device, inode and a hash of its
first line), which is what its committed position is kept under; a pipe has
none and is read from where it is. ``read_lines`` gives whole lines only while
following: a partial last line waits for its end (or for the next run), and
once the path has been rotated away or truncated under the open file, what is
left is read to the end and the reader stops. Nothing here knows of formats
or the store.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from stat import S_ISREG
from typing import BinaryIO

IDENTITY_BYTES = 4096  # of the first line, hashed into a file's identity


def file_identity(handle: BinaryIO) -> str | None:
    """device:inode:hash-of-first-line of a regular file; None for pipes (no resuming)."""
    stat = os.fstat(handle.fileno())
    if not S_ISREG(stat.st_mode):
        return None
    first = _first_line(handle)
    return f"{stat.st_dev}:{stat.st_ino}:{hashlib.sha256(first).hexdigest()[:16]}"


def wait_for_first_line(handle: BinaryIO, keep_going: Callable[[], bool], poll: float) -> None:
    """Until a followed file holds its whole first line (a log just rotated is empty),
    for its identity: one taken earlier would not recognise it after a restart."""
    if not S_ISREG(os.fstat(handle.fileno()).st_mode):
        return
    while not _first_line_whole(handle) and keep_going() and not replaced(handle):
        time.sleep(poll)


def read_lines(
    handle: BinaryIO, *, follow: bool, keep_going: Callable[[], bool], poll: float
) -> Iterator[bytes | None]:
    """Each line as read, with its "\\n"; None each time the reader has caught up with
    the file's end (a follower then waits ``poll`` seconds, unless told to stop).

    Without following, or once the file has been rotated away, the last line
    counts even without "\\n", and the end is the last None.
    """
    pending = b""
    draining = False
    while True:
        chunk = handle.readline()
        if chunk.endswith(b"\n"):
            line, pending = pending + chunk, b""
            yield line
            continue
        pending += chunk
        if not follow or draining:
            if pending:
                yield pending
            yield None
            return
        yield None
        if not keep_going():
            return
        time.sleep(poll)
        draining = replaced(handle)


def replaced(handle: BinaryIO) -> bool:
    """Has the path been rotated away or truncated under the open file?"""
    try:
        current = os.stat(handle.name)
    except (OSError, TypeError):
        return True
    opened = os.fstat(handle.fileno())
    return (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino) or (
        current.st_size < handle.tell()
    )


def _first_line(handle: BinaryIO) -> bytes:
    """The file's first line (at most ``IDENTITY_BYTES``), the read position kept."""
    position = handle.tell()
    handle.seek(0)
    first = handle.readline(IDENTITY_BYTES)
    handle.seek(position)
    return first


def _first_line_whole(handle: BinaryIO) -> bool:
    """Does the file hold its whole first line (what ``file_identity`` hashes)?"""
    first = _first_line(handle)
    return first.endswith(b"\n") or len(first) >= IDENTITY_BYTES
