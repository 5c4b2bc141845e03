"""The test configuration: one ``rbl.toml`` with two zones, and what a test reads back from it.

``write_config`` is the one builder of a configuration file for tests that run
the real CLI or ``rbl serve``; ``CONFIG_TEMPLATE`` is its text, for tests that
add sections of their own (``extra``). ``LIVE_SETTINGS`` turns on the policy
feed and short listings, for tests of the whole loop in one ``rbl serve``.
In-process tests build ``Settings`` from a dict (tests/support/dns_zones.py).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

CONFIG_TEMPLATE = """
[dns]
listen = ["127.0.0.1:0"]

[database]
url = "sqlite:///{db}"

[sync]
poll_interval = 0.1

[[zones]]
name = "bl.example.org"
kind = "ip"
ttl = 300
ns = ["ns1.example.org", "ns2.example.net"]
default_code = "127.0.0.2"
txt = "Listed: {{url}}"
lookup_url = "https://www.example.org/lookup/{{key}}"

[zones.soa]
rname = "hostmaster@example.org"
minimum = 120

[[zones]]
name = "dbl.example.org"
kind = "domain"
ttl = 600
ns = ["ns1.example.org"]
default_code = "127.0.1.2"
txt = "Domain {{key}} listed"
"""

LIVE_SETTINGS = """
[listing]
ip_zone = "bl.example.org"
domain_zone = "dbl.example.org"
duration = "3s"
max_duration = "1h"
expiry_interval = "0.2s"

[feeds.policy]
listen = "127.0.0.1:0"
"""


def write_config(
    directory: Path, db_name: str = "rbl.sqlite", *, url: str | None = None, extra: str = ""
) -> Path:
    """``rbl.toml`` in ``directory``: a SQLite file there, or the database ``url``;
    ``extra`` (TOML sections) appended."""
    path = directory / "rbl.toml"
    content = CONFIG_TEMPLATE.format(db=directory / db_name)
    if url is not None:
        content = content.replace(f'url = "sqlite:///{directory / db_name}"', f"url = {url!r}")
    path.write_text(content + extra)
    return path


def database_url_of(config: Path) -> str:
    """The ``[database] url`` a test configuration names (SQLite or PostgreSQL)."""
    with config.open("rb") as f:
        return str(tomllib.load(f)["database"]["url"])


def record_zone_settings(config: Path) -> None:
    """Record the zones' settings fingerprints as a running fleet has them, so that a first
    ``rbl serve`` on a fresh store writes no settings rows (and NOTIFYs nothing) at start."""
    from rbl.config import load_settings
    from rbl.store.database import open_engine
    from rbl.store.settingslog import record_fingerprints
    from rbl.zonedata.fingerprint import fingerprint

    settings = load_settings(config)
    open_engine(settings.database.url).dispose()  # the schema, as `rbl db init` makes it
    record_fingerprints(settings.database.url, {z.name: fingerprint(z) for z in settings.zones})
