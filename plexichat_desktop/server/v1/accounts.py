"""User rows and their public shapes, shared by the auth, users and other routers."""

from __future__ import annotations

import sqlite3
import unicodedata
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException

from plexichat_desktop.server.v1.common import iso, now
from plexichat_desktop.server.v1.hub import RealtimeHub
from plexichat_desktop.server.v1.store import one

if TYPE_CHECKING:
    from plexichat_desktop.server.v1.service import ApiV1

PUBLIC_COLUMNS = "id, username, display_name, created_at, is_active"


def get_user(conn: sqlite3.Connection, user_id: str) -> dict[str, Any] | None:
    """The full row of an active user, or None."""
    return one(conn.execute("SELECT * FROM users WHERE id = ? AND is_active = 1", (user_id,)))


def find_login(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    """The user whose username or email is ``name`` (case-insensitive, also beyond
    ASCII: see ApiStore's unicode_lower)."""
    # The exact spelling first: two accounts made before emails were folded as NFC can
    # both match a folded one (the other's owner was then sent to the wrong account).
    return one(conn.execute("SELECT * FROM users WHERE username = ? OR email = ? "
                            "OR unicode_lower(email) = ? "
                            "ORDER BY (username = ?) DESC, (email = ?) DESC",
                            (name, name, _fold(name), name, name)))


def email_taken(conn: sqlite3.Connection, email: str, but: str | None = None) -> bool:
    """Whether another account (not ``but``) has ``email``, ignoring case, also beyond
    ASCII (the column's NOCASE folds ASCII only)."""
    return conn.execute(
        "SELECT 1 FROM users WHERE (email = ? OR unicode_lower(email) = ?) AND id IS NOT ?",
        (email, _fold(email), but)).fetchone() is not None


def _fold(text: str) -> str:
    """As the store's unicode_lower: NFC, then lower case."""
    return unicodedata.normalize("NFC", text).lower()


def existing_ids(conn: sqlite3.Connection, user_ids: list[str]) -> set[str]:
    """Which of ``user_ids`` are active users."""
    if not user_ids:
        return set()
    marks = ", ".join("?" * len(user_ids))
    return {row[0] for row in conn.execute(
        f"SELECT id FROM users WHERE is_active = 1 AND id IN ({marks})", user_ids)}


def profile(row: dict[str, Any], hub: RealtimeHub | None, own: bool) -> dict[str, Any]:
    """``UserProfile``: the full shape for the owner; email and login times only for them."""
    body = {
        "id": row["id"],
        "username": row["username"],
        "email": row["email"] if own else None,
        "display_name": row["display_name"] or row["username"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "last_login": iso(row["last_login"]) if own else None,
        "is_active": bool(row["is_active"]),
        "is_admin": bool(row["is_admin"]),
        "is_online": hub.is_online(row["id"]) if hub else False,
    }
    if hub is not None:
        body["presence"] = hub.status_of(row["id"])
    return body


async def own_profile(api: ApiV1, user_id: str) -> dict[str, Any]:
    """The caller's own ``UserProfile`` (``GET /auth/me``, ``GET /users/me``); 404 when the
    account is gone."""
    row = await api.store.read(get_user, user_id)
    if row is None:
        raise HTTPException(404, "the account no longer exists")
    return profile(row, api.hub, own=True)


def brief(row: dict[str, Any], hub: RealtimeHub | None = None) -> dict[str, Any]:
    """The short shape of a user inside lists."""
    return {
        "id": row["id"],
        "username": row["username"],
        "display_name": row["display_name"] or row["username"],
        "created_at": iso(row["created_at"]),
        "is_active": bool(row["is_active"]),
        "is_online": hub.is_online(row["id"]) if hub else False,
    }


def record_activity(conn: sqlite3.Connection, user_id: str | None, kind: str) -> None:
    """Log one event (login, logout, register, ...) for analytics."""
    conn.execute("INSERT INTO activity (user_id, kind, created_at) VALUES (?, ?, ?)",
                 (user_id, kind, now()))
