"""Send-later against clock skew: the outbox's dispatcher with an injected wall clock, the
real plugin's API session and the real embedded v1 server.

Reconciliation used to compare the claim's local time with the server's timestamps: a
clock ahead of the server's (or moved forward) sent a message twice after a crash, one
behind (or moved back) took an earlier message with the same text for the send and never
sent it. Each case here leaves the outbox as a crash at that point would (the same calls
the dispatcher makes, then no answer recorded), restarts the dispatcher with the skewed
clock and counts the messages on the server.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from messaging_hub.outbox import Dispatcher
from messaging_hub.store import Store

from plexichat_desktop.testing.harness import USER_PASSWORD, PlexiChatApp

HOUR = 3600.0


def new_user(app: PlexiChatApp, prefix: str) -> str:
    name = f"{prefix}{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=f"{app.url}api/v1/", timeout=30.0) as v1:
        r = v1.post("auth/register", json={"username": name, "email": f"{name}@example.org",
                                           "password": USER_PASSWORD})
        assert r.status_code == 201, r.text
        return str(r.json()["user_id"])


@pytest.fixture(scope="module")
def bob_id(app: PlexiChatApp) -> str:
    return new_user(app, "bob")


class Clock:
    """A wall clock that is off by ``skew`` seconds and can jump."""

    def __init__(self, skew: float = 0.0):
        self.skew = skew

    def __call__(self) -> float:
        return time.time() + self.skew


def send_by_hand(app: PlexiChatApp, recipient_id: str, content: str) -> dict[str, Any]:
    """A message the harness's user sends straight to the server (by hand, or from another
    device), not through the outbox: the server's answer."""
    assert app.user is not None
    r = app.user.client.post("messages/send", json={"recipient_id": recipient_id,
                                                    "content": content})
    assert r.status_code == 201, r.text
    return dict(r.json())


def sent_to(app: PlexiChatApp, bob_id: str, content: str) -> list[dict[str, Any]]:
    assert app.user is not None
    page = app.user.client.get(f"messages/conversation/{bob_id}",
                               params={"limit": 100, "mark_read": "false"})
    assert page.status_code == 200, page.text
    return [m for m in page.json()["messages"] if m["content"] == content]


async def legacy_mark(api: Any, store: Store, item: dict[str, Any]) -> None:
    """The mark the dispatcher wrote before sends carried a key: the conversation's
    newest three message ids and the server's time of the newest."""
    with api.bypass_cache():
        before = await api.messages.conversation(item["recipient_id"], limit=3,
                                                 mark_read=False)
    newest = before.messages[:3]
    store.set_mark(item["id"], json.dumps({
        "ids": [m.id for m in newest],
        "at": newest[0].timestamp.timestamp() if newest else None}))


def run(app: PlexiChatApp, tmp_path: Path, clock: Clock, crash_at: str, content: str,
        bob_id: str, while_down: Callable[[Any], Awaitable[None]] | None = None,
        legacy: bool = False) -> dict[str, Any]:
    """Queue ``content``, take it as far as ``crash_at`` the way the dispatcher does (with
    ``legacy``, as it did before sends carried a key), then (after ``while_down(api)``:
    what happens on the server while the app is down) restart the dispatcher (same outbox
    file, same skewed clock) until the item settles; the item as it ended."""
    store = Store(tmp_path / f"outbox-{uuid.uuid4().hex}.sqlite3")
    log = __import__("logging").getLogger("test.outbox")

    async def scenario() -> dict[str, Any]:
        api = app.plugin.ctx.api
        owner = str(api.user["id"])
        first = Dispatcher(store, lambda: (api, owner), lambda *_: None, log, clock=clock)
        item = store.queue(owner, bob_id, content, "text", None, "scheduled", clock())
        assert store.claim(item["id"], clock())
        if crash_at != "claimed" and legacy:
            await legacy_mark(api, store, item)
            if crash_at == "sent":
                await api.messages.send(bob_id, content)
        elif crash_at != "claimed":
            assert await first.mark(api, item)
            if crash_at == "sent":  # the server stored it; the app died before the answer
                await first.send(api, item)
        if while_down is not None:
            await while_down(api)
        # The restart: a new dispatcher finds the item in 'sending'.
        second = Dispatcher(store, lambda: (api, owner), lambda *_: None, log, clock=clock)
        for _ in range(5):
            await second.step(api, owner)
            found = store.item(item["id"])
            assert found is not None
            if found["state"] not in ("pending", "sending"):
                break
            await asyncio.sleep(0.05)
        # Whatever the clock does next, a settled item is not sent again.
        for jump in (-HOUR, 2 * HOUR):
            clock.skew += jump
            await second.step(api, owner)
        return store.item(item["id"]) or {}

    try:
        return app.call(scenario())
    finally:
        store.close()


