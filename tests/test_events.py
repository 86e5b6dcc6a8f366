import asyncio
import logging
import threading

import pytest

from plexichat_desktop.core.events import (
    EventBus,
    PluginEvent,
    PluginStateChanged,
    ServerStarted,
)


@pytest.mark.asyncio
async def test_typed_subscription_gets_only_its_types():
    bus = EventBus()
    states = bus.subscribe(PluginStateChanged)
    everything = bus.subscribe()
    bus.publish(ServerStarted(url="http://127.0.0.1:1/"))
    bus.publish(PluginStateChanged(plugin_id="p", state="active"))
    got = await asyncio.wait_for(states.get(), 1)
    assert isinstance(got, PluginStateChanged) and got.plugin_id == "p"
    assert states.queue.empty()
    assert [type(await everything.get()) for _ in range(2)] == [ServerStarted, PluginStateChanged]


@pytest.mark.asyncio
async def test_slow_subscriber_never_blocks_and_drops_oldest(caplog):
    bus = EventBus()
    slow = bus.subscribe(PluginEvent, maxsize=3, name="slow one")
    fast = bus.subscribe(PluginEvent, maxsize=100)
    with caplog.at_level(logging.WARNING):
        for i in range(10):
            bus.publish(PluginEvent(plugin_id="p", name="n", data={"i": i}))
    assert slow.dropped == 7
    assert [(await slow.get()).data["i"] for _ in range(3)] == [7, 8, 9]
    assert fast.dropped == 0 and fast.queue.qsize() == 10
    assert "slow one" in caplog.text and "dropped" in caplog.text


@pytest.mark.asyncio
async def test_close_unsubscribes_and_async_iteration():
    bus = EventBus()
    with bus.subscribe() as sub:
        assert bus.subscriber_count == 1
        bus.publish(ServerStarted(url="u"))
        async for event in sub:
            assert event.to_dict()["topic"] == "server.started"
            break
    assert bus.subscriber_count == 0
    bus.publish(ServerStarted(url="u"))  # no subscriber: nothing to do, no error


@pytest.mark.asyncio
async def test_publish_from_another_thread():
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    sub = bus.subscribe()
    thread = threading.Thread(target=bus.publish_threadsafe,
                              args=(ServerStarted(url="from thread"),))
    thread.start()
    thread.join()
    event = await asyncio.wait_for(sub.get(), 2)
    assert event.url == "from thread"


def test_event_to_dict_is_json_ready():
    data = PluginEvent(plugin_id="p", name="alert", data={"x": 1}).to_dict()
    assert data["topic"] == "plugin.event" and data["data"] == {"x": 1}
    assert isinstance(data["timestamp"], float)
