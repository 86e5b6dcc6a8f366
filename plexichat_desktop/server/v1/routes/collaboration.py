"""``/collaboration``: shared documents edited live by several users.

Sessions are created with a title, a type, initial content and a user limit; members join
as ``editor`` or ``viewer`` (the session's ``join_role`` caps what a joiner may ask for;
its owner can change anyone's role). The document itself travels over the WebSocket
``/collaboration/ws/{session_id}?ticket=...`` in the y-websocket protocol (see
:mod:`plexichat_desktop.server.v1.collab`); a ticket comes from
``POST /sessions/{id}/ticket``, is good for one socket and a minute, so access tokens never
appear in URLs. History is a list of named snapshots of the text; restoring one is a new
change every peer receives (and a snapshot of what it replaced is taken first).

A session is visible to its members only: to anyone else it does not exist (404), except
to ``join``, which is how its id works as an invitation.
"""

from __future__ import annotations

import sqlite3
import weakref
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, WebSocket
from pydantic import Field

from plexichat_desktop.server.v1 import collab
from plexichat_desktop.server.v1.collab import CollabManager, initial_update
from plexichat_desktop.server.v1.common import (
    Body,
    Offset,
    conflict,
    done,
    forbidden,
    invalid,
    iso,
    limit_query,
    new_id,
    not_found,
    now,
    page,
)
from plexichat_desktop.server.v1.deps import Api, CurrentUser, User
from plexichat_desktop.server.v1.hub import frame
from plexichat_desktop.server.v1.service import ApiV1
from plexichat_desktop.server.v1.store import one, rows, scalar

router = APIRouter(prefix="/collaboration", tags=["collaboration"])

CollaborationType = Literal["document", "code", "whiteboard", "presentation", "screen_share"]
JoinRole = Literal["editor", "viewer"]
MAX_USERS = 100
MAX_LABEL = 200

_managers: weakref.WeakKeyDictionary[ApiV1, CollabManager] = weakref.WeakKeyDictionary()


def manager_for(api: ApiV1) -> CollabManager:
    """The collaboration manager of ``api`` (made on first use, with hooks so that logout
    and shutdown close its sockets as they close the realtime ones)."""
    manager = _managers.get(api)
    if manager is None:
        manager = _managers[api] = CollabManager(api.store)
        api.hub.session_closers.append(manager.close_auth_sessions)
        api.hub.shutdown_hooks.append(manager.close_all)
    return manager


class CreateBody(Body):
    title: str = Field(min_length=1, max_length=200)
    collaboration_type: CollaborationType = "document"
    initial_content: str = Field("", description="The document's text to start from.")
    max_users: int = Field(50, ge=1, le=MAX_USERS, description="Members at most, owner "
                                                                 "included.")
    join_role: JoinRole = Field("editor", description="The most a joiner may ask for: "
                                                      "'viewer' makes joiners read-only.")


class JoinBody(Body):
    role: Literal["owner", "editor", "viewer"] = "editor"


class RoleBody(Body):
    role: JoinRole


class SnapshotBody(Body):
    label: str = Field("", max_length=MAX_LABEL)


# -- store functions ---------------------------------------------------------------------

def _session(conn: sqlite3.Connection, session_id: str, me: str
             ) -> tuple[dict[str, Any], str] | None:
    """The session and the caller's role, or None when the caller is not a member."""
    row = one(conn.execute(
        "SELECT s.*, m.role AS my_role FROM collab_sessions s JOIN collab_members m ON "
        "m.session_id = s.id AND m.user_id = ? WHERE s.id = ?", (me, session_id)))
    return None if row is None else (row, row["my_role"])


def _members(conn: sqlite3.Connection, session_id: str) -> list[dict[str, Any]]:
    return rows(conn.execute(
        "SELECT m.user_id, u.username, m.role, m.joined_at FROM collab_members m JOIN users u "
        "ON u.id = m.user_id WHERE m.session_id = ? ORDER BY m.joined_at, u.username",
        (session_id,)))


