"""``/users``: profiles, search, listing, stats, account deletion."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from plexichat_desktop.server.v1 import accounts, mfa
from plexichat_desktop.server.v1.common import (
    Body,
    Offset,
    PersonName,
    conflict,
    done,
    invalid,
    iso,
    like_pattern,
    limit_query,
    now,
    or_404,
    page,
)
from plexichat_desktop.server.v1.deps import Api, User
from plexichat_desktop.server.v1.routes.account_security import (
    _check_password,
    _one_of,
    _recovery_digest,
    _wrong,
)
from plexichat_desktop.server.v1.routes.auth import EMAIL, mfa_limiter
from plexichat_desktop.server.v1.store import rows, scalar

router = APIRouter(prefix="/users", tags=["users"])


class ProfileUpdate(Body):
    display_name: PersonName = Field(None, max_length=100)
    email: str | None = Field(None, min_length=3, max_length=254)
    first_name: PersonName = Field(None, max_length=100)
    last_name: PersonName = Field(None, max_length=100)


@router.get("/me")
async def get_me(user: User, api: Api) -> dict[str, Any]:
    """The caller's full profile."""
    return await accounts.own_profile(api, user.id)


def _update(conn: sqlite3.Connection, user_id: str, changes: dict[str, Any]
            ) -> dict[str, Any]:
    email = changes.get("email")
    if email is not None and accounts.email_taken(conn, email, but=user_id):
        raise conflict(f"email '{email}' is already taken")
    if changes:
        columns = ", ".join(f"{name} = ?" for name in changes)
        conn.execute(f"UPDATE users SET {columns}, updated_at = ? WHERE id = ?",
                     (*changes.values(), now(), user_id))
    row = accounts.get_user(conn, user_id)
    assert row is not None
    return row


@router.put("/me")
async def update_me(body: ProfileUpdate, user: User, api: Api) -> dict[str, Any]:
    """Change display name, email, first or last name; returns the updated profile."""
    changes = body.model_dump(exclude_unset=True)
    if "email" in changes:
        if changes["email"] is None:
            raise invalid("email", "email cannot be removed")
        if not EMAIL.match(changes["email"]):
            raise invalid("email", "not a valid email address", changes["email"])
    try:
        row = await api.store.write(_update, user.id, changes)
    except sqlite3.IntegrityError:
        raise conflict(f"email '{changes.get('email')}' is already taken") from None
    return accounts.profile(row, api.hub, own=True)


class DeleteMeBody(Body):
    password: str | None = Field(None, max_length=256,
                                 description="The account's current password (required).")
    code: str | None = Field(None, max_length=20,
                             description="With 2FA on: a current 6-digit code...")
    recovery_code: str | None = Field(None, max_length=40,
                                      description="...or one of the recovery codes.")


def _delete(conn: sqlite3.Connection, user_id: str, code: str | None,
            recovery_code: str | None, recovery_hash: str
            ) -> tuple[list[str], list[str], list[str]] | None:
    """Check the second factor (when 2FA is on) and delete, in one transaction; None when
    the code or recovery code is wrong."""
    if mfa.mfa_enabled(conn, user_id):
        if not code and not recovery_code:  # 2FA was turned on meanwhile
            raise invalid("code", "2FA is on for this account: send a current code or a "
                                  "recovery code")
        if not mfa.second_factor_ok(conn, user_id, code, recovery_code, recovery_hash):
            return None
    sessions = [r[0] for r in conn.execute("SELECT id FROM sessions WHERE user_id = ?",
                                           (user_id,))]
    files = [r[0] for r in conn.execute("SELECT id FROM files WHERE owner_id = ?", (user_id,))]
    groups = [r[0] for r in conn.execute("SELECT id FROM groups WHERE owner_id = ?",
                                         (user_id,))]
    # Cascades remove sessions, messages, files, shares, memberships, owned groups,
    # notifications and webhooks.
    conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
    accounts.record_activity(conn, None, "account_deleted")
    return sessions, files, groups


