"""The v1 sub-application mounted at ``/api/v1``, and the ASGI guard in front of it.

The guard does three things no route should have to remember:
* it refuses request bodies over the limit of their path with 413: at once from the
  ``Content-Length`` header when there is one (the body is not waited for), else while
  the body streams in;
* it times every request for ``/performance`` (status and latency);
* an unexpected exception becomes a JSON 500 ``{"detail": ...}`` (and a logged traceback)
  instead of a bare text error.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute

from plexichat_desktop import __version__
from plexichat_desktop.server.strict_json import refuse_at_once, validation_error_response
from plexichat_desktop.server.v1 import deps
from plexichat_desktop.server.v1.routes import (
    account_security,
    ai,
    analytics,
    auth,
    backup,
    collaboration,
    files,
    groups,
    keys,
    messages,
    notifications,
    performance,
    realtime,
    search,
    system,
    users,
    webhooks,
)

if TYPE_CHECKING:
    from plexichat_desktop.server.v1.service import ApiV1

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_BODY_LIMIT = 1 << 20
MULTIPART_OVERHEAD = 64 * 1024
DRAIN_LIMIT = 64 << 20
ROUTERS = (auth, users, messages, files, groups, search, notifications, system, realtime,
           webhooks, analytics, backup, performance, account_security,
           keys, collaboration, ai)


class _BodyTooLarge(HTTPException):
    pass


class V1Guard:
    """Pure ASGI wrapper of the v1 FastAPI app; see the module docstring."""

    def __init__(self, app: FastAPI, api: ApiV1):
        self.app = app
        self.api = api

    def body_limit(self, path: str) -> int:
        mib = 1 << 20
        if path.endswith("/files/upload"):
            return int(self.api.settings.max_upload_mb * mib) + MULTIPART_OVERHEAD
        if path.endswith("/backup/upload"):
            return int(self.api.settings.max_backup_mb * mib) + MULTIPART_OVERHEAD
        return JSON_BODY_LIMIT

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The routes are shared by every v1 app of the process; this request's
        # dependency overrides are this app's (see _SharedOverrides).
        serving = _serving.set(self.app)
        try:
            await self._guarded(scope, receive, send)
        finally:
            _serving.reset(serving)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        limit = self.body_limit(scope.get("path", ""))
        status = 500
        response_started = False

        async def send_tracking(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
            await send(message)

        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await refuse_at_once(send_tracking, receive, 413, _too_large(limit))
            self.api.perf.record_request(time.perf_counter() - started, 413)
            return
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if message.get("more_body", False):
                        await _drain(receive)
                    raise _BodyTooLarge(413, _too_large(limit))
            return message

        try:
            await self.app(scope, receive_limited, send_tracking)
        except ClientDisconnect:
            status = 499  # the client left (or was timed out) mid-body: nobody to answer
        except Exception:
            if response_started:
                raise
            log.exception("v1 API: unexpected error in %s %s", scope.get("method"),
                          scope.get("path"))
            await _json(send_tracking, 500, "internal error in the PlexiChat v1 API; the "
                                            "server log has the details")
        finally:
            self.api.perf.record_request(time.perf_counter() - started, status)


async def _drain(receive: Receive) -> None:
    """Read and drop the rest of a refused body (up to ``DRAIN_LIMIT`` bytes): closing a
    socket with unread data resets it, and the client would never see the 413."""
    drained = 0
    while drained <= DRAIN_LIMIT:
        message = await receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _too_large(limit: int) -> str:
    return f"request body too large: at most {limit} bytes here"


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _needs_auth(dependant: Dependant) -> bool:
    return any(dep.call in (deps.current_user, deps.authenticate) or _needs_auth(dep)
               for dep in dependant.dependencies)


def _needs_admin(dependant: Dependant) -> bool:
    return any(dep.call is deps.admin_user or _needs_admin(dep)
               for dep in dependant.dependencies)


def describe_routes(app: FastAPI, prefix: str) -> list[dict[str, Any]]:
    """Every route of the app as ``{method, path, group, name, auth, admin}``: the
    discovery list is generated from the routers themselves, so it cannot go stale like the
    origin's was. ``admin``: only administrators may call it (checked before the handler)."""
    out: list[dict[str, Any]] = []
    own = [r for r in app.routes if isinstance(r, APIRoute | APIWebSocketRoute)]
    for route in [*own, *(r for module in ROUTERS for r in module.router.routes)]:
        if isinstance(route, APIRoute) and route.include_in_schema:
            for method in sorted((route.methods or set()) - {"HEAD"}):
                out.append({"method": method, "path": prefix + route.path,
                            "group": route.tags[0] if route.tags else "root",
                            "name": route.name, "auth": _needs_auth(route.dependant),
                            "admin": _needs_admin(route.dependant)})
        elif isinstance(route, APIWebSocketRoute):
            out.append({"method": "WEBSOCKET", "path": prefix + route.path,
                        "group": "realtime", "name": route.name, "auth": True,
                        "admin": _needs_admin(route.dependant)})
    return out


