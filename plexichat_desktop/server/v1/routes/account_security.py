"""Account security: TOTP 2FA, the second login step, password change and reset, sessions,
the security log and the export of one's own data.

``/auth/...`` routes carry the ``auth`` tag and ``/users/me/...`` the ``users`` tag, so
discovery lists them with their groups. A wrong password, code, recovery code or reset
token is 401 with ``error="invalid_grant"`` in the challenge (the caller's *token* is fine:
a client must not drop its session over it) and counts against a per-account failure
limit (429 when used up); a code that does not match during set-up is a 422 on ``code``.
Secrets (TOTP secret, recovery codes, reset tokens) are shown once, where they are made,
and are never written to a log or a list.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import Field

from plexichat_desktop.server.v1 import accounts, mfa
from plexichat_desktop.server.v1.auth import digest, hash_password, verify_password
from plexichat_desktop.server.v1.common import (
    Body,
    Offset,
    conflict,
    done,
    forbidden,
    invalid,
    iso,
    limit_query,
    not_found,
    now,
    page,
)
from plexichat_desktop.server.v1.deps import Admin, Api, User, unauthorized
from plexichat_desktop.server.v1.hub import frame
from plexichat_desktop.server.v1.routes.auth import (
    _failed_login,
    finish_login,
    mfa_limiter,
    password_problem,
)
from plexichat_desktop.server.v1.routes.notifications import insert_notification
from plexichat_desktop.server.v1.service import ApiV1
from plexichat_desktop.server.v1.store import one, rows, scalar

router = APIRouter()
AUTH: list[str | Enum] = ["auth"]
USERS: list[str | Enum] = ["users"]
PASSWORD_MAX = 256


class CodeBody(Body):
    code: str = Field(min_length=1, max_length=20, description="The 6-digit code the "
                                                               "authenticator app shows.")


class Login2faBody(Body):
    mfa_token: str = Field(min_length=1, max_length=200,
                           description="The mfa_token of the /auth/login answer.")
    code: str | None = Field(None, max_length=20, description="A 6-digit TOTP code.")
    recovery_code: str | None = Field(None, max_length=40,
                                      description="One of the account's recovery codes.")


class DisableBody(Body):
    """The password and a second factor (exactly one of ``code`` and ``recovery_code``):
    what turning 2FA off or renewing its recovery codes asks for."""

    password: str = Field(min_length=1, max_length=PASSWORD_MAX)
    code: str | None = Field(None, max_length=20)
    recovery_code: str | None = Field(None, max_length=40)


class ChangePasswordBody(Body):
    current_password: str = Field(min_length=1, max_length=PASSWORD_MAX)
    new_password: str = Field(min_length=1, max_length=PASSWORD_MAX)
    end_other_sessions: bool = Field(False, description="Sign out every other session "
                                                        "(their tokens 401, sockets 4401).")


class ResetTokenBody(Body):
    user_id: str = Field(min_length=1, max_length=64)
    expires_minutes: int = Field(60, ge=5, le=10_080, description="Lifetime, 5 min - 7 days.")
    disable_2fa: bool = Field(False, description="Also switch the account's 2FA off when the "
                                                 "token is used (a user who lost the "
                                                 "authenticator and the recovery codes).")


class ResetBody(Body):
    username: str = Field(min_length=1, max_length=254, description="Username or email.")
    new_password: str = Field(min_length=1, max_length=PASSWORD_MAX)
    reset_token: str | None = Field(None, max_length=200,
                                    description="A token an administrator issued.")
    recovery_code: str | None = Field(None, max_length=40,
                                      description="A 2FA recovery code of the account.")


def _one_of(first: tuple[str, str | None], second: tuple[str, str | None]) -> None:
    """422 unless exactly one of two alternative fields is sent."""
    sent = [name for name, value in (first, second) if value]
    if len(sent) != 1:
        raise invalid(first[0], f"send either {first[0]} or {second[0]} (exactly one)")


def _wrong(detail: str) -> Exception:
    return unauthorized(detail, error="invalid_grant")


async def _check_password(api: ApiV1, user_id: str, password: str, attempt: mfa.Attempt,
                          field: str = "password") -> dict[str, Any]:
    """The caller's row when ``password`` (the body's ``field``) is theirs; else a counted
    failure and 401 naming that field."""
    row = await api.store.read(accounts.get_user, user_id)
    if row is None:
        raise unauthorized("the account no longer exists")
    ok = await asyncio.to_thread(verify_password, password, row["password_hash"],
                                 api.settings.scrypt_cost)
    if not ok:
        attempt.fail()
        raise _wrong(f"{field}: wrong password")
    return row


async def _recovery_digest(code: str | None, user_id: str) -> str:
    """The scrypt digest of a typed recovery code (slow: in a thread, before the write
    transaction); "" when none was typed."""
    return await asyncio.to_thread(mfa.recovery_digest, code, user_id) if code else ""


def _ua(request: Request) -> str | None:
    return request.headers.get("user-agent")


# -- the second login step ------------------------------------------------------------------

def _second_step(conn: sqlite3.Connection, token_hash: str, code: str | None,
                 recovery_code: str | None, recovery_hash: str
                 ) -> tuple[str, dict[str, Any] | None, str | None]:
    """Check the challenge and the code in one transaction; the challenge is spent only on
    success. Returns (user id or '', the challenge on success, the method used)."""
    challenge = one(conn.execute("SELECT * FROM mfa_challenges WHERE token_hash = ? AND "
                                 "expires_at > ?", (token_hash, now())))
    if challenge is None:
        return "", None, None
    user_id = challenge["user_id"]
    if code:
        ok, method = mfa.verify_totp(conn, user_id, code), "totp"
    else:
        ok = bool(recovery_code) and mfa.mfa_enabled(conn, user_id) and \
            mfa.use_recovery_code(conn, user_id, recovery_code or "", recovery_hash)
        method = "recovery_code"
    if not ok:
        return user_id, None, method
    conn.execute("DELETE FROM mfa_challenges WHERE token_hash = ?", (token_hash,))
    if method == "recovery_code":
        remaining, _ = mfa.recovery_counts(conn, user_id)
        mfa.record_event(conn, user_id, "recovery_code_used",
                         user_agent=challenge["user_agent"],
                         detail={"remaining": remaining, "during": "login"})
    return user_id, challenge, method


def _challenge_user(conn: sqlite3.Connection, token_hash: str) -> str | None:
    return scalar(conn, "SELECT user_id FROM mfa_challenges WHERE token_hash = ? AND "
                        "expires_at > ?", (token_hash, now()))


@router.post("/auth/login-2fa", tags=AUTH)
async def login_2fa(body: Login2faBody, request: Request, api: Api) -> dict[str, Any]:
    """Complete a login that answered ``requires_mfa``: the ``mfa_token`` and a TOTP
    ``code`` or a ``recovery_code``. Answers the ``TokenResponse`` (plus
    ``recovery_codes_remaining`` after a recovery code)."""
    _one_of(("code", body.code), ("recovery_code", body.recovery_code))
    token_hash = digest(body.mfa_token)
    user_id = await api.store.read(_challenge_user, token_hash)
    if user_id is None:
        raise _wrong("mfa_token: unknown or expired; log in again with the password")
    with mfa_limiter(api).attempt(user_id) as attempt:
        # Salted with the account the challenge was read for; a challenge of another
        # account (it cannot be: same token) would simply not match.
        recovery_hash = await _recovery_digest(body.recovery_code, user_id)
        _, challenge, method = await api.store.write(_second_step, token_hash, body.code,
                                                     body.recovery_code, recovery_hash)
        if challenge is None:
            attempt.fail()
    if challenge is None:
        reason = "2fa_code" if method == "totp" else "recovery_code"
        await api.store.write(_failed_login, user_id, reason, _ua(request))
        field = "code" if method == "totp" else "recovery_code"
        raise _wrong(f"{field}: invalid or already used")
    row = await api.store.read(accounts.get_user, user_id)
    if row is None:
        raise _wrong("the account no longer exists")
    answer = await finish_login(api, row, bool(challenge["remember_me"]),
                                json.loads(challenge["device"]), challenge["user_agent"],
                                method or "totp")
    if method == "recovery_code":
        remaining, _ = await api.store.read(mfa.recovery_counts, user_id)
        answer["recovery_codes_remaining"] = remaining
    return answer


# -- 2FA management -------------------------------------------------------------------------

def _status(conn: sqlite3.Connection, user_id: str) -> dict[str, Any]:
    row = mfa.mfa_row(conn, user_id)
    remaining, total = mfa.recovery_counts(conn, user_id)
    enabled = bool(row and row["enabled"])
    return {"enabled": enabled, "pending_setup": bool(row and not row["enabled"]),
            "enabled_at": iso(row["enabled_at"]) if row else None,
            "method": "totp" if enabled else None, "digits": mfa.DIGITS,
            "period": mfa.PERIOD, "algorithm": "SHA1",
            "recovery_codes_remaining": remaining if enabled else 0,
            "recovery_codes_total": total if enabled else 0,
            "low_recovery_codes": enabled and remaining <= mfa.LOW_RECOVERY_CODES,
            # False: the key file cannot decrypt the secret (a database restored on
            # another computer): codes fail until 2FA is set up again.
            "secret_readable": mfa.secret_readable(conn, user_id) if enabled else None}


@router.get("/auth/2fa/status", tags=AUTH)
async def mfa_status(user: User, api: Api) -> dict[str, Any]:
    """Whether 2FA is on, and how many recovery codes are left (``low_recovery_codes`` at
    3 or fewer)."""
    return await api.store.read(_status, user.id)


def _setup(conn: sqlite3.Connection, user_id: str, secret: str, user_agent: str | None
           ) -> None:
    if mfa.mfa_enabled(conn, user_id):
        raise conflict("2FA is already on for this account; disable it first to set up a "
                       "new authenticator")
    conn.execute("INSERT OR REPLACE INTO mfa (user_id, secret, enabled, created_at, "
                 "enabled_at, last_step) VALUES (?, ?, 0, ?, NULL, 0)",
                 (user_id, mfa.seal_secret(conn, user_id, secret), now()))
    mfa.record_event(conn, user_id, "2fa_setup_started", user_agent=user_agent)


class SetupBody(Body):
    password: str | None = Field(None, max_length=PASSWORD_MAX,
                                 description="The account's current password (required).")


@router.post("/auth/2fa/setup", tags=AUTH)
async def mfa_setup(request: Request, user: User, api: Api,
                    body: SetupBody | None = None) -> dict[str, Any]:
    """Start setting up TOTP: a new secret, its ``otpauth://`` URI and the QR code as SVG.
    Nothing changes for logins until ``/auth/2fa/verify-setup`` confirms a code.

    Needs the current ``password`` (422 when missing, 401 when wrong, counted against the
    failure limit): an access token alone must not be able to put an attacker's
    authenticator on the account and lock its owner out."""
    if body is None or not body.password:
        raise invalid("password", "the current password is required to set up 2FA")
    with mfa_limiter(api).attempt(user.id) as attempt:
        await _check_password(api, user.id, body.password, attempt)
    secret = mfa.new_secret()
    await api.store.write(_setup, user.id, secret, _ua(request))
    uri = mfa.otpauth_uri(secret, user.username)
    return {"secret": secret, "secret_grouped": mfa.group_secret(secret),
            "otpauth_uri": uri, "qr_svg": await asyncio.to_thread(mfa.qr_svg, uri),
            "issuer": mfa.ISSUER, "account": user.username, "algorithm": "SHA1",
            "digits": mfa.DIGITS, "period": mfa.PERIOD,
            "message": "scan the QR code (or type the key) into an authenticator app, then "
                       "confirm a code with /auth/2fa/verify-setup"}


def _plausible(conn: sqlite3.Connection, user_id: str, code: str) -> bool:
    """Whether ``code`` matches the set-up in progress now (without spending it)."""
    row = mfa.mfa_row(conn, user_id)
    if row is None or row["enabled"]:
        return False
    secret = mfa.open_secret(conn, user_id, row["secret"])
    return mfa.accepted_step(secret, code, row["last_step"], mfa.current_time()) is not None


def _enable(conn: sqlite3.Connection, user_id: str, code: str, digests: list[str],
            user_agent: str | None) -> bool:
    row = mfa.mfa_row(conn, user_id)
    if row is None:
        raise conflict("no 2FA set-up is in progress; start with /auth/2fa/setup")
    if row["enabled"]:
        raise conflict("2FA is already on for this account")
    # No digests: the route found the code implausible (and made none); never turn 2FA on
    # without the recovery codes its answer shows.
    if not digests or not mfa.verify_totp(conn, user_id, code, pending=True):
        return False
    conn.execute("UPDATE mfa SET enabled = 1, enabled_at = ? WHERE user_id = ?",
                 (now(), user_id))
    mfa.store_recovery_codes(conn, user_id, digests)
    conn.execute("DELETE FROM mfa_challenges WHERE user_id = ?", (user_id,))
    mfa.record_event(conn, user_id, "2fa_enabled", user_agent=user_agent,
                     detail={"recovery_codes": len(digests)})
    return True


@router.post("/auth/2fa/verify-setup", tags=AUTH)
async def mfa_verify_setup(body: CodeBody, request: Request, user: User, api: Api
                           ) -> dict[str, Any]:
    """Confirm the set-up with a current code: 2FA is on from now, and the answer holds
    the recovery codes (shown this once; only their digests are kept)."""
    codes = mfa.new_recovery_codes()
    with mfa_limiter(api).attempt(user.id) as attempt:
        # The (slow) digests only for a code that can be right; _enable decides.
        plausible = await api.store.read(_plausible, user.id, body.code)
        digests = (await asyncio.to_thread(mfa.recovery_digests, user.id, codes)
                   if plausible else [])
        enabled = await api.store.write(_enable, user.id, body.code, digests, _ua(request))
        if not enabled:
            attempt.fail()
    if not enabled:
        raise invalid("code", "the code does not match the new key (check that the "
                              "device's clock is right, and type the newest code)")
    return {"success": True, "enabled": True, "recovery_codes": codes,
            "message": "2FA is on. Keep the recovery codes somewhere safe: each works once "
                       "when the authenticator is not at hand"}


def _regenerate(conn: sqlite3.Connection, user_id: str, code: str | None,
                recovery_code: str | None, recovery_hash: str, digests: list[str],
                user_agent: str | None) -> bool:
    """Check the second factor and replace the codes in one transaction; False when the
    code or recovery code is wrong (nothing changes)."""
    if not mfa.mfa_enabled(conn, user_id):
        raise conflict("2FA is off for this account: there are no recovery codes")
    if not mfa.second_factor_ok(conn, user_id, code, recovery_code, recovery_hash):
        return False
    mfa.store_recovery_codes(conn, user_id, digests)
    mfa.record_event(conn, user_id, "recovery_codes_regenerated", user_agent=user_agent,
                     detail={"recovery_codes": len(digests),
                             "confirmed_with": "totp" if code else "recovery_code"})
    return True


@router.post("/auth/2fa/backup-codes", tags=AUTH)
async def mfa_backup_codes(body: DisableBody, request: Request, user: User, api: Api
                           ) -> dict[str, Any]:
    """New recovery codes; every older code stops working. Needs the password and a
    current ``code`` (or one of the old ``recovery_code``s): the password alone must not
    be enough to take over the account's second factor."""
    _one_of(("code", body.code), ("recovery_code", body.recovery_code))
    codes = mfa.new_recovery_codes()
    with mfa_limiter(api).attempt(user.id) as attempt:
        await _check_password(api, user.id, body.password, attempt)
        recovery_hash = await _recovery_digest(body.recovery_code, user.id)
        digests = await asyncio.to_thread(mfa.recovery_digests, user.id, codes)
        renewed = await api.store.write(_regenerate, user.id, body.code, body.recovery_code,
                                        recovery_hash, digests, _ua(request))
        if not renewed:
            attempt.fail()
    if not renewed:
        field = "code" if body.code else "recovery_code"
        raise _wrong(f"{field}: invalid or already used")
    return {"success": True, "recovery_codes": codes, "total": len(codes),
            "message": "new recovery codes; the old ones no longer work"}


