"""Monitors: a collection on the host's scheduler that notifies on pass/fail transitions
(the bus and the page's stream), never on a repeat; bad monitors are 4xx."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from api_tester.testing import loopback_server, running_app

from plexichat_desktop.core.events import PluginEvent
from plexichat_desktop.plugins.sse import next_event, read_events


async def next_transition(queue: Any) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            event = await queue.get()
            if isinstance(event, PluginEvent) and event.name == "monitor.transition":
                return dict(event.data)


@pytest.mark.asyncio
async def test_monitor_notifies_on_transitions_only(tmp_path: Path) -> None:
    async with running_app(tmp_path, v1=False) as app, loopback_server() as srv, \
            app.client() as client:
        bus = app.runtime.bus.subscribe(PluginEvent, name="test")
        await client.post("collections", json={"name": "Health"})
        await client.put("collections/Health/request", params={"path": "ping.request.json"},
                         json={"name": "Ping", "url": srv.url + "/toggle", "asserts": [
                             {"source": "status", "op": "eq", "value": 200}]})
        for bad, field, status in [
            ({"name": "m", "collection": "Health", "schedule": "every blue moon"},
             "schedule", 422),
            ({"name": "m", "collection": "Nope"}, "collection", 404),
            ({"name": "m", "collection": "Health", "environment": "x"}, "environment", 404),
            ({"name": "", "collection": "Health"}, None, 422),
        ]:
            refused = await client.post("monitors", json=bad)
            assert refused.status_code == status, refused.text
            if field:
                assert refused.json()["field"] == field
        created = await client.post("monitors", json={
            "name": "API health", "collection": "Health", "schedule": "every_30_minutes"})
        assert created.status_code == 201, created.text
        monitor_id = created.json()["id"]
        assert monitor_id == "api-health" and created.json()["status"] is None

        async with client.stream("GET", "stream") as stream:
            events = read_events(stream)
            first = (await client.post(f"monitors/{monitor_id}/run")).json()
            assert first["run"]["status"] == "passed"
            assert first["monitor"]["transitions"] == []  # a first pass is no news

            srv.state["healthy"] = False
            down = (await client.post(f"monitors/{monitor_id}/run")).json()
            assert down["run"]["status"] == "failed"
            assert "expected eq 200, found 500" in down["run"]["detail"]
            page_event = await next_event(events, "monitor")
            assert (page_event["from"], page_event["to"]) == ("passed", "failed")
            transition = await next_transition(bus)
            assert transition["monitor"] == monitor_id and transition["to"] == "failed"

            again = (await client.post(f"monitors/{monitor_id}/run")).json()
            assert again["run"]["status"] == "failed"
            assert len(again["monitor"]["transitions"]) == 1  # still down: no new notice

            srv.state["healthy"] = True
            up = (await client.post(f"monitors/{monitor_id}/run")).json()
            assert [(t["from"], t["to"]) for t in up["monitor"]["transitions"]] == [
                ("passed", "failed"), ("failed", "passed")]
            assert (await next_transition(bus))["to"] == "passed"

            # Now on the host's scheduler, every 2 s: it notices the outage by itself.
            changed = await client.put(f"monitors/{monitor_id}", json={
                "name": "API health", "collection": "Health", "schedule": "* * * * * */2"})
            assert changed.status_code == 200, changed.text
            names = [s["name"] for s in (await client.get("_host/schedules")).json()[
                "schedules"]]
            assert f"monitor {monitor_id} v2" in names
            srv.state["healthy"] = False
            scheduled = await next_transition(bus)
            assert (scheduled["from"], scheduled["to"]) == ("passed", "failed")

        async def fired() -> int:
            listed = (await client.get("_host/schedules")).json()["schedules"]
            return int(next(s["runs"] for s in listed if s["name"] == schedule_name))

        schedule_name = f"monitor {monitor_id} v2"
        assert (await client.delete(f"monitors/{monitor_id}")).status_code == 204
        hits, runs = srv.state["hits"], await fired()
        async with asyncio.timeout(10):
            while await fired() == runs:  # the old schedule fires once more...
                await asyncio.sleep(0.1)
        assert srv.state["hits"] == hits  # ...and returns without sending anything
        assert (await client.get("monitors")).json() == {"monitors": [], "problems": []}
        assert (await client.post("monitors/nope/run")).status_code == 404
        # Its name can be used again at once (audit: "already has a schedule 'monitor
        # api-health v1'" until a restart). A refused try first must not lose what the
        # delete left (a review: the next try took v1's name again).
        bad = await client.post("monitors", json={
            "name": "API health", "collection": "Health", "schedule": "not a schedule"})
        assert bad.status_code in (400, 422), bad.text
        again = await client.post("monitors", json={
            "name": "API health", "collection": "Health", "schedule": "every_30_minutes"})
        assert again.status_code == 201, again.text
        assert (await client.delete(f"monitors/{again.json()['id']}")).status_code == 204


@pytest.mark.asyncio
async def test_a_hand_edited_monitors_file_costs_only_what_is_wrong(tmp_path: Path) -> None:
    """A monitor without its 'enabled' key (a hand edit) failed the whole plugin at setup
    (KeyError: every route a 503), and invalid JSON did the same."""
    import json

    data = tmp_path / "home" / "data" / "plugin-data" / "api_tester"
    data.mkdir(parents=True)
    good = {"spec": {"name": "ok", "collection": "Health", "schedule": "every_1_hours",
                     "enabled": False}, "version": 1, "status": None, "runs": [],
            "transitions": []}
    sloppy = {"spec": {**good["spec"], "name": "sloppy", "enabled": "false"},
              "version": "3", "runs": [], "transitions": []}  # no status; strings
    (data / "monitors.json").write_text(json.dumps({"monitors": {
        "ok": good, "x": {"spec": {"name": "x"}}, "sloppy": sloppy}}))
    async with running_app(tmp_path, v1=False) as app, app.client() as client:
        answer = (await client.get("monitors")).json()
        assert [m["id"] for m in answer["monitors"]] == ["ok", "sloppy"]
        assert answer["problems"][0].startswith("monitor 'x' in monitors.json is left out")
        assert "kept as" in answer["problems"][1]
        sloppy_now = next(m for m in answer["monitors"] if m["id"] == "sloppy")
        assert sloppy_now["enabled"] is False and sloppy_now["status"] is None
        assert not app.plugin().monitors.items["sloppy"]["spec"]["enabled"]  # not armed
    kept = list(data.glob("monitors.json.broken-*"))
    assert len(kept) == 1 and '"x"' in kept[0].read_text()
    saved = json.loads((data / "monitors.json").read_text())["monitors"]
    assert list(saved) == ["ok", "sloppy"] and saved["sloppy"]["version"] == 3

    # A history entry that is not a run (or transition) is left out, the rest kept: the
    # page read every field of each and a string there broke the monitors list.
    run = {"at": 1700000000, "status": "failed", "passed": 1, "failed": 1,
           "detail": "ping: status 500", "duration_ms": 12.5}
    change = {"monitor": "ok", "name": "ok", "at": 1700000000, "from": "passed",
              "to": "failed", "detail": "ping: status 500"}
    saved["ok"]["runs"] = [run, "garbage", {**run, "status": "maybe"}, {"at": 1}]
    saved["ok"]["transitions"] = [change, {**change, "to": None}, 7]
    (data / "monitors.json").write_text(json.dumps({"monitors": saved}))
    async with running_app(tmp_path, v1=False) as app, app.client() as client:
        answer = (await client.get("monitors")).json()
        ok_now = next(m for m in answer["monitors"] if m["id"] == "ok")
        assert ok_now["runs"] == [run] and ok_now["transitions"] == [change]
        assert ok_now["last_run"] == run
        assert "3 run(s) and 2 transition(s)" in answer["problems"][0], answer["problems"]
    assert len(list(data.glob("monitors.json.broken-*"))) == 2

    (data / "monitors.json").write_text("{not json")
    async with running_app(tmp_path, v1=False) as app, app.client() as client:
        answer = (await client.get("monitors")).json()
        assert answer["monitors"] == [] and "could not be read" in answer["problems"][0]
