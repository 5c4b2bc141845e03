"""A real sendmail 8.17 daemon in a private network and mount namespace, and its syslog.

Debian's sendmail-bin conflicts with the installed Postfix, so scripts/test
unpacks it (with sendmail-base, sendmail-cf and libwrap0) into
/var/cache/rbl-test-sendmail (``RBL_TEST_SENDMAIL_ROOT``); the setgid bit is
dropped there so the loader honours ``LD_LIBRARY_PATH``. ``capture`` runs this
module as a program under ``unshare --mount --net`` (root only), which:

- gives the loopback interface the test's public addresses (``PREFIX``.x and
  2001:db8::x), so sendmail sees each session come from its own client;
- answers PTR and A/AAAA queries from ``PTR`` and ``FORWARD`` with a small
  dnslib server on 127.0.0.1:53 (an ``/etc/resolv.conf`` and ``/etc/hosts``
  bound over the real ones), so sendmail's own forward check makes ``name [ip]`` for a
  confirmed name and ``name [ip] (may be forged)`` for one that is not;
- listens on ``/dev/log`` (a tmpfs over ``/dev`` whose other entries link to
  the real ones), writing each message as rsyslog's traditional file format
  would (``Mon dd hh:mm:ss host tag[pid]: text``);
- runs ``sendmail -bD -L sm-mta`` with a .cf built by m4 from sendmail-cf
  (access_db with ``To:`` entries refusing the traps, blocklist_recipients,
  example.org local so unknown users get ``User unknown``), and drives
  ``SESSIONS`` through it with smtplib.

Nothing outside the namespaces changes. Imports dnslib (a dependency of rbl)
and the standard library only.
"""

from __future__ import annotations

import ipaddress
import json
import os
import smtplib
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path(os.environ.get("RBL_TEST_SENDMAIL_ROOT", "/var/cache/rbl-test-sendmail"))
SENDMAIL: Final = ROOT / "usr" / "libexec" / "sendmail" / "sendmail"
MAKEMAP: Final = ROOT / "usr" / "libexec" / "sendmail" / "makemap"
CF_DIR: Final = ROOT / "usr" / "share" / "sendmail" / "cf"
PREFIX: Final = "45.33.14"
SERVER4: Final = f"{PREFIX}.250"
SERVER6: Final = "2001:db8::250"
PORT: Final = 2525
NAMESPACES: Final = ("unshare", "--mount", "--net", "--fork")
HOSTNAME: Final = "mx"
TRAP: Final = "trap@example.org"
TRAP_DOMAIN: Final = "trap.example"
IMITATED_IPS: Final = tuple(f"46.46.46.{n}" for n in range(1, 10))
IMITATED_DOMAIN: Final = "imitated.example"

# Reverse names (PTR) and forward addresses the namespace's DNS gives.
PTR: Final = {
    f"{PREFIX}.2": "mail.real2.example",
    f"{PREFIX}.3": "liar.example",  # its A record is another address: may be forged
    f"{PREFIX}.6": "mx.real6.example",
    "2001:db8::7": "six.real7.example",
    f"{PREFIX}.250": "mx.example.org",
}
FORWARD: Final = {
    "mail.real2.example": f"{PREFIX}.2",
    "liar.example": f"{PREFIX}.99",
    "mx.real6.example": f"{PREFIX}.6",
    "six.real7.example": "2001:db8::7",
    "mx.example.org": f"{PREFIX}.250",
}
SENDER_DOMAINS: Final = "198.51.100.10"  # the address of every other name under .example


