"""Editing a message whose send had no answer, against the real embedded v1 server.

A send whose answer is lost (a dropped connection, a timeout) leaves the item queued, and
the server may store it later than the read-back that looked for it. When the user then
edits the item, the edit leaves under the same key (the item's id): the server refuses a
second text for a key (409). That used to end as "failed" although the first text had
been delivered, so the user was told the wrong thing and never learnt what the recipient
got. Now the earlier send is looked up before an edit is taken and before it leaves, and a
409 on our own key is read as what it means: the item ends as *sent* with the text that
went out, and the edit is kept as a *held* item with a key of its own, which the user sends
as a new message or discards; it never leaves by itself.

:class:`LateServer` is a loopback proxy in front of the embedded server that loses the
answer of one send and delivers that send to the server later, when the test says, or
right after the next read of the conversation (the server saw it after our read-back).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from messaging_hub.outbox import Dispatcher, public_item
from messaging_hub.store import Store
from tests.loopback_proxy import Answer, LoopbackProxy
from tests.test_outbox_clock import Clock, new_user, sent_to

from plexichat_desktop.testing.harness import PlexiChatApp

LOG = logging.getLogger("test.outbox.edit")


@dataclass
class LateServer(LoopbackProxy):
    """A proxy that drops the connection of the send of ``late`` (no answer reaches the
    client) and forwards that send to the server only on :meth:`deliver`, or, with
    ``after_read``, just after it has read the next conversation page for the client."""

    late: str | None = None  # the content whose send arrives late
    after_read: bool = False
    held: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    stored: list[dict[str, Any]] = field(default_factory=list)  # what the late sends got
    conflicts: list[str] = field(default_factory=list)  # contents of sends answered 409

    def exchange(self, method: str, target: str, path: str, body: bytes,
                 headers: dict[str, str]) -> Answer:
        if method == "POST" and path.endswith("/api/v1/messages/send"):
            sent = json.loads(body or b"{}")
            with self.lock:
                late = self.late is not None and sent.get("content") == self.late
                if late:
                    self.late = None
                    self.held.append((target, body, headers))
            if late:
                return None  # the request went out; its answer never comes back
        answer = self.forward(method, target, body, headers)
        if path.endswith("/api/v1/messages/send") and answer[0] == 409:
            with self.lock:
                self.conflicts.append(json.loads(body)["content"])
        if "/api/v1/messages/conversation/" in path and self.after_read:
            self.after_read = False
            self.deliver()  # stored once this page was read: the page misses it
        return answer

    def deliver(self) -> None:
        """The lost send reaches the server now."""
        path, body, headers = self.held.pop()
        status, content, _ = self.forward("POST", path, body, headers)
        assert status == 201, content
        self.stored.append(json.loads(content))


@pytest.fixture(scope="module")
def late_server(app: PlexiChatApp) -> Iterator[LateServer]:
    proxy = LateServer(app.url)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture()
def proxy(late_server: LateServer) -> LateServer:
    """The module's proxy with nothing of an earlier test pending."""
    late_server.late, late_server.after_read = None, False
    late_server.held.clear()
    late_server.stored.clear()
    late_server.conflicts.clear()
    return late_server


@pytest.fixture(scope="module")
def late_api(app: PlexiChatApp, late_server: LateServer) -> Iterator[Any]:
    """The API layer's client through the proxy, signed in as the harness's user and
    limited to this plugin's scopes, as its ``ctx.api``."""
    from api_integration_layer.client import ApiClient
    from api_integration_layer.scoped import ScopedApi

    assert app.user is not None
    user = app.user

    async def sign_in() -> Any:
        client = ApiClient(f"{late_server.url}api/v1")
        await client.auth.login(user.username, user.password)
        return client

    client = app.call(sign_in())
    try:
        yield ScopedApi(client, "messaging_hub", app.plugin.ctx.api.scopes)
    finally:
        app.call(client.aclose())


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    outbox = Store(tmp_path / "outbox.sqlite3")
    yield outbox
    outbox.close()


def notes_about(app: PlexiChatApp, item_id: str) -> list[dict[str, Any]]:
    assert app.user is not None
    found = app.user.client.get("notifications/", params={"type": "warning"})
    assert found.status_code == 200, found.text
    return [n for n in found.json()["notifications"]
            if n["metadata"].get("edit_of") == item_id]


