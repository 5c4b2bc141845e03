"""Publish a set of files at once: temporary files, fsync, one rename each, a journal.

Knows nothing of DNS: rbl.dumps.writer hands it text (``Sink``) and bytes,
and it makes them one *generation* of a directory. Consistency: every file
of a generation is first written to a hidden temporary file beside its
final name (``.NAME.rbl-dump-PID-TOKEN.tmp``), flushed and fsynced; only
when all of them, gzip variants included, are complete are they renamed
over the old files, one ``os.replace`` each (a few milliseconds for all), in
the order they were added (the writer adds SHA256SUMS last), then the
directories are fsynced. A failure before that point removes the temporary
files and leaves the previous generation untouched. A mirror that verifies
SHA256SUMS after syncing either sees one complete generation or, if it
synced during those milliseconds, a mismatch that the next sync repairs.

Crashes: a file under its final name is always complete (it was fsynced
before its rename). One writer at a time writes a directory: each holds an
``flock`` on the directory itself (``locked``; ``rbl dump`` beside ``rbl serve``
waits its turn; no lock file to serve or clean up). Before the first rename
a journal, ``.rbl-dump.journal``, names every (temporary, final) pair; it is
removed after the last rename. If the process dies between the first and the
last rename (kill -9, power loss), files of two generations sit side by side
until the next writer in that directory starts: under the lock, before
anything else, it finishes the interrupted renames from the journal
(``finish_interrupted_commit``; every temporary file named there is complete),
so the directory holds one whole generation again within milliseconds, even
if the database is down. Only then are leftover temporary files removed
(``remove_stale_temporaries``): those whose writer (the PID in the name) is
gone, or older than an hour.

Files are created 0600 and made 0644 only when complete, directories 0755.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import time
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Final

from rbl.errors import RblError

TEMP_MARK: Final = ".rbl-dump-"  # in every temporary file's name; never served
JOURNAL_NAME: Final = ".rbl-dump.journal"  # exists only while a generation is renamed
STALE_SECONDS: Final = 3600.0  # a temporary file this old belongs to a dead dump

PUBLIC_FILE_MODE: Final = 0o644  # what mirrors fetch, whatever the process umask
PUBLIC_DIRECTORY_MODE: Final = 0o755
PRIVATE_FILE_MODE: Final = 0o600  # temporary files and the journal, until complete


class DumpError(RblError):
    """The dump could not be written."""


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the directory's lock (created 0755 if missing): one writer at a time."""
    try:
        public_directory(directory)
        lock = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise DumpError(f"cannot create dump directory {directory}: {exc}") from exc
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by close, or by the kernel on death
        yield
    finally:
        os.close(lock)


class Sink:
    """One temporary file: text in, UTF-8 bytes out, hashed on the way."""

    def __init__(self, path: Path, rel: str) -> None:
        self.path = path
        self.rel = rel
        self.lines: list[str] = []
        self.add = self.lines.append
        self.hash = hashlib.sha256()
        self.size = 0
        self.file = _create(path)

    def flush(self) -> None:
        if self.lines:
            data = "".join(self.lines).encode("utf-8")
            self.lines.clear()
            self.hash.update(data)
            self.file.write(data)
            self.size += len(data)

    def close(self) -> None:
        self.flush()
        os.fsync(self.file.fileno())
        self.file.close()


def _create(path: Path) -> BinaryIO:
    """A new file only this user can read: a half-written dump or the journal is nobody's
    business until ``commit`` makes the complete files public."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    return os.fdopen(fd, "wb", buffering=0)


def public_directory(path: Path) -> None:
    """Create ``path`` (and missing parents) 0755, as mirrors must list it; existing
    directories keep the mode their owner gave them."""
    if path.is_dir():
        return
    public_directory(path.parent)
    with contextlib.suppress(FileExistsError):
        path.mkdir()
        os.chmod(path, PUBLIC_DIRECTORY_MODE)


def _gzip_file(source: Path, target: Path, level: int) -> tuple[str, int]:
    """Compress ``source`` into ``target`` (gzip, no name, mtime 0: reproducible)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as inp, _create(target) as out:
        while chunk := inp.read(1 << 20):
            data = compressor.compress(chunk)
            if data:
                digest.update(data)
                out.write(data)
                size += len(data)
        data = compressor.flush()
        digest.update(data)
        out.write(data)
        size += len(data)
        os.fsync(out.fileno())
    return digest.hexdigest(), size


