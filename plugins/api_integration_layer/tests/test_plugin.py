"""The plugin inside the real host: its page and routes, login and logout through the
page's routes, the live request log over SSE, and the scoped client other plugins get."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import api_integration_layer
import httpx
import pytest
from api_integration_layer.config import ClientConfig
from api_integration_layer.errors import ApiPermissionError, UnknownScopeError
from api_integration_layer.scoped import ScopedApi
from api_integration_layer.testing import PASSWORD, embedded_server, plugin_folder, unique_name

from plexichat_desktop.plugins.sse import next_event, read_events
from plexichat_desktop.testing.harness import PlexiChatApp

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_ID = "api_integration_layer"


def test_the_page_is_csp_safe_and_follows_the_colour_scheme():
    web = PLUGIN_ROOT / "web"
    html = (web / "index.html").read_text()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts)
    assert "http://" not in html and "https://" not in html  # no CDN
    assert not re.search(r"\son[a-z]+=", html)  # no inline handlers
    css = (web / "style.css").read_text()
    assert "prefers-color-scheme: dark" in css and "color-scheme: light dark" in css
    js = (web / "app.js").read_text()
    assert 'new EventSource("api/events")' in js  # relative: stays under the plugin
    assert not re.search(r"https?://", js)


async def test_page_routes_login_and_the_live_log(plexichat_app: PlexiChatApp):
    # The harness's app: this plugin alone on a temporary home. The plugin's objects live
    # on the app's loop, so calls into them go through plexichat_app.call.
    app = plexichat_app
    base_url = app.url.rstrip("/") + "/api/v1"
    plugin = app.plugin
    assert plugin.client.base_url == base_url  # the embedded server by default
    async with app.async_client(timeout=10) as http, asyncio.timeout(30):
        page = await http.get("")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert (await http.get("app.js")).status_code == 200
        assert (await http.get("api/status", headers={"Authorization": ""})
                ).status_code == 401  # the host's token protects the routes

        status = (await http.get("api/status")).json()
        assert status["embedded"] is True and status["user"] is None
        assert status["base_url"] == base_url
        assert status["token_storage"] in ("file", "keyring")
        assert status["rate_limit"]["rate_per_second"] == 50.0
        scopes = (await http.get("api/scopes")).json()["scopes"]
        assert "messages:read" in scopes

        name = unique_name()
        async with http.stream("GET", "api/events") as stream:
            events = read_events(stream)
            first = await next_event(events, "status")
            assert first["user"] is None
            created = await http.post("api/register", json={
                "username": name, "email": f"{name}@example.org", "password": PASSWORD,
                "display_name": "Page User"})
            assert created.status_code == 200, created.text
            assert created.json()["user"]["username"] == name
            assert created.json()["user"]["display_name"] == "Page User"
            request = await next_event(events, "request",
                                       lambda d: d["endpoint"] == "auth.register")
            assert request["method"] == "POST" and request["path"] == "/auth/register"
            assert request["status"] == 201 and request["latency_ms"] > 0
            assert request["cache_hit"] is False and "rate_limit" in request
            signed_in = await next_event(events, "status", lambda d: d["user"])
            assert signed_in["user"]["username"] == name
            app.call(plugin.client.users.me())
            hit = await next_event(events, "request", lambda d: d["cache_hit"])
            assert hit["endpoint"] == "users.me"
            # A plugin renaming the user: the page shows the new name (audit: the one
            # from the sign-in, until the next sign-in).
            app.call(plugin.client.users.update_me(display_name="Renamed User"))
            renamed = await next_event(events, "status", lambda d: d["user"] and
                                       d["user"]["display_name"] == "Renamed User")
            assert renamed["user"]["username"] == name
            await events.aclose()

        log = (await http.get("api/log")).json()
        endpoints = [r["endpoint"] for r in log["requests"]]
        assert endpoints[0] == "system.discover"  # the status page's first check
        assert endpoints[1:4] == ["auth.register", "auth.login", "users.me"]
        assert endpoints[4:7] == ["users.me", "users.update_me", "users.me"], endpoints
        bad = await http.post("api/login", json={"username": name, "password": "nope"})
        assert bad.status_code == 401 and "invalid credentials" in bad.json()["detail"]
        assert (await http.post("api/login", json={"username": name})).status_code == 422
        assert (await http.get("api/status")).json()["user"]["username"] == name

        out = await http.post("api/logout")
        assert out.status_code == 200 and out.json()["user"] is None
        again = await http.post("api/login", json={"username": name, "password": PASSWORD,
                                                   "remember_me": True})
        assert again.json()["user"]["username"] == name
        discovery = (await http.get("api/discovery")).json()
        assert discovery["missing_on_server"] == [] and discovery["routes"] > 90

    # "Keep me logged in": the session was stored (0600 file or keyring) and comes back
    # after a restart.
    app.restart()
    plugin = app.plugin
    assert plugin.client.user["username"] == name
    assert app.call(plugin.client.users.me()).username == name


async def test_the_scoped_client_enforces_declared_scopes(shared_server):
    async with shared_server() as server:
        ann = await server.account()
        bob = await server.account()
        await bob.messages.send(ann.user["id"], "hi ann")
        notes = ScopedApi(ann, "notes", ["messages:read", "users:read"])
        assert notes.user == ann.user and notes.allows("messages:read")
        assert (await notes.messages.conversations()).total == 1
        assert (await notes.users.get(bob.user["id"])).username == bob.user["username"]
        sent_before = len(ann.activity.records)
        with pytest.raises(ApiPermissionError) as info:
            await notes.messages.send(bob.user["id"], "not allowed")
        error = info.value
        assert (error.plugin_id, error.scope) == ("notes", "messages:write")
        assert error.call == "messages.send (POST /messages/send)"
        assert "plugin 'notes'" in str(error) and "messages:write" in str(error)
        assert len(ann.activity.records) == sent_before  # nothing was sent
        for refused in (notes.files.upload(b"x", "x.txt"), notes.system.ping(),
                        notes.auth.logout(), notes.discover(),
                        notes.call("backup.list")):
            with pytest.raises(ApiPermissionError):
                await refused
        with pytest.raises(ApiPermissionError, match="realtime:read"):
            notes.realtime.subscribe()
        assert ann.session.logged_in  # the refused logout did nothing

        assert [r.caller for r in list(ann.activity.records)[-2:]] == ["notes", "notes"]

        chat = ScopedApi(ann, "chat", ["messages:*", "realtime:read"])
        assert (await chat.messages.send(bob.user["id"], "allowed")).content == "allowed"
        async with chat.realtime.subscribe(rooms=["lobby"]) as sub:
            await sub.wait_connected(10)
            with pytest.raises(ApiPermissionError, match="realtime:write"):
                await sub.typing("lobby")
        everything = ScopedApi(ann, "admin_tool", ["*"])
        assert (await everything.system.ping()).message == "pong"
        result = await notes.batch([lambda: notes.messages.stats(),
                                    lambda: notes.files.stats()])
        assert [i.ok for i in result] == [True, False]
        assert isinstance(result.items[1].error, ApiPermissionError)
        with pytest.raises(UnknownScopeError, match=r"'notes2'.*files:admin"):
            ScopedApi(ann, "notes2", ["files:admin"])


async def test_base_url_points_the_layer_at_a_remote_server(
        home: Path, tmp_path: Path, shared_server, monkeypatch: pytest.MonkeyPatch):
    folder = plugin_folder(tmp_path, PLUGIN_ROOT)
    async with shared_server() as remote:  # the module's core plays the remote server
        name = unique_name()
        await remote.client().auth.register(name, f"{name}@example.org", PASSWORD)
        settings = {PLUGIN_ID: {"base_url": remote.base_url + "/", "token_storage": "file"}}
        # The local app serves no v1 API: the layer must talk to the remote one only.
        async with embedded_server(home, plugin_dirs=[folder], plugin_settings=settings,
                                   enabled=False) as local:
            layer = local.plugin(PLUGIN_ID)
            assert layer.client.base_url == remote.base_url and not layer.embedded
            await layer.client.auth.login(name, PASSWORD,  # only the remote knows this user
                                         remember_me=True)
            assert (await layer.client.users.me()).username == name
            async with httpx.AsyncClient(headers=local.app_headers) as http:
                status = (await http.get(f"{local.url}plugins/{PLUGIN_ID}/api/status")).json()
            assert status["embedded"] is False and status["user"]["username"] == name
            stored = json.loads((local.paths.plugin_data_root / PLUGIN_ID / "tokens.json")
                                .read_text())
            assert list(stored) == [remote.base_url]  # tokens are kept per server

    # Nothing listening there: the layer's own first check finds it offline (here 0.05 s
    # after the start, not the 2 s an app waits for its start to be over), and the page
    # is told why.
    monkeypatch.setattr(api_integration_layer, "FIRST_PROBE_DELAY", 0.05)
    dead = {PLUGIN_ID: {"base_url": "http://127.0.0.1:9/api/v1", "max_retries": 0}}
    async with embedded_server(tmp_path / "third", plugin_dirs=[folder],
                               plugin_settings=dead, enabled=False) as local:
        layer = local.plugin(PLUGIN_ID)
        async with asyncio.timeout(10):
            while layer.checked_at is None:
                await asyncio.sleep(0.05)
        async with httpx.AsyncClient(headers=local.app_headers) as http:
            status = (await http.get(f"{local.url}plugins/{PLUGIN_ID}/api/status")).json()
        assert status["connection"]["state"] == "offline"
        assert "ConnectError" in status["connection"]["last_error"]
        # Signing out while the server is away: forgotten here, and said that the
        # server still holds the session (audit: the page said nothing of it).
        layer.client.session.set({"access_token": "pxa_x", "refresh_token": "pxr_x",
                                  "expires_in": 3600, "user_id": "u", "username": "ann"})
        async with httpx.AsyncClient(headers=local.app_headers) as http:
            out = (await http.post(f"{local.url}plugins/{PLUGIN_ID}/api/logout")).json()
        assert out["user"] is None and "could not be told" in out["warning"]


@pytest.mark.asyncio
async def test_a_bad_setting_fails_the_plugin_with_the_setting_named(home: Path,
                                                                   tmp_path: Path):
    folder = plugin_folder(tmp_path, PLUGIN_ROOT)
    bad = {PLUGIN_ID: {"base_url": "chat.example.org/api/v1"}}
    # A port past 65535 got through and ended the connection check (audit).
    for typo, words in (("http://127.0.0.1:80800/api/v1", "port"), ("http://", "host"),
                        ("http://h/api/v1?x=1", "query")):
        with pytest.raises(ValueError, match=words):
            ClientConfig(base_url=typo)
    async with embedded_server(home, plugin_dirs=[folder], plugin_settings=bad,
                               enabled=False) as server:
        record = server.runtime.plugins.by_id[PLUGIN_ID]  # type: ignore[union-attr]
        assert str(record.state) == "failed"
        assert "base_url" in record.reason and "http://" in record.reason
