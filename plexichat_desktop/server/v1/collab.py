"""Collaborative editing: Yjs documents kept in sync over the y-websocket protocol.

Each collaboration session is one Yjs document (a :class:`pycrdt.Doc`) whose text lives in
the shared ``Text`` named ``content``. Clients (yjs in pages, pycrdt in Python) speak the
binary protocol of y-websocket / y-protocols:

* ``[0, 0, state vector]`` SyncStep1, answered with ``[0, 1, update]`` SyncStep2;
* ``[0, 2, update]`` an update; ``[1, awareness update]`` awareness (cursors, presence);
* ``[3]`` asks for every awareness state.

Why pycrdt's sync helpers and not pycrdt-websocket's ``ASGIServer(WebsocketServer())``:
the server has to drop viewers' updates, refuse oversized documents, rate-limit each
socket, authenticate with our tickets, persist into the v1 SQLite store and close sockets
when membership ends. pycrdt-websocket's rooms would need every one of those hooked in
from outside, while the protocol itself is three message kinds that pycrdt already
encodes; a room of our own is shorter and has no second store.

A CRDT replaces the origin's operational transforms (a documented deviation, see
docs/api-v1.md): merges need no central transform, and offline edits merge on reconnect.

Updates are written to SQLite before they are relayed, so whatever a peer has seen
survives a restart; the stored updates are merged into one every ``compact_after`` rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc, Text, merge_updates
from starlette.websockets import WebSocket, WebSocketDisconnect

from plexichat_desktop.core.waiting import within
from plexichat_desktop.server.v1.common import new_id, now
from plexichat_desktop.server.v1.store import ApiStore, rows, scalar

log = logging.getLogger(__name__)

TEXT_NAME = "content"
ROLES = ("owner", "editor", "viewer")
WRITERS = ("owner", "editor")

MSG_SYNC = 0
MSG_AWARENESS = 1
MSG_AUTH = 2
MSG_QUERY_AWARENESS = 3
SYNC_STEP1 = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2

# Close codes: standard ones where they fit, 44xx mirroring HTTP where they do not.
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL = 1002
CLOSE_UNSUPPORTED = 1003
CLOSE_INVALID = 1007
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_SLOW = 1013
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_FULL = 4409
CLOSE_GONE = 4410
CLOSE_RATE = 4429
SESSION_RECHECK_S = 30.0


@dataclass
class CollabLimits:
    """The limits of collaboration (attributes, so a test or a setting can change them)."""

    max_frame: int = 1 << 20  # bytes of one WebSocket message
    max_document: int = 2 << 20  # bytes of a document's encoded state
    max_content: int = 1 << 20  # characters of initial content or a snapshot restored
    rate: float = 100.0  # messages a second per socket, sustained ...
    burst: float = 400.0  # ... and in a burst (a paste, a reconnect's resync)
    max_awareness: int = 16 * 1024  # bytes of one awareness message
    max_awareness_clients: int = 16  # entries in one awareness message, ids of one socket
    ticket_ttl: float = 60.0  # seconds a ticket is valid
    max_tickets: int = 10_000  # outstanding tickets (expired ones are purged first)
    connections_per_user: int = 8  # sockets of one user in one session
    compact_after: int = 500  # stored update rows before they are merged into one
    max_snapshots: int = 100  # history kept per session (the oldest go first)
    queue_size: int = 1024  # outbound messages a peer may fall behind


class ProtocolError(Exception):
    """A frame the server will not take: closes the socket with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Reader:
    """Bounds-checked reader of lib0 encodings (var uint, var bytes, var string)."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def uint(self) -> int:
        value = shift = 0
        while True:
            if self.pos >= len(self.data) or shift > 63:
                raise ProtocolError(CLOSE_PROTOCOL, "malformed message: bad number")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    def bytes(self) -> bytes:
        length = self.uint()
        if self.pos + length > len(self.data):
            raise ProtocolError(CLOSE_PROTOCOL, "malformed message: truncated")
        out = self.data[self.pos:self.pos + length]
        self.pos += length
        return out

    def string(self) -> str:
        try:
            return self.bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(CLOSE_INVALID, "malformed message: bad UTF-8") from None

    def done(self) -> bool:
        return self.pos >= len(self.data)


def var_uint(num: int) -> bytes:
    out = bytearray()
    while num > 0x7F:
        out.append(0x80 | (num & 0x7F))
        num >>= 7
    out.append(num)
    return bytes(out)


def var_bytes(data: bytes) -> bytes:
    return var_uint(len(data)) + data


def sync_message(kind: int, payload: bytes) -> bytes:
    """``[0, kind, payload]``: SyncStep1 (a state vector), SyncStep2 or an update."""
    return bytes([MSG_SYNC, kind]) + var_bytes(payload)


def awareness_message(entries: list[tuple[int, int, str]]) -> bytes:
    """``[1, awareness update]`` of ``(client id, clock, state JSON or "null")`` entries."""
    body = var_uint(len(entries)) + b"".join(
        var_uint(cid) + var_uint(clock) + var_bytes(state.encode()) for cid, clock, state
        in entries)
    return bytes([MSG_AWARENESS]) + var_bytes(body)


def parse_awareness(payload: bytes, limits: CollabLimits) -> list[tuple[int, int, str]]:
    """The entries of an awareness update; ProtocolError when it is malformed."""
    reader = Reader(payload)
    count = reader.uint()
    if count > limits.max_awareness_clients:
        raise ProtocolError(CLOSE_TOO_BIG, f"awareness: at most "
                                           f"{limits.max_awareness_clients} clients a message")
    entries = []
    for _ in range(count):
        client_id, clock, state = reader.uint(), reader.uint(), reader.string()
        try:
            json.loads(state)
        except ValueError:
            raise ProtocolError(CLOSE_INVALID, "awareness: a state is not JSON") from None
        entries.append((client_id, clock, state))
    if not reader.done():
        raise ProtocolError(CLOSE_PROTOCOL, "awareness: trailing bytes")
    return entries


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; :meth:`take` is False when empty."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        current = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (current - self.stamp) * self.rate)
        self.stamp = current
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass(eq=False)
class Peer:
    """One socket in a room."""

    user_id: str
    username: str
    role: str
    auth_session: str  # the login session the ticket was issued to
    websocket: WebSocket
    bucket: TokenBucket
    queue: asyncio.Queue[bytes | None]
    id: str = field(default_factory=new_id)
    awareness_ids: set[int] = field(default_factory=set)
    writer: asyncio.Task[None] | None = None
    closed: bool = False

    @property
    def can_write(self) -> bool:
        return self.role in WRITERS


@dataclass
class RoomStats:
    updates_applied: int = 0
    updates_dropped: int = 0  # viewers' updates, ignored
    bytes_received: int = 0
    awareness_relayed: int = 0


class Room:
    """The live document of one session and the sockets editing it."""

    def __init__(self, session_id: str, doc: Doc, size: int):
        self.session_id = session_id
        self.doc = doc
        self.text = doc.get(TEXT_NAME, type=Text)
        self.peers: set[Peer] = set()
        # awareness client id -> (clock, state JSON) and the peer that owns that id
        self.awareness: dict[int, tuple[int, str]] = {}
        self.owners: dict[int, Peer] = {}
        self.size = size  # an upper bound of the encoded state, made exact when near a limit
        # Bytes of updates that changed nothing: echoes of what the document has, or parts
        # waiting for a missing one. pycrdt keeps the waiting ones in memory (outside the
        # encoded state, so ``size`` does not see them) until the room is unloaded.
        self.unapplied = 0
        self.stats = RoomStats()
        self.holds = 0  # callers using the room (sockets, requests): kept loaded till 0
        self.lock = asyncio.Lock()  # changes made by the server (restore)
        # What each transaction really changed: an update already known changes nothing
        # (so clients echoing what they received never ping-pong), and one waiting for a
        # missing part is stored and relayed when that part arrives, merged with it.
        self._changes: list[bytes] = []
        self._subscription = doc.observe(lambda event: self._changes.append(event.update))

    def take_changes(self) -> bytes | None:
        """The update of what the transactions since the last call changed (None: nothing)."""
        changes, self._changes = self._changes, []
        if not changes:
            return None
        return changes[0] if len(changes) == 1 else merge_updates(*changes)

    def content(self) -> str:
        return str(self.text)

    def exact_size(self) -> int:
        self.size = len(self.doc.get_update())
        return self.size

    def users(self) -> set[str]:
        return {p.user_id for p in self.peers}


@dataclass
class Ticket:
    session_id: str
    user_id: str
    auth_session: str
    expires: float


def ticket_hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


# -- persistence (fn(conn, ...) run by ApiStore) ----------------------------------------

def load_updates(conn: sqlite3.Connection, session_id: str) -> list[bytes]:
    return [bytes(r["data"]) for r in rows(conn.execute(
        "SELECT data FROM collab_updates WHERE session_id = ? ORDER BY seq", (session_id,)))]


def save_update(conn: sqlite3.Connection, session_id: str, update: bytes, compact_after: int
                ) -> int:
    """Store one update, bump the session's version; merge the stored updates into one
    when there are more than ``compact_after``. The new version (0: session gone)."""
    stamp = now()
    changed = conn.execute("UPDATE collab_sessions SET version = version + 1, "
                           "last_modified = ? WHERE id = ?", (stamp, session_id)).rowcount
    if not changed:
        return 0
    conn.execute("INSERT INTO collab_updates (session_id, data, created_at) VALUES (?, ?, ?)",
                 (session_id, update, stamp))
    count = scalar(conn, "SELECT COUNT(*) FROM collab_updates WHERE session_id = ?",
                   (session_id,))
    if count > compact_after:
        merged = merge_updates(*load_updates(conn, session_id))
        conn.execute("DELETE FROM collab_updates WHERE session_id = ?", (session_id,))
        conn.execute("INSERT INTO collab_updates (session_id, data, created_at) "
                     "VALUES (?, ?, ?)", (session_id, merged, stamp))
    return int(scalar(conn, "SELECT version FROM collab_sessions WHERE id = ?",
                      (session_id,)))


def session_version(conn: sqlite3.Connection, session_id: str) -> int:
    return int(scalar(conn, "SELECT version FROM collab_sessions WHERE id = ?",
                      (session_id,)) or 0)


def member_role(conn: sqlite3.Connection, session_id: str, user_id: str) -> str | None:
    row = conn.execute("SELECT role FROM collab_members WHERE session_id = ? AND user_id = ?",
                       (session_id, user_id)).fetchone()
    return None if row is None else str(row[0])


def session_alive(conn: sqlite3.Connection, session_id: str) -> bool:
    return bool(scalar(conn, "SELECT 1 FROM sessions WHERE id = ?", (session_id,)))


def initial_update(content: str) -> bytes:
    """The first update of a new document: its ``content`` text."""
    doc: Doc[Any] = Doc()
    text = doc.get(TEXT_NAME, type=Text)
    if content:
        text += content
    return doc.get_update()


# -- the manager ----------------------------------------------------------------------

class CollabManager:
    """Live rooms, tickets and the socket protocol of one v1 API instance."""

    def __init__(self, store: ApiStore, limits: CollabLimits | None = None):
        self.store = store
        self.limits = limits or CollabLimits()
        self.rooms: dict[str, Room] = {}
        self.tickets: dict[str, Ticket] = {}
        self._loading: dict[str, asyncio.Future[Room]] = {}

    # -- tickets ----------------------------------------------------------------------

    def issue_ticket(self, session_id: str, user_id: str, auth_session: str) -> str:
        """A single-use ticket for one socket to ``session_id``, valid ``ticket_ttl`` s."""
        stamp = time.monotonic()
        for key in [k for k, t in self.tickets.items() if t.expires <= stamp]:
            del self.tickets[key]
        if len(self.tickets) >= self.limits.max_tickets:
            # Oldest first (dicts keep insertion order): a flood ages out, never grows.
            del self.tickets[next(iter(self.tickets))]
        ticket = "pxt_" + secrets.token_urlsafe(32)
        self.tickets[ticket_hash(ticket)] = Ticket(session_id, user_id, auth_session,
                                                   stamp + self.limits.ticket_ttl)
        return ticket

    def redeem_ticket(self, ticket: str, session_id: str) -> Ticket | None:
        """The ticket's grant when it is valid for ``session_id``; it is used up either way
        (a ticket shown for the wrong session is as spent as a used one)."""
        grant = self.tickets.pop(ticket_hash(ticket), None)
        if grant is None or grant.expires <= time.monotonic() or grant.session_id != session_id:
            return None
        return grant

    # -- rooms ------------------------------------------------------------------------

    async def room(self, session_id: str) -> Room:
        """The live room of ``session_id``, loaded from the store when needed; every call
        takes a hold that :meth:`release` must end."""
        room = self.rooms.get(session_id)
        if room is not None:
            room.holds += 1
            return room
        pending = self._loading.get(session_id)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._loading[session_id] = pending
            try:
                updates = await self.store.read(load_updates, session_id)
                doc: Doc[Any] = Doc()
                for update in updates:
                    doc.apply_update(update)
                room = Room(session_id, doc, sum(map(len, updates)))
                self.rooms[session_id] = room
                pending.set_result(room)
            except BaseException as exc:
                pending.set_exception(exc)
                pending.exception()  # retrieved: no "never retrieved" warning
                raise
            finally:
                self._loading.pop(session_id, None)
        room = await asyncio.shield(pending)
        room.holds += 1
        return room

    def release(self, room: Room) -> None:
        """End a hold taken by :meth:`room`; the last one unloads the room (the store has
        all of it), so one session never has two live documents."""
        room.holds -= 1
        if room.holds <= 0 and not room.peers and self.rooms.get(room.session_id) is room:
            del self.rooms[room.session_id]

    def forget(self, session_id: str) -> None:
        """Drop the live document of a deleted session."""
        self.rooms.pop(session_id, None)

    async def apply_server_change(self, room: Room, change: Callable[[Text], None]) -> int:
        """Make a change to the document as the server (a restore), store it and send it to
        every peer; the new version."""
        async with room.lock:
            room.take_changes()
            with room.doc.transaction():
                change(room.text)
            update = room.take_changes()
            if update is None:
                return await self.store.read(session_version, room.session_id)
            version = await self.store.write(save_update, room.session_id, update,
                                             self.limits.compact_after)
            room.size += len(update)
            self._broadcast(room, sync_message(SYNC_UPDATE, update), None)
            return version

    # -- closing ------------------------------------------------------------------------

    async def close_peers(self, session_id: str, code: int, reason: str,
                          user_id: str | None = None) -> int:
        """Close the sockets of ``user_id`` (everyone's when None) in ``session_id``."""
        room = self.rooms.get(session_id)
        victims = [p for p in (room.peers if room else ()) if user_id in (None, p.user_id)]
        for peer in victims:
            await self._close(peer, code, reason)
        return len(victims)

    async def close_auth_sessions(self, wanted: set[str], code: int, reason: str) -> int:
        """Close the sockets opened with tickets of the given login sessions (logout)."""
        victims = [p for room in self.rooms.values() for p in room.peers
                   if p.auth_session in wanted]
        for peer in victims:
            await self._close(peer, code, reason)
        return len(victims)

    async def close_all(self) -> None:
        for room in list(self.rooms.values()):
            for peer in list(room.peers):
                await self._close(peer, CLOSE_GOING_AWAY, "server shutting down")

    def set_role(self, session_id: str, user_id: str, role: str) -> None:
        """A member's new role takes effect on their open sockets at once."""
        room = self.rooms.get(session_id)
        for peer in room.peers if room else ():
            if peer.user_id == user_id:
                peer.role = role

    async def _close(self, peer: Peer, code: int, reason: str) -> None:
        if peer.closed:
            return
        peer.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            peer.queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await peer.websocket.close(code, reason[:120])

    # -- the socket ---------------------------------------------------------------------

    async def serve(self, websocket: WebSocket, room: Room, user_id: str, username: str,
                    role: str, auth_session: str,
                    still_allowed: Callable[[], Awaitable[str | None]]) -> None:
        """Run one accepted socket until it closes. ``still_allowed`` re-reads the member's
        role now and then (None: no longer a member or no longer logged in)."""
        peer = Peer(user_id, username, role, auth_session, websocket,
                    TokenBucket(self.limits.rate, self.limits.burst),
                    asyncio.Queue(self.limits.queue_size))
        room.peers.add(peer)
        peer.writer = asyncio.get_running_loop().create_task(
            self._write(peer), name=f"collab writer {peer.id}")
        try:
            self._send(peer, sync_message(SYNC_STEP1, room.doc.get_state()))
            if room.awareness:
                self._send(peer, awareness_message(
                    [(cid, clock, state) for cid, (clock, state) in room.awareness.items()]))
            checked = time.monotonic()
            while not peer.closed:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if time.monotonic() - checked > SESSION_RECHECK_S:
                    checked = time.monotonic()
                    current = await still_allowed()
                    if current is None:
                        await self._close(peer, CLOSE_FORBIDDEN, "no longer a member")
                        return
                    peer.role = current
                data = message.get("bytes")
                if data is None:
                    raise ProtocolError(CLOSE_UNSUPPORTED, "binary y-websocket frames only")
                await self._handle(room, peer, data)
        except ProtocolError as exc:
            log.info("collaboration %s: closing %s's socket: %s", room.session_id, username,
                     exc.reason)
            await self._close(peer, exc.code, exc.reason)
        except (WebSocketDisconnect, RuntimeError):
            pass  # the peer went away mid-send or mid-receive
        except Exception:
            # A bug, not the client's fault: logged, and the socket still closes with a
            # code (1011) instead of dropping.
            log.exception("collaboration %s: unexpected error on %s's socket",
                          room.session_id, username)
            await self._close(peer, CLOSE_INTERNAL, "internal error; see the server log")
        finally:
            await self._leave(room, peer)

    async def _leave(self, room: Room, peer: Peer) -> None:
        room.peers.discard(peer)
        peer.closed = True
        gone = [cid for cid in peer.awareness_ids if room.owners.get(cid) is peer]
        entries = []
        for cid in gone:
            clock, _state = room.awareness.pop(cid, (0, "null"))
            room.owners.pop(cid, None)
            entries.append((cid, clock + 1, "null"))
        if entries:
            # Others drop the cursor now instead of after y-protocols' 30 s timeout.
            self._broadcast(room, awareness_message(entries), None)
        with contextlib.suppress(asyncio.QueueFull):
            peer.queue.put_nowait(None)
        if peer.writer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await within(peer.writer, 2)
        self.release(room)

    async def _write(self, peer: Peer) -> None:
        while True:
            item = await peer.queue.get()
            if item is None:
                return
            try:
                await peer.websocket.send_bytes(item)
            except Exception:  # the peer is gone; its reader cleans up
                return

    def _send(self, peer: Peer, data: bytes) -> None:
        if peer.closed:
            return
        try:
            peer.queue.put_nowait(data)
        except asyncio.QueueFull:
            log.warning("collaboration: %s's socket is %d messages behind; closing it",
                        peer.username, self.limits.queue_size)
            asyncio.get_running_loop().create_task(self._close(peer, CLOSE_SLOW, "too slow"))

    def _broadcast(self, room: Room, data: bytes, exclude: Peer | None) -> None:
        for other in list(room.peers):
            if other is not exclude:
                self._send(other, data)

    async def _handle(self, room: Room, peer: Peer, data: bytes) -> None:
        limits = self.limits
        if len(data) > limits.max_frame:
            raise ProtocolError(CLOSE_TOO_BIG, f"message too large: at most "
                                               f"{limits.max_frame} bytes")
        if not peer.bucket.take():
            raise ProtocolError(CLOSE_RATE, f"too many messages: at most {limits.rate:g} a "
                                            f"second (bursts of {limits.burst:g})")
        room.stats.bytes_received += len(data)
        reader = Reader(data)
        kind = reader.uint()
        if kind == MSG_SYNC:
            step = reader.uint()
            payload = reader.bytes()
            if not reader.done():
                raise ProtocolError(CLOSE_PROTOCOL, "sync message: trailing bytes")
            if step == SYNC_STEP1:
                try:
                    answer = room.doc.get_update(payload)
                except ValueError:
                    raise ProtocolError(CLOSE_INVALID, "sync step 1: bad state vector") from None
                self._send(peer, sync_message(SYNC_STEP2, answer))
            elif step in (SYNC_STEP2, SYNC_UPDATE):
                await self._update(room, peer, payload)
            else:
                raise ProtocolError(CLOSE_PROTOCOL, f"unknown sync message {step}")
        elif kind == MSG_AWARENESS:
            payload = reader.bytes()
            if not reader.done():
                raise ProtocolError(CLOSE_PROTOCOL, "awareness message: trailing bytes")
            self._awareness(room, peer, payload)
        elif kind == MSG_QUERY_AWARENESS:
            self._send(peer, awareness_message(
                [(cid, clock, state) for cid, (clock, state) in room.awareness.items()]))
        elif kind == MSG_AUTH:
            pass  # y-protocols' auth message: the ticket already authenticated the socket
        else:
            raise ProtocolError(CLOSE_PROTOCOL, f"unknown message type {kind}")

    async def _update(self, room: Room, peer: Peer, update: bytes) -> None:
        if update in (b"", b"\x00\x00"):
            return  # an empty update (a client with nothing the server lacks)
        if not peer.can_write:
            # Viewers are read-only: their edits never reach the document or the others.
            room.stats.updates_dropped += 1
            return
        limit = self.limits.max_document
        if room.size + len(update) > limit and room.exact_size() + len(update) > limit:
            raise ProtocolError(CLOSE_TOO_BIG, f"the document would exceed {limit} bytes")
        if room.unapplied + len(update) > limit:
            # Updates whose earlier parts never come are held in memory by pycrdt and do
            # not count in the document's size: without this bound an editor could grow
            # the server's memory by a frame at a time, 100 times a second.
            raise ProtocolError(CLOSE_TOO_BIG, f"updates that change nothing (or wait for a "
                                               f"missing part) passed {limit} bytes")
        room.take_changes()
        try:
            room.doc.apply_update(update)
        except ValueError:
            raise ProtocolError(CLOSE_INVALID, "an update that cannot be decoded") from None
        change = room.take_changes()
        if change is None:
            # Known already, or waiting for a missing part (see Room._changes).
            room.unapplied += len(update)
            return
        room.size += len(change)
        room.stats.updates_applied += 1
        await self.store.write(save_update, room.session_id, change, self.limits.compact_after)
        # Relayed after it is stored: what any peer has seen survives a restart.
        self._broadcast(room, sync_message(SYNC_UPDATE, change), peer)

    def _awareness(self, room: Room, peer: Peer, payload: bytes) -> None:
        if len(payload) > self.limits.max_awareness:
            raise ProtocolError(CLOSE_TOO_BIG, f"awareness message too large: at most "
                                               f"{self.limits.max_awareness} bytes")
        entries = parse_awareness(payload, self.limits)
        kept = []
        for cid, clock, state in entries:
            owner = room.owners.get(cid)
            if owner is not None and owner is not peer:
                continue  # nobody speaks for another socket's cursor
            known = room.awareness.get(cid)
            if known is not None and clock < known[0]:
                continue
            if state == "null":
                room.awareness.pop(cid, None)
                room.owners.pop(cid, None)
                peer.awareness_ids.discard(cid)
            else:
                if (cid not in peer.awareness_ids
                        and len(peer.awareness_ids) >= self.limits.max_awareness_clients):
                    # Each id is a state kept and sent to every newcomer: one socket
                    # inventing new ids grew the room's memory without end.
                    raise ProtocolError(CLOSE_TOO_BIG, f"awareness: at most "
                                                       f"{self.limits.max_awareness_clients}"
                                                       f" client ids a socket")
                room.awareness[cid] = (clock, state)
                room.owners[cid] = peer
                peer.awareness_ids.add(cid)
            kept.append((cid, clock, state))
        if kept:
            room.stats.awareness_relayed += 1
            self._broadcast(room, awareness_message(kept), peer)