@pytest.mark.parametrize("arrives", ["before the edit leaves", "after the read-back",
                                     "and is deleted", "and the edit's answer is lost"])
def test_an_edit_after_a_lost_answer_tells_what_was_delivered(
        app: PlexiChatApp, proxy: LateServer, late_api: Any, store: Store,
        arrives: str) -> None:
    bob = new_user(app, "bob")
    first = f"Meet at 5 ({uuid.uuid4().hex[:6]})"
    edit = f"Meet at 6, not 5 ({uuid.uuid4().hex[:6]})"
    owner = str(late_api.user["id"])
    clock = Clock()

    async def scenario() -> tuple[dict[str, Any], dict[str, Any] | None]:
        dispatcher = Dispatcher(store, lambda: (late_api, owner), lambda *_: None, LOG,
                                clock=clock)
        item = store.queue(owner, bob, first, "text", None, "undo", clock())
        proxy.late = first
        await dispatcher.step(late_api, owner)
        # The answer was lost and the read-back found nothing: queued again, in doubt.
        queued = store.item(item["id"])
        assert queued is not None and queued["state"] == "pending" and queued["error"]
        assert public_item(queued)["in_doubt"] is True
        assert proxy.held and proxy.stored == []
        # The user edits it (what the route does: nothing found yet, so the edit is taken).
        assert await dispatcher.find_earlier(late_api, queued) is None
        assert store.update_pending(item["id"], owner, content=edit) is not None
        if arrives == "after the read-back":
            proxy.after_read = True
        elif arrives == "and the edit's answer is lost":
            # After the look-up before the edit leaves; the edit's own send is lost too:
            # its read-back finds the first text under the key.
            proxy.after_read = True
            proxy.late = edit
        else:
            # A blocking client: off the app's loop, which serves the request.
            await asyncio.to_thread(proxy.deliver)
            if arrives == "and is deleted":  # unsent from another device meanwhile
                await late_api.messages.delete(proxy.stored[0]["id"])
        clock.skew += 400  # past the backoff
        await dispatcher.step(late_api, owner)
        settled = store.item(item["id"])
        assert settled is not None
        held = [i for i in store.items(owner) if i["edit_of"] == item["id"]]
        # Whatever happens next, nothing more goes out by itself.
        clock.skew += 4000
        await dispatcher.step(late_api, owner)
        return settled, held[0] if held else None

    settled, held = app.call(scenario())
    delivered = proxy.stored[0]
    assert settled["state"] == "sent", settled  # not "failed": the first text went out
    assert settled["content"] == first and settled["message_id"] == delivered["id"]
    assert settled["error"] is None and "before your edit" in settled["note"]
    assert held is not None and held["state"] == "held" and held["content"] == edit
    assert held["id"] != settled["id"]  # its own key when the user sends it
    shown = public_item(held)
    assert shown["delivered"]["content"] == first
    assert shown["delivered"]["message_id"] == delivered["id"]
    assert shown["delivered"]["deleted"] is (arrives == "and is deleted")
    assert shown["edit_of"] == settled["id"] and "Not sent" in shown["note"]
    # Found before the edit left (or by the lost edit's read-back), or told by the
    # server's 409 for our key when the read-back could not see it; the deleted one then
    # asked for with the first text under the key, answered as the duplicate (a second
    # copy would show in the conversation below).
    assert proxy.conflicts == ([edit] if arrives in ("after the read-back",
                                                     "and is deleted") else [])
    # On the server: the first text once (deleted or not), the edit never.
    visible = sent_to(app, bob, first)
    assert len(visible) == (0 if arrives == "and is deleted" else 1)
    assert sent_to(app, bob, edit) == []
    # The owner hears of it on every client, with both texts.
    [note] = notes_about(app, settled["id"])
    assert note["title"] == "Your edit was not sent"
    assert first in note["message"] and edit in note["message"]

    # Sent by the user, the edit goes out once, as a new message under its own key.
    async def send_the_edit() -> dict[str, Any]:
        dispatcher = Dispatcher(store, lambda: (late_api, owner), lambda *_: None, LOG,
                                clock=clock)
        assert store.send_held(held["id"], owner, clock()) is not None
        await dispatcher.step(late_api, owner)
        await dispatcher.step(late_api, owner)
        return store.item(held["id"]) or {}

    sent = app.call(send_the_edit())
    [message] = sent_to(app, bob, edit)
    assert sent["state"] == "sent" and sent["message_id"] == message["id"]
    assert message["client_message_id"] == held["id"]
    assert len(sent_to(app, bob, first)) == len(visible)