def _detail(conn: sqlite3.Connection, session_id: str, me: str
            ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    found = _session(conn, session_id, me)
    if found is None:
        return None
    return found[0], _members(conn, session_id)


def _create(conn: sqlite3.Connection, me: str, body: CreateBody, update: bytes) -> str:
    session_id = new_id()
    stamp = now()
    conn.execute(
        "INSERT INTO collab_sessions (id, title, collaboration_type, owner_id, max_users, "
        "join_role, version, created_at, last_modified) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
        (session_id, body.title, body.collaboration_type, me, body.max_users, body.join_role,
         stamp, stamp))
    conn.execute("INSERT INTO collab_members (session_id, user_id, role, joined_at) "
                 "VALUES (?, ?, 'owner', ?)", (session_id, me, stamp))
    conn.execute("INSERT INTO collab_updates (session_id, data, created_at) VALUES (?, ?, ?)",
                 (session_id, update, stamp))
    return session_id


def _list(conn: sqlite3.Connection, me: str, limit: int, offset: int
          ) -> tuple[list[dict[str, Any]], int]:
    total = scalar(conn, "SELECT COUNT(*) FROM collab_members WHERE user_id = ?", (me,))
    found = rows(conn.execute(
        "SELECT s.*, m.role AS my_role, (SELECT COUNT(*) FROM collab_members x WHERE "
        "x.session_id = s.id) AS member_count FROM collab_sessions s JOIN collab_members m "
        "ON m.session_id = s.id AND m.user_id = ? ORDER BY s.last_modified DESC, s.seq DESC "
        "LIMIT ? OFFSET ?", (me, limit, offset)))
    return found, total


def _join(conn: sqlite3.Connection, session_id: str, me: str, role: str) -> str:
    """'joined', 'rejoined' or 'changed'; raises the refusals."""
    row = one(conn.execute("SELECT * FROM collab_sessions WHERE id = ?", (session_id,)))
    if row is None:
        raise not_found("collaboration session", session_id)
    current = collab.member_role(conn, session_id, me)
    if role == "owner" and row["owner_id"] != me:
        raise forbidden("role: only the session's creator is its owner")
    if row["owner_id"] == me:
        return "rejoined"  # the owner stays the owner whatever they ask for
    if role == "editor" and row["join_role"] == "viewer" and current != "editor":
        raise forbidden("role: this session lets joiners in as viewers only; its owner can "
                        "make you an editor")
    if current is not None:
        if current == role:
            return "rejoined"
        if role == "editor":
            raise forbidden("role: a viewer becomes an editor only through the session's "
                            "owner")
        conn.execute("UPDATE collab_members SET role = ? WHERE session_id = ? AND user_id = ?",
                     (role, session_id, me))
        return "changed"
    members = scalar(conn, "SELECT COUNT(*) FROM collab_members WHERE session_id = ?",
                     (session_id,))
    if members >= row["max_users"]:
        raise conflict(f"the session is full: at most {row['max_users']} users")
    conn.execute("INSERT INTO collab_members (session_id, user_id, role, joined_at) "
                 "VALUES (?, ?, ?, ?)", (session_id, me, role, now()))
    return "joined"


def _leave(conn: sqlite3.Connection, session_id: str, me: str) -> None:
    found = _session(conn, session_id, me)
    if found is None:
        raise not_found("collaboration session", session_id)
    if found[1] == "owner":
        raise conflict("the owner cannot leave the session; delete it instead")
    conn.execute("DELETE FROM collab_members WHERE session_id = ? AND user_id = ?",
                 (session_id, me))


def _delete(conn: sqlite3.Connection, session_id: str, me: str) -> list[str]:
    found = _session(conn, session_id, me)
    if found is None:
        raise not_found("collaboration session", session_id)
    if found[1] != "owner":
        raise forbidden("only the session's owner can delete it")
    members = [r["user_id"] for r in _members(conn, session_id)]
    conn.execute("DELETE FROM collab_sessions WHERE id = ?", (session_id,))
    return members


def _set_role(conn: sqlite3.Connection, session_id: str, me: str, user_id: str, role: str
              ) -> None:
    found = _session(conn, session_id, me)
    if found is None:
        raise not_found("collaboration session", session_id)
    if found[1] != "owner":
        raise forbidden("only the session's owner can change roles")
    if user_id == me:
        raise conflict("the owner's role cannot change")
    changed = conn.execute("UPDATE collab_members SET role = ? WHERE session_id = ? AND "
                           "user_id = ?", (role, session_id, user_id)).rowcount
    if not changed:
        raise not_found("member", user_id)


def _save_snapshot(conn: sqlite3.Connection, session_id: str, me: str | None, label: str,
                   content: str, keep: int) -> dict[str, Any]:
    version = scalar(conn, "SELECT version FROM collab_sessions WHERE id = ?", (session_id,))
    snapshot_id = new_id()
    conn.execute(
        "INSERT INTO collab_snapshots (id, session_id, label, content, version, created_by, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (snapshot_id, session_id, label, content, version, me, now()))
    # Bounded history: the oldest snapshots go first.
    conn.execute("DELETE FROM collab_snapshots WHERE session_id = ? AND seq NOT IN (SELECT seq "
                 "FROM collab_snapshots WHERE session_id = ? ORDER BY seq DESC LIMIT ?)",
                 (session_id, session_id, keep))
    row = one(conn.execute("SELECT * FROM collab_snapshots WHERE id = ?", (snapshot_id,)))
    assert row is not None
    return row


def _snapshots(conn: sqlite3.Connection, session_id: str, limit: int, offset: int
               ) -> tuple[list[dict[str, Any]], int]:
    total = scalar(conn, "SELECT COUNT(*) FROM collab_snapshots WHERE session_id = ?",
                   (session_id,))
    return rows(conn.execute(
        "SELECT *, LENGTH(content) AS length FROM collab_snapshots WHERE session_id = ? "
        "ORDER BY seq DESC LIMIT ? OFFSET ?", (session_id, limit, offset))), total


def _snapshot(conn: sqlite3.Connection, session_id: str, snapshot_id: str
              ) -> dict[str, Any] | None:
    return one(conn.execute("SELECT *, LENGTH(content) AS length FROM collab_snapshots "
                            "WHERE id = ? AND session_id = ?", (snapshot_id, session_id)))


def _stats(conn: sqlite3.Connection, me: str, everyone: bool) -> dict[str, Any]:
    mine = {
        "sessions": scalar(conn, "SELECT COUNT(*) FROM collab_members WHERE user_id = ?",
                           (me,)),
        "owned": scalar(conn, "SELECT COUNT(*) FROM collab_sessions WHERE owner_id = ?",
                        (me,)),
        "editing": scalar(conn, "SELECT COUNT(*) FROM collab_members WHERE user_id = ? AND "
                                "role IN ('owner', 'editor')", (me,)),
        "viewing": scalar(conn, "SELECT COUNT(*) FROM collab_members WHERE user_id = ? AND "
                                "role = 'viewer'", (me,)),
    }
    if everyone:
        mine["all_sessions"] = scalar(conn, "SELECT COUNT(*) FROM collab_sessions")
        mine["all_snapshots"] = scalar(conn, "SELECT COUNT(*) FROM collab_snapshots")
    return mine


# -- shapes ------------------------------------------------------------------------------

def session_dict(row: dict[str, Any], api: ApiV1, members: list[dict[str, Any]] | None = None,
                 content: str | None = None) -> dict[str, Any]:
    """``CollaborationSession``; ``users`` and ``content`` only where they were read."""
    room = manager_for(api).rooms.get(row["id"])
    online = room.users() if room else set()
    out: dict[str, Any] = {
        "session_id": row["id"], "title": row["title"],
        "collaboration_type": row["collaboration_type"], "owner_id": row["owner_id"],
        "created_at": iso(row["created_at"]), "last_modified": iso(row["last_modified"]),
        "version": row["version"], "max_users": row["max_users"],
        "join_role": row["join_role"], "my_role": row["my_role"],
        "is_active": bool(online), "connected_users": len(online),
    }
    if "member_count" in row:
        out["member_count"] = row["member_count"]
    if members is not None:
        out["member_count"] = len(members)
        out["users"] = [{"user_id": m["user_id"], "username": m["username"], "role": m["role"],
                         "joined_at": iso(m["joined_at"]), "online": m["user_id"] in online}
                        for m in members]
    if content is not None:
        out["content"] = content
    return out


def snapshot_dict(row: dict[str, Any], with_content: bool = False) -> dict[str, Any]:
    out = {"snapshot_id": row["id"], "session_id": row["session_id"], "label": row["label"],
           "version": row["version"], "length": row["length"],
           "created_by": row["created_by"], "created_at": iso(row["created_at"])}
    if with_content:
        out["content"] = row["content"]
    return out


async def _member(api: ApiV1, session_id: str, user: CurrentUser
                  ) -> tuple[dict[str, Any], str]:
    found = await api.store.read(_session, session_id, user.id)
    if found is None:
        raise not_found("collaboration session", session_id)
    return found


def _writer(role: str, action: str) -> None:
    if role not in collab.WRITERS:
        raise forbidden(f"viewers cannot {action}; the session's owner can make you an editor")


async def _content(api: ApiV1, session_id: str) -> str:
    manager = manager_for(api)
    room = await manager.room(session_id)
    try:
        return room.content()
    finally:
        manager.release(room)


def _notify(api: ApiV1, user_ids: list[str], kind: str, **data: Any) -> None:
    event = frame(kind, **data)
    for uid in set(user_ids):
        api.hub.to_user(uid, event)


# -- routes ------------------------------------------------------------------------------

@router.post("/sessions", status_code=201)
async def create_session(body: CreateBody, user: User, api: Api) -> dict[str, Any]:
    """Create a session owned by the caller, its document holding ``initial_content``."""
    limits = manager_for(api).limits
    if not body.title.strip():
        raise invalid("title", "title must not be blank")
    if len(body.initial_content) > limits.max_content:
        raise invalid("initial_content", f"at most {limits.max_content} characters")
    update = initial_update(body.initial_content)
    if len(update) > limits.max_document:
        # Characters are not bytes: a million emoji made a document over the limit that
        # then refused every edit.
        raise invalid("initial_content", f"at most {limits.max_document} bytes as a "
                                         f"document (this one is {len(update)})")
    session_id = await api.store.write(_create, user.id, body, update)
    found = await api.store.read(_detail, session_id, user.id)
    assert found is not None
    return session_dict(found[0], api, found[1], body.initial_content)


@router.get("/sessions")
async def list_sessions(user: User, api: Api,
                        limit: Annotated[int, limit_query(50, 100)] = 50,
                        offset: Offset = 0) -> dict[str, Any]:
    """The sessions the caller is a member of, most recently changed first."""
    found, total = await api.store.read(_list, user.id, limit, offset)
    return page("sessions", [session_dict(r, api) for r in found], total, limit, offset)


@router.get("/stats")
async def stats(user: User, api: Api) -> dict[str, Any]:
    """The caller's sessions by role, the live rooms and sockets (server-wide totals too
    for administrators)."""
    figures = await api.store.read(_stats, user.id, user.is_admin)
    manager = manager_for(api)
    figures["live_sessions"] = len(manager.rooms)
    figures["connected_sockets"] = sum(len(r.peers) for r in manager.rooms.values())
    return figures


@router.get("/sessions/{session_id}")
async def get_session(session_id: str, user: User, api: Api) -> dict[str, Any]:
    """A session with its members (and who is online) and its current text."""
    found = await api.store.read(_detail, session_id, user.id)
    if found is None:
        raise not_found("collaboration session", session_id)
    return session_dict(found[0], api, found[1], await _content(api, session_id))


@router.delete("/sessions/{session_id}")
async def delete_session(session_id: str, user: User, api: Api) -> dict[str, Any]:
    """Delete a session (owner only; 403 for other members): its document, history and
    open sockets (closed with 4410) go with it."""
    members = await api.store.write(_delete, session_id, user.id)
    manager = manager_for(api)
    await manager.close_peers(session_id, collab.CLOSE_GONE, "session deleted")
    manager.forget(session_id)
    _notify(api, members, "collaboration_session_deleted", session_id=session_id)
    return done("Session deleted", session_id=session_id)


@router.post("/sessions/{session_id}/join")
async def join_session(session_id: str, body: JoinBody, user: User, api: Api
                       ) -> dict[str, Any]:
    """Become a member (anyone who knows the id; 409 when the session is full). A member
    may step down from editor to viewer this way, never up."""
    outcome = await api.store.write(_join, session_id, user.id, body.role)
    found = await api.store.read(_detail, session_id, user.id)
    assert found is not None
    row, members = found
    if outcome == "changed":
        manager_for(api).set_role(session_id, user.id, row["my_role"])
    if outcome != "rejoined":
        _notify(api, [m["user_id"] for m in members], "collaboration_member",
                session_id=session_id, user_id=user.id, username=user.username,
                role=row["my_role"], action=outcome)
    return {**session_dict(row, api, members), "joined": outcome}


@router.post("/sessions/{session_id}/leave")
async def leave_session(session_id: str, user: User, api: Api) -> dict[str, Any]:
    """Stop being a member; the caller's open sockets to it close (4403). The owner cannot
    leave (409): they delete the session."""
    await api.store.write(_leave, session_id, user.id)
    await manager_for(api).close_peers(session_id, collab.CLOSE_FORBIDDEN, "left the session",
                                       user.id)
    return done("Left the session", session_id=session_id)


@router.put("/sessions/{session_id}/members/{user_id}")
async def set_member_role(session_id: str, user_id: str, body: RoleBody, user: User,
                          api: Api) -> dict[str, Any]:
    """Make a member an editor or a viewer (owner only); their open sockets follow at once."""
    await api.store.write(_set_role, session_id, user.id, user_id, body.role)
    manager_for(api).set_role(session_id, user_id, body.role)
    _notify(api, [user_id], "collaboration_member", session_id=session_id, user_id=user_id,
            role=body.role, action="changed")
    return done("Role changed", session_id=session_id, user_id=user_id, role=body.role)


@router.get("/sessions/{session_id}/stats")
async def session_stats(session_id: str, user: User, api: Api) -> dict[str, Any]:
    """Figures of one session: sockets, size, updates applied and viewers' updates dropped
    since it was loaded, stored rows and snapshots."""
    row, _role = await _member(api, session_id, user)

    def counts(conn: sqlite3.Connection) -> tuple[int, int, int]:
        return (scalar(conn, "SELECT COUNT(*) FROM collab_updates WHERE session_id = ?",
                       (session_id,)),
                scalar(conn, "SELECT COUNT(*) FROM collab_snapshots WHERE session_id = ?",
                       (session_id,)),
                scalar(conn, "SELECT COUNT(*) FROM collab_members WHERE session_id = ?",
                       (session_id,)))

    stored, snapshots, members = await api.store.read(counts)
    manager = manager_for(api)
    room = await manager.room(session_id)
    try:
        return {
            "session_id": session_id, "version": row["version"], "members": members,
            "max_users": row["max_users"], "connected_sockets": len(room.peers),
            "connected_users": len(room.users()),
            "viewers_connected": sum(1 for p in room.peers if not p.can_write),
            "document_bytes": room.exact_size(), "content_length": len(room.content()),
            "stored_updates": stored, "snapshots": snapshots,
            "updates_applied": room.stats.updates_applied,
            "updates_dropped": room.stats.updates_dropped,
            "awareness_relayed": room.stats.awareness_relayed,
            "limits": {"max_document_bytes": manager.limits.max_document,
                       "max_message_bytes": manager.limits.max_frame,
                       "messages_per_second": manager.limits.rate},
        }
    finally:
        manager.release(room)


@router.get("/sessions/{session_id}/content")
async def get_content(session_id: str, user: User, api: Api,
                      format: Annotated[Literal["text", "markdown"], Query(
                          description="text: as typed; markdown: under the title as a "
                                      "heading (code in a fenced block)")] = "text",
                      ) -> dict[str, Any]:
    """A snapshot of the document's text now."""
    row, _role = await _member(api, session_id, user)
    text = await _content(api, session_id)
    if format == "markdown":
        body = f"```\n{text}\n```" if row["collaboration_type"] == "code" else text
        text = f"# {row['title']}\n\n{body}\n"
    return {"session_id": session_id, "format": format, "content": text,
            "version": row["version"], "last_modified": iso(row["last_modified"])}


@router.post("/sessions/{session_id}/ticket")
async def ticket(session_id: str, user: User, api: Api) -> dict[str, Any]:
    """A single-use ticket for the session's WebSocket, valid for a minute: open
    ``ws_path`` (the ticket is in it) with a y-websocket client."""
    row, role = await _member(api, session_id, user)
    manager = manager_for(api)
    value = manager.issue_ticket(session_id, user.id, user.session_id)
    return {"ticket": value, "expires_in": manager.limits.ticket_ttl, "role": role,
            "ws_path": f"/api/v1/collaboration/ws/{session_id}?ticket={value}",
            "session_id": row["id"]}


@router.get("/sessions/{session_id}/history")
async def history(session_id: str, user: User, api: Api,
                  limit: Annotated[int, limit_query(50, 100)] = 50,
                  offset: Offset = 0) -> dict[str, Any]:
    """The session's snapshots, newest first (without their content)."""
    await _member(api, session_id, user)
    found, total = await api.store.read(_snapshots, session_id, limit, offset)
    return page("snapshots", [snapshot_dict(r) for r in found], total, limit, offset)


@router.post("/sessions/{session_id}/history", status_code=201)
async def take_snapshot(session_id: str, body: SnapshotBody, user: User, api: Api
                        ) -> dict[str, Any]:
    """Keep the current text as a snapshot (editors and the owner; the oldest snapshots go
    beyond the limit)."""
    _row, role = await _member(api, session_id, user)
    _writer(role, "take snapshots")
    text = await _content(api, session_id)
    saved = await api.store.write(_save_snapshot, session_id, user.id, body.label, text,
                                  manager_for(api).limits.max_snapshots)
    return snapshot_dict({**saved, "length": len(text)}, with_content=True)


@router.get("/sessions/{session_id}/history/{snapshot_id}")
async def get_snapshot(session_id: str, snapshot_id: str, user: User, api: Api
                       ) -> dict[str, Any]:
    """One snapshot with its content."""
    await _member(api, session_id, user)
    row = await api.store.read(_snapshot, session_id, snapshot_id)
    if row is None:
        raise not_found("snapshot", snapshot_id)
    return snapshot_dict(row, with_content=True)


@router.post("/sessions/{session_id}/history/{snapshot_id}/restore")
async def restore_snapshot(session_id: str, snapshot_id: str, user: User, api: Api
                           ) -> dict[str, Any]:
    """Make the document's text the snapshot's again (editors and the owner). It is a new
    change that every open socket receives; the text it replaces is kept as a snapshot
    first, so a restore can be undone."""
    _row, role = await _member(api, session_id, user)
    _writer(role, "restore snapshots")
    target = await api.store.read(_snapshot, session_id, snapshot_id)
    if target is None:
        raise not_found("snapshot", snapshot_id)
    manager = manager_for(api)
    room = await manager.room(session_id)
    try:
        await api.store.write(_save_snapshot, session_id, user.id,
                              f"before restoring '{target['label'] or snapshot_id}'"[:MAX_LABEL],
                              room.content(), manager.limits.max_snapshots)
        wanted = target["content"]

        def replace(text: Any) -> None:
            # Keep the common head and tail: peers' cursors outside the change stay put.
            current = str(text)
            head = 0
            while head < min(len(current), len(wanted)) and current[head] == wanted[head]:
                head += 1
            tail = 0
            while (tail < min(len(current), len(wanted)) - head
                   and current[-1 - tail] == wanted[-1 - tail]):
                tail += 1
            # pycrdt's Text counts UTF-8 bytes, not characters: the character positions
            # become byte offsets, or an accent or emoji before the change cuts it apart.
            start = len(current[:head].encode())
            end = start + len(current[head:len(current) - tail].encode())
            if end > start:
                del text[start:end]
            inserted = wanted[head:len(wanted) - tail]
            if inserted:
                text.insert(start, inserted)

        version = await manager.apply_server_change(room, replace)
        content = room.content()
    finally:
        manager.release(room)
    return {"session_id": session_id, "restored": snapshot_id, "version": version,
            "content": content}


@router.websocket("/ws/{session_id}")
async def collaboration_socket(websocket: WebSocket, session_id: str) -> None:
    """The y-websocket socket of a session; ``?ticket=`` from ``POST .../ticket``. A bad,
    used or expired ticket refuses the handshake (HTTP 403)."""
    api: ApiV1 = websocket.app.state.api
    manager = manager_for(api)
    value = websocket.query_params.get("ticket", "")
    maybe = manager.redeem_ticket(value, session_id) if value else None
    if maybe is None:
        # Closing before accept refuses the handshake (uvicorn answers 403).
        await websocket.close(collab.CLOSE_UNAUTHORIZED, "invalid, used or expired ticket")
        return
    grant = maybe

    async def still_allowed() -> str | None:
        def check(conn: sqlite3.Connection) -> str | None:
            if not collab.session_alive(conn, grant.auth_session):
                return None
            return collab.member_role(conn, session_id, grant.user_id)
        return await api.store.read(check)

    def who(conn: sqlite3.Connection) -> tuple[str | None, str | None]:
        if not collab.session_alive(conn, grant.auth_session):
            return None, None  # logged out since the ticket was issued
        name = scalar(conn, "SELECT username FROM users WHERE id = ?", (grant.user_id,))
        return collab.member_role(conn, session_id, grant.user_id), name

    role, username = await api.store.read(who)
    if role is None or username is None:
        await websocket.close(collab.CLOSE_FORBIDDEN, "not a member of this session, or "
                                                      "logged out")
        return
    room = await manager.room(session_id)
    mine = sum(1 for p in room.peers if p.user_id == grant.user_id)
    if mine >= manager.limits.connections_per_user:
        manager.release(room)
        await websocket.close(collab.CLOSE_FULL, "too many sockets of this user")
        return
    await websocket.accept()
    await manager.serve(websocket, room, grant.user_id, username, role, grant.auth_session,
                        still_allowed)

