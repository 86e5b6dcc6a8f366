"""Services between plugins (PluginContext.provide / .service / .api) and the API
integration layer's scoped client, in the real host with fixture plugins."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from plexichat_desktop.core.events import EventBus
from plexichat_desktop.core.settings import ApiSettings, Settings
from plexichat_desktop.plugins.api import PluginContext, ServiceRegistry, ServiceUnavailable
from plexichat_desktop.plugins.manifest import Manifest
from tests.conftest import FIXTURES, REPO

LAYER = REPO / "plugins" / "api_integration_layer"
SCOPE_PLUGINS = FIXTURES / "api_scope_plugins"
PASSWORD = "Corr3ct-Horse-Battery"


def context(tmp_path: Path, registry: ServiceRegistry, plugin_id: str,
            requires: dict[str, str] | None = None, scopes: list[str] | None = None
            ) -> PluginContext:
    manifest = Manifest(id=plugin_id, name=plugin_id, version="1.0.0",
                        entry=f"{plugin_id}:P", requires=requires or {},
                        permissions={"api_scopes": scopes or []})
    return PluginContext(manifest, tmp_path, tmp_path / "data", EventBus(), {},
                         services=registry)


@pytest.mark.asyncio
async def test_services_are_made_per_consumer_and_need_requires(tmp_path: Path):
    registry = ServiceRegistry()
    provider = context(tmp_path, registry, "greeter")
    made: list[str] = []

    def factory(consumer: PluginContext) -> str:
        made.append(consumer.plugin_id)
        return f"hello {consumer.plugin_id} {consumer.manifest.permissions.api_scopes}"

    provider.provide("greeting", factory)
    assert registry.names() == {"greeting": "greeter"}
    with pytest.raises(ValueError, match="already provided by plugin 'greeter'"):
        context(tmp_path, registry, "other").provide("greeting", factory)

    fan = context(tmp_path, registry, "fan", {"greeter": ">=1"}, ["messages:read"])
    assert fan.service("greeting") == "hello fan ['messages:read']"
    assert fan.service("greeting") is fan.service("greeting") and made == ["fan"]

    stranger = context(tmp_path, registry, "stranger")
    with pytest.raises(ServiceUnavailable) as info:
        stranger.service("greeting")
    message = str(info.value)
    assert "plugin 'stranger'" in message and "'greeting'" in message
    assert 'greeter = ">=1.0"' in message and "[requires]" in message
    with pytest.raises(ServiceUnavailable, match="no active plugin offers"):
        fan.service("weather")
    with pytest.raises(ServiceUnavailable, match="'api'"):
        _ = fan.api

    await provider._close()  # the provider stops: its services go with it
    assert registry.names() == {}
    late = context(tmp_path, registry, "late", {"greeter": ">=1"})
    with pytest.raises(ServiceUnavailable, match="no active plugin offers"):
        late.service("greeting")
    await fan._close()
    assert fan._services == {}


def settings() -> Settings:
    cfg = Settings()
    cfg.api = ApiSettings(scrypt_cost=4, performance_interval=3600.0,
                          register_rate_limit=0, login_rate_limit=0)
    return cfg


def plugin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    for root in (LAYER, *sorted(SCOPE_PLUGINS.iterdir())):
        (folder / root.name).symlink_to(root, target_is_directory=True)
    return folder


@pytest.mark.asyncio
async def test_plugins_get_the_client_limited_to_their_scopes(start_core, tmp_path: Path):
    core = await start_core(plugin_dir(tmp_path), settings=settings())
    plugins = core.runtime.plugins
    states = {r.id: (str(r.state), r.reason) for r in plugins.records}
    assert states["api_integration_layer"][0] == "active"
    assert states["scope_reader"][0] == "active", states["scope_reader"]

    unknown = states["scope_unknown"]
    assert unknown[0] == "failed"
    assert "plugin 'scope_unknown' declares unknown API scope(s) mesages:read" in unknown[1]
    norequire = states["scope_norequire"]
    assert norequire[0] == "failed" and "scope_norequire" in norequire[1]
    assert "[requires]" in norequire[1]

    layer = plugins.by_id["api_integration_layer"].instance
    assert set(layer.consumers) == {"scope_reader"}
    client = layer.client
    await client.auth.register("ann", "ann@example.org", PASSWORD)
    await client.auth.login("ann", PASSWORD)
    async with httpx.AsyncClient(base_url=core.url.rstrip("/") + "/api/v1") as anon:
        await anon.post("/auth/register", json={"username": "bob", "email": "bob@example.org",
                                                "password": PASSWORD})
        token = (await anon.post("/auth/login", json={"username": "bob", "password": PASSWORD})
                 ).json()["access_token"]
        sent = await anon.post("/messages/send", headers={"Authorization": f"Bearer {token}"},
                               json={"recipient_id": client.user["id"], "content": "hi ann"})
        bob_id = sent.json()["sender_id"]

    reader = core.client
    inbox = await reader.get("/plugins/scope_reader/api/inbox")
    assert inbox.status_code == 200, inbox.text
    assert inbox.json()["user"]["username"] == "ann" and inbox.json()["last"] == ["hi ann"]
    before = client.activity.total
    refused = await reader.post("/plugins/scope_reader/api/send",
                                params={"recipient_id": bob_id})
    assert refused.status_code == 403
    detail = refused.json()["detail"]
    assert "plugin 'scope_reader'" in detail and "'messages:write'" in detail
    assert "messages.send (POST /messages/send)" in detail
    assert client.activity.total == before  # refused before anything was sent
    assert [r.caller for r in client.activity.records if r.endpoint ==
            "messages.conversations"] == ["scope_reader"]
    status = (await reader.get("/plugins/api_integration_layer/api/status")).json()
    assert status["consumers"] == [{"plugin_id": "scope_reader",
                                    "scopes": ["messages:read", "users:read"]}]

    # Disabling the layer stops its dependents first and withdraws the service; enabling
    # it again restarts them with a fresh client.
    await plugins.disable("api_integration_layer")
    assert str(plugins.by_id["scope_reader"].state) == "failed"
    assert plugins.services.names() == {}
    await plugins.enable("api_integration_layer")
    assert str(plugins.by_id["scope_reader"].state) == "active"
    new_layer = plugins.by_id["api_integration_layer"].instance
    assert new_layer is not layer and set(new_layer.consumers) == {"scope_reader"}
    again = await reader.get("/plugins/scope_reader/api/inbox")
    assert again.status_code == 200 and again.json()["user"]["username"] == "ann"
