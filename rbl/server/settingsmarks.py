# mypy: allow-untyped-calls
"""Serials that follow the zones' settings: record a changed fingerprint at start and reload.

A zone's serial is the id of its latest change-log row. Listing changes write
rows; a SIGHUP that changes a TTL, the SOA, NS or a TXT template changes what
the zone serves without one. So a node whose zone fingerprint
(``Zone.fingerprint``, rbl.zonedata.fingerprint) differs from the latest one
recorded in the store (``Zone.recorded``) appends an ``OP_SETTINGS`` row
(rbl.store.settingslog, idempotent across nodes): at start once the ports are
bound (a node that cannot start records nothing; the write and the rows after
the snapshot are read before the ready file is written, so a started node
serves the new serial), and after a reload. Every node applies the row
(rbl.server.follower), moves the serial to it and sends NOTIFY; until this
node serves the recorded settings, its transfers are refused
(``Zone.agrees``). Imports no SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.logger import Logger
from twisted.python.failure import Failure

from rbl.config.reconfigure import ReloadReport
from rbl.dnsserver.zone import Zone
from rbl.errors import StoreError
from rbl.server.changes import CHANGE_BATCH
from rbl.store.settingslog import record_fingerprints
from rbl.zonedata.fingerprint import fingerprint

if TYPE_CHECKING:
    from rbl.config import Settings
    from rbl.server.changes import ChangeFollowerService
    from rbl.server.follower import IndexFollower

log = Logger(namespace="rbl.settings")
RETRY_SECONDS = 10.0  # after a failed write; a node may not write at all (a read-only role)


def unrecorded(zones: Mapping[str, Zone]) -> dict[str, str]:
    """zone: fingerprint, for the zones whose own settings are not the recorded ones."""
    return {
        name: zone.fingerprint for name, zone in zones.items() if zone.recorded != zone.fingerprint
    }


def _log_written(written: Mapping[str, int]) -> None:
    for zone, row in sorted(written.items()):
        log.info(
            "recorded new settings of {zone} at change {row}: its serial moves", zone=zone, row=row
        )


class SettingsRecorder(Service):
    """Records the zones' fingerprints where they are not the recorded ones: at start, and
    after a reload (in the database pool, then a poll so the row applies at once;
    ``Reconfigurable``). Started after the DNS ports and the change follower."""

    def __init__(
        self, url: str, follower: IndexFollower, changes: ChangeFollowerService, reactor: Any
    ) -> None:
        self.url = url
        self.follower = follower
        self.zones = follower.zones
        self.changes = changes
        self.reactor = reactor
        self._retry: Any = None
        self._failing = False

    def startService(self) -> None:
        """Record now, on the reactor thread before it serves (like the snapshot load):
        the rows written and any after the snapshot apply before the ready file."""
        super().startService()
        wanted = unrecorded(self.zones)
        if not wanted:
            return
        try:
            written = record_fingerprints(self.url, wanted)
            reader = self.changes.database.reader
            self.follower.apply(reader.read_changes(self.follower.position, CHANGE_BATCH))
        except StoreError as exc:
            self._failed(Failure(exc))
            return
        _log_written(written)

    def stopService(self) -> None:
        super().stopService()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None

    def reconfigure(self, old: Settings, new: Settings, report: ReloadReport) -> None:
        """Runs after the DNS service took the new zone settings."""
        before = {zone.name: fingerprint(zone) for zone in old.zones}
        for name, zone in self.zones.items():
            caught_up = (
                zone.recorded is not None and zone.agrees and before.get(name) != zone.recorded
            )
            if caught_up and self.follower.on_serial is not None:
                self.follower.on_serial(zone)  # NOTIFY: serves what another node recorded
        if unrecorded(self.zones):
            self.record()

    def record(self) -> None:
        """Write the unrecorded fingerprints in the database pool; on failure, try again in
        RETRY_SECONDS."""
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        wanted = unrecorded(self.zones)
        if not wanted:
            return
        d = self.changes.database.run(record_fingerprints, self.url, wanted)
        d.addCallbacks(self._written, self._failed)

    def _written(self, written: dict[str, int]) -> None:
        if self._failing:
            self._failing = False
            log.info("the zones' settings can be recorded again")
        _log_written(written)
        self.changes.poll()

    def _failed(self, failure: Failure) -> None:
        if not self._failing:  # once per failure streak
            self._failing = True
            log.error(
                "cannot record the zones' new settings ({error}); their transfers stay "
                "refused; trying again every {seconds:.0f} s",
                error=failure.getErrorMessage(),
                seconds=RETRY_SECONDS,
            )
        self._retry = self.reactor.callLater(RETRY_SECONDS, self.record)
