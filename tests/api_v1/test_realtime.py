"""The v1 realtime WebSocket over a real socket: auth, rooms, typing, presence, live events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

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


async def presence_of(ws: ClientConnection, user_id: str) -> dict[str, Any]:
    """The next presence update about ``user_id``."""
    while True:
        frame = await next_frame(ws, "presence_update")
        if frame["data"]["user_id"] == user_id:
            return frame


async def send(ws: ClientConnection, **frame: Any) -> None:
    await ws.send(json.dumps(frame))


async def test_the_socket_requires_a_token(v1):
    await v1.account("ann")
    with pytest.raises(InvalidStatus) as info:
        async with connect(v1.ws_url + "?token=pxa_wrong"):
            pass
    assert info.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        async with connect(v1.ws_url, additional_headers={"Authorization": "Bearer nope"}):
            pass
    # Without a token the first frame must authenticate.
    async with connect(v1.ws_url) as ws:
        await send(ws, type="join_room", room_id="lobby")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 4401
    async with connect(v1.ws_url) as ws:
        await send(ws, type="auth", token="pxa_wrong")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 4401 and "invalid access token" in ws.close_reason


@OWN_SERVER
async def test_auth_timeout_closes_with_4408(make_v1):
    v1 = await make_v1(ws_auth_timeout=0.2)
    async with connect(v1.ws_url) as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 4408


@OWN_SERVER
async def test_welcome_rooms_typing_presence_between_two_users(make_v1):
    v1 = await make_v1()
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    async with connect(f"{v1.ws_url}?token={ann.token}") as a:
        welcome = await next_frame(a, "welcome")
        assert welcome["data"]["user_id"] == ann.id and welcome["data"]["connection_id"]
        assert welcome["timestamp"].endswith("+00:00")
        # ben authenticates with a header; ann sees him come online.
        async with connect(v1.ws_url, additional_headers={
                "Authorization": f"Bearer {ben.token}"}) as b:
            assert (await next_frame(b, "welcome"))["data"]["username"] == "ben"
            online = await presence_of(a, ben.id)
            assert online["data"]["user_id"] == ben.id and online["data"]["status"] == "online"
            assert (await ann.client.get(f"/users/{ben.id}")).json()["is_online"] is True

            await send(a, type="join_room", room_id="lobby")
            joined = await next_frame(a, "room_joined")
            assert joined["data"]["members"] == [{"user_id": ann.id, "username": "ann"}]
            await send(b, type="join_room", data={"room_id": "lobby"})  # fields in "data" too
            assert len((await next_frame(b, "room_joined"))["data"]["members"]) == 2
            arrived = await next_frame(a, "user_joined")
            assert arrived["data"] == {"room_id": "lobby", "user_id": ben.id, "username": "ben"}

            await send(b, type="typing", room_id="lobby", is_typing=True)
            typing = await next_frame(a, "typing")
            assert typing["data"] == {"room_id": "lobby", "user_id": ben.id, "username": "ben",
                                      "is_typing": True}

            await send(b, type="presence", status="away")
            away = await presence_of(a, ben.id)
            assert away["data"]["status"] == "away" and away["data"]["last_seen"]

            # A direct message and a notification reach the recipient's socket at once.
            await ann.client.post("/messages/send", json={"recipient_id": ben.id,
                                                          "content": "live!"})
            live = await next_frame(b, "message")
            assert live["data"]["content"] == "live!" and live["data"]["sender_username"] == "ann"
            await ann.client.post("/notifications/send", json={
                "title": "t", "message": "m", "recipient_id": ben.id})
            assert (await next_frame(b, "notification"))["data"]["title"] == "t"

            connections = (await ben.client.get("/realtime/connections")).json()
            assert connections["total_connections"] == 2 and connections["rooms"] == ["lobby"]
            r = await ben.client.post("/realtime/broadcast", json={
                "type": "poke", "data": {"n": 1}, "room_id": "lobby"})
            assert r.json()["delivered"] == 2
            poke = await next_frame(a, "broadcast")
            assert poke["data"]["event"] == "poke" and poke["data"]["payload"] == {"n": 1}
            r = await ben.client.post("/realtime/broadcast", json={"type": "all"})
            assert r.status_code == 403  # everyone at once needs an administrator
            r = await ben.client.post(f"/realtime/send/{ann.id}", json={"type": "hey"})
            assert r.json()["delivered"] == 1
            assert (await next_frame(a, "direct"))["data"]["from_user_id"] == ben.id

            await send(b, type="leave_room", room_id="lobby")
            assert (await next_frame(b, "room_left"))["data"]["room_id"] == "lobby"
            assert (await next_frame(a, "user_left"))["data"]["user_id"] == ben.id
        offline = await presence_of(a, ben.id)
        assert offline["data"] == {**offline["data"], "user_id": ben.id, "status": "offline"}
        assert (await ann.client.get(f"/users/{ben.id}")).json()["is_online"] is False


async def test_bad_frames_get_error_frames(v1):
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    group = (await ann.client.post("/groups/create", json={"name": "g"})).json()
    async with connect(v1.ws_url) as ws:
        await send(ws, type="auth", token=ben.token)  # first-frame auth
        assert (await next_frame(ws, "welcome"))["data"]["user_id"] == ben.id
        cases = [
            ("not json", "invalid_json"),
            (json.dumps([1, 2]), "bad_request"),
            (json.dumps({"type": "dance"}), "unknown_type"),
            (json.dumps({"type": "join_room"}), "bad_request"),
            (json.dumps({"type": "join_room", "room_id": "bad room!"}), "bad_request"),
            (json.dumps({"type": "typing", "room_id": "lobby"}), "not_in_room"),
            (json.dumps({"type": "leave_room", "room_id": "lobby"}), "not_in_room"),
            (json.dumps({"type": "presence", "status": "asleep"}), "bad_request"),
            (json.dumps({"type": "join_room", "room_id": group["id"]}), "forbidden"),
        ]
        for raw, code in cases:
            await ws.send(raw)
            error = await next_frame(ws, "error")
            assert error["data"]["code"] == code, (raw, error)
        await send(ws, type="ping")
        assert (await next_frame(ws, "pong"))["type"] == "pong"
        # Membership opens the group's room.
        await ben.client.post(f"/groups/{group['id']}/join")
        await send(ws, type="join_room", room_id=group["id"])
        assert (await next_frame(ws, "room_joined"))["data"]["room_id"] == group["id"]


async def test_logout_closes_the_sessions_sockets(v1):
    ann = await v1.account("ann")
    async with connect(f"{v1.ws_url}?token={ann.token}") as ws:
        await next_frame(ws, "welcome")
        assert (await ann.client.post("/auth/logout")).status_code == 200
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()
    assert ws.close_code == 4401


@OWN_SERVER
async def test_a_socket_outlives_the_servers_read_deadlines(start_core):
    """Every WebSocket was closed (1006) after [server] body_timeout, 30 s by default,
    however busy: the read deadline for a request body was armed again right after the
    upgrade, h11 still saying the request had a body to come."""
    import httpx

    from tests.api_v1.conftest import _SSL, TIMEOUT, V1, v1_settings

    settings = v1_settings()
    settings.server.header_timeout = settings.server.body_timeout = 0.3
    core = await start_core(settings=settings)
    base = core.url.rstrip("/") + "/api/v1"
    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT, verify=_SSL) as anon:
        v1 = V1(core, base, anon)
        ann = await v1.account("ann")
        try:
            async with connect(f"{v1.ws_url}?token={ann.token}") as ws:
                await next_frame(ws, "welcome")
                await asyncio.sleep(1.0)  # over three times the body deadline
                await send(ws, type="join_room", room_id="lobby")
                assert (await next_frame(ws, "room_joined"))["data"]["room_id"] == "lobby"
        finally:
            for client in v1.clients:
                await client.aclose()
