"""``rbl doctor``: check the configuration, the database and a running server.

Each check prints OK or FAIL with what was found; the exit status is 1 when
any check fails, so monitoring can run it. The RFC 5782 test points are what
every DNSBL client may rely on, so they are asked of the running server.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from rbl.cli.base import Context, pass_context
from rbl.cli.options import Seconds, bounded_option
from rbl.cli.output import echo
from rbl.config import Settings
from rbl.model.codes import DEFAULT_CODE
from rbl.model.keys import ZoneKind


class _Report:
    def __init__(self) -> None:
        self.failed = 0

    def check(self, what: str, run: Callable[[], str]) -> None:
        try:
            detail = run()
        except Exception as exc:  # a check that cannot run has failed
            self.failed += 1
            echo(f"FAIL  {what}: {exc}")
            return
        echo(f"OK    {what}: {detail}")


@click.command()
@click.option(
    "--server",
    default=None,
    help="address:port of the running DNS server (default: the first [dns] listen).",
)
@bounded_option("--timeout", type=Seconds(0.01, 60), default=2.0, help="Seconds per DNS query.")
@pass_context
def doctor(obj: Context, server: str | None, timeout: float) -> None:
    """Check configuration, database, ports and the RFC 5782 test points of a running server.

    The DNS server is asked over UDP (test points) and TCP (the SOA); the
    site, the policy feed and /metrics, where configured, are asked too; and
    each secondary ([transfer] notify and check) for each zone's serial,
    failing one behind for longer than [transfer] stale_after.
    """
    from rbl.config import parse_endpoint

    if server is not None:
        _check_server(server)
    report = _Report()
    report.check(
        "configuration", lambda: f"{obj.settings.source}: {len(obj.settings.zones)} zone(s)"
    )
    report.check("database", lambda: _database(obj))
    report.check("database file", lambda: _database_file(obj.settings.database.url))
    if obj.settings.policy_feed.listen is not None:
        report.check("policy feed clients", lambda: _policy_clients(obj.settings))
    host, port = _reachable(
        parse_endpoint(server, "--server") if server else obj.settings.dns.listen[0]
    )
    for zone in obj.settings.zones:
        for name, rdtype, expected in _test_points(zone.name, zone.kind):
            report.check(
                f"{name} {rdtype} at {host}:{port}",
                _asker(host, port, name, rdtype, expected, timeout),
            )
    apex = obj.settings.zones[0].name
    report.check(
        f"{apex} SOA over TCP at {host}:{port}", lambda: _ask_tcp(host, port, apex, timeout)
    )
    from rbl.cli.doctor_secondaries import secondary_checks

    for what, run in secondary_checks(obj.settings, obj.engine, timeout):
        report.check(what, run)
    for what, endpoint, probe in _listeners(obj.settings):
        probe_host, probe_port = _reachable(endpoint)
        if probe_port == 0:
            echo(f"SKIP  {what}: port 0 in the configuration is chosen at start")
            continue
        report.check(
            f"{what} at {probe_host}:{probe_port}",
            _prober(probe, probe_host, probe_port, timeout),
        )
    if report.failed:
        echo(f"{report.failed} check(s) failed")
        sys.exit(1)
    echo("all checks passed")


Probe = Callable[[str, int, float], str]


def _reachable(endpoint: tuple[str, int]) -> tuple[str, int]:
    """Where to reach a listener: a wildcard address is asked on loopback."""
    host, port = endpoint
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return host, port


def _listeners(settings: Settings) -> list[tuple[str, tuple[str, int], Probe]]:
    found: list[tuple[str, tuple[str, int], Probe]] = []
    if settings.web.listen is not None:
        found.append(("lookup site", settings.web.listen, _probe_web))
    if settings.policy_feed.listen is not None:
        found.append(("policy feed", settings.policy_feed.listen, _probe_policy))
    if settings.metrics.listen is not None:
        found.append(("metrics", settings.metrics.listen, _probe_metrics))
    return found


def _prober(probe: Probe, host: str, port: int, timeout: float) -> Callable[[], str]:
    return lambda: probe(host, port, timeout)


def _http_get(host: str, port: int, path: str, timeout: float) -> tuple[int, bytes]:
    import http.client

    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _probe_web(host: str, port: int, timeout: float) -> str:
    status, _ = _http_get(host, port, "/", timeout)
    if status != 200:
        raise ValueError(f"GET / answered {status}")
    return "GET / answered 200"


def _probe_metrics(host: str, port: int, timeout: float) -> str:
    status, body = _http_get(host, port, "/metrics", timeout)
    if status != 200 or b"rbl_build_info" not in body:
        raise ValueError(f"GET /metrics answered {status} without rbl_build_info")
    up = b"\nrbl_database_up 1" in body
    return "GET /metrics answered 200" + ("" if up else " (but rbl_database_up is not 1)")


def _probe_policy(host: str, port: int, timeout: float) -> str:
    """A CONNECT-stage request: answered DUNNO at once, never recorded as a hit."""
    import socket

    request = b"request=smtpd_access_policy\nprotocol_state=CONNECT\nclient_address=192.0.2.1\n\n"
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(request)
        answer = b""
        while not answer.endswith(b"\n\n"):
            chunk = conn.recv(512)
            if not chunk:
                raise ValueError(f"closed the connection after {answer!r}")
            answer += chunk
    if not answer.startswith(b"action="):
        raise ValueError(f"answered {answer!r}")
    return f"answered {answer.strip().decode('ascii', 'replace')}"


def _ask_tcp(host: str, port: int, zone: str, timeout: float) -> str:
    import dns.message
    import dns.query
    import dns.rcode

    reply = dns.query.tcp(dns.message.make_query(zone, "SOA"), host, port=port, timeout=timeout)
    if reply.rcode() != dns.rcode.NOERROR or not reply.answer:
        raise ValueError(f"no SOA over TCP ({dns.rcode.to_text(reply.rcode())})")
    return f"serial {reply.answer[0][0].serial}"


def _check_server(text: str) -> None:
    """--server must be an IP address (with a port), since that is what is queried."""
    import ipaddress

    from rbl.config import parse_endpoint
    from rbl.errors import ConfigError

    try:
        host, _port = parse_endpoint(text, "--server")
        ipaddress.ip_address(host)
    except (ConfigError, ValueError):
        raise click.BadParameter(
            f"{text[:60]!r} is not an IP address with an optional port (127.0.0.1:53, [::1]:5353)",
            param_hint="--server",
        ) from None


def _database_file(url: str) -> str:
    """The SQLite file holds the trap list, raw lines and requesters' emails."""
    import stat

    from rbl.store.database import sqlite_path

    path = sqlite_path(url)
    if path is None:
        return "not a local file (the database server controls who reads it)"
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if not candidate.exists():
            continue
        mode = stat.S_IMODE(candidate.stat().st_mode)
        if mode & 0o027:
            raise ValueError(
                f"{candidate} has mode {mode:04o}: other users can read it (traps, raw lines, "
                f"emails); run chmod 0600 {path} (its -wal and -shm follow it)"
            )
    return f"{path} is not readable by other users"


