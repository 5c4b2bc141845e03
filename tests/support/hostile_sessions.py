"""Hostile SMTP sessions: what a spammer controls, shaped to steer a log parser.

Each session connects from a real (public, test-owned) address and sends a
HELO, a MAIL FROM and RCPTs that imitate other fields of Exim's and Postfix's
log lines: ``H=name (helo) [ip]``, ``; from=<..> to=<..> proto=.. helo=<``,
bracketed addresses, quoted local parts with spaces, Unicode digits, bare
(unbracketed) MAIL FROM and RCPT TO arguments, which Exim logs as sent. The
imitated addresses (46.46.46.x) and domains (imitated.example) must never
come out of a parser; the connecting address and the real recipients must,
or the line must be refused. Used by the real-MTA tests (test_exim_live,
test_postfix_live), which replay these sessions through real Exim and Postfix.
"""

from __future__ import annotations

from dataclasses import dataclass

TRAP = "spamtrap@example.org"
TRAP_DOMAIN = "trap.example"
IMITATED_IPS = tuple(f"46.46.46.{n}" for n in range(1, 10))
IMITATED_DOMAIN = "imitated.example"
FIELDS_IN_RCPT = "x> proto=ESMTP helo=<y; from=<a@b.example> to=<innocent@example.org"


@dataclass(frozen=True)
class Session:
    """One SMTP transaction: who connects and what they say (raw SMTP argument text)."""

    label: str
    ip: str  # the connecting address (Exim -oMa, Postfix XCLIENT ADDR=)
    name: str | None  # forward-confirmed client name (Exim -oMs, Postfix XCLIENT NAME=)
    helo: str
    mail_from: str  # the text after "MAIL FROM:"
    rcpts: tuple[str, ...]  # the texts after "RCPT TO:"
    traps: tuple[str, ...]  # canonical trap recipients among rcpts (refused by the MTA)
    accepted: tuple[str, ...]  # canonical other recipients (accepted, in the arrival)
    sender: str  # canonical MAIL FROM as the parser must give it
    subject: str = "offers for you"
    # Exim's rejected RCPT lines of this session read two ways: the parser must refuse them.
    refused_rcpt: bool = False


def sessions(prefix: str) -> list[Session]:
    """The hostile sessions, from addresses ``{prefix}.1`` upwards (a public /24 per MTA)."""
    return [
        Session(
            "helo imitates the host part and a sender",
            f"{prefix}.1",
            None,
            "x) [46.46.46.1] F=<a@b.example> (y",
            "<spam@sender.example>",
            (f"<{TRAP}>", "<user@example.org>"),
            (TRAP,),
            ("user@example.org",),
            "spam@sender.example",
            subject='offers for you" (a) [46.46.46.1] S=1 for innocent@example.org',
        ),
        Session(
            "quoted sender imitates H=name (helo) [ip]",
            f"{prefix}.2",
            "mail.real2.example",
            "mail.real2.example",
            f'<"a b H=mail.{IMITATED_DOMAIN} (h) [46.46.46.2] "@{IMITATED_DOMAIN}>',
            (f"<{TRAP}>", "<user@example.org>"),
            (TRAP,),
            ("user@example.org",),
            f'"a b h=mail.{IMITATED_DOMAIN} (h) [46.46.46.2] "@{IMITATED_DOMAIN}',
        ),
        Session(
            "helo imitates a whole rejected RCPT",
            f"{prefix}.3",
            None,
            "h) [46.46.46.3] F=<x@y.example> rejected RCPT <innocent@example.org>: (",
            "<spam@sender.example>",
            (f"<{TRAP}>",),
            (TRAP,),
            (),
            "spam@sender.example",
            refused_rcpt=True,
        ),
        Session(
            "sender imitates Postfix's to= proto= helo= fields",
            f"{prefix}.4",
            None,
            "pc4.example",
            '<"x> to=<innocent@example.org> proto=ESMTP helo=<h"@evil.example>',
            (f"<{TRAP}>", "<user@example.org>"),
            (TRAP,),
            ("user@example.org",),
            '"x> to=<innocent@example.org> proto=esmtp helo=<h"@evil.example',
        ),
        Session(
            "sender imitates Postfix's '; from= to=' block",
            f"{prefix}.5",
            None,
            "pc5.example",
            '<"x; from=<a@b.example> to=<innocent@example.org> proto=ESMTP helo=<h"@evil.example>',
            (f"<{TRAP}>",),
            (TRAP,),
            (),
            '"x; from=<a@b.example> to=<innocent@example.org> proto=esmtp helo=<h"@evil.example',
        ),
        Session(
            "quoted trap recipients",
            f"{prefix}.6",
            None,
            "pc6.example",
            "<bulk@sender.example>",
            (f'<"spam trap"@{TRAP_DOMAIN}>', '<"spamtrap"@example.org>', '<"q r"@example.org>'),
            (f'"spam trap"@{TRAP_DOMAIN}', TRAP),
            ('"q r"@example.org',),
            "bulk@sender.example",
        ),
        Session(
            "recipient imitates Postfix fields inside a quoted trap local part",
            f"{prefix}.7",
            None,
            "pc7.example",
            "<bulk@sender.example>",
            (f'<"{FIELDS_IN_RCPT}"@{TRAP_DOMAIN}>',),
            (f'"{FIELDS_IN_RCPT.lower()}"@{TRAP_DOMAIN}',),
            (),
            "bulk@sender.example",
        ),
        Session(
            "Unicode digits in the HELO",
            f"{prefix}.8",
            None,
            "[\u00b2.1.1.1]",
            "<bulk@sender.example>",
            (f"<{TRAP}>",),
            (TRAP,),
            (),
            "bulk@sender.example",
        ),
        Session(
            "Arabic-Indic digits in the HELO, bracketed address",
            f"{prefix}.9",
            None,
            "\u0664\u0665.\u0663\u0663.\u0661\u0662.\u0661\u0661 [46.46.46.9]",
            "<bulk@sender.example>",
            (f"<{TRAP}>",),
            (TRAP,),
            (),
            "bulk@sender.example",
        ),
        Session(
            "a real sender whose name, HELO and MAIL FROM agree",
            f"{prefix}.10",
            "mx.real-spam.example",
            "mx.real-spam.example",
            "<offers@real-spam.example>",
            (f"<{TRAP}>",),
            (TRAP,),
            (),
            "offers@real-spam.example",
        ),
        Session(
            "bare MAIL FROM and RCPT TO, a quoted one holding ': <innocent@..>'",
            f"{prefix}.11",
            None,
            "pc11.example",
            "bulk@sender.example",
            (TRAP, f'"a: <innocent@example.org> b"@{TRAP_DOMAIN}', "user@example.org"),
            (TRAP, f'"a: <innocent@example.org> b"@{TRAP_DOMAIN}'),
            ("user@example.org",),
            "bulk@sender.example",
        ),
    ]


