# mypy: allow-untyped-calls
"""The public site's resources: lookup, status and evidence, removal requests.

``make_site`` returns a ``twisted.web.server.Site`` whose one leaf resource
routes by path. Every database call goes through ``run`` (the database
thread pool), each in its own transaction; the reactor thread only parses,
checks and renders. The pages read the store only through
``rbl.store.public`` and ``rbl.store.requests``, which never select the trap
address, and ``rbl.store.traps.trap_filter``: every page is run through the
trap filter (``rbl.policy.trapfilter``, refreshed every ``FILTER_REFRESH`` seconds)
before it is sent, less whatever traps the visitor's own request named
(echoing those back tells nothing; redacting them would). A database
failure, or a trap list that cannot be read, is a 503 "try again later",
never a false "not listed" or an unfiltered page. Imports no DNS server or
index module.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import jinja2
from sqlalchemy import Engine
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.resource import Resource

from rbl.config import Settings, ZoneSettings
from rbl.errors import KeyFormatError, NotListedError
from rbl.model.keys import IpKey, ListingKey, ZoneKind, parse_key
from rbl.policy.trapfilter import NO_TRAPS, TrapFilter
from rbl.store.public import (
    HELO_ADDRESS,
    HELO_NOT_FCRDNS,
    HELO_NOT_FQDN,
    NO_FCRDNS,
    NO_HELO,
    PublicStatus,
    public_status,
)
from rbl.store.requests import (
    MAX_MESSAGE,
    RemovalRequest,
    RequestError,
    RequestLimitError,
    RequestLimits,
    get_request,
    open_request,
    self_service_review_reason,
)
from rbl.store.traps import trap_filter
from rbl.web.limits import MAX_BODY, LimitedRequest, LimitedSite, client_network

log = Logger(namespace="rbl.web")

HERE = Path(__file__).parent
MAX_QUERY = 300  # characters of a lookup; a domain is at most 253
MAX_EMAIL = 320
MAX_ZONE = 253
MAX_TOKEN = 100  # a form token is "issue time.nonce.MAC", about 70 characters
MAX_DB_JOBS = 50  # database jobs the site may have queued or running at once
BUSY_RETRY = 5  # Retry-After (seconds) when they are all taken
TOKEN_LIFETIME = 3600.0  # seconds a removal form stays valid
TOKEN_SKEW = 60.0  # a form "from the future" by this much is still accepted
RATE_WINDOW = 3600.0
MAX_SPENT_TOKENS = 100_000  # form tokens remembered as used (each for at most an hour)
TOO_MANY_REQUESTS = 429  # not in twisted.web.http
MAX_TRACKED_CLIENTS = 100_000
CHART_DAYS = 90
FILTER_REFRESH = 10.0  # seconds a read of the trap list is used for; a new trap is filtered after

SECURITY_HEADERS = {
    b"content-security-policy": (
        b"default-src 'none'; style-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'"
    ),
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
    b"server": b"rbl",
}

_REQUEST_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
_NONCE = re.compile(r"[0-9a-f]{16}")

Run = Callable[..., Deferred[Any]]


# -- client address, CSRF tokens, rate limit ----------------------------------------------


def client_address(request: server.Request, trusted: Sequence[str]) -> str:
    """The transport peer; behind a trusted proxy, the nearest untrusted X-Forwarded-For hop.

    The hops are read right to left, skipping trusted proxies, so a client
    cannot choose its address by sending its own X-Forwarded-For: with one
    trusted proxy this is the left-most entry the proxy added.
    """
    peer = request.getClientAddress()
    host = str(getattr(peer, "host", "") or "unknown")
    if not trusted or not _in_networks(host, trusted):
        return host
    forwarded = b",".join(request.requestHeaders.getRawHeaders(b"x-forwarded-for", []))
    hops = [h.strip() for h in forwarded.decode("latin-1").split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            return host  # a malformed hop: trust nothing before it
        if not _in_networks(address, trusted):
            return address
    return str(ipaddress.ip_address(hops[0])) if hops else host


def _in_networks(host: str, networks: Iterable[str]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in networks)


class FormTokens:
    """CSRF tokens: an HMAC of (issue time, nonce, client address) with a process secret.

    Checking needs no state; the nonce makes every form's token distinct, so
    the tokens already used (``spend``) can be refused when replayed.
    """

    def __init__(self, secret: bytes, clock: IReactorTime) -> None:
        self.secret = secret
        self.clock = clock
        self._spent: dict[str, int] = {}  # token -> issue time, in the order they were used

    def _mac(self, issued: int, nonce: str, client: str) -> str:
        message = f"{issued}|{nonce}|{client}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()[:40]

    def issue(self, client: str) -> str:
        issued = int(self.clock.seconds())
        nonce = secrets.token_hex(8)
        return f"{issued}.{nonce}.{self._mac(issued, nonce, client)}"

    def check(self, token: str, client: str) -> bool:
        issued_text, _, rest = token.partition(".")
        nonce, _, mac = rest.partition(".")
        if not issued_text.isdigit() or len(issued_text) > 12 or not _NONCE.fullmatch(nonce):
            return False
        issued = int(issued_text)
        now = self.clock.seconds()
        if not now - TOKEN_LIFETIME <= issued <= now + TOKEN_SKEW:
            return False
        return hmac.compare_digest(mac, self._mac(issued, nonce, client))

    def spent(self, token: str) -> bool:
        """Whether ``token`` already sent a request (a replayed form)."""
        return token in self._spent

    def spend(self, token: str) -> None:
        """Remember ``token`` as used until it would have expired anyway.

        Memory is bounded: past ``MAX_SPENT_TOKENS`` the expired ones go, and if
        that is not enough the oldest (whose replay the rate limit still caps).
        """
        issued = int(token.partition(".")[0])
        if len(self._spent) >= MAX_SPENT_TOKENS:
            cutoff = self.clock.seconds() - TOKEN_LIFETIME
            self._spent = {t: i for t, i in self._spent.items() if i >= cutoff}
            while len(self._spent) >= MAX_SPENT_TOKENS:
                del self._spent[next(iter(self._spent))]
        self._spent[token] = issued


class RateLimiter:
    """At most ``limit`` events per client (network) in a sliding window, in memory."""

    def __init__(self, limit: int, clock: IReactorTime, window: float = RATE_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._events: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        now = self.clock.seconds()
        events = self._events.get(client)
        if events is None:
            if len(self._events) >= MAX_TRACKED_CLIENTS:
                self._sweep(now)
            events = self._events[client] = deque()
        while events and events[0] <= now - self.window:
            events.popleft()
        return events

    def _sweep(self, now: float) -> None:
        for client in [c for c, e in self._events.items() if not e or e[-1] <= now - self.window]:
            del self._events[client]

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may act again, or None when it may act now."""
        events = self._recent(client)
        if len(events) < self.limit:
            return None
        return max(1.0, events[0] + self.window - self.clock.seconds())

    def record(self, client: str) -> None:
        self._recent(client).append(self.clock.seconds())


