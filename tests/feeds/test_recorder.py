"""The live-feed queue: group commit, answers after commit, deadlines, retries, draining.

Driven by ``task.Clock`` and a write function the test controls; the last tests
write through ``record_hits`` into a real store (SQLite and PostgreSQL) and
lose the COMMIT's outcome on purpose.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, Logger

from rbl.config import parse_settings
from rbl.errors import ConfigError
from rbl.feeds import recorder as recorder_module
from rbl.feeds.recorder import RETRY_FIRST, RETRY_MAX, HitRecorder
from rbl.model.traphit import TrapHit
from rbl.model.traps import TrapMatcher, parse_trap
from rbl.policy.allowlist import Allowlist
from rbl.policy.listing import Rules
from rbl.store.database import open_engine
from rbl.store.evidence import record_hits
from rbl.store.schema import hits

START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def hit(n: int, second: float = 0.0) -> TrapHit:
    return TrapHit(
        at=START + timedelta(seconds=second),
        client_ip="45.1.2.3",
        rcpt_to=f"r{n}@trap.example.org",
        mail_from="seller@spam.example",
        helo="spam.example",
        feed="policy",
        raw=f"request {n}",
    )


class Store:
    """A write function whose calls the test completes by hand."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[TrapHit], defer.Deferred[None]]] = []
        self.committed: list[TrapHit] = []

    def write(self, batch: list[TrapHit]) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        self.calls.append((list(batch), d))
        return d

    def commit(self) -> None:
        batch, d = self.calls[-1]
        self.committed.extend(batch)
        d.callback(None)

    def fail(self) -> None:
        self.calls[-1][1].errback(RuntimeError("database is locked"))


def make(**options: Any) -> tuple[HitRecorder, Store, Clock]:
    clock = Clock()
    store = Store()
    recorder = HitRecorder(store.write, clock, **options)
    recorder.start()
    return recorder, store, clock


def answers(recorder: HitRecorder, count: int, start: int = 0) -> list[list[bool]]:
    """Submit ``count`` hits; each list receives its hit's answer when it fires."""
    results: list[list[bool]] = []
    for n in range(start, start + count):
        got: list[bool] = []
        recorder.submit(hit(n)).addCallback(got.append)
        results.append(got)
    return results


