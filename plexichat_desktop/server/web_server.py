"""Running uvicorn inside the already-running asyncio loop (plain asyncio or qasync)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

log = logging.getLogger(__name__)
HOST = "127.0.0.1"


class PortInUseError(OSError):
    """The configured port is taken; the message says what to do about it."""


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would replace our SIGINT/SIGTERM handlers and re-raise the signal after
        # shutdown; the application owns signals and stops the server itself.
        yield


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


class WebServer:
    """One uvicorn server on one pre-bound loopback socket."""

    def __init__(self, app: Any, port: int, shutdown_timeout: float = 3.0):
        self._sock = bind_socket(port)
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, lifespan="off", access_log=True,
                                timeout_graceful_shutdown=shutdown_timeout, ws="auto")
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

    async def stop(self) -> None:
        if self._task is None:
            self._sock.close()
            return
        self._server.should_exit = True
        try:
            await self._task
        finally:
            self._task = None
            self._sock.close()
