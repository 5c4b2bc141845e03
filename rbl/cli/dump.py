"""``rbl dump``: write the mirror files once (cron, or before the first ``rbl serve``).

Attached to the main group in rbl/cli/__init__.py. Reads the store through
``ListingReader`` like a DNS process, so it never imports SQLAlchemy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from rbl.cli.output import echo

DEFAULT_DIRECTORY = "dumps"


def default_directory(settings: Any) -> Path:
    """``[dumps] directory`` when the configuration has it, else ./dumps."""
    dumps = getattr(settings, "dumps", None)
    directory = getattr(dumps, "directory", None)
    return Path(directory) if directory else Path(DEFAULT_DIRECTORY)


def configured_gzip_level(settings: Any) -> int:
    """``[dumps] gzip_level`` when the configuration has it, else the writer's default."""
    from rbl.dumps.writer import DEFAULT_GZIP_LEVEL

    level = getattr(getattr(settings, "dumps", None), "gzip_level", None)
    return level if isinstance(level, int) else DEFAULT_GZIP_LEVEL


@click.command("dump")
@click.option(
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write (default: [dumps] directory, else ./dumps).",
)
@click.option("--zone", "zones", multiple=True, help="Only this zone (repeatable).")
@click.option(
    "--gzip-level",
    type=click.IntRange(1, 9),
    default=None,
    help="gzip compression level of the .gz variants (default: [dumps] gzip_level, else 6).",
)
@click.pass_obj
def dump(obj: Any, directory: Path | None, zones: tuple[str, ...], gzip_level: int | None) -> None:
    """Write plain lists, rbldnsd data, zone files, checksums and summaries for mirrors."""
    from rbl.dumps.writer import write_dumps
    from rbl.store.reader import ListingReader

    settings = obj.settings
    target = directory if directory is not None else default_directory(settings)
    if gzip_level is None:
        gzip_level = configured_gzip_level(settings)
    reader = ListingReader(settings.database.url)
    try:
        report = write_dumps(
            settings,
            reader,
            target,
            datetime.now(UTC),
            zones=list(zones) or None,
            gzip_level=gzip_level,
        )
    finally:
        reader.close()
    for zone in report.zones:
        echo(
            f"{zone.zone}: {zone.listings} listings, {zone.exclusions} exclusions, "
            f"serial {zone.serial}"
        )
    echo(
        f"wrote {len(report.files)} files ({report.total_bytes:,} bytes) to {report.directory} "
        f"in {report.seconds:.2f}s"
    )
