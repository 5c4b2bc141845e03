"""A trap hit that lists its sender is answered once every DNS process shows the listing.

The pieces on their own, with ``task.Clock`` and fakes: the wait for a change-log
position across processes (rbl.server.visibility), the recorder's answer after it,
the change follower's poll on demand, the workers' report and poll-request
pipes, and the store saying which hits changed what DNS answers (SQLite and
PostgreSQL). tests/feeds/test_policy_visible.py runs the whole loop in a real server.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from twisted.internet import defer
from twisted.internet.task import Clock

from rbl.config import parse_settings
from rbl.feeds.recorder import HitRecorder
from rbl.metrics.report import ReportReader
from rbl.model.traphit import TrapHit
from rbl.model.traps import TrapMatcher, parse_trap
from rbl.policy.allowlist import Allowlist
from rbl.policy.listing import Rules
from rbl.server.changes import ChangeFollowerService
from rbl.server.visibility import POLL_REQUEST, PollRequests, Visibility
from rbl.server.workers import CONTROL_FD, WorkerSupervisor, _Worker
from rbl.store.database import open_engine
from rbl.store.evidence import record_hits
from rbl.store.schema import change_log

START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class Process:
    """A DNS process as Visibility sees it: a position, and how often it was asked to poll."""

    def __init__(self, applied: int | None) -> None:
        self.position = applied
        self.asked = 0
        self.polls = 0

    def applied(self) -> int | None:
        return self.position

    def poll_now(self) -> None:
        self.polls += 1


def gate(*positions: int | None) -> tuple[Visibility, list[Process], Clock]:
    clock = Clock()
    local, *remote = [Process(p) for p in positions]
    visibility = Visibility(clock, local)
    others = list(remote)
    visibility.remote = lambda: others
    return visibility, [local, *others], clock


def fired(d: defer.Deferred[bool]) -> list[bool]:
    got: list[bool] = []
    d.addCallback(got.append)
    return got


# -- waiting for a position in every process ----------------------------------------------


def test_a_position_every_process_has_applied_needs_no_wait_and_no_poll() -> None:
    visibility, processes, clock = gate(7, 9)
    assert fired(visibility.wait(7, 5.0)) == [True]
    assert [p.polls for p in processes] == [0, 0]
    assert clock.getDelayedCalls() == []


def test_a_wait_asks_each_process_behind_once_and_fires_when_the_last_catches_up() -> None:
    visibility, (main, worker, ahead), clock = gate(5, 6, 12)
    got = fired(visibility.wait(10, 5.0))
    also = fired(visibility.wait(10, 5.0))  # a second hit of the same batch
    assert (main.polls, worker.polls, ahead.polls) == (1, 1, 0)
    main.position = 10
    visibility.advanced()
    assert got == []  # the worker still answers NXDOMAIN
    worker.position = 11
    visibility.advanced()
    assert got == also == [True]
    assert clock.getDelayedCalls() == []  # the timeouts were cancelled
    clock.advance(10)
    assert got == [True]


def test_a_later_position_asks_again() -> None:
    visibility, (main,), _clock = gate(1)
    first = fired(visibility.wait(2, 5.0))
    second = fired(visibility.wait(3, 5.0))
    assert main.polls == 2  # the poll for 2 may have read before 3 committed
    main.position = 2
    visibility.advanced()
    assert (first, second) == ([True], [])
    main.position = 3
    visibility.advanced()
    assert second == [True]


def test_a_wait_times_out_false_and_is_forgotten() -> None:
    visibility, (main, worker), clock = gate(5, 5)
    got = fired(visibility.wait(6, 2.0))
    main.position = 6
    visibility.advanced()
    clock.advance(1.9)
    assert got == []
    clock.advance(0.1)
    assert got == [False]
    worker.position = 6
    visibility.advanced()  # too late: nothing fires twice
    assert got == [False]


def test_a_starting_worker_is_waited_for_and_asked_and_an_ended_one_is_not() -> None:
    visibility, (_main, ended, starting), _clock = gate(9, 3, None)
    got = fired(visibility.wait(9, 5.0))
    assert (ended.polls, starting.polls) == (1, 1)  # its request waits in the pipe
    others: list[Process] = [starting]
    visibility.remote = lambda: others  # the ended worker is gone from the supervisor
    visibility.advanced()
    assert got == []  # the starting one has not said where it is
    starting.position = 9  # its first report: loaded after the commit
    visibility.advanced()
    assert got == [True]


def test_a_worker_started_during_a_wait_is_asked_when_it_first_reports() -> None:
    visibility, (main, worker), _clock = gate(4, 4)
    got = fired(visibility.wait(5, 5.0))
    main.position = worker.position = 5
    fresh = Process(3)  # restarted: a snapshot read before the commit
    others = [worker, fresh]
    visibility.remote = lambda: others
    visibility.advanced()
    assert got == [] and fresh.polls == 1
    fresh.position = 5
    visibility.advanced()
    assert got == [True]


# -- the recorder answers after the wait ---------------------------------------------------


def hit(n: int) -> TrapHit:
    return TrapHit(
        at=START,
        client_ip=f"45.1.2.{n}",
        rcpt_to="trap@trap.example.org",
        mail_from="seller@spam.example",
        helo="spam.example",
        feed="policy",
        raw=f"request {n}",
    )


class Store:
    """A write whose positions per hit the test gives; completed by hand."""

    def __init__(self) -> None:
        self.calls: list[defer.Deferred[list[int | None]]] = []

    def write(self, batch: list[TrapHit]) -> defer.Deferred[list[int | None]]:
        d: defer.Deferred[list[int | None]] = defer.Deferred()
        self.calls.append(d)
        return d


def recorder(**options: Any) -> tuple[HitRecorder, Store, Visibility, Process, Clock]:
    visibility, (main,), clock = gate(0)
    store = Store()
    made = HitRecorder(store.write, clock, visible=visibility.wait, **options)
    made.start()
    return made, store, visibility, main, clock


def test_only_hits_that_changed_dns_wait_for_it() -> None:
    made, store, visibility, main, clock = recorder()
    got = [fired(made.submit(hit(n))) for n in range(3)]
    clock.advance(0)
    store.calls[0].callback([None, 8, 8])  # hit 0: already listed
    assert got == [[True], [], []]
    assert main.polls == 1
    clock.advance(0.03)
    main.position = 8
    visibility.advanced()
    assert got == [[True], [True], [True]]
    assert (made.waited, made.not_visible, made.deferred) == (2, 0, 0)
    assert abs(made.visible_seconds - 0.06) < 1e-9  # 2 hits x 30 ms


def test_a_write_that_returns_nothing_answers_at_commit() -> None:
    made, store, _visibility, main, clock = recorder()
    got = fired(made.submit(hit(1)))
    clock.advance(0)
    store.calls[0].callback(None)  # type: ignore[arg-type]
    assert got == [True] and main.polls == 0


def test_a_listing_not_visible_by_the_deadline_is_answered_durable_and_counted() -> None:
    made, store, _visibility, _main, clock = recorder(commit_timeout=5.0)
    got = fired(made.submit(hit(1)))
    clock.advance(0)
    clock.advance(2.0)
    store.calls[0].callback([3])  # committed after 2 s: 3 s left for DNS
    clock.advance(2.9)
    assert got == []
    clock.advance(0.1)
    assert got == [True]  # durable: the same answer as a hit that listed nothing
    assert (made.not_visible, made.deferred) == (1, 0)


def test_a_hit_not_committed_by_the_deadline_is_still_deferred() -> None:
    made, store, _visibility, _main, clock = recorder(commit_timeout=5.0)
    got = fired(made.submit(hit(1)))
    clock.advance(5.0)
    assert got == [False] and made.deferred == 1
    store.calls[0].callback([3])  # written later all the same: no second answer
    assert got == [False] and made.waited == 0


def test_stopping_answers_the_hits_waiting_for_dns_at_once() -> None:
    made, store, _visibility, _main, clock = recorder()
    waiting = fired(made.submit(hit(1)))
    clock.advance(0)
    store.calls[0].callback([4])
    assert waiting == []
    queued = fired(made.submit(hit(2)))
    clock.advance(0)
    stopped = made.stop()
    assert waiting == [True]
    store.calls[1].callback([5])  # committed while stopping: no wait either
    assert queued == [True]
    assert fired(stopped) == [None]  # type: ignore[comparison-overlap]


# -- the change follower reads on demand, one read at a time -------------------------------


class Follower:
    def __init__(self) -> None:
        self.position = 0

    def apply(self, changes: list[Any]) -> int:
        for change in changes:
            self.position = max(self.position, change)
        return len(changes)


class Database:
    """Reads complete by hand: the test sees how many are in flight."""

    def __init__(self) -> None:
        self.reads: list[tuple[int, defer.Deferred[tuple[list[int], int]]]] = []
        self.reader = None

    def run(self, function: Any, after: int) -> defer.Deferred[tuple[list[int], int]]:
        d: defer.Deferred[tuple[list[int], int]] = defer.Deferred()
        self.reads.append((after, d))
        return d


def test_a_poll_during_a_read_reads_once_more_after_it_never_two_at_once() -> None:
    database, follower = Database(), Follower()
    service = ChangeFollowerService(database, follower, 30.0, Clock())  # type: ignore[arg-type]
    applied: list[int] = []
    service.on_applied = lambda: applied.append(follower.position)
    first = fired(service.poll())  # type: ignore[arg-type]
    second = fired(service.poll())  # type: ignore[arg-type]
    third = fired(service.poll())  # type: ignore[arg-type]
    assert len(database.reads) == 1
    database.reads[0][1].callback(([1, 2], 0))
    assert first == [None] and second == third == []
    assert len(database.reads) == 2 and database.reads[1][0] == 2  # one more, from 2
    database.reads[1][1].callback(([3], 0))
    assert second == third == [None]
    assert applied == [2, 3] and len(database.reads) == 2
    assert service.applied() == 3


# -- the workers' pipes ---------------------------------------------------------------------


def test_report_reader_takes_applied_lines_between_reports() -> None:
    reader = ReportReader()
    assert reader.applied is None
    reader.feed(b'{"udp": 1, "position": 4}\n{"applied": 6}\n')
    assert reader.applied == 6
    assert reader.latest == {"udp": 1, "position": 6}  # /metrics shows the newest
    reader.feed(b'{"applied": 7}\n{"udp": 2, "position": 7}\n{"applied": tr')
    assert reader.applied == 7 and reader.latest == {"udp": 2, "position": 7}


class Transport:
    pid = 4242

    def __init__(self) -> None:
        self.written: list[tuple[int, bytes]] = []

    def writeToChild(self, fd: int, data: bytes) -> None:
        self.written.append((fd, data))


def test_a_worker_is_asked_over_its_control_pipe_and_its_report_advances_the_wait() -> None:
    clock = Clock()
    main = Process(5)
    visibility = Visibility(clock, main)
    supervisor = WorkerSupervisor([], 2, clock, visibility=visibility)
    worker = _Worker(supervisor, 1)
    worker.transport = Transport()
    supervisor.workers[1] = (worker, worker.transport)
    got = fired(visibility.wait(5, 5.0))
    assert worker.transport.written == [(CONTROL_FD, POLL_REQUEST)]
    worker.childDataReceived(3, b'{"applied": 4}\n')
    assert got == []
    worker.childDataReceived(3, b'{"applied": 5}\n')
    assert got == [True]


class Reactor:
    def __init__(self) -> None:
        self.readers: list[Any] = []

    def addReader(self, reader: Any) -> None:
        self.readers.append(reader)

    def removeReader(self, reader: Any) -> None:
        self.readers.remove(reader)


def test_poll_requests_are_one_poll_per_read_and_stop_at_end_of_file() -> None:
    read_end, write_end = os.pipe()
    try:
        reactor = Reactor()
        polls: list[None] = []
        requests = PollRequests(read_end, lambda: polls.append(None), reactor)
        requests.startService()
        assert reactor.readers == [requests] and requests.fileno() == read_end
        requests.doRead()  # woken with nothing there
        assert polls == []
        os.write(write_end, POLL_REQUEST * 3)
        requests.doRead()
        assert len(polls) == 1
        os.close(write_end)
        write_end = -1
        requests.doRead()
        assert reactor.readers == []
        requests.stopService()
    finally:
        os.close(read_end)
        if write_end != -1:
            os.close(write_end)


# -- the store says which hits changed what DNS answers ------------------------------------

SETTINGS = parse_settings(
    {
        "zones": [
            {"name": "bl.example.org", "kind": "ip", "ns": ["ns1.example.org"]},
            {"name": "dbl.example.org", "kind": "domain", "ns": ["ns1.example.org"]},
        ],
        "listing": {"threshold": 1},
    },
    source=Path("test.toml"),
)
MATCHER = TrapMatcher([parse_trap("@trap.example.org")])


def test_record_hits_gives_the_change_id_and_the_hits_it_answers(database_url: str) -> None:
    engine = open_engine(database_url)

    def write(batch: list[TrapHit]) -> Any:
        with engine.begin() as conn:
            return record_hits(
                conn,
                batch,
                matcher=MATCHER,
                allow=Allowlist(),
                rules=Rules.from_settings(SETTINGS.listing),
                ip_zone=SETTINGS.zone("bl.example.org"),
                domain_zone=SETTINGS.zone("dbl.example.org"),
                now=START + timedelta(minutes=1),
            )

    def newest() -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(func.max(change_log.c.id))).scalar_one())

    try:
        not_trap = TrapHit(
            at=START,
            client_ip="45.1.2.9",
            rcpt_to="user@example.org",
            mail_from="a@b.example",
            helo=None,
            feed="policy",
            raw="not a trap",
        )
        # Two hits from one new address and one that is no trap hit at all.
        two = replace(hit(1), raw="again", mail_from="x@spam.example")
        result = write([hit(1), not_trap, two])
        assert result.change_id == newest() and result.changed == {0, 2}
        # Already listed: extended, nothing new in DNS, nobody waits.
        later = replace(hit(1), at=START + timedelta(seconds=30))
        result = write([later])
        assert result.change_id is None and result.changed == set()
        # A new address beside a listed one: only its own hit waits.
        result = write([replace(later, at=START + timedelta(seconds=40)), hit(2)])
        assert result.change_id == newest() and result.changed == {1}
    finally:
        engine.dispose()
