"""A primary for the NSD integration test: rbl's responder, transfers and NOTIFY.

Run as ``python -m tests.dnsserver.transfer.primary READY CHANGES NOTIFY_PORT``. Serves the
zones of tests.support.dns_zones on one loopback port (UDP and TCP), writes that port
to READY, and polls CHANGES (JSON lines of change-log rows) the way ``rbl
serve`` follows the change log: rows go through ``IndexFollower.apply``, and
every zone whose serial moved is NOTIFYed to 127.0.0.1:NOTIFY_PORT. Until
``rbl serve`` takes a ``[transfer]`` section, this is the wiring under test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from twisted.internet import reactor, task

from rbl.dnsserver.notify import NotifySender
from rbl.dnsserver.notifyport import udp_opener
from rbl.dnsserver.protocol import Counters, DnsDatagramProtocol, DnsStreamFactory
from rbl.dnsserver.responder import Responder
from rbl.dnsserver.transfer import TransferPolicy, Transfers
from rbl.server.follower import IndexFollower
from rbl.store.reader import Change
from tests.support.dns_zones import make_responder


def main() -> None:
    ready, changes_path, notify_port = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    base: Responder = make_responder()
    zones = {zone.name: zone for zone in base.zones}
    for zone in zones.values():
        zone.set_serial(1)
    responder = Responder(list(zones.values()))
    counters = Counters()
    transfers = Transfers(responder.zones, TransferPolicy.from_strings(["127.0.0.0/8"]))
    tcp = reactor.listenTCP(  # type: ignore[attr-defined]
        0, DnsStreamFactory(responder, counters, transfers), interface="127.0.0.1"
    )
    port = tcp.getHost().port
    reactor.listenUDP(  # type: ignore[attr-defined]
        port, DnsDatagramProtocol(responder, counters), interface="127.0.0.1"
    )
    sender = NotifySender(
        [("127.0.0.1", notify_port)],
        reactor,  # type: ignore[arg-type]
        udp_opener(reactor),
    )
    sender.start()
    follower = IndexFollower(zones)
    seen = 0

    def poll() -> None:
        nonlocal seen
        if not changes_path.exists():
            return
        lines = changes_path.read_text().splitlines()
        rows = [Change(**json.loads(line)) for line in lines[seen:] if line.strip()]
        seen = len(lines)
        if rows:
            before = {name: zone.serial for name, zone in zones.items()}
            follower.apply(rows)
            for name, zone in zones.items():
                if zone.serial != before[name]:  # the follower hook of rbl serve
                    sender.zone_changed(zone)

    task.LoopingCall(poll).start(0.1)
    ready.write_text(json.dumps({"port": port}))
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
