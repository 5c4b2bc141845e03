"""The start-up load reads each level whole, and serves what loading row by row serves.

``load_index`` takes the levels of ``ListingReader.ip_levels`` (one value a level:
its arrays straight from the bytes of its networks) and loads every other level from
its rows. Against it, the row path (``load_rows`` over ``iter_ip_rows``, as before):
the same entries at every level, the same values, the same answers, the same serials,
on SQLite and PostgreSQL, with mixed levels, IPv6, allowlist exclusions inside
listed levels, and test-point rows that must be skipped.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from rbl.config import load_settings
from rbl.index.tables import TEST_VALUE, Value, ZoneIndex
from rbl.model.keys import ZoneKind, parse_domain_key, parse_ip_key
from rbl.policy.trapfilter import NO_TRAPS
from rbl.server.follower import IndexFollower, build_zones, load_index
from rbl.store.allowlist import add_allowed
from rbl.store.database import open_engine
from rbl.store.importer import import_rows
from rbl.store.listings import import_row
from rbl.store.reader import ListingReader
from rbl.store.schema import listings
from rbl.zonedata.snapshot import RowValues, load_ip_levels, load_rows
from tests.support.config import database_url_of

NOW = datetime(2026, 12, 4, tzinfo=UTC)
IP = "bl.example.org"
DBL = "dbl.example.org"


def _seed(url: str) -> None:
    rng = random.Random(15)
    rows = [
        import_row(parse_ip_key(f"10.{n >> 8 & 255}.{n & 255}.{rng.randint(0, 255)}"), c, None)
        for n, c in ((n, "127.0.0.2") for n in range(2000))
    ]
    rows += [  # a level of mixed values
        import_row(parse_ip_key(f"172.16.{n}.0/24"), "127.0.0.3" if n % 3 else "127.0.0.4", t)
        for n, t in ((n, None if n % 5 else "Own {key}") for n in range(200))
    ]
    rows += [
        import_row(parse_ip_key(f"2001:db8:{n:x}::/48"), "127.0.0.2", None) for n in range(300)
    ]
    rows += [
        import_row(parse_ip_key(f"2001:db8:1:{n:x}::/64"), f"127.0.0.{2 + n % 2}", None)
        for n in range(50)
    ]
    engine = open_engine(url)
    with engine.begin() as conn:
        import_rows(conn, IP, rows, reason="r", actor="t", now=NOW, source="manual")
        domain = [import_row(parse_domain_key("spam.example"), "127.0.1.2", None)]
        import_rows(conn, DBL, domain, reason="r", actor="t", now=NOW, source="manual")
        # rows the store refuses today, as an older version may have stored them
        for text in ("127.0.0.2", "127.0.0.0/16"):  # each in a level of one value
            key = parse_ip_key(text)
            conn.execute(
                insert(listings).values(
                    zone=IP,
                    key=text,
                    family=4,
                    prefixlen=key.prefixlen,
                    network=key.packed,
                    codes="127.0.0.2",
                    source="manual",
                    state="active",
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
        allowed = rows[7][0]
        add_allowed(conn, parse_ip_key(allowed), reason="ok", actor="t", now=NOW, zones=[IP])
        add_allowed(conn, parse_ip_key("172.16.9.128/25"), reason="ok", actor="t", now=NOW)
    engine.dispose()


def _levels(index: ZoneIndex) -> dict[tuple[int, int], list[tuple[int, Value | None]]]:
    out = {}
    for bits, table in ((4, index.v4), (6, index.v6)):
        for length in table.prefixlens():
            level = table.level(length)
            level.merge()
            out[(bits, length)] = [
                (network, index.values[vid])
                for network, vid in zip(level.keys, level.vals, strict=True)
            ]
    return out


def test_levels_read_whole_serve_what_rows_serve(config_path: Path) -> None:
    url = database_url_of(config_path)
    _seed(url)
    settings = load_settings(config_path)
    reader = ListingReader(url)
    try:
        follower = IndexFollower(build_zones(settings))
        report = load_index(reader, follower)
        row_zones = build_zones(settings)
        indexes = {name: zone.index for name, zone in row_zones.items()}
        values = RowValues(reader.trap_filter())
        names = list(row_zones)
        loaded, skipped = load_rows(
            indexes,
            reader.iter_ip_rows(names),
            reader.iter_domain_rows(names),
            reader.iter_allowlist(),
            values,
        )
        positions = reader.change_positions()
    finally:
        reader.close()
    fast, slow = follower.zones[IP].index, row_zones[IP].index
    assert _levels(fast) == _levels(slow)
    assert report.listings == loaded and follower.skipped == skipped == 2
    assert len(_levels(fast)[(4, 32)]) == 2000 + 2  # and the two test points, kept
    for text in (
        "10.0.7.1",
        "127.0.0.2",
        "127.0.0.1",
        "172.16.9.200",
        "172.16.10.1",
        "2001:db8:1:3::1",
        "2001:db8:7::9",
    ):
        key = parse_ip_key(text)
        assert fast.lookup(key) == slow.lookup(key), text
    assert fast.lookup(parse_ip_key("127.0.0.2")) == TEST_VALUE
    assert _levels(fast)[(4, 16)] == []
    assert {name: zone.serial for name, zone in follower.zones.items()} == positions
    assert report.position == max(positions.values())
    assert follower.zones[DBL].index.lookup(parse_domain_key("spam.example")) is not None


def test_zone_positions_read_backwards_agree_with_grouping(database_url: str) -> None:
    engine = open_engine(database_url)
    rows = [import_row(parse_ip_key(f"192.0.2.{n}"), "127.0.0.2", None) for n in range(1, 9)]
    with engine.begin() as conn:
        import_rows(conn, IP, rows[:4], reason="r", actor="t", now=NOW, source="manual")
        import_rows(conn, "other.example", rows, reason="r", actor="t", now=NOW, source="m")
    engine.dispose()
    reader = ListingReader(database_url)
    try:
        assert reader.zone_positions([IP, DBL]) == (12, {IP: 4})
        assert reader.change_positions() == {IP: 4, "other.example": 12}
    finally:
        reader.close()


def test_a_level_not_in_order_or_short_is_loaded_from_its_rows() -> None:
    def rows(
        zone: str, family: int, prefixlen: int
    ) -> list[tuple[str, int, int, bytes, str, None]]:
        return [(zone, 4, 32, bytes([192, 0, 2, n]), "127.0.0.2", None) for n in (1, 2, 3)]

    for networks in (bytes([192, 0, 2, 2, 192, 0, 2, 1, 192, 0, 2, 3]), bytes(8), None):
        index = ZoneIndex(ZoneKind.IP)
        level = (IP, 4, 32, 3, "127.0.0.2", None, networks)
        loaded, _ = load_ip_levels({IP: index}, [level], rows, RowValues(NO_TRAPS))
        index.finish_load()
        assert loaded == 3
        assert [n & 255 for n in index.v4.level(32).keys if n >> 8 == 0xC00002] == [1, 2, 3]
