"""``/realtime``: the WebSocket (rooms, typing, presence, live messages) and its REST side.

The socket needs an access token, given in one of three ways:
``?token=<access_token>`` (simple; may end up in access logs), an
``Authorization: Bearer`` header (non-browser clients), or, for a socket opened without
either, a first frame ``{"type": "auth", "token": "..."}`` within ``[api] ws_auth_timeout``
seconds. A bad token in the URL or header refuses the handshake (HTTP 403); a missing or bad
auth frame closes the socket with code 4401 (4408 on timeout). A socket lives as long as its
session: logging out closes it with 4401.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from typing import Any

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from pydantic import Field

from plexichat_desktop.core.waiting import within
from plexichat_desktop.server.strict_json import loads_strict
from plexichat_desktop.server.v1 import accounts
from plexichat_desktop.server.v1.common import Body, done, forbidden, iso, not_found, now
from plexichat_desktop.server.v1.deps import Api, CurrentUser, User, authenticate
from plexichat_desktop.server.v1.hub import PRESENCE_STATES, Connection, frame
from plexichat_desktop.server.v1.service import ApiV1
from plexichat_desktop.server.v1.store import scalar

router = APIRouter(prefix="/realtime", tags=["realtime"])

ROOM_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
SESSION_RECHECK_S = 30.0
MAX_FRAME = 64 * 1024
CLOSE_UNAUTHORIZED = 4401
CLOSE_AUTH_TIMEOUT = 4408


class EventBody(Body):
    type: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    data: dict[str, Any] = Field(default_factory=dict)
    room_id: str | None = Field(None, min_length=1, max_length=128)


def _room_access(conn: sqlite3.Connection, room_id: str, user_id: str) -> str:
    """'ok', or why ``user_id`` may not be in ``room_id`` (group rooms need membership)."""
    if not scalar(conn, "SELECT 1 FROM groups WHERE id = ?", (room_id,)):
        return "ok"
    if scalar(conn, "SELECT 1 FROM group_members WHERE group_id = ? AND user_id = ?",
              (room_id, user_id)):
        return "ok"
    return "the room of a group is for its members"


def _session_alive(conn: sqlite3.Connection, session_id: str) -> bool:
    return bool(scalar(conn, "SELECT 1 FROM sessions WHERE id = ?", (session_id,)))


def _header_token(websocket: WebSocket) -> str | None:
    scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


async def _receive_frame(websocket: WebSocket) -> str | bytes:
    """The next frame's text, or its bytes for a binary frame (the protocol is JSON text);
    raises WebSocketDisconnect when the peer is gone."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    return text if text is not None else message.get("bytes") or b""


def _parse(raw: str) -> Any:
    """A frame's JSON; ValueError (also for nesting too deep or non-finite numbers)."""
    try:
        return loads_strict(raw)
    except RecursionError:
        raise ValueError("the JSON nests too deeply") from None


async def _first_frame_auth(websocket: WebSocket, api: ApiV1) -> CurrentUser | None:
    try:
        raw = await within(_receive_frame(websocket), api.settings.ws_auth_timeout)
    except TimeoutError:
        await websocket.close(CLOSE_AUTH_TIMEOUT, "no auth message in time")
        return None
    except (WebSocketDisconnect, RuntimeError):
        return None
    try:
        if not isinstance(raw, str) or len(raw) > MAX_FRAME:
            raise ValueError
        message = _parse(raw)
        token = message.get("token") or (message.get("data") or {}).get("token")
        if message.get("type") != "auth" or not isinstance(token, str):
            raise ValueError
    except (ValueError, AttributeError):
        await websocket.close(CLOSE_UNAUTHORIZED, 'first message must be {"type": "auth", '
                                                  '"token": "<access_token>"}')
        return None
    try:
        return await authenticate(api, token)
    except HTTPException as exc:
        await websocket.close(CLOSE_UNAUTHORIZED, str(exc.detail)[:120])
        return None


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    """The realtime socket; see the module docstring and docs/api-v1.md for the frames."""
    api: ApiV1 = websocket.app.state.api
    token = websocket.query_params.get("token") or _header_token(websocket)
    if token:
        try:
            user = await authenticate(api, token)
        except HTTPException as exc:
            # Closing before accept refuses the handshake (uvicorn answers 403).
            await websocket.close(1008, str(exc.detail)[:120])
            return
        await websocket.accept()
    else:
        await websocket.accept()
        maybe = await _first_frame_auth(websocket, api)
        if maybe is None:
            return
        user = maybe
    conn = Connection(user.id, user.username, user.session_id, websocket)
    first = api.hub.add(conn)
    api.hub.send(conn, frame("welcome", connection_id=conn.id, user_id=user.id,
                             username=user.username, session_id=user.session_id))
    if first:
        api.hub.set_presence(user.id, user.username, "online")
    try:
        await _serve(api, conn)
    finally:
        await api.hub.remove(conn)


