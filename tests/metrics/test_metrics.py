"""Prometheus /metrics: the format (checked with prometheus_client's own parser) and
the figures of a real ``rbl serve`` after known queries, hits and dumps."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from rbl.metrics.exposition import Family, render
from rbl.metrics.report import ReportReader
from tests.support.database import db_scalar
from tests.support.dns_client import server_query
from tests.support.processes import rbl_command
from tests.support.scrape import Samples, parse, scrape, total, value, wait_for
from tests.support.server import start_server, stop_server

# -- the format --------------------------------------------------------------------------


def test_render_escapes_labels_and_parses_back() -> None:
    family = Family("rbl_x_total", "counter", 'Help with \\ and\nnewline and "quotes".')
    family.add(3, zone='we"ird\\zone\nname')
    family.add(1.5, zone="plain")
    empty = Family("rbl_empty", "gauge", "never rendered")
    text = render([family, empty]).decode()
    assert "rbl_empty" not in text
    assert text.count("# TYPE rbl_x counter") + text.count("# TYPE rbl_x_total counter") == 1
    samples = parse(text)
    assert value(samples, "rbl_x_total", zone='we"ird\\zone\nname') == 3
    assert value(samples, "rbl_x_total", zone="plain") == 1.5


def test_report_reader_keeps_the_newest_whole_line() -> None:
    reader = ReportReader()
    reader.feed(b'{"udp": 1}\n{"udp": 2}\n{"udp"')
    assert reader.latest == {"udp": 2}
    reader.feed(b": 3}\n")
    assert reader.latest == {"udp": 3}
    reader.feed(b'torn garbage\n{"udp": 4')  # a torn line is skipped, not fatal
    assert reader.latest == {"udp": 3}
    reader.feed(b"}\n")
    assert reader.latest == {"udp": 4}


# -- a real server ---------------------------------------------------------------------------

METRICS_SETTINGS = """
[metrics]
listen = "127.0.0.1:0"

[feeds.policy]
listen = "127.0.0.1:0"

