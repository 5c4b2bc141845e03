"""The dump directory over HTTP, read-only, for mirrors that poll with conditional GETs.

GET and HEAD only. A file is served if every path segment is a plain name
(nothing starting with a dot: no ``..``, no hidden temporary files), it stays
inside the directory after resolving symlinks, it is a regular file and its
name ends in a known suffix; anything else is 404, directories included (no
listings). Each response carries ``Last-Modified`` and an ``ETag`` made of the
file's size, modification time and inode, which all change when the writer
renames a new generation into place; ``If-None-Match`` (which takes
precedence) and ``If-Modified-Since`` answer 304. Files are streamed from the
descriptor opened before the headers were set, so a rename during the
transfer cannot mix two generations in one response.
"""

from __future__ import annotations

import os
import stat
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Final

from twisted.protocols.basic import FileSender
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from rbl.dumps.summary import SUMS_NAME

TEXT: Final = b"text/plain; charset=utf-8"
CONTENT_TYPES: Final = {
    ".gz": b"application/gzip",
    ".json": b"application/json",
    ".csv": b"text/csv; charset=utf-8",
    ".txt": TEXT,
    ".ip4set": TEXT,
    ".ip6trie": TEXT,
    ".dnset": TEXT,
    ".zone": TEXT,
}
_INLINE_LIMIT: Final = 256 * 1024  # smaller files are written in one go


def content_type(name: str) -> bytes | None:
    if name == SUMS_NAME:
        return TEXT
    return CONTENT_TYPES.get(os.path.splitext(name)[1])


def _etag(info: os.stat_result) -> bytes:
    return f'"{info.st_size:x}-{info.st_mtime_ns:x}-{info.st_ino:x}"'.encode()


def _etag_matches(header: bytes, etag: bytes) -> bool:
    """If-None-Match uses the weak comparison: W/ prefixes do not matter."""
    if header.strip() == b"*":
        return True
    wanted = etag.removeprefix(b"W/")
    return any(tag.strip().removeprefix(b"W/") == wanted for tag in header.split(b","))


def _not_modified_since(header: bytes, mtime: float) -> bool:
    try:
        since = parsedate_to_datetime(header.decode("latin-1")).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return int(mtime) <= since


class DumpResource(Resource):
    """Serve the files under ``directory`` (mount it at ``/dumps/``)."""

    isLeaf = True

    def __init__(self, directory: Path) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.directory = Path(directory)

    def _path(self, segments: list[bytes]) -> tuple[Path, bytes] | None:
        if not segments:
            return None
        names = []
        for raw in segments:
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                return None
            if not name or name.startswith(".") or any(c in name for c in "/\\\x00"):
                return None
            names.append(name)
        kind = content_type(names[-1])
        if kind is None:
            return None
        root = self.directory.resolve()
        path = root.joinpath(*names)
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not resolved.is_relative_to(root):
            return None
        return resolved, kind

    def render_GET(self, request: Any) -> bytes | int:
        found = self._path(list(request.postpath))
        handle = None
        if found is not None:
            try:
                handle = open(found[0], "rb")  # noqa: SIM115 - closed when sent
                info = os.fstat(handle.fileno())
            except OSError:
                handle = None
            else:
                if not stat.S_ISREG(info.st_mode):
                    handle.close()
                    handle = None
        if found is None or handle is None:
            request.setResponseCode(http.NOT_FOUND)
            request.setHeader(b"content-type", TEXT)
            return b"Not found\n"
        etag = _etag(info)
        request.setHeader(b"etag", etag)
        request.setHeader(b"last-modified", http.datetimeToString(int(info.st_mtime)))  # type: ignore[no-untyped-call]
        request.setHeader(b"cache-control", b"public, no-cache")
        request.setHeader(b"accept-ranges", b"none")
        request.setHeader(b"x-content-type-options", b"nosniff")
        if_none_match = request.getHeader(b"if-none-match")
        if_modified_since = request.getHeader(b"if-modified-since")
        if (
            _etag_matches(if_none_match, etag)
            if if_none_match is not None
            else if_modified_since is not None
            and _not_modified_since(if_modified_since, info.st_mtime)
        ):
            handle.close()
            request.setResponseCode(http.NOT_MODIFIED)
            return b""
        request.setHeader(b"content-type", found[1])
        request.setHeader(b"content-length", str(info.st_size).encode())
        if request.method == b"HEAD":
            handle.close()
            return b""
        if info.st_size <= _INLINE_LIMIT:
            with handle:
                return handle.read(info.st_size)
        sender = FileSender()
        done = sender.beginFileTransfer(handle, request)  # type: ignore[no-untyped-call]

        def finished(result: object) -> None:
            handle.close()
            if not getattr(request, "_disconnected", False):
                request.finish()

        done.addBoth(finished)
        return NOT_DONE_YET

    render_HEAD = render_GET


class WithDumps(Resource):
    """``/dumps/...`` from the dump directory, every other path from ``site``.

    The public site's root checks and trims the whole path for its own pages
    (UTF-8, trailing slashes), which the dump directory must not get; so the
    dumps sit beside the site, and this root hands it everything else with the
    path segment put back.
    """

    def __init__(self, site: Resource, directory: Path) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.site = site
        self.dumps = DumpResource(directory)

    def getChildWithDefault(self, path: bytes, request: Any) -> Resource:
        if path == b"dumps":
            return self.dumps
        request.postpath.insert(0, request.prepath.pop())
        return self.site

    def render(self, request: Any) -> bytes | int:  # only reached for an empty path
        result: bytes | int = self.site.render(request)  # type: ignore[no-untyped-call]
        return result


def mount_dumps(site: Resource, directory: Path) -> Resource:
    """The root resource to give ``Site``: the public site plus ``/dumps/``."""
    return WithDumps(site, directory)
