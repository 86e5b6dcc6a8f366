"""The outbox against a PlexiChat server from before ``client_message_id``.

The API layer may point at an older remote server, which refuses unknown body fields
with FastAPI's 422. The embedded v1 server plays it here from behind a loopback proxy
(:class:`OldServer`) that answers a keyed ``POST /messages/send`` so, hides the flag in
``GET /system/capabilities`` and forwards everything else unchanged; a client of the API
layer, with this plugin's scopes and signed in as the harness's user, talks to the proxy.

The dispatcher must not mark such items failed: the refused send stored nothing, so it
goes on at once without the key, after a mark of the conversation, and reconciling finds
it by its content after that mark, as sends were found before keys. Each case counts
what reached the server and what the proxy refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from messaging_hub.outbox import Dispatcher
from messaging_hub.store import Store
from tests.loopback_proxy import Answer, LoopbackProxy
from tests.test_outbox_clock import HOUR, Clock, new_user, send_by_hand, sent_to
from tests.test_units import BOB, CAT, ME, FakeApi

from plexichat_desktop.testing.harness import PlexiChatApp

LOG = logging.getLogger("test.outbox.old_server")


@dataclass
class OldServer(LoopbackProxy):
    """A loopback proxy in front of the embedded v1 server that answers as a server from
    before ``client_message_id``: what it refused and what it let through are counted."""

    refused: list[dict[str, Any]] = field(default_factory=list)  # keyed sends (422)
    sends: list[dict[str, Any]] = field(default_factory=list)  # sends passed to the server

    def exchange(self, method: str, target: str, path: str, body: bytes,
                 headers: dict[str, str]) -> Answer:
        if method == "POST" and path.endswith("/api/v1/messages/send"):
            sent = json.loads(body or b"{}")
            if "client_message_id" in sent:
                with self.lock:
                    self.refused.append(sent)
                # FastAPI's answer for a field the model does not have.
                return 422, json.dumps({"detail": [{
                    "type": "extra_forbidden", "loc": ["body", "client_message_id"],
                    "msg": "Extra inputs are not permitted",
                    "input": sent["client_message_id"]}]}).encode(), {
                    "content-type": "application/json"}
            with self.lock:
                self.sends.append(sent)
        status, content, answer_headers = self.forward(method, target, body, headers)
        if path.endswith("/api/v1/system/capabilities") and 200 <= status < 300:
            capabilities = json.loads(content)
            capabilities.get("messages", {}).pop("client_message_id", None)
            content = json.dumps(capabilities).encode()
        return status, content, answer_headers

    def refused_for(self, content: str) -> int:
        return sum(1 for body in self.refused if body.get("content") == content)

    def sends_of(self, content: str) -> int:
        return sum(1 for body in self.sends if body.get("content") == content)


@pytest.fixture(scope="module")
def old_server(app: PlexiChatApp) -> Iterator[OldServer]:
    proxy = OldServer(app.url)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="module")
def old_client(app: PlexiChatApp, old_server: OldServer) -> Iterator[Any]:
    """The API layer's client for the old server (base URL: the proxy), signed in as the
    harness's user."""
    from api_integration_layer.client import ApiClient

    assert app.user is not None
    user = app.user

    async def sign_in() -> Any:
        client = ApiClient(f"{old_server.url}api/v1")
        await client.auth.login(user.username, user.password)
        return client

    client = app.call(sign_in())
    try:
        yield client
    finally:
        app.call(client.aclose())


@pytest.fixture(scope="module")
def old_api(app: PlexiChatApp, old_client: Any) -> Any:
    """``old_client`` limited to this plugin's scopes, as its ``ctx.api`` would be."""
    from api_integration_layer.scoped import ScopedApi

    return ScopedApi(old_client, "messaging_hub", app.plugin.ctx.api.scopes)


@pytest.fixture(scope="module")
def dana(app: PlexiChatApp) -> str:
    return new_user(app, "dana")


def test_the_proxy_plays_a_server_from_before_keys(
        app: PlexiChatApp, old_client: Any, old_api: Any, dana: str) -> None:
    async def look() -> tuple[Any, Any]:
        from api_integration_layer.errors import ApiHTTPError, ApiPermissionError

        with pytest.raises(ApiHTTPError) as refused:
            await old_api.messages.send(dana, "keyed", client_message_id="k1")
        # The plugin cannot read the capabilities (no system:read): the dispatcher learns
        # from the refusal. The layer's own client can.
        with pytest.raises(ApiPermissionError):
            await old_api.call("system.capabilities")
        return refused.value, await old_client.call("system.capabilities")

    refused, capabilities = app.call(look())
    assert refused.status == 422
    assert refused.detail[0]["loc"] == ["body", "client_message_id"]
    assert "client_message_id" not in capabilities["messages"]
    assert capabilities["messages"]["max_length"] == 10_000  # the rest passed through
    assert sent_to(app, dana, "keyed") == []


