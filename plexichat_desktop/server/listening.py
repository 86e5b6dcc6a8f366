"""What serving needs before the rest of the core: the bound loopback socket and the
gate that answers until the app exists. Light on purpose (no uvicorn, no FastAPI): the
desktop window and ``serve`` bind their port with it before the core is imported."""

from __future__ import annotations

import asyncio
import errno
import json
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from plexichat_desktop.server.security import SECURITY_HEADERS, bearer_of, normalised_path

if TYPE_CHECKING:
    from plexichat_desktop.server.security import (
        ASGIApp,
        Receive,
        Scope,
        Send,
        ServerIdentity,
    )

HOST = "127.0.0.1"


class PortInUseError(OSError):
    """The configured port is taken; the message says what to do about it."""


def bind_socket(port: int) -> socket.socket:
    """Bind 127.0.0.1:port (0 = any free port) now, so a taken port fails early and clearly."""
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # is IPPROTO_TCP, and proto 0 is inherited otherwise. Without NODELAY every keep-alive
    # response waits ~40 ms for the client's delayed ACK (Nagle), on loopback too.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise PortInUseError(
                exc.errno,
                f"port {port} on {HOST} is already in use (another PlexiChat Desktop or "
                "another program holds it); pick another with --port N, use --port 0 for "
                "any free port, or set [server] port in settings.toml") from None
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class AppGate:
    """The ASGI app a server answers with before the real one exists.

    ``serve`` listens first and imports and builds the rest of the core afterwards (FastAPI,
    the plugin host, the stores: most of its start-up). Meanwhile ``GET /healthz`` that
    passes the checks the app would make (an allowed Host, the app token or a browser
    session) is answered here with ``health()`` (``ready: false``); every other request,
    and a /healthz without a credential, waits for :meth:`install` and then goes to the
    app, which applies all its checks: nothing is answered early unchecked, or with a 404
    only because the route does not exist yet. Requests still waiting when the start is
    abandoned (:meth:`close`) get 503."""

    def __init__(self, identity: ServerIdentity, health: Callable[[], dict[str, Any]]):
        self.identity = identity
        self.health = health
        self.app: ASGIApp | None = None
        self.waiting = 0  # requests held until the app is installed
        self._settled = asyncio.Event()

    def install(self, app: ASGIApp) -> None:
        """From now on every request goes to ``app``; the waiting ones too."""
        self.app = app
        self._settled.set()

    def close(self) -> None:
        """The app will not come (stopping, or its start failed)."""
        self._settled.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        if app is None:
            if self._early_health(scope):
                await self._answer(scope, send, 200, self.health())
                return
            self.waiting += 1
            try:
                await self._settled.wait()
            finally:
                self.waiting -= 1
            app = self.app
            if app is None:
                await self._answer(scope, send, 503, {"detail": "the app is stopping"})
                return
        await app(scope, receive, send)

    def _early_health(self, scope: Scope) -> bool:
        # GET only, as the app's route: a HEAD waits for the app's 405.
        if scope["type"] != "http" or scope.get("method") != "GET":
            return False
        if normalised_path(scope.get("path", "") or "/") != "/healthz":
            return False
        headers: dict[str, str] = {}
        for raw_key, raw_value in scope.get("headers", []):
            key = raw_key.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            # Repeated headers are joined as the security middleware joins them.
            headers[key] = (headers[key] + ("; " if key == "cookie" else ", ") + value
                            if key in headers else value)
        identity = self.identity
        return headers.get("host", "") in identity.allowed_hosts and (
            identity.token_ok(bearer_of(headers)) or identity.session_of(headers) is not None)

    @staticmethod
    async def _answer(scope: Scope, send: Send, status: int, body: dict[str, Any]) -> None:
        if scope["type"] == "websocket":
            # Closing before accept makes uvicorn refuse the handshake.
            await send({"type": "websocket.close", "code": 1013, "reason": body["detail"]})
            return
        data = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()), *SECURITY_HEADERS]})
        await send({"type": "http.response.body",
                    "body": data if scope.get("method") != "HEAD" else b""})
