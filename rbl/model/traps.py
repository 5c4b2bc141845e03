"""Trap definitions in memory: is this recipient a spamtrap? Pure.

A trap is one exact address (``trap@example.org``) or a whole domain (every
address ``@abandoned.example``). Recipients are compared lowercased, with a
``+tag`` detail stripped, so ``Trap+x@Example.org`` still hits ``trap@example.org``,
and with the domain in its IDNA ASCII form (rbl.model.idn), the form traps are stored
in: ``trap@bücher.example``, as Postfix and Exim log an SMTPUTF8 recipient,
hits ``trap@xn--bcher-kva.example``, however the trap was added.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rbl.errors import KeyFormatError
from rbl.model.idn import ascii_domain
from rbl.model.keys import normalise_domain

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
    """``trap@example.org`` is one address; ``@example.org`` a whole domain.

    A bare ``example.org`` is refused rather than guessed: taken as a whole-domain trap it
    would turn every address there (the operator's colleagues too) into a trap. A domain
    trap at a public suffix (``@com``, ``@co.uk``) is refused: it would trap the world.
    """
    raw = text.strip()
    local, at, domain = raw.rpartition("@")
    if not at:
        shown = raw.rstrip(".") or "example.org"
        raise KeyFormatError(
            f"trap {text!r} has no '@': write @{shown} for a whole-domain trap (every "
            f"address there), or user@{shown} for one address"
        )
    try:
        domain = normalise_domain(domain.rstrip("."))
    except KeyFormatError as exc:
        raise KeyFormatError(f"trap {text!r}: {exc}") from exc
    if not local:
        from rbl.model.suffixes import is_public_suffix

        if is_public_suffix(domain):
            raise KeyFormatError(
                f"trap {text!r}: {domain} is a public suffix; a trap for every address "
                f"under it would trap strangers' mail (give a domain of your own)"
            )
        return TrapSpec(DOMAIN, domain)
    if any(c.isspace() for c in local) or "@" in local or len(local) > 64:
        raise KeyFormatError(f"trap {text!r}: the local part is not a mailbox name")
    return TrapSpec(ADDRESS, f"{local.lower()}@{domain}")


def split_recipient(recipient: str) -> tuple[str, str]:
    """(local part without +detail, domain in its ASCII form), lowercased."""
    local, _, domain = recipient.strip().lower().rpartition("@")
    return local.partition("+")[0], ascii_domain(domain.rstrip(".")).rstrip(".")


class TrapMatcher:
    """Answers ``matcher(rcpt)`` in two set lookups; rebuilt when the trap list changes."""

    def __init__(self, traps: Iterable[TrapSpec] = ()) -> None:
        self.addresses: set[str] = set()
        self.domains: set[str] = set()
        for trap in traps:  # stored values are ASCII already; a hand-made spec may not be
            if trap.kind == ADDRESS:
                local, _, domain = trap.value.rpartition("@")
                self.addresses.add(f"{local}@{ascii_domain(domain).rstrip('.')}")
            else:
                self.domains.add(ascii_domain(trap.value).rstrip("."))

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
