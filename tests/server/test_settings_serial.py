"""In process: a settings row moves the serial and NOTIFYs; a node whose settings disagree
with the recorded ones refuses transfers and sends no NOTIFY; a reload records the new
fingerprint and one that catches up NOTIFYs (rbl.server.settingsmarks)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dns.message
import dns.rcode
from twisted.internet import defer, task
from twisted.internet.testing import FakeDatagramTransport
from twisted.logger import capturedLogs, formatEvent

from rbl.config import Settings
from rbl.config.reconfigure import ReloadReport
from rbl.dnsserver.notify import NotifySender, Target
from rbl.dnsserver.notifyport import NotifyChannel
from rbl.dnsserver.transfer import TransferPolicy, Transfers
from rbl.dnsserver.zone import Zone
from rbl.model.changes import OP_SET, OP_SETTINGS
from rbl.server.follower import IndexFollower
from rbl.server.settingsmarks import SettingsRecorder
from rbl.store.reader import Change, ListingReader
from rbl.store.settingslog import record_fingerprints
from tests.support.dns_client import make_query
from tests.support.dns_zones import IP_ORIGIN, IP_ZONE, make_responder, make_settings

SECONDARY = ("127.0.0.1", 5300)


class Socket(FakeDatagramTransport):
    def stopListening(self) -> None:
        pass


def zones() -> dict[str, Zone]:
    return {zone.name: zone for zone in make_responder().zones}


def axfr_rcode(zone: Zone) -> int:
    transfers = Transfers([zone], TransferPolicy.from_strings(["127.0.0.0/8"]))
    query = make_query(IP_ORIGIN if zone.name == IP_ZONE else zone.name, "AXFR")
    messages = transfers.respond(query.to_wire(), "127.0.0.1")
    return dns.message.from_wire(messages[0]).rcode()


def test_a_settings_row_moves_the_serial_and_notifies() -> None:
    served = zones()
    moved: list[tuple[str, int]] = []
    follower = IndexFollower(served, on_serial=lambda zone: moved.append((zone.name, zone.serial)))
    zone = served[IP_ZONE]
    follower.apply([Change(7, IP_ZONE, "192.0.2.77", OP_SET, "127.0.0.2", None)])
    assert zone.serial == 7 and zone.recorded is None and zone.agrees  # nothing recorded yet
    follower.apply([Change(9, IP_ZONE, zone.fingerprint, OP_SETTINGS, None, None)])
    assert zone.serial == 9 and zone.recorded == zone.fingerprint and zone.agrees
    assert moved == [(IP_ZONE, 7), (IP_ZONE, 9)]
    assert follower.skipped == 0
    assert axfr_rcode(zone) == dns.rcode.NOERROR


def test_a_node_whose_settings_disagree_refuses_transfers_and_sends_no_notify() -> None:
    zone = zones()[IP_ZONE]
    clock = task.Clock()
    sockets: list[Socket] = []

    def opener(target: Target, sender: NotifySender) -> NotifyChannel:
        channel = NotifyChannel(target, sender)
        sockets.append(Socket())
        channel.makeConnection(sockets[-1])
        return channel

    sender = NotifySender((SECONDARY,), clock, opener, interval=1.0, timeout=1.0)
    sender.start()
    follower = IndexFollower({IP_ZONE: zone}, on_serial=sender.zone_changed)
    with capturedLogs() as events:
        follower.apply([Change(11, IP_ZONE, "0" * 64, OP_SETTINGS, None, None)])  # another node's
        assert zone.serial == 11 and not zone.agrees
        assert axfr_rcode(zone) == dns.rcode.REFUSED
    assert sockets[0].written == []  # no NOTIFY
    logged = "\n".join(str(formatEvent(event)) for event in events)
    assert f"refusing a transfer of {IP_ZONE} to 127.0.0.1" in logged
    assert "reload this node" in logged and "no NOTIFY for bl.example.org" in logged
    # Reloaded like the node that recorded: it agrees, transfers and NOTIFYs again.
    zone.recorded = zone.fingerprint
    sender.zone_changed(zone)
    assert len(sockets[0].written) == 1
    assert axfr_rcode(zone) == dns.rcode.NOERROR
    sender.stop()


class Database:
    """DatabaseService.run, synchronously."""

    def __init__(self, url: str) -> None:
        self.reader = ListingReader(url)

    def run(self, function, *args):  # type: ignore[no-untyped-def]
        return defer.maybeDeferred(function, *args)


class Changes:
    """What SettingsRecorder asks of the change follower: its database, and a poll that
    applies the rows after the follower's position."""

    def __init__(self, database: Database, follower: IndexFollower) -> None:
        self.database = database
        self.follower = follower

    def poll(self) -> defer.Deferred[None]:
        self.follower.apply(self.database.reader.read_changes(self.follower.position, 100))
        return defer.succeed(None)


