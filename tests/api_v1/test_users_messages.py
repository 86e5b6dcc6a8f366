"""v1 users and direct messages over real HTTP."""

from __future__ import annotations

import pytest

from tests.api_v1.conftest import PASSWORD
from tests.api_v1.shared_server import OWN_SERVER, module_server  # noqa: F401

# Most tests share one server (``v1``) and run in the module's event loop, each with
# accounts of its own; those that need the first account (the administrator), count what
# the whole server holds, or need settings of their own, start their own.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@OWN_SERVER
async def test_profiles_update_search_list_and_stats(make_v1):
    v1 = await make_v1()
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    await v1.account("benedict")

    me = (await ann.client.get("/users/me")).json()
    assert me["id"] == ann.id and me["email"] == "ann@example.org"
    other = await ann.client.get(f"/users/{ben.id}")
    assert other.status_code == 200
    assert other.json()["username"] == "ben" and other.json()["email"] is None
    r = await ann.client.get("/users/00000000-0000-4000-8000-000000000000")
    assert r.status_code == 404 and "not found" in r.json()["detail"]
    assert (await ann.client.get("/users/not-a-uuid")).status_code == 404

    r = await ann.client.put("/users/me", json={"display_name": "Ann A.",
                                                "email": "ann@new.example"})
    assert r.status_code == 200, r.text
    assert r.json()["display_name"] == "Ann A." and r.json()["email"] == "ann@new.example"
    r = await ann.client.put("/users/me", json={"email": "ben@example.org"})
    assert r.status_code == 409 and "already taken" in r.json()["detail"]
    r = await ann.client.put("/users/me", json={"email": "nope"})
    assert r.status_code == 422
    r = await ann.client.put("/users/me", json={"display_name": 5})
    assert r.status_code == 422
    # Names people read (a user audit): no line breaks, NULs or direction marks, and
    # all spaces is no name (the username shows, as for an empty one).
    for bad in ("a\nb", "x\u0000", "\u202eadmin"):
        r = await ann.client.put("/users/me", json={"display_name": bad})
        assert r.status_code == 422 and "display_name" in r.text, (bad, r.text)
    r = await ann.client.put("/users/me", json={"display_name": "   "})
    assert r.status_code == 200
    assert r.json()["display_name"] == ann.username
    r = await ann.client.put("/users/me", json={"username": "renamed"})
    assert r.status_code == 422  # unknown fields are refused, not ignored

    found = (await ann.client.get("/users/search", params={"query": "ben"})).json()
    assert [u["username"] for u in found["users"]] == ["ben", "benedict"]
    assert found["total"] == 2 and found["query"] == "ben" and not found["has_more"]
    page1 = (await ann.client.get("/users/search", params={"query": "ben", "limit": 1})).json()
    assert page1["has_more"] and page1["users"][0]["username"] == "ben"
    assert (await ann.client.get("/users/search", params={"query": "%"})).json()["total"] == 0
    assert (await ann.client.get("/users/search")).status_code == 422
    assert (await ann.client.get("/users/search?query=b&limit=51")).status_code == 422

    listing = (await ann.client.get("/users/", params={"limit": 2, "offset": 1})).json()
    assert listing["total"] == 3 and listing["limit"] == 2 and listing["offset"] == 1
    assert [u["username"] for u in listing["users"]] == ["ben", "benedict"]
    assert listing["has_more"] is False
    assert (await ann.client.get("/users")).status_code == 200
    assert (await ann.client.get("/users/?limit=0")).status_code == 422
    assert (await ann.client.get("/users/?offset=-1")).status_code == 422
    assert (await ann.client.get("/users/?limit=abc")).status_code == 422

    stats = (await ann.client.get("/users/stats/summary")).json()
    assert stats["total_users"] == 3 and stats["active_users"] == 3


