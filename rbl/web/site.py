# mypy: allow-untyped-calls
"""The public site as a twisted.web resource tree: ``make_site`` builds it.

    /                   Home            rbl.web.pages.lookup
    /lookup[/KEY]       Lookup          rbl.web.pages.lookup
    /remove/KEY         Remove          rbl.web.pages.removal
    /request/TOKEN      RequestStatus   rbl.web.pages.removal
    /static/NAME        Assets          here (twisted.web.static.Data)
    anything else       Missing (404)   rbl.web.pages.base

The root checks the whole path before any page sees it: a segment that is
not UTF-8 is a 400 (``BadPath``) and trailing slashes are dropped; each page
then takes the segments after its own (``SiteResource.segments``). The pages
read the store only through ``rbl.store.website`` (and so
``rbl.store.public`` and ``rbl.store.requests``, which never select the trap
address), every page is run through the trap filter before it is sent, and
``Site.public`` is the shared state a reload reconfigures and a graceful
stop waits on. Imports no DNS server or index module.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from twisted.internet.interfaces import IReactorTime
from twisted.web import server
from twisted.web.resource import Resource

from rbl.config import Settings
from rbl.store.website import SiteStore
from rbl.web.limits import LimitedSite
from rbl.web.pages.base import (
    MAX_DB_JOBS,
    BadPath,
    Missing,
    PublicSite,
    Run,
    SiteResource,
    not_found,
    path_text,
)
from rbl.web.pages.lookup import Home, Lookup
from rbl.web.pages.removal import Remove, RequestStatus
from rbl.web.security import FormTokens

with warnings.catch_warnings():
    # twisted.web.static builds a deprecated _UnsafeNoResource when it is imported
    # (Twisted 26.10); nothing here uses it, and the test suite makes warnings errors.
    warnings.simplefilter("ignore", DeprecationWarning)
    from twisted.web import static

STATIC = Path(__file__).parent / "static"
ASSET_CACHE = b"public, max-age=3600"


class Assets(SiteResource):
    """``/static/NAME``: the stylesheet, read once at start, cached by browsers for an hour."""

    segments = (0, 1)

    def __init__(self, site: PublicSite) -> None:
        super().__init__(site)
        css = (STATIC / "site.css").read_bytes()
        self.files = {"site.css": static.Data(css, "text/css; charset=utf-8")}

    def render_GET(self, request: server.Request) -> bytes | int:
        asset = self.files.get(path_text(request))
        if asset is None:
            return self.site.respond(request, not_found)
        request.setHeader(b"cache-control", ASSET_CACHE)
        body: bytes = asset.render_GET(request)
        return body


class Root(Resource):
    """``/`` and its children; checks the path once for all of them."""

    def __init__(self, site: PublicSite) -> None:
        super().__init__()
        self.bad_path = BadPath(site)
        self.missing = Missing(site)
        self.putChild(b"", Home(site))
        self.putChild(b"lookup", Lookup(site))
        self.putChild(b"remove", Remove(site))
        self.putChild(b"request", RequestStatus(site))
        self.putChild(b"static", Assets(site))

    def getChildWithDefault(self, path: bytes, request: server.Request) -> Resource:
        rest = request.postpath if request.postpath is not None else []
        try:
            for segment in (path, *rest):
                segment.decode("utf-8")
        except UnicodeDecodeError:
            return self.bad_path
        while rest and rest[-1] == b"":
            rest.pop()  # a trailing slash
        child: Resource = super().getChildWithDefault(path, request)
        return child

    def getChild(self, path: bytes, request: server.Request) -> Resource:
        return self.missing


def make_site(
    settings: Settings,
    store: SiteStore,
    run: Run,
    clock: IReactorTime,
    secret: bytes,
    *,
    max_db_jobs: int = MAX_DB_JOBS,
) -> server.Site:
    """The public site; ``run(function, *args)`` runs blocking database work off the reactor."""
    public = PublicSite(settings, store, run, clock, FormTokens(secret, clock), max_db_jobs)
    site = LimitedSite(
        Root(public),
        reactor=clock,
        max_connections=settings.web.max_connections,
        max_per_client=settings.web.max_connections_per_client,
        client_prefixes=(settings.web.connection_ipv4_prefix, settings.web.connection_ipv6_prefix),
        uncapped=settings.web.trusted_proxies,
        request_deadline=settings.web.request_timeout,
    )
    site.displayTracebacks = False
    site.public = public  # type: ignore[attr-defined]  # for reloads and a graceful stop
    return site
