"""Postfix policy delegation requests, as bytes and over a socket (the ``policy`` feed).

``request`` is one request in Postfix's framing with every attribute smtpd
sends (a RCPT to a trap unless overridden); ``policy_request`` sends the
minimal request a test names to a running feed and returns its answer.
"""

from __future__ import annotations

import socket

DUNNO = b"action=DUNNO\n\n"


def request(**attributes: str) -> bytes:
    """A policy request in Postfix's framing; RCPT to the trap unless overridden."""
    values = {
        "request": "smtpd_access_policy",
        "protocol_state": "RCPT",
        "protocol_name": "ESMTP",
        "client_address": "192.0.2.1",
        "client_name": "mail.example.net",
        "reverse_client_name": "mail.example.net",
        "helo_name": "mail.example.net",
        "sender": "bulk@example.net",
        "recipient": "trap@example.org",
        "recipient_count": "0",
        "queue_id": "",
        "instance": "1a2b.65f0c0de.3c4d.0",
        "size": "0",
        "sasl_username": "",
    }
    values.update(attributes)
    return b"".join(f"{k}={v}\n".encode() for k, v in values.items() if v is not None) + b"\n"


def policy_request(host: str, port: int, *, timeout: float = 5.0, **attributes: str) -> bytes:
    """A RCPT request of ``attributes`` to the feed on ``host``:``port``; its answer."""
    request = {"request": "smtpd_access_policy", "protocol_state": "RCPT", **attributes}
    payload = "".join(f"{k}={v}\n" for k, v in request.items()).encode() + b"\n"
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(payload)
        answer = b""
        while not answer.endswith(b"\n\n"):
            chunk = conn.recv(512)
            assert chunk, "policy server closed the connection"
            answer += chunk
    return answer
