"""One text per domain name, however a log or an operator wrote it: the IDNA ASCII form. Pure.

MTAs log SMTPUTF8 recipients in UTF-8 (Postfix with ``smtputf8_enable``,
Exim's ``P=utf8esmtp``): ``trap@bücher.example``. ``rbl traps add`` stores a
domain the way rbl.model.keys.normalise_domain writes it (a test holds the two
equal): Python's ``idna`` codec
(IDNA 2003: nameprep, then punycode; ``xn--bcher-kva.example``), lowercased.
Trap matching (rbl.model.traps) and the public-text filter (rbl.policy.trapfilter) compare
domains in that same form, through this one function, so a trap added in
either form matches a hit written in either form and is redacted in either.

The stdlib codec rather than the ``idna`` package (IDNA 2008/UTS 46): the
stored form was made by the codec, and the two differ on some names (``faß``
is ``fass`` in IDNA 2003, ``xn--fa-hia`` in 2008); matching must map a hit's
domain exactly as the store mapped the trap. The conversion goes label by
label (dots: U+002E, U+3002, U+FF0E, U+FF61, as the codec splits them); a label
the codec refuses (empty, over 63 characters, prohibited code points) stays
as written, lowercased: it cannot be part of a stored trap domain.
Imports only the standard library.
"""

from __future__ import annotations

import re
from encodings import idna as _codec
from functools import lru_cache
from typing import Final

# The label separators of IDNA (RFC 3490 3.1), as the stdlib codec splits on them.
DOTS: Final = ".\u3002\uff0e\uff61"
_DOT: Final = re.compile(f"[{DOTS}]")


@lru_cache(maxsize=1 << 12)
def ascii_label(label: str) -> str:
    """One label's ASCII form (``bücher`` -> ``xn--bcher-kva``), or the label lowercased."""
    if label.isascii():
        return label.lower()
    try:
        return _codec.ToASCII(label).decode("ascii").lower()
    except UnicodeError:
        return label.lower()


def ascii_domain(name: str) -> str:
    """A domain's ASCII form, lowercased; labels the codec refuses stay as they are."""
    if name.isascii():
        return name.lower()
    return ".".join(ascii_label(label) for label in _DOT.split(name))


__all__ = ["DOTS", "ascii_domain", "ascii_label"]
