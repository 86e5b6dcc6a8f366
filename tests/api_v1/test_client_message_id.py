"""Idempotent sends (``client_message_id`` of ``POST /messages/send``), and the limits
``GET /system/capabilities`` lists, over real HTTP and WebSocket against the real core.

A client that lost the answer of a send (a crash, a dropped connection) sends it again
with the same key: the server answers the message it stored the first time instead of
storing a second one. A database from before the key (schema 10) opens and keeps working.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from plexichat_desktop.core.paths import AppPaths
from plexichat_desktop.core.sqlite import SqliteDatabase
from plexichat_desktop.server.v1.auth import hash_password
from plexichat_desktop.server.v1.service import DATA_DIR_NAME, DB_NAME
from plexichat_desktop.server.v1.store import MIGRATIONS, SCHEMA_VERSION
from tests.api_v1.conftest import PASSWORD
from tests.api_v1.shared_server import OWN_SERVER, module_server  # noqa: F401

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def next_frame(ws: ClientConnection, kind: str, timeout: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind:
                return message


async def conversation(account: Any, other_id: str) -> list[dict[str, Any]]:
    r = await account.client.get(f"/messages/conversation/{other_id}",
                                 params={"limit": 100, "mark_read": "false"})
    assert r.status_code == 200, r.text
    return list(r.json()["messages"])


async def test_a_retry_with_the_same_key_answers_the_first_message(v1: Any) -> None:
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    key = uuid.uuid4().hex
    body = {"recipient_id": ben.id, "content": "see you at 9", "client_message_id": key}
    async with connect(f"{v1.ws_url}?token={ben.token}") as b_ws:
        await next_frame(b_ws, "welcome")
        first = await ann.client.post("/messages/send", json=body)
        assert first.status_code == 201, first.text
        sent = first.json()
        assert sent["client_message_id"] == key and sent["duplicate"] is False
        # The recipient's copy never carries the sender's key.
        frame = await next_frame(b_ws, "message")
        assert frame["data"]["id"] == sent["id"]
        assert frame["data"]["client_message_id"] is None

        again = await ann.client.post("/messages/send", json=body)
        assert again.status_code == 200, again.text
        answer = again.json()
        assert answer["duplicate"] is True and answer["deleted"] is False
        # Every field of the first answer, unchanged.
        assert {k: v for k, v in answer.items() if k not in ("duplicate", "deleted")} == \
            {k: v for k, v in sent.items() if k != "duplicate"}

        # No frame for the retry: the next one the recipient gets is the next message.
        later = await ann.client.post("/messages/send", json={"recipient_id": ben.id,
                                                              "content": "and bring tea"})
        assert later.status_code == 201, later.text
        assert later.json()["client_message_id"] is None
        assert (await next_frame(b_ws, "message"))["data"]["id"] == later.json()["id"]

    mine = await conversation(ann, ben.id)
    assert [m["content"] for m in mine] == ["and bring tea", "see you at 9"]
    assert mine[1]["client_message_id"] == key
    theirs = await conversation(ben, ann.id)
    assert [m["client_message_id"] for m in theirs] == [None, None]
    got = await ben.client.get(f"/messages/{sent['id']}")
    assert got.status_code == 200 and got.json()["client_message_id"] is None
    stats = (await ann.client.get("/messages/stats")).json()
    assert stats["sent_messages"] == 2


async def test_the_key_is_per_sender_and_conversation(v1: Any) -> None:
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    cat = await v1.account("cat")
    key = "outbox-item_42"

    async def send(who: Any, to: str, content: str = "hello") -> Any:
        return await who.client.post("/messages/send", json={
            "recipient_id": to, "content": content, "client_message_id": key})

    first = await send(ann, ben.id)
    assert first.status_code == 201, first.text
    # The same key to someone else, or by someone else, is another message.
    to_cat = await send(ann, cat.id)
    by_ben = await send(ben, ann.id)
    by_cat = await send(cat, ben.id)
    for r in (to_cat, by_ben, by_cat):
        assert r.status_code == 201, r.text
        assert r.json()["duplicate"] is False
    assert len({first.json()["id"], to_cat.json()["id"], by_ben.json()["id"],
                by_cat.json()["id"]}) == 4
    # The same key with other content is a mistake, not a retry: refused, nothing stored.
    other = await send(ann, ben.id, "goodbye")
    assert other.status_code == 409, other.text
    assert "client_message_id" in other.json()["detail"]
    code = await ann.client.post("/messages/send", json={
        "recipient_id": ben.id, "content": "hello", "message_type": "code",
        "client_message_id": key})
    assert code.status_code == 409, code.text
    assert [m["content"] for m in await conversation(ann, ben.id)] == ["hello", "hello"]
    assert len(await conversation(ann, cat.id)) == 1


async def test_the_key_is_validated(v1: Any) -> None:
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    for bad in ("", "x" * 65, "has space", "dot.ted", "ünï", "a/b", 7):
        r = await ann.client.post("/messages/send", json={
            "recipient_id": ben.id, "content": "hi", "client_message_id": bad})
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["detail"][0]["loc"][-1] == "client_message_id", r.text
    for good in ("x" * 64, "A", "a-b_C-9"):
        r = await ann.client.post("/messages/send", json={
            "recipient_id": ben.id, "content": "hi", "client_message_id": good})
        assert r.status_code == 201, (good, r.text)
        assert r.json()["client_message_id"] == good
    assert len(await conversation(ann, ben.id)) == 3
    # Documented in the OpenAPI document with its rule.
    openapi = (await v1.anon.get("/openapi.json")).json()
    ref = openapi["paths"]["/messages/send"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]["$ref"]
    schema = openapi["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"][
        "client_message_id"]
    text = next(s for s in schema["anyOf"] if s.get("type") == "string")
    assert text["maxLength"] == 64 and text["minLength"] == 1
    assert text["pattern"] == "^[A-Za-z0-9_-]{1,64}$"
    assert "retr" in schema["description"]


async def test_a_deleted_message_or_reply_is_not_sent_again(v1: Any) -> None:
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    # Stored, then deleted by its sender (another device) before the retry.
    body = {"recipient_id": ben.id, "content": "oops", "client_message_id": "k1"}
    first = (await ann.client.post("/messages/send", json=body)).json()
    assert (await ann.client.delete(f"/messages/{first['id']}")).status_code == 200
    again = await ann.client.post("/messages/send", json=body)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first["id"]
    assert again.json()["duplicate"] is True and again.json()["deleted"] is True
    assert await conversation(ann, ben.id) == []

    # A reply without recipient_id (its conversation is the parent's), retried after the
    # message it answers was deleted.
    question = (await ben.client.post("/messages/send", json={
        "recipient_id": ann.id, "content": "lunch?"})).json()
    reply = {"reply_to": question["id"], "content": "yes", "client_message_id": "k2"}
    answered = await ann.client.post("/messages/send", json=reply)
    assert answered.status_code == 201, answered.text
    assert answered.json()["recipient_id"] == ben.id
    assert (await ben.client.delete(f"/messages/{question['id']}")).status_code == 200
    retried = await ann.client.post("/messages/send", json=reply)
    assert retried.status_code == 200, retried.text
    assert retried.json()["id"] == answered.json()["id"] and retried.json()["duplicate"]
    assert [m["content"] for m in await conversation(ann, ben.id)] == ["yes"]
    # Without a key, the parent's deletion is still an error.
    plain = await ann.client.post("/messages/send", json={"reply_to": question["id"],
                                                          "content": "yes"})
    assert plain.status_code == 422, plain.text


async def test_a_key_reused_by_a_reply_without_recipient_is_a_409(v1: Any) -> None:
    # A reply that names only reply_to is looked up by it; the key may already be taken
    # in that conversation by a message with no reply_to, or with another one. The
    # same reuse as with recipient_id: a 409, nothing stored (not a 500 from the index).
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    question = (await ben.client.post("/messages/send", json={
        "recipient_id": ann.id, "content": "lunch?"})).json()
    other = (await ben.client.post("/messages/send", json={
        "recipient_id": ann.id, "content": "or dinner?"})).json()
    plain = await ann.client.post("/messages/send", json={
        "recipient_id": ben.id, "content": "yes", "client_message_id": "k3"})
    assert plain.status_code == 201, plain.text
    as_reply = await ann.client.post("/messages/send", json={
        "reply_to": question["id"], "content": "yes", "client_message_id": "k3"})
    assert as_reply.status_code == 409, as_reply.text
    assert "client_message_id" in as_reply.json()["detail"]

    reply = {"reply_to": question["id"], "content": "sure", "client_message_id": "k4"}
    first = await ann.client.post("/messages/send", json=reply)
    assert first.status_code == 201, first.text
    to_other = await ann.client.post("/messages/send", json={**reply,
                                                             "reply_to": other["id"]})
    assert to_other.status_code == 409, to_other.text
    assert "client_message_id" in to_other.json()["detail"]
    # The retry as it was sent is still the duplicate.
    again = await ann.client.post("/messages/send", json=reply)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"] and again.json()["duplicate"] is True
    mine = [m["content"] for m in await conversation(ann, ben.id)
            if m["sender_id"] == ann.id]
    assert mine == ["sure", "yes"]


async def test_concurrent_retries_store_one_message(v1: Any) -> None:
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    body = {"recipient_id": ben.id, "content": "only once", "client_message_id": "race"}
    answers = await asyncio.gather(*(ann.client.post("/messages/send", json=body)
                                     for _ in range(6)))
    assert sorted(r.status_code for r in answers) == [200] * 5 + [201]
    assert len({r.json()["id"] for r in answers}) == 1
    assert len(await conversation(ann, ben.id)) == 1


@OWN_SERVER
async def test_capabilities_list_the_effective_limits(make_v1: Any) -> None:
    v1 = await make_v1(requests_per_minute=1000, reactions_per_minute=3,
                       ai_requests_per_minute=11, ai_models_requests_per_minute=9,
                       ai_models_cache_seconds=12.5, login_rate_limit=40,
                       register_rate_limit=50, rate_limit_window=30.0)
    caps = (await v1.anon.get("/system/capabilities")).json()
    assert caps["rate_limits"] == {
        "login": 40, "register": 50, "window_seconds": 30.0, "requests_per_minute": 1000,
        "reactions_per_minute": 3, "ai_requests_per_minute": 11,
        "ai_models_requests_per_minute": 9}
    assert caps["ai"]["models_cache_seconds"] == 12.5
    assert caps["ai"]["max_tokens"] == 1024
    assert caps["ai"]["default_model"] == "builtin/plexi-rules"
    assert caps["messages"]["client_message_id"] is True
    # What is listed is what is enforced: the fourth reaction in a minute is refused.
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    message = (await ann.client.post("/messages/send", json={"recipient_id": ben.id,
                                                             "content": "react"})).json()
    for emoji in ("👍", "🎉", "👀"):
        r = await ben.client.post(f"/messages/{message['id']}/reactions",
                                  json={"emoji": emoji})
        assert r.status_code == 200, r.text
    over = await ben.client.post(f"/messages/{message['id']}/reactions",
                                 json={"emoji": "🚀"})
    assert over.status_code == 429 and "at most 3 per 60 s" in over.json()["detail"]
    # The AI models limit as listed: the tenth models request in a minute is refused.
    statuses = [(await ann.client.get("/ai/models")).status_code for _ in range(10)]
    assert statuses == [200] * 9 + [429], statuses


def _old_database(data_dir: Path) -> tuple[str, str, str]:
    """A v1 database as schema version 10 (before client_message_id) left it: two users
    and a message between them. Their ids and the message's."""
    db = SqliteDatabase(data_dir / DATA_DIR_NAME / DB_NAME, MIGRATIONS[:10])
    ann, ben, message = (str(uuid.uuid4()) for _ in range(3))
    at = time.time()
    try:
        with db.transaction(True) as conn:
            for user_id, name in ((ann, "oldann"), (ben, "oldben")):
                conn.execute(
                    "INSERT INTO users (id, username, email, password_hash, created_at, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (user_id, name, f"{name}@example.org", hash_password(PASSWORD, 4), at,
                     at))
            conn.execute(
                "INSERT INTO messages (id, sender_id, recipient_id, content, message_type, "
                "created_at) VALUES (?, ?, ?, 'from before the upgrade', 'text', ?)",
                (message, ann, ben, at))
        assert db.schema_version == 10
    finally:
        db.close()
    return ann, ben, message


