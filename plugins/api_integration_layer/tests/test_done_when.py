"""Issue 7's "done when", end to end: a fresh install with no server configured
registers, logs in, sends and reads messages, uploads and downloads files, registers a
webhook and receives its signed delivery, all through the API integration layer."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import pytest
from api_integration_layer.client import ApiClient
from api_integration_layer.testing import (
    FAST_CLIENT,
    PASSWORD,
    LoopbackHTTPServer,
    embedded_server,
    plugin_folder,
    signature_ok,
)

PLUGIN_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.asyncio
async def test_fresh_install_does_everything_through_the_layer(home: Path, tmp_path: Path):
    folder = plugin_folder(tmp_path, PLUGIN_ROOT)
    async with embedded_server(home, plugin_dirs=[folder], webhook_retry_base=0.2) as server, \
            LoopbackHTTPServer() as receiver, asyncio.timeout(60):
        layer = server.plugin("api_integration_layer")
        client: ApiClient = layer.client  # configured by nothing but the running app
        assert client.base_url == server.base_url and layer.embedded
        assert not client.session.logged_in

        await client.auth.register("ann", "ann@example.org", PASSWORD, display_name="Ann")
        await client.auth.login("ann", PASSWORD)
        ann = client.user
        assert ann is not None and ann["username"] == "ann"

        # A second user on their own client of the same layer.
        bob = ApiClient(client.base_url, type(client.config).model_validate(FAST_CLIENT))
        server.clients.append(bob)
        await bob.auth.register("bob", "bob@example.org", PASSWORD)
        await bob.auth.login("bob", PASSWORD)

        hook = await client.webhooks.register(receiver.url + "/plexichat",
                                              ["message.received", "file.shared"])
        assert hook.secret

        sent = await bob.messages.send(ann["id"], "Hello Ann, the report is coming.")
        reply = await client.messages.send(bob.user["id"], "Thanks Bob!")  # type: ignore[index]
        history = await client.messages.conversation(bob.user["id"], order="asc")  # type: ignore[index]
        assert [msg.content for msg in history.messages] == [sent.content, reply.content]
        assert (await bob.messages.conversations()).conversations[0].last_message == \
            "Thanks Bob!"

        content = ("quarter,revenue\nQ1,10\nQ2,12\n" * 200).encode()
        uploaded = await client.files.upload(content, "report.csv", description="Q1-Q2")
        await client.files.share(uploaded.id, bob.user["id"])  # type: ignore[index]
        downloaded = await bob.files.download(uploaded.id)
        assert downloaded.content == content and downloaded.filename == "report.csv"
        assert downloaded.sha256 == hashlib.sha256(content).hexdigest() == uploaded.sha256
        mine = await client.files.download(uploaded.id)
        assert mine.content == content

        # The signed delivery of "message.received" (bob's message to ann).
        seen: dict[str, bytes] = {}
        while "message.received" not in seen:
            request = await receiver.received.get()
            signature = request.headers["x-plexichat-signature"]
            timestamp = request.headers["x-plexichat-timestamp"]
            assert signature_ok(hook.secret, timestamp, request.body, signature)
            assert not signature_ok(hook.secret, timestamp, request.body + b" ", signature)
            assert abs(time.time() - int(timestamp)) < 300  # fresh: not a replay
            body = request.json()
            assert body["webhook_id"] == hook.id
            assert request.headers["x-plexichat-event"] == body["event"]
            seen[body["event"]] = request.body
            if body["event"] == "message.received":
                assert body["data"]["id"] == sent.id
                assert body["data"]["content"] == sent.content
        deliveries = await client.webhooks.deliveries(hook.id)
        assert any(d.event == "message.received" and d.status == "delivered"
                   for d in deliveries.deliveries)

        log = [(r.method, r.path.split("/")[1], r.status) for r in client.activity.records]
        assert ("POST", "auth", 201) in log and ("POST", "webhooks", 201) in log
        assert ("GET", "files", 200) in log