@OWN_SERVER
async def test_direct_messages(make_v1):
    v1 = await make_v1()
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    cid = await v1.account("cid")
    sent = []
    for i in range(3):
        r = await ann.client.post("/messages/send", json={"recipient_id": ben.id,
                                                          "content": f"hello {i}"})
        assert r.status_code == 201, r.text
        sent.append(r.json())
    first = sent[0]
    assert first["sender_id"] == ann.id and first["recipient_id"] == ben.id
    assert first["message_type"] == "text" and first["encrypted"] is False
    assert first["read"] is False and first["timestamp"].endswith("+00:00")
    r = await ben.client.post("/messages/send", json={"recipient_id": ann.id,
                                                      "content": "hi ann", "message_type":
                                                      "markdown"})
    assert r.status_code == 201

    convs = (await ben.client.get("/messages/conversations")).json()
    assert convs["total"] == 1 and convs["conversations"][0]["user_id"] == ann.id
    assert convs["conversations"][0]["unread_count"] == 3
    assert convs["conversations"][0]["last_message"] == "hi ann"

    history = (await ben.client.get(f"/messages/conversation/{ann.id}",
                                    params={"limit": 2})).json()
    assert history["total"] == 4 and history["has_more"] and len(history["messages"]) == 2
    assert [m["content"] for m in history["messages"]] == ["hi ann", "hello 2"]
    assert history["other_user"]["username"] == "ann"
    assert history["messages"][1]["read"] is True  # ben read it by fetching the page
    asc = (await ben.client.get(f"/messages/conversation/{ann.id}",
                                params={"order": "asc", "mark_read": "false"})).json()
    assert [m["content"] for m in asc["messages"]][:2] == ["hello 0", "hello 1"]
    stats = (await ben.client.get("/messages/stats")).json()
    assert stats == {"sent_messages": 1, "received_messages": 3, "unread_messages": 2,
                     "total_messages": 4, "conversations": 1}
    assert (await ben.client.get(f"/messages/{first['id']}")).status_code == 200

    # Other users' messages do not exist for cid; the recipient may not delete (403).
    assert (await cid.client.get(f"/messages/{first['id']}")).status_code == 404
    assert (await cid.client.delete(f"/messages/{first['id']}")).status_code == 404
    r = await ben.client.delete(f"/messages/{first['id']}")
    assert r.status_code == 403 and "sender" in r.json()["detail"]
    r = await ann.client.delete(f"/messages/{first['id']}")
    assert r.status_code == 200 and r.json()["success"]
    assert (await ann.client.delete(f"/messages/{first['id']}")).status_code == 404
    history = (await ann.client.get(f"/messages/conversation/{ben.id}")).json()
    assert history["total"] == 3
    assert (await cid.client.get(f"/messages/conversation/{ann.id}")).json()["total"] == 0
    r = await cid.client.get("/messages/conversation/00000000-0000-4000-8000-000000000000")
    assert r.status_code == 404


async def test_message_bad_input(v1):
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    cases = [
        ({"recipient_id": ben.id}, 422, "content"),
        ({"content": "x"}, 422, "recipient_id"),
        ({"recipient_id": ben.id, "content": ""}, 422, "content"),
        ({"recipient_id": ben.id, "content": "   "}, 422, "content"),
        # Nothing a reader would see (a user audit): control and format characters.
        ({"recipient_id": ben.id, "content": "\u0000"}, 422, "content"),
        ({"recipient_id": ben.id, "content": "\u200b\u200b"}, 422, "content"),
        ({"recipient_id": ben.id, "content": "x" * 10_001}, 422, "content"),
        ({"recipient_id": ben.id, "content": "x", "message_type": "video"}, 422,
         "message_type"),
        ({"recipient_id": ben.id, "content": ["not", "text"]}, 422, "content"),
        ({"recipient_id": ann.id, "content": "me"}, 400, "yourself"),
        ({"recipient_id": "00000000-0000-4000-8000-000000000000", "content": "x"}, 404,
         "recipient"),
    ]
    for body, status, needle in cases:
        r = await ann.client.post("/messages/send", json=body)
        assert r.status_code == status, (body, r.text)
        assert needle in r.text, (body, r.text)
    assert (await ann.client.get("/messages/conversations?limit=101")).status_code == 422
    r = await ann.client.get(f"/messages/conversation/{ben.id}?order=sideways")
    assert r.status_code == 422
    # As a send to oneself is refused, there is no conversation with oneself (was: an
    # empty 200, as if one could exist).
    r = await ann.client.get(f"/messages/conversation/{ann.id}")
    assert r.status_code == 400 and "yourself" in r.text


async def test_deleting_an_account_removes_its_data(v1):
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    await ann.client.post("/messages/send", json={"recipient_id": ben.id, "content": "bye"})
    r = await ann.client.post("/files/upload", files={"file": ("a.txt", b"abc", "text/plain")})
    file_id = r.json()["id"]
    assert v1.api.file_path(file_id).exists()
    r = await ann.client.request("DELETE", "/users/me", json={"password": PASSWORD})
    assert r.status_code == 200 and r.json()["files_deleted"] == 1
    assert not v1.api.file_path(file_id).exists()
    assert (await ann.client.get("/users/me")).status_code == 401
    assert (await ben.client.get(f"/users/{ann.id}")).status_code == 404
    assert (await ben.client.get("/messages/conversations")).json()["total"] == 0
    # The name is free again.
    assert (await v1.register("ann")).status_code == 201
