"""Webhook Manager: the embedded PlexiChat server's webhooks end to end.

* endpoints (v1 webhooks) with the event catalogue, the secret shown once, health figures
  (success rate, p95, failures in a row), auto-disable after N failures, secret rotation
  with a grace period, verification snippets;
* the delivery log across endpoints with filters, every attempt with the headers sent, the
  receiver's status and timing, followed live; test, resend one, recover failed since;
* the local inspector (:mod:`inspector`): a loopback receiver of the plugin's own whose
  inboxes capture requests and check signature and timestamp window on arrival, and can
  forward verified events through an integration template (:mod:`templates`,
  :mod:`forwarder`) to Slack, Discord, Teams or Matrix.

The v1 calls go through ``ctx.api`` (the API integration layer's session, limited to the
scopes in ``plugin.toml``); the page talks only to this plugin's routes.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import httpx
from fastapi import Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from plexichat_desktop.plugins.api import Plugin, PluginContext
from plexichat_desktop.plugins.api import PluginProblem as Problem
from plexichat_desktop.plugins.guards import TargetRefused
from plexichat_desktop.plugins.hub import EventHub
from plexichat_desktop.plugins.settings import PluginSettings
from plexichat_desktop.plugins.tls import shared_tls_context
from webhook_manager.forwarder import Forwarder
from webhook_manager.health import health
from webhook_manager.inspector import (
    SEEN_FOR,
    Inspector,
    InspectorProblem,
    InspectorStore,
    Limits,
    inbox_dict,
)
from webhook_manager.snippets import snippets
from webhook_manager.templates import (
    PRESETS,
    SAMPLE_EVENTS,
    TemplateProblem,
    render,
    sample_payload,
)

if TYPE_CHECKING:
    from api_integration_layer.scoped import ScopedApi

HEALTH_WINDOW = 100  # deliveries per endpoint that the health figures cover
# How long a test or a resend may wait for its first attempt: longer than the server's
# webhook timeout can be ([api] webhook_timeout, at most 120 s). Under the API layer's
# 10 s a receiver that hung made "the PlexiChat API did not answer" out of a delivery
# that was sent and timed out.
WAIT_TIMEOUT = 130.0
ANNOUNCE_TRIES = 240  # x 0.25 s: the app's server answers once its start-up is over



# Deliveries read per poll of the live log, at most (pages of the v1 API's largest, 100).
FOLLOW_PAGE = 100
FOLLOW_MOST = 1000
PUSHED_AT_ONCE = 200  # changed deliveries pushed one by one; past that, one "resync"


async def changed_deliveries(api: Any, cursor: datetime) -> tuple[list[Any], bool]:
    """Every delivery updated after ``cursor``, newest first, read page by page (one page
    of 100 missed the older ones when more changed between two polls), and whether that
    is all of them (False past FOLLOW_MOST)."""
    found: list[Any] = []
    while True:
        log = await api.webhooks.all_deliveries(updated_since=cursor, limit=FOLLOW_PAGE,
                                                offset=len(found))
        found += log.deliveries
        if not log.has_more or not log.deliveries:
            return found, True
        if len(found) >= FOLLOW_MOST:
            return found, False

class WebhookSettings(PluginSettings):
    """``[plugin.webhook_manager]`` settings."""

    inspector_port: int = Field(0, ge=0, le=65535)
    tolerance_seconds: int = Field(300, ge=1, le=86_400)
    max_body_bytes: int = Field(1 << 20, ge=1024, le=64 << 20)
    rate_limit_per_minute: int = Field(600, ge=1, le=100_000)
    captures_kept: int = Field(500, ge=10, le=100_000)
    default_disable_after: int = Field(5, ge=0, le=1000)
    forward_allowed_hosts: list[str] = Field(default_factory=list)
    forward_attempts: int = Field(3, ge=1, le=10)
    forward_retry_base: float = Field(1.0, gt=0, le=300)
    poll_interval: float = Field(2.0, ge=0.2, le=60)


class _ApiFailure(Problem):
    """A v1 error answered in the API's own words: the detail is not prefixed with the
    field (the server's and the layer's messages say what they are about)."""

    def body(self) -> dict[str, Any]:
        return {"detail": self.message, "field": self.field}


def _from_api(exc: Exception) -> Problem:
    """A v1 error as this plugin's answer: the same status, the field named."""
    from api_integration_layer.errors import ApiHTTPError

    if isinstance(exc, ApiHTTPError):
        status = exc.status if 400 <= exc.status <= 599 else 502
        detail = exc.detail
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            first = detail[0]
            loc = [str(p) for p in first.get("loc", []) if p not in ("body", "query", "path")]
            # The server's messages may name the field already ("url: ..."): once is enough.
            named = f"{loc[-1]}: " if loc else ""
            return Problem(status, ".".join(loc) or "request", "; ".join(
                m.removeprefix(named) if named else m
                for m in (str(d.get("msg", "")) for d in detail)))
        return _ApiFailure(status, "request", str(detail))
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        return Problem(422, ".".join(str(p) for p in error["loc"]) or "request", error["msg"])
    if isinstance(exc, PermissionError):
        return _ApiFailure(403, "scope", str(exc))
    return _ApiFailure(502, "api", f"the PlexiChat API did not answer: {exc}")


