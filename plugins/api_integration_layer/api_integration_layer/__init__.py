"""API Integration Layer: the PlexiChat v1 client every plugin shares.

The layer owns one :class:`client.ApiClient` (session, cache, rate limiter, request log)
pointed at the app's embedded server by default (``<app url>/api/v1``) or at the
``base_url`` setting. Other plugins get it through ``ctx.api``, limited to the scopes their
manifest declares (:mod:`scoped`). Its page shows the connection, the user, the rate limit
and a live log of requests, and logs in and out.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api_integration_layer.activity import RequestRecord
from api_integration_layer.client import ApiClient
from api_integration_layer.config import ClientConfig, ConfigError
from api_integration_layer.endpoints import SCOPES
from api_integration_layer.errors import ApiError, ApiHTTPError, ApiUnavailable, MfaRequired
from api_integration_layer.scoped import ScopedApi
from api_integration_layer.tokens import make_token_store
from plexichat_desktop.plugins.api import Plugin, PluginContext

SERVICE_NAME = "api"
# How often the connection check pings the server while the page is open.
PROBE_INTERVAL = 10.0
# The first check waits until the app's start (and the window's first pages) is over:
# it is the embedded server's first request, which builds that server's routes.
FIRST_PROBE_DELAY = 2.0


class LoginForm(BaseModel):
    username: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=256)
    remember_me: bool = False


class SecondStepForm(BaseModel):
    """The second step of a login for an account with 2FA (the page asks for the code)."""

    mfa_token: str = Field(min_length=1, max_length=200)
    code: str = Field(min_length=1, max_length=40,
                      description="A 6-digit code, or a recovery code.")


class RegisterForm(BaseModel):
    username: str = Field(min_length=1, max_length=50)
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=256)
    display_name: str | None = Field(None, max_length=100)
    remember_me: bool = False


def _error_response(exc: ApiError) -> JSONResponse:
    if isinstance(exc, ApiHTTPError):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)
    return JSONResponse({"detail": str(exc)}, status_code=502)


class ApiIntegrationLayerPlugin(Plugin):
    """Provides the ``api`` service and the layer's page."""

    settings_model = ClientConfig

    def setup(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.config: ClientConfig = ctx.config
        self.embedded = not self.config.base_url
        if self.embedded:
            if ctx.server_url is None:
                raise ConfigError("no base_url is set and the app's server URL is unknown; "
                                  "set [plugin.api_integration_layer] base_url")
            base_url = ctx.server_url.rstrip("/") + "/api/v1"
        else:
            base_url = self.config.base_url
        self.store = make_token_store(self.config.token_storage, ctx.data_dir)
        # The embedded server's port may change between runs; its session does not.
        self.client = ApiClient(base_url, self.config, token_store=self.store,
                                token_key="embedded" if self.embedded else base_url,
                                owner_token=ctx.app_token if self.embedded else None,
                                memory=ctx.memory)
        self.consumers: dict[str, ScopedApi] = {}
        self.profile: dict[str, Any] | None = None
        self.server: dict[str, Any] | None = None
        self.probe_latency_ms: float | None = None
        self.checked_at: float | None = None
        self._check_lock = asyncio.Lock()
        self.client.session.on_change(self._session_changed)
        self.client.activity.extra = lambda: {"rate_limit": self.client.limiter.snapshot()}
        self.client.activity.listeners.append(self._on_request)
        ctx.provide(SERVICE_NAME, self._facade)
        ctx.on_teardown(self.client.aclose)

        ctx.add_route("/status", self.status_route)
        ctx.add_route("/log", self.log_route)
        ctx.add_route("/events", self.events_route)
        ctx.add_route("/scopes", self.scopes_route)
        ctx.add_route("/login", self.login_route, methods=["POST"])
        ctx.add_route("/login-2fa", self.login_2fa_route, methods=["POST"])
        ctx.add_route("/register", self.register_route, methods=["POST"])
        ctx.add_route("/logout", self.logout_route, methods=["POST"])
        ctx.add_route("/discovery", self.discovery_route)
        self._monitor_task = ctx.create_task(self._monitor(),
                                             name="api_integration_layer monitor")
        ctx.logger.info("PlexiChat v1 client for %s (%s); tokens kept in %s", base_url,
                        "embedded server" if self.embedded else "remote server",
                        self.store.kind)

    async def teardown(self) -> None:
        """Stop the connection check before the client closes under it."""
        self._monitor_task.cancel()
        await asyncio.gather(self._monitor_task, return_exceptions=True)

    # -- the service ---------------------------------------------------------------------
    def _facade(self, consumer: PluginContext) -> ScopedApi:
        scopes = consumer.manifest.permissions.api_scopes
        api = ScopedApi(self.client, consumer.plugin_id, scopes)
        self.consumers[consumer.plugin_id] = api
        self.ctx.logger.info("plugin %s gets the API client with scopes %s",
                             consumer.plugin_id, scopes or "(none)")

        async def release() -> None:
            self.consumers.pop(consumer.plugin_id, None)
            await api.realtime.close_all()

        consumer.on_teardown(release)
        self._publish_status()
        return api

    # -- status --------------------------------------------------------------------------
    def connection_state(self) -> str:
        if self.client.last_error is not None:
            return "offline"
        return "online" if self.client.last_ok_at is not None else "unknown"

    def status(self) -> dict[str, Any]:
        session = self.client.session
        user = None
        if session.tokens is not None:
            user = {"id": session.tokens.user_id, "username": session.tokens.username,
                    "display_name": (self.profile or {}).get("display_name"),
                    "is_admin": (self.profile or {}).get("is_admin")}
        return {
            "base_url": self.client.base_url,
            "embedded": self.embedded,
            "connection": {"state": self.connection_state(),
                           "last_ok_at": self.client.last_ok_at,
                           "last_error": self.client.last_error,
                           "checked_at": self.checked_at,
                           "latency_ms": self.probe_latency_ms},
            "server": self.server,
            "user": user,
            "session": session.describe(),
            "token_storage": self.store.kind,
            "rate_limit": self.client.limiter.snapshot(),
            "cache": self.client.cache.stats(),
            "requests_total": self.client.activity.total,
            "consumers": [{"plugin_id": pid, "scopes": list(api.scopes)}
                          for pid, api in sorted(self.consumers.items())],
            "realtime": [s.snapshot() for s in self.client._subscriptions],
            "generated_at": time.time(),
        }

    def _publish_status(self) -> None:
        self.client.activity.hub.publish("status", self.status())

    def _session_changed(self, session: Any) -> None:
        # A logout, or a login as someone else (perhaps by another plugin): the profile
        # shown belongs to the previous user.
        if session.tokens is None or (self.profile or {}).get("id") != session.tokens.user_id:
            self.profile = None
        self._publish_status()

    def _on_request(self, record: RequestRecord) -> None:
        # The page showed the name from the sign-in after any plugin changed it.
        if record.endpoint == "users.update_me" and record.error is None \
                and record.status is not None and record.status < 300:
            self.ctx.create_task(self._reload_profile(), name="api_integration_layer profile")

    async def _reload_profile(self) -> None:
        await self._load_profile()
        self._publish_status()

    async def _load_profile(self) -> None:
        try:
            profile = await self.client.users.me()
        except ApiError as exc:
            self.ctx.logger.info("could not read the current user's profile: %s", exc)
            return
        self.profile = profile.model_dump(mode="json")

    async def _check(self) -> None:
        """Ping the server, learn what it is once, load the profile once."""
        # One check at a time: the monitor and a status request must not both discover.
        async with self._check_lock:
            await self._check_now()

    async def _check_now(self) -> None:
        try:
            self.probe_latency_ms = round(await self.client.probe() * 1000, 3)
        except ApiUnavailable:
            self.probe_latency_ms = None
        self.checked_at = time.time()
        if self.client.last_error is None:
            if self.server is None:
                try:
                    self.server = (await self.client.discover()).to_dict()
                except ApiError as exc:
                    self.ctx.logger.info("discovery failed: %s", exc)
            if self.client.session.logged_in and self.profile is None:
                await self._load_profile()
        self._publish_status()

    async def _monitor(self) -> None:
        await asyncio.sleep(FIRST_PROBE_DELAY)
        await self._check()
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            # Only while the page is open: a ping every few seconds nobody looks at would
            # just fill the server's access log.
            if self.client.activity.hub.subscriber_count:
                await self._check()

    # -- routes --------------------------------------------------------------------------
    async def status_route(self) -> dict[str, Any]:
        """Connection, user, session, rate limit, cache and the plugins using the API."""
        if self.checked_at is None or time.time() - self.checked_at > PROBE_INTERVAL:
            await self._check()
        return self.status()

    async def log_route(self, limit: int = 100) -> dict[str, Any]:
        """The most recent requests, oldest first."""
        limit = max(0, min(limit, self.config.log_size))
        return {"requests": self.client.activity.recent(limit),
                "total": self.client.activity.total}

    async def events_route(self) -> Any:
        """Server-Sent Events: ``status`` at once and whenever it changes, a ``request``
        per call through the client."""
        return self.ctx.event_stream(self.client.activity.hub.events([("status",
                                                                       self.status())]))

    async def scopes_route(self) -> dict[str, Any]:
        """Every API scope and what it allows."""
        return {"scopes": SCOPES}

    async def login_route(self, form: LoginForm) -> Any:
        """Log in to the configured server; the session is shared with every plugin."""
        try:
            await self.client.auth.login(form.username, form.password,
                                         remember_me=form.remember_me)
        except MfaRequired as step:
            # The page asks for the code and answers with /login-2fa.
            return {"requires_mfa": True, "mfa_token": step.mfa_token,
                    "username": step.username, "expires_in": step.expires_in,
                    "methods": step.methods}
        except ApiError as exc:
            return _error_response(exc)
        await self._load_profile()
        self._publish_status()
        return self.status()

    async def login_2fa_route(self, form: SecondStepForm) -> Any:
        """Complete a 2FA login: a 6-digit code or a recovery code."""
        answer = form.code.strip()
        digits = answer.replace(" ", "")
        is_totp = digits.isdigit() and len(digits) == 6
        try:
            await self.client.auth.login_2fa(
                form.mfa_token, code=digits if is_totp else None,
                recovery_code=None if is_totp else answer)
        except ApiError as exc:
            return _error_response(exc)
        await self._load_profile()
        self._publish_status()
        return self.status()

    async def register_route(self, form: RegisterForm) -> Any:
        """Create an account, then log in with it."""
        try:
            await self.client.auth.register(form.username, form.email, form.password,
                                            display_name=form.display_name or None)
            await self.client.auth.login(form.username, form.password,
                                         remember_me=form.remember_me)
        except ApiError as exc:
            return _error_response(exc)
        await self._load_profile()
        self._publish_status()
        return self.status()

    async def logout_route(self) -> Any:
        """Sign out: the session ends on the server and is forgotten here. When the server
        could not be told, the answer's ``warning`` says the session may still be valid
        there (it is forgotten here either way)."""
        warning = None
        try:
            await self.client.auth.logout()
        except ApiUnavailable as exc:
            warning = ("signed out here, but the server could not be told "
                       f"({exc.reason}): the session stays valid there until it expires")
            self.ctx.logger.info("logout: %s", exc)
        except ApiError as exc:
            # The local session is gone either way (a server that no longer knew it).
            self.ctx.logger.info("logout: %s", exc)
        self._publish_status()
        return {**self.status(), "warning": warning}

    async def discovery_route(self) -> Any:
        """The server's description compared with the client's endpoints."""
        try:
            report = await self.client.discover()
        except ApiError as exc:
            return _error_response(exc)
        self.server = report.to_dict()
        return self.server


__all__ = ["ApiClient", "ApiIntegrationLayerPlugin", "ScopedApi"]
