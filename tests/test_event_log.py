"""The event log behind /tests/events: resumable ids and bursts delivered together."""

from __future__ import annotations

import asyncio

import pytest

from plexichat_desktop.core.events import EventBus
from plexichat_desktop.plugins.sse import EventBatch, _stream
from plexichat_desktop.server.event_log import EventLog
from plexichat_desktop.testing.events import TestStarted

pytestmark = pytest.mark.asyncio


async def test_a_burst_arrives_as_one_batch_and_resumes_by_id():
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    log = EventLog(bus, ("tests.",), size=3)
    log.start()
    try:
        for i in range(5):
            bus.publish(TestStarted(run_id=1, plugin_id="p", nodeid=f"t{i}"))
        async with asyncio.timeout(5):
            while log.last_id < 5:
                await asyncio.sleep(0.01)
        # Only the newest three are kept; ids keep counting.
        assert [item[0] for item in log.since(0)] == [3, 4, 5]
        assert [item[0] for item in log.since(4)] == [5]
        assert log.since(5) == []

        batches = log.follow_batches(2)
        first = await anext(batches)
        assert [(event_id, data["nodeid"]) for _, data, event_id in first] == [
            (3, "t2"), (4, "t3"), (5, "t4")]
        bus.publish(TestStarted(run_id=1, plugin_id="p", nodeid="t5"))
        async with asyncio.timeout(5):
            second = await anext(batches)
        assert [event_id for _, _, event_id in second] == [6]
        await batches.aclose()
        # An id from before a restart (each process counts from 1): what this process
        # kept, at once, instead of nothing until its own count passed that id.
        stale = log.follow_batches(500)
        async with asyncio.timeout(5):
            resumed = await anext(stale)
        assert [event_id for _, _, event_id in resumed] == [4, 5, 6]
        await stale.aclose()
    finally:
        await log.stop()


async def test_a_batch_is_written_as_one_chunk_of_sse_messages():
    async def source():
        yield EventBatch([("tests.a", {"n": 1}, 7), ("tests.b", {"n": 2}, 8)])
        yield ["status", {"ok": True}]  # a plugin's plain pair, as a list: one event

    chunks = [chunk async for chunk in _stream(source(), asyncio.Event(), 15.0, 3000)]
    assert chunks[0] == "retry: 3000\n\n"
    assert chunks[1] == ('id: 7\nevent: tests.a\ndata: {"n": 1}\n\n'
                         'id: 8\nevent: tests.b\ndata: {"n": 2}\n\n')
    assert chunks[2] == 'event: status\ndata: {"ok": true}\n\n'
