"""Fan-out of live events to every open event stream, one bounded queue per connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

Event = tuple[str, Any]


class EventHub:
    """Hands each published ``(name, data)`` event to every subscriber's queue.

    Publishing never waits: when a connection's queue is full (a slow or stalled client)
    its oldest event is dropped, because for a live dashboard the newest figures matter
    and one stuck browser tab must not hold up the sampler or use unbounded memory.
    """

    def __init__(self, maxsize: int = 64):
        self.maxsize = maxsize
        self.dropped = 0
        self._queues: set[asyncio.Queue[Event]] = set()

    @property
    def subscriber_count(self) -> int:
        """How many connections are listening."""
        return len(self._queues)

    def subscribe(self) -> asyncio.Queue[Event]:
        """A new queue that receives every event from now on."""
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

        Subscribes on the first iteration and unsubscribes when the generator is closed
        or cancelled (the client went away or the plugin is stopping).
        """
        queue = self.subscribe()
        try:
            for event in first:
                yield event
            while True:
                yield await queue.get()
        finally:
            self.unsubscribe(queue)
