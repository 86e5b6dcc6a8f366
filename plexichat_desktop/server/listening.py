"""What serving needs before the rest of the core: the bound loopback socket and the
gate that answers until the app exists. Light on purpose (no uvicorn, no FastAPI): the
desktop window and ``serve`` bind their port with it before the core is imported, and
the window's first pages are answered by the gate from their files (:class:`EarlyFiles`)
while the core is still being imported."""

from __future__ import annotations

import asyncio
import errno
import json
import mimetypes
import os
import socket
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
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
# Bytes of the largest file the gate answers itself (read whole on the event loop, the
# window's main thread); the app streams larger ones. The shared vendor bundles are ~0.8 MB.
EARLY_FILE_LIMIT = 2 * 1024 * 1024

# Debian images may lack /etc/mime.types; the types of web files must never depend on it.
MIME_TYPES = {
    ".html": "text/html", ".htm": "text/html", ".js": "text/javascript",
    ".mjs": "text/javascript", ".css": "text/css", ".json": "application/json",
    ".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp",
    ".ico": "image/vnd.microsoft.icon", ".woff": "font/woff", ".woff2": "font/woff2",
    ".ttf": "font/ttf", ".wasm": "application/wasm", ".map": "application/json",
    ".txt": "text/plain", ".md": "text/markdown",
}


def register_mime_types() -> None:
    """Make :data:`MIME_TYPES` what :mod:`mimetypes` (and the static file servers) use."""
    for ext, mime in MIME_TYPES.items():
        mimetypes.add_type(mime, ext)


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


class EarlyFiles:
    """The files the gate answers itself before the app exists, as the app would answer
    them: below each prefix of ``pages`` (``/plugins/<id>/``) the files of a plugin's web
    folder, a folder's ``index.html`` included, never its ``api/`` (the plugin's routes);
    below each prefix of ``assets`` (``/_app/``) the files of that folder. Nothing outside
    a folder, symbolic links included.

    Only what is plainly a file is answered early; anything else (a missing file, a
    folder without its slash, a range, a file over :data:`EARLY_FILE_LIMIT` bytes, which
    the app streams) waits for the app, which answers as ever. A page
    answered early can still turn out to belong to a plugin that does not start: the
    desktop window then shows why in its place."""

    def __init__(self, pages: Mapping[str, Path], assets: Mapping[str, Path]):
        register_mime_types()
        self.pages = {prefix: Path(os.path.realpath(folder)) for prefix, folder in pages.items()}
        self.assets = {prefix: Path(os.path.realpath(folder))
                       for prefix, folder in assets.items()}
        self._folders = [(prefix, folder, True) for prefix, folder in self.pages.items()]
        self._folders += [(prefix, folder, False) for prefix, folder in self.assets.items()]

    def file_for(self, path: str) -> Path | None:
        """The file to answer ``path`` (normalised) with, or None to leave it to the app."""
        for prefix, folder, page in self._folders:
            if not path.startswith(prefix):
                continue
            rel = path[len(prefix):]
            if page and (rel == "api" or rel.startswith("api/")):
                return None
            if page and (rel == "" or rel.endswith("/")):
                rel += "index.html"
            if "\\" in rel or "\x00" in rel or ".." in rel.split("/"):
                return None
            real = os.path.realpath(folder / rel)
            if os.path.commonpath([real, folder]) != str(folder):
                return None
            try:
                info = os.stat(real)
            except OSError:
                return None
            if not stat.S_ISREG(info.st_mode) or info.st_size > EARLY_FILE_LIMIT:
                return None
            return Path(real)
        return None


class AppGate:
    """The ASGI app a server answers with before the real one exists.

    ``serve`` listens first and imports and builds the rest of the core afterwards (FastAPI,
    the plugin host, the stores: most of its start-up). Meanwhile ``GET /healthz`` that
    passes the checks the app would make (an allowed Host, the app token or a browser
    session) is answered here with ``health()`` (``ready: false``); every other request,
    and a /healthz without a credential, waits for :meth:`install` and then goes to the
    app, which applies all its checks: nothing is answered early unchecked, or with a 404
    only because the route does not exist yet. Requests still waiting when the start is
    abandoned (:meth:`close`) get 503.

    With :attr:`early` set (the desktop window's start), a GET or HEAD that passes the
    same checks and asks for one of its files is answered from that file."""

    def __init__(self, identity: ServerIdentity, health: Callable[[], dict[str, Any]]):
        self.identity = identity
        self.health = health
        self.app: ASGIApp | None = None
        self.waiting = 0  # requests held until the app is installed
        self.early: EarlyFiles | None = None
        self._settled = asyncio.Event()

    def install(self, app: ASGIApp) -> None:
        """From now on every request goes to ``app``; the waiting ones too."""
        self.app = app
        self._settled.set()

    def close(self) -> None:
        """The app will not come (stopping, or its start failed): nothing is answered
        early any more either."""
        self.early = None
        self._settled.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        if app is None:
            if self._early_health(scope):
                await self._answer(scope, send, 200, self.health())
                return
            early = self._early_file(scope)
            if early is not None:
                await self._send_file(scope, send, *early)
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
        return (scope.get("method") == "GET" and self._owner_asks(scope) is not None
                and normalised_path(scope.get("path", "") or "/") == "/healthz")

    def _early_file(self, scope: Scope) -> tuple[str, bytes] | None:
        """The name and content of the early file a request asks for, if any."""
        if self.early is None or scope.get("method") not in ("GET", "HEAD"):
            return None
        headers = self._owner_asks(scope)
        if headers is None or "range" in headers:
            return None
        file = self.early.file_for(normalised_path(scope.get("path", "") or "/"))
        try:
            # At most EARLY_FILE_LIMIT bytes from the local disk: read at once.
            return (file.name, file.read_bytes()) if file is not None else None
        except OSError:
            return None

    def _owner_asks(self, scope: Scope) -> dict[str, str] | None:
        """The headers of an HTTP request that passes the app's checks of its Host and of
        its credential (the app token or a browser session), else None."""
        if scope["type"] != "http":
            return None
        headers: dict[str, str] = {}
        for raw_key, raw_value in scope.get("headers", []):
            key = raw_key.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            # Repeated headers are joined as the security middleware joins them.
            headers[key] = (headers[key] + ("; " if key == "cookie" else ", ") + value
                            if key in headers else value)
        identity = self.identity
        if headers.get("host", "") in identity.allowed_hosts and (
                identity.token_ok(bearer_of(headers)) or identity.session_of(headers) is not None):
            return headers
        return None

    @staticmethod
    async def _send_file(scope: Scope, send: Send, name: str, data: bytes) -> None:
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if mime.startswith("text/"):  # as Starlette's FileResponse says it
            mime += "; charset=utf-8"
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", mime.encode()), (b"content-length", str(len(data)).encode()),
            # As the app's plugin pages: revalidated at every load (the app's answers
            # carry the validators this one lacks).
            (b"cache-control", b"no-cache"), *SECURITY_HEADERS]})
        await send({"type": "http.response.body",
                    "body": data if scope.get("method") != "HEAD" else b""})

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
