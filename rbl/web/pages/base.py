# mypy: allow-untyped-calls
"""What every page of the public site shares: the site's state, the answer, the base resource.

``PublicSite`` holds what outlives a request: settings (``reconfigure`` on a
reload), the store, the database queue, form tokens, the rate limit, the
templates and the trap filter. ``SiteResource`` is the base of every page
resource: it sets the security headers, refuses a path of the wrong length
(404), lets Twisted pick ``render_GET``/``render_POST`` (HEAD is GET with
the body dropped, by ``Resource.render_HEAD`` and the request) and answers a
method the resource lacks (``UnsupportedMethod``) with the site's own 405
page and Allow header. A page is built as a ``Page`` (raised or returned
from a Deferred) and sent by ``PublicSite.send``, through the trap filter,
less whatever the visitor's own request named.

Every database call goes through ``database`` (the thread pool, at most
``max_db_jobs`` at once); the reactor thread only parses, checks and
renders. A database failure, or a trap list that cannot be read, is a 503
"try again later", never a false "not listed" or an unfiltered page.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.error import UnsupportedMethod
from twisted.web.resource import Resource

from rbl.config import Settings, ZoneSettings
from rbl.errors import KeyFormatError
from rbl.model.guess import guess_kind
from rbl.model.keys import IpKey, ListingKey, ZoneKind, parse_key
from rbl.policy.trapfilter import NO_TRAPS, TrapFilter
from rbl.store.requests import RequestLimits
from rbl.store.website import SiteStore
from rbl.web.forms import FieldError, text_field
from rbl.web.render import code_rows, evidence_time, key_path, templates
from rbl.web.security import FormTokens, RateLimiter, secure

log = Logger(namespace="rbl.web")

MAX_QUERY = 300  # characters of a lookup; a domain is at most 253
MAX_DB_JOBS = 50  # database jobs the site may have queued or running at once
BUSY_RETRY = 5  # Retry-After (seconds) when they are all taken
TOO_MANY_REQUESTS = 429  # not in twisted.web.http
FILTER_REFRESH = 10.0  # seconds a read of the trap list is used for; a new trap is filtered after

Run = Callable[..., Deferred[Any]]


class Page(Exception):
    """A finished page to send: the normal one, or one instead of it (an error, a redirect)."""

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


def redirect(location: str, status: int = http.SEE_OTHER) -> Page:
    return Page(status, "", {b"location": location.encode("ascii")})


def not_found(message: str = "There is no page at this address.") -> Page:
    return Page(http.NOT_FOUND, heading="Not found", message=message)


def too_many(message: str, retry_after: float | None) -> Page:
    """429 with the reason; Retry-After when waiting is what helps."""
    headers = {} if retry_after is None else {b"retry-after": b"%d" % round(retry_after)}
    return Page(
        TOO_MANY_REQUESTS, "error.html", headers, heading="Too many requests", message=message
    )


def _oops(code: int) -> Page:
    return Page(
        code,
        heading="Try again later",
        message="The list cannot be read right now. Please try again in a few minutes.",
    )


def kind_of(key: ListingKey) -> ZoneKind:
    return ZoneKind.IP if isinstance(key, IpKey) else ZoneKind.DOMAIN


def visitor_texts(request: server.Request) -> list[str]:
    """Everything the visitor sent that a page may echo: the path and every field."""
    texts = [unquote(bytes(request.uri or b"").decode("utf-8", "replace"))]
    for values in (request.args or {}).values():
        texts += [bytes(value).decode("utf-8", "replace") for value in values]
    return texts


def path_text(request: server.Request) -> str:
    """The rest of the path after the resource's own segment (the root checked it is UTF-8)."""
    return "/".join(bytes(part).decode("utf-8") for part in request.postpath or [])


def _nothing() -> None:
    """A database job that only reads the trap list (``PublicSite.database`` adds that)."""


