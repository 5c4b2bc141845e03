"""A zone's served settings as one stable digest: what its serial must follow besides listings.

A SIGHUP that changes a TTL, the SOA, NS or a TXT template changes what the zone
serves; a secondary only transfers again when the serial moves. The digest
covers every zone setting that shapes answers or transfers (and the version of
the record generator, since a new rbl can render the same listings differently)
and leaves out what does not (``code_meanings`` are the web site's words,
``prefixes`` decide what trap hits list). The change log records it
(rbl.model.changes.OP_SETTINGS) so every node following the store bumps the
serial at the same row. Pure: the same settings give the same digest on every
node and Python version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Final

from rbl.config import ZoneSettings

# Bump when rbl.zonedata.records (or the wire renderers) change what a zone holds
# for the same listings: nodes running the new code record a new fingerprint.
RECORDS_VERSION: Final = 2  # 2: an excepted name holds an empty private-type record, not HINFO

_NOT_SERVED: Final = frozenset({"code_meanings", "prefixes"})


def fingerprint(settings: ZoneSettings) -> str:
    """The hex SHA-256 of the zone's served settings, canonically encoded."""
    served = {
        item.name: getattr(settings, item.name)
        for item in dataclasses.fields(settings)
        if item.name not in _NOT_SERVED
    }
    served["soa"] = dataclasses.asdict(settings.soa)
    served["kind"] = settings.kind.value
    served["records"] = RECORDS_VERSION
    text = json.dumps(served, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()