@pytest.mark.parametrize("skew", [HOUR, -HOUR, 0.0])
def test_crash_after_the_send_is_not_sent_again(app: PlexiChatApp, tmp_path: Path,
                                                bob_id: str, skew: float) -> None:
    content = f"sent before the crash, clock {skew:+.0f} s ({uuid.uuid4().hex[:6]})"
    item = run(app, tmp_path, Clock(skew), "sent", content, bob_id)
    on_server = sent_to(app, bob_id, content)
    assert len(on_server) == 1, on_server
    assert item["state"] == "sent" and item["message_id"] == on_server[0]["id"]


@pytest.mark.parametrize("skew", [HOUR, -HOUR, 0.0])
@pytest.mark.parametrize("crash_at", ["claimed", "marked"])
def test_crash_before_the_send_is_sent_once(app: PlexiChatApp, tmp_path: Path, bob_id: str,
                                            skew: float, crash_at: str) -> None:
    # The same text sent by hand a moment earlier: not this item's send.
    content = f"on my way ({uuid.uuid4().hex[:6]})"
    earlier = send_by_hand(app, bob_id, content)
    item = run(app, tmp_path, Clock(skew), crash_at, content, bob_id)
    on_server = sent_to(app, bob_id, content)
    assert len(on_server) == 2, on_server
    assert item["state"] == "sent" and item["message_id"] == on_server[0]["id"]
    assert item["message_id"] != earlier["id"]


@pytest.mark.parametrize("skew", [-HOUR, 0.0])
@pytest.mark.parametrize("crash_at", ["marked", "sent"])
def test_the_marked_messages_deleted_meanwhile(app: PlexiChatApp, tmp_path: Path,
                                               bob_id: str, skew: float,
                                               crash_at: str) -> None:
    # The same text sent by hand earlier, then three messages that become the mark and
    # are deleted while the app is down (by either party: "unsend" deletes for both). An
    # earlier message with the same text must not pass for the send.
    content = f"see you there ({uuid.uuid4().hex[:6]})"
    earlier = send_by_hand(app, bob_id, content)
    fillers = [send_by_hand(app, bob_id, f"filler {n}")["id"] for n in range(3)]

    async def delete_the_mark(api: Any) -> None:
        for message_id in fillers:
            await api.messages.delete(message_id)

    item = run(app, tmp_path, Clock(skew), crash_at, content, bob_id, delete_the_mark)
    on_server = sent_to(app, bob_id, content)
    assert len(on_server) == 2, on_server
    assert item["state"] == "sent" and item["message_id"] == on_server[0]["id"]
    assert item["message_id"] != earlier["id"]


@pytest.mark.parametrize("crash_at", ["marked", "sent"])
@pytest.mark.parametrize("before", [0, 1, 2])
def test_a_conversation_of_fewer_messages_than_the_mark(app: PlexiChatApp, tmp_path: Path,
                                                        crash_at: str, before: int) -> None:
    # A new contact: the mark holds every message there was (none, or the same text sent
    # by hand, deleted while the app is down).
    carol = new_user(app, "carol")
    content = f"hello carol ({uuid.uuid4().hex[:6]})"
    earlier = [send_by_hand(app, carol, content)["id"] for _ in range(before)]

    async def delete_them(api: Any) -> None:
        for message_id in earlier:
            await api.messages.delete(message_id)

    item = run(app, tmp_path, Clock(-HOUR), crash_at, content, carol, delete_them)
    on_server = sent_to(app, carol, content)
    assert len(on_server) == 1, on_server
    assert item["state"] == "sent" and item["message_id"] == on_server[0]["id"]
    assert item["message_id"] not in earlier



# -- the key: the same text from another device is not our send --------------------------
# Recovery used to count a message of ours with the same text after the mark as the send:
# the same words posted from another device (the web client, a phone: the same account,
# no key) while the app was down made an item that never reached the server look sent,
# and it was lost. Now only the message carrying the item's id as its client_message_id
# is the send, and a send again with that key is answered by the server, not stored twice.

