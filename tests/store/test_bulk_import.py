"""The bulk import writes what listing the keys one at a time writes.

``import_rows`` takes the SQLite fast path (key order, constants as literals,
secondary indexes rebuilt, change rows copied inside SQLite) or PostgreSQL's COPY;
``add_listing`` is the one-at-a-time path and the reference. Same rows, same
effect of the change log, same listings served, and an import that fails half-way
leaves the store (its indexes too) as it was.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Index, select, text

from rbl.model.keys import ListingKey, parse_domain_key, parse_ip_key
from rbl.store import importer
from rbl.store.database import open_engine
from rbl.store.importer import import_rows
from rbl.store.listings import add_listing, get_listing, import_row, remove_listing
from rbl.store.reader import ListingReader
from rbl.store.schema import ACTIVE, audit_log, change_log, listings

BEFORE = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 12, 4, 21, 0, 0, 123456, tzinfo=UTC)
ZONE = "bl.example.org"
DBL = "dbl.example.org"
COMPARED = [
    "zone",
    "key",
    "family",
    "prefixlen",
    "network",
    "codes",
    "txt",
    "reason",
    "source",
    "state",
    "expires_at",
    "hit_count",
    "times_listed",
    "first_seen",
    "last_seen",
    "delisted_at",
]


def _keys(count: int, seed: int) -> list[tuple[ListingKey, str, str | None]]:
    """A mixed list: /32s, networks, IPv6, own codes and TXT, repeated keys."""
    rng = random.Random(seed)
    out: list[tuple[ListingKey, str, str | None]] = []
    for n in range(count):
        pick = n % 10
        if pick < 6:
            text = f"{rng.randint(1, 126)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{n % 250}"
        elif pick < 8:
            text = f"{rng.randint(128, 223)}.{rng.randint(0, 255)}.{n % 256}.0/24"
        else:
            text = f"2001:db8:{n:x}::/64"
        codes = "127.0.0.2" if n % 3 else "127.0.0.3,127.0.0.4"
        txt = None if n % 7 else f"Own text for {{key}} number {n}"
        out.append((parse_ip_key(text), codes, txt))
    out += out[: count // 20]  # the same keys again, the same way
    out += [(key, "127.0.0.9", None) for key, _, _ in out[count // 20 : count // 10]]
    return out


def _seed(engine: Engine, keys: list[tuple[ListingKey, str, str | None]]) -> None:
    """Listings before the import: some it keeps, changes, or lists again."""
    with engine.begin() as conn:
        for key, codes, txt in keys[:150]:
            add_listing(conn, ZONE, key, tuple(codes.split(",")), txt=txt, actor="t", now=BEFORE)
        for key, _, _ in keys[100:120]:
            remove_listing(conn, ZONE, key, reason="gone", actor="t", now=BEFORE)
        add_listing(
            conn, DBL, parse_domain_key("spam.example"), ("127.0.1.2",), actor="t", now=BEFORE
        )


def _plain(value: Any) -> Any:
    """Times as naive UTC, as SQLite gives them back (PostgreSQL: aware)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _state(url: str) -> dict[str, Any]:
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            rows = {
                (row.zone, row.key): tuple(
                    _plain(getattr(row, c)) for c in [*COMPARED, "updated_at"]
                )
                for row in conn.execute(select(listings))
            }
            effect: dict[tuple[str, str], tuple[str, str | None, str | None]] = {}
            for change in conn.execute(select(change_log).order_by(change_log.c.id)):
                effect[(change.zone, change.key)] = (change.op, change.codes, change.txt)
            audits = conn.execute(select(audit_log.c.action, audit_log.c.detail)).all()
    finally:
        engine.dispose()
    reader = ListingReader(url)
    try:
        served = sorted(reader.iter_ip_rows([ZONE]))
    finally:
        reader.close()
    return {"rows": rows, "effect": effect, "served": served, "audit": audits[-1]}