def _disable(conn: sqlite3.Connection, user_id: str, code: str | None,
             recovery_code: str | None, recovery_hash: str, user_agent: str | None
             ) -> bool:
    if not mfa.mfa_enabled(conn, user_id):
        raise conflict("2FA is already off for this account")
    if not mfa.second_factor_ok(conn, user_id, code, recovery_code, recovery_hash):
        return False
    for table in ("mfa", "recovery_codes", "mfa_challenges"):
        conn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))
    mfa.record_event(conn, user_id, "2fa_disabled", user_agent=user_agent,
                     detail={"confirmed_with": "totp" if code else "recovery_code"})
    return True


@router.post("/auth/2fa/disable", tags=AUTH)
async def mfa_disable(body: DisableBody, request: Request, user: User, api: Api
                      ) -> dict[str, Any]:
    """Turn 2FA off: needs the password and a current code (or a recovery code)."""
    _one_of(("code", body.code), ("recovery_code", body.recovery_code))
    with mfa_limiter(api).attempt(user.id) as attempt:
        await _check_password(api, user.id, body.password, attempt)
        recovery_hash = await _recovery_digest(body.recovery_code, user.id)
        disabled = await api.store.write(_disable, user.id, body.code, body.recovery_code,
                                         recovery_hash, _ua(request))
        if not disabled:
            attempt.fail()
    if not disabled:
        field = "code" if body.code else "recovery_code"
        raise _wrong(f"{field}: invalid or already used")
    return done("2FA is off", enabled=False)


