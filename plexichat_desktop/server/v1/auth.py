"""Passwords and tokens of the v1 API.

Passwords: scrypt (memory-hard, in the standard library) with a random 16-byte salt per
password. The stored string carries its own parameters,
``scrypt$<log2 N>$<r>$<p>$<salt b64>$<hash b64>``, so raising the cost later never breaks
existing accounts.

Tokens are opaque random strings (``pxa_`` access, ``pxr_`` refresh, 256 bits each). The
database keeps only their SHA-256 digests, so a copy of it (a backup, say) yields no usable
token. A session holds one access and one refresh token; refreshing replaces both (rotation),
and presenting any refresh token the session already rotated out revokes the session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any

from plexichat_desktop.server.v1.common import iso, new_id, now

ACCESS_PREFIX = "pxa_"
REFRESH_PREFIX = "pxr_"
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32
# A fixed, valid hash to verify against when the username is unknown, so a failed login
# takes the same time whether or not the account exists.
_DUMMY_SALT = b"plexichat-dummy!"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    n = 1 << log_n
    # maxmem must cover 128 * N * r bytes plus slack, or OpenSSL refuses large N.
    # surrogatepass: a password with a lone surrogate (JSON allows "\ud800") is hashed
    # like any other instead of failing with a UnicodeEncodeError (a 500).
    return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r,
                          p=p,
                          maxmem=132 * n * r * p + (1 << 20), dklen=_KEY_BYTES)


def hash_password(password: str, cost: int) -> str:
    """A salted scrypt hash of ``password`` with N = 2**cost, in the self-describing format."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, cost, SCRYPT_R, SCRYPT_P)
    return f"scrypt${cost}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str | None, cost: int) -> bool:
    """True when ``password`` matches ``stored``; with ``stored=None`` it burns the same
    time as a real check at ``cost`` and returns False."""
    if stored is None:
        _scrypt(password, _DUMMY_SALT, cost, SCRYPT_R, SCRYPT_P)
        return False
    try:
        scheme, log_n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        actual = _scrypt(password, base64.b64decode(salt), int(log_n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(expected, actual)


def digest(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored. ``surrogatepass``: JSON can
    carry lone surrogates (``"\\ud800"``), which strict UTF-8 refuses with an error (a
    500); such a string is simply no valid token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class IssuedTokens:
    """A session's fresh token pair, returned to the client exactly once."""

    session_id: str
    access_token: str
    refresh_token: str
    access_expires: float
    refresh_expires: float
    issued_at: float
    remember_me: bool = True  # as the login asked: a client keeps it across restarts

    def body(self, user: dict[str, Any]) -> dict[str, Any]:
        """The login/refresh response (version B's TokenResponse plus expiry times).
        ``expires_in`` is the lifetime as issued (RFC 6749), not what is left of it once
        the answer is written: a slow commit does not make a 3600 s token a 3599 s one."""
        current = self.issued_at
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": max(0, round(self.access_expires - current)),
            "expires_at": iso(self.access_expires),
            "refresh_expires_in": max(0, round(self.refresh_expires - current)),
            "refresh_expires_at": iso(self.refresh_expires),
            "user_id": user["id"],
            "username": user["username"],
            "requires_mfa": False,
            "session_id": self.session_id,
            "permissions": permissions(user),
            "remember_me": self.remember_me,
        }


def permissions(user: dict[str, Any]) -> list[str]:
    """The permission names of a user (``admin`` for the first account of the server)."""
    return ["user", "admin"] if user.get("is_admin") else ["user"]


def refresh_ttl(remember_me: bool, refresh_days: float) -> float:
    """Seconds a refresh token lives: the configured days with remember_me, else <= 1 day."""
    days = refresh_days if remember_me else min(1.0, refresh_days)
    return days * 86_400


def create_session(conn: sqlite3.Connection, user_id: str, access_ttl: float,
                   refresh_ttl_s: float, remember_me: bool,
                   device: dict[str, Any] | None) -> IssuedTokens:
    """Insert a new session for ``user_id`` and return its tokens."""
    current = now()
    tokens = IssuedTokens(new_id(), new_token(ACCESS_PREFIX), new_token(REFRESH_PREFIX),
                          current + access_ttl, current + refresh_ttl_s, current,
                          remember_me)
    conn.execute(
        "INSERT INTO sessions (id, user_id, access_hash, access_expires, refresh_hash, "
        "refresh_expires, remember_me, device, created_at, last_used_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (tokens.session_id, user_id, digest(tokens.access_token), tokens.access_expires,
         digest(tokens.refresh_token), tokens.refresh_expires, int(remember_me),
         json.dumps(device or {}), current, current))
    return tokens


@dataclass(frozen=True)
class Rotation:
    """The outcome of a refresh: new tokens and their user, or why there are none."""

    tokens: IssuedTokens | None = None
    user: dict[str, Any] | None = None
    error: str | None = None


def rotate_session(conn: sqlite3.Connection, refresh_token: str, access_ttl: float,
                   refresh_days: float) -> Rotation:
    """Swap a valid refresh token for a new token pair of the same session.

    Failures are returned, not raised, so that the revocations they cause are committed:
    reusing an already rotated token revokes the session, an expired one is dropped.
    """
    token_hash = digest(refresh_token)
    current = now()
    row = conn.execute(
        "SELECT s.id AS session_id, s.refresh_expires, s.remember_me, u.id, u.username, "
        "u.is_active, u.is_admin FROM sessions s JOIN users u ON u.id = s.user_id "
        "WHERE s.refresh_hash = ?", (token_hash,)).fetchone()
    if row is None:
        reused = conn.execute("SELECT session_id FROM refresh_history WHERE refresh_hash = ?",
                              (token_hash,)).fetchone()
        if reused is not None:
            conn.execute("DELETE FROM sessions WHERE id = ?", (reused["session_id"],))
            return Rotation(error="refresh token was already used; the session has been "
                                  "revoked, log in again")
        return Rotation(error="invalid refresh token")
    if row["refresh_expires"] <= current:
        conn.execute("DELETE FROM sessions WHERE id = ?", (row["session_id"],))
        return Rotation(error="refresh token expired; log in again")
    if not row["is_active"]:
        return Rotation(error="the account is deactivated")
    session_id = row["session_id"]
    ttl = refresh_ttl(bool(row["remember_me"]), refresh_days)
    tokens = IssuedTokens(session_id, new_token(ACCESS_PREFIX), new_token(REFRESH_PREFIX),
                          current + access_ttl, current + ttl, current,
                          bool(row["remember_me"]))
    conn.execute(
        "UPDATE sessions SET access_hash = ?, access_expires = ?, refresh_hash = ?, "
        "refresh_expires = ?, prev_refresh_hash = ?, last_used_at = ? WHERE id = ?",
        (digest(tokens.access_token), tokens.access_expires, digest(tokens.refresh_token),
         tokens.refresh_expires, token_hash, current, session_id))
    conn.execute("INSERT OR IGNORE INTO refresh_history (refresh_hash, session_id, rotated_at) "
                 "VALUES (?, ?, ?)", (token_hash, session_id, current))
    return Rotation(tokens, {"id": row["id"], "username": row["username"],
                             "is_admin": bool(row["is_admin"])})
