"""``/auth``: register, login, refresh, logout, me, status.

Login is one step for an account without 2FA and two for one with it: the password
answers ``{requires_mfa: true, mfa_token}`` and ``POST /auth/login-2fa`` (in
:mod:`account_security`) completes it with a code. Both end in :func:`finish_login`, which
starts the session, writes the security log and notices new devices.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import weakref
from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from plexichat_desktop.server.v1 import accounts, mfa
from plexichat_desktop.server.v1.auth import (
    IssuedTokens,
    Rotation,
    create_session,
    digest,
    hash_password,
    refresh_ttl,
    rotate_session,
    verify_password,
)
from plexichat_desktop.server.v1.common import (
    Body,
    PersonName,
    conflict,
    done,
    invalid,
    iso,
    new_id,
    now,
)
from plexichat_desktop.server.v1.deps import Api, User, client_address, unauthorized
from plexichat_desktop.server.v1.hub import frame
from plexichat_desktop.server.v1.routes.notifications import insert_notification
from plexichat_desktop.server.v1.service import ApiV1
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
    display_name: PersonName = Field(None, max_length=100)
    first_name: PersonName = Field(None, max_length=100)
    last_name: PersonName = Field(None, max_length=100)
    invite_code: str | None = Field(None, max_length=200,
                                    description="Accepted for origin clients; not used.")
    terms_accepted: bool = Field(True, description="Optional; false is refused.")


class LoginBody(Body):
    username: str = Field(min_length=1, max_length=254, description="Username or email.")
    password: str = Field(min_length=1, max_length=256)
    mfa_code: str | None = Field(None, max_length=20,
                                 description="A current 2FA code: an account with 2FA logs "
                                             "in in one step (without it the answer asks "
                                             "for the code with requires_mfa).")
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
    if accounts.email_taken(conn, body.email):
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
    owner = api.is_owner(request.headers)
    if not owner:
        # The install's owner is never limited: any local process could otherwise use up
        # the budget (with refused requests) and lock the owner out of registering.
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
        row = await api.store.write(_register, body, password_hash, owner)
    except sqlite3.IntegrityError:  # a concurrent registration won the race
        raise conflict(f"username '{body.username}' or email '{body.email}' already "
                       f"exists") from None
    return {"success": True, "message": "User registered successfully", "user_id": row["id"],
            "username": row["username"], "user": accounts.profile(row, api.hub, own=True)}


_failure_limiters: weakref.WeakKeyDictionary[ApiV1, mfa.FailureLimiter] = (
    weakref.WeakKeyDictionary())


def mfa_limiter(api: ApiV1) -> mfa.FailureLimiter:
    """The failure limit of 2FA codes, recovery codes, reset tokens and the passwords the
    security routes ask for, one per server (keyed by account)."""
    limiter = _failure_limiters.get(api)
    if limiter is None:
        limiter = _failure_limiters[api] = mfa.FailureLimiter("verification")
    return limiter


def _start_session(conn: sqlite3.Connection, user_id: str, access_ttl: float,
                   refresh_ttl_s: float, remember_me: bool, device: dict[str, Any],
                   user_agent: str | None, method: str
                   ) -> tuple[IssuedTokens, dict[str, Any] | None]:
    """The session of a successful login, its security-log entry and, when the device is
    new for the account, the notification that says so."""
    tokens = create_session(conn, user_id, access_ttl, refresh_ttl_s, remember_me, device)
    conn.execute("UPDATE sessions SET user_agent = ? WHERE id = ?",
                 ((user_agent or "")[:300] or None, tokens.session_id))
    conn.execute("UPDATE users SET last_login = ? WHERE id = ?", (now(), user_id))
    accounts.record_activity(conn, user_id, "login")
    new_device = mfa.remember_device(conn, user_id, user_agent, device)
    mfa.record_event(conn, user_id, "login", session_id=tokens.session_id,
                     user_agent=user_agent, device=device,
                     detail={"method": method, "new_device": new_device})
    note = None
    if new_device:
        label = mfa.device_label(user_agent, device)
        mfa.record_event(conn, user_id, "new_device", session_id=tokens.session_id,
                         user_agent=user_agent, device=device, detail={"label": label})
        note = insert_notification(
            conn, user_id, None, title="New sign-in to your account",
            message=f"Your account was signed in from a new device: {label}. If this was "
                    "not you, change your password and end that session.",
            kind="warning", priority="high", action_url=None,
            metadata={"session_id": tokens.session_id, "device": label,
                      "kind": "security.new_device"})
    return tokens, note


def _failed_login(conn: sqlite3.Connection, user_id: str | None, reason: str = "password",
                  user_agent: str | None = None, device: dict[str, Any] | None = None
                  ) -> None:
    accounts.record_activity(conn, user_id, "login_failed")
    if user_id is not None:
        mfa.record_event(conn, user_id, "login_failed", user_agent=user_agent, device=device,
                         detail={"reason": reason})


async def finish_login(api: ApiV1, row: dict[str, Any], remember_me: bool,
                       device: dict[str, Any], user_agent: str | None, method: str,
                       device_token: str | None = None) -> dict[str, Any]:
    """Start the session of a login that passed every step; the ``TokenResponse`` plus
    ``device_token``."""
    tokens, note = await api.store.write(
        _start_session, row["id"], api.settings.access_token_minutes * 60,
        refresh_ttl(remember_me, api.settings.refresh_token_days), remember_me, device,
        user_agent, method)
    if note is not None:
        api.hub.to_user(row["id"], frame("notification", **note))
        api.emit("notification.created", note, [row["id"]])
    api.emit("user.login", {"user_id": row["id"], "username": row["username"],
                            "session_id": tokens.session_id, "at": iso(now())}, [row["id"]])
    return {**tokens.body(row),
            "device_token": device_token or api.login_devices.issue(row["id"])}


def _challenge(conn: sqlite3.Connection, user_id: str, remember_me: bool,
               device: dict[str, Any], user_agent: str | None) -> tuple[str, float]:
    """A short-lived ticket for the second step of a login (only its digest is kept)."""
    token = mfa.new_challenge_token()
    current = now()
    conn.execute("DELETE FROM mfa_challenges WHERE expires_at <= ?", (current,))
    conn.execute(
        "INSERT INTO mfa_challenges (token_hash, user_id, remember_me, device, user_agent, "
        "expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (digest(token), user_id, int(remember_me), json.dumps(device),
         (user_agent or "")[:300] or None, current + mfa.MFA_TOKEN_TTL, current))
    return token, current + mfa.MFA_TOKEN_TTL


def mfa_required_body(row: dict[str, Any], token: str, expires: float) -> dict[str, Any]:
    """The answer of a correct password for an account with 2FA."""
    return {"requires_mfa": True, "mfa_token": token, "token_type": "mfa",
            "mfa_expires_in": round(expires - now()), "mfa_expires_at": iso(expires),
            "methods": ["totp", "recovery_code"], "user_id": row["id"],
            "username": row["username"],
            "message": "2FA is on for this account: send a code from the authenticator app "
                       "(or a recovery code) with this mfa_token to /auth/login-2fa"}


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
    user_agent = request.headers.get("user-agent")
    if not ok or row is None:
        await api.store.write(_failed_login, row["id"] if row else None, "password",
                              user_agent, body.device_info)
        raise unauthorized("invalid credentials", error="invalid_grant")
    device_token = body.device_token if device is not None else None
    if await api.store.read(mfa.mfa_enabled, row["id"]):
        if not body.mfa_code:
            token, expires = await api.store.write(_challenge, row["id"], body.remember_me,
                                                   body.device_info, user_agent)
            return mfa_required_body(row, token, expires)
        # One-step login with the code in the body (version B's mfa_code).
        with mfa_limiter(api).attempt(row["id"]) as attempt:
            verified = await api.store.write(mfa.verify_totp, row["id"], body.mfa_code)
            if not verified:
                attempt.fail()
        if not verified:
            await api.store.write(_failed_login, row["id"], "2fa_code", user_agent,
                                  body.device_info)
            raise unauthorized("mfa_code: invalid or already used 2FA code",
                               error="invalid_grant")
        return await finish_login(api, row, body.remember_me, body.device_info, user_agent,
                                  "totp", device_token)
    return await finish_login(api, row, body.remember_me, body.device_info, user_agent,
                              "password", device_token)


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
    mfa.record_event(conn, user_id, "logout", session_id=session_id,
                     detail={"all_sessions": everywhere})
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
