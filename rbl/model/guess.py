"""Which kind of zone a typed key belongs to: an IP zone or a domain zone.

``rbl list add KEY`` without ``--zone`` and the site's lookup box both take
text that may be either; they must agree. The rule follows rbl.model.keys:
text shaped like an address (a ``:`` before any ``/``, or digits and dots
with at least one dot) is an IP key, and everything else a domain name. So
``1234`` is a domain (a single all-digit label, which ``parse_domain_key``
takes and ``ipaddress`` never reads as an address), while ``999.1.2.3`` is a
bad IP address rather than a domain, so its error says what was wrong with
the address. Pure: rbl.model.keys and the standard library only.
"""

from __future__ import annotations

from rbl.model.keys import ZoneKind


def guess_kind(text: str) -> ZoneKind:
    """The kind of zone ``text`` (a key as typed, already stripped) is meant for."""
    head = text.split("/", 1)[0]
    if ":" in head or ("." in head and head.replace(".", "").isdigit()):
        return ZoneKind.IP
    return ZoneKind.DOMAIN
