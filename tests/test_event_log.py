"""The event log behind /tests/events: resumable ids and bursts delivered together."""

from __future__ import annotations

import asyncio

import pytest

from plexichat_desktop.core.events import EventBus
from plexichat_desktop.plugins.sse import EventBatch, _stream
from plexichat_desktop.server.event_log import GAP_TOPIC, EventLog
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
        # kept, at once, instead of nothing until its own count passed that id, after a
        # gap event: the client's state may be from the other process.
        stale = log.follow_batches(500)
        async with asyncio.timeout(5):
            resumed = await anext(stale)
        assert [(topic, event_id) for topic, _, event_id in resumed] == [
            (GAP_TOPIC, 3), ("tests.test_started", 4), ("tests.test_started", 5),
            ("tests.test_started", 6)]
        assert resumed[0][1] == {"reason": "restarted", "missed_after": 500,
                                 "first_kept": 4}
        await stale.aclose()
        # A client further behind than what is kept: told so before the rest, once.
        behind = log.follow_batches(1)
        async with asyncio.timeout(5):
            caught_up = await anext(behind)
        assert [event_id for _, _, event_id in caught_up] == [3, 4, 5, 6]
        assert caught_up[0][:2] == (GAP_TOPIC, {"reason": "evicted", "missed_after": 1,
                                                "first_kept": 4})
        bus.publish(TestStarted(run_id=1, plugin_id="p", nodeid="t6"))
        async with asyncio.timeout(5):
            live = await anext(behind)
        assert [(topic, event_id) for topic, _, event_id in live] == [
            ("tests.test_started", 7)]
        await behind.aclose()
        # Right behind the oldest kept, or up to date: nothing missed, no gap event.
        for cursor, ids in ((4, [5, 6, 7]), (None, [8])):
            follow = log.follow_batches(cursor)
            if cursor is None:
                bus.publish(TestStarted(run_id=1, plugin_id="p", nodeid="t7"))
            async with asyncio.timeout(5):
                got = await anext(follow)
            assert [(topic, event_id) for topic, _, event_id in got] == [
                ("tests.test_started", i) for i in ids]
            await follow.aclose()
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