def _check_url(url: str, field: str = "url") -> None:
    """The v1 rules, checked here first so the page gets them even when offline."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 -- raises for a port out of range
    except ValueError as exc:  # "http://[::1/x": urlsplit itself refuses it
        raise Problem(422, field, f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Problem(422, field, "must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise Problem(422, field, "must not carry a user name or password")
    host = parts.hostname
    if not host.startswith("[") and ":" not in host and not _HOST.fullmatch(host):
        # A space or a backslash in the host was registered, shown mangled, and every
        # delivery failed with "cannot resolve the host".
        raise Problem(422, field, f"the host {host[:80]!r} is not a valid host name")


# Letters (any script: IDNA names), digits, hyphens, dots (and underscores, which some
# local names carry): what host names are made of.
_HOST = re.compile(r"(?:\w[\w-]*\.)*\w[\w-]*\.?")


def _dump(model: Any) -> dict[str, Any]:
    data = dict(model.model_dump(mode="json"))
    if "secret" in data and data["secret"] is None:
        del data["secret"]  # only the answers that reveal it (shown once) carry the key
    return data


# -- request bodies ---------------------------------------------------------------------
class EndpointBody(BaseModel):
    url: str = Field(max_length=2000)
    events: list[str] = Field(min_length=1)
    description: str | None = Field(None, max_length=500)
    disable_after: int | None = Field(None, ge=0, le=1000)
    secret: str | None = Field(None, min_length=16, max_length=256)
    active: bool = True


class EndpointUpdate(BaseModel):
    url: str | None = Field(None, max_length=2000)
    events: list[str] | None = None
    description: str | None = Field(None, max_length=500)
    disable_after: int | None = Field(None, ge=0, le=1000)
    active: bool | None = None


class RotateBody(BaseModel):
    grace_seconds: int = Field(86_400, ge=0, le=7 * 86_400)


class RecoverBody(BaseModel):
    since: datetime
    until: datetime | None = None


class InboxBody(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    secret: str | None = Field(None, min_length=1, max_length=256)
    tolerance: int | None = Field(None, ge=1, le=86_400)
    respond_status: int = Field(200, ge=200, le=599)
    forward_url: str | None = Field(None, max_length=2000)
    forward_template: str | None = Field(None, max_length=20_000)


class InboxUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    secret: str | None = Field(None, min_length=1, max_length=256)
    tolerance: int | None = Field(None, ge=1, le=86_400)
    respond_status: int | None = Field(None, ge=200, le=599)
    forward_url: str | None = Field(None, max_length=2000)
    forward_template: str | None = Field(None, max_length=20_000)


class InboxWebhookBody(BaseModel):
    events: list[str] = Field(min_length=1)
    description: str | None = Field(None, max_length=500)
    disable_after: int | None = Field(None, ge=0, le=1000)


class PreviewBody(BaseModel):
    template: str = Field(max_length=20_000)
    event: str = "message.sent"
    payload: dict[str, Any] | None = None


def _ts(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class WebhookManagerPlugin(Plugin):
    """Wires the routes, the inspector, the live log and the forwarder."""

    settings_model = WebhookSettings

    async def setup(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.config: WebhookSettings = ctx.config
        self.hub = EventHub(maxsize=512)
        self.store = InspectorStore(ctx.data_dir / "inspector.sqlite3",
                                    keep=self.config.captures_kept)
        ctx.on_teardown(self.store.close)
        self.forwarder = Forwarder(self.config.forward_allowed_hosts,
                                   attempts=self.config.forward_attempts,
                                   base_delay=self.config.forward_retry_base,
                                   logger=ctx.logger)
        ctx.on_teardown(self.forwarder.aclose)
        self.inspector = Inspector(self.store, Limits(self.config.max_body_bytes,
                                                      self.config.rate_limit_per_minute),
                                   self._captured)
        port_file = ctx.data_dir / "inspector.json"
        wanted = self.config.inspector_port
        if not wanted and port_file.exists():
            # The same port as last time, so webhooks pointing at an inbox keep working.
            try:
                wanted = int(json.loads(port_file.read_text()).get("port", 0))
            except (ValueError, OSError, AttributeError):
                wanted = 0
        # The replay memory outlives a restart: rebuilt from the captures kept.
        self.inspector.remember_verified(await asyncio.to_thread(
            self.store.recent_verified, time.time() - SEEN_FOR))
        port = await self.inspector.start(wanted)
        self.port_problem: str | None = None
        if wanted and port != wanted:
            # Said, and not written down: the next start tries the usual port again. It
            # moved silently, written as the new usual one, and every webhook pointing at
            # an inbox went on posting to whatever held the old port.
            self.port_problem = (f"port {wanted} was taken at start: the inspector listens "
                                 f"on {port} until a restart finds {wanted} free; webhooks "
                                 f"pointing at an inbox on {wanted} do not reach it now")
            ctx.logger.warning("inspector: %s", self.port_problem)
        else:
            port_file.write_text(json.dumps({"port": port}))
        ctx.on_teardown(self._stop_inspector)
        self.announced = False
        self.announce_error: str | None = None
        ctx.create_task(self._announce(), name="webhook_manager announce inspector")
        self.seen_webhooks: dict[str, dict[str, Any]] = {}
        self._follow_task: asyncio.Task[Any] | None = None

        add = ctx.add_route
        add("/status", self.status)
        add("/catalogue", self.catalogue)
        add("/endpoints", self.list_endpoints)
        add("/endpoints", self.create_endpoint, methods=["POST"])
        add("/endpoints/{webhook_id}", self.get_endpoint)
        add("/endpoints/{webhook_id}", self.update_endpoint, methods=["PUT"])
        add("/endpoints/{webhook_id}", self.delete_endpoint, methods=["DELETE"])
        add("/endpoints/{webhook_id}/test", self.test_endpoint, methods=["POST"])
        add("/endpoints/{webhook_id}/rotate", self.rotate, methods=["POST"])
        add("/endpoints/{webhook_id}/recover", self.recover, methods=["POST"])
        add("/endpoints/{webhook_id}/snippets", self.get_snippets)
        add("/deliveries", self.deliveries)
        add("/deliveries/{delivery_id}", self.delivery)
        add("/deliveries/{delivery_id}/resend", self.resend, methods=["POST"])
        add("/inboxes", self.list_inboxes)
        add("/inboxes", self.create_inbox, methods=["POST"])
        add("/inboxes/{inbox_id}", self.update_inbox, methods=["PUT"])
        add("/inboxes/{inbox_id}", self.delete_inbox, methods=["DELETE"])
        add("/inboxes/{inbox_id}/webhook", self.inbox_webhook, methods=["POST"])
        add("/inboxes/{inbox_id}/captures", self.captures)
        add("/inboxes/{inbox_id}/captures", self.clear_captures, methods=["DELETE"])
        add("/captures/{capture_id}", self.capture)
        add("/templates", self.templates)
        add("/templates/preview", self.preview, methods=["POST"])
        add("/stream", self.stream)

    # -- the inspector's life ---------------------------------------------------------
    async def _stop_inspector(self) -> None:
        port = self.inspector.port
        await self.inspector.stop()
        if self.announced and port is not None:
            await self._local_receiver("DELETE", port)

    async def _local_receiver(self, method: str, port: int) -> httpx.Response | None:
        """Tell the embedded v1 server that 127.0.0.1:port is the app's own receiver (the
        app token proves it): webhooks may target it without ``webhook_allow_private``."""
        if self.ctx.server_url is None or self.ctx.app_token is None:
            return None
        url = f"{self.ctx.server_url.rstrip('/')}/api/v1/webhooks/local-receivers/{port}"
        async with httpx.AsyncClient(timeout=5, trust_env=False,
                                     verify=shared_tls_context(trust_env=False)) as client:
            try:
                return await client.request(method, url, headers={
                    "X-PlexiChat-App-Token": self.ctx.app_token})
            except httpx.HTTPError as exc:
                self.announce_error = f"{type(exc).__name__}: {exc}"
                return None

    async def _announce(self) -> None:
        assert self.inspector.port is not None
        for _ in range(ANNOUNCE_TRIES):
            answer = await self._local_receiver("PUT", self.inspector.port)
            if answer is not None and answer.status_code == 200:
                self.announced, self.announce_error = True, None
                return
            if answer is not None and answer.status_code not in (502, 503, 404):
                self.announce_error = f"the v1 server answered {answer.status_code}"
                return
            await asyncio.sleep(0.25)

    async def _captured(self, inbox: dict[str, Any], capture: dict[str, Any], body: bytes
                        ) -> None:
        shown = {k: v for k, v in capture.items() if k != "body"}
        headers = {k.lower(): v for k, v in capture["headers"].items()}
        shown["event"] = headers.get("x-plexichat-event")
        shown["delivery_id"] = headers.get("x-plexichat-delivery")
        self.hub.publish("capture", shown)
        if inbox["forward_url"] and inbox["forward_template"] and capture["verdict"]["ok"]:
            # Off the connection: the sender has its answer already.
            self.ctx.create_task(self._forward(inbox, capture["id"], body),
                                 name=f"webhook_manager forward {capture['id']}")

    async def _forward(self, inbox: dict[str, Any], capture_id: str, body: bytes) -> None:
        try:
            payload = json.loads(body)
            # In a worker thread: a render may take up to its time limit.
            message = await asyncio.to_thread(
                render, inbox["forward_template"],
                payload if isinstance(payload, dict) else {"data": payload})
        except (ValueError, TemplateProblem) as exc:
            outcome: dict[str, Any] = {"ok": False, "status": None, "attempts": [],
                                       "error": str(exc)}
        else:
            outcome = await self.forwarder.send(inbox["forward_url"], message)
        await asyncio.to_thread(self.store.set_forward, capture_id, outcome)
        self.hub.publish("forward", {"capture_id": capture_id, "inbox_id": inbox["id"],
                                     **outcome})

    # -- helpers -------------------------------------------------------------------------
    def _api(self) -> ScopedApi:
        try:
            api: ScopedApi = self.ctx.api
        except Exception as exc:
            raise Problem(503, "api", f"the PlexiChat API is not available: {exc}") from None
        if api.user is None:
            raise Problem(409, "api", "nobody is signed in to PlexiChat; sign in on the API "
                                      "Integration page first")
        return api

    async def _call(self, work: Any) -> Any:
        """Run an API call; v1 errors become this plugin's 4xx with the field named."""
        from api_integration_layer.errors import ApiError

        try:
            return await work
        except (ApiError, ValidationError, PermissionError) as exc:
            raise _from_api(exc) from None

    # -- status and catalogue ------------------------------------------------------------
    async def status(self) -> dict[str, Any]:
        """Who ctx.api acts as, the inspector's address and the limits in force."""
        user = None
        reason = None
        try:
            api = self.ctx.api
            user = api.user and {"id": api.user.get("id"), "username": api.user.get("username")}
        except Exception as exc:
            reason = str(exc)
        return {"user": user, "api_problem": reason,
                "inspector": {"url": self.inspector.base_url, "port": self.inspector.port,
                              "reachable_by_v1": self.announced,
                              "problem": self.port_problem or self.announce_error},
                "tolerance_seconds": self.config.tolerance_seconds,
                "default_disable_after": self.config.default_disable_after,
                "max_body_bytes": self.config.max_body_bytes,
                "rate_limit_per_minute": self.config.rate_limit_per_minute,
                "forward_allowed_hosts": list(self.config.forward_allowed_hosts)}

    async def catalogue(self) -> Any:
        """The events a webhook can subscribe to (from the server)."""
        events = await self._call(self._api().webhooks.events())
        return _dump(events)

    # -- endpoints -----------------------------------------------------------------------
    async def _health_of(self, api: ScopedApi, hook: dict[str, Any]) -> dict[str, Any]:
        log = await api.webhooks.deliveries(hook["id"], limit=HEALTH_WINDOW)
        return health(hook, [_dump(d) for d in log.deliveries])

    async def list_endpoints(self) -> Any:
        """Every endpoint of the signed-in user with its health."""
        api = self._api()
        listing = await self._call(api.webhooks.list(limit=100))
        hooks = [_dump(h) for h in listing.webhooks]
        figures = await self._call(asyncio.gather(
            *(self._health_of(api, h) for h in hooks)))
        for hook, figure in zip(hooks, figures, strict=True):
            hook["health"] = figure
            self._note_state(hook)
        return {"endpoints": hooks, "total": listing.total}

    def _note_state(self, hook: dict[str, Any]) -> None:
        """Publish (once) that an endpoint was switched off automatically."""
        before = self.seen_webhooks.get(hook["id"])
        self.seen_webhooks[hook["id"]] = hook
        if (before is not None and before.get("active") and not hook.get("active")
                and hook.get("disabled_reason")):
            notice = {"webhook_id": hook["id"], "url": _short(hook["url"]),
                      "reason": hook["disabled_reason"]}
            self.hub.publish("disabled", notice)
            self.ctx.publish("webhook.disabled", notice)  # the desktop window hears it too

    async def get_endpoint(self, webhook_id: str) -> Any:
        api = self._api()
        hook = _dump(await self._call(api.webhooks.get(webhook_id)))
        hook["health"] = await self._call(self._health_of(api, hook))
        return hook

    async def create_endpoint(self, body: EndpointBody) -> Any:
        """Register an endpoint; the answer holds its secret, shown this once."""
        _check_url(body.url)
        disable_after = (self.config.default_disable_after if body.disable_after is None
                         else body.disable_after)
        hook = await self._call(self._api().webhooks.register(
            body.url.strip(), body.events, secret=body.secret,
            description=body.description, active=body.active,
            disable_after=disable_after))
        return JSONResponse(_dump(hook), status_code=201)

    async def update_endpoint(self, webhook_id: str, body: EndpointUpdate) -> Any:
        if body.url is not None:
            _check_url(body.url)
        hook = await self._call(self._api().webhooks.update(
            webhook_id, url=body.url, events=body.events, description=body.description,
            active=body.active, disable_after=body.disable_after))
        data = _dump(hook)
        self.seen_webhooks[webhook_id] = data
        return data

    async def delete_endpoint(self, webhook_id: str) -> Any:
        result = await self._call(self._api().webhooks.delete(webhook_id))
        for inbox in await asyncio.to_thread(self.store.inboxes):
            if inbox["webhook_id"] == webhook_id:
                await asyncio.to_thread(self.store.update_inbox, inbox["id"],
                                        {"webhook_id": None})
        return _dump(result)

    async def test_endpoint(self, webhook_id: str, wait: bool = True) -> Any:
        """Send a ``webhook.test`` delivery; by default answers after its first attempt."""
        delivery = await self._call(self._api().webhooks.test(webhook_id, wait=wait,
                                                              timeout=WAIT_TIMEOUT))
        self._kick()
        return _dump(delivery)

    async def rotate(self, webhook_id: str, body: RotateBody | None = None) -> Any:
        """A new secret (in this answer only); the old one stays valid for the grace. An
        inbox receiving this endpoint learns the new secret too, so it keeps verifying."""
        body = body or RotateBody()
        hook = await self._call(self._api().webhooks.rotate_secret(
            webhook_id, grace_seconds=body.grace_seconds))
        data = _dump(hook)
        grace_until = time.time() + body.grace_seconds if body.grace_seconds else None
        updated = []
        for inbox in await asyncio.to_thread(self.store.inboxes):
            if inbox["webhook_id"] == webhook_id and data.get("secret"):
                await asyncio.to_thread(self.store.set_secret, inbox["id"], data["secret"],
                                        grace_until)
                updated.append(inbox["id"])
        data["inboxes_updated"] = updated
        return data

    async def recover(self, webhook_id: str, body: RecoverBody) -> Any:
        """Send again every failed delivery since ``since`` that was not sent again yet."""
        since = _ts(body.since)
        assert since is not None
        result = await self._call(self._api().webhooks.recover(
            webhook_id, since, until=_ts(body.until)))
        self._kick()
        return JSONResponse(_dump(result), status_code=202)

    async def get_snippets(self, webhook_id: str) -> Any:
        """Verification code for a receiver of this endpoint (Python, Node, Go)."""
        hook = await self._call(self._api().webhooks.get(webhook_id))
        return snippets(hook.signature_header or "X-PlexiChat-Signature",
                        hook.timestamp_header or "X-PlexiChat-Timestamp",
                        self.config.tolerance_seconds)

    # -- the delivery log ----------------------------------------------------------------
    async def deliveries(
        self, webhook_id: str | None = None,
        status: Literal["pending", "retrying", "delivered", "failed"] | None = None,
        event: str | None = Query(None, max_length=100),
        since: datetime | None = None, until: datetime | None = None,
        limit: int = Query(50, ge=1, le=100), offset: int = Query(0, ge=0),
    ) -> Any:
        """The log across endpoints, newest first, with filters."""
        log = await self._call(self._api().webhooks.all_deliveries(
            webhook_id=webhook_id or None, status=status, event=event or None,
            since=_ts(since), until=_ts(until), limit=limit, offset=offset))
        return _dump(log)

    async def delivery(self, delivery_id: str) -> Any:
        return _dump(await self._call(self._api().webhooks.delivery(delivery_id)))

    async def resend(self, delivery_id: str) -> Any:
        """Send one delivery again (a new delivery, the same body)."""
        delivery = await self._call(self._api().webhooks.redeliver(delivery_id, wait=True,
                                                                   timeout=WAIT_TIMEOUT))
        self._kick()
        return _dump(delivery)

    # -- live ------------------------------------------------------------------------------
    async def stream(self) -> Any:
        """Server-Sent Events: ``capture``, ``forward``, ``delivery`` (changed rows of the
        log, followed while a page listens), ``disabled`` (an endpoint switched off)."""
        if self._follow_task is None or self._follow_task.done():
            self._follow_task = self.ctx.create_task(self._follow(),
                                                     name="webhook_manager follow log")
        return self.ctx.event_stream(self.hub.events(first=[("hello", {
            "inspector": self.inspector.base_url})]))

    def _kick(self) -> None:
        idle = self._follow_task is None or self._follow_task.done()
        if idle and self.hub.subscriber_count:
            self._follow_task = self.ctx.create_task(self._follow(),
                                                     name="webhook_manager follow log")

    async def _follow(self) -> None:
        """Poll the log for changed deliveries while anyone listens (the v1 server has no
        push for its delivery log); stops by itself when the last page closes."""
        cursor = datetime.now(UTC)
        seen: dict[str, str] = {}
        rounds = 0
        await asyncio.sleep(0)  # let the stream subscribe first
        while self.hub.subscriber_count:
            rounds += 1
            try:
                api = self._api()
                changed, complete = await changed_deliveries(api, cursor)
                # More than a page's queue can hold (512 events, the oldest dropped): the
                # pages read the log again instead, told by one event that cannot be lost.
                many = not complete or len(changed) > PUSHED_AT_ONCE
                if many:
                    self.hub.publish("resync", {"reason": "many deliveries changed"})
                # Not past the newest of the first page: a row updated while the later
                # pages were read (moved to the top, so skipped by their offsets) is newer
                # than that and comes with the next poll.
                newest = changed[0].updated_at if changed else None
                for delivery in reversed(changed):
                    data = _dump(delivery)
                    stamp = str(data.get("updated_at"))
                    if seen.get(data["id"]) != stamp:
                        seen[data["id"]] = stamp
                        if not many:
                            self.hub.publish("delivery", data)
                if newest is not None and newest > cursor:
                    # A millisecond back: rows updated in the same millisecond as the
                    # newest one seen are not skipped (``seen`` drops the repeats).
                    cursor = newest.replace(microsecond=max(0, newest.microsecond - 1000))
                if len(seen) > 5000:
                    seen.clear()
                if rounds % 5 == 0:  # endpoints switched off meanwhile
                    listing = await api.webhooks.list(limit=100)
                    for hook in listing.webhooks:
                        self._note_state(_dump(hook))
            except Problem:
                pass  # nobody signed in: nothing to follow yet
            except Exception as exc:  # a hiccup of the API must not end the live log
                self.ctx.logger.debug("following the delivery log: %s", exc)
            await asyncio.sleep(self.config.poll_interval)

    # -- inspector routes ------------------------------------------------------------------
    def _inbox_out(self, row: dict[str, Any]) -> dict[str, Any]:
        return inbox_dict(row, self.inspector.base_url)

    async def _check_forward(self, url: str | None, template: str | None) -> None:
        if url:
            try:
                await self.forwarder.check(url)
            except TargetRefused as exc:
                raise InspectorProblem("forward_url", str(exc).split(": ", 1)[-1]) from None
        if template:
            # It must render for some event the inbox may get: one written for
            # file.uploaded (data.filename) was refused because only message.sent's
            # sample was tried.
            first: TemplateProblem | None = None
            for event in SAMPLE_EVENTS:
                try:
                    await asyncio.to_thread(render, template, sample_payload(event))
                    break
                except TemplateProblem as exc:
                    first = first or exc
            else:
                assert first is not None
                raise InspectorProblem("forward_template",
                                       str(first).split(": ", 1)[-1]) from None

    async def list_inboxes(self) -> dict[str, Any]:
        rows = await asyncio.to_thread(self.store.inboxes)
        return {"inboxes": [self._inbox_out(r) for r in rows],
                "inspector": self.inspector.base_url}

    async def create_inbox(self, body: InboxBody) -> Any:
        """A new inbox with its own URL; ``secret`` to verify with (optional)."""
        await self._check_forward(body.forward_url, body.forward_template)
        created = await asyncio.to_thread(
            self.store.create_inbox, body.name, secret=body.secret,
            tolerance=body.tolerance or self.config.tolerance_seconds,
            respond_status=body.respond_status)
        row: dict[str, Any] | None = created
        if body.forward_url or body.forward_template:
            row = await asyncio.to_thread(self.store.update_inbox, created["id"], {
                "forward_url": body.forward_url, "forward_template": body.forward_template})
        assert row is not None
        return JSONResponse(self._inbox_out(row), status_code=201)

    async def update_inbox(self, inbox_id: str, body: InboxUpdate) -> Any:
        changes = body.model_dump(exclude_unset=True)
        await self._check_forward(changes.get("forward_url"),
                                  changes.get("forward_template"))
        if await asyncio.to_thread(self.store.inbox, inbox_id) is None:
            raise InspectorProblem("inbox_id", f"no inbox {inbox_id!r}", 404)
        secret = changes.pop("secret", None)
        for key in ("name", "tolerance", "respond_status"):
            if key in changes and changes[key] is None:
                raise InspectorProblem(key, "cannot be null")
        if secret:
            await asyncio.to_thread(self.store.set_secret, inbox_id, secret)
        row = await asyncio.to_thread(self.store.update_inbox, inbox_id, changes)
        assert row is not None
        return self._inbox_out(row)

    async def delete_inbox(self, inbox_id: str) -> Any:
        if not await asyncio.to_thread(self.store.delete_inbox, inbox_id):
            raise InspectorProblem("inbox_id", f"no inbox {inbox_id!r}", 404)
        return {"success": True, "inbox_id": inbox_id}

    async def inbox_webhook(self, inbox_id: str, body: InboxWebhookBody) -> Any:
        """Register a v1 webhook that delivers to this inbox; the inbox keeps its secret
        to verify with. The answer holds the secret, shown this once."""
        row = await asyncio.to_thread(self.store.inbox, inbox_id)
        if row is None:
            raise InspectorProblem("inbox_id", f"no inbox {inbox_id!r}", 404)
        url = self._inbox_out(row)["url"]
        hook = await self._call(self._api().webhooks.register(
            url, body.events, description=body.description or f"Inspector: {row['name']}",
            disable_after=(self.config.default_disable_after if body.disable_after is None
                           else body.disable_after)))
        assert hook.secret is not None
        await asyncio.to_thread(self.store.set_secret, inbox_id, hook.secret)
        await asyncio.to_thread(self.store.update_inbox, inbox_id, {"webhook_id": hook.id})
        return JSONResponse(_dump(hook), status_code=201)

    async def captures(self, inbox_id: str, verdict: Literal["pass", "fail"] | None = None,
                       limit: int = Query(100, ge=1, le=500)) -> Any:
        if await asyncio.to_thread(self.store.inbox, inbox_id) is None:
            raise InspectorProblem("inbox_id", f"no inbox {inbox_id!r}", 404)
        found = await asyncio.to_thread(self.store.captures, inbox_id, limit, verdict)
        return {"captures": found}

    async def clear_captures(self, inbox_id: str) -> Any:
        removed = await asyncio.to_thread(self.store.clear, inbox_id)
        return {"success": True, "removed": removed}

    async def capture(self, capture_id: str) -> Any:
        found = await asyncio.to_thread(self.store.capture, capture_id)
        if found is None:
            raise InspectorProblem("capture_id", f"no capture {capture_id!r}", 404)
        return found

    # -- templates -------------------------------------------------------------------------
    async def templates(self) -> dict[str, Any]:
        """The integration presets and a sample payload to preview them with."""
        return {"presets": PRESETS, "sample": sample_payload()}

    async def preview(self, body: PreviewBody) -> Any:
        """Render a template for a payload (the sample of ``event`` by default); 422 with
        the line for a template that is wrong."""
        payload = body.payload if body.payload is not None else sample_payload(body.event)
        try:
            output = await asyncio.to_thread(render, body.template, payload)
        except TemplateProblem as exc:
            return JSONResponse({"detail": str(exc), "field": exc.field, "line": exc.line},
                                status_code=422)
        return {"output": output, "payload": payload}

    async def teardown(self) -> None:
        """Stop following the log before the API client goes away."""
        if self._follow_task is not None:
            self._follow_task.cancel()


def _short(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/…"


__all__ = ["WebhookManagerPlugin", "WebhookSettings"]