@dataclass(frozen=True)
class Session:
    """One SMTP transaction: from where, MAIL FROM and RCPT TO texts, what must be read."""

    label: str
    ip: str
    mail_from: str  # the text after "MAIL FROM:"
    rcpts: tuple[str, ...]  # the texts after "RCPT TO:"
    sender: str  # canonical MAIL FROM the parser must give
    refused: tuple[str, ...]  # canonical recipients refused by check_rcpt (access db, relay)
    unknown: tuple[str, ...]  # canonical recipients refused "User unknown"
    client_name: str | None  # the name the parser must give (verified only)
    data: bool = False  # send a message to the accepted recipients
    # "User unknown" lines whose address sendmail shortened ("..."): the parser refuses them.
    shortened: int = 0


SESSIONS: Final = (
    Session(
        "trap and unknown user, no reverse name",
        f"{PREFIX}.1",
        "<spam@sender.example>",
        (f"<{TRAP}>", "<nosuch@example.org>", "<root@example.org>", "<x@other.example>"),
        "spam@sender.example",
        (TRAP, "x@other.example"),
        ("nosuch@example.org",),
        None,
    ),
    Session(
        "forward-confirmed name, message accepted after an unknown user",
        f"{PREFIX}.2",
        "<news@real2.example>",
        ("<root@example.org>", "<gone@example.org>", f"<a@{TRAP_DOMAIN}>"),
        "news@real2.example",
        (f"a@{TRAP_DOMAIN}",),
        ("gone@example.org",),
        "mail.real2.example",
        data=True,
    ),
    Session(
        "unverified name (may be forged)",
        f"{PREFIX}.3",
        "<a@liar.example>",
        (f"<{TRAP}>", "<nobody1@example.org>"),
        "a@liar.example",
        (TRAP,),
        ("nobody1@example.org",),
        None,
    ),
    Session(
        "sender imitates relay= and the from= line's tail",
        f"{PREFIX}.4",
        f'<"x>, size=0, class=0, nrcpts=0, proto=ESMTP, daemon=MTA, relay=mail.{IMITATED_DOMAIN}'
        f' [46.46.46.4]"@b.example>',
        (f"<{TRAP}>", "<nobody4@example.org>"),
        f'"x>, size=0, class=0, nrcpts=0, proto=esmtp, daemon=mta, relay=mail.{IMITATED_DOMAIN}'
        f' [46.46.46.4]"@b.example',
        (TRAP,),
        ("nobody4@example.org",),
        None,
    ),
    Session(
        "recipient imitates arg1=, relay= and reject= in a quoted local part and comments",
        f"{PREFIX}.5",
        "<bulk@sender.example>",
        (
            f'<"innocent@example.org>, relay=mail.{IMITATED_DOMAIN} [46.46.46.5], '
            f'reject=550 x"@{TRAP_DOMAIN}>',
            '<"q, relay=[46.46.46.5]"@example.org>',
            "<trap@example.org (x>, relay=[46.46.46.5], reject=550 y)>",
            '<nobody5@example.org ("x>... User unknown)>',
        ),
        "bulk@sender.example",
        (
            f'"innocent@example.org>, relay=mail.{IMITATED_DOMAIN} [46.46.46.5], '
            f'reject=550 x"@{TRAP_DOMAIN}',
            TRAP,  # the comment's "x>, relay=..." is a comment to sendmail too
        ),
        ('"q, relay=[46.46.46.5]"@example.org', "nobody5@example.org"),
        None,
    ),
    Session(
        "verified name, bare RCPT argument and a comment",
        f"{PREFIX}.6",
        "<offers@real6.example>",
        (
            TRAP,
            "<nobody6@example.org> NOTIFY=NEVER",
            "nobody66@example.org",
            "<trap@example.org (x, relay=[46.46.46.6])>",
            "<" + "v" * 180 + "@" + TRAP_DOMAIN + ">",
            "<" + "u" * 200 + "@example.org>",
        ),
        "offers@real6.example",
        (TRAP, TRAP, "v" * 180 + "@" + TRAP_DOMAIN),
        ("nobody6@example.org", "nobody66@example.org"),
        "mx.real6.example",
        shortened=1,
    ),
    Session(
        "IPv6 client with a verified name",
        "2001:db8::7",
        "<six@real7.example>",
        (f"<{TRAP}>", "<nobody7@example.org>"),
        "six@real7.example",
        (TRAP,),
        ("nobody7@example.org",),
        "six.real7.example",
    ),
    Session(
        "IPv6 client without a name",
        "2001:db8::8",
        "<>",
        (f"<{TRAP}>",),
        "",
        (TRAP,),
        (),
        None,
    ),
)