# -- what the pages show ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bar:
    x: int
    y: int
    height: int
    day: date
    count: int


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bar_width: int
    bars: list[Bar]
    total: int
    busiest: tuple[date, int] | None
    first_day: date | None
    last_day: date | None


def hits_chart(daily: Sequence[tuple[date, int]], height: int = 80, bar_width: int = 6) -> Chart:
    """Bar geometry for the inline SVG chart, computed here so the template stays dumb."""
    peak = max((count for _, count in daily), default=0)
    bars = []
    for i, (day, count) in enumerate(daily):
        bar_height = 0 if peak == 0 else max(1 if count else 0, round(count / peak * height))
        bars.append(Bar(i * bar_width, height - bar_height, bar_height, day, count))
    busiest = max(daily, key=lambda item: (item[1], item[0])) if peak else None
    return Chart(
        width=len(daily) * bar_width,
        height=height,
        bar_width=bar_width,
        bars=bars,
        total=sum(count for _, count in daily),
        busiest=busiest,
        first_day=daily[0][0] if daily else None,
        last_day=daily[-1][0] if daily else None,
    )


def utc(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def evidence_time(moment: datetime | None, resolution: str = "day") -> str:
    """A time derived from the evidence, no finer than ``[public] time_resolution``.

    Minutes would let a sender that mails each candidate recipient at its own
    minute read off which ones were traps (from first/last seen, or an
    expiry that is a hit's time plus the listing period).
    """
    if moment is None:
        return ""
    at = moment.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H:00 UTC") if resolution == "hour" else at.strftime("%Y-%m-%d")


# What each setup problem means, as the page says it; the counts go in front.
CHECK_TEXT = {
    NO_HELO: "gave no HELO name at all",
    HELO_ADDRESS: "gave an IP address (or an address literal in brackets) as HELO, not a host name",
    HELO_NOT_FQDN: "gave a HELO that is not a fully qualified host name",
    NO_FCRDNS: (
        "came from an address without a forward-confirmed host name "
        "(a PTR record whose name resolves back to the address)"
    ),
    HELO_NOT_FCRDNS: "gave a HELO that is not the host name the address's PTR record confirms",
}


def check_lines(status: PublicStatus) -> list[str]:
    """The setup checks as sentences: counts only, never the HELO a sender wrote."""
    lines = []
    for check in status.checks:
        noun = "connection" if status.checked == 1 else "connections"
        lines.append(f"{check.connections} of {status.checked} {noun} {CHECK_TEXT[check.problem]}.")
    return lines


def visitor_texts(request: server.Request) -> list[str]:
    """Everything the visitor sent that a page may echo: the path and every field."""
    texts = [unquote(bytes(request.uri or b"").decode("utf-8", "replace"))]
    for values in (request.args or {}).values():
        texts += [bytes(value).decode("utf-8", "replace") for value in values]
    return texts


class Page(Exception):
    """A finished page to send instead of the normal one (an error, a redirect)."""

    def __init__(
        self,
        code: int,
        template: str = "error.html",
        headers: dict[bytes, bytes] | None = None,
        /,
        **context: Any,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.template = template
        self.headers = headers or {}
        self.context = context


def _redirect(location: str, status: int = http.SEE_OTHER) -> Page:
    return Page(status, "", {b"location": location.encode("ascii")})


def _key_path(key: str) -> str:
    return quote(key, safe=":*/")


# -- the site -----------------------------------------------------------------------------


class PublicSite(Resource):
    """One leaf resource that routes every path itself."""

    isLeaf = True

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        run: Run,
        clock: IReactorTime,
        secret: bytes,
        *,
        max_db_jobs: int = MAX_DB_JOBS,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.engine = engine
        self.run = run
        self.clock = clock
        self.max_db_jobs = max_db_jobs
        self.db_jobs = 0  # queued or running in the database thread pool
        self.in_flight = 0  # requests being answered, for a graceful stop
        self.tokens = FormTokens(secret, clock)
        self.limiter = RateLimiter(settings.web.requests_per_hour, clock)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["utc"] = utc
        self.trap_filter: TrapFilter = NO_TRAPS
        self.filter_read_at: float | None = None  # clock time of the last trap list read
        self.templates.filters["keypath"] = _key_path
        self.stylesheet = (HERE / "static" / "site.css").read_bytes()
        self.reconfigure(settings)
        try:
            self.trap_filter, self.filter_read_at = self._read_trap_filter(), clock.seconds()
        except Exception:  # the store may be down at start: the first page reads it, or 503s
            log.failure("cannot read the trap list; pages wait for it")

    def reconfigure(self, settings: Settings) -> None:
        """Take [web] and [delisting] from a reload (rbl.server.reload); the next request sees them.

        The listener and its limits (listen, max_connections,
        max_connections_per_client, request_timeout) are fixed when the port
        is opened.
        """
        self.settings = settings
        self.limiter.limit = settings.web.requests_per_hour
        self.request_limits = RequestLimits.from_settings(settings.delisting)
        self.self_service_period = (
            timedelta(seconds=settings.delisting.self_service_period)
            if settings.delisting.self_service
            else None
        )
        self.templates.globals.update(title=settings.web.title, contact=settings.web.contact)
        resolution = settings.public.time_resolution
        self.templates.filters["evidence_time"] = lambda moment: evidence_time(moment, resolution)

    # -- plumbing

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), UTC)

    def database(self, function: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """``run`` with at most ``max_db_jobs`` in flight: past that, 503 with Retry-After.

        A flood of lookups must not queue unbounded work in the thread pool, and
        must never be answered with a guess such as "not listed".
        """
        if self.db_jobs >= self.max_db_jobs:
            raise Page(
                http.SERVICE_UNAVAILABLE,
                "error.html",
                {b"retry-after": str(BUSY_RETRY).encode("ascii")},
                heading="Busy",
                message=(
                    "Too many lookups are waiting for the list right now. "
                    f"Please try again in {BUSY_RETRY} seconds."
                ),
            )
        self.db_jobs += 1
        read_at = self.filter_read_at
        stale = read_at is None or self.clock.seconds() - read_at >= FILTER_REFRESH

        def job(*job_args: Any) -> tuple[TrapFilter | None, Any]:
            return (self._read_trap_filter() if stale else None), function(*job_args)

        def done(result: Any) -> Any:
            self.db_jobs -= 1
            return result

        def unpack(pair: tuple[TrapFilter | None, Any]) -> Any:
            found, result = pair
            if found is not None:
                self.trap_filter, self.filter_read_at = found, self.clock.seconds()
            return result

        d = self.run(job, *args)
        d.addBoth(done)
        d.addCallback(unpack)
        return d

    def render(self, request: server.Request) -> bytes | int:
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        request.setHeader(b"cache-control", b"no-store")
        finished: list[bool] = []
        self.in_flight += 1

        def ended(_: object) -> None:
            finished.append(True)
            self.in_flight -= 1

        request.notifyFinish().addBoth(ended)
        try:
            result = self.filtered_route(request)
        except Page as page:
            self.send(request, page, finished)
        except Exception:
            log.failure("page failed")
            self.send(request, Page(http.INTERNAL_SERVER_ERROR, **_oops()), finished)
        else:
            result.addErrback(self._deferred_failure)
            result.addBoth(lambda page: self.send(request, page, finished))
        return server.NOT_DONE_YET

    def filtered_route(self, request: server.Request) -> Deferred[Page]:
        """``route``; first a read of the trap list if there has been none yet.

        Later reads ride along with the page's own database job when the last
        one is older than FILTER_REFRESH (``database``).
        """
        if self.filter_read_at is not None:
            return self.route(request)
        return self.database(_nothing).addCallback(lambda _: self.route(request))

    def _read_trap_filter(self) -> TrapFilter:
        """The trap list as a filter; blocking (the database pool, or before the reactor runs)."""
        with self.engine.begin() as conn:
            return trap_filter(conn)

    def _deferred_failure(self, failure: Failure) -> Page:
        if failure.check(Page):
            page = failure.value
            assert isinstance(page, Page)
            return page
        log.failure("page failed", failure=failure)
        return Page(http.SERVICE_UNAVAILABLE, **_oops())

    def send(self, request: server.Request, page: Page, finished: list[bool]) -> None:
        if finished:
            return  # the client went away
        request.setResponseCode(page.code)
        for name, value in page.headers.items():
            request.setHeader(name, value)
        if isinstance(page, _Static):
            request.setHeader(b"content-type", b"text/css; charset=utf-8")
            request.setHeader(b"cache-control", b"public, max-age=3600")
            request.setHeader(b"content-length", str(len(page.data)).encode("ascii"))
            request.write(page.data)
            request.finish()
            return
        if page.template:
            body = self.templates.get_template(page.template).render(**page.context)
            body = self.trap_filter.without(visitor_texts(request)).redact(body)
            data = body.encode("utf-8")
            content_type = page.headers.get(b"content-type", b"text/html; charset=utf-8")
        else:
            data = b""
            content_type = b"text/plain; charset=utf-8"
        request.setHeader(b"content-type", content_type)
        request.setHeader(b"content-length", str(len(data)).encode("ascii"))
        if data:
            request.write(data)
        request.finish()

    def route(self, request: server.Request) -> Deferred[Page]:
        method = request.method
        try:
            parts = [p.decode("utf-8") for p in request.postpath or []]
        except UnicodeDecodeError:
            raise Page(
                http.BAD_REQUEST, heading="Bad request", message="The address is not valid UTF-8."
            ) from None
        while len(parts) > 1 and parts[-1] == "":
            parts.pop()  # a trailing slash
        head, rest = (parts[0], parts[1:]) if parts else ("", [])
        routes: dict[str, tuple[str, ...]] = {
            "": ("GET",),
            "lookup": ("GET",),
            "remove": ("GET", "POST"),
            "request": ("GET",),
            "static": ("GET",),
        }
        allowed = routes.get(head)
        if (
            allowed is None
            or (head in ("", "static") and len(rest) > 1)
            or (head in ("remove", "request") and not rest)
        ):
            raise Page(http.NOT_FOUND, **_not_found())
        verb = method.decode("ascii", "replace")
        if verb == "HEAD" and "GET" in allowed:
            verb = "GET"
        if verb not in allowed:
            listed = ("GET", "HEAD", *allowed[1:]) if allowed[0] == "GET" else allowed
            raise Page(
                http.NOT_ALLOWED,
                "error.html",
                {b"allow": ", ".join(listed).encode("ascii")},
                heading="Method not allowed",
                message=f"{verb[:20]} is not allowed here; use {' or '.join(listed)}.",
            )
        if head == "":
            return self.index()
        if head == "static":
            return self.static(rest[0] if rest else "")
        if head == "lookup":
            return self.lookup(request, "/".join(rest)) if rest else self.lookup_query(request)
        if head == "remove":
            if verb == "POST":
                return self.remove_post(request, "/".join(rest))
            return self.remove_form(request, "/".join(rest))
        return self.request_status("/".join(rest))

    def _arg(self, request: server.Request, name: str, *, multiline: bool = False) -> str:
        """A query or form field as text; 400 naming it if not UTF-8 or with control characters."""
        values = (request.args or {}).get(name.encode("ascii"), [])
        if not values:
            return ""
        try:
            value = bytes(values[0]).decode("utf-8")
        except UnicodeDecodeError:
            raise Page(
                http.BAD_REQUEST,
                heading="Bad request",
                message=f"The {name} field is not valid UTF-8 text.",
            ) from None
        bad = _forbidden_character(value, multiline=multiline)
        if bad is not None:
            raise Page(
                http.BAD_REQUEST,
                heading="Bad request",
                message=(
                    f"The {name} field contains the control character U+{ord(bad):04X}; "
                    "please send plain text."
                ),
            )
        return value

    # -- pages

    def index(self) -> Deferred[Page]:
        return _done(Page(http.OK, "index.html", zones=self._zone_rows(), query=""))

    def _zone_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "name": zone.name,
                "kind": zone.kind.value,
                "codes": _code_rows(zone, zone.default_codes, all_codes=True),
            }
            for zone in self.settings.zones
        ]

    def static(self, name: str) -> Deferred[Page]:
        if name != "site.css":
            raise Page(http.NOT_FOUND, **_not_found())
        raise _Static(self.stylesheet)

    def lookup_query(self, request: server.Request) -> Deferred[Page]:
        query = self._arg(request, "q").strip()
        key = self.normalise(query)
        return _done(_redirect(f"/lookup/{_key_path(key.text)}"))

    def normalise(self, query: str) -> ListingKey:
        """The canonical key for what someone typed, or a 400 page saying what is wrong."""

        def bad(problem: str) -> Page:
            return Page(
                http.BAD_REQUEST,
                "index.html",
                zones=self._zone_rows(),
                query=query[:MAX_QUERY],
                error=problem,
            )

        if not query:
            raise bad("Enter an IP address or a domain name.")
        if len(query) > MAX_QUERY:
            raise bad(f"That is longer than {MAX_QUERY} characters.")
        if "@" in query:  # a sender address: its domain is what can be listed
            query = query.rpartition("@")[2]
        if any(ch.isspace() for ch in query):
            raise bad(f"{query!r} contains spaces; enter one IP address or domain name.")
        kind = ZoneKind.IP if _looks_like_ip(query) else ZoneKind.DOMAIN
        if not self._zones_for(kind):
            raise bad(f"This list has no {kind.value} zone, so {query!r} cannot be listed here.")
        try:
            return parse_key(kind, query)
        except KeyFormatError as exc:
            raise bad(str(exc)) from None

    def _zones_for(self, kind: ZoneKind) -> list[ZoneSettings]:
        zones = [zone for zone in self.settings.zones if zone.kind is kind]
        if kind is ZoneKind.IP and zones:
            first = self.settings.trap_ip_zone()
            zones = [first, *[zone for zone in zones if zone is not first]]
        return zones

    def _path_key(self, text: str) -> ListingKey:
        key = self.normalise(text)
        if key.text != text:
            raise _redirect(f"/lookup/{_key_path(key.text)}", http.MOVED_PERMANENTLY)
        return key

    def lookup(self, request: server.Request, text: str) -> Deferred[Page]:
        key = self._path_key(text)
        zones = self._zones_for(_kind(key))
        d = self.database(self._statuses, [zone.name for zone in zones], key, self.now())
        d.addCallback(lambda statuses: self._lookup_page(key, zones, statuses))
        return d

    def _statuses(
        self, zones: list[str], key: ListingKey, now: datetime, days: int = CHART_DAYS
    ) -> list[PublicStatus]:
        shown = self.settings.public
        with self.engine.begin() as conn:
            return [
                public_status(
                    conn,
                    zone,
                    key,
                    now=now,
                    days=days,
                    hourly=shown.time_resolution == "hour",
                    trap_domains=shown.show_trap_domains,
                )
                for zone in zones
            ]

    def _lookup_page(
        self, key: ListingKey, zones: list[ZoneSettings], statuses: list[PublicStatus]
    ) -> Page:
        now = self.now()
        views = []
        for zone, status in zip(zones, statuses, strict=True):
            listing = status.listing
            last = status.last_listing
            ended = None
            if listing is None and last is not None:
                ended = last.delisted_at or last.expires_at or last.updated_at
                if ended > now:  # an expiry not swept yet: it ended at its expiry all the same
                    ended = last.expires_at or now
            views.append(
                {
                    "zone": zone,
                    "status": status,
                    "listing": listing,
                    "last": last,
                    "ended": ended,
                    "covering": listing is not None and listing.key != key.text,
                    "codes": _code_rows(zone, listing.codes) if listing else [],
                    "txt": zone.txt_for(listing.key, listing.txt) if listing else "",
                    "chart": hits_chart(status.daily_hits),
                }
            )
        evidence = next((status for status in statuses if status.evidence_total), None)
        return Page(
            http.OK,
            "lookup.html",
            key=key.text,
            kind=_kind(key).value,
            views=views,
            evidence=evidence,
            chart=hits_chart(evidence.daily_hits) if evidence else None,
            checks=check_lines(evidence) if evidence else [],
            chart_days=CHART_DAYS,
        )

    def _removal_zone(self, request: server.Request, key: ListingKey) -> ZoneSettings:
        zones = self._zones_for(_kind(key))
        wanted = self._arg(request, "zone").strip().lower().rstrip(".")
        if not wanted:
            return zones[0]
        for zone in zones:
            if zone.name == wanted:
                return zone
        shown = repr(wanted) if len(wanted) <= MAX_ZONE else f"a {len(wanted)}-character name"
        raise Page(
            http.BAD_REQUEST,
            heading="Unknown zone",
            message=f"{shown} is not a {_kind(key).value} zone of this list.",
        )

    def remove_form(self, request: server.Request, text: str) -> Deferred[Page]:
        key = self.normalise(text)
        zone = self._removal_zone(request, key)
        client = client_address(request, self.settings.web.trusted_proxies)
        d = self.database(self._form_status, zone.name, key, self.now())
        d.addCallback(
            lambda found: self._form_page(
                http.OK, key, zone, client, status=found[0], review_reason=found[1]
            )
        )
        return d

    def _form_status(
        self, zone: str, key: ListingKey, now: datetime
    ) -> tuple[PublicStatus, str | None]:
        """The listing's status, and why self-service would not remove it at once (if so)."""
        with self.engine.begin() as conn:
            status = public_status(conn, zone, key, now=now, days=1)
            period = self.self_service_period
            reason = (
                None
                if period is None or status.listing is None
                else self_service_review_reason(conn, zone, key, period=period, now=now)
            )
        return status, reason

    def _form_page(
        self,
        code: int,
        key: ListingKey,
        zone: ZoneSettings,
        client: str,
        *,
        status: PublicStatus | None = None,
        review_reason: str | None = None,
        errors: Sequence[str] = (),
        message: str = "",
        email: str = "",
        headers: dict[bytes, bytes] | None = None,
    ) -> Page:
        return Page(
            code,
            "remove.html",
            headers,
            key=key.text,
            zone=zone.name,
            status=status,
            errors=list(errors),
            message=message,
            email=email,
            csrf=self.tokens.issue(client),
            max_message=MAX_MESSAGE,
            max_email=MAX_EMAIL,
            self_service=self.self_service_period is not None,
            review_reason=review_reason,
        )

    def remove_post(self, request: server.Request, text: str) -> Deferred[Page]:
        """The one state-changing action of the site; the token is checked before anything else."""
        client = client_address(request, self.settings.web.trusted_proxies)
        token = _ascii_arg(request, "csrf", MAX_TOKEN)
        if not self.tokens.check(token, client) or self.tokens.spent(token):
            raise self._refused_form(request, text, client, spent=self.tokens.spent(token))
        key = self.normalise(text)
        zone = self._removal_zone(request, key)
        web = self.settings.web
        network = client_network(client, web.removal_ipv4_prefix, web.removal_ipv6_prefix)
        wait = self.limiter.retry_after(network)
        if wait is not None:
            minutes = max(1, round(wait / 60))
            raise _too_many(
                f"Your network ({network}) has sent {self.limiter.limit} removal requests "
                "in the last hour, the most this site accepts from one network. "
                f"Please try again in about {minutes} minutes.",
                wait,
            )
        message = self._arg(request, "message", multiline=True).replace("\r\n", "\n").strip()
        email = self._arg(request, "email").strip()
        errors = _form_errors(message, email)
        if errors:
            raise self._form_page(
                http.BAD_REQUEST, key, zone, client, errors=errors, message=message, email=email
            )
        d = self.database(self._open, zone.name, key, message, email or None, client, self.now())
        self.tokens.spend(token)
        self.limiter.record(network)
        d.addCallback(lambda req: _redirect(f"/request/{req.token}"))
        return d

    def _refused_form(
        self, request: server.Request, text: str, client: str, *, spent: bool
    ) -> Page:
        """403: the form again (message kept) with a fresh token, else a plain page."""
        problem = (
            "This form was already sent once. Please check your message and send it again."
            if spent
            else "This form has expired or did not come from this site. "
            "Please check your message and send it again."
        )
        try:
            key = self.normalise(text)
            zone = self._removal_zone(request, key)
        except Page:
            return Page(http.FORBIDDEN, heading="Form not accepted", message=problem)
        return self._form_page(
            http.FORBIDDEN,
            key,
            zone,
            client,
            errors=[problem],
            message=_lenient_arg(request, "message", MAX_MESSAGE).replace("\r\n", "\n").strip(),
            email=_lenient_arg(request, "email", MAX_EMAIL).strip(),
        )

    def _open(
        self,
        zone: str,
        key: ListingKey,
        message: str,
        email: str | None,
        client: str,
        now: datetime,
    ) -> RemovalRequest:
        try:
            with self.engine.begin() as conn:
                return open_request(
                    conn,
                    zone,
                    key,
                    message=message,
                    email=email,
                    client_ip=client,
                    now=now,
                    self_service_period=self.self_service_period,
                    limits=self.request_limits,
                )
        except NotListedError as exc:
            raise Page(http.CONFLICT, heading="Not listed", message=str(exc), key=key.text) from exc
        except RequestLimitError as exc:
            raise _too_many(str(exc), exc.retry_after) from exc
        except RequestError as exc:
            raise Page(http.BAD_REQUEST, heading="Request not accepted", message=str(exc)) from exc

    def request_status(self, token: str) -> Deferred[Page]:
        if not _REQUEST_TOKEN.fullmatch(token) or token.isdigit():
            raise Page(http.NOT_FOUND, **_not_found("There is no removal request with that link."))
        d = self.database(self._get_request, token)
        d.addCallback(self._request_page)
        return d

    def _get_request(self, token: str) -> RemovalRequest | None:
        with self.engine.begin() as conn:
            return get_request(conn, token)

    def _request_page(self, found: RemovalRequest | None) -> Page:
        if found is None:
            raise Page(http.NOT_FOUND, **_not_found("There is no removal request with that link."))
        return Page(http.OK, "request.html", request=found)