# The v1 app currently serving a request (in that request's task).
_serving: contextvars.ContextVar[FastAPI | None] = contextvars.ContextVar(
    "plexichat_v1_app", default=None)


class _SharedOverrides:
    """The ``dependency_overrides`` of whichever v1 app serves the request: the shared
    routes are built once, so they cannot hold one app's overrides."""

    @property
    def dependency_overrides(self) -> dict[Any, Any]:
        app = _serving.get()
        return app.dependency_overrides if app is not None else {}


_shared_routes: list[BaseRoute] | None = None
_shared_lock = threading.Lock()


def _router_routes() -> list[BaseRoute]:
    """The routes of :data:`ROUTERS` as one included router each, built once per process.

    FastAPI analyses an included route (dependencies, body and response models, path
    pattern) the first time an app matches a request against it, and again for each
    app: ~0.2-0.3 s of CPU per Runtime (per core start in tests). Those route objects
    hold nothing of an app (the service is ``request.app.state.api``; the overrides come
    from :class:`_SharedOverrides`), so every v1 app serves the same ones."""
    global _shared_routes
    with _shared_lock:
        if _shared_routes is None:
            template = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
            template.router.dependency_overrides_provider = _SharedOverrides()
            before = len(template.router.routes)
            for module in ROUTERS:
                template.include_router(module.router)
            assert not (template.router.on_startup or template.router.on_shutdown), (
                "a v1 router with startup/shutdown handlers cannot be shared as is")
            _shared_routes = list(template.router.routes[before:])
        return _shared_routes


def create_v1_app(api: ApiV1) -> FastAPI:
    """Build the v1 FastAPI app over ``api``; ``app.state.asgi`` is the guarded callable."""
    app = FastAPI(title="PlexiChat v1 API (embedded)", version=__version__, docs_url=None,
                  redoc_url=None, openapi_url="/openapi.json",
                  description="The PlexiChat v1 REST API served by PlexiChat Desktop. "
                              "See docs/api-v1.md.")
    app.state.api = api
    # FastAPI's own handler fails (500) on inputs JSON cannot express, such as 1e400.
    app.add_exception_handler(RequestValidationError, validation_error_response)

    def info(request: Request) -> dict[str, Any]:
        prefix = request.scope.get("root_path", "").rstrip("/")
        routes = describe_routes(app, prefix)
        groups = sorted({r["group"] for r in routes if r["group"] != "root"})
        return {
            "name": "PlexiChat", "version": __version__, "api_version": "v1",
            "status": "online", "server": "plexichat-desktop-embedded",
            "base_path": prefix or "/",
            "endpoints": {group: f"{prefix}/{group}" for group in groups},
            "websocket": f"{prefix}/realtime/ws",
            "routes": routes,
            "auth": {"scheme": "bearer", "login": f"{prefix}/auth/login",
                     "refresh": f"{prefix}/auth/refresh",
                     "access_token_ttl": round(api.settings.access_token_minutes * 60)},
            "documentation": f"{prefix}/openapi.json",
        }

    @app.get("/", tags=["root"])
    async def discovery(request: Request) -> dict[str, Any]:
        """Name, version and every endpoint of this server (no auth)."""
        return info(request)

    @app.get("/info", tags=["root"])
    async def api_info(request: Request) -> dict[str, Any]:
        """The same description as ``GET /api/v1/`` (kept for origin clients)."""
        return info(request)

    # What app.include_router(module.router) for each of ROUTERS gives, already analysed.
    app.router.routes.extend(_router_routes())
    app.state.asgi = V1Guard(app, api)
    return app
