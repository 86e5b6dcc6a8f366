"""v1 message threads, reactions and edits over real HTTP, with their realtime frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.api_v1.shared_server import OWN_SERVER, module_server  # noqa: F401

# Most tests share one server (``v1``) and run in the module's event loop, each with
# accounts of its own; those that need the first account (the administrator), count what
# the whole server holds, or need settings of their own, start their own.
pytestmark = pytest.mark.asyncio(loop_scope="module")


async def next_frame(ws: ClientConnection, kind: str, timeout: float = 5) -> dict[str, Any]:
    """The next frame of type ``kind`` (others are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind:
                return message


async def send(account: Any, **body: Any) -> dict[str, Any]:
    r = await account.client.post("/messages/send", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_replies_form_a_thread(v1):
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    cid = await v1.account("cid")
    root = await send(ann, recipient_id=ben.id, content="lunch?")
    assert root["reply_to"] is None and root["thread_id"] is None
    assert root["reply_count"] == 0 and root["reactions"] == [] and root["edited"] is False
    # A reply may leave out recipient_id: it goes to the other party of the message.
    first = await send(ben, reply_to=root["id"], content="yes")
    assert first["recipient_id"] == ann.id and first["reply_to"] == root["id"]
    assert first["thread_id"] == root["id"]
    # A reply to a reply stays in the root's thread.
    second = await send(ann, recipient_id=ben.id, reply_to=first["id"], content="12:30")
    assert second["thread_id"] == root["id"] and second["reply_to"] == first["id"]
    await send(ann, recipient_id=ben.id, content="unrelated")

    # Any message of the thread names it; replies come oldest first.
    for start in (root["id"], second["id"]):
        r = await ben.client.get(f"/messages/{start}/thread")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["thread_id"] == root["id"] and body["root"]["content"] == "lunch?"
        assert [m["content"] for m in body["messages"]] == ["yes", "12:30"]
        assert body["total"] == 2 and body["has_more"] is False
    paged = (await ann.client.get(f"/messages/{root['id']}/thread",
                                  params={"limit": 1, "offset": 1})).json()
    assert [m["content"] for m in paged["messages"]] == ["12:30"] and paged["total"] == 2
    assert (await ann.client.get(f"/messages/{root['id']}")).json()["reply_count"] == 2
    history = (await ann.client.get(f"/messages/conversation/{ben.id}")).json()
    counts = {m["content"]: m["reply_count"] for m in history["messages"]}
    assert counts == {"lunch?": 2, "yes": 0, "12:30": 0, "unrelated": 0}

    # Outsiders see no thread; nobody replies into another conversation.
    assert (await cid.client.get(f"/messages/{root['id']}/thread")).status_code == 404
    r = await cid.client.post("/messages/send", json={"reply_to": root["id"], "content": "hi"})
    assert r.status_code == 422 and "reply_to" in r.text
    r = await ann.client.post("/messages/send", json={"recipient_id": cid.id,
                                                      "reply_to": root["id"], "content": "x"})
    assert r.status_code == 422 and "another conversation" in r.text
    r = await ann.client.post("/messages/send", json={"reply_to": "nope", "content": "x"})
    assert r.status_code == 422 and "reply_to" in r.text

    # Deleting the root keeps the thread readable from its replies (root becomes null).
    assert (await ann.client.delete(f"/messages/{root['id']}")).status_code == 200
    body = (await ben.client.get(f"/messages/{first['id']}/thread")).json()
    assert body["root"] is None and body["total"] == 2


async def test_reactions_counts_and_frames(v1):
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    cid = await v1.account("cid")
    message = await send(ann, recipient_id=ben.id, content="ship it")
    mid = message["id"]
    async with connect(f"{v1.ws_url}?token={ann.token}") as a_ws, \
            connect(f"{v1.ws_url}?token={ben.token}") as b_ws:
        await next_frame(a_ws, "welcome")
        await next_frame(b_ws, "welcome")
        r = await ben.client.post(f"/messages/{mid}/reactions", json={"emoji": "👍"})
        assert r.status_code == 200, r.text
        assert r.json()["changed"] is True
        assert r.json()["reactions"] == [{"emoji": "👍", "count": 1, "me": True}]
        for ws in (a_ws, b_ws):
            event = (await next_frame(ws, "reaction"))["data"]
            assert event["message_id"] == mid and event["action"] == "added"
            assert event["user_id"] == ben.id and event["reactions"] == [
                {"emoji": "👍", "count": 1}]
        r = await ann.client.post(f"/messages/{mid}/reactions", json={"emoji": "👍"})
        assert r.json()["reactions"] == [{"emoji": "👍", "count": 2, "me": True}]
        await ann.client.post(f"/messages/{mid}/reactions", json={"emoji": ":tada:"})
        # Reacting twice is no change: no second count, no frame.
        again = await ann.client.post(f"/messages/{mid}/reactions", json={"emoji": ":tada:"})
        assert again.json()["changed"] is False
        seen = await ben.client.get(f"/messages/{mid}")
        assert seen.json()["reactions"] == [{"emoji": "👍", "count": 2, "me": True},
                                            {"emoji": ":tada:", "count": 1, "me": False}]

        r = await ben.client.delete(f"/messages/{mid}/reactions", params={"emoji": "👍"})
        assert r.status_code == 200 and r.json()["changed"] is True
        assert r.json()["reactions"][0] == {"emoji": "👍", "count": 1, "me": False}
        # ann's frames: added 👍 (ann), added :tada:, then removed 👍 by ben, in order.
        frames = [(await next_frame(a_ws, "reaction"))["data"] for _ in range(3)]
        assert [(f["action"], f["emoji"]) for f in frames] == [
            ("added", "👍"), ("added", ":tada:"), ("removed", "👍")]
        r = await ben.client.delete(f"/messages/{mid}/reactions", params={"emoji": "👍"})
        assert r.json()["changed"] is False

    assert (await cid.client.post(f"/messages/{mid}/reactions",
                                  json={"emoji": "👍"})).status_code == 404
    # One emoji: two side by side, a math or currency sign, two flags or an invisible
    # format character (a right-to-left override) were reactions too (a user audit).
    for bad in ("", "ab", "👍 ", "<b>", "x" * 40, ":Bad Code:", "1", "👍👍", "😀😃😄",
                "🇫🇷🇩🇪", "©®", "∑", "€", "\u202e👍", "👍\u202e"):
        r = await ann.client.post(f"/messages/{mid}/reactions", json={"emoji": bad})
        assert r.status_code == 422 and "emoji" in r.text, (bad, r.text)
    r = await ann.client.delete(f"/messages/{mid}/reactions", params={"emoji": "abc"})
    assert r.status_code == 422 and "emoji" in r.text
    assert (await ann.client.delete(f"/messages/{mid}/reactions")).status_code == 422
    for ok in ("1️⃣", "👨‍👩‍👧", "🇫🇷", "❤️", "👍🏽", "🏳️‍🌈", "©"):
        r = await ann.client.post(f"/messages/{mid}/reactions", json={"emoji": ok})
        assert r.status_code == 200, (ok, r.text)


async def test_distinct_reactions_are_limited(v1):
    from plexichat_desktop.server.v1.routes import messages

    ann = await v1.account("ann")
    ben = await v1.account("ben")
    mid = (await send(ann, recipient_id=ben.id, content="vote"))["id"]
    codes = [f":c{i}:" for i in range(messages.MAX_DISTINCT_REACTIONS)]
    for code in codes:
        assert (await ann.client.post(f"/messages/{mid}/reactions",
                                      json={"emoji": code})).status_code == 200
    r = await ben.client.post(f"/messages/{mid}/reactions", json={"emoji": ":one_more:"})
    assert r.status_code == 409 and "emoji" in r.json()["detail"]
    # Joining an existing reaction is still fine.
    r = await ben.client.post(f"/messages/{mid}/reactions", json={"emoji": codes[0]})
    assert r.status_code == 200 and r.json()["reactions"][0]["count"] == 2


async def test_editing_a_message(v1):
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    message = await send(ann, recipient_id=ben.id, content="teh plan")
    async with connect(f"{v1.ws_url}?token={ben.token}") as b_ws:
        await next_frame(b_ws, "welcome")
        r = await ann.client.patch(f"/messages/{message['id']}", json={"content": "the plan"})
        assert r.status_code == 200, r.text
        edited = r.json()
        assert edited["content"] == "the plan" and edited["edited"] is True
        assert edited["edited_at"] >= edited["timestamp"]
        event = (await next_frame(b_ws, "message_updated"))["data"]
        assert event["id"] == message["id"] and event["content"] == "the plan"
        assert event["edited"] is True
    r = await ben.client.patch(f"/messages/{message['id']}", json={"content": "mine now"})
    assert r.status_code == 403 and "sender" in r.json()["detail"]
    for body in ({"content": ""}, {"content": "  "}, {"content": "\u200b"},
                 {"content": "x" * 10_001},
                 {"content": "x", "recipient_id": ben.id}, {}):
        r = await ann.client.patch(f"/messages/{message['id']}", json=body)
        assert r.status_code == 422, (body, r.text)
    assert (await ann.client.patch("/messages/nope", json={"content": "x"})).status_code == 404
    got = (await ben.client.get(f"/messages/{message['id']}")).json()
    assert got["content"] == "the plan" and got["edited"] is True


@OWN_SERVER
async def test_reactions_are_rate_limited_per_user(make_v1):
    v1 = await make_v1(reactions_per_minute=4)
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    mid = (await send(ann, recipient_id=ben.id, content="react away"))["id"]
    # Adding and taking back count alike: each is a write and a frame to both parties.
    for emoji, add in ((":a:", True), (":a:", False), (":b:", True), (":c:", True)):
        r = (await ann.client.post(f"/messages/{mid}/reactions", json={"emoji": emoji})
             if add else
             await ann.client.delete(f"/messages/{mid}/reactions", params={"emoji": emoji}))
        assert r.status_code == 200, r.text
    for over in (ann.client.post(f"/messages/{mid}/reactions", json={"emoji": ":d:"}),
                 ann.client.delete(f"/messages/{mid}/reactions", params={"emoji": ":b:"})):
        r = await over
        assert r.status_code == 429, r.text
        assert int(r.headers["retry-after"]) >= 1
        assert "too many reaction requests: at most 4 per 60 s" in r.json()["detail"]
    seen = (await ben.client.get(f"/messages/{mid}")).json()["reactions"]
    assert [x["emoji"] for x in seen] == [":b:", ":c:"]  # the refused ones changed nothing
    assert (await ben.client.post(f"/messages/{mid}/reactions",
                                  json={"emoji": ":b:"})).status_code == 200  # per user
    await send(ann, recipient_id=ben.id, content="sending is not a reaction")