class _Static(Page):
    def __init__(self, data: bytes) -> None:
        super().__init__(http.OK, "")
        self.data = data


def _too_many(message: str, retry_after: float | None) -> Page:
    """429 with the reason; Retry-After when waiting is what helps."""
    headers = {} if retry_after is None else {b"retry-after": b"%d" % round(retry_after)}
    return Page(
        TOO_MANY_REQUESTS, "error.html", headers, heading="Too many requests", message=message
    )


def _nothing() -> None:
    """A database job that only reads the trap list (``PublicSite.database`` adds that)."""


def _done(page: Page) -> Deferred[Page]:
    d: Deferred[Page] = Deferred()
    d.callback(page)
    return d


def _kind(key: ListingKey) -> ZoneKind:
    return ZoneKind.IP if isinstance(key, IpKey) else ZoneKind.DOMAIN


def _looks_like_ip(text: str) -> bool:
    head = text.split("/", 1)[0]
    return ":" in head or (head.replace(".", "").isdigit() and "." in head)


def _code_rows(
    zone: ZoneSettings, codes: Iterable[str], *, all_codes: bool = False
) -> list[tuple[str, str]]:
    meanings = dict(zone.code_meanings)
    wanted = list(codes)
    if all_codes:
        wanted += [code for code, _ in zone.code_meanings if code not in wanted]
    return [(code, meanings.get(code, "listed")) for code in wanted]


