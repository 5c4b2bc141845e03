"""What a value id means before it names a value: 0 is an exclusion.

An allowlisted address inside a listed network, or an allowlisted name under
a listed ``*.name``, is stored as value id 0: it stops the search and means
"not listed". Said here once for both tables (rbl.index.tables, rbl.index.domains).
"""

from __future__ import annotations

from typing import Final

EXCLUDED: Final = 0