def _policy_clients(settings: Settings) -> str:
    """Whoever may connect to the policy feed can have any address listed."""
    import ipaddress

    feed = settings.policy_feed
    networks = [ipaddress.ip_network(network, strict=False) for network in feed.allow]
    if any(network.prefixlen == 0 for network in networks):
        raise ValueError(
            f"[feeds.policy] allow = {list(feed.allow)} lets anyone connect, and anyone "
            "who connects can have any address listed: name your Postfix hosts"
        )
    if all(network.is_loopback for network in networks):
        return "loopback only"
    return f"served to {', '.join(feed.allow)} only"


def _database(obj: Context) -> str:
    from rbl.store.database import current_revision
    from rbl.store.queries import count_listings
    from rbl.store.schema import ACTIVE

    engine = obj.engine()
    revision = current_revision(engine)
    with engine.connect() as conn:
        active = count_listings(conn, ACTIVE)
    return f"schema revision {revision}, {active} active listing(s)"


def _test_points(zone: str, kind: ZoneKind) -> list[tuple[str, str, str]]:
    """(name, type, expected): "127.0.0.2" for an A answer, "NXDOMAIN", or "SOA"."""
    points = [(zone, "SOA", "SOA")]
    if kind is ZoneKind.IP:
        v6_listed = ".".join(reversed("00000000000000000000ffff7f000002"))
        v6_unlisted = ".".join(reversed("00000000000000000000ffff7f000001"))
        points += [
            (f"2.0.0.127.{zone}", "A", DEFAULT_CODE),
            (f"1.0.0.127.{zone}", "A", "NXDOMAIN"),
            (f"{v6_listed}.{zone}", "A", DEFAULT_CODE),
            (f"{v6_unlisted}.{zone}", "A", "NXDOMAIN"),
        ]
    else:
        points += [(f"test.{zone}", "A", DEFAULT_CODE), (f"invalid.{zone}", "A", "NXDOMAIN")]
    return points


def _asker(
    host: str, port: int, name: str, rdtype: str, expected: str, timeout: float
) -> Callable[[], str]:
    return lambda: _ask(host, port, name, rdtype, expected, timeout)


def _ask(host: str, port: int, name: str, rdtype: str, expected: str, timeout: float) -> str:
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode

    reply = dns.query.udp(dns.message.make_query(name, rdtype), host, port=port, timeout=timeout)
    rcode = dns.rcode.to_text(reply.rcode())
    if not reply.flags & dns.flags.AA:
        raise ValueError(f"answer is not authoritative ({rcode})")
    if expected == "NXDOMAIN":
        if reply.rcode() != dns.rcode.NXDOMAIN:
            raise ValueError(f"expected NXDOMAIN, got {rcode}")
        return "NXDOMAIN"
    found = [rr.to_text() for rrset in reply.answer for rr in rrset]
    if expected == "SOA":
        if not found:
            raise ValueError(f"no SOA ({rcode})")
        return f"serial {found[0].split()[2]}"
    if expected not in found:
        raise ValueError(f"expected {expected}, got {rcode} {found}")
    return expected
