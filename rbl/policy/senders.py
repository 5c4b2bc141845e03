"""Senders and their hosts: what a hit says about who sent it. Pure.

The listing policy (rbl.policy.listing) asks these questions of a hit: whose
address it came from once BATV is stripped (``normalise_sender``), whether it
has a sender-verification probe's shape (``probe_reason``) or a bounce's
(``backscatter_reason``), and which domain, if any, is the sending host's own
(``tied_domain``): the only domain a hit may list. Kept apart from the
decisions so each reads alone; imports nothing but the hit.
"""

from __future__ import annotations

import re
from typing import Final

from rbl.model.traphit import TrapHit

_BATV_TAG: Final = re.compile(r"^[0-9]{4}[0-9a-f]{6}$")
# Exim's callout_random_local_part default is "$primary_hostname-$tod_epoch-testing".
_RANDOM_PROBE: Final = re.compile(r"^[a-z0-9.-]+-[0-9]{9,11}-testing$")
# Local parts that verification probes send from, always at the prober's own domain
# (Postfix double-bounce@$myorigin, Exim use_postmaster: postmaster@$qualify_domain).
_PROBE_SENDERS: Final = frozenset({"double-bounce", "mailer-daemon", "postmaster"})
STAGE_RCPT: Final = "rcpt"
STAGE_DATA: Final = "data"


def normalise_sender(address: str | None) -> str | None:
    """Lowercase and strip BATV: ``prvs=TAG=user@d`` and ``prvs=user=TAG@d`` give ``user@d``."""
    if address is None:
        return None
    address = address.strip().lower()
    local, at, domain = address.rpartition("@")
    if at and local.startswith("prvs="):
        first, sep, second = local[5:].partition("=")
        if sep and _BATV_TAG.match(first):
            local = second
        elif sep and _BATV_TAG.match(second):
            local = first
        return f"{local}@{domain}"
    return address


def domain_of(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    domain = address.rpartition("@")[2].strip().rstrip(".").lower()
    return domain or None


def host_name(name: str | None) -> str:
    """A host name as names compare: lowercased, no trailing dot ("" for none)."""
    return (name or "").strip().rstrip(".").lower()


def _inside(name: str, domain: str) -> bool:
    """Is host ``name`` the domain or below it? (A bare TLD is nobody's own domain.)"""
    return "." in domain and (name == domain or name.endswith("." + domain))


def own_domain(hit: TrapHit, domain: str | None) -> bool:
    """Is ``domain`` the connecting host's own?

    Its forward-confirmed name lies inside it; only when the MTA verified no
    name does the HELO stand in. A verified name that is elsewhere is not
    overruled by a HELO the sender chose.
    """
    if not domain:
        return False
    name = host_name(hit.client_name)
    if name:
        return _inside(name, domain)
    helo = host_name(hit.helo)
    return bool(helo) and _inside(helo, domain)


def probe_reason(hit: TrapHit) -> str | None:
    """Why this hit has a sender-verification probe's shape, or None.

    A probe stops after RCPT (it never sends a message), and it comes either
    from the null sender or from the probing host's own double-bounce,
    postmaster or mailer-daemon address; Exim's callouts also try a random
    ``host-EPOCH-testing`` recipient. So a hit at the "data" stage is never a
    probe, and ``postmaster@`` of a domain that is not the client's own is an
    ordinary sender (phishing uses exactly those). When the feed does not say
    the stage (None: spamd, spamdb, JSON without "stage"), the hit is taken
    as one that may have stopped at RCPT: a listing of a real prober would be
    a false listing, while the evasion the name alone allowed stays closed
    because the domain must still be the client's own.
    """
    if hit.stage == STAGE_DATA:
        return None
    if hit.mail_from == "":
        return "null sender: a bounce or a sender-verification callback"
    sender = normalise_sender(hit.mail_from)
    if sender is not None:
        local, _, domain = sender.rpartition("@")
        if local in _PROBE_SENDERS and own_domain(hit, domain):
            return f"sender {local}@ of the client's own domain: an address-verification probe"
    if hit.rcpt_to:
        local = hit.rcpt_to.rpartition("@")[0]
        if _RANDOM_PROBE.match(local):
            return "random-recipient probe (host-EPOCH-testing)"
    return None


def backscatter_reason(hit: TrapHit) -> str | None:
    """Why this hit is a bounce to a trap, or None.

    A message from the null sender is a delivery report. One that reaches a
    trap answers mail that a spammer sent in the trap's name (a forged MAIL
    FROM), so the bouncing host is a bystander relaying its own users' bounces,
    not the spammer: the hit is kept as evidence, never counted or listed.
    Spam sent with a null sender escapes this rule; the operator still sees
    every such hit and can list by hand.
    """
    if hit.stage == STAGE_DATA and hit.mail_from == "":
        return "null sender with a message: a bounce to a trap (backscatter from a forged sender)"
    return None


def tied_domain(hit: TrapHit) -> str | None:
    """A sender or HELO domain that the sending host's verified name lies inside, or None.

    Only then is a domain the sender's own: MAIL FROM alone is forged too often.
    """
    name = host_name(hit.client_name)
    if not name:
        return None
    for candidate in (domain_of(normalise_sender(hit.mail_from)), host_name(hit.helo) or None):
        if candidate and _inside(name, candidate):
            return candidate
    return None