def test_an_edit_whose_earlier_send_never_arrived_goes_out_alone(
        app: PlexiChatApp, proxy: LateServer, late_api: Any, store: Store) -> None:
    # The lost send never reaches the server: the edit leaves under the item's key, and
    # the first text can never arrive after it (the key is taken).
    bob = new_user(app, "bob")
    first, edit = f"Call me ({uuid.uuid4().hex[:6]})", f"Text me ({uuid.uuid4().hex[:6]})"
    owner = str(late_api.user["id"])
    clock = Clock()

    async def scenario() -> dict[str, Any]:
        dispatcher = Dispatcher(store, lambda: (late_api, owner), lambda *_: None, LOG,
                                clock=clock)
        item = store.queue(owner, bob, first, "text", None, "undo", clock())
        proxy.late = first
        await dispatcher.step(late_api, owner)
        assert store.update_pending(item["id"], owner, content=edit) is not None
        clock.skew += 400
        await dispatcher.step(late_api, owner)
        return store.item(item["id"]) or {}

    item = app.call(scenario())
    [message] = sent_to(app, bob, edit)
    assert item["state"] == "sent" and item["content"] == edit
    assert item["message_id"] == message["id"] and item["note"] is None
    assert message["client_message_id"] == item["id"]
    # The lost send, arriving now, stores nothing: the key holds the edit (409).
    path, body, headers = proxy.held.pop()
    with httpx.Client(base_url=app.url, timeout=30.0) as client:
        assert client.post(path, content=body, headers=headers).status_code == 409
    assert sent_to(app, bob, first) == []
    assert [i for i in store.items(owner) if i["edit_of"] == item["id"]] == []


# -- through the plugin's routes, with the app's own dispatcher ---------------------------
FAR = 10 * 365 * 86400.0  # a send time the app's dispatcher never reaches by itself


def lost_answer(app: PlexiChatApp, recipient: str, content: str, stored: bool
                ) -> dict[str, Any]:
    """An item of the app's own outbox as a send with a lost answer leaves it: claimed,
    marked with its key, sent (``stored``: the server took it), then queued again with the
    error, as the dispatcher does when its read-back found nothing. Due far ahead, so
    only the test moves it."""
    plugin = app.plugin
    owner = str(plugin.ctx.api.user["id"])
    at = time.time() + FAR

    async def until_the_loss() -> dict[str, Any]:
        item = plugin.store.queue(owner, recipient, content, "text", None, "scheduled", at)
        assert plugin.store.claim(item["id"], at)
        assert await plugin.dispatcher.mark(plugin.ctx.api, item)
        if stored:
            await plugin.dispatcher.send(plugin.ctx.api, item)
        plugin.store.release(item["id"], at, "ReadTimeout: no answer")
        return plugin.store.item(item["id"]) or {}

    return app.call(until_the_loss())


def outbox_item(app: PlexiChatApp, item_id: str) -> dict[str, Any]:
    items = app.client.get("api/outbox", params={"state": "all"})
    assert items.status_code == 200, items.text
    return next(i for i in items.json()["items"] if i["id"] == item_id)