# -- passwords ------------------------------------------------------------------------------

@router.get("/auth/password/policy", tags=AUTH)
async def password_policy(api: Api) -> dict[str, Any]:
    """The rules new passwords must meet (no auth), so clients check before sending."""
    minimum = api.settings.password_min_length
    return {"min_length": minimum, "max_length": PASSWORD_MAX,
            "require_upper": True, "require_lower": True, "require_digit": True,
            "require_special": True,
            "description": f"at least {minimum} characters with an upper-case letter, a "
                           "lower-case letter, a digit and a special character"}


def _check_new_password(api: ApiV1, password: str, field: str = "new_password") -> None:
    if problem := password_problem(password, api.settings.password_min_length):
        raise invalid(field, problem)


def _change(conn: sqlite3.Connection, user_id: str, old_hash: str, new_hash: str,
            keep_session: str, end_others: bool, user_agent: str | None) -> list[str]:
    changed = conn.execute("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ? "
                           "AND password_hash = ?", (new_hash, now(), user_id, old_hash))
    if changed.rowcount != 1:
        raise conflict("the password was changed meanwhile; try again")
    # A pending second login step passed the *old* password: it must not outlive it.
    for table in ("password_resets", "mfa_challenges"):
        conn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))
    ended: list[str] = []
    if end_others:
        ended = [r[0] for r in conn.execute(
            "SELECT id FROM sessions WHERE user_id = ? AND id != ?", (user_id, keep_session))]
        conn.execute("DELETE FROM sessions WHERE user_id = ? AND id != ?",
                     (user_id, keep_session))
    mfa.record_event(conn, user_id, "password_changed", session_id=keep_session,
                     user_agent=user_agent, detail={"sessions_ended": len(ended)})
    return ended


