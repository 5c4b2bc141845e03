"""Hostile log text for the parser tests: what a sender controls, shaped by hypothesis.

Fragments of the fields around a HELO, a sender, a recipient or a subject in
Exim's and Postfix's lines (``H=``, ``[ip]``, ``; from=<``, quotes, Unicode
digits), strategies that join them, and what the MTAs make of such text
(Postfix's ``printable``, ``neuter`` and quote_822_local). Imitated addresses
are 46.46.46.x; the connecting ones are 45.x.x.x.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXIM_STAMP = "2026-12-02 17:59:30"
POSTFIX_STAMP = "Dec  2 17:58:57"
# RBL_HOSTILE_EXAMPLES=5000 for a longer run than the suite's.
HOSTILE = settings(
    max_examples=int(os.environ.get("RBL_HOSTILE_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Pieces of other fields, for hypothesis to put into a HELO, a local part, a subject.
FRAGMENTS = [
    " H=",
    "H=mail.imitated.example ",
    "(",
    ")",
    ") [",
    "[",
    "]",
    "46.46.46.1",
    "[46.46.46.2]",
    "]:25",
    " F=<",
    "F=<a@b.example>",
    "> rejected RCPT <",
    " rejected RCPT <innocent@example.org>: ",
    ": ",
    " U=root",
    ' T="',
    '"',
    "\\",
    '\\"',
    " for ",
    "innocent@example.org",
    " from <",
    " S=1",
    " P=esmtp",
    " id=",
    ";",
    "; from=<",
    "> to=<",
    " to=<innocent@example.org>",
    " proto=ESMTP",
    " helo=<",
    ">",
    "<",
    " ",
    "@",
    ".",
    "\u00b2",
    "\u0664\u0665",
    "\t",
]
sender_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=3)), max_size=12).map(
    "".join
)
public_ip = st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)).map(
    lambda parts: "45.{}.{}.{}".format(*parts)
)
any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=200)


def printable(text: str) -> str:
    """What both MTAs' logs make of control characters (Postfix: '?'; Exim's
    string_printing escapes them, which this test leaves out of what it sends)."""
    return "".join(ch if " " <= ch != "\x7f" else "?" for ch in text)


def postfix_external(value: str, domain: str) -> str:
    """quote_822_local: a dot-string stays, anything else is quoted, " and \\ escaped."""
    specials = set('()<>@,;:\\"[] ')
    dot_string = (
        value
        and not value.startswith(".")
        and not value.endswith(".")
        and ".." not in value
        and not any(ch in specials or ch < " " for ch in value)
    )
    if dot_string:
        return f"{value}@{domain}"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"@{domain}'


def neuter(helo: str) -> str:
    """smtpd.c: printable(), then NEUTER_CHARACTERS become '?'."""
    return "".join("?" if ch in ' <>()\\";@' else ch for ch in printable(helo))
