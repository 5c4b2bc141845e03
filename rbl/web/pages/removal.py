"""Removal requests: the form at ``/remove/KEY`` (GET, POST) and ``/request/TOKEN``.

POST is the site's one state-changing action: the CSRF token is checked
before anything else (a refused form comes back with the message kept and
a fresh token), then the client network's rate limit, then the fields; the
request is opened in the store, which enforces the per-listing limits and
self-service. Its status page is public to whoever holds the link, so it
shows no email address.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web import http, server

from rbl.config import ZoneSettings
from rbl.errors import NotListedError
from rbl.model.keys import ListingKey
from rbl.model.text import REQUEST_TOKEN
from rbl.store.requests import MAX_MESSAGE, RemovalRequest, RequestError, RequestLimitError
from rbl.store.website import SiteRequest
from rbl.web.forms import MAX_EMAIL, MAX_TOKEN, MAX_ZONE, ascii_field, form_errors, lenient_field
from rbl.web.limits import client_network
from rbl.web.pages.base import (
    Page,
    SiteResource,
    kind_of,
    not_found,
    path_text,
    redirect,
    too_many,
)
from rbl.web.security import client_address

NO_REQUEST = "There is no removal request with that link."


class Remove(SiteResource):
    """``/remove/KEY[?zone=NAME]``: the removal form, and sending it."""

    allowedMethods = (b"GET", b"HEAD", b"POST")
    segments = (1, None)

    def client(self, request: server.Request) -> str:
        return client_address(request, self.site.settings.web.trusted_proxies)

    def zone(self, request: server.Request, key: ListingKey) -> ZoneSettings:
        """The zone named in the form (or the first of the key's kind); 400 if it is not one."""
        zones = self.site.zones_for(kind_of(key))
        wanted = self.site.field(request, "zone").strip().lower().rstrip(".")
        if not wanted:
            return zones[0]
        for zone in zones:
            if zone.name == wanted:
                return zone
        shown = repr(wanted) if len(wanted) <= MAX_ZONE else f"a {len(wanted)}-character name"
        raise Page(
            http.BAD_REQUEST,
            heading="Unknown zone",
            message=f"{shown} is not a {kind_of(key).value} zone of this list.",
        )

    def render_GET(self, request: server.Request) -> int:
        return self.site.respond(request, lambda: self.form(request))

    def render_POST(self, request: server.Request) -> int:
        return self.site.respond(request, lambda: self.send(request))

    def form(self, request: server.Request) -> Deferred[Page]:
        site = self.site
        key = site.normalise(path_text(request))
        zone = self.zone(request, key)
        client = self.client(request)
        d = site.database(
            site.store.form_status, zone.name, key, site.now(), site.self_service_period
        )
        d.addCallback(
            lambda found: self.page(
                http.OK, key, zone, client, status=found[0], review_reason=found[1]
            )
        )
        return d

    def page(
        self, code: int, key: ListingKey, zone: ZoneSettings, client: str, **shown: Any
    ) -> Page:
        """The form for ``key`` in ``zone`` with a fresh token for ``client``.

        ``shown``: the listing's ``status`` and ``review_reason``, or the ``errors``
        of a refused form with its ``message`` and ``email`` kept.
        """
        blank: dict[str, Any] = {
            "status": None,
            "review_reason": None,
            "errors": [],
            "message": "",
            "email": "",
        }
        return Page(
            code,
            "remove.html",
            **(blank | shown),
            key=key.text,
            zone=zone.name,
            csrf=self.site.tokens.issue(client),
            max_message=MAX_MESSAGE,
            max_email=MAX_EMAIL,
            self_service=self.site.self_service_period is not None,
        )

    def send(self, request: server.Request) -> Deferred[Page]:
        """The token is checked before anything else, then the rate limit, then the fields."""
        site = self.site
        client = self.client(request)
        token = ascii_field(request, "csrf", MAX_TOKEN)
        if not site.tokens.check(token, client) or site.tokens.spent(token):
            raise self.refused(request, client, spent=site.tokens.spent(token))
        key = site.normalise(path_text(request))
        zone = self.zone(request, key)
        web = site.settings.web
        network = client_network(client, web.removal_ipv4_prefix, web.removal_ipv6_prefix)
        wait = site.limiter.retry_after(network)
        if wait is not None:
            minutes = max(1, round(wait / 60))
            raise too_many(
                f"Your network ({network}) has sent {site.limiter.limit} removal requests "
                "in the last hour, the most this site accepts from one network. "
                f"Please try again in about {minutes} minutes.",
                wait,
            )
        message = site.field(request, "message", multiline=True).replace("\r\n", "\n").strip()
        email = site.field(request, "email").strip()
        errors = form_errors(message, email)
        if errors:
            raise self.page(
                http.BAD_REQUEST, key, zone, client, errors=errors, message=message, email=email
            )
        sent = SiteRequest(
            message=message,
            email=email or None,
            client_ip=client,
            self_service_period=site.self_service_period,
            limits=site.request_limits,
        )
        d = site.database(self.open, zone.name, key, sent, site.now())
        site.tokens.spend(token)
        site.limiter.record(network)
        d.addCallback(lambda req: redirect(f"/request/{req.token}"))
        return d

    def open(self, zone: str, key: ListingKey, sent: SiteRequest, now: datetime) -> RemovalRequest:
        """In the database thread: the store's refusal becomes the page that says why."""
        try:
            return self.site.store.open_request(zone, key, sent, now)
        except NotListedError as exc:
            raise Page(http.CONFLICT, heading="Not listed", message=str(exc), key=key.text) from exc
        except RequestLimitError as exc:
            raise too_many(str(exc), exc.retry_after) from exc
        except RequestError as exc:
            raise Page(http.BAD_REQUEST, heading="Request not accepted", message=str(exc)) from exc

    def refused(self, request: server.Request, client: str, *, spent: bool) -> Page:
        """403: the form again (message kept) with a fresh token, else a plain page."""
        problem = (
            "This form was already sent once. Please check your message and send it again."
            if spent
            else "This form has expired or did not come from this site. "
            "Please check your message and send it again."
        )
        try:
            key = self.site.normalise(path_text(request))
            zone = self.zone(request, key)
        except Page:
            return Page(http.FORBIDDEN, heading="Form not accepted", message=problem)
        return self.page(
            http.FORBIDDEN,
            key,
            zone,
            client,
            errors=[problem],
            message=lenient_field(request, "message", MAX_MESSAGE).replace("\r\n", "\n").strip(),
            email=lenient_field(request, "email", MAX_EMAIL).strip(),
        )


class RequestStatus(SiteResource):
    """``/request/TOKEN``: one removal request's state, for whoever holds the link."""

    segments = (1, None)

    def render_GET(self, request: server.Request) -> int:
        return self.site.respond(request, lambda: self.status(path_text(request)))

    def status(self, token: str) -> Deferred[Page]:
        if not REQUEST_TOKEN.fullmatch(token) or token.isdigit():
            raise not_found(NO_REQUEST)  # a number would look requests up by their row id
        d = self.site.database(self.site.store.get_request, token)
        d.addCallback(self.page)
        return d

    def page(self, found: RemovalRequest | None) -> Page:
        if found is None:
            raise not_found(NO_REQUEST)
        return Page(http.OK, "request.html", request=found)
