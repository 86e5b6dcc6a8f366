"""The ASGI application: host pages, the plugin API, plugin mounts, live events."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from plexichat_desktop import __version__
from plexichat_desktop.core.events import AppFocusRequested, EventBus
from plexichat_desktop.plugins.sse import event_stream
from plexichat_desktop.server import fastapi_compat
from plexichat_desktop.server.errors import error_responses
from plexichat_desktop.server.live_hub import live_hub_router
from plexichat_desktop.server.plugin_routes import PluginDispatcher
from plexichat_desktop.server.security import (
    SecurityMiddleware,
    ServerIdentity,
    bearer_of,
    cookie_name,
    legacy_cookie_name,
    safe_next,
)
from plexichat_desktop.server.strict_json import StrictJsonBodies, validation_error_response
from plexichat_desktop.testing.models import RunnerClosed

if TYPE_CHECKING:
    from fastapi import APIRouter
    from fastapi.templating import Jinja2Templates
    from starlette.types import Receive, Scope, Send

    from plexichat_desktop.plugins.manager import PluginManager
    from plexichat_desktop.scheduling.service import SchedulerService
    from plexichat_desktop.server.event_log import EventLog
    from plexichat_desktop.server.v1 import ApiV1
    from plexichat_desktop.testing.manager import TestManager

TESTS_PREFIX = "/tests"


class TestSide(Protocol):
    """What the /tests routes serve: the runtime's test manager and scheduler, made when
    first asked for; their requests wait for ``tests_ready()`` (both running)."""

    @property
    def tests(self) -> TestManager: ...

    @property
    def scheduler(self) -> SchedulerService: ...

    async def tests_ready(self) -> None: ...


@dataclass
class _Part:
    at: int  # where its routes go in the route list
    make: Callable[[], Sequence[APIRouter]]
    needed: Callable[[str], bool]
    order: int
    ready: Callable[[], Awaitable[None]] | None  # what its routes' requests wait for first


class DeferredRoutes:
    """Routes built after the server answers: the /tests API and its dashboards, and the
    app's own pages and API except ``/healthz``.

    FastAPI makes pydantic models for every route's parameters, body and answer: building
    the /tests routes (a third of the app's) took most of the app's build time, and the
    app's own fifteen ~12 ms of CPU more, which every start paid before ``/healthz`` said
    ready. Each deferred part is built by :meth:`build`: when the runtime has nothing more
    urgent to do (after the plugins started), or at once by the first request that may
    need it (its ``needed(path)``; the OpenAPI document, which must list them, needs all).
    Its routes go where they always were in the route list, so matching and the
    document's order do not change."""

    def __init__(self, app: FastAPI):
        self.app = app
        self._parts: list[_Part] = []
        self._waits: list[_Part] = []  # parts whose ``ready`` nobody has seen end yet

    def defer(self, make: Callable[[], Sequence[APIRouter]],
              needed: Callable[[str], bool],
              ready: Callable[[], Awaitable[None]] | None = None) -> None:
        """A part whose ``make`` adds its routes to the app or returns routers to
        include; they go where the next route added now would go. A request that may
        need it waits for ``ready`` first."""
        part = _Part(len(self.app.router.routes), make, needed, len(self._parts), ready)
        self._parts.append(part)
        if ready is not None:
            self._waits.append(part)

    @property
    def built(self) -> bool:
        return not self._parts

    def build(self, path: str | None = None) -> None:
        """Build every part, or with ``path`` those a request for it may need."""
        for part in list(self._parts):
            if self._needs(part, path):
                self._build(part)

    def _needs(self, part: _Part, path: str | None) -> bool:
        return path is None or path == self.app.openapi_url or part.needed(path)

    def _build(self, part: _Part) -> None:
        routes = self.app.router.routes
        before = len(routes)
        for router in part.make():
            self.app.include_router(router)
        added = routes[before:]
        del routes[before:]
        routes[part.at:part.at] = added
        self._parts.remove(part)
        for other in self._parts:  # parts after this one move down with it
            if other.at > part.at or (other.at == part.at and other.order > part.order):
                other.at += len(added)
        self.app.openapi_schema = None  # a document made before lacks them

    async def ready_for(self, path: str) -> None:
        """Wait for what a request for ``path`` may need, and build it."""
        for part in list(self._waits):
            if self._needs(part, path):
                assert part.ready is not None
                await part.ready()
                with contextlib.suppress(ValueError):  # removed by a request meanwhile
                    self._waits.remove(part)
        if self._parts:
            self.build(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Generous on purpose (no path normalising): building early costs nothing.
        if (self._parts or self._waits) and scope["type"] in ("http", "websocket"):
            await self.ready_for(scope.get("path", ""))
        await self.app(scope, receive, send)


# Paths no deferred route of the app's own can answer: served by /healthz, the mounts and
# the live hub, which are built at once (a plugin's page and its live updates come first),
# or by the /tests API.
_NOT_THE_APPS_OWN = ("/plugins/", "/_app/", "/_live/", "/api/v1/", TESTS_PREFIX)


def _needs_own_routes(path: str) -> bool:
    return path != "/healthz" and not path.startswith(_NOT_THE_APPS_OWN)


class _Declared:
    """Routes declared with the app's decorators' arguments and added to the app only by
    :meth:`add`, in the order declared (a :class:`DeferredRoutes` part)."""

    def __init__(self, app: FastAPI):
        self.app = app
        self._routes: list[tuple[str, str, dict[str, Any], Callable[..., Any]]] = []

    def get(self, path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self._declare("get", path, kwargs)

    def post(self, path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self._declare("post", path, kwargs)

    def _declare(self, method: str, path: str, kwargs: dict[str, Any]
                 ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def declare(endpoint: Callable[..., Any]) -> Callable[..., Any]:
            self._routes.append((method, path, kwargs, endpoint))
            return endpoint
        return declare

    def add(self) -> list[APIRouter]:
        for method, path, kwargs, endpoint in self._routes:
            getattr(self.app, method)(path, **kwargs)(endpoint)
        return []


def create_app(manager: PluginManager, bus: EventBus, identity: ServerIdentity,
               resources: Path, stopping: asyncio.Event, tests: TestSide, event_log: EventLog,
               api_v1: ApiV1 | None = None,
               later: list[Callable[[], None]] | None = None) -> SecurityMiddleware:
    """Build the app; the returned object is the ASGI callable to serve. The /tests
    routes are built on ``tests`` (its manager and scheduler are asked for only when they
    are built, and their requests wait for ``tests.tests_ready()``). ``api_v1``, when
    given, is mounted at ``/api/v1`` (it authenticates with its own tokens). With
    ``later``, work that can wait until the server answers (the /tests routes) is appended
    to it for the caller to run when it has time; a request that needs it runs it first.
    Without, everything is built now."""
    fastapi_compat.install()
    started_at = time.time()

    @functools.cache
    def templates() -> Jinja2Templates:
        # Made with the first page rendered: Jinja2's import (~50 ms) is not needed to
        # answer /healthz or a plugin's page, which come first.
        from fastapi.templating import Jinja2Templates

        return Jinja2Templates(directory=str(resources / "templates"))

    app = FastAPI(title="PlexiChat Desktop", version=__version__, docs_url=None,
                  redoc_url=None)
    app.state.manager = manager
    deferred = DeferredRoutes(app)
    app.state.deferred_routes = deferred  # the live hub follows routes past it
    # The app's own routes but /healthz and /events, added when first needed (see
    # DeferredRoutes), each part where its routes always were: before and after /healthz.
    before_healthz, after_healthz = _Declared(app), _Declared(app)
    deferred.defer(before_healthz.add, _needs_own_routes)

    def page(request: Request, name: str, status_code: int = 200, **context: Any
             ) -> HTMLResponse:
        return templates().TemplateResponse(request, name, {"version": __version__, **context},
                                          status_code=status_code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # A person opening a page gets a readable page; programs get {"detail": ...}.
        if "text/html" in request.headers.get("accept", "") and request.method == "GET":
            return page(request, "error.html", exc.status_code, status=exc.status_code,
                        detail=exc.detail)
        return await http_exception_handler(request, exc)

    @before_healthz.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index(request: Request) -> HTMLResponse:
        records = [r.to_dict() for r in manager.records]
        return page(request, "index.html", plugins=records, safe_mode=manager.safe_mode)

    app.add_exception_handler(RequestValidationError, validation_error_response)

    @app.exception_handler(RunnerClosed)
    async def runner_closed(request: Request, exc: RunnerClosed) -> Response:
        # A request cut short by the app's stop: try again once it runs, not a server bug.
        return JSONResponse({"detail": str(exc)}, status_code=503)

    def no_store(response: Response) -> Response:
        # A login answer must not be kept by caches or restored from history.
        response.headers["Cache-Control"] = "no-store"
        return response

    def login_page(request: Request, status_code: int, message: str | None,
                   next_path: str) -> Response:
        return no_store(page(request, "login.html", status_code, message=message,
                             next=next_path))

    def start_session(request: Request, target: str) -> Response:
        """The browser gets a fresh session cookie, host-only for the install host; the
        token itself never goes into a cookie."""
        install = f"{identity.install_host}:{identity.port}"
        if request.headers.get("host") != install:
            # Never set a cookie for 127.0.0.1 or localhost (sent to every port there):
            # move to the install host with a one-time code instead.
            code = identity.sessions.new_code()
            location = (f"{identity.browser_base}login?code={quote(code)}"
                        f"&next={quote(target)}")
            response = RedirectResponse(location, status_code=303)
        else:
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(cookie_name(identity.port), identity.sessions.create(),
                                max_age=int(identity.sessions.lifetime), httponly=True,
                                samesite="strict", path="/")
        # Older versions put the token itself into this cookie: remove it from the browser.
        response.delete_cookie(legacy_cookie_name(identity.port), path="/")
        return no_store(response)

    @before_healthz.get("/login", include_in_schema=False)
    async def login(request: Request, token: str | None = None, code: str | None = None,
                    next: str = "/") -> Response:
        target = safe_next(next)
        if code is not None:
            if request.headers.get("host") != f"{identity.install_host}:{identity.port}":
                # Redeemed where the cookie will live; the code is not used up here.
                return no_store(RedirectResponse(
                    f"{identity.browser_base}login?code={quote(code)}&next={quote(target)}",
                    status_code=303))
            if not identity.sessions.redeem(code):
                return login_page(request, 401, "That sign-in link was used already or has "
                                                "expired; sign in with the token.", target)
            return start_session(request, target)
        if token is None:
            return login_page(request, 200, None, target)
        if not identity.token_ok(token):
            return login_page(request, 401, "That token is not right.", target)
        return start_session(request, target)

    @before_healthz.post("/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        form = await request.form()
        token = form.get("token")
        target = safe_next(str(form.get("next") or "/"))
        if not isinstance(token, str) or not identity.token_ok(token.strip()):
            return login_page(request, 401, "That token is not right.", target)
        return start_session(request, target)

    @before_healthz.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        """End this browser's session (the cookie is worthless from now on)."""
        value = identity.session_of(request.headers)
        ended = identity.sessions.revoke(value)
        response: Response
        if "text/html" in request.headers.get("accept", ""):
            response = RedirectResponse("/login", status_code=303)
        else:
            response = JSONResponse({"signed_out": ended})
        response.delete_cookie(cookie_name(identity.port), path="/")
        return no_store(response)

    @before_healthz.get("/api/browser-sessions")
    async def browser_sessions() -> dict[str, Any]:
        """How many browsers are signed in, and the host name they use."""
        return {"active": identity.sessions.active, "host": identity.install_host,
                "lifetime_seconds": identity.sessions.lifetime}

    @before_healthz.post("/api/browser-sessions/revoke-all")
    async def revoke_browser_sessions() -> dict[str, Any]:
        """Sign out every browser (the desktop window's "Sign out all browsers")."""
        return {"revoked": identity.sessions.revoke_all()}

    @before_healthz.post("/api/browser-sessions/login-link", responses={
        403: {"description": "Not sent with the app token (a browser session)."}})
    async def browser_login_link(request: Request, next: str = "/") -> dict[str, Any]:
        """A link that signs a browser in once (a one-time code, not the token). Only for
        the token's holder: a browser session minting links could outlive its expiry."""
        if not identity.token_ok(bearer_of(request.headers)):
            raise HTTPException(403, "a login link needs 'Authorization: Bearer <token>'")
        return {"url": identity.login_link(next),
                "expires_in": identity.sessions.code_lifetime}

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        states: dict[str, int] = {}
        for rec in manager.records:
            states[str(rec.state)] = states.get(str(rec.state), 0) + 1
        return {"status": "ok", "version": __version__, "uptime": time.time() - started_at,
                "plugins": states, "plugins_started": manager.started.is_set(),
                # False only from serve's listener, before this app was built (AppGate).
                "ready": True}

    deferred.defer(after_healthz.add, _needs_own_routes)

    @after_healthz.get("/api/plugins")
    async def list_plugins() -> dict[str, Any]:
        return {"plugins": [r.to_dict() for r in manager.records]}

    def known(plugin_id: str) -> None:
        if plugin_id not in manager.by_id:
            raise HTTPException(404, f"no plugin with id '{plugin_id}'")

    @after_healthz.get("/api/plugins/{plugin_id}", responses=error_responses(404))
    async def get_plugin(plugin_id: str) -> dict[str, Any]:
        known(plugin_id)
        return manager.by_id[plugin_id].to_dict()

    @after_healthz.post("/api/plugins/{plugin_id}/enable", responses={
        **error_responses(404),
        409: {"description": "The plugin did not start: its record, with the reason."}})
    async def enable_plugin(plugin_id: str) -> JSONResponse:
        known(plugin_id)
        rec = await manager.enable(plugin_id)
        status = 200 if rec.running else 409
        return JSONResponse(rec.to_dict(), status_code=status)

    @after_healthz.post("/api/plugins/{plugin_id}/reload", responses={
        **error_responses(404),
        409: {"description": "The plugin did not start again: its record, with the reason."}})
    async def reload_plugin(plugin_id: str) -> JSONResponse:
        """Stop the plugin (and the plugins that need it), read its manifest and code again
        from disk and start them again. A disabled plugin stays disabled (409)."""
        known(plugin_id)
        rec = await manager.reload(plugin_id)
        return JSONResponse(rec.to_dict(), status_code=200 if rec.running else 409)

    @after_healthz.post("/api/plugins/{plugin_id}/disable", responses=error_responses(404))
    async def disable_plugin(plugin_id: str) -> dict[str, Any]:
        known(plugin_id)
        return (await manager.disable(plugin_id)).to_dict()

    @after_healthz.post("/api/app/focus")
    async def focus_window() -> dict[str, Any]:
        """Ask the desktop window (if any) to come to the front; a second launch uses it."""
        bus.publish(AppFocusRequested())
        return {"requested": True}

    # Built at once: the live hub follows it in-process, past DeferredRoutes.
    @app.get("/events", include_in_schema=False)
    async def events() -> Response:
        sub = bus.subscribe(name="sse /events", maxsize=500)

        async def source() -> AsyncIterator[tuple[str, Any]]:
            try:
                async for event in sub:
                    yield event.topic, event.to_dict()
            finally:
                sub.close()

        return event_stream(source(), stopping)

    # Pages follow /events and the other streams through one shared connection.
    app.include_router(live_hub_router(stopping))

    def test_routers() -> list[APIRouter]:
        from plexichat_desktop.server.dashboard_api import dashboard_router
        from plexichat_desktop.server.dashboard_pages import dashboard_pages
        from plexichat_desktop.server.tests_api import tests_router

        test_manager = tests.tests
        return [tests_router(test_manager, tests.scheduler, event_log, stopping),
                dashboard_router(test_manager, event_log),
                dashboard_pages(test_manager, templates(), __version__)]

    deferred.defer(test_routers, lambda path: TESTS_PREFIX in path, tests.tests_ready)
    if later is None:
        deferred.build()
    else:
        later.append(deferred.build)
    app.mount("/_app", StaticFiles(directory=str(resources / "web")), name="app-assets")
    app.mount("/plugins", PluginDispatcher(manager), name="plugins")
    if api_v1 is not None:
        app.mount("/api/v1", api_v1.asgi, name="api-v1")

    def unauthorized_page(detail: str, path: str) -> bytes:
        template = templates().get_template("login.html")
        return template.render(version=__version__, message=detail, next=path).encode()

    return SecurityMiddleware(StrictJsonBodies(deferred), identity, unauthorized_page)
