"""TSIG (RFC 8945) for zone transfers, through dnspython.

dnslib has no TSIG, so transfer requests are verified and transfer
responses signed with dnspython, imported only when keys are configured (a
DNS process that transfers nothing never loads it). Keys are parsed by
rbl.config.tsigkeys (``name:algorithm:base64-secret``), which the configuration checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from rbl.config.tsigkeys import parse_key


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
