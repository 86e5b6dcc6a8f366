"""One event connection for all the app's pages: the live hub.

Chromium keeps at most six HTTP/1.1 connections per host, and every page that follows an
event stream holds one of them for as long as it is open: six live pages, and every
other request of the app (a page load, a click on Run) waits until one of them closes.
So the pages do not open their streams themselves. A SharedWorker (resources/web/live/
worker.js) holds one connection to ``GET /_live/stream`` for all pages of the browser
profile and asks for the streams its pages want with ``POST /_live/<hub id>``. The hub
runs each wanted stream as an in-process request to the app (no socket, no pool) and
forwards its events, tagged with the subscription's id, over the one connection.

Any SSE route of the app can be followed this way, unchanged: ``/events``,
``/tests/events`` (with ``Last-Event-ID`` catch-up: the worker remembers each
subscription's last id and sends it again when it resubscribes) and the plugins' own
streams. The in-process request carries the hub request's own credentials (Authorization,
cookies), so each route authenticates it as it would a request of the browser.

Messages on the hub stream (SSE event ``m``, data: a JSON list of items):
``{"s": id, "t": "open"}``, ``{"s": id, "t": "event", "e": name, "d": data, "i": id}``,
``{"s": id, "t": "end"}`` (the stream ended; resubscribe later, like EventSource) and
``{"s": id, "t": "fail", "status": code, "detail": text}`` (not a stream; do not retry).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from plexichat_desktop.plugins.sse import EventBatch, event_stream

log = logging.getLogger(__name__)

HUB_PREFIX = "/_live"
MAX_SUBSCRIPTIONS = 500          # per hub connection: far above what one profile's pages use
MAX_QUEUED = 20_000              # items waiting for a stalled hub connection before it is dropped
FAIL_DETAIL_BYTES = 2000
# Headers of the hub request that an in-process request keeps: who is asking, not what.
FORWARDED_HEADERS = {b"host", b"authorization", b"cookie", b"user-agent", b"accept-language",
                     b"x-plexichat-app-token"}


class Subscription(BaseModel):
    id: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=1, max_length=2000,
                     description="a path of this server, with its query (e.g. /events)")
    last_event_id: str | None = Field(default=None, max_length=100)


class HubChange(BaseModel):
    subscribe: list[Subscription] = Field(default_factory=list, max_length=MAX_SUBSCRIPTIONS)
    unsubscribe: list[str] = Field(default_factory=list, max_length=MAX_SUBSCRIPTIONS)


class SseParser:
    """Incremental ``text/event-stream`` parsing: bytes in, (name, data, id) out."""

    def __init__(self) -> None:
        self._buffer = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, chunk: bytes) -> list[tuple[str, str, str | None]]:
        self._buffer += self._decoder.decode(chunk).replace("\r\n", "\n").replace("\r", "\n")
        events = []
        while "\n\n" in self._buffer:
            block, self._buffer = self._buffer.split("\n\n", 1)
            name, data, event_id = "message", [], None
            for line in block.split("\n"):
                if not line or line.startswith(":"):
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    name = value
                elif field == "data":
                    data.append(value)
                elif field == "id":
                    event_id = value
            if data:
                events.append((name, "\n".join(data), event_id))
        return events


class HubConnection:
    """One ``/_live/stream`` response and the in-process streams it carries."""

    def __init__(self, hub_id: str, scope: dict[str, Any]):
        self.id = hub_id
        self._scope = scope
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closing: dict[str, asyncio.Event] = {}
        self.overflowed = asyncio.Event()

    def put(self, item: dict[str, Any]) -> None:
        if self._queue.qsize() >= MAX_QUEUED:
            # The page side stopped reading: end the connection; the worker reconnects and
            # resubscribes from its last event ids.
            if not self.overflowed.is_set():
                self.overflowed.set()
                log.warning("live hub %s: the page side stopped reading; dropping it",
                            self.id[:6])
                self._queue.put_nowait({"t": "overflow"})  # wakes batches() to end
            return
        self._queue.put_nowait(item)

    async def batches(self) -> AsyncIterator[EventBatch]:
        yield EventBatch([("hello", {"hub": self.id})])
        while not self.overflowed.is_set():
            first = await self._queue.get()
            items = [first]
            while not self._queue.empty():
                items.append(self._queue.get_nowait())
            yield EventBatch([("m", items)])

    def change(self, change: HubChange) -> int:
        for sid in change.unsubscribe:
            self._stop(sid)
        for sub in change.subscribe:
            if not sub.url.startswith("/") or sub.url.startswith("//") \
                    or sub.url.startswith(HUB_PREFIX):
                self.put({"s": sub.id, "t": "fail", "status": 400,
                          "detail": "url: must be a path of this server (not the hub itself)"})
                continue
            self._stop(sub.id)
            if len(self._tasks) >= MAX_SUBSCRIPTIONS:
                self.put({"s": sub.id, "t": "fail", "status": 429,
                          "detail": f"at most {MAX_SUBSCRIPTIONS} streams per connection"})
                continue
            closing = asyncio.Event()
            self._closing[sub.id] = closing
            self._tasks[sub.id] = asyncio.get_running_loop().create_task(
                self._follow(sub, closing), name=f"live hub {self.id[:6]} {sub.url}")
        return len(self._tasks)

    def _stop(self, sid: str) -> None:
        closing = self._closing.pop(sid, None)
        task = self._tasks.pop(sid, None)
        if closing is not None:
            closing.set()
        if task is not None:
            # The route sees a client that went away; a route that ignores that is
            # cancelled (a stream must never outlive the last page that wanted it).
            asyncio.get_running_loop().call_later(2.0, task.cancel)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for sid in list(self._tasks):
            self._stop(sid)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self, sub: Subscription, closing: asyncio.Event) -> None:
        path, _, query = sub.url.partition("?")
        headers = [(k, v) for k, v in self._scope.get("headers", [])
                   if k.lower() in FORWARDED_HEADERS]
        headers.append((b"accept", b"text/event-stream"))
        if sub.last_event_id:
            headers.append((b"last-event-id", sub.last_event_id.encode("latin-1", "replace")))
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "method": "GET", "scheme": self._scope.get("scheme", "http"),
            "path": path, "raw_path": path.encode(), "query_string": query.encode(),
            "root_path": "", "headers": headers, "client": self._scope.get("client"),
            "server": self._scope.get("server"), "state": dict(self._scope.get("state", {})),
        }
        parser = SseParser()
        state: dict[str, Any] = {"status": 0, "stream": False, "body": b""}
        asked = False

        async def receive() -> dict[str, Any]:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await closing.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if closing.is_set():
                return
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                ctype = dict(message.get("headers", [])).get(b"content-type", b"")
                state["stream"] = message["status"] == 200 and \
                    ctype.startswith(b"text/event-stream")
                if state["stream"]:
                    self.put({"s": sub.id, "t": "open"})
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                if state["stream"]:
                    for name, data, event_id in parser.feed(body):
                        self.put({"s": sub.id, "t": "event", "e": name, "d": data,
                                  "i": event_id})
                elif len(state["body"]) < FAIL_DETAIL_BYTES:
                    state["body"] += body[:FAIL_DETAIL_BYTES]

        app = self._scope["app"]
        # Followed in-process, past the wrapper that builds the app's deferred routes
        # (the /tests API: built after the plugins started, in a test's core only when
        # asked for): the parts this path may need are waited for and built here as that
        # wrapper would.
        deferred = getattr(app.state, "deferred_routes", None)
        if deferred is not None:
            await deferred.ready_for(path)
        try:
            await app(scope, receive, send)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a route that raised: its page hears why, the hub stays
            log.warning("live hub: %s raised %s", sub.url, exc, exc_info=exc)
            state["stream"], state["status"] = False, 500
            state["body"] = f"{type(exc).__name__}: {exc}".encode()
        if closing.is_set():
            return
        if state["stream"]:
            self.put({"s": sub.id, "t": "end"})
        else:
            self.put({"s": sub.id, "t": "fail", "status": state["status"] or 500,
                      "detail": _detail(state["body"])})
        self._tasks.pop(sub.id, None)
        self._closing.pop(sub.id, None)


def _detail(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    with contextlib.suppress(ValueError, AttributeError):
        detail = json.loads(text).get("detail")
        if isinstance(detail, str):
            return detail
    return text[:FAIL_DETAIL_BYTES] or "not an event stream"


def live_hub_router(stopping: asyncio.Event) -> APIRouter:
    """``GET /_live/stream`` and ``POST /_live/<hub id>``."""
    router = APIRouter(prefix=HUB_PREFIX, include_in_schema=False)
    connections: dict[str, HubConnection] = {}

    @router.get("/stream")
    async def stream(request: Request) -> Any:
        hub_id = secrets.token_urlsafe(16)
        connection = HubConnection(hub_id, dict(request.scope))
        connections[hub_id] = connection

        async def source() -> AsyncIterator[EventBatch]:
            try:
                async for batch in connection.batches():
                    yield batch
            finally:
                connections.pop(hub_id, None)
                await connection.close()

        return event_stream(source(), stopping)

    @router.post("/{hub_id}")
    async def change(hub_id: str, body: HubChange) -> dict[str, Any]:
        connection = connections.get(hub_id)
        if connection is None:
            raise HTTPException(404, "hub_id: no such hub connection (it ended); reconnect")
        return {"subscriptions": connection.change(body)}

    return router