def settle(app: PlexiChatApp, api: Any, store: Store, item_id: str, owner: str,
           clock: Clock) -> dict[str, Any]:
    """A dispatcher started on ``store`` (the restart after a crash, or the first run)
    stepped until the item settles, then with the clock jumping: the item as it ended."""
    async def steps() -> dict[str, Any]:
        dispatcher = Dispatcher(store, lambda: (api, owner), lambda *_: None, LOG,
                                clock=clock)
        for _ in range(5):
            await dispatcher.step(api, owner)
            found = store.item(item_id)
            assert found is not None
            if found["state"] not in ("pending", "sending"):
                break
            await asyncio.sleep(0.05)
        for jump in (-HOUR, 2 * HOUR):  # a settled item is not sent again, whatever
            clock.skew += jump
            await dispatcher.step(api, owner)
        return store.item(item_id) or {}

    return app.call(steps())


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    outbox = Store(tmp_path / "outbox.sqlite3")
    yield outbox
    outbox.close()


@pytest.mark.parametrize("skew", [HOUR, -HOUR, 0.0])
def test_a_due_item_is_sent_once_without_the_key(app: PlexiChatApp, old_server: OldServer,
                                                 old_api: Any, dana: str, store: Store,
                                                 skew: float) -> None:
    # The same text sent by hand before: the item is not taken for it.
    content = f"hello from the old server ({uuid.uuid4().hex[:6]})"
    earlier = send_by_hand(app, dana, content)
    owner = str(old_api.user["id"])
    clock = Clock(skew)
    first = store.queue(owner, dana, content, "text", None, "undo", clock())
    second = store.queue(owner, dana, content + " again", "text", None, "undo", clock())
    item = settle(app, old_api, store, first["id"], owner, clock)
    on_server = sent_to(app, dana, content)
    assert len(on_server) == 2, on_server
    assert item["state"] == "sent" and item["message_id"] == on_server[0]["id"]
    assert item["message_id"] != earlier["id"] and item["error"] is None
    assert on_server[0]["client_message_id"] is None
    # Refused once with the key, then sent once without it, in the same step; the
    # dispatcher remembers the server: the next item is not offered the key at all.
    assert old_server.refused_for(content) == 1 and old_server.sends_of(content) == 1
    again = store.item(second["id"])
    assert again is not None and again["state"] == "sent"
    assert len(sent_to(app, dana, content + " again")) == 1
    assert old_server.refused_for(content + " again") == 0
    assert old_server.sends_of(content + " again") == 1
    assert json.loads(item["claim_mark"])["ids"]  # the mark of a send without a key


def crash(app: PlexiChatApp, api: Any, store: Store, owner: str, recipient: str,
          content: str, clock: Clock, crash_at: str) -> dict[str, Any]:
    """Queue ``content``, then do what the dispatcher does for a server without keys up
    to ``crash_at`` and stop there, nothing recorded after: "refused" (the keyed send
    refused, the app died before going on), "marked" (the keyless mark written, not
    sent) or "sent" (the server stored the keyless send; its answer was lost)."""
    async def until_the_crash() -> dict[str, Any]:
        from api_integration_layer.errors import ApiHTTPError

        dispatcher = Dispatcher(store, lambda: (api, owner), lambda *_: None, LOG,
                                clock=clock)
        item = store.queue(owner, recipient, content, "text", None, "scheduled", clock())
        assert store.claim(item["id"], clock())
        if crash_at == "refused":
            assert await dispatcher.mark(api, item)
            with pytest.raises(ApiHTTPError):
                await dispatcher.send(api, item)
        elif crash_at == "marked":
            assert await dispatcher.mark(api, item, keyed=False)
        else:
            assert await dispatcher.transmit(api, item) is not None
        return item

    return app.call(until_the_crash())


@pytest.mark.parametrize("skew", [HOUR, -HOUR])
@pytest.mark.parametrize("crash_at", ["refused", "marked", "sent"])
def test_a_crash_is_reconciled_by_the_mark_without_a_second_send(
        app: PlexiChatApp, old_server: OldServer, old_api: Any, store: Store,
        skew: float, crash_at: str) -> None:
    # The same text from another device (the same account, no key) before the item was
    # marked: the message stored before the mark is not the item's send.
    erin = new_user(app, "erin")
    content = f"be there at six ({uuid.uuid4().hex[:6]})"
    elsewhere = send_by_hand(app, erin, content)
    owner = str(old_api.user["id"])
    clock = Clock(skew)
    before = crash(app, old_api, store, owner, erin, content, clock, crash_at)
    item = settle(app, old_api, store, before["id"], owner, clock)
    on_server = sent_to(app, erin, content)
    assert len(on_server) == 2, on_server  # the other device's, and ours: once
    assert item["state"] == "sent" and item["message_id"] == on_server[0]["id"]
    assert item["message_id"] != elsewhere["id"] and item["error"] is None
    assert old_server.sends_of(content) == 1
    # Offered with its key once by the restarted dispatcher too when it was sent again
    # (it knew nothing of the server yet), refused, and sent on: never marked failed.
    assert old_server.refused_for(content) == {"refused": 2, "marked": 1, "sent": 1}[
        crash_at]


