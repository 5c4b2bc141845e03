"""A reload is a loop over the composed services' ``reconfigure``: in-process, each
section reaches its service, in the order they apply, and the rest waits for a restart."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from twisted.internet import task

from rbl.config import Settings, parse_settings
from rbl.server.dnsservice import DnsServerService
from rbl.server.reload import apply_settings
from rbl.server.service import Server, make_service

IP_ZONE = {"name": "bl.example.org", "kind": "ip", "ns": ["ns1.example.org"]}
DOMAIN_ZONE = {"name": "dbl.example.org", "kind": "domain", "ns": ["ns1.example.org"]}


def writer_settings(tmp_path: Path, zones: tuple[dict[str, object], ...] = (IP_ZONE,)) -> Settings:
    return parse_settings(
        {
            "database": {"url": f"sqlite:///{tmp_path}/rbl.sqlite"},
            "zones": list(zones),
            "web": {"listen": "127.0.0.1:0"},
            "dumps": {"directory": str(tmp_path / "dumps")},
        },
        source=Path("test.toml"),
    )


def composed(settings: Settings) -> Server:
    server = make_service(settings, task.Clock())
    assert server.writer is not None and server.web is not None and server.dumps is not None
    return server


def test_the_services_reconfigure_in_order(tmp_path: Path) -> None:
    settings = writer_settings(tmp_path)
    server = composed(settings)
    assert [type(s).__name__ for s in server.reconfigurable] == [
        "DnsServerService",
        "SettingsRecorder",
        "WriterService",
        "DumpService",
        "WebService",
    ]
    assert apply_settings(server, settings).applied == []
    new = replace(
        settings,
        listing=replace(settings.listing, threshold=3),
        policy_feed=replace(settings.policy_feed, commit_timeout=4.0),
        dumps=replace(settings.dumps, gzip_level=9),
        web=replace(settings.web, title="Renamed"),
    )
    report = apply_settings(server, new)
    assert report.applied == ["[listing]", "[feeds.policy]", "[dumps]", "[web]"]
    assert report.needs_restart == []
    assert server.writer is not None and server.dumps is not None
    assert server.writer.rules.threshold == 3
    assert server.writer.recorder.commit_timeout == 4.0
    assert server.dumps.gzip_level == 9 and server.dumps.settings is new
    assert server.current is new
    assert apply_settings(server, new).applied == []  # judged against the last applied


def test_restart_only_settings_are_judged_against_the_start(tmp_path: Path) -> None:
    settings = writer_settings(tmp_path)
    server = composed(settings)
    moved = replace(
        settings,
        web=replace(settings.web, listen=("127.0.0.1", 1)),
        dumps=replace(settings.dumps, directory=str(tmp_path / "elsewhere")),
        zones=writer_settings(tmp_path, (IP_ZONE, DOMAIN_ZONE)).zones,
    )
    for _ in range(2):  # reported on every reload until the restart
        report = apply_settings(server, moved)
        assert report.needs_restart == [
            "[web] listen",
            "[dumps] directory",
            "the set of [[zones]] (names or kinds)",
        ]
    assert "[dumps]" not in report.applied  # a new directory is not taken while running


def test_a_dns_only_node_reconfigures_its_dns_alone(tmp_path: Path) -> None:
    settings = writer_settings(tmp_path)
    server = make_service(settings, task.Clock(), dns_only=True)
    assert [type(s).__name__ for s in server.reconfigurable] == [
        "DnsServerService",
        "SettingsRecorder",
    ]
    assert isinstance(server.reconfigurable[0], DnsServerService)
    new = replace(settings, web=replace(settings.web, title="Renamed"))
    assert apply_settings(server, new).applied == []
