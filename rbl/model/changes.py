"""The change log's operations: what a row of ``change_log`` tells a follower to do.

The store writes them (rbl.store), DNS processes apply them (rbl.server.follower)
and the change-log column is sized for them (``change_log.op``), so the words are
said once here, in the layer every other one may import. Pure: no imports.
"""

from __future__ import annotations

from typing import Final

OP_SET: Final = "set"  # the key answers with the row's codes and TXT from now on
OP_DELETE: Final = "delete"  # the key is no longer listed
OP_EXCLUDE: Final = "exclude"  # allowlisted: never answers as listed, even inside a listed network
OP_UNEXCLUDE: Final = "unexclude"  # the allowlist entry is gone
# The zone's served settings changed (TTL, SOA, NS, TXT...): the key is their new
# fingerprint (rbl.zonedata.fingerprint); no listing changes, the serial moves.
OP_SETTINGS: Final = "settings"

# The PostgreSQL advisory lock that orders change-log writers (rbl.store.changelog);
# here so the DNS side's one writer (rbl.store.settingslog) takes it without SQLAlchemy.
CHANGE_LOG_LOCK: Final = 0x72626C_01  # "rbl" + 1