@router.post("/auth/password/change", tags=AUTH)
async def change_password(body: ChangePasswordBody, request: Request, user: User, api: Api
                          ) -> dict[str, Any]:
    """Change the password: the current one (401 when wrong), a new one under the server's
    policy (422 on ``new_password``); ``end_other_sessions`` signs out every other session."""
    with mfa_limiter(api).attempt(user.id) as attempt:
        row = await _check_password(api, user.id, body.current_password, attempt,
                                    "current_password")
    _check_new_password(api, body.new_password)
    if body.new_password == body.current_password:
        raise invalid("new_password", "the new password must differ from the current one")
    new_hash = await asyncio.to_thread(hash_password, body.new_password,
                                       api.settings.scrypt_cost)
    ended = await api.store.write(_change, user.id, row["password_hash"], new_hash,
                                  user.session_id, body.end_other_sessions, _ua(request))
    await api.hub.close_sessions(ended, reason="password changed")
    return done("Password changed", sessions_ended=len(ended))


def _issue_reset(conn: sqlite3.Connection, admin: str, user_id: str, token_hash: str,
                 expires: float, disable_2fa: bool) -> dict[str, Any]:
    target = accounts.get_user(conn, user_id)
    if target is None:
        raise not_found("user", user_id)
    two_factor = mfa.mfa_enabled(conn, user_id)
    # One live reset token per account: a new one replaces the older.
    conn.execute("DELETE FROM password_resets WHERE user_id = ?", (user_id,))
    conn.execute("INSERT INTO password_resets (token_hash, user_id, issued_by, created_at, "
                 "expires_at, disable_2fa) VALUES (?, ?, ?, ?, ?, ?)",
                 (token_hash, user_id, admin, now(), expires, int(disable_2fa)))
    admin_name = scalar(conn, "SELECT username FROM users WHERE id = ?", (admin,))
    mfa.record_event(conn, user_id, "password_reset_issued",
                     detail={"issued_by": admin_name, "expires_at": iso(expires),
                             "disable_2fa": disable_2fa, "two_factor_on": two_factor})
    also = (" Using it also switches two-factor sign-in off." if disable_2fa and two_factor
            else "")
    note = insert_notification(
        conn, user_id, admin, title="Password reset issued",
        message=f"The administrator {admin_name} issued a one-time password reset token "
                f"for your account.{also} If you did not ask for it, tell them.",
        kind="warning", priority="high", action_url=None,
        metadata={"kind": "security.password_reset_issued"})
    return {"user": target, "note": note, "two_factor": two_factor}


