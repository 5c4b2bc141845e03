"""The store -> change log -> index path, and the service that polls it (with task.Clock)."""

from __future__ import annotations

import ipaddress
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from twisted.internet import defer, task

from rbl.config import parse_settings
from rbl.errors import NotListedError
from rbl.model.keys import IpKey, ZoneKind, parse_key
from rbl.server.changes import ChangeFollowerService
from rbl.server.follower import IndexFollower, build_zones, load_index
from rbl.store.database import open_engine
from rbl.store.listings import add_listing, remove_listing
from rbl.store.reader import ListingReader

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SETTINGS = parse_settings(
    {
        "zones": [
            {"name": "bl.example.org", "kind": "ip", "ns": ["ns1.example.org"]},
            {"name": "dbl.example.org", "kind": "domain", "ns": ["ns1.example.org"]},
        ]
    },
    source=Path("test.toml"),
)


def fresh_engine(directory: str) -> Engine:
    return open_engine(f"sqlite:///{directory}/rbl.sqlite")


def new_follower(engine: Engine) -> IndexFollower:
    follower = IndexFollower(build_zones(SETTINGS))
    reader = ListingReader(str(engine.url))
    load_index(reader, follower)
    reader.close()
    return follower


def catch_up(engine: Engine, follower: IndexFollower) -> None:
    reader = ListingReader(str(engine.url))
    while batch := reader.read_changes(follower.position, 7):
        follower.apply(batch)
    reader.close()


# Networks inside 10.0.0.0/16 so random listings overlap and nest often.
networks = st.builds(
    lambda address, prefixlen: IpKey(
        4, address & (((1 << prefixlen) - 1) << (32 - prefixlen)), prefixlen
    ),
    st.integers(0x0A000000, 0x0A00FFFF),
    st.sampled_from([16, 20, 24, 28, 30, 32]),
)
operations = st.lists(
    st.tuples(st.booleans(), networks, st.sampled_from(["127.0.0.2", "127.0.0.3"])),
    max_size=40,
)


def reference_lookup(active: dict[IpKey, str], address: int) -> str | None:
    covering = [k for k in active if k.network <= address <= k.last]
    return active[max(covering, key=lambda k: k.prefixlen)] if covering else None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations, st.lists(st.integers(0x0A000000, 0x0A00FFFF), min_size=1, max_size=30))
