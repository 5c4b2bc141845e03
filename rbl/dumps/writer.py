"""Write every zone as flat files for mirrors: plain lists, rbldnsd data, zone files.

One call of ``write_dumps`` writes a *generation* into ``DIRECTORY``::

    DIRECTORY/<zone>/<zone>.txt          plain list (OpenBSD spamd-setup: IPv4; RHSBL: names)
    DIRECTORY/<zone>/<zone>.ipv6.txt     plain list of the IPv6 listings (IP zones)
    DIRECTORY/<zone>/<zone>.ip4set       rbldnsd ip4set data (IP zones)
    DIRECTORY/<zone>/<zone>.ip6trie      rbldnsd ip6trie data (IP zones)
    DIRECTORY/<zone>/<zone>.dnset        rbldnsd dnset data (domain zones)
    DIRECTORY/<zone>/<zone>.zone         RFC 1035 master file
    ... and a ``.gz`` of each
    DIRECTORY/summary.json, summary.csv  counts per zone (by code, by prefix length); no keys
    DIRECTORY/SHA256SUMS                 ``sha256sum -c`` input for every file above

Consistency: every file of a generation is first written to a hidden
temporary file beside its final name (``.NAME.rbl-dump-PID-TOKEN.tmp``),
flushed and fsynced; only when all of them, gzip variants, summaries and
SHA256SUMS included, are complete are they renamed over the old files, one
``os.replace`` each (a few milliseconds for all), SHA256SUMS last, then the
directories are fsynced. A failure before that point removes the temporary
files and leaves the previous generation untouched. A mirror that verifies
SHA256SUMS after syncing either sees one complete generation or, if it
synced during those milliseconds, a mismatch that the next sync repairs.

Crashes: a file under its final name is always complete (it was fsynced
before its rename). One dump at a time writes a directory: each holds an
``flock`` on the directory itself (``rbl dump`` beside ``rbl serve`` waits
its turn; no lock file to serve or clean up). Before the first rename the dump writes a journal,
``.rbl-dump.journal``, naming every (temporary, final) pair; it is removed
after the last rename. If the process dies between the first and the last
rename (kill -9, power loss), files of two generations sit side by side and
SHA256SUMS is the old one until the next dump in that directory starts:
under the lock, before reading the database, it finishes the interrupted
renames from the journal (every temporary file named there is complete), so
the directory holds one whole generation again within milliseconds, even if
the database is down. Only then are leftover temporary files removed: those
whose writer (the PID in the name) is gone, or older than an hour.

What the rbldnsd files and zone files answer is what ``rbl serve`` answers
(checked against a real rbldnsd in tests/dumps/test_rbldnsd_fidelity.py):

* the RFC 5782 test points (127.0.0.2 and ::ffff:7f00:2 or ``test`` listed,
  127.0.0.1 and ::ffff:7f00:1 or ``invalid`` excluded) are included;
* allowlist entries are exclusions: ``!`` lines in rbldnsd data. rbldnsd's
  ip4set stores entries per octet level (/32, /24, /16, /8) and answers every
  value of the most specific level, exclusions first; rbl answers the longest
  prefix. So where two nested entries fall on the same octet level (a /25
  exclusion around a /26 listing, a /20 around a /22 with other codes), the
  outer one is written as the CIDR pieces around the inner one;
* IPv6 goes to ip6trie, not ip6tset: ip6tset holds only /64 listings with one
  value, and trap listings are single /128 addresses. ip6trie holds one value
  per prefix, so a multi-code IPv6 listing answers its first code there;
* TXT templates: rbl's ``{key}`` (and the key inside ``{url}``) becomes
  rbldnsd's ``$``, a literal ``$`` becomes ``$$``. In dnset, ``$`` is the
  listed name, so under a ``*.name`` listing rbldnsd's text names the listed
  domain where rbl names the queried one;
* plain lists cannot express exclusions: a listed network with allowlisted
  addresses inside is written as the CIDR pieces that remain listed, so the
  list is exactly the set of listed addresses. A domain list names the listed
  keys; allowlisted names below a listed ``*.name`` are not expressible there
  (its header says so). Test points are left out;
* the zone file writes IPv4 networks as octet-boundary wildcards
  (``*.2.0.192`` for 192.0.2.0/24), other prefix lengths as the covering set
  of next-boundary wildcards or names (at most 128 per listing), IPv6 on
  nibble boundaries (at most 8), after removing allowlisted pieces. A zone
  file cannot substitute per query, so a wildcard's TXT names the listing
  (192.0.2.0/24) where rbl names the queried address; single addresses and
  exact names get rbl's text. An allowlisted name below a listed
  ``*.domain`` becomes a node holding only an HINFO record (NODATA for A and
  TXT, and it stops the wildcard), as rbl answers. Where IPv4 and IPv6 names
  of one zone collide (an IPv6 /16 wildcard below an IPv4 name), DNS
  wildcard rules can differ from rbl, which reads both.

Summaries hold counts only: no listed keys, no evidence, no trap addresses
(this module never reads the hits table). Every TXT text (the zone's
template or a listing's own) passes the trap filter (``rbl.policy.trapfilter``,
built from the store's trap list at the start of each dump): a trap address
or whole-domain trap an operator wrote into one becomes ``[redacted]``. Imports neither Twisted nor
SQLAlchemy: rows come from ``rbl.store.reader.ListingReader``.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import os
import secrets
import socket
import time
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Final

from rbl.config import Settings, ZoneSettings
from rbl.errors import RblError
from rbl.index.tables import TEST_VALUE
from rbl.model.codes import DEFAULT_CODE
from rbl.model.keys import (
    MAX_PREFIXLEN,
    TEST_LISTED_NAME,
    TEST_LISTED_V4,
    TEST_LISTED_V6,
    TEST_UNLISTED_NAME,
    TEST_UNLISTED_V4,
    TEST_UNLISTED_V6,
    DomainKey,
    IpKey,
    ZoneKind,
    test_point_conflict,
)
from rbl.policy.trapfilter import TrapFilter
from rbl.store.reader import ListingReader
from rbl.zonedata.names import (
    OCTET_TEXT,
    cidr_blocks,
    ip_text,
    wildcard_shadows,
    zone_names,
)

SUMS_NAME: Final = "SHA256SUMS"
SUMMARY_JSON: Final = "summary.json"
SUMMARY_CSV: Final = "summary.csv"
TEMP_MARK: Final = ".rbl-dump-"  # in every temporary file's name; never served
JOURNAL_NAME: Final = ".rbl-dump.journal"  # exists only while a generation is renamed
DEFAULT_GZIP_LEVEL: Final = 6
STALE_SECONDS: Final = 3600.0  # a temporary file this old belongs to a dead dump
CLOCK_SKEW: Final = 600  # seconds $TIMESTAMP is early: mirrors' clocks may lag
HINFO_EXCLUDED: Final = '"rbl" "allowlisted: not listed"'

_FLUSH_ROWS: Final = 8192
_EXCLUDED: Final = 0


class DumpError(RblError):
    """The dump could not be written."""


@dataclass(frozen=True, slots=True)
class ZoneSummary:
    """Counts for one zone: what mirrors may publish. No keys, no evidence."""

    zone: str
    kind: str
    serial: int
    generated: str
    listings: int
    exclusions: int
    by_code: dict[str, int]
    by_prefix: dict[str, int]
    files: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "zone": self.zone,
            "kind": self.kind,
            "serial": self.serial,
            "generated": self.generated,
            "listings": self.listings,
            "exclusions": self.exclusions,
            "by_code": self.by_code,
            "by_prefix": self.by_prefix,
            "files": list(self.files),
        }


@dataclass(frozen=True, slots=True)
class DumpReport:
    directory: Path
    generated: datetime
    seconds: float
    zones: tuple[ZoneSummary, ...]
    files: dict[str, int] = field(default_factory=dict)  # relative path -> bytes

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())


def zone_files(zone: ZoneSettings) -> tuple[str, ...]:
    """The uncompressed files of a zone, relative to the dump directory."""
    name = zone.name
    suffixes: tuple[str, ...] = (".txt", ".dnset", ".zone")
    if zone.kind is ZoneKind.IP:
        suffixes = (".txt", ".ipv6.txt", ".ip4set", ".ip6trie", ".zone")
    return tuple(f"{name}/{name}{suffix}" for suffix in suffixes)


def write_dumps(
    settings: Settings,
    reader: ListingReader,
    directory: Path,
    now: datetime,
    *,
    zones: Sequence[str] | None = None,
    gzip_level: int = DEFAULT_GZIP_LEVEL,
) -> DumpReport:
    """Write one generation of every format for ``zones`` (default all); see the module doc."""
    started = time.monotonic()
    now = now.astimezone(UTC).replace(microsecond=0)
    chosen = [settings.zone(name) for name in zones] if zones else list(settings.zones)
    directory = Path(directory)
    try:
        public_directory(directory)
        lock = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise DumpError(f"cannot create dump directory {directory}: {exc}") from exc
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by close, or by the kernel on death
        return _write_locked(settings, reader, directory, now, chosen, gzip_level, started)
    finally:
        os.close(lock)


def _write_locked(
    settings: Settings,
    reader: ListingReader,
    directory: Path,
    now: datetime,
    chosen: list[ZoneSettings],
    gzip_level: int,
    started: float,
) -> DumpReport:
    finish_interrupted_commit(directory)
    _remove_stale_temporaries(directory, [zone.name for zone in settings.zones])
    positions = reader.change_positions()  # before the rows, as the DNS snapshot does
    allow = list(reader.iter_allowlist())
    traps = reader.trap_filter()
    generation = _Generation(directory, gzip_level)
    try:
        summaries = []
        for zone in chosen:
            serial = positions.get(zone.name, 0) % (1 << 32) or 1
            if zone.kind is ZoneKind.IP:
                summary = _write_ip_zone(generation, zone, reader, allow, serial, now, traps)
            else:
                summary = _write_domain_zone(generation, zone, reader, allow, serial, now, traps)
            summaries.append(summary)
        generation.wait()
        kept = _previous_summaries(directory, settings, {z.name for z in chosen})
        all_summaries = sorted([*kept, *summaries], key=lambda s: s.zone)
        _write_summaries(generation, all_summaries, now)
        kept_sums = _previous_sums(directory, {s.zone for s in kept})
        _write_sums(generation, kept_sums)
        generation.commit()
    except BaseException:
        generation.abort()
        raise
    sizes = {rel: size for rel, (_digest, size) in generation.digests.items()}
    return DumpReport(directory, now, time.monotonic() - started, tuple(summaries), sizes)


# -- the generation: temporary files, gzip jobs, digests, the final renames ------------


class _Sink:
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


PUBLIC_FILE_MODE: Final = 0o644  # what mirrors fetch, whatever the process umask
PUBLIC_DIRECTORY_MODE: Final = 0o755
PRIVATE_FILE_MODE: Final = 0o600  # temporary files and the journal, until complete


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


class _Generation:
    def __init__(self, directory: Path, gzip_level: int) -> None:
        self.directory = directory
        self.level = gzip_level
        self.token = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.pending: list[tuple[Path, Path]] = []  # (temporary, final), in rename order
        self.digests: dict[str, tuple[str, int]] = {}
        self.jobs: list[tuple[str, Future[tuple[str, int]]]] = []
        self.open_sinks: list[_Sink] = []
        workers = max(1, min(4, (os.cpu_count() or 1)))
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rbl-dump-gzip")

    def _temporary(self, rel: str) -> tuple[Path, Path]:
        final = self.directory / rel
        public_directory(final.parent)
        temporary = final.with_name(f".{final.name}{TEMP_MARK}{self.token}.tmp")
        self.pending.append((temporary, final))
        return temporary, final

    def open(self, rel: str) -> _Sink:
        temporary, _final = self._temporary(rel)
        sink = _Sink(temporary, rel)
        self.open_sinks.append(sink)
        return sink

    def close(self, sink: _Sink, *, gzip: bool = True) -> None:
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


def _remove_stale_temporaries(directory: Path, zone_names: Iterable[str]) -> None:
    """Temporary files of a dump that crashed (or was killed) before it renamed them.

    Called with the lock held, so no other dump of this version is writing;
    a file is left alone only while the process named in it lives (a dump
    without the lock, or on another host sharing the directory) and for at
    most an hour.
    """
    for folder in (directory, *(directory / name for name in zone_names)):
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


# -- values and text ---------------------------------------------------------------------


@dataclass(slots=True)
class _Value:
    codes: tuple[str, ...]
    txt: str | None
    parts: list[str]  # the TXT split around the key: key.join(parts) is rbl's text
    plain: bool  # parts need no escaping in a zone file
    rbldnsd: str  # the rbldnsd template, $ for the key


class _Values:
    """The distinct (codes, TXT template) pairs of a zone; id 0 is an exclusion."""

    def __init__(self, zone: ZoneSettings, traps: TrapFilter) -> None:
        self.zone = zone
        self.traps = traps  # TXT texts are public: no trap may be named in them
        self.items: list[_Value | None] = [None]
        self._ids: dict[tuple[str | None, str | None], int] = {}

    def intern(self, codes: str | None, txt: str | None) -> int:
        found = self._ids.get((codes, txt))
        if found is None:
            marker = "\x00"
            parts = self.traps.redact(self.zone.txt_for(marker, txt)).split(marker)
            value = _Value(
                codes=tuple((codes or DEFAULT_CODE).split(",")),
                txt=txt,
                parts=parts,
                plain=all(_zone_safe(part) for part in parts),
                rbldnsd="$".join(_rbldnsd_text(part) for part in parts),
            )
            found = self._ids[(codes, txt)] = len(self.items)
            self.items.append(value)
        return found

    def add_test_value(self) -> int:
        """The RFC 5782 test points' value, never shared with a listing's."""
        vid = self.intern(",".join(TEST_VALUE.codes), TEST_VALUE.txt)
        self._ids.pop((",".join(TEST_VALUE.codes), TEST_VALUE.txt))
        return vid

    def get(self, vid: int) -> _Value:
        value = self.items[vid]
        assert value is not None
        return value


def _zone_safe(text: str) -> bool:
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def _rbldnsd_text(text: str) -> str:
    """A literal part of a TXT template for rbldnsd: ``$`` doubled, no line breaks."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return cleaned.replace("$", "$$")