# A local submission to a trap and an unknown user: relay=root@localhost, no client address.
LOCAL_LABEL: Final = "local submission"
LOCAL_SESSION: Final = (
    "HELO localhost",
    "MAIL FROM:<root@local.example>",
    f"RCPT TO:<{TRAP}>",
    "RCPT TO:<nolocal@example.org>",
    "QUIT",
)

MC: Final = """\
divert(-1)
divert(0)dnl
OSTYPE(`linux')dnl
define(`confLOG_LEVEL', `9')dnl
define(`QUEUE_DIR', `{dir}/queue')dnl
define(`confPID_FILE', `{dir}/sendmail.pid')dnl
define(`STATUS_FILE', `{dir}/statistics')dnl
define(`ALIAS_FILE', `{dir}/aliases')dnl
define(`HELP_FILE', `{dir}/helpfile')dnl
define(`confCW_FILE', `-o {dir}/local-host-names')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confDONT_BLAME_SENDMAIL', `MapInUnsafeDirPath,ClassFileInUnsafeDirPath')dnl
define(`confDELIVERY_MODE', `queue')dnl
define(`confTO_IDENT', `0s')dnl
define(`confPRIVACY_FLAGS', `goaway')dnl
define(`confDOMAIN_NAME', `mx.example.org')dnl
FEATURE(`no_default_msa')dnl
FEATURE(`access_db', `hash -T<TMPF> {dir}/access')dnl
FEATURE(`blocklist_recipients')dnl
LOCAL_DOMAIN(`example.org')dnl
DAEMON_OPTIONS(`Port={port}, Addr={server4}, Name=MTA')dnl
DAEMON_OPTIONS(`Port={port}, Addr={server6}, Name=MTA-v6, Family=inet6')dnl
MAILER(`local')dnl
MAILER(`smtp')dnl
"""
ACCESS: Final = f'To:{TRAP}\tREJECT\nTo:{TRAP_DOMAIN}\tERROR:"550 5.7.1 no such user"\n'