class Generation:
    """One generation of files: opened, closed (gzip beside), committed or aborted."""

    def __init__(self, directory: Path, gzip_level: int) -> None:
        self.directory = directory
        self.level = gzip_level
        self.token = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.pending: list[tuple[Path, Path]] = []  # (temporary, final), in rename order
        self.digests: dict[str, tuple[str, int]] = {}
        self.jobs: list[tuple[str, Future[tuple[str, int]]]] = []
        self.open_sinks: list[Sink] = []
        workers = max(1, min(4, (os.cpu_count() or 1)))
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rbl-dump-gzip")

    def _temporary(self, rel: str) -> tuple[Path, Path]:
        final = self.directory / rel
        public_directory(final.parent)
        temporary = final.with_name(f".{final.name}{TEMP_MARK}{self.token}.tmp")
        self.pending.append((temporary, final))
        return temporary, final

    def open(self, rel: str) -> Sink:
        temporary, _final = self._temporary(rel)
        sink = Sink(temporary, rel)
        self.open_sinks.append(sink)
        return sink

    def close(self, sink: Sink, *, gzip: bool = True) -> None:
        sink.close()
        self.open_sinks.remove(sink)
        self.digests[sink.rel] = (sink.hash.hexdigest(), sink.size)
        if gzip:
            rel = sink.rel + ".gz"
            temporary, _final = self._temporary(rel)
            self.jobs.append((rel, self.pool.submit(_gzip_file, sink.path, temporary, self.level)))

    def write_bytes(self, rel: str, data: bytes) -> None:
        temporary, _final = self._temporary(rel)
        with _create(temporary) as out:
            out.write(data)
            os.fsync(out.fileno())
        self.digests[rel] = (hashlib.sha256(data).hexdigest(), len(data))

    def wait(self) -> None:
        for rel, job in self.jobs:
            self.digests[rel] = job.result()
        self.jobs.clear()
        self.pool.shutdown()

    def commit(self) -> None:
        directories = sorted({final.parent for _temporary, final in self.pending})
        for temporary, _final in self.pending:  # complete now: public under its final name
            os.chmod(temporary, PUBLIC_FILE_MODE)
        for path in directories:  # the temporary files' names are durable too
            _fsync_directory(path)
        self._write_journal()
        for temporary, final in self.pending:  # SHA256SUMS was added last
            os.replace(temporary, final)
        self.pending.clear()
        for path in directories:
            _fsync_directory(path)
        (self.directory / JOURNAL_NAME).unlink()
        _fsync_directory(self.directory)

    def _write_journal(self) -> None:
        """The renames about to happen, for ``finish_interrupted_commit`` after a crash."""
        text = "".join(
            f"{temporary.relative_to(self.directory)}\t{final.relative_to(self.directory)}\n"
            for temporary, final in self.pending
        )
        temporary = self.directory / f"{JOURNAL_NAME}{TEMP_MARK}{self.token}.tmp"
        with _create(temporary) as out:
            out.write(text.encode("utf-8"))
            os.fsync(out.fileno())
        os.replace(temporary, self.directory / JOURNAL_NAME)
        _fsync_directory(self.directory)

    def abort(self) -> None:
        for sink in self.open_sinks:
            sink.file.close()
        for _rel, job in self.jobs:
            job.cancel()
        self.pool.shutdown(wait=True)
        for temporary, _final in self.pending:
            temporary.unlink(missing_ok=True)
        self.pending.clear()


def _fsync_directory(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def finish_interrupted_commit(directory: Path) -> list[str]:
    """Complete the renames of a dump that died while renaming; the files it renamed.

    Call with the directory's lock held. Every temporary file the journal
    names was complete and fsynced before the journal was written, so
    finishing is always right; a pair whose temporary file is gone was
    renamed already. Idempotent: a crash in here is finished next time.
    """
    journal = directory / JOURNAL_NAME
    try:
        text = journal.read_text("utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise DumpError(f"cannot read the commit journal {journal}: {exc}") from exc
    finished = []
    folders = {directory}
    for line in text.splitlines():
        temporary_rel, _tab, final_rel = line.partition("\t")
        temporary, final = directory / temporary_rel, directory / final_rel
        if not final_rel or ".." in Path(final_rel).parts or ".." in Path(temporary_rel).parts:
            raise DumpError(f"commit journal {journal}: bad line {line!r}")
        try:
            os.replace(temporary, final)
        except FileNotFoundError:
            continue  # renamed before the crash
        except OSError as exc:
            raise DumpError(f"cannot finish renaming {temporary} to {final}: {exc}") from exc
        finished.append(final_rel)
        folders.add(final.parent)
    for folder in sorted(folders):
        _fsync_directory(folder)
    journal.unlink()
    _fsync_directory(directory)
    return finished


def remove_stale_temporaries(directory: Path, folders: Iterable[str]) -> None:
    """Temporary files of a dump that crashed (or was killed) before it renamed them.

    Called with the lock held, so no other dump of this version is writing;
    a file is left alone only while the process named in it lives (a dump
    without the lock, or on another host sharing the directory) and for at
    most an hour.
    """
    for folder in (directory, *(directory / name for name in folders)):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if name.startswith(".") and TEMP_MARK in name and name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    age = time.time() - os.stat(folder / name).st_mtime
                    if age > STALE_SECONDS or not _writer_alive(name):
                        os.unlink(folder / name)


def _writer_alive(name: str) -> bool:
    """Is the process whose PID the temporary file's name carries still running?"""
    pid_text = name.rsplit(TEMP_MARK, 1)[1].split("-", 1)[0]
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # this process's own dumps clean up after themselves
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    except (OverflowError, OSError):
        return False
    return True
