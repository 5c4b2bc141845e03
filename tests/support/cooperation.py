"""Zone transfers a step at a time: a cooperator the test turns by hand, and TCP framing.

``DnsStreamFactory.cooperate`` takes ``Steps().cooperator.cooperate``; ``run``
then runs every scheduled step (``one_at_a_time``: one message a step), so a
test can pause, resume or drop the connection between two messages.
``split_messages`` undoes the two-byte length framing of what was written.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task


class Steps:
    """A cooperator the test turns by hand: zone transfers go out a step at a time."""

    def __init__(self, one_at_a_time: bool = False) -> None:
        self.pending: list[Any] = []
        if one_at_a_time:  # each tick runs one step: one message
            self.cooperator = task.Cooperator(
                scheduler=self._schedule, terminationPredicateFactory=lambda: lambda: True
            )
        else:
            self.cooperator = task.Cooperator(scheduler=self._schedule)

    def _schedule(self, tick: Any) -> Any:
        self.pending.append(tick)
        return self

    def cancel(self) -> None:  # the "delayed call" the cooperator may cancel
        self.pending.clear()

    def run(self) -> int:
        """Run every scheduled tick; the number of ticks."""
        ticks = 0
        while self.pending:
            self.pending.pop(0)()
            ticks += 1
        return ticks


def split_messages(out: bytes) -> list[bytes]:
    messages = []
    while out:
        size = int.from_bytes(out[:2], "big")
        messages.append(out[2 : 2 + size])
        out = out[2 + size :]
    return messages