@router.post("/auth/password/reset-token", tags=AUTH)
async def issue_reset_token(body: ResetTokenBody, admin: Admin, api: Api) -> dict[str, Any]:
    """Administrators: a one-time password reset token for an account (there is no
    e-mail here: hand it over yourself). Shown this once; a newer one replaces it. With
    ``disable_2fa`` using the token also switches the account's 2FA off (for a user who
    lost the authenticator and the recovery codes); the user's security log records both
    the issue and the switch-off, naming the administrator. Not for the administrator's
    own account: a stolen session alone (no password, no code) turned into a new password
    with 2FA off and the owner signed out; the owner changes their own password with the
    current one."""
    if body.user_id == admin.id:
        raise forbidden("user_id: not for your own account: change your password with "
                        "POST /auth/password/change (the current password, and 2FA when on)")
    token = mfa.new_reset_token()
    expires = now() + body.expires_minutes * 60
    issued = await api.store.write(_issue_reset, admin.id, body.user_id, digest(token),
                                   expires, body.disable_2fa)
    note = issued["note"]
    api.hub.to_user(body.user_id, frame("notification", **note))
    api.emit("notification.created", note, [body.user_id])
    return {"success": True, "reset_token": token, "user_id": body.user_id,
            "username": issued["user"]["username"], "expires_at": iso(expires),
            "expires_in": body.expires_minutes * 60, "disable_2fa": body.disable_2fa,
            "two_factor_enabled": issued["two_factor"],
            "message": "give this token to the user; it works once, with "
                       "POST /auth/password/reset"
                       + (" (and switches 2FA off)" if body.disable_2fa else "")}


