"""The address a query came from, as the ACLs compare it.

Twisted gives the peer as text: an IPv6 one may carry a zone index
(``fe80::1%eth0``), and an IPv4 client of a dual-stack socket arrives mapped
(``::ffff:192.0.2.1``). The transfer ACL and the TSIG key bindings both
match networks against this one form.
"""

from __future__ import annotations

import ipaddress

ClientAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_address(host: str) -> ClientAddress | None:
    """``host`` without its zone index, an IPv4-mapped address unmapped; None if no address."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
