"""``rbl serve``: the DNS server, the writers and the site, as one Twisted process."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import click

from rbl.cli.base import Context, pass_context
from rbl.cli.options import bounded_option
from rbl.cli.output import log_observer


@click.command()
@click.option("--listen", multiple=True, help="address:port to bind, overriding [dns] listen.")
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the bound ports as JSON here once serving.",
)
@click.option("--user", default=None, help="Drop root privileges to this user after binding.")
@click.option(
    "--dns-only",
    is_flag=True,
    help="Only answer DNS: no expiry sweep, no live feeds (extra DNS nodes).",
)
@bounded_option(
    "--workers",
    type=click.IntRange(1, 256),
    default=1,
    help="DNS processes sharing the ports (SO_REUSEPORT); extra ones are DNS-only.",
)
@click.option("--reuse-port", is_flag=True, hidden=True, help="Bind with SO_REUSEPORT.")
@click.option("--report-fd", type=int, default=None, hidden=True, help="Counters pipe (workers).")
@click.option(
    "--control-fd", type=int, default=None, hidden=True, help="Poll-request pipe (workers)."
)
@click.option("--processes", type=int, default=None, hidden=True, help="Processes on the ports.")
@pass_context
def serve(
    obj: Context,
    listen: tuple[str, ...],
    ready_file: Path | None,
    user: str | None,
    dns_only: bool,
    workers: int,
    reuse_port: bool,
    report_fd: int | None,
    control_fd: int | None,
    processes: int | None,
) -> None:
    """Serve the zones over DNS (UDP and TCP) and follow the change log."""
    from dataclasses import replace

    from twisted.internet import reactor as _reactor
    from twisted.logger import globalLogBeginner

    from rbl.config import Settings, load_settings, parse_endpoint
    from rbl.server.process import drop_privileges, log, write_ready_file
    from rbl.server.service import Server, make_service

    if reuse_port:
        _die_with_parent()
    if ready_file is not None:
        ready_file.unlink(missing_ok=True)  # a stale file must not say "ready"
    settings = obj.settings
    if listen:
        endpoints = tuple(parse_endpoint(item, "--listen") for item in listen)
        settings = replace(settings, dns=replace(settings.dns, listen=endpoints))
    globalLogBeginner.beginLoggingTo([log_observer(sys.stderr)], redirectStandardIO=False)
    reactor: Any = _reactor  # typed as a module; make_service takes the reactor untyped
    server: Server = make_service(
        settings,
        reactor,
        dns_only=dns_only,
        reuse_port=reuse_port or workers > 1,
        reuse_port_child=reuse_port,  # workers leave NOTIFY to the first process
        report_fd=report_fd,
        control_fd=control_fd,
        processes=processes or workers,
    )
    log.info(
        "loaded {count} listings in {seconds:.2f}s (change log at {position})",
        count=server.load.listings,
        seconds=server.load.seconds,
        position=server.load.position,
    )
    service = server.service
    service.privilegedStartService()
    if workers > 1:
        # Children bind the very ports just bound, before anyone drops privileges.
        from rbl.metrics.report import REPORT_FD
        from rbl.server.workers import CONTROL_FD, WorkerSupervisor

        child = ["-m", "rbl", "-c", obj.config_path, "--actor", obj.actor]
        # Never on the command line, which every local user can read (ps, /proc/*/cmdline):
        # a database URL carries the PostgreSQL password. The environment is the user's own.
        secrets = {"RBL_DATABASE_URL": obj.database_url} if obj.database_url else {}
        child += ["serve", "--dns-only", "--reuse-port", "--report-fd", str(REPORT_FD)]
        child += ["--control-fd", str(CONTROL_FD)]
        child += ["--processes", str(workers)]
        for host, port in server.dns.bound:
            child += ["--listen", f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
        if user:
            child += ["--user", user]
        supervisor = WorkerSupervisor(
            child, workers, reactor, env=secrets, visibility=server.visibility
        )
        supervisor.setServiceParent(service)
        supervisor.privilegedStartService()
        server.supervisor = supervisor
    if user:
        drop_privileges(user)
    for host, port in server.dns.bound:
        log.info("answering DNS on {host} port {port} (UDP and TCP)", host=host, port=port)

    def started() -> None:
        service.startService()
        if ready_file is not None:
            write_ready_file(ready_file, server)

    def load_again() -> Settings:
        fresh = load_settings(obj.config_path, obj.database_url)
        if listen:  # the command line still wins over the file
            fresh = replace(fresh, dns=replace(fresh.dns, listen=settings.dns.listen))
        return fresh

    def reload() -> None:
        from rbl.server.reload import reload_from_file

        reload_from_file(server, load_again, obj.config_path)
        if server.supervisor is not None:
            server.supervisor.reload()  # each worker reloads the same file itself

    # Twisted handles SIGINT and SIGTERM (graceful stop: services stop in reverse,
    # in-flight work is finished first); SIGHUP reloads. The handler only queues
    # the reload for the reactor thread, as Twisted's own handlers do.
    signal.signal(signal.SIGHUP, lambda _number, _frame: reactor.callFromThread(reload))
    reactor.callWhenRunning(started)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()


def _die_with_parent() -> None:
    """A worker ends when its supervisor does, even if that is killed with SIGKILL (Linux)."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the supervisor's stopService still ends the workers
