"""The ``rbl`` command: run the server and manage the list.

Every command that changes the list goes through rbl.store, which writes the
audit log and the change log in the same transaction; a running server picks
the change up from the change log within its poll interval. One module per
group of commands; importing this package registers them all on ``main``.
"""

from rbl.cli import (  # noqa: F401
    db,
    doctor,
    evidence,
    ingest,
    listings,
    quarantine,
    review,
    serve,
    traps,
)
from rbl.cli.base import main
from rbl.cli.dump import dump

main.add_command(dump)

__all__ = ["main"]
