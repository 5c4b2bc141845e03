"""The compiled UDP hot path (``_hotpath.c``): the plan it answers from, and when it runs.

The C engine drains a readable UDP socket with ``recvmmsg``, answers the
common query (an IPv4 name or the apex of a zone, A/TXT/ANY/SOA/NS, NXDOMAIN,
REFUSED outside every zone) and sends the batch with ``sendmmsg``. It reads
the zones' own ``PrefixTable`` (no copy) and formats no record itself: every
fragment comes from ``Zone`` (this module renders them into a "plan"), so its
answers are those of ``Responder.fast`` byte for byte. Whatever it declines
(IPv6 names, domain zones, EDNS options, anything odd) goes to
``Responder.fast`` and then the slow path in the same batch.

The extension is optional: without it, or with ``RBL_HOTPATH=0`` in the
environment, ``DnsUdpPort`` answers in Python (``status()`` says which).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final

from rbl.dnsserver.ratelimit import ResponseRateLimiter, slip_reply
from rbl.dnsserver.responder import Responder
from rbl.dnsserver.wire import CLASS_IN, RR_TAIL, TYPE_TXT, opt_rr
from rbl.dnsserver.zone import Zone
from rbl.index.tables import Value

if TYPE_CHECKING:  # protocol imports this module
    from rbl.dnsserver.protocol import Counters

_hotpath: Any
try:
    from rbl.dnsserver import _hotpath  # type: ignore[attr-defined, no-redef]

    _MISSING = ""
except ImportError as error:  # built without a compiler: pip's optional extension
    _hotpath = None
    _MISSING = f"the extension rbl.dnsserver._hotpath is not built ({error})"

ENV: Final = "RBL_HOTPATH"  # "0", "off", "false" or "no": answer in Python
# Negative answers prebuilt per QNAME length below the apex: an IPv4 name needs at most 16.
_NEGATIVE_SPAN: Final = 48
_SENTINEL: Final = "\ue000"  # a private-use character standing for the key in a TXT template
_PROBES: Final = ("0.0.0.0", "255.255.255.255", "192.0.2.1")
_MAX_TXT: Final = 3072  # bytes of TXT text the engine renders; a reply it can't hold is declined


def unavailable() -> str | None:
    """Why the compiled path does not run (forced off, or not built), or None if it does."""
    forced = os.environ.get(ENV, "").strip().lower()
    if forced in ("0", "off", "false", "no"):
        return f"{ENV}={os.environ[ENV]} forces the Python path"
    if _hotpath is None:
        return _MISSING
    return None


def status() -> str:
    """The one line ``rbl serve`` logs at start about the path that answers UDP."""
    why = unavailable()
    if why is None:
        return "answering with the compiled hot path"
    return f"compiled hot path not available: {why}; answering in Python"


def txt_parts(zone: Zone, value: Value | None) -> tuple[bytes, ...] | None:
    """The TXT text of ``value`` split where the key goes (UTF-8), or None: leave it to Python.

    Rendered with a sentinel key, then checked against real keys, so a template
    the split does not reproduce exactly (a format spec on {key}, say) is declined.
    """
    template = value.txt if value is not None else None
    try:
        parts = zone.settings.txt_for(_SENTINEL, template).split(_SENTINEL)
        for key in _PROBES:
            if zone.settings.txt_for(key, template) != key.join(parts):
                return None
        encoded = tuple(part.encode("utf-8") for part in parts)
    except (ValueError, KeyError, IndexError, AttributeError, UnicodeError):
        return None
    # The engine builds the text in a 4 KiB buffer: longer ones (with the longest key) go to Python.
    if sum(map(len, encoded)) + len(_PROBES[1]) * (len(encoded) - 1) > _MAX_TXT:
        return None
    return encoded


def zone_plan(zone: Zone) -> tuple[Any, ...]:
    """What the engine reads for one zone (the tuple layout ``engine_init`` parses)."""
    root = zone.wire_root
    negs = tuple(
        zone.negative_authority(12 + apex) for apex in range(min(_NEGATIVE_SPAN, 256 - len(root)))
    )
    values: list[tuple[int, bytes, tuple[bytes, ...] | None] | None] = [None]  # 0: excluded
    for vid in range(1, len(zone.index.values)):
        try:
            count, records = zone.a_answer(vid)
        except (ValueError, TypeError):  # a code the Python path fails on too: leave it there
            values.append(None)
            continue
        values.append((count, records, txt_parts(zone, zone.index.values[vid])))
    return (
        root,
        zone.nlabels,
        zone.is_ip,
        zone.index.v4 if zone.is_ip else None,
        zone.rcodes,
        negs,
        b"\xc0\x0c" + zone.soa_answer_tail,
        b"".join(b"\xc0\x0c" + tail for tail in zone.ns_tails),
        len(zone.ns_tails),
        tuple(values),
        RR_TAIL.pack(TYPE_TXT, CLASS_IN, zone.ttl, 0)[:8],
    )


def build_engine(responder: Responder) -> Any:
    """A C engine answering for ``responder``'s zones as they are now."""
    return _hotpath.Engine(
        tuple(zone_plan(zone) for zone in responder.zones),
        responder.outside_rcodes,
        responder.udp_payload,
        opt_rr(responder.udp_payload, False),
        opt_rr(responder.udp_payload, True),
    )


class HotPath:
    """The engine for one responder, rebuilt when what its plan was made from changes."""

    def __init__(self, responder: Responder) -> None:
        if _hotpath is None:
            raise RuntimeError(status())
        self.responder = responder
        self._stamp: object = None
        self._engine: Any = None

        def decline(data: bytes, host: str) -> bytes | None:
            """A query the engine left: ``Responder.fast``, then the slow path (as in Python)."""
            return responder.respond(data, True, host)

        self.decline = decline

    def engine(self) -> Any:
        """The current engine: a new serial, settings, index or value means a new plan.

        Compared by identity mostly (tuples compare items with ``is`` first), a
        microsecond per read event; new value ids are declined until then.
        """
        responder = self.responder
        stamp = (
            responder.zones,
            responder.udp_payload,
            [(z.settings, z.index, z.serial, len(z.index.values)) for z in responder.zones],
        )
        if stamp != self._stamp:
            self._engine = build_engine(responder)
            self._stamp = stamp
        return self._engine

    def answer(self, data: bytes) -> bytes | None:
        """The engine's answer to one query, or None where it declines (tests, fuzzing)."""
        return self.engine().answer(data)  # type: ignore[no-any-return]

    def read(
        self, fd: int, packets: int, limiter: ResponseRateLimiter | None, counters: Counters
    ) -> None:
        """Serve up to ``packets`` datagrams from ``fd`` (``UDP_READ_BATCH``), counting them."""
        check = None
        if limiter is not None and limiter.enabled:
            limiter.tick()  # one clock read per read event, as in the Python loop
            check = limiter.check
        received, errors, limited, slipped = self.engine().serve(
            fd, packets, check, slip_reply, self.decline
        )
        counters.udp_queries += received
        counters.errors += errors
        counters.rate_limited += limited
        counters.slipped += slipped
