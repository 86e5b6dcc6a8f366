"""The host's shared event hub and settings validator, on a real server over HTTP."""

from __future__ import annotations

import asyncio

import pytest

from plexichat_desktop.core.settings import Settings
from plexichat_desktop.plugins.hub import EventHub
from plexichat_desktop.plugins.scaffold import scaffold_plugin
from plexichat_desktop.plugins.settings import PluginSettings, SettingsError
from plexichat_desktop.plugins.sse import next_event, read_events

pytestmark = pytest.mark.asyncio

PLUGIN = '''
from pydantic import Field

from plexichat_desktop.plugins.api import Plugin
from plexichat_desktop.plugins.hub import EventHub
from plexichat_desktop.plugins.settings import PluginSettings


class Config(PluginSettings):
    level: int = Field(3, ge=1, le=10)
    label: str = Field("x", min_length=1)


class HubbyPlugin(Plugin):
    settings_model = Config

    def setup(self, ctx):
        self.hub = EventHub(maxsize=8)
        config = ctx.config

        async def stream():
            return ctx.event_stream(self.hub.events(first=[("config", config.model_dump())]))

        async def poke(n: int):
            self.hub.publish("poke", {"n": n, "listeners": self.hub.subscriber_count})
            return {"listeners": self.hub.subscriber_count}

        ctx.add_route("/stream", stream)
        ctx.add_route("/poke", poke, methods=["POST"])
'''


def make_plugin(parent, pid):
    """A plugin ``pid`` (ids differ per test: one process imports each package once)."""
    root = scaffold_plugin(pid, parent)
    (root / pid / "__init__.py").write_text(PLUGIN.replace("HubbyPlugin", "".join(
        part.capitalize() for part in pid.split("_")) + "Plugin"))
    manifest = root / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('greeting = "Hello"',
                                                     'level = 3\nlabel = "x"'))
    return root


async def test_settings_model_is_validated_before_setup(start_core, tmp_path):
    make_plugin(tmp_path, "hubby")
    core = await start_core(tmp_path, settings=Settings(plugin={"hubby": {"level": 11,
                                                                          "label": ""}}))
    rec = (await core.client.get("/api/plugins/hubby")).json()
    assert rec["state"] == "failed"
    assert rec["reason"] == (
        "settings [plugin.hubby]: level: Input should be less than or equal to 10 (got 11); "
        "label: String should have at least 1 character (got '')")


async def test_a_bad_default_in_the_manifest_is_the_manifests_problem(start_core, tmp_path):
    """A default of plugin.toml's [settings] that its model refuses was reported as a
    problem of the user's settings table, sending the author to the wrong file."""
    root = make_plugin(tmp_path, "hubbub")
    manifest = root / "plugin.toml"
    manifest.write_text(manifest.read_text().replace("level = 3", "level = 30"))
    core = await start_core(tmp_path, settings=Settings(plugin={"hubbub": {"label": ""}}))
    rec = (await core.client.get("/api/plugins/hubbub")).json()
    assert rec["state"] == "failed"
    assert rec["reason"] == (
        "settings [plugin.hubbub]: label: String should have at least 1 character (got ''); "
        f"{manifest} [settings] defaults: level: Input should be less than or equal to 10 "
        "(got 30)")


async def test_hub_streams_first_then_published_events(start_core, tmp_path):
    make_plugin(tmp_path, "hub_stream")
    core = await start_core(tmp_path, settings=Settings(plugin={"hub_stream": {"level": 7}}))
    async with core.client.stream("GET", "/plugins/hub_stream/api/stream") as response:
        events = read_events(response)
        assert await next_event(events, "config") == {"level": 7, "label": "x"}
        # The stream is subscribed once its first event arrived.
        assert (await core.client.post("/plugins/hub_stream/api/poke?n=1")).json() == {
            "listeners": 1}
        assert await next_event(events, "poke") == {"n": 1, "listeners": 1}
    # Closing the connection unsubscribes (the server notices on its next write).
    for n in range(2, 100):
        body = (await core.client.post(f"/plugins/hub_stream/api/poke?n={n}")).json()
        if body["listeners"] == 0:
            break
        await asyncio.sleep(0.02)
    assert body["listeners"] == 0


async def test_hub_drops_the_oldest_event_of_a_full_queue():
    hub = EventHub(maxsize=2)
    queue = hub.subscribe()
    for i in range(5):
        hub.publish("n", i)
    assert [queue.get_nowait()[1] for _ in range(queue.qsize())] == [3, 4]
    assert hub.dropped == 3
    with pytest.raises(ValueError, match="maxsize"):
        EventHub(maxsize=0)


async def test_settings_error_names_table_keys_and_values():
    class Model(PluginSettings):
        port: int = 1

    assert Model.from_settings({"port": 5, "other": 1}).port == 5
    with pytest.raises(SettingsError, match=r"settings \[plugin.demo\]: port: .* \(got 'x'\)"):
        Model.from_settings({"port": "x"}, "demo")
    with pytest.raises(SettingsError, match=r"^settings of the plugin: port"):
        Model.from_settings({"port": [1]})
