"""Running uvicorn inside the already-running asyncio loop (plain asyncio or qasync)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from plexichat_desktop.server.security import SECURITY_HEADERS, bearer_of, normalised_path

if TYPE_CHECKING:
    from plexichat_desktop.server.security import (
        ASGIApp,
        Receive,
        Scope,
        Send,
        ServerIdentity,
    )

log = logging.getLogger(__name__)
HOST = "127.0.0.1"


class ReadTimeoutsProtocol(H11Protocol):
    """uvicorn's h11 protocol with read deadlines, so idle or trickling clients cannot hold
    connections open (uvicorn only times out idle keep-alive connections):

    * ``header_timeout``: a request's headers must be complete within this many seconds of
      the connection opening (or of the previous response ending); bytes trickling in do
      not extend it;
    * ``body_timeout``: while the app waits for a request body, the client may pause this
      long between two reads.

    Long responses (SSE) are unaffected: the deadlines only run while the server waits for
    the client. A WebSocket upgrade hands the connection to another protocol.
    """

    header_timeout = 10.0
    body_timeout = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._arm(self.header_timeout, "request headers")

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, what)

    def _disarm(self) -> None:
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._deadline = None

    def _expired(self, what: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if what == "request body" and (self.flow.read_paused or
                                       self.conn.their_state is not h11.SEND_BODY):
            return  # we are not waiting for the client after all
        log.info("closing a connection from %s: no %s in time",
                 f"{self.client[0]}:{self.client[1]}" if self.client else "?", what)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._arm(self.body_timeout, "request body")
        elif state is not h11.IDLE:
            self._disarm()  # headers and body complete: the app has the request
        # IDLE: headers still incomplete; the header deadline keeps running.

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm(self.header_timeout, "request headers")

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._disarm()
        super().handle_websocket_upgrade(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def protocol_with_timeouts(header_timeout: float, body_timeout: float) -> type[H11Protocol]:
    """A :class:`ReadTimeoutsProtocol` class with the given deadlines."""
    return type("ConfiguredReadTimeoutsProtocol", (ReadTimeoutsProtocol,),
                {"header_timeout": header_timeout, "body_timeout": body_timeout})


class PortInUseError(OSError):
    """The configured port is taken; the message says what to do about it."""


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would replace our SIGINT/SIGTERM handlers and re-raise the signal after
        # shutdown; the application owns signals and stops the server itself.
        yield

    async def main_loop(self) -> None:
        """uvicorn's loop (a tick every 0.1 s), but woken at once by :meth:`exit`
        instead of at the next tick: stopping does not wait for it."""
        self._wake = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)
            should_exit = await self.on_tick(counter)

    def exit(self) -> None:
        self.should_exit = True
        wake = getattr(self, "_wake", None)
        if wake is not None:
            wake.set()


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


class WebServer:
    """One uvicorn server on one pre-bound loopback socket."""

    def __init__(self, app: Any, port: int, shutdown_timeout: float = 3.0,
                 header_timeout: float = 10.0, body_timeout: float = 30.0,
                 sock: socket.socket | None = None):
        # ``sock``: bound earlier by bind_socket() (the port is known before the app is).
        self._sock = sock if sock is not None else bind_socket(port)
        self.port: int = self._sock.getsockname()[1]
        # uvicorn annotates timeout_graceful_shutdown as int but only hands it to
        # asyncio.timeout(), which takes seconds as a float (the setting is a float).
        config = uvicorn.Config(app, log_config=None, lifespan="off", access_log=True,
                                timeout_graceful_shutdown=shutdown_timeout,  # type: ignore[arg-type]
                                ws="auto",
                                http=protocol_with_timeouts(header_timeout, body_timeout))
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._server.serve(sockets=[self._sock]), name="uvicorn")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the start-up error
                raise RuntimeError("the web server stopped during start-up")
            await asyncio.sleep(0.005)

    @property
    def open_connections(self) -> int:
        """HTTP connections the server holds now (WebSockets included)."""
        return len(self._server.server_state.connections)

    async def stop(self) -> None:
        if self._task is None:
            self._sock.close()
            return
        self._server.exit()
        try:
            await self._task
        finally:
            self._task = None
            self._sock.close()
