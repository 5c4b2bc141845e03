"""``rbl ingest``: trap hits from logs, in bulk or following a growing file."""

from __future__ import annotations

import io
import os
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rbl.cli.base import Context, pass_context
from rbl.cli.options import Seconds, bounded_option
from rbl.cli.output import echo, safe

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar  # what click.progressbar returns

    from rbl.feeds.ingest import Ingestor
    from rbl.feeds.report import IngestReport, Unrecognised

EXIT_UNRECOGNISED = 3  # a file held no line of the format (1: an error, 2: usage)


@click.command()
@click.option(
    "--format",
    "format_name",
    required=True,
    help="Log format: spamd, spamdb, postfix, exim, sendmail, json, or auto (each line's "
    "own, told by its syslog program or shape).",
)
@click.option("--follow", is_flag=True, help="Keep reading as the log grows; survive rotation.")
@click.option(
    "--batch", "batch_size", default=5000, show_default=True, help="Lines per transaction."
)
@click.option(
    "--tz",
    "tz_name",
    default="UTC",
    show_default=True,
    help="Time zone of log timestamps that carry none (syslog).",
)
@click.option("--feed", default=None, help="Feed name recorded with the evidence.")
@bounded_option(
    "--poll", type=Seconds(0.01, 3600), default=1.0, help="Seconds between reads in --follow."
)
@bounded_option(
    "--retry-for",
    "retry_for",
    type=Seconds(0, 7 * 86400),
    default=300.0,
    help="Seconds to wait out database outages before giving up (0: fail at once); "
    "--follow waits for ever.",
)
@click.option(
    "--from-start",
    is_flag=True,
    help="Read the file from its first line even if this format's position is further on "
    "(attempts already stored are merged, not counted twice). Stop a --follow of the same "
    "file and format first: it would write its own position over this one's.",
)
@click.option(
    "--allow-unrecognised",
    is_flag=True,
    help="Exit 0 even if no line of the file is the format's (a log that may hold none).",
)
@click.argument("source")
@pass_context
def ingest(
    obj: Context,
    format_name: str,
    follow: bool,
    batch_size: int,
    tz_name: str,
    feed: str | None,
    poll: float,
    retry_for: float,
    from_start: bool,
    allow_unrecognised: bool,
    source: str,
) -> None:
    """Ingest trap hits from SOURCE (a log file, or '-' for standard input).

    A file's progress is committed with every batch, per file and format, so
    an interrupted run started again resumes where it stopped and counts no
    line twice, and one syslog can be read by one run per format (--feed
    does not matter: the same lines are the same attempts). --from-start
    reads the file again from its first line. A batch that meets a transient
    database error (locked, server gone) is tried again with backoff while
    reading waits; other database errors end the run at once. A line that
    cannot be parsed or stored is quarantined and skipped (rbl quarantine
    list); the run goes on and exits 0. A file in which no line is the
    format's (the wrong --format) is reported with examples and the run exits
    3, unless --allow-unrecognised; --follow reports it and goes on.
    """
    import signal
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from rbl.errors import StoreError
    from rbl.feeds.ingest import Ingestor
    from rbl.feeds.parsers import get_parser
    from rbl.feeds.parsers.recognise import AUTO
    from rbl.feeds.report import IngestReport
    from rbl.feeds.retry import Retrier, RetryPolicy
    from rbl.model.traphit import ParseError
    from rbl.store.feedwriter import HitWriter

    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"unknown time zone {tz_name!r}", param_hint="--tz") from None
    if batch_size < 1:
        raise click.BadParameter("must be at least 1", param_hint="--batch")
    if format_name != AUTO:
        try:
            get_parser(format_name)  # unknown: an error before the database is opened
        except ParseError as exc:
            raise click.BadParameter(f"{exc}, or auto", param_hint="--format") from None
    stop = _StopFlag()
    signal.signal(signal.SIGTERM, stop.set)
    retrier = Retrier(
        RetryPolicy(give_up_after=None if follow else retry_for),
        lambda line: echo(f"rbl ingest: {safe(line)}", err=True),
    )
    name = "<stdin>" if source == "-" else str(Path(source))  # as the store names it
    engine = retrier.call(obj.engine, lambda: f"{name}: opening the database", stop.running)
    ingestor = Ingestor(
        HitWriter(engine, obj.settings),
        format_name,
        batch_size=batch_size,
        tz=tz,
        feed=feed,
        retrier=retrier,
        on_unrecognised=None if allow_unrecognised else _print_unrecognised,
    )
    report = IngestReport()
    try:
        if source == "-":
            ingestor.ingest(sys.stdin.buffer, "<stdin>", report, keep_going=stop.running)
        else:
            _ingest_path(
                ingestor,
                Path(source),
                report,
                follow=follow,
                poll=poll,
                stop=stop,
                from_start=from_start,
            )
    except KeyboardInterrupt:
        echo("interrupted: progress up to the last batch is saved", err=True)
    except StoreError:
        _print_ingest(report, name, judge=not (follow or allow_unrecognised))
        raise
    _print_ingest(report, name, judge=not (follow or allow_unrecognised))
    if report.failed_recognition and not allow_unrecognised and not follow:
        sys.exit(EXIT_UNRECOGNISED)


