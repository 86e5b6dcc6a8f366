"""Recent bus events with increasing ids, so that a page whose event stream dropped can
reconnect with ``Last-Event-ID`` and receive exactly what it missed."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from plexichat_desktop.core.events import EventBus
from plexichat_desktop.core.waiting import cancel_and_wait
from plexichat_desktop.plugins.sse import EventBatch

# The event that tells a client its stream skipped events it can no longer get (ids are
# consecutive otherwise); its id is the last one skipped, so a reconnect resumes after it.
GAP_TOPIC = "stream.gap"


class EventLog:
    """A bounded history of the bus events whose topic starts with one of ``prefixes``."""

    def __init__(self, bus: EventBus, prefixes: tuple[str, ...], size: int = 2000):
        self._sub = bus.subscribe(name="event log", maxsize=10_000)
        self._prefixes = prefixes
        self._items: deque[tuple[int, str, dict[str, Any]]] = deque(maxlen=size)
        self._next_id = 1
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._pump(), name="event log")

    async def stop(self) -> None:
        self._sub.close()
        await cancel_and_wait(self._task)

    async def _pump(self) -> None:
        async for event in self._sub:
            if event.topic.startswith(self._prefixes):
                self._items.append((self._next_id, event.topic, event.to_dict()))
                self._next_id += 1
                changed, self._changed = self._changed, asyncio.Event()
                changed.set()

    @property
    def last_id(self) -> int:
        return self._next_id - 1

    def since(self, last_id: int) -> list[tuple[int, str, dict[str, Any]]]:
        # Ids are consecutive, so the newer items are a tail: walk back only over those.
        newer = []
        for item in reversed(self._items):
            if item[0] <= last_id:
                break
            newer.append(item)
        newer.reverse()
        return newer

    async def follow_batches(self, last_id: int | None) -> AsyncIterator[EventBatch]:
        """Events after ``last_id`` (from now on when None), then live ones, forever;
        everything that arrived since the last wake-up comes at once: a burst of results
        costs one round trip through the loop (and one network write), not one per event.

        When some of what the client missed is no longer kept (more than ``size`` events
        since its id, or its id is from before a restart), a ``stream.gap`` event comes
        first (``GAP_TOPIC``): what follows is not everything, reload the state."""
        cursor = self.last_id if last_id is None else last_id
        restarted = cursor > self.last_id
        if restarted:
            # An id this process never gave: the client's stream came from the app before
            # a restart (ids start at 1 in each). Waiting for the counter to pass it sent
            # nothing for as long; what this process kept is what the client missed.
            cursor = 0
        while True:
            waiter = self._changed
            batch = EventBatch((topic, data, event_id)
                               for event_id, topic, data in self.since(cursor))
            first_kept = self._items[0][0] if self._items else self._next_id
            if restarted or first_kept > cursor + 1:
                batch.insert(0, (GAP_TOPIC, {
                    "reason": "restarted" if restarted else "evicted",
                    "missed_after": last_id, "first_kept": first_kept}, first_kept - 1))
                restarted = False
            if batch:
                cursor = batch[-1][2]
                yield batch
            await waiter.wait()