def test_snapshot_and_change_log_agree_with_reference(
    ops: list[tuple[bool, IpKey, str]], probes: list[int]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        engine = fresh_engine(directory)
        following = new_follower(engine)  # loaded while empty, then follows the log
        active: dict[IpKey, str] = {}
        for add, key, code in ops:
            with engine.begin() as conn:
                if add:
                    add_listing(conn, "bl.example.org", key, (code,), actor="t", now=NOW)
                    active[key] = code
                else:
                    try:
                        remove_listing(conn, "bl.example.org", key, reason="t", actor="t", now=NOW)
                        del active[key]
                    except NotListedError:
                        assert key not in active
        catch_up(engine, following)
        snapshot = new_follower(engine)
        engine.dispose()
    for follower in (following, snapshot):
        zone = follower.zones["bl.example.org"]
        for address in probes:
            vid = zone.index.v4.lookup(address)
            value = zone.index.values[vid] if vid else None
            got = value.codes[0] if value is not None else None
            assert got == reference_lookup(active, address), ipaddress.IPv4Address(address)
    assert following.zones["bl.example.org"].serial == snapshot.zones["bl.example.org"].serial


class SynchronousDatabase:
    """Stands in for DatabaseService: runs the job at once, or fails while ``broken``."""

    def __init__(self, engine: Engine) -> None:
        self.reader = ListingReader(str(engine.url))
        self.broken = False

    def run(self, function: Any, *args: Any) -> defer.Deferred[Any]:
        if self.broken:
            return defer.fail(RuntimeError("database is locked"))
        return defer.succeed(function(*args))


def test_poller_applies_changes_on_the_clock_and_survives_failures(tmp_path: Path) -> None:
    engine = fresh_engine(str(tmp_path))
    follower = new_follower(engine)
    clock = task.Clock()
    database = SynchronousDatabase(engine)
    poller = ChangeFollowerService(database, follower, 0.2, clock)  # type: ignore[arg-type]
    poller.startService()
    zone = follower.zones["bl.example.org"]
    key = parse_key(ZoneKind.IP, "192.0.2.1")
    with engine.begin() as conn:
        add_listing(conn, "bl.example.org", key, ("127.0.0.2",), actor="t", now=NOW)
    assert zone.index.lookup(key) is None
    clock.advance(0.2)
    assert zone.index.lookup(key) is not None
    assert zone.serial == follower.position > 0

    database.broken = True
    with engine.begin() as conn:
        remove_listing(conn, "bl.example.org", key, reason="t", actor="t", now=NOW)
    clock.advance(0.2)
    clock.advance(0.2)
    assert zone.index.lookup(key) is not None  # still answering from memory
    database.broken = False
    clock.advance(0.2)
    assert zone.index.lookup(key) is None  # the loop kept running and caught up
    poller.stopService()
    engine.dispose()


def test_a_follower_behind_pruned_rows_reloads_its_snapshot(database_url: str) -> None:
    """Rows this follower never read are pruned: it notices (change_log_pruned) and loads a
    fresh snapshot instead of skipping them; each zone keeps its newest row, so serials
    never go back."""
    from datetime import timedelta

    from sqlalchemy import func, select

    from rbl.store.changelog import prune_changes
    from rbl.store.schema import change_log, change_log_pruned

    engine = open_engine(database_url)
    try:
        with engine.begin() as conn:
            add_listing(
                conn,
                "dbl.example.org",
                parse_key(ZoneKind.DOMAIN, "old.example"),
                ("127.0.1.2",),
                actor="t",
                now=NOW,
            )
        follower = new_follower(engine)
        clock = task.Clock()
        poller = ChangeFollowerService(SynchronousDatabase(engine), follower, 0.2, clock)  # type: ignore[arg-type]
        poller.startService()
        zone = follower.zones["bl.example.org"]
        keys = [parse_key(ZoneKind.IP, f"192.0.2.{n}") for n in range(1, 6)]
        with engine.begin() as conn:  # changes the poller has not read yet...
            for key in keys:
                add_listing(conn, "bl.example.org", key, ("127.0.0.2",), actor="t", now=NOW)
            remove_listing(conn, "bl.example.org", keys[0], reason="t", actor="t", now=NOW)
        domain_serial = follower.zones["dbl.example.org"].serial
        # ...are pruned (everything but each zone's newest row).
        deleted = prune_changes(engine, datetime.now(UTC) + timedelta(days=1), batch=2)
        assert deleted == 5
        with engine.connect() as conn:
            kept = conn.execute(select(func.count()).select_from(change_log)).scalar_one()
            through = conn.execute(select(change_log_pruned.c.through)).scalar_one()
        assert kept == 2 and through > follower.position
        clock.advance(0.2)  # the poll sees the horizon past its position and reloads
        assert zone.index.lookup(keys[0]) is None
        assert all(zone.index.lookup(key) is not None for key in keys[1:])
        assert follower.position >= through and zone.serial == follower.position
        assert follower.zones["dbl.example.org"].serial == domain_serial  # kept, not back
        # and goes on following the log as before
        with engine.begin() as conn:
            add_listing(conn, "bl.example.org", keys[0], ("127.0.0.3",), actor="t", now=NOW)
        clock.advance(0.2)
        assert zone.index.lookup(keys[0]) is not None
        poller.stopService()
        poller.database.reader.close()  # type: ignore[attr-defined]
    finally:
        engine.dispose()