def zone_txt(text: str) -> str:
    """TXT RDATA in master-file syntax: quoted character-strings of at most 255 bytes."""
    raw = text.encode("utf-8")
    if not raw:
        return '""'
    strings = []
    for start in range(0, len(raw), 255):
        out = []
        for byte in raw[start : start + 255]:
            if byte in (0x22, 0x5C):
                out.append("\\" + chr(byte))
            elif 0x20 <= byte < 0x7F:
                out.append(chr(byte))
            else:
                out.append(f"\\{byte:03d}")
        strings.append('"' + "".join(out) + '"')
    return " ".join(strings)


def _txt_field(value: _Value, key: str) -> str:
    text = key.join(value.parts)
    if value.plain and len(text) <= 255:
        return f'"{text}"'
    return zone_txt(text)


def _record_head(value: _Value) -> str:
    """After an owner name: its A records, then the TXT type (the text follows)."""
    lines = [f"\tA\t{code}\n" for code in value.codes]
    return "\t".join(lines) + "\t\tTXT\t"


def _records(value: _Value, key: str) -> str:
    """The A and TXT records of one owner, after the owner field."""
    return f"{_record_head(value)}{_txt_field(value, key)}\n"


def _stamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _rbldnsd_header(zone: ZoneSettings, serial: int, now: datetime, kind: str) -> str:
    soa = zone.soa
    stamp = now - timedelta(seconds=CLOCK_SKEW)
    return (
        f"# rbl dump of {zone.name} as rbldnsd {kind} data, generated {_stamp(now)}, "
        f"serial {serial}\n"
        f"# load with: rbldnsd ... {zone.name}:{kind}:{zone.name}.{kind}\n"
        f"$SOA {zone.ttl} {soa.mname} {soa.rname} {serial} {soa.refresh} {soa.retry} "
        f"{soa.expire} {soa.minimum}\n"
        f"$NS {zone.ttl} {' '.join(zone.ns)}\n"
        f"$TTL {zone.ttl}\n"
        # rbldnsd refuses data stamped in its future, so the stamp is a little early
        # for mirrors whose clocks lag; they stop answering SOA expire seconds after
        # the dump was generated, as a DNS secondary would.
        f"$TIMESTAMP {stamp.strftime('%Y:%m:%d:%H:%M:%S')} +{soa.expire + CLOCK_SKEW}\n"
    )


