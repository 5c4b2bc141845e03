"""TSIG (RFC 8945): which keys rbl knows, who may use which, and what a signature is worth.

Every message a keyed secondary signs is verified here, whatever it asks: a
zone transfer (rbl.dnsserver.transfer), an SOA query over UDP or TCP, an IXFR
over UDP (rbl.dnsserver.signedquery, the slow path for signed queries), and
the answer to a signed NOTIFY (rbl.dnsserver.notify). ``check`` follows the
order of RFC 8945 section 5.2 and answers each failure as the RFC asks
(section 5.3.2): an unknown key, or one this client may not use, NOTAUTH with
BADKEY, unsigned; a MAC that does not verify, NOTAUTH with BADSIG, unsigned; a
signature outside its fudge, NOTAUTH with BADTIME, signed, the server's time
in Other Data; a truncated MAC, NOTAUTH with BADTRUNC, signed (rbl's policy
is the full MAC); a misplaced or malformed TSIG record, FORMERR.

Keys come from ``[transfer] tsig`` (``name:algorithm:base64-secret``, parsed
by rbl.config.tsigkeys); ``[[transfer.secondaries]]`` binds a key to a
network: from there only that key is accepted, and from elsewhere a bound key
is not (``usable``). Failures are counted by error, and logged once per
client, key and error until that client signs correctly again, never per
packet. The bytes are rbl.dnsserver.tsigwire's; this module imports no DNS
library and nothing from rbl.store.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from twisted.logger import Logger

from rbl.config import TransferSettings
from rbl.config.secondaries import key_bindings, notify_keys
from rbl.config.tsigkeys import parse_key
from rbl.dnsserver import tsigwire
from rbl.dnsserver.clients import client_address
from rbl.dnsserver.tsigwire import (
    BADKEY,
    BADSIG,
    BADTIME,
    BADTRUNC,
    DEFAULT_FUDGE,
    ERROR_NAMES,
    HASHES,
    RCODE_FORMERR,
    RCODE_NOTAUTH,
    Found,
    name_wire,
)

log = Logger(namespace="rbl.tsig")

FORMERR: Final = "FORMERR"
MAX_LOGGED: Final = 1024  # (client, key, error) streaks remembered; past it, counted only

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Key:
    """One TSIG key: its name and algorithm in canonical wire form, and its secret."""

    name: str  # "name." as configured
    wire: bytes
    algorithm: bytes
    secret: bytes
    hash: tsigwire.Hash
    size: int  # octets of a full MAC

    @classmethod
    def from_spec(cls, spec: str) -> Key:
        name, algorithm, secret = parse_key(spec)
        hash_ = HASHES[algorithm]
        return cls(name, name_wire(name), name_wire(algorithm), secret, hash_, hash_().digest_size)

    def mac(self, parts: Iterable[bytes]) -> bytes:
        return tsigwire.digest(self.secret, self.hash, parts)

    def sign(
        self,
        message: bytes,
        now: float,
        *,
        request_mac: bytes = b"",
        time_signed: int | None = None,
        fudge: int = DEFAULT_FUDGE,
        error: int = 0,
        other: bytes = b"",
    ) -> tuple[bytes, bytes]:
        """``message`` signed (a TSIG record appended), and the MAC (RFC 8945 4.3)."""
        signed_at = int(now) if time_signed is None else time_signed
        original_id = int.from_bytes(message[0:2], "big")
        variables = tsigwire.variables(self.wire, self.algorithm, signed_at, fudge, error, other)
        mac = self.mac((tsigwire.prior(request_mac), message, variables))
        tsig = tsigwire.record(
            self.wire, self.algorithm, signed_at, fudge, mac, original_id, error, other
        )
        return tsigwire.append(message, tsig), mac

    def verifies(self, data: bytes, found: Found, request_mac: bytes = b"") -> bool:
        """Whether ``found``'s MAC (full or truncated) is this key's over ``data``."""
        variables = tsigwire.variables(
            found.key, found.algorithm, found.time_signed, found.fudge, found.error, found.other
        )
        mac = self.mac((tsigwire.prior(request_mac), tsigwire.unsigned(data, found), variables))
        return bool(found.mac) and hmac.compare_digest(mac[: len(found.mac)], found.mac)

    def check_answer(self, data: bytes, request_mac: bytes, now: float) -> str | None:
        """Why ``data`` is not an answer signed by this key to our request; None if it is."""
        try:
            found = tsigwire.find(data)
        except ValueError as exc:
            return f"with a malformed TSIG record ({exc})"
        if found is None:
            return "not signed"
        if found.error:
            return f"with TSIG error {ERROR_NAMES.get(found.error, found.error)}"
        if found.key != self.wire or found.algorithm != self.algorithm:
            return "signed with another key"
        if len(found.mac) != self.size or not self.verifies(data, found, request_mac):
            return "with a MAC that does not verify"
        if abs(now - found.time_signed) > found.fudge:
            return "signed at a time outside its fudge"
        return None


@dataclass(frozen=True, slots=True)
class Verified:
    """A request signed correctly: the key, and its MAC (which the answer's digest opens with)."""

    key: Key
    mac: bytes
    start: int  # where its TSIG record starts
    opt_payload: int


@dataclass(frozen=True, slots=True)
class Binding:
    """``[[transfer.secondaries]]``: clients in ``network`` sign with ``key`` (None: need not)."""

    network: Network
    key: bytes | None


class TsigKeys:
    """The keys rbl knows and who may use them; verifies requests and signs answers."""

    def __init__(
        self,
        specs: Sequence[str] = (),
        bindings: Iterable[tuple[str, str | None]] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock  # wall-clock seconds: TSIG times are absolute
        self.keys = {key.wire: key for key in map(Key.from_spec, specs)}
        self.bindings = tuple(
            Binding(
                ipaddress.ip_network(network, strict=False),
                None if name is None else name_wire(name),
            )
            for network, name in bindings
        )
        self.bound = frozenset(b.key for b in self.bindings if b.key is not None)
        self.verified = 0
        self.errors: dict[str, int] = {}  # error name -> requests answered with it
        self._logged: dict[tuple[str, bytes], set[str]] = {}  # (client, key) -> errors logged

    @classmethod
    def from_settings(cls, transfer: TransferSettings) -> TsigKeys:
        """``[transfer] tsig`` and the keys ``[[transfer.secondaries]]`` binds."""
        return cls(transfer.tsig, key_bindings(transfer))

    def notify_keys(self, transfer: TransferSettings) -> dict[tuple[str, int], Key]:
        """The key each NOTIFY target is signed with (entries that name one)."""
        return {target: self.key(name) for target, name in notify_keys(transfer).items()}

    def key(self, name: str) -> Key:
        return self.keys[name_wire(name)]

    def _binding(self, host: str) -> Binding | None:
        """The most specific ``[[transfer.secondaries]]`` entry holding ``host``."""
        if not self.bindings:
            return None
        address = client_address(host)
        if address is None:
            return None
        best = None
        for binding in self.bindings:
            if address in binding.network and (
                best is None or binding.network.prefixlen > best.network.prefixlen
            ):
                best = binding
        return best

    def usable(self, key: bytes, host: str) -> bool:
        """Whether ``host`` may sign with ``key``: its entry's key, or a key no entry binds."""
        binding = self._binding(host)
        if binding is not None and binding.key is not None:
            return key == binding.key
        return key not in self.bound

    def required_for(self, host: str) -> bool:
        """Whether a transfer to ``host`` must be signed: its entry names a key, or (no
        entry holds it) any key is configured, as a flat ``[transfer] tsig`` always meant."""
        binding = self._binding(host)
        if binding is not None:
            return binding.key is not None
        return bool(self.keys)

    def check(self, data: bytes, host: str) -> Verified | bytes | None:
        """A signed request verified, or the error response to send; None: not signed."""
        try:
            found = tsigwire.find(data)
        except ValueError as exc:
            self._failed(host, b"", FORMERR, str(exc))
            return formerr(data)
        if found is None:
            return None
        key = self.keys.get(found.key)
        if key is None or key.algorithm != found.algorithm:
            self._failed(host, found.key, "BADKEY", "unknown key or algorithm")
            return self._error(data, found, None, BADKEY)
        if not self.usable(key.wire, host):
            self._failed(host, found.key, "BADKEY", "a key this client may not use")
            return self._error(data, found, None, BADKEY)
        size = len(found.mac)
        if size > key.size or size < max(10, key.size // 2):  # RFC 8945 5.2.2.1
            self._failed(host, found.key, FORMERR, f"a MAC of {size} octets")
            return formerr(data)
        if not key.verifies(data, found):
            self._failed(host, found.key, "BADSIG", "the MAC does not verify")
            return self._error(data, found, None, BADSIG)
        now = self.clock()
        if abs(now - found.time_signed) > found.fudge:
            skew = now - found.time_signed
            self._failed(host, found.key, "BADTIME", f"signed {skew:+.0f}s from our clock")
            return self._error(data, found, key, BADTIME)
        if size < key.size:
            self._failed(host, found.key, "BADTRUNC", f"a MAC truncated to {size} octets")
            return self._error(data, found, key, BADTRUNC)
        self.verified += 1
        if self._logged:
            self._logged.pop((host, found.key), None)  # the streak is over
        return Verified(key, found.mac, found.start, found.opt_payload)

    def sign_answer(self, request: Verified, reply: bytes) -> bytes:
        """One answer to a verified request, signed (RFC 8945 4.3.1)."""
        return request.key.sign(reply, self.clock(), request_mac=request.mac)[0]

    def sign(self, request: Verified, messages: Iterable[bytes]) -> Iterator[bytes]:
        """A transfer's messages signed as one stream (RFC 8945 4.3.2, 5.3.1), lazily.

        The first digest opens with the request's MAC, each later one with the
        MAC before it, and holds only the timers of the TSIG variables.
        """
        key = request.key
        mac = request.mac
        first = True
        for raw in messages:
            now = int(self.clock())
            if first:
                signed, mac = key.sign(raw, now, request_mac=mac)
                first = False
            else:
                mac = key.mac((tsigwire.prior(mac), raw, tsigwire.timers(now, DEFAULT_FUDGE)))
                original_id = int.from_bytes(raw[0:2], "big")
                tsig = tsigwire.record(
                    key.wire, key.algorithm, now, DEFAULT_FUDGE, mac, original_id
                )
                signed = tsigwire.append(raw, tsig)
            yield signed

    def _error(self, data: bytes, found: Found, key: Key | None, error: int) -> bytes:
        """NOTAUTH with the TSIG error: signed by ``key`` (BADTIME, BADTRUNC), else unsigned."""
        head = data[0:2] + bytes(((data[2] & 0x79) | 0x80, RCODE_NOTAUTH))
        questions = 1 if found.question_end > 12 else 0
        message = head + questions.to_bytes(2, "big") + b"\x00" * 6 + data[12 : found.question_end]
        now = self.clock()
        if key is None:
            tsig = tsigwire.record(
                found.key, found.algorithm, int(now), found.fudge, b"", found.original_id, error
            )
            return tsigwire.append(message, tsig)
        other = int(now).to_bytes(6, "big") if error == BADTIME else b""
        return key.sign(
            message,
            now,
            request_mac=found.mac,
            time_signed=found.time_signed,
            fudge=found.fudge,
            error=error,
            other=other,
        )[0]

    def _failed(self, host: str, key: bytes, error: str, why: str) -> None:
        self.errors[error] = self.errors.get(error, 0) + 1
        logged = self._logged.get((host, key))
        if logged is not None and error in logged:
            return
        if logged is None:
            if len(self._logged) >= MAX_LOGGED:
                return  # a flood of forgeries from many addresses: counted, not logged
            logged = self._logged[host, key] = set()
        logged.add(error)
        name = _name_text(key) or "?"
        log.warn(
            "TSIG {error} from {client} with key {key}: {why}; answered {rcode} (logged once "
            "until this client signs correctly)",
            error=error,
            client=host or "?",
            key=name,
            why=why,
            rcode="FORMERR" if error == FORMERR else f"NOTAUTH/{error}",
        )


NO_KEYS: Final = TsigKeys()  # where none are configured: a signed request gets BADKEY


def formerr(data: bytes) -> bytes:
    """FORMERR echoing the id and opcode, no sections, no TSIG (RFC 8945 section 5.1)."""
    return data[0:2] + bytes(((data[2] & 0x79) | 0x80, RCODE_FORMERR)) + b"\x00" * 8


def _name_text(wire: bytes) -> str:
    labels = []
    i = 0
    while i < len(wire) and wire[i]:
        labels.append(wire[i + 1 : i + 1 + wire[i]].decode("ascii", "replace"))
        i += 1 + wire[i]
    return ".".join(labels)


__all__ = ["BADKEY", "BADSIG", "BADTIME", "BADTRUNC", "NO_KEYS", "Key", "TsigKeys", "Verified"]