@pytest.fixture
def quiet_log(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    monkeypatch.setattr(recorder_module, "log", Logger(observer=cast(ILogObserver, events.append)))
    return events


def test_hits_of_one_turn_are_one_batch_answered_after_commit() -> None:
    recorder, store, clock = make()
    got = answers(recorder, 3)
    assert store.calls == []  # the batch starts on the next reactor turn
    clock.advance(0)
    assert [h.rcpt_to for h in store.calls[0][0]] == [f"r{n}@trap.example.org" for n in range(3)]
    assert got == [[], [], []] and recorder.queued == 3  # not durable yet
    store.commit()
    assert got == [[True], [True], [True]]
    assert (recorder.queued, recorder.written, recorder.deferred) == (0, 3, 0)


def test_hits_arriving_during_a_write_are_the_next_batch_at_once() -> None:
    recorder, store, clock = make(batch=2)
    first = answers(recorder, 3)
    clock.advance(0)
    assert len(store.calls[0][0]) == 2  # capped
    later = answers(recorder, 2, start=3)
    clock.advance(0)
    assert len(store.calls) == 1  # one write in flight at a time
    store.commit()
    assert first == [[True], [True], []]
    clock.advance(0)  # no 0.2 s tick: the next batch starts on the next turn
    assert [h.raw for h in store.calls[1][0]] == ["request 2", "request 3"]
    store.commit()
    clock.advance(0)
    store.commit()
    assert first + later == [[True]] * 5
    assert store.committed == [hit(n) for n in range(5)]


def test_failed_batch_is_retried_first_with_backoff_logged_once(
    quiet_log: list[dict[str, Any]],
) -> None:
    recorder, store, clock = make(commit_timeout=60.0)
    got = answers(recorder, 2)
    clock.advance(0)
    delays = []
    for _ in range(8):
        store.fail()
        waited = min(call.getTime() for call in clock.getDelayedCalls()) - clock.seconds()
        delays.append(round(waited, 3))
        before = len(store.calls)
        clock.advance(waited)
        assert len(store.calls) == before + 1
        if len(store.calls) == 3:
            answers(recorder, 1, start=2)  # joins the retried batch, behind the first two
    assert delays == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    assert RETRY_FIRST == 0.2 and RETRY_MAX == 5.0
    assert [h.raw for h in store.calls[-1][0]] == ["request 0", "request 1", "request 2"]
    assert got == [[], []] and recorder.failures == 8 and recorder.queued == 3
    store.commit()
    assert got == [[True], [True]] and recorder.written == 3 and recorder.failures == 0
    failures = [e for e in quiet_log if "log_failure" in e]
    assert len(failures) == 1  # once per outage...
    assert any("works again" in e["log_format"] for e in quiet_log)  # ...and its end
    # A new outage is logged again, and the backoff starts over.
    answers(recorder, 1, start=9)
    clock.advance(0)
    store.fail()
    clock.advance(RETRY_FIRST)
    assert len([e for e in quiet_log if "log_failure" in e]) == 2
    assert len(store.calls) == 11


def test_hit_past_its_deadline_is_deferred_but_still_written(
    quiet_log: list[dict[str, Any]],
) -> None:
    recorder, store, clock = make(commit_timeout=2.0)
    got = answers(recorder, 1)
    clock.advance(1.0)
    later = answers(recorder, 1, start=1)
    clock.advance(0.75)
    assert got == [[]]
    clock.advance(0.25)
    assert got == [[False]] and later == [[]]  # its own deadline, not the first one's
    clock.advance(1.0)
    assert later == [[False]]
    assert (recorder.deferred, recorder.refused, recorder.queued) == (2, 0, 2)
    store.commit()  # the write that hung all along completes
    assert got == [[False]] and later == [[False]]  # answered once only
    assert store.committed == [hit(0)]
    clock.advance(0)
    store.commit()
    assert store.committed == [hit(0), hit(1)] and recorder.written == 2


def test_full_queue_refuses_without_queueing() -> None:
    recorder, store, clock = make(limit=2)
    got = answers(recorder, 3)
    assert got[2] == [False]
    assert (recorder.queued, recorder.deferred, recorder.refused) == (2, 1, 1)
    clock.advance(0)
    store.commit()
    assert store.committed == [hit(0), hit(1)]
    assert answers(recorder, 1, start=3) == [[]]  # room again


def test_stop_writes_the_queue_then_refuses() -> None:
    recorder, store, clock = make(commit_timeout=5.0)
    got = answers(recorder, 2)
    stopped: list[None] = []
    recorder.stop().addCallback(stopped.append)
    assert answers(recorder, 1, start=7) == [[False]]
    clock.advance(0)
    assert stopped == []
    store.commit()
    assert got == [[True], [True]] and stopped == [None]
    assert store.committed == [hit(0), hit(1)]


def test_stop_skips_the_backoff_and_gives_up_after_the_timeout(
    quiet_log: list[dict[str, Any]],
) -> None:
    recorder, store, clock = make(commit_timeout=3.0)
    got = answers(recorder, 1)
    clock.advance(0)
    for _ in range(4):  # a long backoff is pending
        store.fail()
        clock.advance(RETRY_MAX)
    store.fail()
    calls = len(store.calls)
    late = answers(recorder, 1, start=1)
    stopped: list[None] = []
    recorder.stop().addCallback(stopped.append)
    clock.advance(0)
    assert len(store.calls) == calls + 1  # tried once more at once
    store.fail()
    clock.advance(3.0)
    assert stopped == [None]
    assert got == [[False]] and late == [[False]]  # every waiting request answered
    assert any("unwritten" in e["log_format"] for e in quiet_log)
    clock.advance(60)
    assert len(store.calls) == calls + 1  # no more writes after giving up


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["submit", "turn", "commit", "fail", "tick"]),
            st.integers(1, 4),
        ),
        max_size=60,
    )
)
def test_every_hit_is_answered_once_and_committed_in_order(
    steps: list[tuple[str, int]],
) -> None:
    recorder, store, clock = make(commit_timeout=1.0, batch=3, limit=6)
    saved = recorder_module.log
    recorder_module.log = Logger(observer=cast(ILogObserver, lambda event: None))
    try:
        results: list[list[bool]] = []
        submitted: list[TrapHit] = []
        for action, size in steps:
            if action == "submit":
                for _ in range(size):
                    n = len(results)
                    got: list[bool] = []
                    refused = recorder.queued >= 6
                    recorder.submit(hit(n)).addCallback(got.append)
                    results.append(got)
                    if refused:
                        assert got == [False]
                    else:
                        submitted.append(hit(n))
            elif action == "turn":
                clock.advance(0)
            elif action == "tick":
                clock.advance(0.3 * size)
            elif store.calls and not store.calls[-1][1].called:
                if action == "commit":
                    store.commit()
                else:
                    store.fail()
            assert all(len(got) <= 1 for got in results)
            assert recorder.queued <= 6
        # Recover: everything queued is written, in submission order, once.
        for _ in range(100):
            if store.calls and not store.calls[-1][1].called:
                store.commit()
            clock.advance(RETRY_MAX)
        assert store.committed == submitted
        assert all(len(got) == 1 for got in results)
        assert recorder.written == len(submitted) and recorder.queued == 0
        assert recorder.deferred == sum(got == [False] for got in results)
    finally:
        recorder_module.log = saved