[dumps]
directory = "dumps"
"""


def ask(server: object, name: str, rdtype: str = "A") -> int:
    host, port = server.host, server.port  # type: ignore[attr-defined]
    return server_query(host, port, name, rdtype, timeout=3).rcode()


def test_metrics_of_a_running_server(config_path: Path) -> None:
    config_path.write_text(config_path.read_text() + METRICS_SETTINGS)
    rbl_command(config_path, "list", "add", "45.1.1.1", "--reason", "metrics")
    rbl_command(config_path, "list", "add", "bad.example", "--reason", "metrics")
    rbl_command(config_path, "traps", "add", "trap@example.org")
    hit_time = datetime.now(UTC) - timedelta(minutes=5)
    log = config_path.parent / "hits.jsonl"
    log.write_text(
        "".join(
            json.dumps(
                {"time": hit_time.isoformat(), "ip": f"46.0.0.{i}", "to": "trap@example.org"}
            )
            + "\n"
            for i in range(1, 4)
        )
    )
    rbl_command(config_path, "ingest", "--format", "json", str(log))
    server = start_server(config_path)
    try:
        address = server.info["metrics"]
        assert isinstance(address, dict)
        before = scrape(address)
        assert value(before, "rbl_database_up") == 1
        assert value(before, "rbl_build_info", version="0.1.0", role="primary") == 1
        # Listings from the store: the CLI one and the three listed by the trap hits.
        assert value(before, "rbl_listings", zone="bl.example.org", state="active") == 4
        assert value(before, "rbl_listings", zone="dbl.example.org", state="active") == 1
        assert value(before, "rbl_trap_hits", feed="json") == 3
        lag = value(before, "rbl_ingest_lag_seconds", feed="json")
        assert lag is not None and 290 <= lag <= 600
        offset = value(before, "rbl_ingest_offset_bytes", source=str(log), format="json")
        assert offset == log.stat().st_size
        assert value(before, "rbl_ingest_backlog_bytes", source=str(log), format="json") == 0
        # The in-memory index: 4 listings + the IP zone's 4 RFC 5782 test entries.
        assert value(before, "rbl_index_entries", worker="0", zone="bl.example.org") == 8
        # The first dump runs at start; its files age from SHA256SUMS.
        wait_for(lambda: value(scrape(address), "rbl_dump_runs_total") == 1)
        age = value(scrape(address), "rbl_dump_age_seconds")
        assert age is not None and 0 <= age < 60

        udp_before = value(before, "rbl_dns_queries_total", worker="0", transport="udp") or 0
        assert ask(server, "1.1.1.45.bl.example.org") == dns.rcode.NOERROR
        assert ask(server, "1.1.1.45.bl.example.org", "TXT") == dns.rcode.NOERROR
        for _ in range(3):
            assert ask(server, "2.2.2.45.bl.example.org") == dns.rcode.NXDOMAIN
        assert ask(server, "bad.example.dbl.example.org") == dns.rcode.NOERROR
        assert ask(server, "www.example.com") == dns.rcode.REFUSED
        after = scrape(address)
        assert value(after, "rbl_dns_queries_total", worker="0", transport="udp") == (
            udp_before + 7
        )
        responses = "rbl_dns_responses_total"
        gained = {
            rcode: total(after, responses, zone="bl.example.org", rcode=rcode)
            - total(before, responses, zone="bl.example.org", rcode=rcode)
            for rcode in ("NOERROR", "NXDOMAIN")
        }
        assert gained == {"NOERROR": 2, "NXDOMAIN": 3}
        assert (
            total(after, responses, zone="dbl.example.org", rcode="NOERROR")
            - total(before, responses, zone="dbl.example.org", rcode="NOERROR")
            == 1
        )
        assert (
            total(after, responses, zone="", rcode="REFUSED")
            - total(before, responses, zone="", rcode="REFUSED")
            == 1
        )
        # The live feed: one trap hit, answered once written.
        from tests.support.policy_requests import policy_request

        policy = server.info["policy"]
        assert isinstance(policy, dict)
        assert value(after, "rbl_policy_hits_total") == 0
        answer = policy_request(
            policy["host"], policy["port"], client_address="47.0.0.1", recipient="trap@example.org"
        )
        assert answer == b"action=DUNNO\n\n"
        fed = scrape(address)
        assert value(fed, "rbl_policy_requests_total") == 1
        assert value(fed, "rbl_policy_hits_total") == 1
        assert value(fed, "rbl_recorder_written_total") == 1
        assert value(fed, "rbl_recorder_queued") == 0
        assert value(fed, "rbl_policy_deferred_total") == 0
        assert value(fed, "rbl_recorder_set_aside_total") == 0
        rss = value(after, "process_resident_memory_bytes", worker="0")
        assert rss is not None and rss > 10 * 2**20
        # Only /metrics is served on this port.
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://{address['host']}:{address['port']}/", timeout=5)
        assert missing.value.code == 404
        missing.value.close()
    finally:
        stop_server(server)
    assert db_scalar(config_path, "SELECT COUNT(*) FROM hits") == 4


def test_workers_report_their_counters(config_path: Path) -> None:
    config_path.write_text(config_path.read_text() + '\n[metrics]\nlisten = "127.0.0.1:0"\n')
    server = start_server(config_path, "--workers", "2")
    try:
        address = server.info["metrics"]
        assert isinstance(address, dict)

        # The child reports once it has bound the port and started, at the first's position
        # (the zones' settings rows: rbl.server.settingsmarks).
        def child_reports() -> bool:
            samples = scrape(address)
            child = value(samples, "rbl_change_log_position", worker="1")
            return child is not None and child == value(
                samples, "rbl_change_log_position", worker="0"
            )

        wait_for(child_reports)
        assert value(scrape(address), "rbl_zone_settings_agree", worker="1", zone="bl.example.org")
        for _ in range(200):  # fresh source ports spread these over both processes
            ask(server, "9.9.9.45.bl.example.org")

        def both_counted() -> bool:
            samples = scrape(address)
            per_worker = [
                value(samples, "rbl_dns_queries_total", worker=w, transport="udp") or 0
                for w in ("0", "1")
            ]
            return sum(per_worker) == 200 and all(per_worker)

        wait_for(both_counted)
        samples = scrape(address)
        assert value(samples, "rbl_index_entries", worker="1", zone="bl.example.org") == 4
    finally:
        stop_server(server)


def test_store_figures_are_cached_and_an_unreadable_store_reads_as_down(tmp_path: Path) -> None:
    """In-process, on a task.Clock: one store query per STORE_REFRESH, and a failing
    query turns into rbl_database_up 0 while the DNS figures keep coming."""
    import sqlite3

    from twisted.internet import defer, task

    from rbl.config import load_settings
    from rbl.metrics.service import STORE_REFRESH, MetricsCollector
    from rbl.server.service import make_service
    from rbl.store.reader import ListingReader
    from tests.support.config import write_config

    config = write_config(tmp_path)
    rbl_command(config, "list", "add", "45.1.1.1", "--reason", "metrics")
    settings = load_settings(config)
    clock = task.Clock()
    server = make_service(settings, clock, dns_only=True)
    reader = ListingReader(settings.database.url)
    calls: list[str] = []

    def run(function: Callable[..., object], *args: object) -> defer.Deferred[object]:
        calls.append(getattr(function, "__name__", "?"))
        return defer.maybeDeferred(function, *args)

    collector = MetricsCollector(server, reader, run, clock)

    def scraped() -> Samples:
        result: list[bytes] = []
        collector.collect().addCallback(result.append)
        assert result, "collect() did not finish synchronously with a synchronous runner"
        return parse(result[0].decode())

    first = scraped()
    assert value(first, "rbl_database_up") == 1
    assert value(first, "rbl_listings", zone="bl.example.org", state="active") == 1
    scraped()
    assert calls == ["store_stats"]  # cached
    store = sqlite3.connect(tmp_path / "rbl.sqlite")
    store.execute("ALTER TABLE hits RENAME TO hits_away")
    store.commit()
    clock.advance(STORE_REFRESH + 1)
    down = scraped()
    assert value(down, "rbl_database_up") == 0
    assert value(down, "rbl_listings", zone="bl.example.org", state="active") is None
    assert value(down, "rbl_index_entries", worker="0", zone="bl.example.org") == 5
    store.execute("ALTER TABLE hits_away RENAME TO hits")
    store.commit()
    clock.advance(STORE_REFRESH + 1)
    assert value(scraped(), "rbl_database_up") == 1
    assert calls == ["store_stats"] * 3
    reader.close()
    store.close()