@router.delete("/me")
async def delete_me(user: User, api: Api, body: DeleteMeBody | None = None
                    ) -> dict[str, Any]:
    """Delete the caller's account and everything it owns (messages, files, groups...).

    Needs the current ``password`` and, when 2FA is on, exactly one of ``code`` and
    ``recovery_code``: a stolen access token alone cannot destroy the account. 422 names
    the missing field; a wrong one is 401 and counts against the failure limit (429)."""
    if body is None or not body.password:
        raise invalid("password", "the current password is required to delete the account")
    with mfa_limiter(api).attempt(user.id) as attempt:
        await _check_password(api, user.id, body.password, attempt)
        two_factor = await api.store.read(mfa.mfa_enabled, user.id)
        if two_factor:
            _one_of(("code", body.code), ("recovery_code", body.recovery_code))
        code = body.code if two_factor else None
        recovery = body.recovery_code if two_factor else None
        recovery_hash = await _recovery_digest(recovery, user.id)
        deleted = await api.store.write(_delete, user.id, code, recovery, recovery_hash)
        if deleted is None:
            attempt.fail()
    if deleted is None:
        raise _wrong(f"{'code' if code else 'recovery_code'}: invalid or already used")
    sessions, files, groups = deleted
    await api.hub.close_sessions(sessions, reason="account deleted")
    for group_id in groups:  # its groups went with the account: so do their rooms
        api.hub.evict(group_id, reason="the group was deleted")

    def unlink_all() -> None:
        for file_id in files:
            with contextlib.suppress(FileNotFoundError):
                api.file_path(file_id).unlink()

    await asyncio.to_thread(unlink_all)
    return done("Account deleted", user_id=user.id, files_deleted=len(files))


def _search(conn: sqlite3.Connection, query: str, limit: int, offset: int
            ) -> tuple[list[dict[str, Any]], int]:
    pattern = like_pattern(query)
    where = ("is_active = 1 AND (username LIKE ? ESCAPE '\\' OR display_name LIKE ? "
             "ESCAPE '\\')")
    total = scalar(conn, f"SELECT COUNT(*) FROM users WHERE {where}", (pattern, pattern))
    # Exact and prefix matches first, then alphabetical.
    found = rows(conn.execute(
        f"SELECT {accounts.PUBLIC_COLUMNS} FROM users WHERE {where} ORDER BY "
        "CASE WHEN username = ? COLLATE NOCASE THEN 0 "
        "WHEN username LIKE ? ESCAPE '\\' THEN 1 ELSE 2 END, username LIMIT ? OFFSET ?",
        (pattern, pattern, query, pattern[1:], limit, offset)))
    return found, total


@router.get("/search")
async def search_users(
    user: User, api: Api,
    query: Annotated[str, Query(min_length=1, max_length=100)],
    limit: Annotated[int, limit_query(10, 50)] = 10, offset: Offset = 0,
) -> dict[str, Any]:
    """Users whose username or display name contains ``query``."""
    found, total = await api.store.read(_search, query.strip(), limit, offset)
    return page("users", [accounts.brief(r, api.hub) for r in found], total, limit, offset,
                query=query)


def _stats(conn: sqlite3.Connection, since: float) -> tuple[int, int]:
    return (scalar(conn, "SELECT COUNT(*) FROM users WHERE is_active = 1"),
            scalar(conn, "SELECT COUNT(DISTINCT user_id) FROM sessions "
                         "WHERE last_used_at >= ?", (since,)))


@router.get("/stats/summary")
async def stats(user: User, api: Api) -> dict[str, Any]:
    """How many users there are, were active in the last 24 h and are connected now."""
    total, active = await api.store.read(_stats, now() - 86_400)
    return {"total_users": total, "active_users": active,
            "online_users": len(api.hub.by_user), "timestamp": iso(now())}


def _list(conn: sqlite3.Connection, limit: int, offset: int
          ) -> tuple[list[dict[str, Any]], int]:
    total = scalar(conn, "SELECT COUNT(*) FROM users WHERE is_active = 1")
    found = rows(conn.execute(
        f"SELECT {accounts.PUBLIC_COLUMNS} FROM users WHERE is_active = 1 "
        "ORDER BY created_at, username LIMIT ? OFFSET ?", (limit, offset)))
    return found, total


@router.get("/")
@router.get("", include_in_schema=False)
async def list_users(user: User, api: Api, limit: Annotated[int, limit_query(20, 100)] = 20,
                     offset: Offset = 0) -> dict[str, Any]:
    """Every active user, oldest account first."""
    found, total = await api.store.read(_list, limit, offset)
    return page("users", [accounts.brief(r, api.hub) for r in found], total, limit, offset)


@router.get("/{user_id}")
async def get_user(user_id: str, user: User, api: Api) -> dict[str, Any]:
    """Another user's profile (email and last login only for oneself)."""
    row = or_404(await api.store.read(accounts.get_user, user_id), "user", user_id)
    return accounts.profile(row, api.hub, own=row["id"] == user.id)
