"""Policy answers for clients the trap IP zone lists (``[feeds.policy] reject_listed``).

A trap hit's answer waits until its listing is in the DNS index, so Postfix's
``reject_rbl_client`` rejects the next attempt, unless a resolver in between
cached an NXDOMAIN from before the hit: postscreen looks every client up at
connect, and then hands its next session straight to smtpd for the life of
that cached answer (docs/DEPLOYMENT.md, "The loop with Postfix"). The policy
service is consulted in smtpd whatever postscreen decided, and ``rbl serve``
holds the index itself, so it can answer a listed client with the reject
``reject_rbl_client`` would have given, read exactly as a DNS query for that
address would be (allowlist exclusions, held listings and test points alike),
and with no resolver to cache anything.

Imports only the standard library and the zone's resolution.
"""

from __future__ import annotations

import ipaddress

from rbl.dnsserver.zone import LISTED, Zone

# Postfix's default reply for reject_rbl_client (default_rbl_reply): "$rbl_code
# Service unavailable; $rbl_class [$rbl_what] blocked using $rbl_domain" and
# "; $rbl_reason" when the zone has a TXT.
REJECT_CODE = "554 5.7.1"
MAX_REASON = 200  # characters of the listing's TXT kept in the reply


def address_labels(client_ip: str) -> list[bytes] | None:
    """The DNSBL query labels below the zone apex for an address, most specific first."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv4Address):
        return [octet.encode("ascii") for octet in reversed(str(address).split("."))]
    return [nibble.encode("ascii") for nibble in reversed(f"{int(address):032x}")]


def _reason(text: str) -> str:
    """The TXT as one line of printable ASCII (Postfix writes it into an SMTP reply)."""
    kept = "".join(c if " " <= c <= "~" else "?" for c in text)
    return kept[:MAX_REASON]


class ListedReplies:
    """``client_ip -> reply | None``: the policy action for a client ``zone`` lists."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone

    def __call__(self, client_ip: str) -> bytes | None:
        labels = address_labels(client_ip)
        if labels is None:
            return None
        outcome, vid = self.zone.resolve(labels)
        if outcome is not LISTED:
            return None
        reason = _reason(self.zone.txt_text(vid, labels))
        text = (
            f"{REJECT_CODE} Service unavailable; Client host [{client_ip}] blocked using "
            f"{self.zone.name}" + (f"; {reason}" if reason else "")
        )
        return f"action={text}\n\n".encode("ascii")