async def _serve(api: ApiV1, conn: Connection) -> None:
    checked = time.monotonic()
    while True:
        try:
            raw = await _receive_frame(conn.websocket)
        except (WebSocketDisconnect, RuntimeError):
            return
        if conn.closed:
            return
        if time.monotonic() - checked > SESSION_RECHECK_S:
            checked = time.monotonic()
            if not await api.store.read(_session_alive, conn.session_id):
                with contextlib.suppress(Exception):
                    await conn.websocket.close(CLOSE_UNAUTHORIZED, "session ended")
                return
        await _handle(api, conn, raw)


def _field(message: dict[str, Any], name: str) -> Any:
    # Fields may sit at the top level (version B) or inside "data" (our server frames).
    data = message.get("data")
    if name in message:
        return message[name]
    return data.get(name) if isinstance(data, dict) else None


async def _handle(api: ApiV1, conn: Connection, raw: str | bytes) -> None:
    hub = api.hub

    def error(text: str, code: str = "bad_request") -> None:
        hub.send(conn, frame("error", message=text, code=code))

    if isinstance(raw, bytes):
        error("binary frames are not understood; send JSON text frames", "invalid_json")
        return
    if len(raw) > MAX_FRAME:
        error(f"frame too large: at most {MAX_FRAME} characters", "too_large")
        return
    try:
        message = _parse(raw)
    except ValueError as exc:
        error(f"Invalid JSON format: {str(exc)[:200]}", "invalid_json")
        return
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        error('a frame is a JSON object with a "type"')
        return
    kind = message["type"]
    if kind == "ping":
        hub.send(conn, frame("pong"))
        return
    if kind == "presence":
        status = _field(message, "status")
        if status not in PRESENCE_STATES:
            error(f"status must be one of {', '.join(PRESENCE_STATES)}")
            return
        hub.set_presence(conn.user_id, conn.username, status)
        return
    if kind not in ("join_room", "leave_room", "typing"):
        error(f"unknown type '{kind}'; expected join_room, leave_room, typing, presence "
              f"or ping", "unknown_type")
        return
    room_id = _field(message, "room_id")
    if not isinstance(room_id, str) or not ROOM_ID.match(room_id):
        error("room_id: 1-128 characters of letters, digits and _ . : @ -")
        return
    if kind == "join_room":
        verdict = await api.store.read(_room_access, room_id, conn.user_id)
        if verdict != "ok":
            error(f"room_id: {verdict}", "forbidden")
            return
        members = hub.join(conn, room_id)
        hub.send(conn, frame("room_joined", room_id=room_id, members=members))
    elif kind == "leave_room":
        if hub.leave(conn, room_id):
            hub.send(conn, frame("room_left", room_id=room_id))
        else:
            error(f"room_id: not in room '{room_id}'", "not_in_room")
    else:
        if room_id not in conn.rooms:
            error(f"room_id: join room '{room_id}' before typing in it", "not_in_room")
            return
        is_typing = _field(message, "is_typing")
        hub.to_room(room_id, frame("typing", room_id=room_id, user_id=conn.user_id,
                                   username=conn.username,
                                   is_typing=True if is_typing is None else bool(is_typing)),
                    exclude=conn)


@router.get("/connections")
async def connections(user: User, api: Api) -> dict[str, Any]:
    """Connection counts, and the caller's own connections and rooms."""
    hub = api.hub
    mine = hub.by_user.get(user.id, set())
    return {"total_connections": len(hub.connections), "active_users": len(hub.by_user),
            "active_rooms": len(hub.rooms), "user_connections": len(mine),
            "rooms": sorted({room for conn in mine for room in conn.rooms})}


@router.get("/status")
async def status(api: Api) -> dict[str, Any]:
    hub = api.hub
    return {"service": "realtime", "status": "online", "websocket": "/api/v1/realtime/ws",
            "total_connections": len(hub.connections), "active_users": len(hub.by_user),
            "active_rooms": len(hub.rooms), "timestamp": iso(now())}


@router.post("/broadcast")
async def broadcast(body: EventBody, user: User, api: Api) -> dict[str, Any]:
    """Send an event to a room (anyone allowed in it) or, without ``room_id``, to every
    connection (administrators only). Receivers get ``{"type": "broadcast"}`` frames."""
    event = frame("broadcast", event=body.type, payload=body.data, from_user_id=user.id,
                  from_username=user.username, room_id=body.room_id)
    if body.room_id is None:
        if not user.is_admin:
            raise forbidden("broadcasting to everyone needs an administrator; give room_id")
        reached = api.hub.to_all(event)
    else:
        verdict = await api.store.read(_room_access, body.room_id, user.id)
        if verdict != "ok":
            raise forbidden(f"room_id: {verdict}")
        reached = api.hub.to_room(body.room_id, event)
    return done("Event sent", delivered=reached)


@router.post("/send/{user_id}")
async def send_to_user(user_id: str, body: EventBody, user: User, api: Api
                       ) -> dict[str, Any]:
    """Send an event to every connection of one user (``{"type": "direct"}`` frames)."""
    if await api.store.read(accounts.get_user, user_id) is None:
        raise not_found("user", user_id)
    reached = api.hub.to_user(user_id, frame(
        "direct", event=body.type, payload=body.data, from_user_id=user.id,
        from_username=user.username))
    return done("Event sent", delivered=reached, online=reached > 0)