@pytest.mark.parametrize("rebuild_min", [10, 10**9], ids=["rebuild", "in-place"])
def test_import_writes_what_listing_one_at_a_time_writes(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rebuild_min: int
) -> None:
    monkeypatch.setattr(importer, "REBUILD_MIN", rebuild_min)
    keys = _keys(3000, seed=15)
    reference = f"sqlite:///{tmp_path / 'reference.sqlite'}"
    for url in (reference, database_url):
        _seed(open_engine(url), keys)
    engine = open_engine(reference)
    with engine.begin() as conn:
        for key, codes, txt in keys:  # as the import did before it was fast: an
            old = get_listing(conn, ZONE, key)  # active listing as given is left alone
            if old is None or (old.state, ",".join(old.codes), old.txt) != (ACTIVE, codes, txt):
                add_listing(
                    conn,
                    ZONE,
                    key,
                    tuple(codes.split(",")),
                    txt=txt,
                    reason="r",
                    actor="t",
                    now=NOW,
                )
    engine.dispose()
    engine = open_engine(database_url)
    with engine.begin() as conn:
        rows = [import_row(key, codes, txt) for key, codes, txt in keys]
        added, changed = import_rows(
            conn, ZONE, rows, reason="r", actor="t", now=NOW, source="manual"
        )
    engine.dispose()
    # 3000 distinct keys, 150 of them there before; 20 of those removed; the 150 repeated
    # the same way again are unchanged; the next 150 change codes once more
    assert added == 3000 - 150
    assert changed == 20 + 150
    got, want = _state(database_url), _state(reference)
    differ = {
        (key, column, a, b)
        for key, row in got["rows"].items()
        for column, a, b in zip(
            [*COMPARED, "updated_at"], row, want["rows"].get(key, row), strict=True
        )
        if a != b
    }
    assert not differ, sorted(differ)[:3]
    assert got["rows"].keys() == want["rows"].keys()
    assert got["effect"] == want["effect"]
    assert got["served"] == want["served"] and len(got["served"]) == 3000
    assert got["audit"] == ("import", f"added={added} changed={changed}")


def test_a_failed_import_leaves_rows_change_log_and_indexes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "REBUILD_MIN", 10)
    url = f"sqlite:///{tmp_path / 'rbl.sqlite'}"
    engine = open_engine(url)
    keys = _keys(500, seed=3)
    _seed(engine, keys)

    def schema() -> list[Any]:
        with engine.connect() as conn:
            return conn.execute(text("SELECT name, sql FROM sqlite_master ORDER BY name")).all()

    before, state = schema(), _state(url)
    assert any(name == "ix_listings_load" for name, _ in before)

    def broken(self: Index, bind: Any, checkfirst: bool = False) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(Index, "create", broken)
    rows = [import_row(key, codes, txt) for key, codes, txt in keys]
    with pytest.raises(RuntimeError, match="disk full"), engine.begin() as conn:
        import_rows(conn, ZONE, rows, reason="r", actor="t", now=NOW, source="manual")
    assert schema() == before
    assert _state(url) == state
    engine.dispose()


@pytest.mark.parametrize(
    "reason",
    [
        "it's; DROP TABLE listings; --",
        "NUL \x00 inside",
        "ünïcödé 'quoted' \"too\"",
        "COPY's own: tab\there, new\nline, back\\slash \\N",
    ],
)
def test_the_reason_is_stored_exactly_whatever_it_holds(database_url: str, reason: str) -> None:
    if "\x00" in reason and "postgresql" in database_url:
        pytest.skip("PostgreSQL text holds no NUL")
    engine = open_engine(database_url)
    rows = [import_row(parse_ip_key(f"192.0.2.{n}"), "127.0.0.2", None) for n in range(1, 5)]
    with engine.begin() as conn:
        import_rows(conn, ZONE, rows, reason=reason, actor="t", now=NOW, source="manual")
    with engine.connect() as conn:
        stored = conn.execute(select(listings.c.reason).distinct()).scalars().all()
    engine.dispose()
    assert stored == [reason]
