"""``rbl doctor``'s checks of the secondaries: is each one serving each zone at rbl's serial?

Every ``[transfer] notify`` target and every ``[transfer] check`` endpoint (a
secondary rbl does not notify: an anycast node behind a distribution tier) is
asked each zone's SOA over UDP. Behind is not yet stale: a secondary learns of a
change by NOTIFY within seconds, or at its next SOA refresh. So a secondary at
serial S fails once the first change after S was written (the change log keeps
the time of every row) more than ``[transfer] stale_after`` ago, by default the
zone's SOA refresh plus retry: one missed refresh is tolerated, two are not.
No answer fails too, and so does a serial ahead of rbl's (it follows another
primary, or another database).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rbl.config import Settings
from rbl.config.secondaries import notify_targets
from rbl.config.values import describe
from rbl.config.zones import ZoneSettings

if TYPE_CHECKING:
    from rbl.store.database import Engine

MAX_TIMEOUT = 2.0  # seconds per SOA query: a secondary that slow is failing anyway


def secondaries(settings: Settings) -> list[tuple[str, int]]:
    """The NOTIFY targets, then the ``check`` endpoints, each once."""
    return list(dict.fromkeys((*notify_targets(settings.transfer), *settings.transfer.check)))


def secondary_checks(
    settings: Settings, engine: Callable[[], Engine], timeout: float
) -> Iterator[tuple[str, Callable[[], str]]]:
    """(what, check) for each secondary and zone; a check raises with what is wrong."""
    from rbl.dnsserver.notify import describe_target

    for target in secondaries(settings):
        for zone in settings.zones:
            what = f"secondary {describe_target(target)} {zone.name}"
            yield what, _checker(settings, engine, target, zone, min(timeout, MAX_TIMEOUT))


def _checker(
    settings: Settings,
    engine: Callable[[], Engine],
    target: tuple[str, int],
    zone: ZoneSettings,
    timeout: float,
) -> Callable[[], str]:
    return lambda: check_secondary(settings, engine(), target, zone, timeout)


def stale_after(settings: Settings, zone: ZoneSettings) -> float:
    if settings.transfer.stale_after is not None:
        return settings.transfer.stale_after
    return float(zone.soa.refresh + zone.soa.retry)


def check_secondary(
    settings: Settings,
    engine: Engine,
    target: tuple[str, int],
    zone: ZoneSettings,
    timeout: float,
    now: datetime | None = None,
) -> str:
    from rbl.store.changelog import behind

    theirs = ask_serial(target, zone.name, timeout)
    with engine.connect() as conn:
        lag = behind(conn, zone.name, theirs)
    ours = lag.position % (1 << 32) or 1
    if theirs == ours:
        return f"serial {theirs}, current"
    if lag.since is None:
        raise ValueError(
            f"serves serial {theirs}, ahead of rbl's {ours}: does it follow another primary?"
        )
    limit = stale_after(settings, zone)
    age = max(0.0, ((now or datetime.now(UTC)) - lag.since).total_seconds())
    behind_by = f"serves serial {theirs}, rbl's is {ours} ({lag.changes} change(s) behind"
    if lag.pruned:
        raise ValueError(f"{behind_by}, since before the change log was pruned)")
    if age > limit:
        raise ValueError(f"{behind_by} for {_age(age)}, longer than stale_after {describe(limit)})")
    return f"{behind_by} for {_age(age)}, within stale_after {describe(limit)})"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def ask_serial(target: tuple[str, int], zone: str, timeout: float) -> int:
    """The serial of ``zone``'s SOA as the secondary answers it over UDP."""
    import dns.exception
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    host, port = target
    try:
        reply = dns.query.udp(dns.message.make_query(zone, "SOA"), host, port=port, timeout=timeout)
    except dns.exception.Timeout:
        raise ValueError(f"no answer in {timeout:g}s: unreachable") from None
    except OSError as exc:
        raise ValueError(f"unreachable: {exc.strerror or exc}") from None
    for rrset in reply.answer:
        if rrset.rdtype == dns.rdatatype.SOA:
            return int(rrset[0].serial)
    raise ValueError(
        f"answered {dns.rcode.to_text(reply.rcode())} without the zone's SOA "
        "(does it serve this zone?)"
    )
