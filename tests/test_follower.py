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
from rbl.follower import IndexFollower
from rbl.keys import IpKey, ZoneKind, parse_key
from rbl.service import ChangeFollowerService, build_zones, load_index
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
