"""Run a PolicyServerFactory on the real reactor for the socket and live-Postfix tests.

Usage: ``python tests/data/postfix/policy_server.py TRAP...`` (with the repository
on PYTHONPATH; traps as ``rbl traps add`` takes them, matched by the service's own
TrapMatcher: case, ``+detail`` and IDN forms as in production). Listens on 127.0.0.1
with an ephemeral port, prints ``{"port": N}`` as its first line, then one JSON object
per submitted TrapHit, and a ``{"counters": ...}`` line when stopped by SIGTERM or SIGINT.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from twisted.internet import reactor
from twisted.internet.address import IPv4Address

from rbl.feeds.policyd import PolicyServerFactory
from rbl.model.traphit import TrapHit
from rbl.model.traps import TrapMatcher, parse_trap


def emit(record: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(record, default=str) + "\n")
    sys.stdout.flush()


def main(traps: list[str]) -> None:
    matcher = TrapMatcher(parse_trap(trap) for trap in traps)

    def submit(hit: TrapHit) -> None:
        emit({"hit": dataclasses.asdict(hit)})

    factory = PolicyServerFactory(matcher, submit, reactor)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    address = port.getHost()
    assert isinstance(address, IPv4Address)
    emit({"port": address.port})

    def counters() -> None:
        emit(
            {
                "counters": {
                    "requests": factory.requests,
                    "hits": factory.hits,
                    "malformed": factory.malformed,
                    "errors": factory.errors,
                }
            }
        )

    reactor.addSystemEventTrigger("before", "shutdown", counters)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