def _form_errors(message: str, email: str) -> list[str]:
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


_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _forbidden_character(text: str, *, multiline: bool = False) -> str | None:
    """The first control character in ``text`` (C0, DEL, C1, bidi overrides), if any.

    They have no place in a lookup, an address or a message, and would reach
    the operator's terminal through ``rbl requests show``; a message may keep
    tabs and line breaks.
    """
    allowed = "\t\n\r" if multiline else ""
    for ch in text:
        if (ch < " " or "\x7f" <= ch <= "\x9f" or ch in _BIDI_CONTROLS) and ch not in allowed:
            return ch
    return None


def _ascii_arg(request: server.Request, name: str, limit: int) -> str:
    """A short ASCII field such as a token; "" when absent, too long or not ASCII."""
    values = (request.args or {}).get(name.encode("ascii"), [])
    raw = bytes(values[0]) if values else b""
    if len(raw) > limit or not raw.isascii():
        return ""
    return raw.decode("ascii")


def _lenient_arg(request: server.Request, name: str, limit: int) -> str:
    """A field to show back in a form that was refused anyway: undecodable bytes replaced."""
    values = (request.args or {}).get(name.encode("ascii"), [])
    text = bytes(values[0]).decode("utf-8", "replace") if values else ""
    return "".join(ch for ch in text[: limit + 1] if ch in "\t\n" or ch >= " ")


def _not_found(message: str = "There is no page at this address.") -> dict[str, str]:
    return {"heading": "Not found", "message": message}


def _oops() -> dict[str, str]:
    return {
        "heading": "Try again later",
        "message": "The list cannot be read right now. Please try again in a few minutes.",
    }


def make_site(
    settings: Settings,
    engine: Engine,
    run: Run,
    clock: IReactorTime,
    secret: bytes,
    *,
    max_db_jobs: int = MAX_DB_JOBS,
) -> server.Site:
    """The public site; ``run(function, *args)`` runs blocking database work off the reactor."""
    root = PublicSite(settings, engine, run, clock, secret, max_db_jobs=max_db_jobs)
    site = LimitedSite(
        root,
        reactor=clock,
        max_connections=settings.web.max_connections,
        max_per_client=settings.web.max_connections_per_client,
        client_prefixes=(settings.web.connection_ipv4_prefix, settings.web.connection_ipv6_prefix),
        uncapped=settings.web.trusted_proxies,
        request_deadline=settings.web.request_timeout,
    )
    site.displayTracebacks = False
    site.public = root  # type: ignore[attr-defined]  # for reloads and a graceful stop
    return site


__all__ = ["MAX_BODY", "LimitedRequest", "PublicSite", "make_site"]