def posted_elsewhere(bob_id: str, content: str, ids: list[str]
                     ) -> Callable[[Any], Awaitable[None]]:
    """While the app is down: the same account sends ``content`` to Bob without a key
    (through the plugin's session: a blocking client would stall the app's loop)."""
    async def post(api: Any) -> None:
        ids.append((await api.messages.send(bob_id, content)).id)
    return post


@pytest.mark.parametrize("skew", [HOUR, -HOUR, 0.0])
@pytest.mark.parametrize("crash_at", ["claimed", "marked"])
def test_the_same_text_from_another_device_is_not_our_send(
        app: PlexiChatApp, tmp_path: Path, bob_id: str, skew: float, crash_at: str) -> None:
    content = f"running late ({uuid.uuid4().hex[:6]})"
    elsewhere: list[str] = []
    item = run(app, tmp_path, Clock(skew), crash_at, content, bob_id,
               posted_elsewhere(bob_id, content, elsewhere))
    on_server = sent_to(app, bob_id, content)
    assert len(on_server) == 2, on_server  # the other device's, then ours
    assert item["state"] == "sent" and item["message_id"] == on_server[0]["id"]
    assert item["message_id"] != elsewhere[0]
    assert on_server[0]["client_message_id"] == item["id"]
    assert on_server[1]["client_message_id"] is None


@pytest.mark.parametrize("skew", [HOUR, -HOUR, 0.0])
def test_a_crash_after_the_server_stored_it_does_not_send_twice(
        app: PlexiChatApp, tmp_path: Path, bob_id: str, skew: float) -> None:
    # Stored, then the same text from another device: the item is the keyed one.
    content = f"on the train ({uuid.uuid4().hex[:6]})"
    elsewhere: list[str] = []
    item = run(app, tmp_path, Clock(skew), "sent", content, bob_id,
               posted_elsewhere(bob_id, content, elsewhere))
    on_server = sent_to(app, bob_id, content)
    assert len(on_server) == 2, on_server
    assert item["state"] == "sent" and item["message_id"] == on_server[1]["id"]
    assert on_server[1]["client_message_id"] == item["id"]
    assert on_server[0]["id"] == elsewhere[0]


def test_a_stored_send_the_read_back_cannot_see_is_not_stored_twice(
        app: PlexiChatApp, tmp_path: Path, bob_id: str) -> None:
    # Stored, then deleted from another device while the app is down: the conversation
    # no longer lists it, so recovery sends again with the item's key, and the server
    # answers the stored message instead of storing a second.
    content = f"never mind ({uuid.uuid4().hex[:6]})"
    deleted: list[str] = []

    async def delete_ours(api: Any) -> None:
        with api.bypass_cache():
            page = await api.messages.conversation(bob_id, limit=20, mark_read=False)
        ours = [m for m in page.messages if m.content == content]
        assert len(ours) == 1 and ours[0].client_message_id is not None
        await api.messages.delete(ours[0].id)
        deleted.append(ours[0].id)

    item = run(app, tmp_path, Clock(), "sent", content, bob_id, delete_ours)
    assert sent_to(app, bob_id, content) == []
    assert item["state"] == "sent" and item["message_id"] == deleted[0]
    assert item["error"] is None


@pytest.mark.parametrize("skew", [HOUR, -HOUR])
@pytest.mark.parametrize("crash_at", ["marked", "sent"])
def test_an_item_claimed_before_keys_is_reconciled_by_its_mark(
        app: PlexiChatApp, tmp_path: Path, bob_id: str, skew: float, crash_at: str) -> None:
    # Left in 'sending' by the version before keys (its mark, a send without a key): the
    # same text after the mark is all there is to go by, as then; an earlier message with
    # the same text is not it, whatever the clock.
    content = f"legacy ({uuid.uuid4().hex[:6]})"
    earlier = send_by_hand(app, bob_id, content)
    item = run(app, tmp_path, Clock(skew), crash_at, content, bob_id, legacy=True)
    on_server = sent_to(app, bob_id, content)
    assert len(on_server) == 2, on_server
    assert item["state"] == "sent" and item["message_id"] == on_server[0]["id"]
    assert item["message_id"] != earlier["id"]
