"""The public site's input: fields read from a request, and the removal form's checks.

A field is text only if it is UTF-8 without control characters (the one rule
of rbl.model.text, shared with the CLI: the operator reads these through
``rbl requests show``); a message may keep tabs and line breaks. A refused
field is a ``FieldError`` whose message names the field; the page answers 400
with it. Imports no store module.
"""

from __future__ import annotations

from twisted.web import server

from rbl.model.text import describe_character, forbidden_character
from rbl.store.requests import MAX_MESSAGE

MAX_EMAIL = 320
MAX_ZONE = 253
MAX_TOKEN = 100  # a form token is "issue time.nonce.MAC", about 70 characters


class FieldError(ValueError):
    """A query or form field that is not plain text; the message names the field."""


def _first(request: server.Request, name: str) -> bytes | None:
    values = (request.args or {}).get(name.encode("ascii"), [])
    return bytes(values[0]) if values else None


def text_field(request: server.Request, name: str, *, multiline: bool = False) -> str:
    """A field as text, "" when absent; FieldError if not UTF-8 or with control characters."""
    raw = _first(request, name)
    if raw is None:
        return ""
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FieldError(f"The {name} field is not valid UTF-8 text.") from None
    bad = forbidden_character(value, "\t\n\r" if multiline else "")
    if bad is not None:
        raise FieldError(
            f"The {name} field contains {describe_character(bad)}; please send plain text."
        )
    return value


def ascii_field(request: server.Request, name: str, limit: int) -> str:
    """A short ASCII field such as a token; "" when absent, too long or not ASCII."""
    raw = _first(request, name) or b""
    if len(raw) > limit or not raw.isascii():
        return ""
    return raw.decode("ascii")


def lenient_field(request: server.Request, name: str, limit: int) -> str:
    """A field to show back in a form that was refused anyway: undecodable bytes replaced."""
    raw = _first(request, name)
    text = raw.decode("utf-8", "replace") if raw is not None else ""
    return "".join(ch for ch in text[: limit + 1] if ch in "\t\n" or ch >= " ")


def form_errors(message: str, email: str) -> list[str]:
    """What is wrong with a removal form's message and (optional) email, as sentences."""
    errors = []
    if not message:
        errors.append("Please say why the listing should be removed (the message is required).")
    elif len(message) > MAX_MESSAGE:
        errors.append(
            f"The message has {len(message)} characters; at most {MAX_MESSAGE} are accepted."
        )
    if email:
        local, at, domain = email.partition("@")
        if (
            len(email) > MAX_EMAIL
            or not at
            or "@" in domain
            or not local
            or "." not in domain.strip(".")
            or any(ch.isspace() or ord(ch) < 32 for ch in email)
        ):
            errors.append(
                f"{email[:80]!r} does not look like an email address "
                f"(one @, no spaces, at most {MAX_EMAIL} characters). It is optional."
            )
    return errors
