"""One attempt logged twice counts once: the moments and attempts of hits seen so far.

A feed logs one SMTP attempt in more than one line (spamd -v, Postfix's hold
then reject, a policy request and its log line). The store merges such hits
before the policy counts them, inside a batch and across batches alike, so
that decisions do not depend on where batches start (rbl.store.evidence).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from rbl.model.traphit import TrapHit
from rbl.store.schema import hits
from rbl.store.timestamps import utc

CHUNK = 500  # addresses per IN list

# Who, from whom, to whom, in which second: what one attempt logged twice shares.
Moment = tuple[str, str | None, str | None, int]


def moment(client_ip: str, mail_from: str | None, rcpt_to: str | None, at: datetime) -> Moment:
    return client_ip, mail_from, rcpt_to, int(at.timestamp())


class Attempts:
    """The attempts seen so far, to tell a hit that repeats one from a new attempt.

    Two hits with the same moment are one attempt (spamd -v logs "(GREY)" and
    "Trapping" for one; Postfix logs "hold" then "reject"; a policy request and
    the log line of the same RCPT) unless both carry an attempt of the same kind
    that differ: two smtpd processes (``pid:``), two queue files (``queue:``), two
    postscreen connections (``port:``) are two attempts even in one second.
    Attempts of different kinds, or none, cannot tell two attempts apart, so
    such hits merge as they did before attempts were recorded.
    """

    def __init__(self) -> None:
        self._seen: dict[Moment, set[str | None]] = {}

    def add(self, moment: Moment, attempt: str | None) -> bool:
        """Record the hit's attempt; False when it repeats one already seen."""
        seen = self._seen.get(moment)
        if seen is None:
            self._seen[moment] = {attempt}
            return True
        if attempt is None or attempt in seen:
            return False
        kind = attempt.partition(":")[0]
        if any(other is None or other.partition(":")[0] != kind for other in seen):
            return False
        seen.add(attempt)
        return True

    def keep(self, moment: Moment, attempt: str | None) -> None:
        """Record a stored hit's attempt as it is."""
        self._seen.setdefault(moment, set()).add(attempt)


def stored_attempts(conn: Connection, batch: Sequence[TrapHit]) -> Attempts:
    """Attempts already stored in the batch's seconds, so a duplicate split across two
    batches is caught as surely as one inside a batch (decisions must not depend on
    where batches start)."""
    found = Attempts()
    if not batch:
        return found
    low = min(hit.at for hit in batch).replace(microsecond=0)
    high = max(hit.at for hit in batch).replace(microsecond=0) + timedelta(seconds=1)
    addresses = sorted({hit.client_ip for hit in batch})
    for start in range(0, len(addresses), CHUNK):
        for client_ip, mail_from, rcpt_to, at, attempt in conn.execute(
            select(
                hits.c.client_ip, hits.c.mail_from, hits.c.rcpt_to, hits.c.at, hits.c.attempt
            ).where(
                hits.c.client_ip.in_(addresses[start : start + CHUNK]),
                hits.c.at >= low,
                hits.c.at < high,
            )
        ):
            found.keep(moment(client_ip, mail_from, rcpt_to, utc(at)), attempt)
    return found