def _zone_header(zone: ZoneSettings, serial: int, now: datetime) -> str:
    soa = zone.soa
    lines = [
        f"; rbl dump of {zone.name} as an RFC 1035 zone, generated {_stamp(now)}, "
        f"serial {serial}\n",
        "; wildcards answer with the listing's own key in TXT ({key} cannot vary per query)\n",
        f"$ORIGIN {zone.name}.\n",
        f"$TTL {zone.ttl}\n",
        f"@\tIN\tSOA\t{soa.mname}. {soa.rname}. ( {serial} {soa.refresh} {soa.retry} "
        f"{soa.expire} {soa.minimum} )\n",
    ]
    lines += [f"\tIN\tNS\t{ns}.\n" for ns in zone.ns]
    return "".join(lines)


def _default_line(zone: ZoneSettings, values: _Values) -> tuple[int, str]:
    """The vid of the zone's default value and the rbldnsd ``:A:TXT`` line for its first code."""
    vid = values.intern(",".join(zone.default_codes), None)
    value = values.get(vid)
    return vid, f":{value.codes[0]}:{value.rbldnsd}\n"


def _rbldnsd_value(value: _Value, default_vid: int, vid: int) -> list[str]:
    """What follows the key on rbldnsd lines: one line per code (rbldnsd answers them all)."""
    if vid == default_vid:
        return ["", *(f" :{code}:{value.rbldnsd}" for code in value.codes[1:])]
    return [f" :{code}:{value.rbldnsd}" for code in value.codes]


