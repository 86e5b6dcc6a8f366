"""One fan-out of live events to a plugin's open event streams: :class:`EventHub`.

A plugin that pushes live figures to its page keeps one hub, publishes ``(name, data)``
events into it from anywhere in the loop, and serves each page connection with
``ctx.event_stream(hub.events(first=[...]))``::

    from plexichat_desktop.plugins.hub import EventHub

    class Monitor(Plugin):
        def setup(self, ctx):
            self.hub = EventHub()
            ctx.add_route("/stream", self.stream)

        async def stream(self):
            # the current state first, then every event published from now on
            return self.ctx.event_stream(self.hub.events(first=[("state", self.state())]))

        def changed(self):
            self.hub.publish("state", self.state())   # never waits

The host's job model (``ctx.jobs``) streams through one of these too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

Event = tuple[str, Any]

__all__ = ["Event", "EventHub"]


class EventHub:
    """Hands each published ``(name, data)`` event to every subscriber's bounded queue.

    Publishing never waits: when a connection's queue is full (a slow or stalled client)
    its oldest event is dropped (and counted in :attr:`dropped`), because for a live page
    the newest state matters and one stuck browser tab must not hold up the publisher or
    use unbounded memory. Pages that must not miss anything re-read the state over HTTP
    when they reconnect (the first events of :meth:`events`).
    """

    def __init__(self, maxsize: int = 256):
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self.dropped = 0
        self._queues: set[asyncio.Queue[Event]] = set()

    @property
    def subscriber_count(self) -> int:
        """How many connections are listening (publish nothing costly when 0)."""
        return len(self._queues)

    def subscribe(self) -> asyncio.Queue[Event]:
        """A new queue that receives every event from now on; :meth:`unsubscribe` it."""
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=self.maxsize)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        """Stop feeding ``queue``; unknown queues are ignored."""
        self._queues.discard(queue)

    def publish(self, name: str, data: Any) -> None:
        """Offer an event to every subscriber, dropping a full queue's oldest event."""
        for queue in list(self._queues):
            if queue.full():
                queue.get_nowait()
                self.dropped += 1
            queue.put_nowait((name, data))

    async def events(self, first: Iterable[Event] = ()) -> AsyncIterator[Event]:
        """Yield ``first``, then every published event, until the consumer closes it.

        Subscribes before yielding ``first`` (so nothing published meanwhile is lost) and
        unsubscribes when the generator is closed or cancelled (the client went away or
        the plugin is stopping). Pass it to ``ctx.event_stream``.
        """
        queue = self.subscribe()
        try:
            for event in first:
                yield event
            while True:
                yield await queue.get()
        finally:
            self.unsubscribe(queue)
