"""User Manager: the account console of the PlexiChat account the app is signed in to.

Everything goes through ``ctx.api``, the API integration layer's session limited to this
plugin's scopes, so it works the same against the embedded server (offline, on this
computer: no identity server to run) and against a remote PlexiChat v1 server. The page
talks to the routes below; they add what the v1 API leaves to a client: the password
meter (the server's policy rule by rule plus a zxcvbn estimate), the minimum zxcvbn score,
the typed confirmation before deleting the account, and the export as a file.

Errors of the API keep their status and detail, except 401: a wrong password or code the
user typed (``InvalidCredentials``) is 403 here and a session that ended is 409, so that
nothing in front of the page mistakes them for the app's own credential being refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from plexichat_desktop.plugins.api import Plugin, PluginContext
from plexichat_desktop.plugins.hub import EventHub
from plexichat_desktop.plugins.settings import PluginSettings
from user_manager.strength import evaluate

if TYPE_CHECKING:
    from api_integration_layer.scoped import ScopedApi

T = TypeVar("T")
TOTP_CODE = re.compile(r"^[0-9]{6}$")
# While a page listens and nobody is signed in, how long the follower waits before looking
# again (a sign-in through this plugin wakes it at once; one on another page, after this).
FOLLOW_RECHECK = 5.0
# A call that makes recovery codes and timed out may still be at work on the server (its
# digests, then the commit): for this long, 2FA still off is not taken as final.
UNSEEN_PENDING = 600.0


class UserManagerSettings(PluginSettings):
    min_score: int = Field(2, ge=0, le=4, description="Lowest zxcvbn score (0-4) a new "
                                                      "password needs; 0 = policy only.")
    log_page_size: int = Field(50, ge=10, le=200, description="Security-log entries per "
                                                              "page.")


class Form(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginForm(Form):
    username: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=256)
    remember_me: bool = False


class SecondStepForm(Form):
    mfa_token: str = Field(min_length=1, max_length=200)
    code: str = Field(min_length=1, max_length=40,
                      description="A 6-digit code or a recovery code.")


class ForgotForm(Form):
    username: str = Field(min_length=1, max_length=254)
    new_password: str = Field(min_length=1, max_length=256)
    reset_token: str | None = Field(None, max_length=200)
    recovery_code: str | None = Field(None, max_length=40)


class ProfileForm(Form):
    display_name: str | None = Field(None, max_length=100)
    email: str | None = Field(None, min_length=3, max_length=254)
    first_name: str | None = Field(None, max_length=100)
    last_name: str | None = Field(None, max_length=100)


class StrengthForm(Form):
    password: str = Field("", max_length=256)


class ChangeForm(Form):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)
    end_other_sessions: bool = False


class CodeForm(Form):
    code: str = Field(min_length=1, max_length=20)


class PasswordForm(Form):
    password: str = Field(min_length=1, max_length=256)


class DisableForm(Form):
    password: str = Field(min_length=1, max_length=256)
    code: str = Field(min_length=1, max_length=40,
                      description="A current 6-digit code or a recovery code.")


class DeleteForm(Form):
    confirm: str = Field(max_length=100, description="The account's username, typed.")
    password: str = Field("", max_length=256, description="The current password.")
    code: str = Field("", max_length=40, description="With 2FA on: a current 6-digit code "
                                                     "or a recovery code.")
    confirm_admin: bool = Field(False, description="The administrator deleting the account "
                                                   "while other accounts exist: understood.")


class ResetTokenForm(Form):
    user_id: str = Field(min_length=1, max_length=64)
    expires_minutes: int = Field(60, ge=5, le=10_080)
    disable_2fa: bool = Field(False, description="Using the token also switches the "
                                                 "user's 2FA off (a lost device).")


class PageError(Exception):
    """An answer for the page: status and a detail naming the field when one is at fault."""

    def __init__(self, status: int, detail: Any):
        self.status = status
        self.detail = detail
        super().__init__(str(detail))


def field_error(field: str, message: str) -> PageError:
    """422 in FastAPI's list form, so the page shows it beside ``field``."""
    return PageError(422, [{"loc": ["body", field], "msg": message, "type": "value_error"}])


def _split_code(code: str) -> tuple[str | None, str | None]:
    """(TOTP code, recovery code) from what the user typed in the one code field."""
    compact = code.strip().replace(" ", "")
    return (compact, None) if TOTP_CODE.match(compact) else (None, code.strip())


