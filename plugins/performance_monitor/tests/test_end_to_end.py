"""The plugin inside the real host: HTTP routes, the event stream and the bus."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from plexichat_desktop.core.events import PluginEvent
from plexichat_desktop.plugins.sse import next_event, read_events
from plexichat_desktop.testing.harness import PlexiChatApp

PLUGIN_ID = "performance_monitor"


@pytest.fixture
def plexichat_settings() -> dict[str, Any]:
    """Fast samples, so alerts start and end within a few tenths of a second; no embedded
    v1 API (the plugin never calls it, and importing and opening it was a good part of
    the suite's only app start)."""
    return {"plugin": {PLUGIN_ID: {"interval_seconds": 0.2, "sustain_samples": 2}},
            "api": {"enabled": False}}


async def test_routes_stream_and_alerts_through_the_host(plexichat_app: PlexiChatApp) -> None:
    bus_events = None
    try:
        record = plexichat_app.record
        assert str(record.state) == "active", (record.reason, record.detail)
        listed = plexichat_app.host.get("/api/plugins").json()["plugins"]
        assert [p["id"] for p in listed] == [PLUGIN_ID]
        plugin = plexichat_app.plugin
        async with plexichat_app.async_client(base_url=plexichat_app.plugin_url + "api/",
                                              timeout=10) as client, asyncio.timeout(20):
            assert (await client.get("current", headers={"Authorization": ""})
                    ).status_code == 401

            current = await client.get("current")
            assert current.status_code == 200
            sample = current.json()
            assert 0 <= sample["cpu_percent"] <= 100 and 0 <= sample["memory_percent"] <= 100
            assert sample["memory_total"] > 0 and sample["disk_total"] > 0
            assert abs(sample["timestamp"] - time.time()) < 10

            history = await client.get("history", params={"minutes": 1})
            assert history.status_code == 200
            body = history.json()
            assert body["minutes"] == 1 and body["interval_seconds"] == 0.2
            assert len(body["samples"]) >= 1
            assert all(time.time() - s["timestamp"] <= 61 for s in body["samples"])
            assert (await client.get("history")).json()["minutes"] == 60
            for bad in ("0", "61", "soon"):
                assert (await client.get("history", params={"minutes": bad})
                        ).status_code == 422

            assert (await client.get("thresholds")).json() == {
                "cpu": 80.0, "memory": 85.0, "disk": 90.0, "swap": 80.0}
            refused = await client.put("thresholds", json={"cpu": 150})
            assert refused.status_code == 422
            assert refused.json()["detail"].startswith("cpu must be a number greater than 0")
            assert list(refused.json()["errors"]) == ["cpu"]
            refused = await client.put("thresholds", content=b"{oops")
            assert refused.status_code == 422 and "body" in refused.json()["errors"]
            assert (await client.get("thresholds")).json()["cpu"] == 80.0
            accepted = await client.put("thresholds", json={"cpu": 75.5})
            assert accepted.status_code == 200 and accepted.json()["cpu"] == 75.5
            assert (await client.get("thresholds")).json()["cpu"] == 75.5
            # Only the alert this test forces may happen: a busy machine (CI running other
            # suites) must not raise real CPU, disk or swap alerts. 100 switches them off.
            quiet = {"cpu": 100, "disk": 100, "swap": 100}
            assert (await client.put("thresholds", json=quiet)).status_code == 200
            # Recorded from here: a real alert may have started before the quiet
            # thresholds (and so end after them).
            bus_events = plexichat_app.events(PluginEvent)

            async with client.stream("GET", "stream") as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                events = read_events(response)
                thresholds = await next_event(events, "thresholds")
                assert thresholds["cpu"] == 100
                seen = await next_event(events, "sample")
                newer = await next_event(events, "sample",
                                         lambda s: s["timestamp"] > seen["timestamp"])
                assert 0 <= newer["cpu_percent"] <= 100
                assert len(newer["cpu_per_core"]) == newer["cpu_count"]
                assert plugin.hub.subscriber_count == 1

                # Memory use is always above 0.1 %: an alert must start after 2 samples.
                assert (await client.put("thresholds", json={"memory": 0.1})).status_code == 200
                # The memory alert's: one of a real CPU alert from before the quiet
                # thresholds may be announced now (its advice is worked out first).
                started = await next_event(events, "alert", lambda d: d["kind"] == "start"
                                           and d["alert"]["metric"] == "memory")
                alert = started["alert"]
                assert alert["metric"] == "memory" and alert["active"] is True
                assert alert["threshold"] == 0.1 and alert["peak"] > 0.1
                assert any("of memory" in text for text in alert["suggestions"])

                active = (await client.get("alerts")).json()["active"]
                assert [a["id"] for a in active] == [alert["id"]]

                # Nothing is above 100 %: the alert must end after 2 samples. It keeps the
                # threshold it crossed and says the one it ended under (audit).
                assert (await client.put("thresholds", json={"memory": 100})).status_code == 200
                ended = await next_event(events, "alert", lambda d: d["kind"] == "end"
                                         and d["alert"]["metric"] == "memory")
                assert ended["alert"]["id"] == alert["id"]
                assert ended["alert"]["ended_at"] >= alert["started_at"]
                assert (ended["alert"]["threshold"], ended["alert"]["judged_by"]) == (0.1, 100)
                await events.aclose()

            for _ in range(100):  # the server notices the disconnect asynchronously
                if plugin.hub.subscriber_count == 0:
                    break
                await asyncio.sleep(0.02)
            assert plugin.hub.subscriber_count == 0

            alerts = (await client.get("alerts")).json()
            assert alerts["active"] == []
            assert alerts["recent"][0]["id"] == alert["id"]
            assert alerts["recent"][0]["peak"] >= alert["peak"]

        seen = [e for e in bus_events.seen
                if isinstance(e, PluginEvent) and e.plugin_id == PLUGIN_ID]
        published = [(e.name, e.data["kind"]) for e in seen
                     if e.data["alert"]["id"] == alert["id"]]
        assert published == [("alert", "start"), ("alert", "end")]
        # A real alert raised just before the quiet thresholds may still show; no other
        # memory alert may.
        assert all(e.data["alert"]["id"] == alert["id"] for e in seen
                   if e.data["alert"]["metric"] == "memory")
    finally:
        if bus_events is not None:
            bus_events.close()