# A real store, and a COMMIT whose outcome the writer never learns.

SETTINGS = parse_settings(
    {"zones": [{"name": "bl.example.org", "kind": "ip", "ns": ["ns1.example.org"]}]},
    source=Path("test.toml"),
)
MATCHER = TrapMatcher([parse_trap("@trap.example.org")])


def store_write(engine: Engine, lose_outcome: list[int]) -> Any:
    """Commit through ``record_hits``; for each pending entry of ``lose_outcome``, raise
    after the COMMIT, as when the connection drops before the server's reply."""

    def write(batch: list[TrapHit]) -> None:
        with engine.begin() as conn:
            record_hits(
                conn,
                batch,
                matcher=MATCHER,
                allow=Allowlist(),
                rules=Rules.from_settings(SETTINGS.listing),
                ip_zone=SETTINGS.zone("bl.example.org"),
                domain_zone=None,
                now=START,
            )
        if lose_outcome:
            lose_outcome.pop()
            raise ConnectionResetError("server closed the connection during COMMIT")

    return write


def test_retry_of_a_batch_whose_commit_outcome_was_lost_stores_nothing_twice(
    database_url: str, quiet_log: list[dict[str, Any]]
) -> None:
    engine = open_engine(database_url)
    try:
        lose = [1, 1]  # the first two COMMITs succeed but report failure
        recorder = HitRecorder(store_write(engine, lose), Clock(), commit_timeout=60.0)
        clock = cast(Clock, recorder.clock)
        recorder.start()
        results = []
        for n in range(5):
            got: list[bool] = []
            # Sub-second times in one second: the store's dedup key is the second.
            recorder.submit(hit(n, second=n * 0.1)).addCallback(got.append)
            results.append(got)
        clock.advance(0)  # commits 0..4, "fails"
        later = []
        for n in range(5, 8):
            got = []
            recorder.submit(hit(n, second=0.5 + n * 0.1)).addCallback(got.append)
            later.append(got)
        for _ in range(3):
            clock.advance(RETRY_MAX)
        assert results + later == [[True]] * 8
        assert lose == [] and recorder.failures == 0 and recorder.written == 8
        with engine.connect() as conn:
            stored = conn.execute(
                select(hits.c.rcpt_to, func.count()).group_by(hits.c.rcpt_to)
            ).all()
        assert sorted(stored) == sorted((f"r{n}@trap.example.org", 1) for n in range(8))
    finally:
        engine.dispose()


