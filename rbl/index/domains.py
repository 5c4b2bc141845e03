"""The domain half of a zone's index: exact names and ``*.name`` subtrees.

Names are lowercase ASCII bytes relative to the zone. A reference count of
every name that has listings below it makes empty non-terminals answer
NOERROR instead of NXDOMAIN. Read by the DNS query path: dict lookups only.
"""

from __future__ import annotations

from rbl.index.ids import EXCLUDED


class DomainTable:
    """Exact names and ``*.name`` subtrees, as lowercase ASCII bytes relative to the zone."""

    def __init__(self) -> None:
        self.exact: dict[bytes, int] = {}
        self.subtree: dict[bytes, int] = {}
        self._below: dict[bytes, int] = {}

    def lookup(self, name: bytes) -> int | None:
        found = self.exact.get(name)
        if found is not None:
            return found
        if self.subtree:
            dot = name.find(b".")
            while dot >= 0:
                name = name[dot + 1 :]
                found = self.subtree.get(name)
                if found is not None:
                    return found
                dot = name.find(b".")
        return None

    def has_listing_below(self, name: bytes) -> bool:
        return self._below.get(name, 0) > 0

    def subtree_listing(self, name: bytes) -> bool:
        """Is ``name`` inside a listed ``*.ancestor``? Then its children are listed too."""
        dot = name.find(b".")
        while dot >= 0:
            name = name[dot + 1 :]
            found = self.subtree.get(name)
            if found is not None:
                return found != EXCLUDED
            dot = name.find(b".")
        return False

    def set(self, name: bytes, subdomains: bool, value: int) -> None:
        table = self.subtree if subdomains else self.exact
        old = table.get(name)
        table[name] = value
        was_listed = old is not None and old != EXCLUDED
        if value != EXCLUDED and not was_listed:
            self._count(name, subdomains, 1)
        elif value == EXCLUDED and was_listed:
            self._count(name, subdomains, -1)

    def delete(self, name: bytes, subdomains: bool) -> None:
        table = self.subtree if subdomains else self.exact
        old = table.pop(name, None)
        if old is not None and old != EXCLUDED:
            self._count(name, subdomains, -1)

    def _count(self, name: bytes, subdomains: bool, delta: int) -> None:
        parts = name.split(b".")
        start = 0 if subdomains else 1
        below = self._below
        for i in range(start, len(parts)):
            ancestor = b".".join(parts[i:])
            count = below.get(ancestor, 0) + delta
            if count:
                below[ancestor] = count
            else:
                below.pop(ancestor, None)

    def __len__(self) -> int:
        return len(self.exact) + len(self.subtree)
