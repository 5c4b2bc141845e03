"""A tiny milter (Sendmail milter protocol v6) for the live Postfix tests.

It answers "continue" to every step and, at end of message, rejects with
``554 5.7.1 Spam message rejected`` the messages whose Subject holds
``milter-reject``, as rspamd or amavis would reject spam after DATA. Postfix's
cleanup then logs ``milter-reject: END-OF-MESSAGE``. Prints its port on the
first line of standard output, serves until terminated. Standard library only.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading

REPLY = b"554 5.7.1 Spam message rejected\0"


def packet(conn: socket.socket) -> tuple[bytes, bytes] | None:
    head = conn.recv(4, socket.MSG_WAITALL)
    if len(head) < 4:
        return None
    (size,) = struct.unpack("!I", head)
    body = b""
    while len(body) < size:
        more = conn.recv(size - len(body))
        if not more:
            return None
        body += more
    return body[:1], body[1:]


def send(conn: socket.socket, command: bytes, data: bytes = b"") -> None:
    conn.sendall(struct.pack("!I", len(data) + 1) + command + data)


def serve(conn: socket.socket) -> None:
    reject = False
    with conn:
        while True:
            got = packet(conn)
            if got is None:
                return
            command, data = got
            if command == b"O":  # option negotiation: version 6, no actions, every step
                send(conn, b"O", struct.pack("!III", 6, 0, 0))
            elif command in (b"D", b"A"):  # macros, abort: no reply
                reject = reject and command == b"D"
            elif command == b"Q":
                return
            elif command == b"L":  # a header: name NUL value NUL
                name, _, value = data.partition(b"\0")
                if name.lower() == b"subject" and b"milter-reject" in value:
                    reject = True
                send(conn, b"c")
            elif command == b"E":
                if reject:
                    send(conn, b"y", REPLY)
                else:
                    send(conn, b"c")
                reject = False
            else:  # connect, helo, mail, rcpt, data, end of headers, body: continue
                send(conn, b"c")


def main() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