class _StopFlag:
    """Set by SIGTERM or Ctrl-C; the current batch finishes and is committed first."""

    def __init__(self) -> None:
        self.stopping = False

    def set(self, *_args: object) -> None:
        self.stopping = True

    def running(self) -> bool:
        return not self.stopping


def _ingest_path(
    ingestor: Ingestor,
    path: Path,
    report: IngestReport,
    *,
    follow: bool,
    poll: float,
    stop: _StopFlag,
    from_start: bool,
) -> None:
    """One file, or in --follow mode the file and each file that replaces it on rotation
    (only the first is read again from its start for ``from_start``: the others are new,
    and take up the sessions the file before them left in flight)."""
    handoff: str | None = None
    while True:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            if not follow or stop.stopping:
                raise click.ClickException(f"cannot read {path}: no such file") from None
            time.sleep(poll)  # rotated away; the new file is not there yet
            continue
        except OSError as exc:
            raise click.ClickException(f"cannot read {path}: {exc.strerror}") from exc
        with handle:
            size = os.fstat(handle.fileno()).st_size
            visible = sys.stderr.isatty() and not follow
            with click.progressbar(
                length=size,
                label=f"ingesting {path}",
                file=sys.stderr if visible else io.StringIO(),
            ) as bar:
                handoff = ingestor.ingest(
                    handle,
                    str(path),
                    report,
                    follow=follow,
                    progress=_Progress(bar),
                    keep_going=stop.running,
                    poll=poll,
                    from_start=from_start,
                    handoff=handoff,
                )
        from_start = False
        if not follow or stop.stopping:
            return


class _Progress:
    def __init__(self, bar: ProgressBar[int]) -> None:
        self.bar = bar
        self.done = 0

    def __call__(self, offset: int) -> None:
        self.bar.update(max(offset - self.done, 0))
        self.done = offset


def _print_ingest(report: IngestReport, source: str, *, judge: bool) -> None:
    """The summary; with ``judge``, the files with no line of the format (a follower
    told them as it found them, and --allow-unrecognised asked not to be told)."""
    for resumed in report.resumed:
        where = "" if report.files == 1 else f"{safe(resumed.name)}: "
        echo(
            f"{where}resumed after line {resumed.line} (byte {resumed.offset}); "
            "--from-start reads it again"
        )
    actions = report.actions
    echo(
        f"lines: {report.lines}  hits parsed: {report.hits}  malformed: {report.malformed}  "
        f"not traps: {actions.get('ignore', 0)}  recorded: {actions.get('record', 0)}  "
        f"listed: {actions.get('list', 0)}  extended: {actions.get('extend', 0)}  "
        f"held for review: {actions.get('hold', 0)}  "
        f"duplicates merged: {actions.get('duplicate', 0)}  "
        f"quarantined: {report.quarantined}"
    )
    for problem in report.problems:
        echo(safe(problem), err=True)
    if report.quarantined > len(report.problems):
        echo(f"... and {report.quarantined - len(report.problems)} more", err=True)
    if report.quarantined:
        echo(
            f"rbl ingest: {report.quarantined} line(s) quarantined and skipped; list them "
            f"with 'rbl quarantine list --source {safe(shlex.quote(source))}', feed them "
            "again after a fix with 'rbl quarantine refeed'",
            err=True,
        )
    for found in report.unrecognised if judge else ():
        _print_unrecognised(found)


def _print_unrecognised(found: Unrecognised) -> None:
    """What a file with no line of its format holds instead, escaped (lines are the
    senders' and the log's, not ours), and what to do."""
    from rbl.feeds.parsers.recognise import AUTO

    kind = "of a format rbl reads" if found.format == AUTO else f"a {found.format} line"
    what = f"no line of {safe(found.name)} is {kind}"
    if found.seen:
        what += f"; they look like {safe(found.looks_like())}"
    echo(f"rbl ingest: {what} ({found.lines} non-blank line(s) read so far)", err=True)
    for example in found.examples:
        echo(f"  e.g. {safe(example)}", err=True)
    if not found.conclusive:
        echo("rbl ingest: too few lines to be sure; not an error yet", err=True)
    else:
        echo(
            "rbl ingest: read it with the right --format (auto: each line's own), or pass "
            "--allow-unrecognised if the file may hold no such line",
            err=True,
        )
