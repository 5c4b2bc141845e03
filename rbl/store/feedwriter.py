"""The log feeds' transactions: hits stored with the policy, trap list and allowlist.

Ingest and refeed write through one ``HitWriter``: it holds the engine and
what ``record_hits`` judges hits by (listing rules, trap zones, the trap list
and the allowlist, read again every ``REFRESH_SECONDS`` so that changes made
while a long run goes on take effect), and makes each of their transactions
whole: a batch's hits, the lines it sets aside and the file's new position
(``rbl.store.sources``) commit together, as a refed line's hits and its
leaving the quarantine do. Retrying, halving and reporting are the feeds'.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine

from rbl.config import Settings
from rbl.errors import StoreError
from rbl.model.traphit import TrapHit
from rbl.model.traps import TrapMatcher
from rbl.policy.allowlist import Allowlist
from rbl.policy.listing import Rules
from rbl.store.allowlist import load_allowlist
from rbl.store.evidence import BatchResult, record_hits
from rbl.store.quarantine import Quarantined, mark_refed, note_refusal, quarantine_lines
from rbl.store.sources import Advance, Source, advance_source, open_source
from rbl.store.traps import active_traps

REFRESH_SECONDS = 10.0


class HitWriter:
    """Stores hits with the configured policy, trap list and allowlist (ingest and refeed)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.rules = Rules.from_settings(settings.listing)
        self.ip_zone = settings.trap_ip_zone()
        self.domain_zone = settings.trap_domain_zone()
        self._refreshed = -REFRESH_SECONDS
        self._matcher = TrapMatcher()
        self._allow = Allowlist()

    def refresh(self) -> None:
        """Read the trap list and allowlist again if the last read is old."""
        if time.monotonic() - self._refreshed < REFRESH_SECONDS:
            return
        with self.engine.connect() as conn:
            self._matcher = TrapMatcher(active_traps(conn))
            self._allow = load_allowlist(conn)
        self._refreshed = time.monotonic()

    def record(
        self, conn: Connection, hits: list[TrapHit], *, now: datetime, source_id: int | None
    ) -> BatchResult:
        return record_hits(
            conn,
            hits,
            matcher=self._matcher,
            allow=self._allow,
            rules=self.rules,
            ip_zone=self.ip_zone,
            domain_zone=self.domain_zone,
            now=now,
            source_id=source_id,
        )

    def source(
        self, identity: str, format_name: str, name: str, *, from_start: bool, now: datetime
    ) -> Source:
        """The file's row for the format (``open_source``), in a transaction of its own."""
        with self.engine.begin() as conn:
            return open_source(conn, identity, format_name, name, from_start=from_start, now=now)

    def store_batch(
        self,
        hits: list[TrapHit],
        quarantined: Sequence[Quarantined],
        *,
        source_id: int | None,
        to: Advance,
        now: datetime,
    ) -> BatchResult:
        """A batch's hits, the lines set aside among them, and the position after them
        (a file without a source row has none): one transaction."""
        self.refresh()
        with self.engine.begin() as conn:
            result = self.record(conn, hits, now=now, source_id=source_id)
            quarantine_lines(conn, quarantined, now=now)
            if source_id is not None:
                advance_source(conn, source_id, to, now=now)
        return result

    def refeed(
        self, row_id: int, hits: list[TrapHit], *, source_id: int | None, now: datetime
    ) -> BatchResult:
        """A quarantined line's hits, and its leaving the quarantine: one transaction."""
        self.refresh()
        with self.engine.begin() as conn:
            if not mark_refed(conn, row_id, now=now):
                raise StoreError(f"quarantined line {row_id} was refed or dropped meanwhile")
            return self.record(conn, hits, now=now, source_id=source_id)

    def keep_refusal(self, row_id: int, reason: str) -> None:
        """A refed line failed again: it stays quarantined with this reason."""
        with self.engine.begin() as conn:
            note_refusal(conn, row_id, reason)