def settled(app: PlexiChatApp, item_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30.0
    while (item := outbox_item(app, item_id))["state"] in ("pending", "sending"):
        assert time.monotonic() < deadline, f"waited 30 s for {item_id} to leave"
        time.sleep(0.05)
    return item


def test_editing_a_delivered_message_through_the_page(app: PlexiChatApp) -> None:
    bob = new_user(app, "bob")
    first = f"The code is 1234 ({uuid.uuid4().hex[:6]})"
    edit = f"The code is 4321 ({uuid.uuid4().hex[:6]})"
    item = lost_answer(app, bob, first, stored=True)
    shown = outbox_item(app, item["id"])
    assert shown["state"] == "pending" and shown["in_doubt"] is True
    assert shown["error"] == "ReadTimeout: no answer"

    answer = app.client.patch(f"api/outbox/{item['id']}",
                              json={"content": edit, "message_type": "markdown"})
    assert answer.status_code == 409, answer.text
    body = answer.json()
    assert body["field"] == "state" and "already delivered" in body["detail"]
    [message] = sent_to(app, bob, first)
    assert body["item"]["state"] == "sent" and body["item"]["content"] == first
    assert body["item"]["message_id"] == message["id"] and body["item"]["in_doubt"] is False
    held = body["edit"]
    assert held["state"] == "held" and held["content"] == edit
    assert held["message_type"] == "markdown" and held["edit_of"] == item["id"]
    assert held["delivered"]["content"] == first and held["delivered"]["deleted"] is False
    # Shown with the conversation and in the open outbox; it does not leave by itself.
    conversation = app.client.get(f"api/conversation/{bob}")
    assert conversation.status_code == 200, conversation.text
    assert [i["id"] for i in conversation.json()["outbox"]] == [held["id"]]
    listed = app.client.get("api/outbox", params={"state": "open"}).json()["items"]
    assert held["id"] in [i["id"] for i in listed]
    assert outbox_item(app, item["id"])["state"] == "sent"
    # Held, it can be changed and stays held; retry is for failed messages only.
    changed = app.client.patch(f"api/outbox/{held['id']}", json={"content": edit + "!"})
    assert changed.status_code == 200 and changed.json()["state"] == "held"
    assert app.client.post(f"api/outbox/{held['id']}/retry").status_code == 409
    assert sent_to(app, bob, edit + "!") == []
    # Sent by the user: a new message, once; the first text stays once.
    now = app.client.post(f"api/outbox/{held['id']}/send-now")
    assert now.status_code == 200 and now.json()["state"] == "pending", now.text
    done = settled(app, held["id"])
    [second] = sent_to(app, bob, edit + "!")
    assert done["state"] == "sent" and done["message_id"] == second["id"]
    assert second["message_type"] == "markdown" and second["client_message_id"] == held["id"]
    assert len(sent_to(app, bob, first)) == 1
    # No notification for an edit refused in the page: the answer told the user.
    assert notes_about(app, item["id"]) == []


def test_a_held_edit_can_be_discarded(app: PlexiChatApp) -> None:
    bob = new_user(app, "bob")
    first, edit = f"Yes ({uuid.uuid4().hex[:6]})", f"No ({uuid.uuid4().hex[:6]})"
    item = lost_answer(app, bob, first, stored=True)
    answer = app.client.patch(f"api/outbox/{item['id']}", json={"content": edit})
    assert answer.status_code == 409, answer.text
    held = answer.json()["edit"]
    gone = app.client.post(f"api/outbox/{held['id']}/cancel")
    assert gone.status_code == 200 and gone.json()["state"] == "cancelled"
    assert app.client.post(f"api/outbox/{held['id']}/send-now").status_code == 409
    assert sent_to(app, bob, edit) == [] and len(sent_to(app, bob, first)) == 1


def test_an_edit_of_a_send_that_never_arrived_is_taken(app: PlexiChatApp) -> None:
    bob = new_user(app, "bob")
    first, edit = f"Lunch? ({uuid.uuid4().hex[:6]})", f"Dinner? ({uuid.uuid4().hex[:6]})"
    item = lost_answer(app, bob, first, stored=False)
    # The schedule alone changes nothing that may have gone out: not looked up.
    later = app.client.patch(f"api/outbox/{item['id']}", json={
        "send_at": datetime.fromtimestamp(time.time() + FAR / 2, UTC).isoformat()})
    assert later.status_code == 200 and later.json()["in_doubt"] is True
    answer = app.client.patch(f"api/outbox/{item['id']}", json={"content": edit})
    assert answer.status_code == 200, answer.text
    assert answer.json()["content"] == edit and answer.json()["state"] == "pending"
    assert app.client.post(f"api/outbox/{item['id']}/send-now").status_code == 200
    done = settled(app, item["id"])
    [message] = sent_to(app, bob, edit)
    assert done["state"] == "sent" and done["message_id"] == message["id"]
    assert done["content"] == edit and done["note"] is None
    assert message["client_message_id"] == item["id"]
    assert sent_to(app, bob, first) == []


def test_a_send_from_before_the_texts_were_kept_deleted_since(app: PlexiChatApp) -> None:
    # Sent with its key by a version that kept no record of the texts it sent, then
    # deleted (by either party): the server's 409 says a text went out, nothing can say
    # which. Sent with no text shown rather than the edit, which did not go out.
    bob = new_user(app, "bob")
    first, edit = f"Old text ({uuid.uuid4().hex[:6]})", f"New text ({uuid.uuid4().hex[:6]})"
    item = lost_answer(app, bob, first, stored=True)
    with sqlite3.connect(app.plugin.store.path) as conn:
        conn.execute("UPDATE outbox SET tried = NULL WHERE id = ?", (item["id"],))
    [message] = sent_to(app, bob, first)
    assert app.user is not None
    assert app.user.client.delete(f"messages/{message['id']}").status_code == 200
    answer = app.client.patch(f"api/outbox/{item['id']}", json={"content": edit})
    assert answer.status_code == 200, answer.text  # nothing to look for
    assert app.client.post(f"api/outbox/{item['id']}/send-now").status_code == 200
    done = settled(app, item["id"])
    assert done["state"] == "sent" and done["content"] == "" and done["message_id"] is None
    assert "which one is not known" in done["note"]
    [held] = [i for i in app.client.get("api/outbox", params={"state": "held"}).json()[
        "items"] if i["edit_of"] == item["id"]]
    assert held["content"] == edit and held["delivered"]["content"] is None
    assert sent_to(app, bob, edit) == [] and sent_to(app, bob, first) == []
    [note] = notes_about(app, item["id"])
    assert "An earlier text was delivered" in note["message"] and edit in note["message"]


def test_an_outbox_file_from_before_the_new_columns_opens(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # the outbox table as the first version made it
        conn.execute(
            "CREATE TABLE outbox (id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, recipient_id "
            "TEXT NOT NULL, content TEXT NOT NULL, message_type TEXT NOT NULL, reply_to "
            "TEXT, kind TEXT NOT NULL, send_at REAL NOT NULL, state TEXT NOT NULL, attempts "
            "INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, updated_at REAL NOT NULL,"
            " claimed_at REAL, sent_at REAL, message_id TEXT, error TEXT)")
        conn.execute("INSERT INTO outbox VALUES ('a', 'me', 'bob', 'hi', 'text', NULL, "
                     "'undo', 1, 'pending', 0, 1, 1, NULL, NULL, NULL, NULL)")
    store = Store(path)
    try:
        old = store.item("a")
        assert old is not None and old["tried"] is None
        assert public_item(old)["in_doubt"] is False and public_item(old)["delivered"] is None
        assert store.claim("a", 2.0)
        store.set_mark("a", json.dumps({"key": "a"}), ("hi", "text"))
        store.set_mark("a", json.dumps({"key": "a"}), ("hi", "text"))  # recorded once
        assert json.loads(store.item("a")["tried"]) == [["hi", "text"]]  # type: ignore[index]
    finally:
        store.close()


@pytest.mark.parametrize("stored", [True, False])
def test_cancelling_a_message_whose_send_had_no_answer(app: PlexiChatApp,
                                                       stored: bool) -> None:
    # Cancelled, a message that was in fact delivered would be shown as never sent.
    bob = new_user(app, "bob")
    text = f"Forget it ({uuid.uuid4().hex[:6]})"
    item = lost_answer(app, bob, text, stored=stored)
    answer = app.client.post(f"api/outbox/{item['id']}/cancel")
    on_server = sent_to(app, bob, text)
    if stored:
        assert answer.status_code == 409, answer.text
        assert "already delivered" in answer.json()["detail"]
        shown = answer.json()["item"]
        assert shown["state"] == "sent" and shown["message_id"] == on_server[0]["id"]
        assert shown["note"] == "This text was delivered before it was cancelled."
        assert answer.json()["edit"] is None
        assert [i for i in app.client.get("api/outbox", params={"state": "held"}).json()[
            "items"] if i["edit_of"] == item["id"]] == []
    else:
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == "cancelled" and on_server == []
        assert "no answer" in answer.json()["note"]
    assert len(on_server) == int(stored)
