"""Waiting out transient database errors: one unit of work tried again with backoff.

Ingest, refeed and the CLI's opening of the database share one ``Retrier``. A
transient error (``rbl.store.faults.is_transient``: locked, server gone) is
retried with a doubling delay; any other ends the work at once as a
``StoreError`` naming where it was. A one-shot run gives up after
``give_up_after`` seconds with ``IngestGaveUp`` (what is committed stays; a
re-run resumes there); following retries for ever. The messages quote the
driver's one-line error (``describe_error``), never SQLAlchemy's statement and
parameters, which can hold log lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from rbl.errors import StoreError
from rbl.store.faults import is_transient

DEFAULT_RETRY_FOR = 300.0
_SLEEP_SLICE = 0.2  # seconds: how soon a stop request ends a backoff wait

T = TypeVar("T")


class IngestGaveUp(StoreError):
    """The database stayed unavailable for longer than the ingest may wait."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long and how often to try a transaction again after a transient error."""

    give_up_after: float | None = DEFAULT_RETRY_FOR  # seconds; None: never; 0: at once
    first_delay: float = 0.5
    max_delay: float = 30.0


def describe_error(exc: BaseException) -> str:
    """The driver's one-line message, without SQLAlchemy's statement and parameters."""
    if isinstance(exc, StoreError) and exc.__cause__ is not None:
        exc = exc.__cause__
    orig = getattr(exc, "orig", None)
    if isinstance(orig, BaseException):
        exc = orig
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else 'no message'}"


class Retrier:
    """Runs a unit of work until it succeeds, waiting out transient database errors.

    ``where`` names what is being done and how far it got, for the messages;
    ``notify`` gets one line when an outage starts and one when it ends.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        notify: Callable[[str], None],
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.notify = notify
        self.sleep = sleep
        self.monotonic = monotonic
        self.outages = 0

    def call(
        self,
        work: Callable[[], T],
        where: Callable[[], str],
        keep_going: Callable[[], bool] = lambda: True,
    ) -> T:
        started: float | None = None
        delay = self.policy.first_delay
        while True:
            try:
                result = work()
            except Exception as exc:
                if not is_transient(exc):
                    raise StoreError(f"{where()}: {describe_error(exc)}") from exc
                now = self.monotonic()
                if started is None:
                    started = now
                    self.outages += 1
                    limit = self.policy.give_up_after
                    patience = "until it is back" if limit is None else f"for up to {limit:g}s"
                    self.notify(
                        f"{where()}: database unavailable ({describe_error(exc)}); "
                        f"retrying {patience}"
                    )
                waited = now - started
                limit = self.policy.give_up_after
                if limit is not None and waited >= limit:
                    raise IngestGaveUp(
                        f"{where()}: gave up after {waited:.1f}s of database errors "
                        f"(--retry-for {limit:g}); a re-run resumes there. "
                        f"Last error: {describe_error(exc)}"
                    ) from exc
                pause = delay if limit is None else min(delay, limit - waited)
                self._pause(pause, keep_going, where, exc)
                delay = min(delay * 2, self.policy.max_delay)
                continue
            if started is not None:
                self.notify(f"{where()}: database back after {self.monotonic() - started:.1f}s")
            return result

    def _pause(
        self,
        seconds: float,
        keep_going: Callable[[], bool],
        where: Callable[[], str],
        exc: BaseException,
    ) -> None:
        end = self.monotonic() + seconds
        while True:
            if not keep_going():
                raise IngestGaveUp(
                    f"{where()}: stopped while the database was unavailable; a re-run "
                    f"resumes there. Last error: {describe_error(exc)}"
                ) from exc
            left = end - self.monotonic()
            if left <= 0:
                return
            self.sleep(min(left, _SLEEP_SLICE))
