"""``/notifications``: notifications for users, their read state and settings.

Fixed routes (``/settings``, ``/stats``, ``/unread/count`` ...) are declared before
``/{notification_id}``, so none of them is shadowed as ``PUT /settings`` was in the origin.
Another user's notification is 404, never revealed.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

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
    page,
)
from plexichat_desktop.server.v1.deps import Api, User
from plexichat_desktop.server.v1.hub import frame
from plexichat_desktop.server.v1.service import ApiV1
from plexichat_desktop.server.v1.store import one, rows, scalar

router = APIRouter(prefix="/notifications", tags=["notifications"])

Kind = Literal["info", "success", "warning", "error", "message", "mention", "system",
               "update", "group_invite"]
Priority = Literal["low", "normal", "high", "urgent"]
METADATA_MAX = 4000
# Types only the server sends: "system" (sender_id null; clients show it as the server's
# word) and "group_invite" (made with its invite by POST /groups/{id}/invite; a sent one
# would point to a join that no invite backs).
SERVER_KINDS = ("system", "group_invite")
SentKind = Literal["info", "success", "warning", "error", "message", "mention", "update"]


def _not_server_kind(value: object) -> object:
    if value in SERVER_KINDS:
        raise ValueError(f"{value!r} is reserved for the server's own notifications")
    return value


Sendable = Annotated[SentKind, BeforeValidator(_not_server_kind)]


def _check_action_url(value: str | None) -> str | None:
    """An absolute http(s) URL or a path on this server: a client renders it as a link,
    and ``javascript:``, ``data:`` or ``file:`` there would run or open whatever the sender
    chose. Control characters and backslashes are refused because browsers strip or
    reinterpret them (``java<TAB>script:``, ``/\\evil.example``)."""
    if value is None:
        return None
    if any(ord(c) < 0x20 or c in "\\\x7f" for c in value) or value != value.strip():
        raise ValueError("must not contain control characters, backslashes or surrounding "
                         "spaces")
    parts = urlsplit(value)
    if parts.scheme:
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise ValueError(f"scheme {parts.scheme!r} is not allowed; use an http(s):// URL "
                             "or a path starting with /")
        return value
    if not value.startswith("/") or value.startswith("//"):
        raise ValueError("must be an absolute http(s):// URL or a path starting with / "
                         "(not //host)")
    return value


ActionUrl = Annotated[str | None, Field(max_length=2000), AfterValidator(_check_action_url)]


class SendBody(Body):
    title: str = Field(min_length=1, max_length=200)
    message: str = Field(min_length=1, max_length=2000)
    type: Sendable = "info"
    recipient_id: str = Field(min_length=1, max_length=64)
    action_url: ActionUrl = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = "normal"


class BroadcastBody(Body):
    title: str = Field(min_length=1, max_length=200)
    message: str = Field(min_length=1, max_length=2000)
    type: Sendable = "info"
    recipient_ids: list[str] = Field(min_length=1, max_length=100)
    action_url: ActionUrl = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = "normal"


class ChangeBody(Body):
    read: bool | None = None
    archived: bool | None = None


class NotificationTypes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    messages: bool = True
    mentions: bool = True
    system: bool = True
    updates: bool = True


class QuietHours(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    end: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class SettingsBody(Body):
    email_notifications: bool = True
    push_notifications: bool = True
    desktop_notifications: bool = True
    sound_enabled: bool = True
    notification_types: NotificationTypes = Field(default_factory=NotificationTypes)
    quiet_hours: QuietHours | None = None


def notification_dict(row: dict[str, Any]) -> dict[str, Any]:
    """``Notification``."""
    return {
        "id": row["id"], "user_id": row["user_id"], "sender_id": row["sender_id"],
        "title": row["title"], "message": row["message"], "type": row["type"],
        "priority": row["priority"], "action_url": row["action_url"],
        "metadata": json.loads(row["metadata"]), "read": row["read_at"] is not None,
        "read_at": iso(row["read_at"]), "archived": bool(row["archived"]),
        "created_at": iso(row["created_at"]),
    }


def insert_notification(conn: sqlite3.Connection, user_id: str, sender_id: str | None, *,
                        title: str, message: str, kind: str, priority: str,
                        action_url: str | None, metadata: dict[str, Any]) -> dict[str, Any]:
    """Store one notification for ``user_id``; returns it in the API shape."""
    notification_id = new_id()
    conn.execute(
        "INSERT INTO notifications (id, user_id, sender_id, title, message, type, priority, "
        "action_url, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (notification_id, user_id, sender_id, title, message, kind, priority, action_url,
         json.dumps(metadata), now()))
    row = one(conn.execute("SELECT * FROM notifications WHERE id = ?", (notification_id,)))
    assert row is not None
    return notification_dict(row)


def _check_metadata(metadata: dict[str, Any]) -> None:
    if len(json.dumps(metadata)) > METADATA_MAX:
        raise invalid("metadata", f"at most {METADATA_MAX} characters of JSON")
    # "security.*" marks the server's own alerts (a new device, a reset token issued):
    # clients show them as such, so no user may send one to another.
    if str(metadata.get("kind", "")).startswith("security."):
        raise invalid("metadata", "metadata.kind 'security.*' is reserved for the "
                                  "server's own security alerts")


def _send_many(conn: sqlite3.Connection, sender: str, recipients: list[str],
               body: SendBody | BroadcastBody) -> list[dict[str, Any]]:
    known = accounts.existing_ids(conn, recipients)
    unknown = [uid for uid in recipients if uid not in known]
    if unknown:
        field = "recipient_id" if isinstance(body, SendBody) else "recipient_ids"
        raise HTTPException(404, f"{field}: unknown user(s) {', '.join(unknown)}")
    return [insert_notification(conn, uid, sender, title=body.title, message=body.message,
                                kind=body.type, priority=body.priority,
                                action_url=body.action_url, metadata=body.metadata)
            for uid in recipients]


def _deliver(api: ApiV1, notes: list[dict[str, Any]]) -> None:
    for note in notes:
        api.hub.to_user(note["user_id"], frame("notification", **note))
        api.emit("notification.created", note, [note["user_id"]])


@router.post("/send", status_code=201)
async def send(body: SendBody, user: User, api: Api) -> dict[str, Any]:
    """Send a notification to one user; returns it."""
    _check_metadata(body.metadata)
    notes = await api.store.write(_send_many, user.id, [body.recipient_id], body)
    _deliver(api, notes)
    return notes[0]


@router.post("/broadcast", status_code=201)
async def broadcast(body: BroadcastBody, user: User, api: Api) -> dict[str, Any]:
    """Send the same notification to several users (all or none: unknown ids are 404)."""
    _check_metadata(body.metadata)
    recipients = list(dict.fromkeys(body.recipient_ids))
    notes = await api.store.write(_send_many, user.id, recipients, body)
    _deliver(api, notes)
    return {"success": True, "message": f"Sent to {len(notes)} user(s)",
            "sent_count": len(notes), "notification_ids": [n["id"] for n in notes],
            "notifications": notes}


def _list(conn: sqlite3.Connection, me: str, unread_only: bool, kind: str | None,
          archived: bool, limit: int, offset: int
          ) -> tuple[list[dict[str, Any]], int, int]:
    where = ["user_id = :me"]
    if not archived:
        where.append("archived = 0")
    if unread_only:
        where.append("read_at IS NULL")
    if kind:
        where.append("type = :kind")
    clause = " AND ".join(where)
    args = {"me": me, "kind": kind, "limit": limit, "offset": offset}
    total = scalar(conn, f"SELECT COUNT(*) FROM notifications WHERE {clause}", args)
    unread = scalar(conn, "SELECT COUNT(*) FROM notifications WHERE user_id = ? AND "
                          "read_at IS NULL AND archived = 0", (me,))
    found = rows(conn.execute(f"SELECT * FROM notifications WHERE {clause} ORDER BY seq DESC "
                              f"LIMIT :limit OFFSET :offset", args))
    return found, total, unread


@router.get("/")
@router.get("", include_in_schema=False)
async def list_notifications(
    user: User, api: Api, unread_only: bool = False, type: Kind | None = None,
    include_archived: bool = False, limit: Annotated[int, limit_query(50, 100)] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The caller's notifications, newest first (archived ones only on request)."""
    found, total, unread = await api.store.read(_list, user.id, unread_only, type,
                                                include_archived, limit, offset)
    return page("notifications", [notification_dict(r) for r in found], total, limit,
                offset, unread_count=unread)