def delivered_sessions(prefix: str) -> list[Session]:
    """Sessions for an Exim without ``+received_recipients``: the recipients are read from
    its delivery lines, where a quoted local part is written twice, once unquoted.
    ``traps`` here are what the RCPT ACL refuses (local part ``refused``)."""
    return [
        Session(
            "quoted recipients delivered: spaces, brackets, H=, [ip] and R= inside quotes",
            f"{prefix}.20",
            None,
            "pc20.example",
            "<bulk@sender.example>",
            (
                f'<"spam trap"@{TRAP_DOMAIN}>',
                f'<"x H=(a) [46.46.46.2] R=y"@{TRAP_DOMAIN}>',
                '<"a <innocent@example.org> R=blackhole T=x"@example.org>',
                '<"q r"@devnull.example>',
                '<"plain"@devnull.example>',
            ),
            (),
            (
                f'"spam trap"@{TRAP_DOMAIN}',
                f'"x h=(a) [46.46.46.2] r=y"@{TRAP_DOMAIN}',
                '"a <innocent@example.org> r=blackhole t=x"@example.org',
                '"q r"@devnull.example',
                "plain@devnull.example",
            ),
            "bulk@sender.example",
        ),
        Session(
            "SMTPUTF8: UTF-8 recipients refused and delivered",
            f"{prefix}.21",
            None,
            "pc21.example",
            "<bulk@sender.example> SMTPUTF8",
            ("<refused@bücher.example>", "<spamtrap@bücher.example>", '<"ü x"@bücher.example>'),
            ("refused@bücher.example",),
            ("spamtrap@bücher.example", '"ü x"@bücher.example'),
            "bulk@sender.example",
        ),
        Session(
            "bare RCPT TO with a comment or a phrase: Exim logs them with '=' for a space",
            f"{prefix}.22",
            None,
            "pc22.example",
            "bulk@sender.example",
            ("refused@example.org (a: b)", "Spam <refused@example.org>"),
            ("refused@example.org", "refused@example.org"),
            (),
            "bulk@sender.example",
            refused_rcpt=True,
        ),
    ]


def transcript(session: Session, *, data: bool = True) -> str:
    """The client's side of the SMTP conversation, CRLF-terminated lines."""
    lines = [f"EHLO {session.helo}", f"MAIL FROM:{session.mail_from}"]
    lines += [f"RCPT TO:{rcpt}" for rcpt in session.rcpts]
    if data and session.accepted:
        lines += ["DATA", f"Subject: {session.subject}", "", "buy now", "."]
    lines.append("QUIT")
    return "".join(line + "\r\n" for line in lines)
