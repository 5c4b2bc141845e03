"""One served zone: its settings, its index and the answer fragments built from them.

The fragments (SOA, NS, A records per listing value) are built when the zone
or its serial changes, not per packet; only TXT, which carries the queried
key, is formatted per answer.
"""

from __future__ import annotations

import ipaddress
import struct
from enum import IntEnum
from typing import Final

from rbl.config import ZoneSettings
from rbl.dnsserver.wire import (
    CLASS_IN,
    POINTER_TO_QNAME,
    RR_TAIL,
    TYPE_A,
    TYPE_NS,
    TYPE_SOA,
    TYPE_TXT,
    compress_name,
    encode_name,
    pointer,
    rr,
    txt_rdata,
)
from rbl.index.tables import EXCLUDED, ZoneIndex
from rbl.model.keys import ZoneKind
from rbl.zonedata.fingerprint import fingerprint
from rbl.zonedata.history import ZoneHistory

# Canonical decimal octets only: "01" or "256" make a malformed name, hence NXDOMAIN.
OCTETS: Final = {str(i).encode(): i for i in range(256)}
_HEX_DIGITS: Final = b"0123456789abcdef"


class Outcome(IntEnum):
    APEX = 0
    LISTED = 1
    NODATA = 2  # an empty non-terminal: something is listed below it
    NXDOMAIN = 3


# Plain names for the hot path: attribute access on an Enum class costs ~50 ns.
APEX: Final = Outcome.APEX
LISTED: Final = Outcome.LISTED
NODATA: Final = Outcome.NODATA
NXDOMAIN: Final = Outcome.NXDOMAIN


