"""Server-Sent Events responses, for plugins and the host alike.

``event_stream(source, stop)`` turns an async iterator of ``(event_name, data)`` pairs
(or ``(event_name, data, event_id)`` triples, for streams a client may resume with
``Last-Event-ID``; or an :class:`EventBatch` of them, sent in one write) into a
``text/event-stream`` response. It sends a comment every
``keepalive`` seconds so proxies and browsers keep the connection, and ends when ``stop``
is set (plugin teardown or server shutdown) or the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from plexichat_desktop.plugins.faults import without_exit

if TYPE_CHECKING:
    from starlette.responses import StreamingResponse


class EventBatch(list[tuple[Any, ...]]):
    """Several events a source has at once; the stream writes them in one chunk."""


def format_event(name: str, data: Any, event_id: str | None = None) -> str:
    """One SSE message; ``data`` is sent as JSON."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {name}")
    lines.extend(f"data: {line}" for line in json.dumps(data).splitlines() or [""])
    return "\n".join(lines) + "\n\n"


async def _stream(source: AsyncIterator[tuple[Any, ...] | EventBatch], stop: asyncio.Event,
                  keepalive: float, retry_ms: int) -> AsyncIterator[str]:
    yield f"retry: {retry_ms}\n\n"
    stop_wait: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    next_item: asyncio.Future[tuple[Any, ...] | EventBatch] | None = None
    try:
        while not stop.is_set():
            if next_item is None:
                # A task of its own: the plugin's source calling sys.exit() there ends
                # that task, not the app (see plugins.faults).
                next_item = asyncio.ensure_future(
                    without_exit(anext(source), "the event stream's source"))
            done, _ = await asyncio.wait({next_item, stop_wait}, timeout=keepalive,
                                         return_when=asyncio.FIRST_COMPLETED)
            if next_item in done:
                try:
                    item = next_item.result()
                except StopAsyncIteration:
                    return
                next_item = None
                yield "".join(format_event(name, data, str(rest[0]) if rest else None)
                              for name, data, *rest in (item if isinstance(item, EventBatch)
                                                        else [item]))
            elif not done:
                yield ": keepalive\n\n"
    finally:
        for fut in (stop_wait, next_item):
            if fut is not None and not fut.done():
                fut.cancel()
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            # RuntimeError: the generator is still inside the cancelled __anext__.
            with contextlib.suppress(RuntimeError):
                await aclose()


def event_stream(
    source: AsyncIterator[tuple[Any, ...] | EventBatch],
    stop: asyncio.Event,
    *,
    keepalive: float = 15.0,
    retry_ms: int = 3000,
) -> StreamingResponse:
    """A streaming SSE response fed by ``source`` until ``stop`` is set."""
    # Here, not at the top: the plugin API imports this module, and the CLI's commands
    # that only read manifests or results never answer an HTTP request.
    from starlette.responses import StreamingResponse

    return StreamingResponse(
        _stream(source, stop, keepalive, retry_ms),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# -- the client side, for plugin tests ---------------------------------------------------

async def read_events(response: Any) -> AsyncIterator[tuple[str, Any]]:
    """Parse a streaming ``text/event-stream`` response (an ``httpx`` response opened with
    ``client.stream(...)``) into ``(event name, JSON data)`` pairs."""
    name = "message"
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[len("event:"):].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:"):].strip())


async def next_event(events: AsyncIterator[tuple[str, Any]], wanted: str,
                     match: Callable[[Any], bool] | None = None) -> Any:
    """The data of the next event named ``wanted`` (for which ``match`` is true);
    ``AssertionError`` when the stream ends first."""
    async for name, data in events:
        if name == wanted and (match is None or match(data)):
            return data
    raise AssertionError(f"the stream ended before a {wanted!r} event")
