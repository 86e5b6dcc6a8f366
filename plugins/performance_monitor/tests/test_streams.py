"""The per-connection event queues the plugin uses (the host's EventHub): bounded,
drop-oldest, unregistered on close."""

from __future__ import annotations

import asyncio

import pytest

from plexichat_desktop.plugins.hub import EventHub


@pytest.mark.asyncio
async def test_full_queue_drops_its_oldest_event() -> None:
    hub = EventHub(maxsize=3)
    queue = hub.subscribe()
    for i in range(5):
        hub.publish("sample", i)
    assert [queue.get_nowait()[1] for _ in range(queue.qsize())] == [2, 3, 4]
    assert hub.dropped == 2


@pytest.mark.asyncio
async def test_events_yields_first_then_published_and_unsubscribes_on_close() -> None:
    hub = EventHub()
    events = hub.events(first=[("thresholds", {"cpu": 80.0})])
    assert await anext(events) == ("thresholds", {"cpu": 80.0})
    assert hub.subscriber_count == 1
    hub.publish("sample", {"cpu_percent": 1.0})
    assert await anext(events) == ("sample", {"cpu_percent": 1.0})
    await events.aclose()
    assert hub.subscriber_count == 0


@pytest.mark.asyncio
async def test_cancelled_reader_unsubscribes() -> None:
    hub = EventHub()
    events = hub.events()

    async def read_one() -> object:
        return await anext(events)

    task = asyncio.create_task(read_one())
    await asyncio.sleep(0.01)
    assert hub.subscriber_count == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert hub.subscriber_count == 0