@OWN_SERVER
async def test_a_database_from_before_the_key_opens_and_keeps_working(
        make_v1: Any, tmp_path: Path) -> None:
    home = AppPaths(tmp_path / "config", tmp_path / "data", tmp_path / "cache",
                    tmp_path / "logs")
    ann_id, ben_id, old_id = _old_database(home.data_dir)
    v1 = await make_v1(home=home)
    status = (await v1.anon.get("/system/status")).json()
    assert status["database"]["schema_version"] == SCHEMA_VERSION == 11
    login = await v1.anon.post("/auth/login", json={"username": "oldann",
                                                    "password": PASSWORD})
    assert login.status_code == 200, login.text
    ann = v1.client(login.json()["access_token"])
    r = await ann.get(f"/messages/conversation/{ben_id}", params={"mark_read": "false"})
    assert r.status_code == 200, r.text
    [old] = r.json()["messages"]
    assert old["id"] == old_id and old["client_message_id"] is None
    body = {"recipient_id": ben_id, "content": "after the upgrade", "client_message_id": "u1"}
    first = await ann.post("/messages/send", json=body)
    assert first.status_code == 201, first.text
    again = await ann.post("/messages/send", json=body)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    plain = await ann.post("/messages/send", json={"recipient_id": ben_id,
                                                   "content": "no key"})
    assert plain.status_code == 201, plain.text
    r = await ann.get(f"/messages/conversation/{ben_id}", params={"mark_read": "false"})
    assert [m["content"] for m in r.json()["messages"]] == [
        "no key", "after the upgrade", "from before the upgrade"]
    assert ann_id == login.json()["user_id"]
