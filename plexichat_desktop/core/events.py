"""The event bus: the one way live state travels between the layers.

Publishers call :meth:`EventBus.publish`, which never blocks and never raises because of
a subscriber. Each subscriber owns a bounded queue; when a slow subscriber's queue is
full the oldest event in it is dropped (the newest state matters most for live views),
the drop is counted on the subscription and logged at most once per burst.

Events are frozen dataclasses deriving from :class:`Event`; each has a ``topic`` string
("plugin.state", "server.started", ...) that SSE streams and the Qt bridge use as a name.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every bus event. Subclasses set ``topic`` and add their fields."""

    topic: ClassVar[str] = "event"
    timestamp: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the topic under ``"topic"``."""
        return {"topic": self.topic, **dataclasses.asdict(self)}


@dataclass(frozen=True, kw_only=True)
class PluginStateChanged(Event):
    topic: ClassVar[str] = "plugin.state"
    plugin_id: str
    state: str
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class ServerStarted(Event):
    topic: ClassVar[str] = "server.started"
    url: str


@dataclass(frozen=True, kw_only=True)
class ServerStopping(Event):
    topic: ClassVar[str] = "server.stopping"


@dataclass(frozen=True, kw_only=True)
class AppFocusRequested(Event):
    """Another launch of the app asked the running one to show its window."""

    topic: ClassVar[str] = "app.focus"


@dataclass(frozen=True, kw_only=True)
class PluginEvent(Event):
    """A free-form event published by a plugin through ``ctx.publish``."""

    topic: ClassVar[str] = "plugin.event"
    plugin_id: str
    name: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class PluginReloaded(Event):
    """A plugin's files changed under ``plexichat-desktop dev`` (or a reload was asked for):
    ``kind`` is ``"code"`` (torn down and set up again; ``state``/``reason`` say how that
    went) or ``"page"`` (only files under ``web/`` changed). Open views of the plugin's
    pages reload on it; a failed code reload shows the reason instead."""

    topic: ClassVar[str] = "plugin.reloaded"
    plugin_id: str
    kind: str
    state: str
    reason: str | None = None
    files: list[str] = field(default_factory=list)


class Subscription:
    """A subscriber's bounded queue. Iterate it with ``async for``; close it when done."""

    def __init__(self, bus: EventBus, types: tuple[type[Event], ...], maxsize: int, name: str):
        self._bus = bus
        self.types = types
        self.name = name
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0
        self._closed = False

    def wants(self, event: Event) -> bool:
        return not self.types or isinstance(event, self.types)

    def offer(self, event: Event) -> None:
        if self._closed:
            return
        try:
            self.queue.put_nowait(event)
            return
        except asyncio.QueueFull:
            pass
        self.queue.get_nowait()
        self.queue.put_nowait(event)
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning("event subscriber %r is slow: %d event(s) dropped so far",
                        self.name, self.dropped)

    async def get(self) -> Event:
        return await self.queue.get()

    def close(self) -> None:
        self._closed = True
        self._bus._unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while not self._closed:
            yield await self.queue.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """Asyncio publish/subscribe with bounded per-subscriber queues.

    ``publish`` must be called from the loop's thread; other threads use
    ``publish_threadsafe``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self._subs: list[Subscription] = []
        self._loop = loop
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(
        self,
        types: type[Event] | Iterable[type[Event]] = (),
        *,
        maxsize: int = 1000,
        name: str = "subscriber",
    ) -> Subscription:
        """Subscribe to events of the given types (all events when empty)."""
        wanted = (types,) if isinstance(types, type) else tuple(types)
        sub = Subscription(self, wanted, maxsize, name)
        with self._lock:
            self._subs.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def publish(self, event: Event) -> None:
        """Hand ``event`` to every interested subscriber without waiting."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            if sub.wants(event):
                sub.offer(event)

    def publish_threadsafe(self, event: Event) -> None:
        """Publish from a thread other than the loop's."""
        if self._loop is None:
            raise RuntimeError("EventBus.bind(loop) was not called")
        self._loop.call_soon_threadsafe(self.publish, event)