class PublicSite:
    """The state the page resources share; ``Site.public`` for reloads and a graceful stop."""

    def __init__(
        self,
        settings: Settings,
        store: SiteStore,
        run: Run,
        clock: IReactorTime,
        tokens: FormTokens,
        max_db_jobs: int,
    ) -> None:
        self.settings = settings
        self.store = store
        self.run = run
        self.clock = clock
        self.limiter = RateLimiter(settings.web.requests_per_hour, clock)
        self.tokens = tokens
        self.max_db_jobs = max_db_jobs
        self.db_jobs = 0  # queued or running in the database thread pool
        self.in_flight = 0  # requests being answered, for a graceful stop
        self.templates = templates()
        self.trap_filter: TrapFilter = NO_TRAPS
        self.filter_read_at: float | None = None  # clock time of the last trap list read
        self.reconfigure(settings)
        try:
            self.trap_filter, self.filter_read_at = store.trap_filter(), clock.seconds()
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

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), UTC)

    # -- the database queue and the trap filter

    def database(self, function: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """``run`` with at most ``max_db_jobs`` in flight: past that, 503 with Retry-After.

        A flood of lookups must not queue unbounded work in the thread pool, and
        must never be answered with a guess such as "not listed". The trap list
        is read again along with the job when the last read is older than
        FILTER_REFRESH.
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
            return (self.store.trap_filter() if stale else None), function(*job_args)

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

    # -- answering

    def respond(self, request: server.Request, page: Callable[[], Page | Deferred[Page]]) -> int:
        """Build ``page`` (after a first read of the trap list, if none yet) and send it."""
        finished: list[bool] = []
        self.in_flight += 1

        def ended(_: object) -> None:
            finished.append(True)
            self.in_flight -= 1

        request.notifyFinish().addBoth(ended)
        try:
            if self.filter_read_at is None:
                result = self.database(_nothing).addCallback(lambda _: page())
            else:
                answer = page()
                result = answer if isinstance(answer, Deferred) else succeed(answer)
        except Page as raised:
            self.send(request, raised, finished)
        except Exception:
            log.failure("page failed")
            self.send(request, _oops(http.INTERNAL_SERVER_ERROR), finished)
        else:
            result.addErrback(self._failed)
            result.addBoth(lambda answer: self.send(request, answer, finished))
        return server.NOT_DONE_YET

    def _failed(self, failure: Failure) -> Page:
        """A page raised from a Deferred is sent; any other failure there is the database."""
        if failure.check(Page):
            page = failure.value
            assert isinstance(page, Page)
            return page
        log.failure("page failed", failure=failure)
        return _oops(http.SERVICE_UNAVAILABLE)

    def send(self, request: server.Request, page: Page, finished: list[bool]) -> None:
        if finished:
            return  # the client went away
        request.setResponseCode(page.code)
        for name, value in page.headers.items():
            request.setHeader(name, value)
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

    # -- keys and zones

    def field(self, request: server.Request, name: str, *, multiline: bool = False) -> str:
        """``forms.text_field``, its refusal a 400 page naming the field."""
        try:
            return text_field(request, name, multiline=multiline)
        except FieldError as exc:
            raise Page(http.BAD_REQUEST, heading="Bad request", message=str(exc)) from None

    def zones_for(self, kind: ZoneKind) -> list[ZoneSettings]:
        zones = [zone for zone in self.settings.zones if zone.kind is kind]
        if kind is ZoneKind.IP and zones:
            first = self.settings.trap_ip_zone()
            zones = [first, *[zone for zone in zones if zone is not first]]
        return zones

    def zone_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "name": zone.name,
                "kind": zone.kind.value,
                "codes": code_rows(zone, zone.default_codes, all_codes=True),
            }
            for zone in self.settings.zones
        ]

    def normalise(self, query: str) -> ListingKey:
        """The canonical key for what someone typed, or a 400 page saying what is wrong."""

        def bad(problem: str) -> Page:
            return Page(
                http.BAD_REQUEST,
                "index.html",
                zones=self.zone_rows(),
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
        kind = guess_kind(query)
        if not self.zones_for(kind):
            raise bad(f"This list has no {kind.value} zone, so {query!r} cannot be listed here.")
        try:
            return parse_key(kind, query)
        except KeyFormatError as exc:
            raise bad(str(exc)) from None

    def canonical(self, text: str) -> ListingKey:
        """``normalise`` for a key in the path: a non-canonical one redirects (301)."""
        key = self.normalise(text)
        if key.text != text:
            raise redirect(f"/lookup/{key_path(key.text)}", http.MOVED_PERMANENTLY)
        return key


class SiteResource(Resource):
    """A page of the site: a leaf taking ``segments`` (least, most) more path segments."""

    isLeaf = True
    allowedMethods: tuple[bytes, ...] = (b"GET", b"HEAD")
    segments: tuple[int, int | None] = (0, 0)

    def __init__(self, site: PublicSite) -> None:
        super().__init__()
        self.site = site

    def render(self, request: server.Request) -> bytes | int:
        secure(request)
        least, most = self.segments
        count = len(request.postpath or [])
        if count < least or (most is not None and count > most):
            return self.site.respond(request, not_found)
        try:
            if not request.method.isascii():
                raise UnsupportedMethod(self.allowedMethods)
            result: bytes | int = super().render(request)
        except UnsupportedMethod as exc:
            allowed: tuple[bytes, ...] = tuple(exc.allowedMethods)
            return self.site.respond(request, lambda: _not_allowed(request, allowed))
        return result


def _not_allowed(request: server.Request, allowed: tuple[bytes, ...]) -> Page:
    verb = request.method.decode("ascii", "replace")
    listed = [method.decode("ascii") for method in allowed]
    return Page(
        http.NOT_ALLOWED,
        "error.html",
        {b"allow": ", ".join(listed).encode("ascii")},
        heading="Method not allowed",
        message=f"{verb[:20]} is not allowed here; use {' or '.join(listed)}.",
    )


class Missing(SiteResource):
    """404 for any method: a path the site does not have."""

    def render(self, request: server.Request) -> int:
        secure(request)
        return self.site.respond(request, not_found)


class BadPath(SiteResource):
    """400 for any method: a path that is not UTF-8."""

    def render(self, request: server.Request) -> int:
        secure(request)
        return self.site.respond(
            request,
            lambda: Page(
                http.BAD_REQUEST, heading="Bad request", message="The address is not valid UTF-8."
            ),
        )
