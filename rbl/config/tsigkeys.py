"""TSIG key specs (``name:algorithm:base64-secret``), checked when the file is read.

Pure: the configuration checks every ``[transfer] tsig`` entry without loading a DNS
library, and rbl.dnsserver.tsig builds its keyring from the same parse. The form is the
one NSD and Knot configurations use.
"""

from __future__ import annotations

import base64
import binascii

from rbl.errors import ConfigError

ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")


def parse_key(spec: str, where: str = "tsig") -> tuple[str, str, bytes]:
    """``name:algorithm:secret`` -> (name, algorithm, secret bytes); ConfigError naming it."""
    name, _, rest = spec.partition(":")
    algorithm, _, secret = rest.partition(":")
    if not name or not algorithm or not secret:
        raise ConfigError(f"{where}: key {name or spec!r} is not 'name:algorithm:base64-secret'")
    if algorithm.lower() not in ALGORITHMS:
        raise ConfigError(
            f"{where}: key {name!r}: algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}"
        )
    try:
        raw = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: key {name!r}: the secret is not base64") from None
    if len(raw) < 16:
        raise ConfigError(f"{where}: key {name!r}: the secret is shorter than 16 bytes")
    return name.rstrip(".").lower() + ".", algorithm.lower(), raw
