"""The realtime hub: connected WebSockets, rooms and presence.

Every frame the server sends is ``{"type": ..., "data": {...}, "timestamp": ISO}``. Each
connection has a bounded outbound queue drained by its own writer task, so one slow client
never holds up a broadcast; a client that falls ``QUEUE_SIZE`` frames behind is
disconnected (close code 1013, "try again later").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fastapi import WebSocket

from plexichat_desktop.core.waiting import within
from plexichat_desktop.server.v1.common import iso, new_id, now

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
PRESENCE_STATES = ("online", "away", "busy", "offline")


def frame(kind: str, **data: Any) -> dict[str, Any]:
    """One server frame."""
    return {"type": kind, "data": data, "timestamp": iso(now())}


@dataclass(eq=False)
class Connection:
    """One accepted WebSocket of an authenticated user."""

    user_id: str
    username: str
    session_id: str
    websocket: WebSocket
    id: str = field(default_factory=new_id)
    rooms: set[str] = field(default_factory=set)
    queue: asyncio.Queue[dict[str, Any] | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    writer: asyncio.Task[None] | None = None
    closed: bool = False


@dataclass
class Presence:
    status: str
    last_seen: float


class RealtimeHub:
    """Connections by id, user and room, and every user's presence."""

    def __init__(self) -> None:
        self.connections: dict[str, Connection] = {}
        self.by_user: dict[str, set[Connection]] = {}
        self.rooms: dict[str, set[Connection]] = {}
        self.presence: dict[str, Presence] = {}
        # Other sockets that live as long as a login session (the collaboration sockets)
        # register here, so that logout, a password change and shutdown reach them too.
        self.session_closers: list[Callable[[set[str], int, str], Awaitable[int]]] = []
        self.shutdown_hooks: list[Callable[[], Awaitable[None]]] = []

    # -- lifecycle of a connection ----------------------------------------------------

    def add(self, conn: Connection) -> bool:
        """Register ``conn`` and start its writer; True when it is the user's first."""
        first = not self.by_user.get(conn.user_id)
        self.connections[conn.id] = conn
        self.by_user.setdefault(conn.user_id, set()).add(conn)
        conn.writer = asyncio.get_running_loop().create_task(
            self._write(conn), name=f"v1 ws writer {conn.id}")
        return first

    async def remove(self, conn: Connection) -> None:
        """Forget ``conn``: leave its rooms (telling the others) and, when it was the user's
        last connection, broadcast them offline."""
        if self.connections.pop(conn.id, None) is None:
            return
        for room in list(conn.rooms):
            self.leave(conn, room)
        mine = self.by_user.get(conn.user_id, set())
        mine.discard(conn)
        if not mine:
            self.by_user.pop(conn.user_id, None)
            self.set_presence(conn.user_id, conn.username, "offline")
        conn.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            conn.queue.put_nowait(None)
        if conn.writer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await within(conn.writer, 2)

    async def _write(self, conn: Connection) -> None:
        while True:
            item = await conn.queue.get()
            if item is None:
                return
            try:
                await conn.websocket.send_json(item)
            except Exception:  # the peer is gone; the reader side cleans up
                return

    def send(self, conn: Connection, message: dict[str, Any]) -> None:
        """Queue ``message`` for ``conn``; a client too far behind is disconnected."""
        if conn.closed:
            return
        try:
            conn.queue.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("v1 realtime: connection %s of %s is %d frames behind; closing it",
                        conn.id, conn.username, QUEUE_SIZE)
            conn.closed = True
            asyncio.get_running_loop().create_task(self._close(conn, 1013, "too slow"))

    async def _close(self, conn: Connection, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await conn.websocket.close(code=code, reason=reason)

    async def close_sessions(self, session_ids: Iterable[str], code: int = 4401,
                             reason: str = "session ended") -> int:
        """Close every connection of the given sessions (logout, account deletion)."""
        wanted = set(session_ids)
        victims = [c for c in self.connections.values() if c.session_id in wanted]
        for conn in victims:
            conn.closed = True
            await self._close(conn, code, reason)
        closed = len(victims)
        for closer in list(self.session_closers):
            closed += await closer(wanted, code, reason)
        return closed

    async def close_all(self) -> None:
        """Close every connection (server shutdown)."""
        for conn in list(self.connections.values()):
            await self._close(conn, 1001, "server shutting down")
        for hook in list(self.shutdown_hooks):
            await hook()

    # -- fan-out ----------------------------------------------------------------------

    def to_user(self, user_id: str, message: dict[str, Any],
                exclude: Connection | None = None) -> int:
        """Send to every connection of ``user_id``; the number reached."""
        targets = [c for c in self.by_user.get(user_id, ()) if c is not exclude]
        for conn in targets:
            self.send(conn, message)
        return len(targets)

    def to_room(self, room_id: str, message: dict[str, Any],
                exclude: Connection | None = None) -> int:
        targets = [c for c in self.rooms.get(room_id, ()) if c is not exclude]
        for conn in targets:
            self.send(conn, message)
        return len(targets)

    def to_all(self, message: dict[str, Any], exclude: Connection | None = None) -> int:
        targets = [c for c in self.connections.values() if c is not exclude]
        for conn in targets:
            self.send(conn, message)
        return len(targets)

    # -- rooms and presence -----------------------------------------------------------

    def join(self, conn: Connection, room_id: str) -> list[dict[str, str]]:
        """Put ``conn`` in ``room_id``; tells the others; returns the room's members."""
        members = self.rooms.setdefault(room_id, set())
        if conn not in members:
            self.to_room(room_id, frame("user_joined", room_id=room_id, user_id=conn.user_id,
                                        username=conn.username))
            members.add(conn)
            conn.rooms.add(room_id)
        return self.room_members(room_id)

    def leave(self, conn: Connection, room_id: str) -> bool:
        members = self.rooms.get(room_id)
        if not members or conn not in members:
            return False
        members.discard(conn)
        conn.rooms.discard(room_id)
        if not members:
            del self.rooms[room_id]
        else:
            self.to_room(room_id, frame("user_left", room_id=room_id, user_id=conn.user_id,
                                        username=conn.username))
        return True

    def evict(self, room_id: str, user_id: str | None = None, reason: str = "") -> int:
        """Take ``user_id``'s connections (everyone's when None) out of ``room_id`` now,
        each told with a ``room_left`` frame: membership changes act on the hub at once,
        not when the socket next asks. The number of connections removed."""
        victims = [c for c in self.rooms.get(room_id, ()) if user_id in (None, c.user_id)]
        for conn in victims:
            self.leave(conn, room_id)
            self.send(conn, frame("room_left", room_id=room_id, reason=reason))
        return len(victims)

    def room_members(self, room_id: str) -> list[dict[str, str]]:
        seen: dict[str, str] = {}
        for conn in self.rooms.get(room_id, ()):
            seen[conn.user_id] = conn.username
        return [{"user_id": uid, "username": name} for uid, name in sorted(seen.items())]

    def set_presence(self, user_id: str, username: str, status: str) -> None:
        """Record and broadcast a user's presence."""
        stamp = now()
        self.presence[user_id] = Presence(status, stamp)
        self.to_all(frame("presence_update", user_id=user_id, username=username,
                          status=status, last_seen=iso(stamp)))

    def is_online(self, user_id: str) -> bool:
        return bool(self.by_user.get(user_id))

    def status_of(self, user_id: str) -> dict[str, Any]:
        presence = self.presence.get(user_id)
        online = self.is_online(user_id)
        status = presence.status if presence and online else "offline"
        return {"status": status, "last_seen": iso(presence.last_seen) if presence else None}
