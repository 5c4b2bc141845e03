"""Queues TrapHits from live feeds and commits them in batches (group commit).

A live feed answers a trap hit only once it is durable: ``submit`` queues the
hit and returns a Deferred that fires True when the batch holding it has
committed, or False when it could not be committed within ``commit_timeout``
or the queue is full (the feed then asks the sender to retry later). A batch
starts as soon as hits wait and no write is in flight, and takes whatever
arrived meanwhile (up to ``batch`` hits), so an answer costs one transaction.

A hit that listed its sender is answered later still: ``write`` says, per
hit, the change-log id DNS must have applied to answer the new listing, and
``visible`` (rbl.server.visibility in ``rbl serve``) fires once every DNS process
has, so the MTA's DNSBL lookup right after the answer already sees it. That
wait shares the hit's deadline; past it the hit is answered True all the same
(it is durable: asking the sender to retry would only record the attempt
twice) and counted in ``not_visible``. Hits that changed nothing DNS answers
(already listed, below the threshold, ignored) are answered at commit.

Nothing is dropped once queued: a failed batch stays at the head of the queue
and is retried with backoff, logged once per outage; a hit answered False on
its deadline is still written when the store comes back (it was a real
attempt). A batch whose commit outcome is unknown (connection lost during
COMMIT) may be written again: the store stores one attempt once (same client,
sender, recipient and second), so the retry adds nothing. Only a full queue
refuses a hit outright. A hit the store refuses for good is set aside: answered
False, logged whole, and handed to ``quarantine`` (in ``rbl serve``: written to
the store's quarantine in a transaction of its own, off the reactor thread),
where ``rbl quarantine refeed`` finds it. Imports Twisted only, no SQLAlchemy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from rbl.model.traphit import TrapHit

log = Logger(namespace="rbl.feeds.recorder")

MAX_QUEUED = 100_000
MAX_BATCH = 5_000
RETRY_FIRST = 0.2  # seconds before the first retry of a failed batch...
RETRY_MAX = 5.0  # ...doubling up to this


class _Pending:
    """A queued hit and the Deferred its feed waits on (answered at most once)."""

    __slots__ = ("answer", "committed", "deadline", "hit")

    def __init__(self, hit: TrapHit, deadline: float) -> None:
        self.hit = hit
        self.deadline = deadline
        self.answer: defer.Deferred[bool] | None = defer.Deferred()
        self.committed = False  # durable, waiting for DNS to show its listing

    def settle(self, durable: bool) -> bool:
        """Fire the answer unless it already fired; True if it fired now."""
        answer, self.answer = self.answer, None
        if answer is None:
            return False
        answer.callback(durable)
        return True


class HitRecorder:
    """The queue between a live feed and the store.

    ``write`` runs one transaction for a list of hits off the reactor thread
    and returns None or, for each hit in order, the change-log id its answer
    waits for (None: no wait); ``visible(id, timeout)`` fires True once DNS
    shows that id, False if not within ``timeout``. Counters, read by
    metrics: ``queued`` hits waiting or being written (a property), ``written``
    hits committed, ``failures`` consecutive failed writes (0 when the store
    works), ``deferred`` hits answered False (queue full, past their
    deadline, or submitted while stopping), ``refused`` those
    of them never queued (queue full or stopping; these are never written),
    ``set_aside`` hits the store refused for good (logged whole, not retried),
    ``quarantined`` those of them kept in the quarantine (the others are only in
    the log: the quarantine write failed too). A failure ``is_transient`` calls
    permanent is not retried as it is: see ``_failed_for_good``. ``waited``
    counts hits whose answer waited for DNS, ``not_visible`` those of them
    answered at their deadline before every DNS process showed the listing,
    ``visible_seconds`` the time they waited in all.
    """

    def __init__(
        self,
        write: Callable[[list[TrapHit]], defer.Deferred[Sequence[int | None] | None]],
        clock: Any,
        *,
        commit_timeout: float = 10.0,
        limit: int = MAX_QUEUED,
        batch: int = MAX_BATCH,
        is_transient: Callable[[BaseException], bool] = lambda _error: True,
        quarantine: Callable[[TrapHit, BaseException], defer.Deferred[Any]] | None = None,
        visible: Callable[[int, float], defer.Deferred[bool]] | None = None,
    ) -> None:
        self.write = write
        self.visible = visible
        self.quarantine = quarantine
        self.is_transient = is_transient  # rbl.store.faults.is_transient in rbl serve
        self.clock = clock
        self.commit_timeout = commit_timeout
        self.limit = limit
        self.batch = batch
        self.written = 0
        self.failures = 0
        self.deferred = 0
        self.refused = 0
        self.set_aside = 0
        self.quarantined = 0
        self.waited = 0
        self.not_visible = 0
        self.visible_seconds = 0.0
        # Hits to write one at a time: after a batch failed for good, to find the
        # hit it failed on without holding back the others.
        self._isolating = 0
        self._queue: deque[_Pending] = deque()  # oldest first; the in-flight batch at the head
        self._unanswered: deque[_Pending] = deque()  # submission order, so deadlines ascend
        self._writing = False
        self._accepting = False
        self._retry_delay = RETRY_FIRST
        self._flush_call: IDelayedCall | None = None  # the next flush, now or after backoff
        self._deadline_call: IDelayedCall | None = None
        self._drained: list[defer.Deferred[None]] = []
        self._closed = False  # stopped and given up: no more writes

    @property
    def queued(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._accepting = True

    def submit(self, hit: TrapHit) -> defer.Deferred[bool]:
        """Queue ``hit``; the result fires True once it is committed, False if not in time."""
        if not self._accepting or len(self._queue) >= self.limit:
            self.deferred += 1
            self.refused += 1
            return defer.succeed(False)
        pending = _Pending(hit, self.clock.seconds() + self.commit_timeout)
        answer = pending.answer
        assert answer is not None
        self._queue.append(pending)
        self._unanswered.append(pending)
        if self._deadline_call is None:
            self._deadline_call = self.clock.callLater(self.commit_timeout, self._expire)
        if not self._writing and self._flush_call is None:
            # Not at once: requests arriving in this reactor turn join the batch.
            self._flush_call = self.clock.callLater(0, self._flush)
        return answer

    def stop(self) -> defer.Deferred[None]:
        """Refuse new hits, write the queue (waiting at most ``commit_timeout``), answer all.

        Hits still queued when the time is up are answered False and lost with
        the process; the sender retries them.
        """
        self._accepting = False
        for pending in self._unanswered:  # durable: DNS is stopping, no point waiting
            if pending.committed:
                pending.settle(True)
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.reset(0)  # no backoff now: one more try before exit
        if not self._queue:
            return defer.succeed(None)
        drained: defer.Deferred[None] = defer.Deferred()
        self._drained.append(drained)
        give_up = self.clock.callLater(self.commit_timeout, self._giveUp, drained)

        def finished(result: None) -> None:
            if give_up.active():
                give_up.cancel()

        drained.addCallback(finished)
        return drained

    def _giveUp(self, drained: defer.Deferred[None]) -> None:
        self._closed = True
        for call in (self._flush_call, self._deadline_call):
            if call is not None and call.active():
                call.cancel()
        self._flush_call = self._deadline_call = None
        for pending in self._unanswered:
            if pending.settle(pending.committed) and not pending.committed:
                self.deferred += 1
        self._unanswered.clear()
        if self._queue:
            log.warn(
                "stopping with {count} trap hits unwritten (answered: try again later)",
                count=len(self._queue),
            )
        if drained in self._drained:
            self._drained.remove(drained)
            drained.callback(None)

    def _expire(self) -> None:
        """Answer False every hit whose deadline has passed; it stays queued."""
        self._deadline_call = None
        now = self.clock.seconds()
        while self._unanswered and (
            self._unanswered[0].answer is None or self._unanswered[0].deadline <= now
        ):
            pending = self._unanswered.popleft()
            # A committed hit waits for DNS with the same deadline; that wait answers it.
            if not pending.committed and pending.settle(False):
                self.deferred += 1
        self._armDeadline()

    def _armDeadline(self) -> None:
        while self._unanswered and self._unanswered[0].answer is None:
            self._unanswered.popleft()
        if self._unanswered and self._deadline_call is None:
            delay = max(0.0, self._unanswered[0].deadline - self.clock.seconds())
            self._deadline_call = self.clock.callLater(delay, self._expire)

    def _flush(self) -> None:
        self._flush_call = None
        if self._writing or not self._queue:
            return
        count = 1 if self._isolating else min(len(self._queue), self.batch)
        hits = [self._queue[i].hit for i in range(count)]
        self._writing = True
        d = defer.maybeDeferred(self.write, hits)
        d.addCallbacks(self._written, self._failed, callbackArgs=(count,))

    def _written(self, positions: Sequence[int | None] | None, count: int) -> None:
        self._writing = False
        self._isolating = max(0, self._isolating - count)
        now = self.clock.seconds()
        for index in range(count):
            pending = self._queue.popleft()
            position = positions[index] if positions else None
            if pending.answer is None:  # answered False on its deadline: nobody waits now
                continue
            if position is None or self.visible is None or not self._accepting:
                pending.settle(True)
                continue
            pending.committed = True
            self.waited += 1
            seen = self.visible(position, max(0.0, pending.deadline - now))
            seen.addCallback(self._seen, pending, now)
        self.written += count
        self._retry_delay = RETRY_FIRST
        if self.failures:
            log.info(
                "writing trap hits works again after {failures} failed tries ({count} queued)",
                failures=self.failures,
                count=len(self._queue),
            )
        self.failures = 0
        self._armDeadline()
        self._next(0)

    def _seen(self, visible: bool, pending: _Pending, committed: float) -> None:
        self.visible_seconds += self.clock.seconds() - committed
        if pending.settle(True) and not visible:
            self.not_visible += 1

    def _failed(self, failure: Any) -> None:
        self._writing = False
        if not self.is_transient(failure.value):
            self._failed_for_good(failure)
            return
        self.failures += 1
        if self.failures == 1:  # once per outage
            log.failure(
                "cannot write trap hits; keeping {count} queued and retrying",
                failure=failure,
                count=len(self._queue),
            )
        delay, self._retry_delay = self._retry_delay, min(self._retry_delay * 2, RETRY_MAX)
        self._next(delay)

    def _failed_for_good(self, failure: Any) -> None:
        """Retrying cannot help: find the hit it fails on, set it aside, go on with the rest.

        A batch is retried one hit at a time; a single hit that fails for
        good is logged whole, kept in the quarantine (so the operator can see
        and re-feed it), taken off the queue and answered False: the sender is
        asked to try again, and the feed keeps recording everyone else.
        """
        if self._isolating == 0 and len(self._queue) > 1:
            self._isolating = min(len(self._queue), self.batch)
            self._next(0)
            return
        pending = self._queue.popleft()
        self._isolating = max(0, self._isolating - 1)
        if pending.settle(False):
            self.deferred += 1
        self.set_aside += 1
        log.failure(
            "a trap hit cannot be stored and is set aside: {raw}",
            failure=failure,
            raw=pending.hit.raw,
        )
        if self.quarantine is not None:
            kept = defer.maybeDeferred(self.quarantine, pending.hit, failure.value)
            kept.addCallbacks(self._quarantined, self._notQuarantined, errbackArgs=(pending.hit,))
        self._armDeadline()
        self._next(0)

    def _quarantined(self, _result: object) -> None:
        self.quarantined += 1

    def _notQuarantined(self, failure: Any, hit: TrapHit) -> None:
        log.failure(
            "a trap hit set aside could not be quarantined; it is only in this log: {raw}",
            failure=failure,
            raw=hit.raw,
        )

    def _next(self, delay: float) -> None:
        if self._closed:
            return
        if self._queue:
            if self._flush_call is None:
                self._flush_call = self.clock.callLater(delay, self._flush)
            return
        drained, self._drained = self._drained, []
        for d in drained:
            d.callback(None)
