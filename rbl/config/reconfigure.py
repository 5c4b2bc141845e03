"""What a SIGHUP reload asks of each running service, and what the service reports back.

rbl.server.reload reads the file again and hands the settings to every service
that can change while it runs (``Reconfigurable``), one after another; each
applies its own part and notes it in the ``ReloadReport``. It lives here, below
every runtime layer, so that the DNS, web and dump services can take part
without importing the server that composes them. Imports nothing but rbl.config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rbl.config import Settings


@dataclass
class ReloadReport:
    """What a reload did: sections applied, and changes that wait for a restart."""

    applied: list[str] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)
    error: str | None = None


class Reconfigurable(Protocol):
    """A running service that takes new settings without a restart."""

    def reconfigure(self, old: Settings, new: Settings, report: ReloadReport) -> None:
        """Apply what changed from ``old`` (the settings last applied) to ``new``.

        Appends each section applied to ``report.applied`` and each change it
        cannot take while running to ``report.needs_restart``.
        """