ZONES = [{"name": "bl.example.org", "kind": "ip", "ns": ["ns1.example.org"]}]


def test_commit_timeout_setting() -> None:
    def policy_feed(**policy: object) -> Any:
        data = {"zones": ZONES, "feeds": {"policy": policy}}
        return parse_settings(data, source=Path("rbl.toml")).policy_feed

    assert policy_feed().commit_timeout == 10.0
    assert policy_feed(listen="127.0.0.1:10031", commit_timeout="2s").commit_timeout == 2.0
    assert policy_feed(commit_timeout=0.5).commit_timeout == 0.5
    for bad, message in [
        (0.01, "commit_timeout 0.01s is outside 0.1..60 seconds"),
        ("2m", "commit_timeout 120s is outside 0.1..60 seconds"),
        ("soon", "commit_timeout"),
    ]:
        with pytest.raises(ConfigError, match=message):
            policy_feed(commit_timeout=bad)


class Refusal(Exception):
    """Stands for an error the store will give again however often it is asked."""


def test_a_hit_the_store_refuses_for_good_is_set_aside_and_the_rest_written() -> None:
    """One poison hit in a batch: the batch is retried one hit at a time, the poison one
    is logged and answered False, every other hit is committed and answered True, and
    hits queued later are batched again as usual."""
    recorder, store, clock = make(is_transient=lambda error: not isinstance(error, Refusal))
    results = answers(recorder, 4)
    clock.advance(0)
    assert [h.raw for h in store.calls[-1][0]] == [f"request {n}" for n in range(4)]
    store.calls[-1][1].errback(Refusal("value too long"))
    for n in range(4):  # now one at a time
        clock.advance(0)
        batch, d = store.calls[-1]
        assert [h.raw for h in batch] == [f"request {n}"]
        if n == 2:
            d.errback(Refusal("value too long"))
        else:
            store.commit()
    assert results == [[True], [True], [False], [True]]
    assert recorder.set_aside == 1 and recorder.written == 3 and recorder.queued == 0
    assert recorder.failures == 0  # not an outage
    later = answers(recorder, 3, start=10)
    clock.advance(0)
    assert len(store.calls[-1][0]) == 3  # batching again
    store.commit()
    assert later == [[True], [True], [True]]


def test_a_lone_hit_refused_for_good_is_set_aside_at_once() -> None:
    recorder, store, clock = make(is_transient=lambda error: not isinstance(error, Refusal))
    results = answers(recorder, 1)
    clock.advance(0)
    store.calls[-1][1].errback(Refusal("value too long"))
    assert results == [[False]] and recorder.set_aside == 1 and recorder.queued == 0
    calls = len(store.calls)
    clock.advance(RETRY_MAX * 2)
    assert len(store.calls) == calls  # never retried


def test_a_hit_set_aside_is_handed_to_the_quarantine_once(
    quiet_log: list[dict[str, Any]],
) -> None:
    kept: list[tuple[str, str]] = []

    def quarantine(poison: TrapHit, error: BaseException) -> defer.Deferred[None]:
        kept.append((poison.raw, str(error)))
        if len(kept) == 2:
            return defer.fail(RuntimeError("quarantine table missing"))
        return defer.succeed(None)

    recorder, store, clock = make(
        is_transient=lambda error: not isinstance(error, Refusal), quarantine=quarantine
    )
    for n in range(2):
        results = answers(recorder, 1, start=n)
        clock.advance(0)
        store.calls[-1][1].errback(Refusal(f"value too long {n}"))
        assert results == [[False]]
    assert kept == [("request 0", "value too long 0"), ("request 1", "value too long 1")]
    assert (recorder.set_aside, recorder.quarantined) == (2, 1)
    failed = [e for e in quiet_log if "could not be quarantined" in e.get("log_format", "")]
    assert len(failed) == 1 and failed[0]["raw"] == "request 1"  # then it is only in the log
