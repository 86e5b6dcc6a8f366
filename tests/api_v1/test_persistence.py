"""The v1 data and pending webhook deliveries survive a restart of the app."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from plexichat_desktop.runtime import Runtime, RuntimeOptions
from tests.api_v1.conftest import PASSWORD, v1_settings
from tests.api_v1.test_webhooks import Receiver, signature_ok

pytestmark = pytest.mark.asyncio


async def start(home) -> tuple[Runtime, httpx.AsyncClient]:
    settings = v1_settings(webhook_retry_base=0.3, webhook_max_attempts=5)
    settings.server.port = 0
    runtime = Runtime(home, settings, RuntimeOptions(bundled=False, include_installed=False))
    url = await runtime.start()
    return runtime, httpx.AsyncClient(base_url=url + "api/v1", timeout=10)


async def test_data_and_pending_deliveries_survive_a_restart(home):
    with socket.socket() as probe:  # a port nobody listens on yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runtime, client = await start(home)
    try:
        for name in ("ann", "ben"):
            r = await client.post("/auth/register", json={
                "username": name, "email": f"{name}@example.org", "password": PASSWORD})
            assert r.status_code == 201
        r = await client.post("/auth/login", json={"username": "ann", "password": PASSWORD,
                                                   "remember_me": True})
        tokens = r.json()
        client.headers["Authorization"] = f"Bearer {tokens['access_token']}"
        ben_id = (await client.get("/users/search", params={"query": "ben"})).json()[
            "users"][0]["id"]
        await client.post("/messages/send", json={"recipient_id": ben_id, "content": "kept"})
        hook = (await client.post("/webhooks/register", json={
            "url": f"http://127.0.0.1:{port}/hook", "events": ["message.sent"],
            "secret": "s" * 20})).json()
        await client.post("/messages/send", json={"recipient_id": ben_id, "content": "later"})
        # The receiver is down: the delivery fails once and waits for its retry.
        async with asyncio.timeout(10):
            while True:
                log = (await client.get(f"/webhooks/{hook['id']}/deliveries")).json()
                if log["total"] and log["deliveries"][0]["status"] == "retrying":
                    break
                await asyncio.sleep(0.05)
    finally:
        await client.aclose()
        await runtime.stop()

    receiver = Receiver()
    await receiver.start(port)
    runtime, client = await start(home)
    try:
        client.headers["Authorization"] = f"Bearer {tokens['access_token']}"
        assert (await client.get("/users/me")).json()["username"] == "ann"
        history = (await client.get(f"/messages/conversation/{ben_id}")).json()
        assert [m["content"] for m in history["messages"]] == ["later", "kept"]
        [request] = await receiver.wait_for(1)
        assert request.json()["data"]["content"] == "later"
        assert request.headers["x-plexichat-attempt"] == "2"
        assert signature_ok(request, "s" * 20)
        r = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 200
    finally:
        await client.aclose()
        await runtime.stop()
        await receiver.stop()