class UserManagerPlugin(Plugin):
    """The account console: profile, password, 2FA, sessions, log, data, administration."""

    settings_model = UserManagerSettings

    def setup(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.config: UserManagerSettings = ctx.config
        self._policy: dict[str, Any] | None = None
        # Live events for the page: security notifications of the account and the end of
        # its session, relayed from the account's realtime socket while a page listens.
        self.hub = EventHub()
        self._follower: asyncio.Task[None] | None = None
        self._session_changed = asyncio.Event()
        # Accounts whose newest recovery codes were made by the server but never reached
        # the page (the call timed out): kept on disk, so a reload or a restart still
        # says so until new codes are shown.
        self._unseen_path = ctx.data_dir / "unseen_recovery_codes.json"
        routes: list[tuple[str, Any, str]] = [
            ("/overview", self.overview, "GET"),
            ("/login", self.login, "POST"),
            ("/login-2fa", self.login_2fa, "POST"),
            ("/logout", self.logout, "POST"),
            ("/forgot", self.forgot, "POST"),
            ("/profile", self.update_profile, "PUT"),
            ("/password/strength", self.strength, "POST"),
            ("/password/change", self.change_password, "POST"),
            ("/2fa", self.mfa_status, "GET"),
            ("/2fa/setup", self.mfa_setup, "POST"),
            ("/2fa/verify", self.mfa_verify, "POST"),
            ("/2fa/regenerate", self.mfa_regenerate, "POST"),
            ("/2fa/disable", self.mfa_disable, "POST"),
            ("/sessions", self.sessions, "GET"),
            ("/sessions/revoke-others", self.revoke_others, "POST"),
            ("/sessions/{session_id}/revoke", self.revoke_session, "POST"),
            ("/security-log", self.security_log, "GET"),
            ("/export", self.export, "GET"),
            ("/delete-account", self.delete_account, "POST"),
            ("/admin/users", self.admin_users, "GET"),
            ("/admin/reset-token", self.admin_reset_token, "POST"),
            ("/events", self.events, "GET"),
        ]
        for path, endpoint, method in routes:
            ctx.add_route(path, endpoint, methods=[method])

    async def teardown(self) -> None:
        await self._stop_following()

    # -- live events ---------------------------------------------------------------------
    async def events(self) -> Any:
        """Server-Sent Events for the page: ``security`` when the account gets a security
        notification (a sign-in from a new device, a reset token issued), ``signed_out``
        when its session ends elsewhere, ``live`` once the account's socket is open and
        ``refresh`` after it reconnected (events may have been missed)."""
        return self.ctx.event_stream(self._stream())

    async def _stream(self) -> AsyncIterator[tuple[str, Any]]:
        queue = self.hub.subscribe()
        self._follow()
        try:
            yield "following", {"signed_in": self._signed_in_now()}
            while True:
                yield await queue.get()
        finally:
            self.hub.unsubscribe(queue)
            if not self.hub.subscriber_count:
                await self._stop_following()

    def _signed_in_now(self) -> bool:
        try:
            return self.api().user is not None
        except PageError:
            return False

    def _follow(self) -> None:
        """Follow the account's socket while a page listens (one follower at a time)."""
        if self._follower is None or self._follower.done():
            self._follower = self.ctx.create_task(self._follow_loop(),
                                                  name="user_manager follower")

    async def _stop_following(self) -> None:
        task, self._follower = self._follower, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _session_switched(self) -> None:
        """A sign-in or sign-out here: follow the new session (if a page listens)."""
        self._session_changed.set()
        if self.hub.subscriber_count:
            await self._stop_following()
            self._follow()

    async def _wait_for_session(self) -> None:
        self._session_changed.clear()
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
        # arrives as the event is set, and the follower would never stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FOLLOW_RECHECK):
                await self._session_changed.wait()

    async def _follow_loop(self) -> None:
        while self.hub.subscriber_count:
            try:
                api = self.api()
            except PageError:
                return
            user = api.user
            if user is None:
                await self._wait_for_session()
                continue
            subscription = api.realtime.subscribe()
            async with subscription:
                async for event in subscription:
                    self._relay(event.type, event.data or {})
                    if (api.user or {}).get("id") != user["id"]:
                        break  # someone else signed in: follow them instead
            if subscription.state == "unauthorized":
                # The socket was closed with 4401: the session ended elsewhere.
                self.hub.publish("signed_out",
                                 {"reason": subscription.last_error or "the session ended"})
                await self._wait_for_session()

    def _relay(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "notification":
            meta = data.get("metadata") or {}
            if str(meta.get("kind", "")).startswith("security."):
                self.hub.publish("security", {
                    "kind": meta["kind"], "title": data.get("title"),
                    "message": data.get("message"), "at": data.get("created_at")})
        elif kind == "subscription.open":
            # After a reconnect events may have been missed: the page reloads what it shows.
            self.hub.publish("refresh" if data.get("reconnect") else "live", {})

    # -- plumbing ------------------------------------------------------------------------
    def api(self) -> ScopedApi:
        try:
            api: ScopedApi = self.ctx.api
        except Exception as exc:  # the layer failed or is disabled
            raise PageError(503, f"the PlexiChat API is not available: {exc}") from None
        return api

    def signed_in(self) -> ScopedApi:
        api = self.api()
        if api.user is None:
            raise PageError(409, "nobody is signed in to PlexiChat: sign in first")
        return api

    async def answer(self, work: Awaitable[T]) -> Any:
        """Run an API call for the page, turning the client's errors into answers."""
        from api_integration_layer.errors import (
            ApiError,
            ApiHTTPError,
            ApiPermissionError,
            ApiUnavailable,
            InvalidCredentials,
            NotAuthenticated,
        )

        try:
            return await work
        except PageError as exc:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status)
        except InvalidCredentials as exc:
            return JSONResponse({"detail": exc.detail}, status_code=403)
        except NotAuthenticated as exc:
            return JSONResponse({"detail": exc.detail, "signed_out": True}, status_code=409)
        except ApiHTTPError as exc:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status,
                                headers={k: v for k, v in exc.headers.items()
                                         if k.lower() == "retry-after"})
        except ApiPermissionError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=403)
        except ApiUnavailable as exc:
            return JSONResponse({"detail": f"the PlexiChat server cannot be reached: "
                                           f"{exc.reason}"}, status_code=502)
        except ApiError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=502)

    async def policy(self) -> dict[str, Any]:
        """The server's password policy (asked once; it is a setting of the server)."""
        if self._policy is None:
            self._policy = (await self.api().auth.password_policy()).model_dump(mode="json")
        return self._policy

    async def _user_words(self, api: ScopedApi) -> list[str]:
        """Words a password must not be built from: the account's names and email."""
        if api.user is None:
            return []
        me = await api.users.me()
        words = [me.username, me.display_name or "", me.first_name or "", me.last_name or ""]
        if me.email:
            words += [me.email, me.email.split("@", 1)[0]]
        return [w for w in words if w]

    # -- overview and signing in ---------------------------------------------------------
    async def overview(self) -> Any:
        """Who is signed in, their profile and 2FA state, the policy and the server."""
        from api_integration_layer.errors import NotAuthenticated

        async def work() -> dict[str, Any]:
            api = self.api()
            policy = await self.policy()
            base = {"policy": policy, "min_score": self.config.min_score,
                    "server": {"base_url": api.base_url,
                               "embedded": "127.0.0.1" in api.base_url
                               or "localhost" in api.base_url},
                    "log_page_size": self.config.log_page_size}
            if api.user is None:
                return {"signed_in": False, "user": None, **base}
            try:
                with api.bypass_cache():
                    me, mfa, devices = await asyncio.gather(
                        api.users.me(), api.auth.mfa_status(),
                        api.users.security_log(kind="new_device", limit=3))
            except NotAuthenticated as exc:
                # The stored session ended meanwhile (signed out elsewhere, password reset,
                # a restored backup): the page offers the sign-in again.
                return {"signed_in": False, "user": None, "ended": str(exc.detail), **base}
            return {"signed_in": True, "user": me.model_dump(mode="json"),
                    "mfa": self._mfa_view(api, mfa),
                    "recent_new_devices": [e.model_dump(mode="json") for e in devices.events],
                    **base}
        return await self.answer(work())

    async def login(self, form: LoginForm) -> Any:
        """Sign in; for an account with 2FA the answer asks for the code
        (``requires_mfa`` with the ``mfa_token`` for ``/login-2fa``)."""
        from api_integration_layer.errors import MfaRequired

        async def work() -> dict[str, Any]:
            try:
                await self._typed(self.api().auth.login(
                    form.username, form.password, remember_me=form.remember_me,
                    device_info={"app": "PlexiChat Desktop"}))
            except MfaRequired as step:
                return {"requires_mfa": True, "mfa_token": step.mfa_token,
                        "username": step.username, "expires_in": step.expires_in}
            await self._session_switched()
            return {"requires_mfa": False, "signed_in": True}
        return await self.answer(work())

    async def login_2fa(self, form: SecondStepForm) -> Any:
        """The second step: a 6-digit code or a recovery code."""
        code, recovery = _split_code(form.code)

        async def work() -> dict[str, Any]:
            tokens = await self._typed(self.api().auth.login_2fa(
                form.mfa_token, code=code, recovery_code=recovery))
            left = getattr(tokens, "recovery_codes_remaining", None)
            await self._session_switched()
            return {"signed_in": True, "recovery_codes_remaining": left}
        return await self.answer(work())

    async def logout(self) -> Any:
        async def work() -> dict[str, Any]:
            await self.api().auth.logout()
            await self._session_switched()
            return {"signed_in": False}
        return await self.answer(work())

    async def forgot(self, form: ForgotForm) -> Any:
        """Set a new password while signed out: with an administrator's reset token or a
        2FA recovery code (there is no e-mail to send a link to)."""
        if bool(form.reset_token) == bool(form.recovery_code):
            return await self.answer(self._raise(field_error(
                "reset_token", "give either a reset token or a recovery code")))

        async def work() -> dict[str, Any]:
            await self._check_new(self.api(), form.new_password, [form.username],
                                  own=False)
            result = await self._typed(self.api().auth.reset_password(
                form.username, form.new_password, reset_token=form.reset_token,
                recovery_code=form.recovery_code))
            return {"success": True, "message": result.message,
                    "two_factor_disabled": bool(getattr(result, "two_factor_disabled",
                                                        False))}
        return await self.answer(work())

    @staticmethod
    async def _raise(error: PageError) -> None:
        raise error

    @staticmethod
    async def _typed(work: Awaitable[T]) -> T:
        """Calls made without a session (sign in, its second step, a reset): their 401
        means what was typed is wrong, not that a session ended, so it is a 403 here."""
        from api_integration_layer.errors import NotAuthenticated

        try:
            return await work
        except NotAuthenticated as exc:
            raise PageError(403, exc.detail) from None

    # -- profile and password -------------------------------------------------------------
    async def update_profile(self, form: ProfileForm) -> Any:
        async def work() -> dict[str, Any]:
            changes = form.model_dump(exclude_unset=True)
            updated = await self.signed_in().users.update_me(**{
                key: value for key, value in changes.items() if key in (
                    "display_name", "email", "first_name", "last_name")})
            return updated.model_dump(mode="json")
        return await self.answer(work())

    async def strength(self, form: StrengthForm) -> Any:
        """The meter: the server's policy rule by rule and zxcvbn's estimate. The password
        is only measured, never stored or logged."""
        async def work() -> dict[str, Any]:
            api = self.api()
            words = await self._user_words(api)
            policy = await self.policy()
            return await asyncio.to_thread(evaluate, form.password, policy, words,
                                           self.config.min_score)
        return await self.answer(work())

    async def _check_new(self, api: ScopedApi, password: str, extra_words: list[str],
                         own: bool = True) -> None:
        """422 on ``new_password`` unless it meets the policy and ``min_score``; the
        signed-in account's names count as known words (``own``)."""
        words = (await self._user_words(api) if own else []) + extra_words
        verdict = await asyncio.to_thread(evaluate, password, await self.policy(), words,
                                          self.config.min_score)
        if not verdict["acceptable"]:
            raise field_error("new_password", "; ".join(verdict["problems"]))

    async def change_password(self, form: ChangeForm) -> Any:
        async def work() -> dict[str, Any]:
            api = self.signed_in()
            await self._check_new(api, form.new_password, [])
            result = await api.auth.change_password(
                form.current_password, form.new_password,
                end_other_sessions=form.end_other_sessions)
            return result.model_dump(mode="json")
        return await self.answer(work())

    # -- two-factor ----------------------------------------------------------------------
    def _unseen(self) -> dict[str, float]:
        try:
            data = json.loads(self._unseen_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _mark_unseen(self, user_id: str, unseen: bool) -> None:
        marks = self._unseen()
        if unseen == (user_id in marks):
            return
        if unseen:
            marks[user_id] = time.time()
        else:
            del marks[user_id]
        self._unseen_path.parent.mkdir(parents=True, exist_ok=True)
        self._unseen_path.write_text(json.dumps(marks), encoding="utf-8")

    def _mfa_view(self, api: ScopedApi, status: Any) -> dict[str, Any]:
        """The 2FA status for the page, with ``recovery_codes_unseen``: 2FA is on and its
        newest recovery codes were never shown (the call that made them timed out)."""
        view: dict[str, Any] = status.model_dump(mode="json")
        uid = str((api.user or {}).get("id", ""))
        since = self._unseen().get(uid)
        if since is not None and not view.get("enabled") \
                and time.time() - since > UNSEEN_PENDING:
            self._mark_unseen(uid, False)  # the call never took effect
            since = None
        view["recovery_codes_unseen"] = bool(since is not None and view.get("enabled"))
        return view

    async def _codes_lost(self, api: ScopedApi, exc: Exception) -> JSONResponse:
        """A call that makes recovery codes got no answer in time: the server may have
        made them (2FA on, old codes gone) all the same. Remember it and say so; the page
        offers new codes as soon as 2FA shows as on."""
        uid = str((api.user or {}).get("id", ""))
        self._mark_unseen(uid, True)
        try:
            with api.bypass_cache():
                status = await api.auth.mfa_status()
            view: dict[str, Any] | None = self._mfa_view(api, status)
        except Exception:  # as starved as the call was: the page asks again
            view = None
        waited = getattr(exc, "timeout", None)
        late = (f"the server did not answer within {waited:g} s" if waited
                else "the server's answer was lost")
        if view is not None and view["enabled"]:
            detail = (f"Two-factor sign-in is on, but {late}, so its recovery codes were "
                      "never shown. Make new ones now (your password and a current code): "
                      "until then, losing your phone locks you out.")
        else:
            detail = (f"{late[0].upper()}{late[1:]}: it may still be turning two-factor "
                      "sign-in on, with recovery codes you have not seen. This page checks "
                      "again; if it comes on, make new codes at once.")
        return JSONResponse({"detail": detail, "recovery_codes_unseen": True, "mfa": view},
                            status_code=504)

    async def _making_codes(self, call: Callable[[ScopedApi], Awaitable[Any]]) -> Any:
        """Run ``call(api)``, which answers with new recovery codes; the page gets them,
        or (timed out) :meth:`_codes_lost`'s answer."""
        from api_integration_layer.errors import ApiUnavailable

        api = self.signed_in()
        uid = str((api.user or {}).get("id", ""))
        try:
            result = await call(api)
        except ApiUnavailable as exc:
            if not exc.maybe_done:
                raise
            return await self._codes_lost(api, exc)
        self._mark_unseen(uid, False)
        return result.model_dump(mode="json")

    async def mfa_status(self) -> Any:
        async def work() -> dict[str, Any]:
            api = self.signed_in()
            return self._mfa_view(api, await api.auth.mfa_status())
        return await self.answer(work())

    async def mfa_setup(self, form: PasswordForm) -> Any:
        """A new key with its QR code (SVG) and the key for typing by hand; the password
        confirms it."""
        async def work() -> dict[str, Any]:
            result = await self.signed_in().auth.mfa_setup(form.password)
            return result.model_dump(mode="json")
        return await self.answer(work())

    async def mfa_verify(self, form: CodeForm) -> Any:
        """Turn 2FA on; the recovery codes, or (504, ``recovery_codes_unseen``) word that
        the server took too long and 2FA may be on with codes nobody saw."""
        async def work() -> Any:
            return await self._making_codes(
                lambda api: api.auth.mfa_verify_setup(form.code.replace(" ", "")))
        return await self.answer(work())

    async def mfa_regenerate(self, form: DisableForm) -> Any:
        """New recovery codes: the password and a current code (or an old recovery code).
        Timed out: 504 with ``recovery_codes_unseen``, as :meth:`mfa_verify`."""
        code, recovery = _split_code(form.code)

        async def work() -> Any:
            return await self._making_codes(lambda api: api.auth.mfa_backup_codes(
                form.password, code=code, recovery_code=recovery))
        return await self.answer(work())

    async def mfa_disable(self, form: DisableForm) -> Any:
        code, recovery = _split_code(form.code)

        async def work() -> dict[str, Any]:
            api = self.signed_in()
            result = await api.auth.mfa_disable(form.password, code=code,
                                                recovery_code=recovery)
            self._mark_unseen(str((api.user or {}).get("id", "")), False)
            return result.model_dump(mode="json")
        return await self.answer(work())

    # -- sessions and the log ------------------------------------------------------------
    async def sessions(self) -> Any:
        async def work() -> dict[str, Any]:
            return (await self.signed_in().auth.sessions(limit=100)).model_dump(mode="json")
        return await self.answer(work())

    async def revoke_session(self, session_id: str) -> Any:
        async def work() -> dict[str, Any]:
            result = await self.signed_in().auth.revoke_session(session_id)
            return result.model_dump(mode="json")
        return await self.answer(work())

    async def revoke_others(self) -> Any:
        async def work() -> dict[str, Any]:
            result = await self.signed_in().auth.revoke_other_sessions()
            return result.model_dump(mode="json")
        return await self.answer(work())

    async def security_log(self, offset: int = 0, kind: str | None = None) -> Any:
        async def work() -> dict[str, Any]:
            if offset < 0:
                raise PageError(422, [{"loc": ["query", "offset"], "msg": "must be >= 0",
                                       "type": "value_error"}])
            log = await self.signed_in().users.security_log(
                limit=self.config.log_page_size, offset=offset, kind=kind or None)
            return log.model_dump(mode="json")
        return await self.answer(work())

    # -- your data -----------------------------------------------------------------------
    async def export(self) -> Any:
        """Everything the server keeps about the account, as a JSON file to save."""
        async def work() -> Response:
            api = self.signed_in()
            data = await api.users.export()
            name = re.sub(r"[^A-Za-z0-9_-]", "_", str(data["profile"]["username"]))
            day = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
            return Response(json.dumps(data, indent=2, ensure_ascii=False),
                            media_type="application/json", headers={
                                "Content-Disposition": f'attachment; filename="plexichat-'
                                                       f'account-{name}-{day}.json"',
                                "Cache-Control": "no-store"})
        return await self.answer(work())

    async def delete_account(self, form: DeleteForm) -> Any:
        """Delete the account and everything it owns, once its username is typed; the
        server asks for the password and, with 2FA on, a code or a recovery code."""
        code, recovery = _split_code(form.code) if form.code.strip() else (None, None)

        async def work() -> dict[str, Any]:
            api = self.signed_in()
            username = api.user["username"] if api.user else ""
            if form.confirm != username:
                raise field_error("confirm", f"type the username '{username}' exactly to "
                                             "delete the account")
            if not form.password:
                raise field_error("password", "type your password to delete the account")
            # The install has one administrator (the first account the app registered);
            # deleting it left the others with nobody to reset a password or 2FA, and
            # the page said nothing of it.
            if not form.confirm_admin and (await api.users.me()).is_admin:
                others = (await api.users.list(limit=1)).total - 1
                if others > 0:
                    raise field_error(
                        "confirm_admin", f"you are the administrator and {others} other "
                        "account(s) rely on it to reset a password or 2FA; after this, the "
                        "next account registered from this app becomes the administrator. "
                        "Tick the box to delete anyway")
            result = await api.users.delete_me(form.password, code=code,
                                               recovery_code=recovery)
            return result.model_dump(mode="json")
        return await self.answer(work())

    # -- administration ------------------------------------------------------------------
    async def _require_admin(self, api: ScopedApi) -> None:
        me = await api.users.me()
        if not me.is_admin:
            raise PageError(403, "this needs the administrator account")

    async def admin_users(self, request: Request) -> Any:
        """Users, oldest first, or those matching ``?query=``; ``offset`` pages."""
        async def work() -> dict[str, Any]:
            api = self.signed_in()
            await self._require_admin(api)
            query = (request.query_params.get("query") or "").strip()[:100]
            try:
                offset = max(0, int(request.query_params.get("offset") or 0))
            except ValueError:
                raise PageError(422, [{"loc": ["query", "offset"], "msg": "not a number",
                                       "type": "int_parsing"}]) from None
            with api.bypass_cache():
                found = (await api.users.search(query, limit=50, offset=offset) if query
                         else await api.users.list(limit=50, offset=offset))
            return found.model_dump(mode="json")
        return await self.answer(work())

    async def admin_reset_token(self, form: ResetTokenForm) -> Any:
        """A one-time password reset token for a user (shown once, to hand over)."""
        async def work() -> dict[str, Any]:
            api = self.signed_in()
            result = await api.auth.issue_reset_token(form.user_id,
                                                      expires_minutes=form.expires_minutes,
                                                      disable_2fa=form.disable_2fa)
            return result.model_dump(mode="json")
        return await self.answer(work())