# -- IP zones ----------------------------------------------------------------------------


class _Family:
    """One address family's entries of a zone, as parallel arrays."""

    def __init__(self, family: int) -> None:
        self.family = family
        self.bits = MAX_PREFIXLEN[family]
        self.nets: array[int] | list[int] = array("I") if family == 4 else []
        self.plens: array[int] = array("B")
        self.vids: array[int] = array("I")

    def add(self, network: int, prefixlen: int, vid: int) -> None:
        self.nets.append(network)
        self.plens.append(prefixlen)
        self.vids.append(vid)

    def last(self, i: int) -> int:
        return self.nets[i] | ((1 << (self.bits - self.plens[i])) - 1)

    def tree(self) -> tuple[Sequence[int], dict[int, list[int]]]:
        """Entries in address order, duplicates dropped (an exclusion wins), and children.

        CIDR blocks either nest or are disjoint, so one sweep with a stack finds
        every entry's immediate children.
        """
        nets, plens, vids, bits = self.nets, self.plens, self.vids, self.bits
        order = sorted(
            range(len(nets)), key=lambda i: ((nets[i] << 8 | plens[i]) << 1) | (vids[i] != 0)
        )
        kept = array("I")
        children: dict[int, list[int]] = {}
        stack: list[tuple[int, int]] = []  # (last address, entry)
        previous = (-1, -1)
        for i in order:
            network, prefixlen = nets[i], plens[i]
            if (network, prefixlen) == previous:
                continue
            previous = (network, prefixlen)
            while stack and stack[-1][0] < network:
                stack.pop()
            if stack:
                children.setdefault(stack[-1][1], []).append(i)
            stack.append((network | ((1 << (bits - prefixlen)) - 1), i))
            kept.append(i)
        return kept, children

    def pieces(self, i: int, holes: Iterable[int]) -> Iterator[tuple[int, int]]:
        """The CIDR blocks of entry ``i`` outside its (sorted, disjoint) ``holes``."""
        start = self.nets[i]
        for hole in holes:
            if self.nets[hole] > start:
                yield from cidr_blocks(start, self.nets[hole] - 1, self.bits)
            start = self.last(hole) + 1
        end = self.last(i)
        if start <= end:
            yield from cidr_blocks(start, end, self.bits)


