"""What the DNSBL consumer tests (tests/dnsserver/test_spamassassin.py, test_rspamd.py) ask
a real rbl about, and the mail they hand the consumers: the listings, and a message whose
last external relay is chosen."""

from __future__ import annotations

# What the consumers are asked about: key -> what rbl answers for it.
LISTED_TWO = "45.1.1.1"  # the default code, 127.0.0.2
LISTED_FOUR = "45.1.1.2"  # listed with 127.0.0.4
IN_NETWORK = "45.1.2.9"  # inside a listed /24
ALLOWLISTED = "45.1.2.7"  # allowlisted inside it: not listed
UNLISTED = "45.1.1.9"
LISTED_V6 = "2a00:1450:4001:82b::5"

LISTINGS = (
    (LISTED_TWO,),
    (LISTED_FOUR, "--code", "127.0.0.4"),
    ("45.1.2.0/24",),
    (LISTED_V6,),
)


def message(relay: str) -> bytes:
    """Mail as the receiving MX hands it on: the sender's relay in the last external hop."""
    return (
        f"Received: from mail.sender.example (mail.sender.example [{relay}])\n"
        "\tby mx.example.org (Postfix) with ESMTP id 4C2B81E0F2A\n"
        "\tfor <user@example.org>; Fri,  4 Dec 2026 21:00:00 +0000 (UTC)\n"
        "Received: from mx.example.org (mx.example.org [192.0.2.25])\n"
        "\tby mail.example.org (Postfix) with ESMTP id 51A2B3C4D5E\n"
        "\tfor <user@example.org>; Fri,  4 Dec 2026 21:00:01 +0000 (UTC)\n"
        "From: someone@sender.example\nTo: user@example.org\nSubject: hello\n"
        "Message-ID: <1@sender.example>\nDate: Fri, 4 Dec 2026 21:00:00 +0000\n\nhello\n"
    ).encode()
