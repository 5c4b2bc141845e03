"""Public suffixes (``com``, ``co.uk``, ``github.io``) are never listings or allowlist entries.

Nobody owns a public suffix: ``*.co.uk`` lists (or, allowlisted, exempts) every domain
registered under it, and ``co.uk`` itself is no one's sender domain. The list is the
Public Suffix List as bundled by the ``publicsuffixlist`` package (no network at run
time; upgrading the package updates it). Both of its sections count: the ICANN one
(``com``, ``co.uk``) and the private one (``blogspot.com``, ``github.io``), whose
names are handed out to strangers just the same. A single label is a top-level
domain whether or not the list knows it (``*.example``, ``*.internal``).
Imports rbl.model.keys and publicsuffixlist; no store.
"""

from __future__ import annotations

from functools import cache, lru_cache

from publicsuffixlist import PublicSuffixList

from rbl.errors import KeyFormatError
from rbl.model.keys import DomainKey, ListingKey


@cache
def _list() -> PublicSuffixList:
    return PublicSuffixList()  # parses the bundled list once (about 10,000 rules)


@lru_cache(maxsize=4096)
def is_public_suffix(name: str) -> bool:
    """Whether ``name`` (lowercase A-labels, no trailing dot) is a public suffix."""
    return "." not in name or bool(_list().is_public(name))


def public_suffix_problem(key: ListingKey, use: str = "listing") -> str | None:
    """Why ``key`` may not be a ``use`` ("listing" or "allowlist entry"), or None."""
    if not isinstance(key, DomainKey) or not is_public_suffix(key.name):
        return None
    verb = "listing it would list" if use == "listing" else "allowlisting it would exempt"
    if key.subdomains:
        return (
            f"{key.text!r} is a public suffix wildcard: {verb} every domain registered "
            f"under {key.name}; give a registered domain (e.g. *.example.{key.name})"
        )
    return (
        f"{key.text!r} is a public suffix: nobody owns it, and a {use} of it is refused; "
        f"give a registered domain (e.g. example.{key.name})"
    )


def check_not_public_suffix(key: ListingKey, use: str = "listing") -> None:
    """Raise KeyFormatError naming ``key`` if it is a public suffix or ``*.`` of one."""
    problem = public_suffix_problem(key, use)
    if problem is not None:
        raise KeyFormatError(problem)