def test_a_reload_records_the_new_settings_and_a_node_catching_up_notifies(
    tmp_path: Path,
) -> None:
    from rbl.store.database import open_engine

    url = f"sqlite:///{tmp_path / 'rbl.sqlite'}"
    open_engine(url).dispose()
    old: Settings = make_settings()
    served = zones()
    record_fingerprints(url, {name: zone.fingerprint for name, zone in served.items()})
    notified: list[str] = []
    follower = IndexFollower(served, on_serial=lambda zone: notified.append(zone.name))
    database = Database(url)
    changes = Changes(database, follower)
    changes.poll()
    first = served[IP_ZONE].serial
    assert all(zone.agrees for zone in served.values()) and notified == [IP_ZONE, "dbl.example.org"]
    recorder = SettingsRecorder(url, follower, changes, task.Clock())  # type: ignore[arg-type]
    new = replace(old, zones=(replace(old.zones[0], ttl=61), old.zones[1]))
    notified.clear()
    served[IP_ZONE].reconfigure(new.zones[0])  # what the DNS service does first
    assert not served[IP_ZONE].agrees  # its new settings are not recorded yet
    recorder.reconfigure(old, new, ReloadReport())
    zone = served[IP_ZONE]
    assert zone.agrees and zone.serial > first and notified == [IP_ZONE]
    assert served["dbl.example.org"].serial < zone.serial  # the other zone keeps its serial
    # A second node, not yet reloaded, sees the row and disagrees; reloaded, it NOTIFYs.
    behind = zones()
    other = IndexFollower(behind, on_serial=lambda zone: notified.append(f"other {zone.name}"))
    Changes(database, other).poll()
    assert behind[IP_ZONE].serial == zone.serial and not behind[IP_ZONE].agrees
    notified.clear()
    behind[IP_ZONE].reconfigure(new.zones[0])
    SettingsRecorder(url, other, Changes(database, other), task.Clock()).reconfigure(  # type: ignore[arg-type]
        old, new, ReloadReport()
    )
    assert behind[IP_ZONE].agrees and notified == [f"other {IP_ZONE}"]
    assert behind[IP_ZONE].serial == zone.serial  # nothing new recorded
    database.reader.close()


def test_a_failed_write_is_logged_once_and_retried_until_it_succeeds(tmp_path: Path) -> None:
    from rbl.store.database import open_engine

    path = tmp_path / "later.sqlite"
    url = f"sqlite:///{path}"
    served = zones()
    follower = IndexFollower(served)
    database = Database(url)
    clock = task.Clock()
    recorder = SettingsRecorder(url, follower, Changes(database, follower), clock)  # type: ignore[arg-type]
    with capturedLogs() as events:
        recorder.record()
        clock.advance(10)
        clock.advance(10)
        assert all(zone.recorded is None for zone in served.values())
        open_engine(url).dispose()  # the store can be written now
        clock.advance(10)
    logged = [str(formatEvent(event)) for event in events]
    assert sum("cannot record the zones' new settings" in line for line in logged) == 1
    assert any("can be recorded again" in line for line in logged)
    assert all(zone.recorded == zone.fingerprint for zone in served.values())
    assert follower.position == 2 and served["dbl.example.org"].serial == 2
    assert clock.getDelayedCalls() == []
    database.reader.close()