def _reset(conn: sqlite3.Connection, user_id: str, reset_token: str | None,
           recovery_code: str | None, recovery_hash: str, new_hash: str,
           user_agent: str | None) -> tuple[list[str], bool] | None:
    """Set the new password; (the sessions ended, whether 2FA was switched off) or None
    when the token or code is wrong."""
    switch_off: dict[str, Any] | None = None
    if reset_token:
        where = "token_hash = ? AND user_id = ? AND expires_at > ?"
        args = (digest(reset_token), user_id, now())
        spent = one(conn.execute(
            f"SELECT issued_by, disable_2fa FROM password_resets WHERE {where}", args))
        conn.execute(f"DELETE FROM password_resets WHERE {where}", args)
        ok, method = spent is not None, "reset_token"
        if spent is not None and spent["disable_2fa"] and mfa.mfa_enabled(conn, user_id):
            switch_off = spent
    else:
        ok = mfa.mfa_enabled(conn, user_id) and \
            mfa.use_recovery_code(conn, user_id, recovery_code or "", recovery_hash)
        method = "recovery_code"
    if not ok:
        return None
    conn.execute("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?",
                 (new_hash, now(), user_id))
    ended = [r[0] for r in conn.execute("SELECT id FROM sessions WHERE user_id = ?",
                                        (user_id,))]
    for table in ("sessions", "password_resets", "mfa_challenges"):
        conn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))
    mfa.record_event(conn, user_id, "password_reset", user_agent=user_agent,
                     detail={"method": method, "sessions_ended": len(ended),
                             "2fa_disabled": switch_off is not None})
    if switch_off is not None:
        for table in ("mfa", "recovery_codes"):
            conn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))
        admin_name = scalar(conn, "SELECT username FROM users WHERE id = ?",
                            (switch_off["issued_by"],))
        mfa.record_event(conn, user_id, "2fa_disabled", user_agent=user_agent,
                         detail={"confirmed_with": "reset_token",
                                 "by_administrator": admin_name})
    return ended, switch_off is not None


@router.post("/auth/password/reset", tags=AUTH)
async def reset_password(body: ResetBody, request: Request, api: Api) -> dict[str, Any]:
    """Set a new password without the old one (no auth): with a ``reset_token`` from an
    administrator, or one of the account's 2FA ``recovery_code``s. Every session of the
    account ends (tokens 401, sockets 4401); log in with the new password."""
    _one_of(("reset_token", body.reset_token), ("recovery_code", body.recovery_code))
    _check_new_password(api, body.new_password)
    row = await api.store.read(accounts.find_login, body.username)
    usable = row is not None and bool(row["is_active"])
    # A bucket of its own: anyone may try resets without a password, and their failures
    # must not lock the owner's 2FA sign-in (whose failures need the password first).
    key = "reset:" + (row["id"] if row is not None else f"name:{body.username.lower()}")
    with mfa_limiter(api).attempt(key) as attempt:
        # Hashed whether or not the account exists: the answer's timing tells nothing.
        new_hash = await asyncio.to_thread(hash_password, body.new_password,
                                           api.settings.scrypt_cost)
        recovery_hash = await _recovery_digest(
            body.recovery_code, row["id"] if row is not None else body.username.lower())
        result = None
        if usable and row is not None:
            result = await api.store.write(_reset, row["id"], body.reset_token,
                                           body.recovery_code, recovery_hash, new_hash,
                                           _ua(request))
        if result is None:
            attempt.fail()
    if result is None:
        field = "reset_token" if body.reset_token else "recovery_code"
        raise _wrong(f"{field}: invalid, expired or already used for this account")
    ended, mfa_off = result
    await api.hub.close_sessions(ended, reason="password reset")
    message = "Password reset; log in with the new password" + (
        " (2FA is off: set it up again)" if mfa_off else "")
    return done(message, sessions_ended=len(ended), two_factor_disabled=mfa_off)