@router.get("/unread/count")
async def unread_count(user: User, api: Api) -> dict[str, Any]:
    count = await api.store.read(
        lambda conn: scalar(conn, "SELECT COUNT(*) FROM notifications WHERE user_id = ? AND "
                                  "read_at IS NULL AND archived = 0", (user.id,)))
    return {"unread_count": count, "user_id": user.id}


def _settings(conn: sqlite3.Connection, me: str) -> dict[str, Any]:
    raw = scalar(conn, "SELECT settings FROM notification_settings WHERE user_id = ?", (me,))
    return SettingsBody.model_validate(json.loads(raw) if raw else {}).model_dump()


@router.get("/settings")
async def get_settings(user: User, api: Api) -> dict[str, Any]:
    """The caller's notification settings (defaults until changed)."""
    return {"user_id": user.id, **await api.store.read(_settings, user.id)}


def _save_settings(conn: sqlite3.Connection, me: str, settings: dict[str, Any]) -> None:
    conn.execute("INSERT INTO notification_settings (user_id, settings) VALUES (?, ?) "
                 "ON CONFLICT (user_id) DO UPDATE SET settings = excluded.settings",
                 (me, json.dumps(settings)))


@router.put("/settings")
async def put_settings(body: SettingsBody, user: User, api: Api) -> dict[str, Any]:
    """Replace the caller's notification settings; returns them."""
    settings = body.model_dump()
    await api.store.write(_save_settings, user.id, settings)
    return {"user_id": user.id, **settings}


