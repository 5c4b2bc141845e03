"""The home page and the lookup: ``/``, ``/lookup?q=...`` and ``/lookup/KEY``.

The home page explains the zones and their codes; the lookup box redirects
to the key's canonical path, whose page shows the key's status in every zone
of its kind (the trap IP zone first) and the evidence: counts per day,
setup checks as counts, never a hit's recipient, HELO or sender.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from twisted.internet.defer import Deferred
from twisted.web import http, server

from rbl.config import ZoneSettings
from rbl.model.keys import ListingKey
from rbl.store.public import PublicStatus
from rbl.web.chart import CHART_DAYS, hits_chart
from rbl.web.pages.base import Page, SiteResource, kind_of, path_text, redirect
from rbl.web.render import check_lines, code_rows, key_path


class Home(SiteResource):
    """``/``: what the list is, its zones and codes, and the lookup box.

    ``//x`` is the home page too (one more, empty, segment), as it always was.
    """

    segments = (0, 1)

    def render_GET(self, request: server.Request) -> int:
        return self.site.respond(
            request, lambda: Page(http.OK, "index.html", zones=self.site.zone_rows(), query="")
        )


class Lookup(SiteResource):
    """``/lookup?q=TEXT`` redirects to ``/lookup/KEY``, the key's status page."""

    segments = (0, None)

    def render_GET(self, request: server.Request) -> int:
        if not request.postpath:
            return self.site.respond(request, lambda: self.query(request))
        return self.site.respond(request, lambda: self.status(path_text(request)))

    def query(self, request: server.Request) -> Page:
        key = self.site.normalise(self.site.field(request, "q").strip())
        return redirect(f"/lookup/{key_path(key.text)}")

    def status(self, text: str) -> Deferred[Page]:
        site = self.site
        key = site.canonical(text)
        zones = site.zones_for(kind_of(key))
        shown = site.settings.public
        statuses = partial(
            site.store.statuses,
            days=CHART_DAYS,
            hourly=shown.time_resolution == "hour",
            trap_domains=shown.show_trap_domains,
        )
        d = site.database(statuses, [zone.name for zone in zones], key, site.now())
        d.addCallback(lambda statuses: self.page(key, zones, statuses, site.now()))
        return d

    def page(
        self,
        key: ListingKey,
        zones: list[ZoneSettings],
        statuses: list[PublicStatus],
        now: datetime,
    ) -> Page:
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
                    "codes": code_rows(zone, listing.codes) if listing else [],
                    "txt": zone.txt_for(listing.key, listing.txt) if listing else "",
                    "chart": hits_chart(status.daily_hits),
                }
            )
        evidence = next((status for status in statuses if status.evidence_total), None)
        return Page(
            http.OK,
            "lookup.html",
            key=key.text,
            kind=kind_of(key).value,
            views=views,
            evidence=evidence,
            chart=hits_chart(evidence.daily_hits) if evidence else None,
            checks=check_lines(evidence) if evidence else [],
            chart_days=CHART_DAYS,
        )