# -- what the dispatcher remembers of a server, and when it asks again --------------------
# No server needed: test_units' fake server, made to refuse keys (or to ignore them).

class OldFakeApi(FakeApi):
    """test_units' fake server as one from before keys: a keyed send is refused with
    FastAPI's 422 (``ignores``: taken, and the key dropped)."""

    def __init__(self, base_url: str = "http://old.example/api/v1", ignores: bool = False):
        super().__init__()
        self.base_url = base_url
        self.refused = 0
        keyed_send = self.messages.send

        async def send(recipient: str, content: str, client_message_id: str | None = None,
                       **kw: Any) -> Any:
            from api_integration_layer.errors import ApiHTTPError

            if client_message_id is not None and not ignores:
                self.refused += 1
                raise ApiHTTPError("POST", "/messages/send", 422, [{
                    "type": "extra_forbidden", "loc": ["body", "client_message_id"],
                    "msg": "Extra inputs are not permitted", "input": client_message_id}])
            return await keyed_send(recipient, content, **kw)

        self.messages.send = send  # type: ignore[method-assign]


def test_a_server_without_keys_is_remembered_until_the_sign_in_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from messaging_hub import outbox

    store = Store(tmp_path / "o.sqlite3")
    api, other_server, ignoring = OldFakeApi(), OldFakeApi("http://other/api/v1"), \
        OldFakeApi(ignores=True)
    signed_in: list[Any] = [(api, ME)]
    dispatcher = Dispatcher(store, lambda: signed_in[0], lambda *_: None, LOG,
                            clock=lambda: 1000.0)

    def queue_and_step(api: Any, owner: str, content: str) -> dict[str, Any]:
        item = store.queue(owner, BOB, content, "text", None, "undo", 1000.0)
        asyncio.run(dispatcher.step(api, owner))
        return store.item(item["id"]) or {}

    assert queue_and_step(api, ME, "one")["state"] == "sent" and api.refused == 1
    assert queue_and_step(api, ME, "two")["state"] == "sent" and api.refused == 1
    # Another user signed in, or another server: asked again.
    assert queue_and_step(api, CAT, "three")["state"] == "sent" and api.refused == 2
    assert queue_and_step(other_server, CAT, "four")["state"] == "sent"
    assert other_server.refused == 1
    assert queue_and_step(api, CAT, "five")["state"] == "sent" and api.refused == 3
    # Signed out and in again (the loop sees nobody): asked again.

    async def sign_out_and_in() -> None:
        task = asyncio.create_task(dispatcher.run())
        signed_in[0] = None
        dispatcher.poke()
        await asyncio.sleep(0.05)
        signed_in[0] = (api, CAT)
        item = store.queue(CAT, BOB, "six", "text", None, "undo", 1000.0)
        dispatcher.poke()
        async with asyncio.timeout(10):
            while (store.item(item["id"]) or {})["state"] != "sent":
                await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(sign_out_and_in())
    assert api.refused == 4
    # After KEYS_RECHECK (the server may have been upgraded meanwhile): asked again.
    monkeypatch.setattr(outbox, "KEYS_RECHECK", 0.0)
    assert queue_and_step(api, CAT, "seven")["state"] == "sent" and api.refused == 5
    # A server that takes the send but drops the key: the next ones go by mark.
    assert queue_and_step(ignoring, ME, "eight")["state"] == "sent"
    monkeypatch.setattr(outbox, "KEYS_RECHECK", 3600.0)
    item = queue_and_step(ignoring, ME, "nine")
    assert item["state"] == "sent" and "ids" in json.loads(item["claim_mark"])
    # Each text stored once, with no key.
    for fake in (api, other_server, ignoring):
        contents = [m.content for m in fake.messages.stored]
        assert len(contents) == len(set(contents))
    assert sorted(m.content for m in api.messages.stored) == sorted(
        ["one", "two", "three", "five", "six", "seven"])
    assert all(m.client_message_id is None for m in api.messages.stored)
    store.close()


def test_only_a_422_naming_the_key_is_a_server_without_keys(tmp_path: Path) -> None:
    # A 422 for the content (test_units' "content: boom"), or one naming another field,
    # still fails the item with its reason: the send is not tried again without a key.
    from api_integration_layer.errors import ApiHTTPError
    from messaging_hub.outbox import _refuses_key

    def refused(status: int, detail: Any) -> bool:
        return _refuses_key(ApiHTTPError("POST", "/messages/send", status, detail))

    key = {"type": "extra_forbidden", "loc": ["body", "client_message_id"], "msg": "x"}
    assert refused(422, [key]) and refused(422, [{**key, "type": "value_error.extra"}])
    assert not refused(400, [key]) and not refused(422, "client_message_id: x")
    assert not refused(422, [{**key, "loc": ["body", "content"]}])
    assert not refused(422, [{**key, "loc": ["query", "client_message_id"]}])
