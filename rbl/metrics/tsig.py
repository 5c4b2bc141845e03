"""TSIG outcomes as metric families: requests verified, and failures by RFC 8945 error.

Every DNS process verifies the signed requests it receives (SOA queries,
transfers), so the counts travel in each process snapshot (``"tsig"``, from
rbl.dnsserver.tsig.TsigKeys) under its ``worker`` label. Pure: data in,
families out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rbl.metrics.exposition import Family


def tsig_snapshot(keys: Any) -> dict[str, Any]:
    """What ``keys`` (a TsigKeys, or None) counted, JSON-able."""
    if keys is None:
        return {"verified": 0, "errors": {}}
    return {"verified": keys.verified, "errors": dict(keys.errors)}


def tsig_families(snapshots: Mapping[str, Mapping[str, Any]]) -> list[Family]:
    verified = Family(
        "rbl_tsig_verified_total",
        "counter",
        "Signed requests (SOA queries, transfers...) whose TSIG verified; each answer is signed.",
    )
    errors = Family(
        "rbl_tsig_errors_total",
        "counter",
        "Signed requests refused, by error: BADKEY (unknown key, or one the client may not "
        "use), BADSIG, BADTIME, BADTRUNC (answered NOTAUTH) or FORMERR (a malformed TSIG).",
    )
    for worker, snap in snapshots.items():
        stats = snap.get("tsig")
        if not stats:
            continue
        verified.add(stats["verified"], worker=worker)
        for error, count in sorted(stats["errors"].items()):
            errors.add(count, worker=worker, error=error)
    return [verified, errors]
