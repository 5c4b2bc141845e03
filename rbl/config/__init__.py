"""The TOML configuration, parsed once into frozen dataclasses.

Every module receives only the part it needs (a ``ZoneSettings``, the
``DnsSettings``...), never the raw TOML. Errors name the file and the setting.
Imports only the standard library and rbl's pure layers (errors, model).

The package: ``fields`` (a setting declared beside its field, and the one section
reader), ``readers`` (types and ranges), ``values`` (durations, endpoints, templates),
``zones`` and ``sections`` (the dataclasses), ``load`` (the file), ``tsigkeys``.
This module is the public API the rest of rbl imports.
"""

from __future__ import annotations

from rbl.config.load import load_settings, parse_settings
from rbl.config.sections import (
    DEFAULT_PROVIDER_HOSTS,
    DEFAULT_UDP_PAYLOAD,
    TIME_RESOLUTIONS,
    DatabaseSettings,
    DelistingSettings,
    DnsSettings,
    DumpSettings,
    ListingSettings,
    MetricsSettings,
    PolicyFeedSettings,
    PublicSettings,
    RateLimitSettings,
    Settings,
    SyncSettings,
    TcpSettings,
    TransferSettings,
    WebSettings,
)
from rbl.config.values import (
    DAY,
    DEFAULT_PORT,
    MAX_DURATION,
    check_template,
    describe,
    parse_duration,
    parse_endpoint,
)
from rbl.config.zones import PrefixSettings, SoaSettings, ZoneSettings
from rbl.errors import ConfigError
from rbl.model.keys import ZoneKind

__all__ = [
    "DAY",
    "DEFAULT_PORT",
    "DEFAULT_PROVIDER_HOSTS",
    "DEFAULT_UDP_PAYLOAD",
    "MAX_DURATION",
    "TIME_RESOLUTIONS",
    "ConfigError",
    "DatabaseSettings",
    "DelistingSettings",
    "DnsSettings",
    "DumpSettings",
    "ListingSettings",
    "MetricsSettings",
    "PolicyFeedSettings",
    "PrefixSettings",
    "PublicSettings",
    "RateLimitSettings",
    "Settings",
    "SoaSettings",
    "SyncSettings",
    "TcpSettings",
    "TransferSettings",
    "WebSettings",
    "ZoneKind",
    "ZoneSettings",
    "check_template",
    "describe",
    "load_settings",
    "parse_duration",
    "parse_endpoint",
    "parse_settings",
]