def unavailable() -> str | None:
    """Why this machine cannot run the test's sendmail, or None."""
    if not SENDMAIL.exists():
        return f"sendmail is not unpacked at {ROOT} (scripts/test does it)"
    if os.geteuid() != 0:
        return "sendmail in a private network namespace needs root"
    for tool in ("unshare", "m4", "ip", "mount"):
        if not any(Path(d, tool).exists() for d in ("/usr/bin", "/usr/sbin", "/bin", "/sbin")):
            return f"{tool} is missing"
    probe = subprocess.run([*NAMESPACES, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"cannot make network and mount namespaces: {probe.stderr.decode()[-200:]}"
    return None


def sendmail_env() -> dict[str, str]:
    libs = ROOT / "usr" / "lib" / "x86_64-linux-gnu"
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LD_LIBRARY_PATH": str(libs)}


def capture(directory: Path, timeout: float = 120) -> list[str]:
    """Run SESSIONS through a fresh sendmail in new namespaces; its syslog lines."""
    directory.chmod(0o755)
    done = subprocess.run(
        [*NAMESPACES, sys.executable, "-m", "tests.support.sendmail_peer", str(directory)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
    raw = (directory / "syslog").read_bytes()
    return raw.decode("utf-8", "replace").split("\n")[:-1]


def answers(directory: Path) -> dict[str, list[list[object]]]:
    """The SMTP replies of each session of the last capture, by label."""
    found: dict[str, list[list[object]]] = json.loads((directory / "replies.json").read_text())
    return found


# ---- what runs inside the namespaces ----


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


def _network() -> None:
    _run("ip", "link", "set", "lo", "up")
    _run("ip", "addr", "add", f"{PREFIX}.0/24", "dev", "lo")
    for address in {SERVER6, *(s.ip for s in SESSIONS if ":" in s.ip)}:
        _run("ip", "-6", "addr", "add", f"{address}/128", "dev", "lo", "nodad")


def _files(directory: Path) -> None:
    """Private /etc/hosts, /etc/resolv.conf and a /dev whose log socket is ours."""
    _run("mount", "--make-rprivate", "/")
    (directory / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
    (directory / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    _run("mount", "--bind", str(directory / "hosts"), "/etc/hosts")
    _run("mount", "--bind", str(directory / "resolv.conf"), "/etc/resolv.conf")
    real = directory / "dev"
    real.mkdir()
    _run("mount", "--rbind", "/dev", str(real))
    _run("mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/dev")
    for entry in os.listdir(real):
        os.symlink(real / entry, Path("/dev", entry))


def _dns() -> socket.socket:
    """A UDP server on 127.0.0.1:53 answering PTR and A/AAAA from PTR and FORWARD.

    Other names under .example have an A record (senders' domains must resolve
    for sendmail's check_mail), the rest does not exist.
    """
    from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord
    from dnslib import PTR as PTRRecord

    reverse = {f"{ipaddress.ip_address(ip).reverse_pointer}.": name for ip, name in PTR.items()}
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))

    def serve() -> None:
        while True:
            data, peer = sock.recvfrom(4096)
            try:
                query = DNSRecord.parse(data)
            except Exception:  # a test server: ignore junk
                continue
            reply = query.reply()
            qname = str(query.q.qname).lower()
            name = qname.rstrip(".")
            qtype = query.q.qtype
            if qtype == QTYPE.PTR and qname in reverse:
                reply.add_answer(RR(qname, QTYPE.PTR, rdata=PTRRecord(reverse[qname]), ttl=60))
            elif name in FORWARD and qtype in (QTYPE.A, QTYPE.AAAA):
                address = FORWARD[name]
                if qtype == QTYPE.A and ":" not in address:
                    reply.add_answer(RR(qname, QTYPE.A, rdata=A(address), ttl=60))
                elif qtype == QTYPE.AAAA and ":" in address:
                    reply.add_answer(RR(qname, QTYPE.AAAA, rdata=AAAA(address), ttl=60))
            elif name.endswith(".example") and name not in FORWARD and qtype == QTYPE.A:
                reply.add_answer(RR(qname, QTYPE.A, rdata=A(SENDER_DOMAINS), ttl=60))
            elif not name.endswith(".example"):
                reply.header.rcode = RCODE.NXDOMAIN
            sock.sendto(reply.pack(), peer)

    threading.Thread(target=serve, daemon=True).start()
    return sock


class _Syslog:
    """``/dev/log``: each datagram becomes a file line, rsyslog's traditional format."""

    def __init__(self, path: Path) -> None:
        self.lines: list[bytes] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("/dev/log")
        self.out = path.open("wb")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            message = self.sock.recv(65536).rstrip(b"\n")
            if message.startswith(b"<"):
                message = message[message.index(b">") + 1 :]
            line = message[:16] + HOSTNAME.encode() + b" " + message[16:]
            self.lines.append(line)
            self.out.write(line + b"\n")
            self.out.flush()


def _config(directory: Path) -> Path:
    (directory / "queue").mkdir(mode=0o700)
    (directory / "aliases").write_text("postmaster: root\n")
    (directory / "local-host-names").write_text("")
    (directory / "helpfile").write_text("")
    (directory / "access").write_text(ACCESS)
    mc = directory / "sendmail.mc"
    mc.write_text(
        MC.replace("{dir}", str(directory))
        .replace("{port}", str(PORT))
        .replace("{server4}", SERVER4)
        .replace("{server6}", SERVER6)
    )
    cf = directory / "sendmail.cf"
    with cf.open("wb") as out:
        subprocess.run(
            ["m4", f"-D_CF_DIR_={CF_DIR}/", str(CF_DIR / "m4" / "cf.m4"), str(mc)],
            stdout=out,
            check=True,
        )
    env = sendmail_env()
    with (directory / "access").open("rb") as source:
        subprocess.run(
            [str(MAKEMAP), "-C", str(cf), "hash", str(directory / "access")],
            stdin=source,
            env=env,
            check=True,
        )
    subprocess.run([str(SENDMAIL), "-C", str(cf), "-bi"], env=env, check=True, capture_output=True)
    return cf


def _wait_port(address: str) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    deadline = time.monotonic() + 30
    while True:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            if probe.connect_ex((address, PORT)) == 0:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"sendmail is not listening on {address} port {PORT}")
        time.sleep(0.1)


def _drive(session: Session) -> list[list[object]]:
    server = SERVER6 if ":" in session.ip else SERVER4
    replies: list[list[object]] = []
    with smtplib.SMTP(server, PORT, source_address=(session.ip, 0), timeout=30) as smtp:
        smtp.ehlo("client.example")
        replies.append(["MAIL", *_text(smtp.docmd("MAIL FROM:" + session.mail_from))])
        accepted = False
        for rcpt in session.rcpts:
            code, text = _text(smtp.docmd("RCPT TO:" + rcpt))
            replies.append(["RCPT", code, text])
            accepted = accepted or code == 250
        if session.data and accepted:
            code, text = _text(smtp.docmd("DATA"))
            if code == 354:
                smtp.send(b"Subject: offers\r\n\r\nbuy now\r\n.\r\n")
                code, text = _text(smtp.getreply())
            replies.append(["DATA", code, text])
    return replies


def _local(cf: Path) -> list[str]:
    """A local submission (``sendmail -bs`` as root: relay=root@localhost), one command at
    a time (sendmail refuses a client that talks before its greeting)."""
    replies: list[str] = []
    with subprocess.Popen(
        [str(SENDMAIL), "-C", str(cf), "-bs", "-L", "sm-mta"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=sendmail_env(),
    ) as local:
        assert local.stdin is not None and local.stdout is not None
        for command in ("", *LOCAL_SESSION):
            if command:
                local.stdin.write(command.encode() + b"\r\n")
                local.stdin.flush()
            while True:
                reply = local.stdout.readline().decode(errors="replace").rstrip()
                if len(reply) < 4 or reply[3] != "-":
                    break
            replies.append(reply)
        local.stdin.close()
        local.wait(timeout=30)
    return replies


def _text(reply: tuple[int, bytes]) -> tuple[int, str]:
    return reply[0], reply[1].decode(errors="replace")


def _main(directory: Path) -> None:
    _network()
    _files(directory)
    dns = _dns()
    syslog = _Syslog(directory / "syslog")
    cf = _config(directory)
    daemon = subprocess.Popen(
        [str(SENDMAIL), "-C", str(cf), "-bD", "-L", "sm-mta"],
        env=sendmail_env(),
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_port(SERVER4)
        _wait_port(SERVER6)
        replies = {session.label: _drive(session) for session in SESSIONS}
        replies[LOCAL_LABEL] = [["-bs", reply] for reply in _local(cf)]
        # Every session's envelope ends with its from= line; wait for the last one.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ends = sum(1 for line in list(syslog.lines) if b": from=" in line)
            if ends >= len(SESSIONS) + 1:
                break
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    (directory / "replies.json").write_text(json.dumps(replies, indent=1))
    time.sleep(0.2)
    syslog.out.close()
    dns.close()


if __name__ == "__main__":
    _main(Path(sys.argv[1]))
