"""The realtime WebSocket subscription: reconnects by itself and rejoins its rooms.

The socket authenticates with an ``Authorization: Bearer`` header (the token never appears
in a URL). When the connection drops (server restart, network), the subscription waits
with exponential backoff and jitter and connects again with a fresh token, then rejoins
every room it was in and restores the presence it set. Events sent while it was away are
not replayed by the server: a ``subscription.open`` event with ``reconnect: true`` tells
the consumer to refetch what it shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from api_integration_layer.client import websocket_url
from api_integration_layer.endpoints import ENDPOINTS, Endpoint
from api_integration_layer.errors import ApiError
from api_integration_layer.models import RealtimeEvent

if TYPE_CHECKING:
    from api_integration_layer.client import ApiClient

log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
OPEN_EVENT = "subscription.open"
CLOSED_EVENT = "subscription.closed"
MAX_FRAME = 1 << 20


class NotConnected(ApiError):
    """A frame that only makes sense live (typing) was sent while disconnected."""


class Subscription:
    """One realtime socket of the client's session.

    States: ``idle`` (not started), ``connecting``, ``open``, ``reconnecting``,
    ``closed`` (by :meth:`close`) and ``unauthorized`` (the session ended: log in and
    subscribe again). ``connects`` counts successful connections, ``reconnects`` the
    ones after the first.
    """

    def __init__(self, client: ApiClient, rooms: list[str] | tuple[str, ...] = (), *,
                 check: Callable[[Endpoint], None] | None = None, queue_size: int = 256):
        self._client = client
        self._check = check or (lambda endpoint: None)
        self.rooms: dict[str, None] = dict.fromkeys(rooms)
        self.url = websocket_url(client.base_url, ENDPOINTS["realtime.subscribe"].path)
        self.state = "idle"
        self.connected = asyncio.Event()
        self.welcome: dict[str, Any] | None = None
        self.connects = 0
        self.dropped = 0
        self.last_error: str | None = None
        self._presence: str | None = None
        self._queue: asyncio.Queue[RealtimeEvent] = asyncio.Queue(maxsize=max(1, queue_size))
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._finished = asyncio.Event()
        self._handlers: dict[str, list[Callable[[RealtimeEvent], Any]]] = {}
        self._closed_callbacks: list[Callable[[Subscription], Any]] = []
        self._rng = random.Random()

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def start(self) -> Subscription:
        """Start connecting in the background (returns at once)."""
        if self._task is None and not self._closing:
            self.state = "connecting"
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"realtime subscription {id(self):x}")
        return self

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the socket is open (raises ``TimeoutError``, or :class:`NotConnected`
        when the subscription ended instead)."""
        async with asyncio.timeout(timeout):
            while not self.connected.is_set():
                if self._finished.is_set():
                    raise NotConnected(f"realtime subscription ended ({self.state}): "
                                       f"{self.last_error}")
                waiter = asyncio.ensure_future(self.connected.wait())
                finisher = asyncio.ensure_future(self._finished.wait())
                try:
                    await asyncio.wait({waiter, finisher}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    finisher.cancel()

    async def close(self) -> None:
        """Close the socket and stop reconnecting; iteration ends after queued events."""
        if self._closing:
            if self._task is not None:
                await asyncio.gather(self._task, return_exceptions=True)
            return
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._finish("closed", None)

    def on_closed(self, callback: Callable[[Subscription], Any]) -> None:
        """Call ``callback(subscription)`` once it has ended (closed or unauthorized)."""
        self._closed_callbacks.append(callback)

    def _finish(self, state: str, reason: str | None) -> None:
        if self._finished.is_set():
            return
        self.state = state
        if reason:
            self.last_error = reason
        self.connected.clear()
        self._push(RealtimeEvent(type=CLOSED_EVENT, data={"state": state, "reason": reason}))
        self._finished.set()
        for callback in self._closed_callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("realtime: on_closed callback %r failed", callback)

    async def __aenter__(self) -> Subscription:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- sending -------------------------------------------------------------------------
    async def _send(self, frame: dict[str, Any]) -> bool:
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(json.dumps(frame))
        except ConnectionClosed:
            return False  # the receive loop notices and reconnects
        return True

    async def join(self, room_id: str) -> None:
        """Join ``room_id`` now (when connected) and after every reconnect."""
        self._check(ENDPOINTS["realtime.subscribe"])
        self.rooms[room_id] = None
        await self._send({"type": "join_room", "room_id": room_id})

    async def leave(self, room_id: str) -> None:
        self._check(ENDPOINTS["realtime.subscribe"])
        self.rooms.pop(room_id, None)
        await self._send({"type": "leave_room", "room_id": room_id})

    async def typing(self, room_id: str, is_typing: bool = True) -> None:
        """Tell the room the user is (not) typing; only meaningful live."""
        self._check(ENDPOINTS["realtime.typing"])
        if not await self._send({"type": "typing", "room_id": room_id, "is_typing": is_typing}):
            raise NotConnected("realtime: not connected; typing was not sent")

    async def set_presence(self, status: str) -> None:
        """``online``, ``away``, ``busy`` or ``offline``; restored after reconnects."""
        self._check(ENDPOINTS["realtime.presence"])
        self._presence = status
        await self._send({"type": "presence", "status": status})

    async def ping(self) -> None:
        if not await self._send({"type": "ping"}):
            raise NotConnected("realtime: not connected")

    # -- receiving -----------------------------------------------------------------------
    def on(self, event_type: str, handler: Callable[[RealtimeEvent], Any]) -> None:
        """Call ``handler(event)`` for every event of ``event_type`` (``"*"``: all), as it
        arrives; events still queue for iteration."""
        self._handlers.setdefault(event_type, []).append(handler)

    def _push(self, event: RealtimeEvent) -> None:
        for handler in [*self._handlers.get(event.type, ()), *self._handlers.get("*", ())]:
            try:
                handler(event)
            except Exception:
                log.exception("realtime: handler %r for %s failed", handler, event.type)
        if self._queue.full():
            # A consumer that stopped reading loses the oldest events, not the newest.
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> RealtimeEvent:
        while True:
            if not self._queue.empty():
                return self._queue.get_nowait()
            if self._finished.is_set():
                raise StopAsyncIteration
            getter = asyncio.ensure_future(self._queue.get())
            finisher = asyncio.ensure_future(self._finished.wait())
            try:
                await asyncio.wait({getter, finisher}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                finisher.cancel()
                if not getter.done():
                    getter.cancel()
            if getter.done() and not getter.cancelled():
                return getter.result()

    async def next(self, event_type: str | None = None, *, timeout: float | None = None,
                   match: Callable[[RealtimeEvent], bool] | None = None) -> RealtimeEvent:
        """The next event (of ``event_type``, for which ``match`` is true); others are
        consumed and skipped. Raises ``TimeoutError``, or ``NotConnected`` when the
        subscription ends first."""
        async with asyncio.timeout(timeout):
            async for event in self:
                if (event_type is None or event.type == event_type) and (
                        match is None or match(event)):
                    return event
        raise NotConnected(f"realtime subscription ended ({self.state})")

    # -- the connection loop ---------------------------------------------------------------
    def _backoff(self, attempt: int) -> float:
        cap = self._client.config.ws_reconnect_max_delay
        step = min(cap, self._client.config.retry_base_delay * (2 ** attempt) or 0.05)
        return step / 2 + self._rng.uniform(0, step / 2)

    async def _run(self) -> None:
        attempt = 0
        session = self._client.session
        while not self._closing:
            self.state = "connecting" if self.connects == 0 else "reconnecting"
            try:
                token = await session.access_token()
            except ApiError as exc:
                token, self.last_error = None, str(exc)
            if token is None:
                self._finish("unauthorized", self.last_error or "not logged in")
                return
            close_code: int | None = None
            try:
                async with connect(self.url, additional_headers={
                        "Authorization": f"Bearer {token}"},
                        open_timeout=self._client.config.timeout, close_timeout=2,
                        max_size=MAX_FRAME, ping_interval=20, ping_timeout=20) as ws:
                    await self._opened(ws)
                    attempt = 0
                    async for raw in ws:
                        self._dispatch(raw)
                    close_code = ws.close_code
            except InvalidStatus as exc:
                self.last_error = f"handshake refused: HTTP {exc.response.status_code}"
                if exc.response.status_code in (401, 403):
                    close_code = CLOSE_UNAUTHORIZED
            except ConnectionClosed as exc:
                close_code = exc.rcvd.code if exc.rcvd else None
                self.last_error = f"connection closed ({close_code})"
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                self._ws = None
                self.connected.clear()
            if self._closing:
                return
            if close_code == CLOSE_UNAUTHORIZED and not await session.recover(token):
                # Logged out, revoked or expired beyond refresh: reconnecting cannot help.
                self._finish("unauthorized", self.last_error or "the session ended")
                return
            self.state = "reconnecting"
            delay = self._backoff(attempt)
            attempt += 1
            log.info("realtime: disconnected (%s); reconnecting in %.2f s", self.last_error,
                     delay)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for could drop a cancel
            # that met the wait just as it ended (close() also sets _closing, which ends
            # the loop; a cancel from anywhere else would have been lost).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._finished.wait()

    async def _opened(self, ws: ClientConnection) -> None:
        async with asyncio.timeout(self._client.config.timeout):
            raw = await ws.recv()
        event = self._parse(raw)
        if event.type == "welcome":
            self.welcome = dict(event.data)
        self._ws = ws
        for room in list(self.rooms):
            await ws.send(json.dumps({"type": "join_room", "room_id": room}))
        if self._presence:
            await ws.send(json.dumps({"type": "presence", "status": self._presence}))
        self.connects += 1
        self.state = "open"
        self.last_error = None
        self.connected.set()
        self._push(RealtimeEvent(type=OPEN_EVENT, data={
            "reconnect": self.connects > 1, "connects": self.connects,
            "rooms": list(self.rooms), "welcome": self.welcome}))
        if event.type != "welcome":
            self._push(event)

    def _parse(self, raw: str | bytes) -> RealtimeEvent:
        try:
            message = json.loads(raw)
            return RealtimeEvent.model_validate(message)
        except (ValueError, ValidationError):
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            return RealtimeEvent(type="invalid", data={"raw": text[:200]})

    def _dispatch(self, raw: str | bytes) -> None:
        self._push(self._parse(raw))

    def snapshot(self) -> dict[str, Any]:
        return {"state": self.state, "rooms": list(self.rooms), "connects": self.connects,
                "reconnects": self.reconnects, "dropped": self.dropped,
                "last_error": self.last_error}
