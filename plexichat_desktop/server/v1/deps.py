"""FastAPI dependencies of the v1 routes: the service object and the current user."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from plexichat_desktop.server.v1.auth import digest
from plexichat_desktop.server.v1.common import now
from plexichat_desktop.server.v1.service import ApiV1

# How stale last_used_at may get before a request refreshes it: a write per request would
# serialise every reader behind the writer for a figure nobody needs to the second.
LAST_USED_GRANULARITY_S = 60.0

_bearer = HTTPBearer(auto_error=False, description="An access token from /api/v1/auth/login")


def get_api(request: Request) -> ApiV1:
    """The :class:`ApiV1` service serving this request."""
    return request.app.state.api


Api = Annotated[ApiV1, Depends(get_api)]


@dataclass(frozen=True)
class CurrentUser:
    """The authenticated caller: the account and the session its token belongs to."""

    id: str
    username: str
    is_admin: bool
    session_id: str


def unauthorized(detail: str, error: str = "invalid_token") -> HTTPException:
    """401 with the RFC 6750 challenge a client can act on."""
    return HTTPException(401, detail, headers={
        "WWW-Authenticate": f'Bearer realm="plexichat-v1", error="{error}"'})


def _lookup(conn: sqlite3.Connection, token_hash: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT s.id AS session_id, s.access_expires, s.last_used_at, u.id, u.username, "
        "u.is_admin, u.is_active FROM sessions s JOIN users u ON u.id = s.user_id "
        "WHERE s.access_hash = ?", (token_hash,)).fetchone()
    return None if row is None else dict(row)


def _touch(conn: sqlite3.Connection, session_id: str, at: float) -> None:
    conn.execute("UPDATE sessions SET last_used_at = ? WHERE id = ?", (at, session_id))


async def authenticate(api: ApiV1, token: str) -> CurrentUser:
    """Resolve an access token to its user, or raise 401 saying what is wrong with it."""
    row = await api.store.read(_lookup, digest(token))
    if row is None:
        raise unauthorized("invalid access token (unknown, revoked or replaced by a refresh)")
    current = now()
    if row["access_expires"] <= current:
        raise unauthorized("access token expired; get a new one from /api/v1/auth/refresh")
    if not row["is_active"]:
        raise unauthorized("the account is deactivated")
    if row["last_used_at"] < current - LAST_USED_GRANULARITY_S:
        await api.store.write(_touch, row["session_id"], current)
    return CurrentUser(row["id"], row["username"], bool(row["is_admin"]), row["session_id"])


async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> CurrentUser:
    """The authenticated caller; 401 without a valid ``Authorization: Bearer`` token, 429
    when the per-user request limit is exhausted."""
    if credentials is None:
        raise unauthorized("not authenticated: send 'Authorization: Bearer <access_token>' "
                           "with a token from /api/v1/auth/login", error="invalid_request")
    api = get_api(request)
    user = await authenticate(api, credentials.credentials)
    api.request_limiter.check(user.id)
    return user


User = Annotated[CurrentUser, Depends(current_user)]


async def admin_user(user: User) -> CurrentUser:
    """The caller, who must be an administrator (403 otherwise)."""
    if not user.is_admin:
        raise HTTPException(403, "this needs the administrator account (the first account "
                                 "the install's owner registered, with the app token)")
    return user


Admin = Annotated[CurrentUser, Depends(admin_user)]


def client_address(request: Request) -> str:
    """The peer address, the key of the anonymous rate limits."""
    return request.client.host if request.client else "unknown"
