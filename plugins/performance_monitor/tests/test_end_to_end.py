"""The plugin inside the real host: HTTP routes, the event stream and the bus."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from plexichat_desktop.core.events import PluginEvent
from plexichat_desktop.core.paths import PLUGINS_PATH_ENV, AppPaths
from plexichat_desktop.core.settings import Settings
from plexichat_desktop.plugins.sse import next_event, read_events
from plexichat_desktop.runtime import Runtime, RuntimeOptions

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_ID = "performance_monitor"


def plugins_folder(tmp_path: Path) -> Path:
    """A folder holding only this plugin, so other plugins in the repo do not load."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    try:
        (folder / PLUGIN_ID).symlink_to(PLUGIN_ROOT, target_is_directory=True)
    except OSError:  # no symlinks (Windows without the privilege): use the repo's folder
        return PLUGIN_ROOT.parent
    return folder


@pytest.mark.asyncio
async def test_routes_stream_and_alerts_through_the_host(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PLUGINS_PATH_ENV, raising=False)
    home = tmp_path / "home"
    paths = AppPaths(home / "config", home / "data", home / "cache", home / "logs")
    settings = Settings(server={"port": 0},
                        plugin={PLUGIN_ID: {"interval_seconds": 0.2, "sustain_samples": 2}})
    runtime = Runtime(paths, settings, RuntimeOptions(
        bundled=False, include_installed=False, extra_plugin_dirs=[plugins_folder(tmp_path)]))
    url = await runtime.start()
    bus_events = runtime.bus.subscribe(PluginEvent, name="test")
    try:
        record = runtime.plugins.by_id[PLUGIN_ID]
        assert str(record.state) == "active", (record.reason, record.detail)
        assert [r.id for r in runtime.plugins.records] == [PLUGIN_ID]
        plugin = record.instance
        api = f"{url}plugins/{PLUGIN_ID}/api/"
        auth = {"Authorization": f"Bearer {runtime.token}"}
        async with httpx.AsyncClient(base_url=api, headers=auth, timeout=10) as client, \
                asyncio.timeout(20):
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
                started = await next_event(events, "alert", lambda d: d["kind"] == "start")
                alert = started["alert"]
                assert alert["metric"] == "memory" and alert["active"] is True
                assert alert["threshold"] == 0.1 and alert["peak"] > 0.1
                assert any("of memory" in text for text in alert["suggestions"])

                active = (await client.get("alerts")).json()["active"]
                assert [a["id"] for a in active] == [alert["id"]]

                # Nothing is above 100 %: the alert must end after 2 samples.
                assert (await client.put("thresholds", json={"memory": 100})).status_code == 200
                ended = await next_event(events, "alert", lambda d: d["kind"] == "end")
                assert ended["alert"]["id"] == alert["id"]
                assert ended["alert"]["ended_at"] >= alert["started_at"]
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

        published = []
        while not bus_events.queue.empty():
            event = bus_events.queue.get_nowait()
            if isinstance(event, PluginEvent) and event.plugin_id == PLUGIN_ID:
                published.append((event.name, event.data["kind"], event.data["alert"]["id"]))
        assert published == [("alert", "start", alert["id"]), ("alert", "end", alert["id"])]
    finally:
        bus_events.close()
        await runtime.stop()
    assert str(runtime.plugins.by_id[PLUGIN_ID].state) != "active"
