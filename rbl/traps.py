"""Trap definitions in memory: is this recipient a spamtrap? Pure.

A trap is one exact address (``trap@example.org``) or a whole domain (every
address ``@abandoned.example``). Recipients are compared lowercased, with a
``+tag`` detail stripped, so ``Trap+x@Example.org`` still hits ``trap@example.org``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rbl.errors import KeyFormatError
from rbl.keys import normalise_domain

ADDRESS = "address"
DOMAIN = "domain"


@dataclass(frozen=True, slots=True)
class TrapSpec:
    kind: str  # ADDRESS or DOMAIN
    value: str  # lowercased address, or domain

    @property
    def text(self) -> str:
        return self.value if self.kind == ADDRESS else f"@{self.value}"


def parse_trap(text: str) -> TrapSpec:
    """``trap@example.org`` is one address; ``@example.org`` (or ``example.org``) a whole domain."""
    raw = text.strip()
    local, at, domain = raw.rpartition("@")
    if not at:
        local, domain = "", raw
    try:
        domain = normalise_domain(domain.rstrip("."))
    except KeyFormatError as exc:
        raise KeyFormatError(f"trap {text!r}: {exc}") from exc
    if not local:
        return TrapSpec(DOMAIN, domain)
    if any(c.isspace() for c in local) or "@" in local or len(local) > 64:
        raise KeyFormatError(f"trap {text!r}: the local part is not a mailbox name")
    return TrapSpec(ADDRESS, f"{local.lower()}@{domain}")


def split_recipient(recipient: str) -> tuple[str, str]:
    """(local part without +detail, domain), lowercased."""
    local, _, domain = recipient.strip().lower().rpartition("@")
    return local.partition("+")[0], domain.rstrip(".")


class TrapMatcher:
    """Answers ``matcher(rcpt)`` in two set lookups; rebuilt when the trap list changes."""

    def __init__(self, traps: Iterable[TrapSpec] = ()) -> None:
        self.addresses: set[str] = set()
        self.domains: set[str] = set()
        for trap in traps:
            (self.addresses if trap.kind == ADDRESS else self.domains).add(trap.value)

    def __call__(self, recipient: str | None) -> bool:
        return self.match(recipient) is not None

    def match(self, recipient: str | None) -> TrapSpec | None:
        if not recipient or "@" not in recipient:
            return None
        local, domain = split_recipient(recipient)
        if domain in self.domains:
            return TrapSpec(DOMAIN, domain)
        address = f"{local}@{domain}"
        if address in self.addresses:
            return TrapSpec(ADDRESS, address)
        return None

    def __len__(self) -> int:
        return len(self.addresses) + len(self.domains)