class Zone:
    """Answers for one DNSBL/RHSBL zone, read by both the fast and the dnslib path."""

    def __init__(self, settings: ZoneSettings, index: ZoneIndex, serial: int = 1) -> None:
        self.settings = settings
        self.index = index
        self.name = settings.name
        self.is_ip = settings.kind is ZoneKind.IP
        self.v4_lookup = index.v4.lookup  # bound once for the fast path
        self.wire_root = encode_name(settings.name)  # lowercase, with the root label
        self.labels = tuple(label.encode("ascii") for label in settings.name.split("."))
        self.nlabels = len(self.labels)
        # Answers sent per rcode (header rcode, or 16: BADVERS), bumped by both paths; a reload
        # reconfigures this object in place, so the counts keep growing.
        self.rcodes = [0] * 17  # rbl.dnsserver.responder.RCODE_NAMES
        self.serial = serial
        # The latest settings fingerprint in the change log (OP_SETTINGS, rbl.server.follower);
        # None: none recorded (a store no node could write to), where the zone serves as before.
        self.recorded: str | None = None
        self.history = ZoneHistory()  # what changed since which serial: IXFR (rbl.dnsserver.ixfr)
        self.history.reset(serial, "rbl started")
        self.reconfigure(settings)

    @property
    def agrees(self) -> bool:
        """Whether this node serves the settings the change log last recorded for the zone.

        A node not yet reloaded (or reloaded, its row not yet applied) serves other
        content under the same serial: it must not transfer the zone or NOTIFY
        for it, or a secondary would hold content that disagrees with its serial.
        """
        return self.recorded is None or self.recorded == self.fingerprint

    def reconfigure(self, settings: ZoneSettings) -> None:
        """Take new TTLs, SOA, NS and TXT for this zone (SIGHUP); index and serial stay.

        Runs on the reactor thread, between two packets: every fragment is
        rebuilt before the next answer reads it.
        """
        if settings.name != self.name or (settings.kind is ZoneKind.IP) != self.is_ip:
            raise ValueError(f"zone {self.name}: a reload cannot rename it or change its kind")
        if settings != self.settings:  # records made before would not match those made now
            self.history.restart("the zone's settings were reloaded")
        self.settings = settings
        self.fingerprint = fingerprint(settings)  # what the serial follows besides listings
        self.ttl = settings.ttl
        self.negative_ttl = min(settings.ttl, settings.soa.minimum)
        ns_rdatas = [encode_name(ns) for ns in settings.ns]
        self.ns_tails = [
            RR_TAIL.pack(TYPE_NS, CLASS_IN, settings.ttl, len(rdata)) + rdata for rdata in ns_rdatas
        ]
        self._a_answers: dict[int, tuple[int, bytes]] = {}
        self._negative: dict[int, bytes] = {}
        self.soa_rdata = b""
        self.soa_answer_tail = b""
        self.set_serial(self.serial)

    def use_index(self, index: ZoneIndex, serial: int) -> None:
        """Answer from ``index`` from now on (a fresh snapshot replacing a stale one)."""
        self.index = index
        self.v4_lookup = index.v4.lookup
        self._a_answers = {}  # value ids belong to the index
        self.set_serial(serial)
        self.history.reset(serial, "a snapshot was reloaded")

    def set_serial(self, serial: int) -> None:
        """Rebuild the SOA fragments; the serial follows the change log so nodes agree."""
        soa = self.settings.soa
        serial = serial % (1 << 32) or 1
        self.serial = serial
        rdata = (
            encode_name(soa.mname)
            + encode_name(soa.rname)
            + struct.pack(">IIIII", serial, soa.refresh, soa.retry, soa.expire, soa.minimum)
        )
        self.soa_rdata = rdata
        self.soa_answer_tail = RR_TAIL.pack(TYPE_SOA, CLASS_IN, self.ttl, len(rdata)) + rdata
        self._negative = {}

    def negative_authority(self, apex_offset: int) -> bytes:
        """The SOA for NXDOMAIN/NODATA right after a one-question header and question.

        Its owner points at the apex inside the QNAME and MNAME/RNAME are
        compressed against it, as rbldnsd and dnslib do: a negative answer is
        the most common reply, and 25 bytes less of it is worth a cached dict.
        Built once per apex offset (the QNAME length) and serial.
        """
        found = self._negative.get(apex_offset)
        if found is None:
            known: dict[tuple[bytes, ...], int] = {}
            position = apex_offset
            for k, label in enumerate(self.labels):
                known[self.labels[k:]] = position
                position += 1 + len(label)
            # owner pointer (2) + type, class, ttl, rdlength (10) after the question
            rdata_start = apex_offset + len(self.wire_root) + 4 + 12
            soa = self.settings.soa
            mname = compress_name(soa.mname, known, rdata_start)
            rname = compress_name(soa.rname, known, rdata_start + len(mname))
            rdata = mname + rname + self.soa_rdata[-20:]
            found = (
                pointer(apex_offset)
                + RR_TAIL.pack(TYPE_SOA, CLASS_IN, self.negative_ttl, len(rdata))
                + rdata
            )
            self._negative[apex_offset] = found
        return found

    def values_changed(self) -> None:
        """Forget cached A answers; value ids are stable, but be safe on reload."""
        self._a_answers.clear()

    # -- resolution, shared by the fast path and the dnslib path -------------------

    def resolve(self, rel: list[bytes]) -> tuple[Outcome, int]:
        """Classify the labels below the apex (lowercase, most specific first)."""
        count = len(rel)
        if count == 0:
            return APEX, 0
        index = self.index
        if self.is_ip:
            if count == 4:
                get = OCTETS.get
                d, c, b, a = get(rel[0]), get(rel[1]), get(rel[2]), get(rel[3])
                if a is not None and b is not None and c is not None and d is not None:
                    vid = index.v4.lookup(a << 24 | b << 16 | c << 8 | d)
                    if vid:
                        return LISTED, vid
                # Four one-character labels are also an IPv6 /16 ("1.0.0.2", "1.0.a.2"),
                # which may have names below it.
                if len(b"".join(rel)) == 4 and self._ip_non_terminal(rel):
                    return NODATA, 0
                return NXDOMAIN, 0
            if count == 32:
                address = _nibbles(rel)
                if address is None:
                    return NXDOMAIN, 0
                vid = index.v6.lookup(address)
                return (LISTED, vid) if vid else (NXDOMAIN, 0)
            if count < 32 and self._ip_non_terminal(rel):
                return NODATA, 0
            return NXDOMAIN, 0
        name = b".".join(rel)
        if name.count(b".") != count - 1:  # a label holding a dot ("a\\.b") is no listed name
            return NXDOMAIN, 0
        domains = index.domains
        vid = domains.lookup(name)
        if vid:
            return LISTED, vid
        if domains.has_listing_below(name) or (vid == EXCLUDED and domains.subtree_listing(name)):
            return NODATA, 0
        return NXDOMAIN, 0

    def _ip_non_terminal(self, rel: list[bytes]) -> bool:
        count = len(rel)
        if count < 4:
            octets = [OCTETS.get(label) for label in reversed(rel)]
            if None not in octets:
                network = 0
                for octet in octets:
                    network = network << 8 | octet  # type: ignore[operator]
                network <<= 8 * (4 - count)
                if self.index.v4.has_listing_within(network, 8 * count):
                    return True
        nibbles = b"".join(reversed(rel))
        if len(nibbles) == count and not nibbles.translate(None, _HEX_DIGITS):
            network = int(nibbles, 16) << (128 - 4 * count)
            return self.index.v6.has_listing_within(network, 4 * count)
        return False

    def key_text(self, rel: list[bytes]) -> str:
        """The queried key as people write it: 192.0.2.1, 2001:db8::1, example.com."""
        if self.is_ip:
            if len(rel) == 4:
                return ".".join(label.decode("ascii") for label in reversed(rel))
            address = _nibbles(rel)
            if address is not None:
                return str(ipaddress.IPv6Address(address))
        return b".".join(rel).decode("ascii", "replace")

    # -- answer fragments -------------------------------------------------------------

    def a_answer(self, vid: int) -> tuple[int, bytes]:
        """(record count, A records owned by the QNAME) for a listing value."""
        found = self._a_answers.get(vid)
        if found is None:
            value = self.index.values[vid]
            codes = value.codes if value is not None else ()
            found = (
                len(codes),
                b"".join(
                    rr(POINTER_TO_QNAME, TYPE_A, self.ttl, ipaddress.IPv4Address(code).packed)
                    for code in codes
                ),
            )
            self._a_answers[vid] = found
        return found

    def txt_text(self, vid: int, rel: list[bytes]) -> str:
        value = self.index.values[vid]
        template = value.txt if value is not None else None
        return self.settings.txt_for(self.key_text(rel), template)

    def txt_answer(self, vid: int, rel: list[bytes]) -> bytes:
        return rr(POINTER_TO_QNAME, TYPE_TXT, self.ttl, txt_rdata(self.txt_text(vid, rel)))


def _nibbles(rel: list[bytes]) -> int | None:
    nibbles = b"".join(reversed(rel))
    if len(nibbles) != 32 or nibbles.translate(None, _HEX_DIGITS):
        return None
    return int(nibbles, 16)