def _reverse_v4(network: int) -> str:
    return (
        f"{OCTET_TEXT[network & 255]}.{OCTET_TEXT[network >> 8 & 255]}."
        f"{OCTET_TEXT[network >> 16 & 255]}.{OCTET_TEXT[network >> 24]}"
    )


def _is_test_point(family: int, network: int, prefixlen: int) -> bool:
    if family == 4 and network >> 24 != 127 and prefixlen >= 8:
        return False
    return test_point_conflict(IpKey(family, network, prefixlen)) is not None


def _write_ip_zone(
    generation: _Generation,
    zone: ZoneSettings,
    reader: ListingReader,
    allow: list[tuple[str, int, int, bytes | None]],
    serial: int,
    now: datetime,
    traps: TrapFilter,
) -> ZoneSummary:
    values = _Values(zone, traps)
    default_vid, default_line = _default_line(zone, values)
    test_vid = values.add_test_value()
    families = {4: _Family(4), 6: _Family(6)}
    by_code: dict[str, int] = {}
    by_prefix: dict[str, int] = {}
    listings = 0
    vid_of: dict[tuple[str, str | None], int] = {}
    for _zone, number, prefixlen, network_bytes, codes, txt in reader.iter_ip_rows([zone.name]):
        network = int.from_bytes(network_bytes, "big")
        if _is_test_point(number, network, prefixlen):
            continue
        vid = vid_of.get((codes, txt))
        if vid is None:
            vid = vid_of[(codes, txt)] = values.intern(codes, txt)
            for code in values.get(vid).codes:
                by_code.setdefault(code, 0)
        families[number].add(network, prefixlen, vid)
        listings += 1
    # Counted per value and prefix length afterwards: cheaper than per row.
    for family in families.values():
        counts: dict[tuple[int, int], int] = {}
        for plen, vid in zip(family.plens, family.vids, strict=True):
            counts[(plen, vid)] = counts.get((plen, vid), 0) + 1
        for (plen, vid), count in sorted(counts.items()):
            label = f"ipv{family.family}/{plen}"
            by_prefix[label] = by_prefix.get(label, 0) + count
            for code in values.get(vid).codes:
                by_code[code] += count
    exclusions = 0
    for _key, family_number, prefixlen, allowed_bytes in allow:
        if family_number not in families or allowed_bytes is None:
            continue
        network = int.from_bytes(allowed_bytes, "big")
        if _is_test_point(family_number, network, prefixlen):
            continue
        families[family_number].add(network, prefixlen, _EXCLUDED)
        exclusions += 1
    families[4].add(TEST_LISTED_V4, 32, test_vid)
    families[4].add(TEST_UNLISTED_V4, 32, _EXCLUDED)
    families[6].add(TEST_LISTED_V6, 128, test_vid)
    families[6].add(TEST_UNLISTED_V6, 128, _EXCLUDED)

    base = f"{zone.name}/{zone.name}"
    plain4 = generation.open(base + ".txt")
    plain6 = generation.open(base + ".ipv6.txt")
    ip4set = generation.open(base + ".ip4set")
    ip6trie = generation.open(base + ".ip6trie")
    master = generation.open(base + ".zone")
    ip4set.add(_rbldnsd_header(zone, serial, now, "ip4set") + default_line)
    ip6trie.add(_rbldnsd_header(zone, serial, now, "ip6trie") + default_line)
    master.add(_zone_header(zone, serial, now))
    sinks = (plain4, plain6, ip4set, ip6trie, master)

    for family, plain, rbldnsd in ((families[4], plain4, ip4set), (families[6], plain6, ip6trie)):
        kept, children = family.tree()
        plain.add(
            f"# rbl dump of {zone.name}: IPv{family.family} addresses listed, one address or "
            f"CIDR network a line\n"
            f"# generated {_stamp(now)}, serial {serial}, "
            f"{_plain_count(family, kept, children, test_vid)} entries\n"
            "# allowlisted addresses inside listed networks are left out: such a network "
            "is written as the pieces that remain listed\n"
        )
        _write_ip_family(
            family, kept, children, values, default_vid, test_vid, plain, rbldnsd, master, sinks
        )
    for sink in sinks:
        generation.close(sink)
    return ZoneSummary(
        zone=zone.name,
        kind=zone.kind.value,
        serial=serial,
        generated=_stamp(now),
        listings=listings,
        exclusions=exclusions,
        by_code=dict(sorted(by_code.items())),
        by_prefix=by_prefix,
        files=zone_files(zone),
    )


