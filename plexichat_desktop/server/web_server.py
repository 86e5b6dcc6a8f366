"""Running uvicorn inside the already-running asyncio loop (plain asyncio or qasync)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from plexichat_desktop.core.waiting import wait_set
from plexichat_desktop.server.listening import HOST, bind_socket

if TYPE_CHECKING:
    from plexichat_desktop.core.settings import ServerSettings

log = logging.getLogger(__name__)


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
        if self.transport.is_closing() or getattr(self, "_upgraded", False):
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
        if self.transport.is_closing() or getattr(self, "_upgraded", False):
            # Upgraded during this call: h11 still says SEND_BODY, and arming the body
            # deadline here cut every WebSocket after body_timeout (1006 at 30 s).
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
        self._upgraded = True  # the connection is the WebSocket protocol's from here
        self._disarm()
        super().handle_websocket_upgrade(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def protocol_with_timeouts(header_timeout: float, body_timeout: float) -> type[H11Protocol]:
    """A :class:`ReadTimeoutsProtocol` class with the given deadlines."""
    return type("ConfiguredReadTimeoutsProtocol", (ReadTimeoutsProtocol,),
                {"header_timeout": header_timeout, "body_timeout": body_timeout})


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
            await wait_set(self._wake, 0.1)
            should_exit = await self.on_tick(counter)

    def exit(self) -> None:
        self.should_exit = True
        wake = getattr(self, "_wake", None)
        if wake is not None:
            wake.set()


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
        # proxy_headers off: the app is reached on loopback, never through a proxy, and
        # uvicorn trusts X-Forwarded-For from 127.0.0.1 by default: any local client could
        # have named another address, and with it got a fresh budget of the per-address
        # rate limits (e.g. registering). Also one middleware less per request.
        config = uvicorn.Config(app, log_config=None, lifespan="off", access_log=True,
                                timeout_graceful_shutdown=shutdown_timeout,  # type: ignore[arg-type]
                                ws="auto", proxy_headers=False,
                                http=protocol_with_timeouts(header_timeout, body_timeout))
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def configured(cls, app: Any, settings: ServerSettings, sock: socket.socket) -> WebServer:
        """A server for ``app`` on ``sock`` with the ``[server]`` settings' timeouts."""
        return cls(app, settings.port, settings.shutdown_timeout,
                   header_timeout=settings.header_timeout, body_timeout=settings.body_timeout,
                   sock=sock)

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
