"""The allowlist in memory: addresses and domains that are never listed automatically. Pure.

IP entries are networks (longest-prefix lookups through the same structure
the DNS index uses); a domain entry protects the domain and every name below it.
"""

from __future__ import annotations

from collections.abc import Iterable

from rbl.index.tables import PrefixTable
from rbl.model.keys import IpKey, ListingKey, address_key

# Mailbox and bulk-sending providers whose domains appear in forged or
# relayed mail all the time; listing one in an RHSBL would block half the
# internet. Operators add their own with `rbl allowlist add`.
PROVIDER_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "google.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "microsoft.com",
        "office365.com",
        "yahoo.com",
        "ymail.com",
        "aol.com",
        "icloud.com",
        "me.com",
        "apple.com",
        "amazonses.com",
        "amazon.com",
        "sendgrid.net",
        "mailchimp.com",
        "mcsv.net",
        "mandrillapp.com",
        "gmx.net",
        "gmx.de",
        "web.de",
        "mail.ru",
        "yandex.ru",
        "yandex.com",
        "qq.com",
        "163.com",
        "protonmail.com",
        "proton.me",
        "zoho.com",
        "fastmail.com",
        "t-online.de",
        "orange.fr",
        "comcast.net",
    }
)


class Allowlist:
    def __init__(self, keys: Iterable[ListingKey] = ()) -> None:
        self._v4 = PrefixTable(32)
        self._v6 = PrefixTable(128)
        self._domains: set[str] = set()
        for key in keys:
            if isinstance(key, IpKey):
                (self._v4 if key.family == 4 else self._v6).set(key.network, key.prefixlen, 1)
            else:
                self._domains.add(key.name)

    def covers_ip(self, address: str) -> bool:
        key = address_key(address)
        table = self._v4 if key.family == 4 else self._v6
        return table.lookup(key.network) is not None

    def covers_key(self, key: IpKey) -> bool:
        """Is all of network ``key`` allowlisted (an entry as wide or wider holds it)?"""
        table = self._v4 if key.family == 4 else self._v6
        return table.covering(key.network, key.prefixlen) is not None

    def covers_domain(self, name: str) -> bool:
        """True for an allowlisted domain, a name below one, or a big provider's domain."""
        name = name.rstrip(".").lower()
        labels = name.split(".")
        for i in range(len(labels) - 1):
            suffix = ".".join(labels[i:])
            if suffix in self._domains or suffix in PROVIDER_DOMAINS:
                return True
        return False