def _write_ip_family(
    family: _Family,
    kept: Sequence[int],
    children: dict[int, list[int]],
    values: _Values,
    default_vid: int,
    test_vid: int,
    plain: _Sink,
    rbldnsd: _Sink,
    master: _Sink,
    sinks: Sequence[_Sink],
) -> None:
    """Write one family's entries to the plain list, the rbldnsd file and the zone file."""
    fam, bits = family.family, family.bits
    nets, plens, vids = family.nets, family.plens, family.vids
    add_plain, add_rbldnsd, add_master = plain.add, rbldnsd.add, master.add
    suffixes: dict[int, list[str]] = {}
    heads: dict[int, str] = {}
    level_bits = 8 if fam == 4 else 4
    v4 = fam == 4
    inet_ntoa = socket.inet_ntoa
    for count, i in enumerate(kept):
        if count % _FLUSH_ROWS == 0:
            for sink in sinks:
                sink.flush()
        network, prefixlen, vid = nets[i], plens[i], vids[i]
        kids = children.get(i)
        if v4 and prefixlen == 32:
            text = inet_ntoa(network.to_bytes(4, "big"))
        else:
            text = ip_text(fam, network, prefixlen)
        # rbldnsd's ip4set answers the most specific octet level, so nested entries on
        # one level are written as pieces; ip6trie is longest-prefix already.
        rbldnsd_keys = [text]
        if kids is not None and v4:
            level = -(-prefixlen // level_bits)
            same = [k for k in kids if -(-plens[k] // level_bits) == level]
            if same:
                rbldnsd_keys = [ip_text(fam, n, p) for n, p in family.pieces(i, same)]
        if vid == _EXCLUDED:
            for key in rbldnsd_keys:
                add_rbldnsd(f"!{key}\n")
            continue
        value = values.get(vid)
        suffix = suffixes.get(vid)
        if suffix is None:
            suffix = suffixes[vid] = _rbldnsd_value(value, default_vid, vid)
            heads[vid] = _record_head(value)
        for key in rbldnsd_keys:
            for tail in suffix:
                add_rbldnsd(f"{key}{tail}\n")
        head = heads[vid]
        if kids is None:
            if vid != test_vid:
                add_plain(text + "\n")
            if v4 and prefixlen == 32:  # the common case: one address
                add_master(f"{_reverse_v4(network)}{head}{_txt_field(value, text)}\n")
                continue
            pieces: Iterable[tuple[int, int]] = ((network, prefixlen),)
        else:
            # The exact set of listed addresses: the entry minus its children.
            pieces = list(family.pieces(i, kids))
            if vid != test_vid:
                for n, p in pieces:
                    add_plain(ip_text(fam, n, p) + "\n")
        for n, p in pieces:
            for name, wildcard, address in zone_names(fam, n, p):
                key = text if wildcard else ip_text(fam, address, bits)
                add_master(f"{name}{head}{_txt_field(value, key)}\n")


def _plain_count(
    family: _Family, kept: Sequence[int], children: dict[int, list[int]], test_vid: int
) -> int:
    """How many lines the plain list of a family gets (for its header)."""
    vids = family.vids
    count = sum(1 for i in kept if vids[i] != _EXCLUDED and vids[i] != test_vid)
    for parent, kids in children.items():
        if vids[parent] != _EXCLUDED and vids[parent] != test_vid:
            count += sum(1 for _ in family.pieces(parent, kids)) - 1
    return count


# -- domain zones ------------------------------------------------------------------------


def _write_domain_zone(
    generation: _Generation,
    zone: ZoneSettings,
    reader: ListingReader,
    allow: list[tuple[str, int, int, bytes | None]],
    serial: int,
    now: datetime,
    traps: TrapFilter,
) -> ZoneSummary:
    values = _Values(zone, traps)
    default_vid, default_line = _default_line(zone, values)
    test_vid = values.add_test_value()
    exact: dict[str, int] = {}
    subtree: dict[str, int] = {}
    vid_of: dict[tuple[str, str | None], int] = {}
    by_prefix = {"exact": 0, "subdomains": 0}
    per_vid: dict[int, int] = {}
    listings = 0
    for _zone, key, codes, txt in reader.iter_domain_rows([zone.name]):
        domain = DomainKey(key[2:], True) if key.startswith("*.") else DomainKey(key, False)
        if test_point_conflict(domain):
            continue
        vid = vid_of.get((codes, txt))
        if vid is None:
            vid = vid_of[(codes, txt)] = values.intern(codes, txt)
        (subtree if domain.subdomains else exact)[domain.name] = vid
        by_prefix["subdomains" if domain.subdomains else "exact"] += 1
        per_vid[vid] = per_vid.get(vid, 0) + 1
        listings += 1
    by_code: dict[str, int] = {}
    for vid, count in per_vid.items():
        for code in values.get(vid).codes:
            by_code[code] = by_code.get(code, 0) + count
    # Allowlist entries, as the DNS follower applies them: a name excludes itself and
    # everything below it, ``*.name`` only what is below.
    exclusions = 0
    for key_text, family, _prefixlen, _network in allow:
        if family != 0:
            continue
        name = key_text[2:] if key_text.startswith("*.") else key_text
        keys = (
            [DomainKey(name, True)]
            if key_text.startswith("*.")
            else [
                DomainKey(name, False),
                DomainKey(name, True),
            ]
        )
        for each in keys:
            if test_point_conflict(each):
                continue
            (subtree if each.subdomains else exact)[each.name] = _EXCLUDED
        exclusions += 1
    exact[TEST_LISTED_NAME] = test_vid
    exact[TEST_UNLISTED_NAME] = _EXCLUDED

    base = f"{zone.name}/{zone.name}"
    plain = generation.open(base + ".txt")
    dnset = generation.open(base + ".dnset")
    master = generation.open(base + ".zone")
    sinks = (plain, dnset, master)
    entries = [(name, False, vid) for name, vid in exact.items()]
    entries += [(name, True, vid) for name, vid in subtree.items()]
    entries.sort()
    listed_keys = sum(1 for _n, _w, vid in entries if vid not in (_EXCLUDED, test_vid))
    plain.add(
        f"# rbl dump of {zone.name}: domains listed, one a line (*.name: every name below)\n"
        f"# generated {_stamp(now)}, serial {serial}, {listed_keys} entries\n"
        "# allowlisted names below a listed *.name cannot be expressed here; "
        "use the .dnset or .zone file\n"
    )
    dnset.add(_rbldnsd_header(zone, serial, now, "dnset") + default_line)
    master.add(_zone_header(zone, serial, now))
    suffixes: dict[int, list[str]] = {}
    for count, (name, wildcard, vid) in enumerate(entries):
        if count % _FLUSH_ROWS == 0:
            for sink in sinks:
                sink.flush()
        key = f"*.{name}" if wildcard else name
        if vid == _EXCLUDED:
            dnset.add(f"!{key}\n")
            continue
        suffix = suffixes.get(vid)
        if suffix is None:
            suffix = suffixes[vid] = _rbldnsd_value(values.get(vid), default_vid, vid)
        for tail in suffix:
            dnset.add(f"{key}{tail}\n")
        master.add(key + _records(values.get(vid), key))
        if vid != test_vid:
            plain.add(key + "\n")
    if any(vid != _EXCLUDED for vid in subtree.values()):
        _write_wildcard_shadows(master, exact, subtree, values)
    for sink in sinks:
        generation.close(sink)
    return ZoneSummary(
        zone=zone.name,
        kind=zone.kind.value,
        serial=serial,
        generated=_stamp(now),
        listings=listings,
        exclusions=exclusions,
        by_code=dict(sorted(by_code.items())),
        by_prefix=by_prefix,
        files=zone_files(zone),
    )


def _write_wildcard_shadows(
    master: _Sink, exact: dict[str, int], subtree: dict[str, int], values: _Values
) -> None:
    """Repair what a DNS wildcard does differently from rbl's ``*.name`` listings
    (rbl.zonedata.names.wildcard_shadows): the node gets A and TXT (or, if allowlisted,
    only an HINFO record: NODATA as rbl answers) and ``*.node`` repeats A's records.
    """
    for name, ancestor, vid in wildcard_shadows(exact, subtree):
        value = values.get(vid)
        own = exact.get(name)
        if own == _EXCLUDED:
            master.add(f"{name}\tHINFO\t{HINFO_EXCLUDED}\n")
        elif own is None:
            master.add(name + _records(value, name))
        if name not in subtree:
            master.add(f"*.{name}" + _records(value, f"*.{ancestor}"))


# -- summaries and checksums -------------------------------------------------------------


def _write_summaries(
    generation: _Generation, summaries: Sequence[ZoneSummary], now: datetime
) -> None:
    document = {"generated": _stamp(now), "zones": [s.as_json() for s in summaries]}
    generation.write_bytes(
        SUMMARY_JSON, (json.dumps(document, indent=2, sort_keys=False) + "\n").encode()
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["zone", "kind", "serial", "generated", "metric", "item", "count"])
    for s in summaries:
        head = [s.zone, s.kind, s.serial, s.generated]
        writer.writerow([*head, "listings", "", s.listings])
        writer.writerow([*head, "exclusions", "", s.exclusions])
        for code, count in s.by_code.items():
            writer.writerow([*head, "code", code, count])
        for prefix, count in s.by_prefix.items():
            writer.writerow([*head, "prefix", prefix, count])
    generation.write_bytes(SUMMARY_CSV, out.getvalue().encode())


def _write_sums(generation: _Generation, kept: dict[str, str]) -> None:
    sums = dict(kept)
    sums.update({rel: digest for rel, (digest, _size) in generation.digests.items()})
    text = "".join(f"{digest}  {rel}\n" for rel, digest in sorted(sums.items()))
    generation.write_bytes(SUMS_NAME, text.encode())


def _previous_summaries(
    directory: Path, settings: Settings, written: set[str]
) -> list[ZoneSummary]:
    """Summaries of configured zones this run did not write (``rbl dump --zone``)."""
    configured = {zone.name for zone in settings.zones} - written
    if not configured:
        return []
    try:
        document = json.loads((directory / SUMMARY_JSON).read_text())
        zones = document["zones"]
        return [
            ZoneSummary(
                zone=z["zone"],
                kind=z["kind"],
                serial=int(z["serial"]),
                generated=z["generated"],
                listings=int(z["listings"]),
                exclusions=int(z["exclusions"]),
                by_code=dict(z["by_code"]),
                by_prefix=dict(z["by_prefix"]),
                files=tuple(z["files"]),
            )
            for z in zones
            if z.get("zone") in configured
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _previous_sums(directory: Path, zones: set[str]) -> dict[str, str]:
    """SHA256SUMS lines of the zones kept from an earlier run."""
    if not zones:
        return {}
    try:
        text = (directory / SUMS_NAME).read_text()
    except OSError:
        return {}
    kept = {}
    for line in text.splitlines():
        digest, _sep, rel = line.partition("  ")
        if rel.split("/", 1)[0] in zones and (directory / rel).is_file():
            kept[rel] = digest
    return kept
