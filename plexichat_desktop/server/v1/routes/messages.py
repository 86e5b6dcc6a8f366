"""``/messages``: direct messages between two users."""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import Field

from plexichat_desktop.server.v1 import accounts
from plexichat_desktop.server.v1.common import (
    Body,
    Offset,
    done,
    invalid,
    iso,
    limit_query,
    new_id,
    not_found,
    now,
    or_404,
    owned,
    page,
)
from plexichat_desktop.server.v1.deps import Api, User
from plexichat_desktop.server.v1.hub import frame
from plexichat_desktop.server.v1.store import one, rows, scalar

router = APIRouter(prefix="/messages", tags=["messages"])

MAX_CONTENT = 10_000
PREVIEW = 100
VISIBLE = "deleted_at IS NULL"


class SendBody(Body):
    recipient_id: str = Field(min_length=1, max_length=64)
    content: str = Field(min_length=1, max_length=MAX_CONTENT)
    message_type: Literal["text", "markdown", "code"] = "text"
    encrypted: bool = Field(False, description="A flag stored as given: the server does "
                                               "not encrypt; end-to-end encryption is the "
                                               "clients' business.")


def message_dict(row: dict[str, Any]) -> dict[str, Any]:
    """``MessageResponse``."""
    return {
        "id": row["id"],
        "sender_id": row["sender_id"],
        "recipient_id": row["recipient_id"],
        "content": row["content"],
        "message_type": row["message_type"],
        "encrypted": bool(row["encrypted"]),
        "timestamp": iso(row["created_at"]),
        "read": row["read_at"] is not None,
        "read_at": iso(row["read_at"]),
    }


def _send(conn: sqlite3.Connection, sender_id: str, body: SendBody
          ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    recipient = accounts.get_user(conn, body.recipient_id)
    if recipient is None:
        return None, None
    message_id = new_id()
    conn.execute(
        "INSERT INTO messages (id, sender_id, recipient_id, content, message_type, encrypted, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (message_id, sender_id, body.recipient_id, body.content, body.message_type,
         int(body.encrypted), now()))
    return one(conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,))), recipient


@router.post("/send", status_code=201)
async def send(body: SendBody, user: User, api: Api) -> dict[str, Any]:
    """Send a direct message; the recipient's open WebSockets get it at once."""
    if body.recipient_id == user.id:
        raise HTTPException(400, "recipient_id: you cannot send a message to yourself")
    if not body.content.strip():
        raise invalid("content", "content must not be blank")
    row, _recipient = await api.store.write(_send, user.id, body)
    if row is None:
        raise not_found("recipient", body.recipient_id)
    message = message_dict(row)
    event = frame("message", **message, sender_username=user.username)
    api.hub.to_user(body.recipient_id, event)
    api.hub.to_user(user.id, event)
    api.emit("message.sent", message, [user.id])
    api.emit("message.received", message, [body.recipient_id])
    return message


def _conversations(conn: sqlite3.Connection, user_id: str, limit: int, offset: int
                   ) -> tuple[list[dict[str, Any]], int]:
    # One row per partner: their latest visible message with me, and my unread count.
    base = f"""
        WITH mine AS (
            SELECT seq, content, created_at,
                   CASE WHEN sender_id = :me THEN recipient_id ELSE sender_id END AS partner
            FROM messages WHERE (sender_id = :me OR recipient_id = :me) AND {VISIBLE}
        ), latest AS (
            SELECT partner, MAX(seq) AS seq FROM mine GROUP BY partner
        )
    """
    total = scalar(conn, base + "SELECT COUNT(*) FROM latest", {"me": user_id})
    found = rows(conn.execute(base + f"""
        SELECT u.id AS user_id, u.username, u.display_name, m.content AS last_message,
               m.created_at AS last_message_time,
               (SELECT COUNT(*) FROM messages x WHERE x.sender_id = u.id
                    AND x.recipient_id = :me AND x.read_at IS NULL AND x.{VISIBLE})
                   AS unread_count
        FROM latest l JOIN mine m ON m.seq = l.seq JOIN users u ON u.id = l.partner
        ORDER BY l.seq DESC LIMIT :limit OFFSET :offset
    """, {"me": user_id, "limit": limit, "offset": offset}))
    return found, total


@router.get("/conversations")
async def conversations(user: User, api: Api, limit: Annotated[int, limit_query(50, 100)] = 50,
                        offset: Offset = 0) -> dict[str, Any]:
    """The caller's conversations, most recent first."""
    found, total = await api.store.read(_conversations, user.id, limit, offset)
    items = [{
        "user_id": r["user_id"], "username": r["username"],
        "display_name": r["display_name"] or r["username"],
        "last_message": r["last_message"][:PREVIEW],
        "last_message_time": iso(r["last_message_time"]), "unread_count": r["unread_count"],
        "is_online": api.hub.is_online(r["user_id"]),
    } for r in found]
    return page("conversations", items, total, limit, offset)


