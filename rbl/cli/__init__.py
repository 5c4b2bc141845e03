"""The ``rbl`` command: run the server and manage the list.

Every command that changes the list goes through rbl.store, which writes the
audit log and the change log in the same transaction; a running server picks
the change up from the change log within its poll interval.

Each top-level command or command group has its own module, named after it
(``rbl requests`` is in requests.py; ``rbl list``, in listings.py), and is attached
to ``main`` here. What they share: base (the group and its context object),
options (parameter types and options), keys (KEY arguments), lines (import files)
and output (escaped printing).
"""

from rbl.cli import (
    allowlist,
    audit,
    db,
    delist,
    doctor,
    dump,
    expire,
    ingest,
    listings,
    quarantine,
    requests,
    serve,
    show,
    traps,
)
from rbl.cli.base import main

for _command in (
    allowlist.allowlist_group,
    audit.audit,
    db.db,
    delist.delist,
    doctor.doctor,
    dump.dump,
    expire.expire,
    ingest.ingest,
    listings.list_group,
    quarantine.quarantine_group,
    requests.requests,
    serve.serve,
    show.show,
    traps.traps,
):
    main.add_command(_command)

__all__ = ["main"]