# -- sessions -------------------------------------------------------------------------------

def _sessions(conn: sqlite3.Connection, user_id: str, at: float, limit: int, offset: int
              ) -> tuple[list[dict[str, Any]], int]:
    where = "user_id = ? AND refresh_expires > ?"
    total = scalar(conn, f"SELECT COUNT(*) FROM sessions WHERE {where}", (user_id, at))
    found = rows(conn.execute(
        f"SELECT id, created_at, last_used_at, access_expires, refresh_expires, remember_me, "
        f"device, user_agent FROM sessions WHERE {where} ORDER BY last_used_at DESC, id "
        "LIMIT ? OFFSET ?", (user_id, at, limit, offset)))
    return found, total


def _session_dict(row: dict[str, Any], current: str, live: set[str]) -> dict[str, Any]:
    device = json.loads(row["device"] or "{}")
    return {"id": row["id"], "current": row["id"] == current,
            "created_at": iso(row["created_at"]), "last_used_at": iso(row["last_used_at"]),
            "access_expires_at": iso(row["access_expires"]),
            "expires_at": iso(row["refresh_expires"]), "remember_me": bool(row["remember_me"]),
            "device": device, "device_label": mfa.device_label(row["user_agent"], device),
            "user_agent": row["user_agent"], "connected": row["id"] in live}


@router.get("/auth/sessions", tags=AUTH)
async def list_sessions(user: User, api: Api,
                        limit: Annotated[int, limit_query(50, 100)] = 50,
                        offset: Offset = 0) -> dict[str, Any]:
    """The caller's signed-in sessions (devices), most recently used first; ``current``
    marks the one asking. Tokens are never shown."""
    found, total = await api.store.read(_sessions, user.id, now(), limit, offset)
    live = {c.session_id for c in api.hub.by_user.get(user.id, ())}
    return page("sessions", [_session_dict(r, user.session_id, live) for r in found], total,
                limit, offset, current_session_id=user.session_id)


def _end_sessions(conn: sqlite3.Connection, user_id: str, current: str,
                  session_id: str | None, user_agent: str | None) -> list[str]:
    if session_id is not None:
        ended = [r[0] for r in conn.execute(
            "SELECT id FROM sessions WHERE id = ? AND user_id = ?", (session_id, user_id))]
        if not ended:
            raise not_found("session", session_id)
    else:
        ended = [r[0] for r in conn.execute(
            "SELECT id FROM sessions WHERE user_id = ? AND id != ?", (user_id, current))]
    conn.executemany("DELETE FROM sessions WHERE id = ?", [(s,) for s in ended])
    mfa.record_event(conn, user_id, "session_revoked", session_id=current,
                     user_agent=user_agent,
                     detail={"sessions": ended, "current_included": current in ended})
    return ended


@router.post("/auth/sessions/revoke-others", tags=AUTH)
async def revoke_other_sessions(request: Request, user: User, api: Api) -> dict[str, Any]:
    """Sign out every session but this one."""
    ended = await api.store.write(_end_sessions, user.id, user.session_id, None, _ua(request))
    await api.hub.close_sessions(ended, reason="signed out from another session")
    return done(f"Signed out {len(ended)} other session(s)", sessions_ended=len(ended))


@router.delete("/auth/sessions/{session_id}", tags=AUTH)
async def revoke_session(session_id: str, request: Request, user: User, api: Api
                         ) -> dict[str, Any]:
    """Sign out one of the caller's sessions (this one too, like logout); another user's
    session is 404."""
    ended = await api.store.write(_end_sessions, user.id, user.session_id, session_id,
                                  _ua(request))
    await api.hub.close_sessions(ended, reason="signed out from another session")
    return done("Session ended", session_id=session_id,
                current=session_id == user.session_id)


# -- the security log and the export --------------------------------------------------------

def _log(conn: sqlite3.Connection, user_id: str, kind: str | None, limit: int, offset: int
         ) -> tuple[list[dict[str, Any]], int]:
    where, args = "user_id = ?", [user_id]
    if kind:
        where += " AND kind = ?"
        args.append(kind)
    total = scalar(conn, f"SELECT COUNT(*) FROM security_events WHERE {where}", args)
    found = rows(conn.execute(f"SELECT * FROM security_events WHERE {where} "
                              "ORDER BY seq DESC LIMIT ? OFFSET ?", (*args, limit, offset)))
    return found, total


