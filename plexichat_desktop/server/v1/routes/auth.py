"""``/auth``: register, login, refresh, logout, me, status."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from plexichat_desktop.server.v1 import accounts
from plexichat_desktop.server.v1.auth import (
    IssuedTokens,
    Rotation,
    create_session,
    hash_password,
    refresh_ttl,
    rotate_session,
    verify_password,
)
from plexichat_desktop.server.v1.common import Body, conflict, done, invalid, iso, new_id, now
from plexichat_desktop.server.v1.deps import Api, User, client_address, unauthorized
from plexichat_desktop.server.v1.store import scalar

router = APIRouter(prefix="/auth", tags=["auth"])

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
USERNAME = r"^[a-zA-Z0-9_-]+$"
SPECIALS = re.compile(r"[^A-Za-z0-9]")
DEVICE_INFO_MAX = 2000


class RegisterBody(Body):
    username: str = Field(min_length=3, max_length=50, pattern=USERNAME)
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=256)
    display_name: str | None = Field(None, max_length=100)
    first_name: str | None = Field(None, max_length=100)
    last_name: str | None = Field(None, max_length=100)
    invite_code: str | None = Field(None, max_length=200,
                                    description="Accepted for origin clients; not used.")
    terms_accepted: bool = Field(True, description="Optional; false is refused.")


class LoginBody(Body):
    username: str = Field(min_length=1, max_length=254, description="Username or email.")
    password: str = Field(min_length=1, max_length=256)
    mfa_code: str | None = Field(None, max_length=20,
                                 description="Accepted for origin clients; no MFA here.")
    remember_me: bool = False
    device_info: dict[str, Any] = Field(default_factory=dict)
    device_token: str | None = Field(
        None, max_length=200, description="The device_token of an earlier successful login "
                                          "of this account: such a client keeps its own "
                                          "login rate limit.")


class RefreshBody(Body):
    refresh_token: str = Field(min_length=1, max_length=512)


def password_problem(password: str, min_length: int) -> str | None:
    """Why ``password`` is too weak (version B's policy), or None."""
    missing = [name for name, ok in (
        ("an upper-case letter", any(c.isupper() for c in password)),
        ("a lower-case letter", any(c.islower() for c in password)),
        ("a digit", any(c.isdigit() for c in password)),
        ("a special character", bool(SPECIALS.search(password))),
    ) if not ok]
    if len(password) < min_length:
        missing.insert(0, f"at least {min_length} characters")
    return f"password needs {', '.join(missing)}" if missing else None


def _register(conn: sqlite3.Connection, body: RegisterBody, password_hash: str,
              owner: bool) -> dict[str, Any]:
    if scalar(conn, "SELECT 1 FROM users WHERE username = ?", (body.username,)):
        raise conflict(f"username '{body.username}' already exists")
    if scalar(conn, "SELECT 1 FROM users WHERE email = ?", (body.email,)):
        raise conflict(f"email '{body.email}' is already registered")
    admin = owner and not scalar(conn, "SELECT 1 FROM users WHERE is_admin = 1 LIMIT 1")
    current = now()
    user_id = new_id()
    conn.execute(
        "INSERT INTO users (id, username, email, password_hash, display_name, first_name, "
        "last_name, is_active, is_admin, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
        (user_id, body.username, body.email, password_hash, body.display_name,
         body.first_name, body.last_name, int(admin), current, current))
    accounts.record_activity(conn, user_id, "register")
    row = accounts.get_user(conn, user_id)
    assert row is not None
    return row


@router.post("/register", status_code=201)
async def register(body: RegisterBody, request: Request, api: Api) -> dict[str, Any]:
    """Create an account. The administrator is the first account registered by the
    install's owner (the request carries the app token: ``X-PlexiChat-App-Token`` or the
    desktop window's cookie); anyone else registers an ordinary account."""
    api.register_limiter.check(client_address(request))
    if not body.terms_accepted:
        raise invalid("terms_accepted", "the terms must be accepted", False)
    if not EMAIL.match(body.email):
        raise invalid("email", "not a valid email address", body.email)
    if problem := password_problem(body.password, api.settings.password_min_length):
        raise invalid("password", problem)
    password_hash = await asyncio.to_thread(hash_password, body.password,
                                            api.settings.scrypt_cost)
    try:
        row = await api.store.write(_register, body, password_hash,
                                    api.is_owner(request.headers))
    except sqlite3.IntegrityError:  # a concurrent registration won the race
        raise conflict(f"username '{body.username}' or email '{body.email}' already "
                       f"exists") from None
    return {"success": True, "message": "User registered successfully", "user_id": row["id"],
            "username": row["username"], "user": accounts.profile(row, api.hub, own=True)}


def _start_session(conn: sqlite3.Connection, user_id: str, access_ttl: float,
                   refresh_ttl_s: float, remember_me: bool,
                   device: dict[str, Any]) -> IssuedTokens:
    tokens = create_session(conn, user_id, access_ttl, refresh_ttl_s, remember_me, device)
    conn.execute("UPDATE users SET last_login = ? WHERE id = ?", (now(), user_id))
    accounts.record_activity(conn, user_id, "login")
    return tokens


def _failed_login(conn: sqlite3.Connection, user_id: str | None) -> None:
    accounts.record_activity(conn, user_id, "login_failed")


@router.post("/login")
async def login(body: LoginBody, request: Request, api: Api) -> dict[str, Any]:
    """Exchange a username (or email) and password for an access and a refresh token.

    Rate limit: one bucket per account whatever name (username or email) is used; every
    local process shares 127.0.0.1, so the client address is no key. A client that
    presents the ``device_token`` of an earlier successful login of the account (or the
    install's app token) has a bucket of its own, so failures of others cannot lock it out.
    """
    if len(json.dumps(body.device_info)) > DEVICE_INFO_MAX:
        raise invalid("device_info", f"at most {DEVICE_INFO_MAX} characters of JSON")
    row = await api.store.read(accounts.find_login, body.username)
    bucket = f"user:{row['id']}" if row else f"name:{body.username.lower()}"
    device = api.login_devices.bucket(body.device_token, row["id"]) if row else None
    if device is not None:
        bucket += "|" + device
    elif api.is_owner(request.headers):
        bucket += "|owner"
    api.login_limiter.check(bucket)
    usable = row is not None and bool(row["is_active"])
    ok = await asyncio.to_thread(verify_password, body.password,
                                 row["password_hash"] if usable and row else None,
                                 api.settings.scrypt_cost)
    if not ok or row is None:
        await api.store.write(_failed_login, row["id"] if row else None)
        raise unauthorized("invalid credentials", error="invalid_grant")
    tokens = await api.store.write(
        _start_session, row["id"], api.settings.access_token_minutes * 60,
        refresh_ttl(body.remember_me, api.settings.refresh_token_days), body.remember_me,
        body.device_info)
    api.emit("user.login", {"user_id": row["id"], "username": row["username"],
                            "session_id": tokens.session_id, "at": iso(now())}, [row["id"]])
    device_token = (body.device_token if device is not None
                    else api.login_devices.issue(row["id"]))
    return {**tokens.body(row), "device_token": device_token}


@router.post("/refresh")
async def refresh(body: RefreshBody, api: Api) -> dict[str, Any]:
    """Rotate a refresh token: a new access and refresh token; the old ones stop working."""
    result: Rotation = await api.store.write(
        rotate_session, body.refresh_token, api.settings.access_token_minutes * 60,
        api.settings.refresh_token_days)
    if result.tokens is None or result.user is None:
        raise unauthorized(result.error or "invalid refresh token", error="invalid_grant")
    return result.tokens.body(result.user)


def _logout(conn: sqlite3.Connection, user_id: str, session_id: str,
            everywhere: bool) -> list[str]:
    if everywhere:
        ended = [r[0] for r in conn.execute("SELECT id FROM sessions WHERE user_id = ?",
                                            (user_id,))]
        conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
    else:
        ended = [session_id]
        conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
    accounts.record_activity(conn, user_id, "logout")
    return ended


@router.post("/logout")
async def logout(user: User, api: Api, all_sessions: bool = False) -> dict[str, Any]:
    """End this session (or every session of the user with ``?all_sessions=true``)."""
    ended = await api.store.write(_logout, user.id, user.session_id, all_sessions)
    await api.hub.close_sessions(ended)
    api.emit("user.logout", {"user_id": user.id, "username": user.username,
                             "sessions_ended": len(ended), "at": iso(now())}, [user.id])
    return done("Logged out successfully", sessions_ended=len(ended))


@router.get("/me")
async def me(user: User, api: Api) -> dict[str, Any]:
    """The caller's profile (same as ``GET /users/me``)."""
    return await accounts.own_profile(api, user.id)


def _status(conn: sqlite3.Connection, at: float) -> tuple[int, int]:
    return (scalar(conn, "SELECT COUNT(*) FROM users WHERE is_active = 1"),
            scalar(conn, "SELECT COUNT(*) FROM sessions WHERE refresh_expires > ?", (at,)))


@router.get("/status")
async def status(api: Api) -> dict[str, Any]:
    """Service status (no auth)."""
    users, sessions = await api.store.read(_status, now())
    return {"service": "authentication", "status": "online", "total_users": users,
            "active_sessions": sessions, "timestamp": iso(now())}