def _conversation(conn: sqlite3.Connection, me: str, other_id: str, limit: int, offset: int,
                  order: str, mark_read: bool
                  ) -> tuple[dict[str, Any] | None, list[dict[str, Any]], int, int]:
    other = one(conn.execute("SELECT * FROM users WHERE id = ?", (other_id,)))
    if other is None:
        return None, [], 0, 0
    pair = (f"((sender_id = :me AND recipient_id = :other) OR "
            f"(sender_id = :other AND recipient_id = :me)) AND {VISIBLE}")
    args = {"me": me, "other": other_id}
    total = scalar(conn, f"SELECT COUNT(*) FROM messages WHERE {pair}", args)
    direction = "ASC" if order == "asc" else "DESC"
    found = rows(conn.execute(
        f"SELECT * FROM messages WHERE {pair} ORDER BY seq {direction} "
        f"LIMIT :limit OFFSET :offset", {**args, "limit": limit, "offset": offset}))
    marked = 0
    if mark_read:
        unread = [r["id"] for r in found if r["recipient_id"] == me and r["read_at"] is None]
        stamp = now()
        for row in found:
            if row["id"] in unread:
                row["read_at"] = stamp
        if unread:
            marks = ", ".join("?" * len(unread))
            marked = conn.execute(f"UPDATE messages SET read_at = ? WHERE id IN ({marks})",
                                  (stamp, *unread)).rowcount
    return other, found, total, marked


@router.get("/conversation/{other_user_id}")
async def conversation(
    other_user_id: str, user: User, api: Api,
    limit: Annotated[int, limit_query(50, 100)] = 50, offset: Offset = 0,
    order: Literal["desc", "asc"] = "desc", mark_read: bool = True,
) -> dict[str, Any]:
    """Messages between the caller and another user (newest first by default). Messages
    of the page that the caller received are marked read unless ``mark_read=false``."""
    other, found, total, _marked = await api.store.write(
        _conversation, user.id, other_user_id, limit, offset, order, mark_read)
    if other is None:
        raise not_found("user", other_user_id)
    return page("messages", [message_dict(r) for r in found], total, limit, offset,
                other_user={"id": other["id"], "username": other["username"],
                            "display_name": other["display_name"] or other["username"]})


def _stats(conn: sqlite3.Connection, me: str) -> dict[str, int]:
    sent = scalar(conn, f"SELECT COUNT(*) FROM messages WHERE sender_id = ? AND {VISIBLE}",
                  (me,))
    received = scalar(conn, f"SELECT COUNT(*) FROM messages WHERE recipient_id = ? AND "
                            f"{VISIBLE}", (me,))
    unread = scalar(conn, f"SELECT COUNT(*) FROM messages WHERE recipient_id = ? AND "
                          f"read_at IS NULL AND {VISIBLE}", (me,))
    partners = scalar(conn, f"""
        SELECT COUNT(DISTINCT CASE WHEN sender_id = :me THEN recipient_id ELSE sender_id END)
        FROM messages WHERE (sender_id = :me OR recipient_id = :me) AND {VISIBLE}""",
        {"me": me})
    return {"sent_messages": sent, "received_messages": received, "unread_messages": unread,
            "total_messages": sent + received, "conversations": partners}


@router.get("/stats")
async def stats(user: User, api: Api) -> dict[str, Any]:
    """Counts of the caller's messages."""
    return await api.store.read(_stats, user.id)


def _visible(conn: sqlite3.Connection, message_id: str, me: str) -> dict[str, Any] | None:
    """A message of a conversation ``me`` is part of, or None."""
    return one(conn.execute(f"SELECT * FROM messages WHERE id = :id AND {VISIBLE} AND "
                            f":me IN (sender_id, recipient_id)", {"id": message_id, "me": me}))


@router.get("/{message_id}")
async def get_message(message_id: str, user: User, api: Api) -> dict[str, Any]:
    """One message of a conversation the caller is part of."""
    row = await api.store.read(_visible, message_id, user.id)
    return message_dict(or_404(row, "message", message_id))


def _delete(conn: sqlite3.Connection, message_id: str, user_id: str) -> str:
    row = owned(_visible(conn, message_id, user_id), user_id, "message", message_id,
                "only the sender can delete a message", owner="sender_id")
    conn.execute("UPDATE messages SET deleted_at = ? WHERE id = ?", (now(), message_id))
    return row["recipient_id"]


@router.delete("/{message_id}")
async def delete_message(message_id: str, user: User, api: Api) -> dict[str, Any]:
    """Delete a message the caller sent (for both sides). The recipient gets 403."""
    recipient = await api.store.write(_delete, message_id, user.id)
    event = frame("message_deleted", id=message_id, sender_id=user.id, recipient_id=recipient)
    api.hub.to_user(recipient, event)
    api.hub.to_user(user.id, event)
    return done("Message deleted", message_id=message_id)