@router.get("/users/me/security-log", tags=USERS)
async def security_log(
    user: User, api: Api, limit: Annotated[int, limit_query(50, 200)] = 50,
    offset: Offset = 0,
    kind: Annotated[str | None, Query(max_length=40, description="One event kind.")] = None,
) -> dict[str, Any]:
    """The caller's security events, newest first: logins and failures, new devices, 2FA,
    password and session changes."""
    if kind is not None and kind not in mfa.EVENT_KINDS:
        raise invalid("kind", f"unknown event kind; one of {', '.join(mfa.EVENT_KINDS)}",
                      kind, where="query")
    found, total = await api.store.read(_log, user.id, kind, limit, offset)
    return page("events", [mfa.event_dict(r) for r in found], total, limit, offset,
                kinds=list(mfa.EVENT_KINDS))


def _export(conn: sqlite3.Connection, user_id: str, session_id: str) -> dict[str, Any]:
    def select(sql: str, *args: Any) -> list[dict[str, Any]]:
        return rows(conn.execute(sql, args))

    def times(items: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
        for item in items:
            for key in keys:
                item[key] = iso(item[key])
        return items

    row = accounts.get_user(conn, user_id)
    if row is None:
        raise not_found("user", user_id)
    messages = times(select(
        "SELECT id, sender_id, recipient_id, content, message_type, encrypted, created_at, "
        "read_at FROM messages WHERE (sender_id = ? OR recipient_id = ?) AND deleted_at IS "
        "NULL ORDER BY seq", user_id, user_id), "created_at", "read_at")
    for message in messages:
        message["encrypted"] = bool(message["encrypted"])
    notifications = times(select(
        "SELECT id, sender_id, title, message, type, priority, action_url, metadata, "
        "read_at, archived, created_at FROM notifications WHERE user_id = ? ORDER BY seq",
        user_id), "read_at", "created_at")
    for note in notifications:
        note["metadata"] = json.loads(note["metadata"])
        note["archived"] = bool(note["archived"])
    settings = scalar(conn, "SELECT settings FROM notification_settings WHERE user_id = ?",
                      (user_id,))
    webhooks = times(select(
        "SELECT id, url, events, description, active, created_at FROM webhooks "
        "WHERE owner_id = ? ORDER BY seq", user_id), "created_at")
    for hook in webhooks:
        hook["events"] = json.loads(hook["events"])
        hook["active"] = bool(hook["active"])
    sessions, _ = _sessions(conn, user_id, now(), 1000, 0)
    return {
        "format": "plexichat-v1-account-export", "format_version": 1,
        "exported_at": iso(now()),
        "profile": accounts.profile(row, None, own=True),
        "security": {
            "two_factor": _status(conn, user_id),
            "sessions": [_session_dict(s, session_id, set()) for s in sessions],
            "devices": times(select(
                "SELECT label, first_seen, last_seen FROM known_devices WHERE user_id = ? "
                "ORDER BY first_seen", user_id), "first_seen", "last_seen"),
            "log": [mfa.event_dict(e) for e in select(
                "SELECT * FROM security_events WHERE user_id = ? ORDER BY seq", user_id)],
        },
        "messages": messages,
        "files": times(select(
            "SELECT id, filename, content_type, size, sha256, description, is_public, "
            "download_count, created_at FROM files WHERE owner_id = ? ORDER BY seq",
            user_id), "created_at"),
        "groups_owned": times(select(
            "SELECT id, name, description, type, is_public, max_members, created_at "
            "FROM groups WHERE owner_id = ? ORDER BY seq", user_id), "created_at"),
        "memberships": times(select(
            "SELECT m.group_id, g.name, m.role, m.joined_at FROM group_members m JOIN "
            "groups g ON g.id = m.group_id WHERE m.user_id = ? ORDER BY m.joined_at",
            user_id), "joined_at"),
        "notifications": notifications,
        "notification_settings": json.loads(settings) if settings else None,
        "webhooks": webhooks,
        "searches": times(select(
            "SELECT query, type, results, created_at FROM searches WHERE user_id = ? "
            "ORDER BY seq", user_id), "created_at"),
    }


@router.get("/users/me/export", tags=USERS)
async def export_me(user: User, api: Api) -> dict[str, Any]:
    """Everything the server keeps about the caller, as one JSON document: profile,
    sessions, devices and security log, messages sent and received, files (metadata),
    groups, notifications, webhooks (without secrets) and searches. No secret is in it:
    no password hash, token, TOTP secret or recovery code."""
    return await api.store.read(_export, user.id, user.session_id)
