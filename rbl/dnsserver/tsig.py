"""TSIG (RFC 8945) for zone transfers, through dnspython.

dnslib has no TSIG, so transfer requests are verified and transfer
responses signed with dnspython, imported only when keys are configured (a
DNS process that transfers nothing never loads it). A key is written
``name:algorithm:base64-secret``, the form NSD and Knot configs use.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from rbl.errors import ConfigError

ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")


def parse_key(spec: str, where: str = "tsig") -> tuple[str, str, bytes]:
    """``name:algorithm:secret`` -> (name, algorithm, secret bytes); ConfigError naming it."""
    name, _, rest = spec.partition(":")
    algorithm, _, secret = rest.partition(":")
    if not name or not algorithm or not secret:
        raise ConfigError(f"{where}: key {name or spec!r} is not 'name:algorithm:base64-secret'")
    if algorithm.lower() not in ALGORITHMS:
        raise ConfigError(
            f"{where}: key {name!r}: algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}"
        )
    try:
        raw = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: key {name!r}: the secret is not base64") from None
    if len(raw) < 16:
        raise ConfigError(f"{where}: key {name!r}: the secret is shorter than 16 bytes")
    return name.rstrip(".").lower() + ".", algorithm.lower(), raw


class TsigKeys:
    """The keys a transfer may be signed with; requests without a valid signature fail."""

    def __init__(self, specs: Sequence[str]) -> None:
        import dns.name
        import dns.tsig

        self.keyring: dict[Any, Any] = {}
        for spec in specs:
            name, algorithm, secret = parse_key(spec)
            self.keyring[dns.name.from_text(name)] = dns.tsig.Key(name, secret, algorithm)

    def verify(self, data: bytes) -> Any | None:
        """The parsed request if it carries a valid signature by one of our keys, else None."""
        import dns.message

        try:
            request = dns.message.from_wire(data, keyring=self.keyring)
        except Exception:  # unknown key, bad signature or time, malformed TSIG
            return None
        return request if request.had_tsig else None

    def sign(self, request: Any, messages: Iterable[bytes]) -> Iterator[bytes]:
        """Sign a transfer's messages as one TSIG stream (RFC 8945 section 5.3.1), lazily."""
        import dns.message

        context = None
        for raw in messages:
            # One RR per RRset: a one-message transfer holds the SOA twice (first and last).
            message = dns.message.from_wire(raw, one_rr_per_rrset=True)
            message.use_tsig(self.keyring, keyname=request.keyname, algorithm=request.keyalgorithm)
            message.request_mac = request.mac
            yield message.to_wire(multi=True, tsig_ctx=context)
            context = message.tsig_ctx
