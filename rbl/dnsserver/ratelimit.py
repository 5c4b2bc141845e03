"""Response rate limiting (RRL) for UDP, per client prefix.

A DNS server answering spoofed UDP queries reflects (and amplifies) traffic at
the spoofed source. The limiter caps the responses a client *prefix* (an IPv4
/24 and IPv6 /56 by default) receives per second; TCP is never limited, since
its source cannot be spoofed.

Algorithm: a fixed one-second window per prefix, like BIND's per-second
credit. The UDP loop calls ``tick()`` once per read batch (one clock read per
batch, not per packet); a new second empties the table. ``check(host)`` then
counts the packet against its prefix: within the limit it is answered,
beyond it dropped, except every ``slip``-th limited one, which gets an empty
TC=1 reply (``slip_reply``) so a real resolver behind the prefix retries over
TCP and is still served during an attack on its address.

Why per-prefix totals and not BIND's per-(prefix, name, type) buckets: every
DNSBL query name differs (it carries the address looked up), so an attacker
reflecting random names would never fill a per-name bucket. The cost is that
a big legitimate resolver farm can exceed the limit on its own: put such
networks into ``exempt``. Loopback is exempt by default (Linux drops
martian packets claiming a loopback source from outside).

Per packet the cost is one dict lookup on the source address string: each
address seen this second maps to its prefix's counter (a one-item list shared
by the prefix's addresses), so the prefix and the exempt networks are
worked out once per address per second, with integer arithmetic. Memory is
bounded: at most ``MAX_CLIENTS`` addresses are tracked per second. Once full
(a random-source flood), addresses of prefixes already counted still share
their prefix's counter, and every new prefix shares one overflow counter with
the same limit until the second ends: a flood cannot grow memory, and gets at
most ``responses_per_second`` answers more than the prefixes already counted.

With ``--workers N`` each process has its own limiter, allowing 1/N of the
limit: the kernel spreads a client's packets over the workers by the source
port, which resolvers (RFC 5452) and spoofed floods alike vary, so together
they allow about the limit.

Imports only the standard library and the configuration.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from typing import Final

from rbl.config import RateLimitSettings

ANSWER: Final = 0
DROP: Final = 1
SLIP: Final = 2

MAX_CLIENTS: Final = 50_000  # client addresses tracked per second (~13 MB at most)
# An exempt client's count starts here: with limits at most 10**9 it never gets there.
_EXEMPT: Final = -(1 << 60)
_MAPPED: Final = "::ffff:"
_V6: Final = 1 << 128  # IPv6 prefix keys are ints above every IPv4 key

Network = tuple[int, int, int]  # bits (32 or 128), network value, prefix length


class ResponseRateLimiter:
    """Counts UDP responses per client prefix in one-second windows."""

    def __init__(
        self,
        settings: RateLimitSettings,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
        processes: int = 1,
    ) -> None:
        self.clock = clock
        self.max_clients = max_clients
        # ``--workers N``: the kernel spreads a prefix's packets over N processes
        # (by source port), so each allows its share and together they allow the limit.
        self.processes = processes
        # Each client address this second -> its prefix's bucket, a one-item list
        # [count] shared by the addresses of the prefix (exempt ones share their own).
        # The per-packet check is then one dict lookup on the address string.
        self._clients: dict[str, list[int]] = {}
        self._buckets: dict[int, list[int]] = {}
        self._exempt_bucket = [_EXEMPT]
        self._overflow = [0]  # shared by new prefixes once the table is full
        self._second = -1
        self.settings = settings
        self.enabled = False
        self.check: Callable[[str], int] = _answer
        self.configure(settings)

    def configure(self, settings: RateLimitSettings) -> None:
        """Apply new settings (SIGHUP reload); counting restarts from zero."""
        self.settings = settings
        self.enabled = settings.responses_per_second > 0
        self._limit = -(-settings.responses_per_second // self.processes)  # rounded up
        self._slip = settings.slip
        self._shift4 = 32 - settings.ipv4_prefix
        self._shift6 = 128 - settings.ipv6_prefix
        self._exempt: tuple[Network, ...] = tuple(
            (net.max_prefixlen, int(net.network_address), net.prefixlen)
            for net in (ipaddress.ip_network(text, strict=False) for text in settings.exempt)
        )
        self._reset()
        self.check = self._build_check() if self.enabled else _answer

    def tick(self) -> None:
        """Read the clock (once per read batch); a new second starts a new window."""
        second = int(self.clock())
        if second != self._second:
            self._second = second
            self._reset()

    def _reset(self) -> None:
        self._clients.clear()
        self._buckets.clear()
        self._exempt_bucket[0] = _EXEMPT
        self._overflow[0] = 0

    @property
    def tracked(self) -> int:
        """Client addresses counted in the current second (for metrics)."""
        return len(self._clients)

    def _build_check(self) -> Callable[[str], int]:
        """The per-packet function, with what it reads bound as closure cells."""
        get = self._clients.get
        limit = self._limit
        over = self._over

        def check(host: str) -> int:
            """ANSWER, DROP or SLIP for one packet from ``host`` (an address string)."""
            bucket = get(host)
            if bucket is not None and bucket[0] < limit:
                bucket[0] += 1
                return ANSWER
            return over(host, bucket)

        return check

    def _over(self, host: str, bucket: list[int] | None) -> int:
        """A client new this second, or a prefix over its limit: answer, drop or slip."""
        limit = self._limit
        if bucket is None:
            bucket = self._bucket(host)
            if bucket[0] < limit:
                bucket[0] += 1
                return ANSWER
        bucket[0] += 1
        ordinal = bucket[0] - limit  # the ordinal-th limited packet of this prefix
        slip = self._slip
        return SLIP if slip and ordinal % slip == 0 else DROP

    def _bucket(self, host: str) -> list[int]:
        """Find or make the bucket of a client seen for the first time this second."""
        bits, value = _address(host)
        if self._is_exempt(bits, value):
            bucket = self._exempt_bucket
        else:
            key = value >> self._shift4 if bits == 32 else (value >> self._shift6) | _V6
            found = self._buckets.get(key)
            if found is not None:
                bucket = found
            elif len(self._clients) >= self.max_clients:
                return self._overflow  # full: new prefixes share one bucket this second
            else:
                bucket = self._buckets[key] = [0]
        if len(self._clients) < self.max_clients:
            self._clients[host] = bucket
        return bucket

    def _is_exempt(self, bits: int, value: int) -> bool:
        for family, network, length in self._exempt:
            if family == bits and value >> (bits - length) == network >> (bits - length):
                return True
        return False


def _answer(host: str) -> int:
    return ANSWER


def _address(host: str) -> tuple[int, int]:
    """(bits, value) of an address string; IPv4-mapped IPv6 counts as IPv4."""
    if ":" in host:
        if host.startswith(_MAPPED) and "." in host:  # IPv4 client on a dual-stack socket
            return 32, int.from_bytes(socket.inet_aton(host[len(_MAPPED) :]), "big")
        address = socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
        return 128, int.from_bytes(address, "big")
    return 32, int.from_bytes(socket.inet_aton(host), "big")


def slip_reply(query: bytes) -> bytes | None:
    """An empty truncated answer to ``query`` (the client retries over TCP), or None.

    Header: id, opcode and RD copied; QR, AA and TC set; one question copied,
    no other records (the OPT record is dropped too). None for responses and
    for packets without exactly one well-formed, uncompressed question.
    """
    size = len(query)
    if size < 17 or query[2] & 0x80 or query[4:6] != b"\x00\x01":
        return None
    i = 12
    while True:
        if i >= size:
            return None
        length = query[i]
        if length == 0:
            break
        if length > 63:  # a compression pointer or a reserved label type
            return None
        i += 1 + length
    end = i + 5
    if end > size:
        return None
    return (
        query[0:2]
        + bytes((0x86 | (query[2] & 0x79), 0))
        + b"\x00\x01\x00\x00\x00\x00\x00\x00"
        + query[12:end]
    )