@router.get("/stats")
async def stats(user: User, api: Api) -> dict[str, Any]:
    def query(conn: sqlite3.Connection) -> dict[str, Any]:
        totals = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(read_at IS NULL AND archived = 0), 0), "
            "COALESCE(SUM(archived), 0) FROM notifications WHERE user_id = ?",
            (user.id,)).fetchone()
        by_type = {r[0]: r[1] for r in conn.execute(
            "SELECT type, COUNT(*) FROM notifications WHERE user_id = ? GROUP BY type",
            (user.id,))}
        by_priority = {r[0]: r[1] for r in conn.execute(
            "SELECT priority, COUNT(*) FROM notifications WHERE user_id = ? GROUP BY priority",
            (user.id,))}
        return {"total": totals[0], "unread": totals[1], "archived": totals[2],
                "by_type": by_type, "by_priority": by_priority}
    return await api.store.read(query)


@router.get("/system/status")
async def system_status(user: User, api: Api) -> dict[str, Any]:
    total = await api.store.read(lambda c: scalar(c, "SELECT COUNT(*) FROM notifications"))
    return {"service": "notifications", "status": "online", "total_notifications": total,
            "realtime_connections": len(api.hub.connections), "timestamp": iso(now())}


@router.post("/mark-all-read")
async def mark_all_read(user: User, api: Api) -> dict[str, Any]:
    count = await api.store.write(
        lambda conn: conn.execute("UPDATE notifications SET read_at = ? WHERE user_id = ? AND "
                                  "read_at IS NULL", (now(), user.id)).rowcount)
    return done("All notifications marked read", updated_count=count)


@router.post("/test", status_code=201)
async def test(user: User, api: Api) -> dict[str, Any]:
    """Send the caller a test notification."""
    notes = await api.store.write(
        lambda conn: [insert_notification(
            conn, user.id, None, title="Test notification",
            message="Notifications work.", kind="system", priority="low", action_url=None,
            metadata={"test": True})])
    _deliver(api, notes)
    return notes[0]


def _own(conn: sqlite3.Connection, notification_id: str, me: str) -> dict[str, Any] | None:
    return one(conn.execute("SELECT * FROM notifications WHERE id = ? AND user_id = ?",
                            (notification_id, me)))


@router.get("/{notification_id}")
async def get_notification(notification_id: str, user: User, api: Api) -> dict[str, Any]:
    row = await api.store.read(_own, notification_id, user.id)
    return notification_dict(or_404(row, "notification", notification_id))


def _change(conn: sqlite3.Connection, notification_id: str, me: str, body: ChangeBody
            ) -> dict[str, Any] | None:
    row = _own(conn, notification_id, me)
    if row is None:
        return None
    if body.read is not None:
        stamp = (row["read_at"] or now()) if body.read else None
        conn.execute("UPDATE notifications SET read_at = ? WHERE id = ?",
                     (stamp, notification_id))
    if body.archived is not None:
        conn.execute("UPDATE notifications SET archived = ? WHERE id = ?",
                     (int(body.archived), notification_id))
    return _own(conn, notification_id, me)


@router.put("/{notification_id}")
async def change(notification_id: str, body: ChangeBody, user: User, api: Api
                 ) -> dict[str, Any]:
    """Mark read/unread or (un)archive; returns the notification."""
    row = await api.store.write(_change, notification_id, user.id, body)
    return notification_dict(or_404(row, "notification", notification_id))


@router.delete("/{notification_id}")
async def delete(notification_id: str, user: User, api: Api) -> dict[str, Any]:
    removed = await api.store.write(
        lambda conn: conn.execute("DELETE FROM notifications WHERE id = ? AND user_id = ?",
                                  (notification_id, user.id)).rowcount)
    if not removed:
        raise not_found("notification", notification_id)
    return done("Notification deleted", notification_id=notification_id)
