"""The endpoint groups: one typed method per route of the v1 API.

Every method builds its request and hands it to the *caller* it was made with: the client
itself (everything allowed) or a plugin's scoped view (which checks the scope first). So
the unrestricted client and the facade other plugins get share this one implementation.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from email.message import Message as MimeMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

import httpx

from api_integration_layer import models as m
from api_integration_layer.endpoints import ENDPOINTS, Endpoint
from api_integration_layer.errors import ApiHTTPError, ChecksumMismatch, MfaRequired

if TYPE_CHECKING:
    from pycrdt import Doc

    from api_integration_layer.client import ApiClient
    from api_integration_layer.collaboration import LiveDocument
    from api_integration_layer.discovery import DiscoveryReport
    from api_integration_layer.realtime import Subscription

FileSource = bytes | str | Path | BinaryIO
# Asked for the second factor of a login: returns a 6-digit code or a recovery code.
MfaPrompt = Callable[[MfaRequired], Awaitable[str]]


class Caller(Protocol):
    """What a group needs: ``call`` (the pipeline), ``check`` (scopes), ``client``."""

    @property
    def client(self) -> ApiClient: ...
    def check(self, endpoint: Endpoint) -> None: ...
    async def call(self, name: str, **kwargs: Any) -> Any: ...


def _body(model: type[m.Request], **fields: Any) -> dict[str, Any]:
    """Validate a request body; fields left at None are not sent (the server keeps its
    default or, for updates, the current value)."""
    given = {k: v for k, v in fields.items() if v is not None}
    return model.model_validate(given).model_dump(mode="json", exclude_unset=True)


async def _read_source(source: FileSource, filename: str | None) -> tuple[str, bytes]:
    if isinstance(source, bytes | bytearray):
        if not filename:
            raise ValueError("filename is required when uploading bytes")
        return filename, bytes(source)
    if isinstance(source, str | Path):
        path = Path(source)
        return filename or path.name, await asyncio.to_thread(path.read_bytes)
    content = await asyncio.to_thread(source.read)
    name = filename or Path(str(getattr(source, "name", "") or "")).name
    if not name:
        raise ValueError("filename is required for a file object without a name")
    return name, content


def _when(value: dt.datetime | str | None) -> str | None:
    """A time for the API: ISO 8601 (a datetime without a zone is taken as UTC)."""
    if value is None or isinstance(value, str):
        return value
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()


def _filename(response: httpx.Response) -> str | None:
    header = response.headers.get("content-disposition")
    if not header:
        return None
    parsed = MimeMessage()
    parsed["content-disposition"] = header
    return parsed.get_filename()


def _download(response: httpx.Response, verify: bool) -> m.Download:
    content = response.content
    digest = hashlib.sha256(content).hexdigest()
    announced = response.headers.get("x-content-sha256")
    if verify and announced and announced.lower() != digest:
        raise ChecksumMismatch(f"{response.request.url.path}: the content's SHA-256 is "
                               f"{digest}, the server announced {announced}")
    return m.Download(filename=_filename(response),
                      content_type=response.headers.get("content-type"), content=content,
                      sha256=digest)


class _Group:
    def __init__(self, caller: Caller):
        self._c = caller


class AuthApi(_Group):
    """``/auth``: register, log in and out, refresh; the session is kept by the client."""

    async def register(self, username: str, email: str, password: str, *,
                       display_name: str | None = None, first_name: str | None = None,
                       last_name: str | None = None, invite_code: str | None = None
                       ) -> m.RegisterResult:
        body = _body(m.RegisterRequest, username=username, email=email, password=password,
                     display_name=display_name, first_name=first_name, last_name=last_name,
                     invite_code=invite_code)
        return await self._c.call("auth.register", json=body, model=m.RegisterResult)

    async def login(self, username: str, password: str, *, remember_me: bool = False,
                    device_info: dict[str, Any] | None = None, mfa_code: str | None = None,
                    on_mfa: MfaPrompt | None = None) -> m.TokenResponse:
        """Log in (``username`` may be the email); the tokens become the client's session.

        For an account with 2FA the password alone is not enough: with ``mfa_code`` the
        code goes along (one step); with ``on_mfa`` that coroutine is asked for a code (or
        a recovery code) and the login completes; with neither, :class:`MfaRequired` is
        raised carrying the ``mfa_token`` for :meth:`login_2fa`.
        """
        body = _body(m.LoginRequest, username=username, password=password,
                     remember_me=remember_me, device_info=device_info, mfa_code=mfa_code)
        answer = await self._c.call("auth.login", json=body)
        if answer.get("requires_mfa"):
            info = m.MfaChallengeInfo.model_validate(answer)
            # For a server whose answer to the second step does not say (the embedded
            # one does); kept where a reload of the layer does not lose it.
            pending = self._c.client.session.pending_remember
            pending[info.mfa_token] = remember_me
            while len(pending) > 20:  # challenges never answered
                del pending[next(iter(pending))]
            challenge = MfaRequired(info.mfa_token, info.user_id, info.username,
                                    info.mfa_expires_in, info.methods)
            if on_mfa is None:
                raise challenge
            given = (await on_mfa(challenge)).strip()
            is_code = given.replace(" ", "").isdigit() and len(given.replace(" ", "")) == 6
            return await self.login_2fa(info.mfa_token, code=given if is_code else None,
                                        recovery_code=None if is_code else given)
        # A server that does not say (not the embedded one) keeps what was asked.
        answer.setdefault("remember_me", remember_me)
        return await self._adopt(answer)

    async def _adopt(self, answer: dict[str, Any]) -> m.TokenResponse:
        """Make a login's tokens the client's session."""
        client = self._c.client
        before = client.session.identity
        if before and before != str(answer.get("user_id")):
            # Signed in as someone else without signing out: the last user's realtime
            # subscriptions went on delivering their private events to plugins now
            # acting for the new one.
            await client.close_subscriptions()
        client.session.set(answer)
        client.limiter.forget()  # the last user's request limit is not theirs
        return m.TokenResponse.model_validate(answer)

    async def login_2fa(self, mfa_token: str, *, code: str | None = None,
                        recovery_code: str | None = None) -> m.TokenResponse:
        """The second step of a login that raised :class:`MfaRequired`: a TOTP ``code`` or
        a ``recovery_code``. The tokens become the client's session."""
        body = _body(m.Login2faRequest, mfa_token=mfa_token, code=code,
                     recovery_code=recovery_code)
        answer = await self._c.call("auth.login_2fa", json=body)
        answer.setdefault("remember_me",  # unknown: not kept, as a login's default
                          self._c.client.session.pending_remember.pop(mfa_token, False))
        return await self._adopt(answer)

    # -- 2FA, passwords, sessions ----------------------------------------------------------
    async def mfa_status(self) -> m.MfaStatus:
        return await self._c.call("auth.mfa_status", model=m.MfaStatus)

    async def mfa_setup(self, password: str) -> m.MfaSetup:
        """A new TOTP key with its QR code; confirm it with :meth:`mfa_verify_setup`. The
        current ``password`` confirms it (wrong: :class:`errors.InvalidCredentials`)."""
        return await self._c.call("auth.mfa_setup", json={"password": password},
                                  model=m.MfaSetup)

    async def mfa_verify_setup(self, code: str, *, timeout: float | None = None
                               ) -> m.RecoveryCodes:
        """Turn 2FA on with a current code; returns the recovery codes (shown once).

        The server makes ten memory-hard digests first, so the call may take
        ``timeout`` seconds (default: the ``slow_timeout`` setting, 120). Past it,
        :class:`errors.ApiUnavailable` with ``maybe_done``: 2FA may be on (or come on)
        with codes nobody saw; check :meth:`mfa_status` and make new codes
        (:meth:`mfa_backup_codes`) if it is.
        """
        return await self._c.call("auth.mfa_verify_setup", json={"code": code},
                                  model=m.RecoveryCodes, timeout=timeout)

    async def mfa_backup_codes(self, password: str, *, code: str | None = None,
                               recovery_code: str | None = None,
                               timeout: float | None = None) -> m.RecoveryCodes:
        """New recovery codes (the old ones stop working): the password and exactly one of
        a current ``code`` or an old ``recovery_code``. Slow like
        :meth:`mfa_verify_setup` (``timeout``, default ``slow_timeout``)."""
        body = {"password": password, "code": code, "recovery_code": recovery_code}
        return await self._c.call("auth.mfa_backup_codes", model=m.RecoveryCodes,
                                  json={k: v for k, v in body.items() if v is not None},
                                  timeout=timeout)

    async def mfa_disable(self, password: str, *, code: str | None = None,
                          recovery_code: str | None = None) -> m.ActionResult:
        body = {"password": password, "code": code, "recovery_code": recovery_code}
        return await self._c.call("auth.mfa_disable", model=m.ActionResult,
                                  json={k: v for k, v in body.items() if v is not None})

    async def password_policy(self) -> m.PasswordPolicy:
        return await self._c.call("auth.password_policy", model=m.PasswordPolicy)

    async def change_password(self, current_password: str, new_password: str, *,
                              end_other_sessions: bool = False) -> m.SessionsEnded:
        """A wrong current password raises :class:`errors.InvalidCredentials` (the
        session stays); a weak new one a 422 on ``new_password``."""
        return await self._c.call("auth.change_password", model=m.SessionsEnded, json={
            "current_password": current_password, "new_password": new_password,
            "end_other_sessions": end_other_sessions})

    async def issue_reset_token(self, user_id: str, *, expires_minutes: int = 60,
                                disable_2fa: bool = False) -> m.ResetToken:
        """Administrators: a one-time password reset token for ``user_id``; with
        ``disable_2fa`` using it also switches the account's 2FA off (a lost device)."""
        body: dict[str, Any] = {"user_id": user_id, "expires_minutes": expires_minutes}
        if disable_2fa:
            body["disable_2fa"] = True
        return await self._c.call("auth.reset_token", model=m.ResetToken, json=body)

    async def reset_password(self, username: str, new_password: str, *,
                             reset_token: str | None = None,
                             recovery_code: str | None = None) -> m.SessionsEnded:
        body = {"username": username, "new_password": new_password,
                "reset_token": reset_token, "recovery_code": recovery_code}
        return await self._c.call("auth.reset_password", model=m.SessionsEnded,
                                  json={k: v for k, v in body.items() if v is not None})

    async def sessions(self, *, limit: int = 50, offset: int = 0) -> m.SessionList:
        return await self._c.call("auth.sessions", model=m.SessionList,
                                  params={"limit": limit, "offset": offset})

    async def revoke_session(self, session_id: str) -> m.ActionResult:
        """Sign out one session; signing out this client's own ends its session here too."""
        result = await self._c.call("auth.revoke_session", path={"session_id": session_id},
                                    model=m.ActionResult)
        client = self._c.client
        if getattr(result, "current", False):
            await client.close_subscriptions()
            client.session.clear()
        return result

    async def revoke_other_sessions(self) -> m.SessionsEnded:
        return await self._c.call("auth.revoke_others", model=m.SessionsEnded)

    async def refresh(self) -> None:
        """Rotate the tokens now (the client also does this by itself when needed)."""
        self._c.check(ENDPOINTS["auth.refresh"])
        await self._c.client.session.refresh()

    async def logout(self, *, all_sessions: bool = False) -> m.ActionResult:
        """End the session on the server (or all of the user's) and forget it here; the
        session is forgotten even when the server no longer knew it."""
        session = self._c.client.session
        self._c.check(ENDPOINTS["auth.logout"])
        if not session.logged_in:
            return m.ActionResult(success=True, message="not logged in")
        try:
            return await self._c.call("auth.logout", params={"all_sessions": all_sessions},
                                      model=m.ActionResult)
        finally:
            await self._c.client.close_subscriptions()
            session.clear()
            self._c.client.cache.clear()

    async def me(self) -> m.UserProfile:
        return await self._c.call("auth.me", model=m.UserProfile)

    async def status(self) -> m.AuthStatus:
        return await self._c.call("auth.status", model=m.AuthStatus)


class UsersApi(_Group):
    """``/users``: profiles, search, list, statistics."""

    async def me(self) -> m.UserProfile:
        return await self._c.call("users.me", model=m.UserProfile)

    async def update_me(self, *, display_name: str | None = None, email: str | None = None,
                        first_name: str | None = None, last_name: str | None = None
                        ) -> m.UserProfile:
        """Change the given fields (None: unchanged)."""
        body = _body(m.ProfileUpdate, display_name=display_name, email=email,
                     first_name=first_name, last_name=last_name)
        return await self._c.call("users.update_me", json=body, model=m.UserProfile)

    async def delete_me(self, password: str, *, code: str | None = None,
                        recovery_code: str | None = None) -> m.AccountDeleted:
        """Delete the account and everything it owns; the session ends with it. The
        current ``password`` confirms it, and with 2FA on a current ``code`` or a
        ``recovery_code`` (wrong: :class:`errors.InvalidCredentials`, the session stays)."""
        body = {"password": password, "code": code, "recovery_code": recovery_code}
        result = await self._c.call("users.delete_me", model=m.AccountDeleted,
                                    json={k: v for k, v in body.items() if v is not None})
        client = self._c.client
        await client.close_subscriptions()
        client.session.clear()
        return result

    async def search(self, query: str, *, limit: int = 10, offset: int = 0) -> m.UserList:
        return await self._c.call("users.search", model=m.UserList,
                                  params={"query": query, "limit": limit, "offset": offset})

    async def list(self, *, limit: int = 20, offset: int = 0) -> m.UserList:
        return await self._c.call("users.list", params={"limit": limit, "offset": offset},
                                  model=m.UserList)

    async def get(self, user_id: str) -> m.UserProfile:
        return await self._c.call("users.get", path={"user_id": user_id}, model=m.UserProfile)

    async def stats(self) -> m.UserStats:
        return await self._c.call("users.stats", model=m.UserStats)

    async def security_log(self, *, limit: int = 50, offset: int = 0,
                           kind: str | None = None) -> m.SecurityLog:
        """The account's security events, newest first (logins, failures, 2FA, ...)."""
        return await self._c.call("users.security_log", model=m.SecurityLog,
                                  params={"limit": limit, "offset": offset, "kind": kind})

    async def export(self) -> dict[str, Any]:
        """Everything the server keeps about the account, as one JSON document."""
        result: dict[str, Any] = await self._c.call("users.export")
        return result


class MessagesApi(_Group):
    """``/messages``: direct messages."""

    async def send(self, recipient_id: str | None, content: str, *,
                   message_type: m.MessageType = "text", encrypted: bool = False,
                   reply_to: str | None = None,
                   client_message_id: str | None = None) -> m.SentMessage:
        """Send a message; with ``reply_to`` a reply in that message's thread (then
        ``recipient_id`` may be None: the other party of the message replied to).

        ``client_message_id`` (1-64 of A-Z a-z 0-9 _ -) makes the send idempotent: sent
        again with the same key (after a lost answer or a crash), the server stores
        nothing new and answers the first message with ``duplicate=True``; the same key
        with other content is a 409. The layer itself never resends a send.
        """
        body = _body(m.SendMessage, recipient_id=recipient_id, content=content,
                     message_type=message_type, encrypted=encrypted, reply_to=reply_to,
                     client_message_id=client_message_id)
        return await self._c.call("messages.send", json=body, model=m.SentMessage)

    async def reply(self, message_id: str, content: str, *,
                    message_type: m.MessageType = "text") -> m.Message:
        """Answer ``message_id`` in its thread (to the other party of that message)."""
        return await self.send(None, content, message_type=message_type, reply_to=message_id)

    async def thread(self, message_id: str, *, limit: int = 50, offset: int = 0) -> m.Thread:
        """The thread ``message_id`` belongs to: its first message and the replies, oldest
        first."""
        return await self._c.call("messages.thread", path={"message_id": message_id},
                                  params={"limit": limit, "offset": offset}, model=m.Thread)

    async def edit(self, message_id: str, content: str) -> m.Message:
        """Change the content of a message the caller sent (403 for anyone else)."""
        return await self._c.call("messages.edit", path={"message_id": message_id},
                                  json=_body(m.EditMessage, content=content), model=m.Message)

    async def react(self, message_id: str, emoji: str) -> m.ReactionResult:
        """Add the caller's reaction (one emoji or a :shortcode:); the message with its
        counts comes back, ``changed`` False when the reaction was already there."""
        return await self._c.call("messages.react", path={"message_id": message_id},
                                  json=_body(m.Reaction, emoji=emoji),
                                  model=m.ReactionResult)

    async def unreact(self, message_id: str, emoji: str) -> m.ReactionResult:
        """Take back the caller's reaction ``emoji``."""
        return await self._c.call("messages.unreact", path={"message_id": message_id},
                                  params={"emoji": emoji}, model=m.ReactionResult)

    async def conversations(self, *, limit: int = 50, offset: int = 0) -> m.ConversationList:
        return await self._c.call("messages.conversations", model=m.ConversationList,
                                  params={"limit": limit, "offset": offset})

    async def conversation(self, other_user_id: str, *, limit: int = 50, offset: int = 0,
                           order: str = "desc", mark_read: bool = True) -> m.Conversation:
        """The messages exchanged with ``other_user_id``, newest first by default; the
        received ones on the page are marked read unless ``mark_read=False``."""
        return await self._c.call(
            "messages.conversation", path={"other_user_id": other_user_id},
            params={"limit": limit, "offset": offset, "order": order, "mark_read": mark_read},
            model=m.Conversation)

    async def get(self, message_id: str) -> m.Message:
        return await self._c.call("messages.get", path={"message_id": message_id},
                                  model=m.Message)

    async def delete(self, message_id: str) -> m.ActionResult:
        return await self._c.call("messages.delete", path={"message_id": message_id},
                                  model=m.ActionResult)

    async def stats(self) -> m.MessageStats:
        return await self._c.call("messages.stats", model=m.MessageStats)


class FilesApi(_Group):
    """``/files``: upload, download, share, list."""

    async def upload(self, file: FileSource, filename: str | None = None, *,
                     description: str | None = None, is_public: bool = False) -> m.FileInfo:
        """Upload bytes (``filename`` required), a path or a binary file object."""
        name, content = await _read_source(file, filename)
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        data = {"is_public": "true" if is_public else "false"}
        if description is not None:
            data["description"] = description
        return await self._c.call("files.upload", files={"file": (name, content, content_type)},
                                  data=data, model=m.FileInfo)

    async def download(self, file_id: str, *, verify: bool = True) -> m.Download:
        """The content in memory, its SHA-256 checked against ``X-Content-SHA256``."""
        response = await self._c.call("files.download", path={"file_id": file_id}, raw=True)
        return _download(response, verify)

    async def download_to(self, file_id: str, destination: str | Path, *,
                          verify: bool = True) -> Path:
        """Stream the content to ``destination`` (a file path), checking its SHA-256; a
        partial file is removed when anything fails."""
        self._c.check(ENDPOINTS["files.download"])
        target = Path(destination)
        digest = hashlib.sha256()
        client = self._c.client
        try:
            async with client.stream("files.download", path={"file_id": file_id},
                                     caller=getattr(self._c, "plugin_id", None)) as response:
                with target.open("wb") as handle:
                    async for chunk in response.aiter_bytes():
                        digest.update(chunk)
                        handle.write(chunk)
                announced = response.headers.get("x-content-sha256")
            if verify and announced and announced.lower() != digest.hexdigest():
                raise ChecksumMismatch(f"{target}: SHA-256 {digest.hexdigest()} differs from "
                                       f"the announced {announced}")
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target

    async def info(self, file_id: str) -> m.FileInfo:
        return await self._c.call("files.info", path={"file_id": file_id}, model=m.FileInfo)

    async def list(self, *, scope: str = "own", file_type: str | None = None,
                   limit: int = 20, offset: int = 0) -> m.FileList:
        return await self._c.call("files.list", model=m.FileList, params={
            "scope": scope, "file_type": file_type, "limit": limit, "offset": offset})

    async def share(self, file_id: str, user_id: str) -> m.ActionResult:
        return await self._c.call("files.share", path={"file_id": file_id},
                                  json=_body(m.ShareRequest, user_id=user_id),
                                  model=m.ActionResult)

    async def unshare(self, file_id: str, user_id: str) -> m.ActionResult:
        return await self._c.call("files.unshare", path={"file_id": file_id, "user_id": user_id},
                                  model=m.ActionResult)

    async def delete(self, file_id: str) -> m.ActionResult:
        return await self._c.call("files.delete", path={"file_id": file_id},
                                  model=m.ActionResult)

    async def stats(self) -> m.FileStats:
        return await self._c.call("files.stats", model=m.FileStats)


class GroupsApi(_Group):
    """``/groups``: groups, channels and private groups."""

    async def create(self, name: str, *, description: str | None = None,
                     type: m.GroupType = "group", is_public: bool | None = None,
                     max_members: int = 100) -> m.Group:
        body = _body(m.CreateGroup, name=name, description=description, type=type,
                     is_public=is_public, max_members=max_members)
        return await self._c.call("groups.create", json=body, model=m.Group)

    async def list(self, *, type: m.GroupType | None = None, public_only: bool = False,
                   limit: int = 50, offset: int = 0) -> m.GroupList:
        return await self._c.call("groups.list", model=m.GroupList, params={
            "type": type, "public_only": public_only, "limit": limit, "offset": offset})

    async def mine(self, *, limit: int = 50, offset: int = 0) -> m.GroupList:
        return await self._c.call("groups.mine", params={"limit": limit, "offset": offset},
                                  model=m.GroupList)

    async def stats(self) -> m.GroupStats:
        return await self._c.call("groups.stats", model=m.GroupStats)

    async def get(self, group_id: str) -> m.Group:
        return await self._c.call("groups.get", path={"group_id": group_id}, model=m.Group)

    async def update(self, group_id: str, *, name: str | None = None,
                     description: str | None = None, is_public: bool | None = None,
                     max_members: int | None = None) -> m.Group:
        body = _body(m.GroupUpdate, name=name, description=description, is_public=is_public,
                     max_members=max_members)
        return await self._c.call("groups.update", path={"group_id": group_id}, json=body,
                                  model=m.Group)

    async def delete(self, group_id: str) -> m.ActionResult:
        return await self._c.call("groups.delete", path={"group_id": group_id},
                                  model=m.ActionResult)

    async def join(self, group_id: str) -> m.JoinResult:
        return await self._c.call("groups.join", path={"group_id": group_id},
                                  model=m.JoinResult)

    async def leave(self, group_id: str) -> m.ActionResult:
        return await self._c.call("groups.leave", path={"group_id": group_id},
                                  model=m.ActionResult)

    async def invite(self, group_id: str, user_ids: list[str], *,
                     message: str | None = None) -> m.InviteResult:
        return await self._c.call("groups.invite", path={"group_id": group_id},
                                  json=_body(m.InviteRequest, user_ids=user_ids,
                                             message=message),
                                  model=m.InviteResult)

    async def members(self, group_id: str, *, limit: int = 50, offset: int = 0
                      ) -> m.MemberList:
        return await self._c.call("groups.members", path={"group_id": group_id},
                                  params={"limit": limit, "offset": offset},
                                  model=m.MemberList)


class SearchApi(_Group):
    """``/search``: search, suggestions and the caller's search analytics."""

    async def search(self, query: str, *, type: m.SearchType = "all",
                     filters: m.SearchFilters | dict[str, Any] | None = None,
                     sort_by: str = "relevance", limit: int = 20, offset: int = 0
                     ) -> m.SearchResults:
        body = m.SearchRequest.model_validate({
            "query": query, "type": type, "sort_by": sort_by, "limit": limit, "offset": offset,
            **({"filters": filters} if filters is not None else {})})
        return await self._c.call("search.search", model=m.SearchResults,
                                  json=body.model_dump(mode="json", exclude_none=True))

    async def suggestions(self, q: str, *, type: m.SearchType = "all", limit: int = 10
                          ) -> m.Suggestions:
        return await self._c.call("search.suggestions", model=m.Suggestions,
                                  params={"q": q, "type": type, "limit": limit})

    async def overview(self) -> m.SearchOverview:
        return await self._c.call("search.overview", model=m.SearchOverview)

    async def trends(self, *, days: int = 30) -> m.SearchTrends:
        return await self._c.call("search.trends", params={"days": days},
                                  model=m.SearchTrends)

    async def status(self) -> m.ServiceStatus:
        return await self._c.call("search.status", model=m.ServiceStatus)


class NotificationsApi(_Group):
    """``/notifications``."""

    async def send(self, recipient_id: str, title: str, message: str, *,
                   type: m.SentNotificationType = "info", priority: m.Priority = "normal",
                   action_url: str | None = None, metadata: dict[str, Any] | None = None
                   ) -> m.Notification:
        body = _body(m.SendNotification, recipient_id=recipient_id, title=title,
                     message=message, type=type, priority=priority, action_url=action_url,
                     metadata=metadata)
        return await self._c.call("notifications.send", json=body, model=m.Notification)

    async def broadcast(self, recipient_ids: list[str], title: str, message: str, *,
                        type: m.SentNotificationType = "info", priority: m.Priority = "normal",
                        action_url: str | None = None, metadata: dict[str, Any] | None = None
                        ) -> m.BroadcastResult:
        body = _body(m.BroadcastNotification, recipient_ids=recipient_ids, title=title,
                     message=message, type=type, priority=priority, action_url=action_url,
                     metadata=metadata)
        return await self._c.call("notifications.broadcast", json=body,
                                  model=m.BroadcastResult)

    async def list(self, *, unread_only: bool = False, type: str | None = None,
                   include_archived: bool = False, limit: int = 50, offset: int = 0
                   ) -> m.NotificationList:
        return await self._c.call("notifications.list", model=m.NotificationList, params={
            "unread_only": unread_only, "type": type, "include_archived": include_archived,
            "limit": limit, "offset": offset})

    async def unread_count(self) -> m.UnreadCount:
        return await self._c.call("notifications.unread_count", model=m.UnreadCount)

    async def settings(self) -> m.NotificationSettings:
        return await self._c.call("notifications.settings", model=m.NotificationSettings)

    async def update_settings(self, **fields: Any) -> m.NotificationSettings:
        """Save settings: ``email_notifications``, ``push_notifications``,
        ``desktop_notifications``, ``sound_enabled``, ``notification_types`` (dict),
        ``quiet_hours`` (``{"start": "22:00", "end": "07:00"}``)."""
        body = m.NotificationSettingsUpdate.model_validate(fields)
        return await self._c.call("notifications.update_settings", model=m.NotificationSettings,
                                  json=body.model_dump(mode="json", exclude_unset=True))

    async def stats(self) -> m.NotificationStats:
        return await self._c.call("notifications.stats", model=m.NotificationStats)

    async def system_status(self) -> m.ServiceStatus:
        return await self._c.call("notifications.system_status", model=m.ServiceStatus)

    async def mark_all_read(self) -> m.ActionResult:
        return await self._c.call("notifications.mark_all_read", model=m.ActionResult)

    async def test(self) -> m.Notification:
        return await self._c.call("notifications.test", model=m.Notification)

    async def get(self, notification_id: str) -> m.Notification:
        return await self._c.call("notifications.get", path={"notification_id": notification_id},
                                  model=m.Notification)

    async def update(self, notification_id: str, *, read: bool | None = None,
                     archived: bool | None = None) -> m.Notification:
        return await self._c.call("notifications.update",
                                  path={"notification_id": notification_id},
                                  json=_body(m.NotificationChange, read=read, archived=archived),
                                  model=m.Notification)

    async def delete(self, notification_id: str) -> m.ActionResult:
        return await self._c.call("notifications.delete",
                                  path={"notification_id": notification_id},
                                  model=m.ActionResult)


class SystemApi(_Group):
    """``/system`` and discovery (no auth)."""

    async def discover(self) -> m.ServerDescription:
        """``GET /api/v1/``: the server's name, version and every route it serves."""
        return await self._c.call("system.discover", model=m.ServerDescription)

    async def describe(self) -> m.ServerDescription:
        """``GET /api/v1/info`` (the same description, for origin clients)."""
        return await self._c.call("system.describe", model=m.ServerDescription)

    async def health(self) -> m.Health:
        return await self._c.call("system.health", model=m.Health)

    async def info(self) -> m.SystemInfo:
        return await self._c.call("system.info", model=m.SystemInfo)

    async def metrics(self) -> m.SystemMetrics:
        return await self._c.call("system.metrics", model=m.SystemMetrics)

    async def status(self) -> m.SystemStatus:
        return await self._c.call("system.status", model=m.SystemStatus)

    async def version(self) -> m.Version:
        return await self._c.call("system.version", model=m.Version)

    async def ping(self) -> m.Ping:
        return await self._c.call("system.ping", model=m.Ping)

    async def time(self) -> m.ServerTime:
        return await self._c.call("system.time", model=m.ServerTime)

    async def capabilities(self) -> m.Capabilities:
        return await self._c.call("system.capabilities", model=m.Capabilities)

    async def stats(self) -> m.StatsSummary:
        return await self._c.call("system.stats", model=m.StatsSummary)


class RealtimeApi(_Group):
    """``/realtime``: the WebSocket subscription and the REST side."""

    def __init__(self, caller: Caller):
        super().__init__(caller)
        self._subscriptions: set[Subscription] = set()

    def subscribe(self, rooms: list[str] | tuple[str, ...] = (), *,
                  queue_size: int = 256) -> Subscription:
        """A subscription to the realtime socket that reconnects by itself and rejoins
        ``rooms``. Use it as ``async with``, or call ``start()`` / ``close()``;
        iterate it (or ``await sub.next("message")``) for :class:`models.RealtimeEvent`."""
        from api_integration_layer.realtime import Subscription

        self._c.check(ENDPOINTS["realtime.subscribe"])
        client = self._c.client
        subscription = Subscription(client, rooms, check=self._c.check, queue_size=queue_size)
        self._subscriptions.add(subscription)
        client._subscriptions.add(subscription)
        subscription.on_closed(self._subscriptions.discard)
        subscription.on_closed(client._subscriptions.discard)
        return subscription

    async def close_all(self) -> None:
        """Close every subscription made through this group (this client or facade)."""
        for subscription in list(self._subscriptions):
            await subscription.close()

    async def connections(self) -> m.Connections:
        return await self._c.call("realtime.connections", model=m.Connections)

    async def status(self) -> m.RealtimeStatus:
        return await self._c.call("realtime.status", model=m.RealtimeStatus)

    async def broadcast(self, type: str, data: dict[str, Any] | None = None, *,
                        room_id: str | None = None) -> m.RealtimeDelivery:
        body = _body(m.RealtimeEventRequest, type=type, data=data, room_id=room_id)
        return await self._c.call("realtime.broadcast", json=body, model=m.RealtimeDelivery)

    async def send(self, user_id: str, type: str, data: dict[str, Any] | None = None
                   ) -> m.RealtimeDelivery:
        body = _body(m.RealtimeEventRequest, type=type, data=data)
        return await self._c.call("realtime.send", path={"user_id": user_id}, json=body,
                                  model=m.RealtimeDelivery)


class WebhooksApi(_Group):
    """``/webhooks``: outbound, signed event deliveries."""

    async def register(self, url: str, events: list[str], *, secret: str | None = None,
                       description: str | None = None, active: bool = True,
                       disable_after: int | None = None) -> m.Webhook:
        """Register a webhook; the answer (only this one) carries the full ``secret``.
        ``disable_after``: switch it off after that many consecutive failed deliveries."""
        body = _body(m.RegisterWebhook, url=url, events=events, secret=secret,
                     description=description, active=active, disable_after=disable_after)
        return await self._c.call("webhooks.register", json=body, model=m.Webhook)

    async def events(self) -> m.WebhookEvents:
        return await self._c.call("webhooks.events", model=m.WebhookEvents)

    async def list(self, *, limit: int = 50, offset: int = 0) -> m.WebhookList:
        return await self._c.call("webhooks.list", params={"limit": limit, "offset": offset},
                                  model=m.WebhookList)

    async def get(self, webhook_id: str) -> m.Webhook:
        return await self._c.call("webhooks.get", path={"webhook_id": webhook_id},
                                  model=m.Webhook)

    async def update(self, webhook_id: str, *, url: str | None = None,
                     events: list[str] | None = None, description: str | None = None,
                     active: bool | None = None, disable_after: int | None = None
                     ) -> m.Webhook:
        """Change a webhook; ``active=True`` also clears an automatic disable."""
        body = _body(m.WebhookUpdate, url=url, events=events, description=description,
                     active=active, disable_after=disable_after)
        return await self._c.call("webhooks.update", path={"webhook_id": webhook_id},
                                  json=body, model=m.Webhook)

    async def delete(self, webhook_id: str) -> m.ActionResult:
        return await self._c.call("webhooks.delete", path={"webhook_id": webhook_id},
                                  model=m.ActionResult)

    async def test(self, webhook_id: str, *, wait: bool = False,
                   timeout: float | None = None) -> m.Delivery:
        """Send a ``webhook.test`` event; ``wait=True`` returns after the first attempt
        (give a ``timeout`` longer than the server's webhook timeout: a receiver that
        hangs holds the answer that long)."""
        return await self._c.call("webhooks.test", path={"webhook_id": webhook_id},
                                  params={"wait": wait}, model=m.Delivery, timeout=timeout)

    async def deliveries(self, webhook_id: str, *, status: str | None = None,
                         event: str | None = None, since: dt.datetime | str | None = None,
                         until: dt.datetime | str | None = None, limit: int = 50,
                         offset: int = 0) -> m.DeliveryList:
        """One webhook's log, newest first; ``status``, ``event`` and a time window filter."""
        params = {"status": status, "event": event, "since": _when(since),
                  "until": _when(until), "limit": limit, "offset": offset}
        return await self._c.call("webhooks.deliveries", path={"webhook_id": webhook_id},
                                  params={k: v for k, v in params.items() if v is not None},
                                  model=m.DeliveryList)

    async def all_deliveries(self, *, webhook_id: str | None = None, status: str | None = None,
                             event: str | None = None, since: dt.datetime | str | None = None,
                             until: dt.datetime | str | None = None,
                             updated_since: dt.datetime | str | None = None, limit: int = 50,
                             offset: int = 0) -> m.DeliveryLog:
        """The log across the caller's webhooks, newest first; ``updated_since`` gives only
        what changed after a time (to follow the log)."""
        params = {"webhook_id": webhook_id, "status": status, "event": event,
                  "since": _when(since), "until": _when(until),
                  "updated_since": _when(updated_since), "limit": limit, "offset": offset}
        return await self._c.call("webhooks.all_deliveries", model=m.DeliveryLog,
                                  params={k: v for k, v in params.items() if v is not None})

    async def redeliver(self, delivery_id: str, *, wait: bool = False,
                        timeout: float | None = None) -> m.Delivery:
        """Send one delivery again (a new delivery with the same body, ``redelivery_of``
        set); ``wait=True`` returns after its first attempt (``timeout``: as for
        :meth:`test`)."""
        return await self._c.call("webhooks.redeliver", path={"delivery_id": delivery_id},
                                  params={"wait": wait}, model=m.Delivery, timeout=timeout)

    async def recover(self, webhook_id: str, since: dt.datetime | str, *,
                      until: dt.datetime | str | None = None) -> m.RecoverResult:
        """Send again every failed delivery created since ``since`` (and until ``until``)
        that was not sent again already."""
        body = {"since": _when(since), **({"until": _when(until)} if until else {})}
        return await self._c.call("webhooks.recover", path={"webhook_id": webhook_id},
                                  json=body, model=m.RecoverResult)

    async def rotate_secret(self, webhook_id: str, *, secret: str | None = None,
                            grace_seconds: int = 86_400) -> m.Webhook:
        """A new signing secret (in the answer only); the previous one stays valid for
        ``grace_seconds``."""
        body: dict[str, Any] = {"grace_seconds": grace_seconds}
        if secret is not None:
            body["secret"] = secret
        return await self._c.call("webhooks.rotate_secret", path={"webhook_id": webhook_id},
                                  json=body, model=m.Webhook)

    async def delivery(self, delivery_id: str) -> m.Delivery:
        return await self._c.call("webhooks.delivery", path={"delivery_id": delivery_id},
                                  model=m.Delivery)


class AnalyticsApi(_Group):
    """``/analytics``: usage, trends and reports over the stored data."""

    async def usage(self, *, days: int = 30, compare: bool = False) -> m.Usage:
        """Server-wide counts over the last ``days`` UTC days; ``compare=True`` adds
        ``previous``, the same figures for the period of the same length before."""
        params: dict[str, Any] = {"days": days}
        if compare:  # only sent when asked, so older servers see the request they know
            params["compare"] = True
        return await self._c.call("analytics.usage", params=params, model=m.Usage)

    async def trends(self, *, days: int = 30, metrics: list[str] | None = None) -> m.Trends:
        return await self._c.call("analytics.trends", params={"days": days, "metrics": metrics},
                                  model=m.Trends)

    async def reports(self) -> m.ReportList:
        return await self._c.call("analytics.reports", model=m.ReportList)

    async def report(self, report_type: str, *, days: int = 30) -> m.Report:
        return await self._c.call("analytics.report", path={"report_type": report_type},
                                  params={"days": days, "format": "json"}, model=m.Report)

    async def report_csv(self, report_type: str, *, days: int = 30) -> str:
        response = await self._c.call("analytics.report", path={"report_type": report_type},
                                      params={"days": days, "format": "csv"}, raw=True)
        return str(response.text)


class BackupApi(_Group):
    """``/backup`` (administrators): create, list, download, upload, restore."""

    async def create(self, *, name: str | None = None, wait: bool = False) -> m.Backup:
        return await self._c.call("backup.create", params={"wait": wait},
                                  json={"name": name} if name is not None else None,
                                  model=m.Backup)

    async def list(self, *, limit: int = 50, offset: int = 0) -> m.BackupList:
        return await self._c.call("backup.list", params={"limit": limit, "offset": offset},
                                  model=m.BackupList)

    async def status(self, backup_id: str) -> m.Backup:
        return await self._c.call("backup.status", path={"backup_id": backup_id},
                                  model=m.Backup)

    async def get(self, backup_id: str) -> m.Backup:
        return await self._c.call("backup.get", path={"backup_id": backup_id}, model=m.Backup)

    async def download(self, backup_id: str, *, verify: bool = True) -> m.Download:
        response = await self._c.call("backup.download", path={"backup_id": backup_id},
                                      raw=True)
        return _download(response, verify)

    async def download_to(self, backup_id: str, destination: str | Path, *,
                          verify: bool = True) -> Path:
        """Stream the archive to ``destination`` (a file path) instead of memory, checking
        its SHA-256 against ``X-Content-SHA256``; a partial file is removed when anything
        fails (a damaged archive raises ``ChecksumMismatch``)."""
        self._c.check(ENDPOINTS["backup.download"])
        target = Path(destination)
        digest = hashlib.sha256()
        try:
            async with self._c.client.stream(
                    "backup.download", path={"backup_id": backup_id},
                    caller=getattr(self._c, "plugin_id", None)) as response:
                with target.open("wb") as handle:
                    async for chunk in response.aiter_bytes():
                        digest.update(chunk)
                        handle.write(chunk)
                announced = response.headers.get("x-content-sha256")
            if verify and announced and announced.lower() != digest.hexdigest():
                raise ChecksumMismatch(f"backup {backup_id}: the download's SHA-256 is "
                                       f"{digest.hexdigest()}, the server announced "
                                       f"{announced}")
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target

    async def upload(self, archive: FileSource, checksum: str, *, name: str | None = None,
                     filename: str | None = None) -> m.Backup:
        fname, content = await _read_source(archive, filename or "backup.zip")
        data = {"checksum": checksum}
        if name is not None:
            data["name"] = name
        return await self._c.call("backup.upload", data=data, model=m.Backup,
                                  files={"file": (fname, content, "application/zip")})

    async def restore(self, backup_id: str, *, confirm: bool, checksum: str | None = None
                      ) -> m.RestoreResult:
        """Replace **all** of the server's data with the backup; ``confirm=True`` is
        required. Sessions issued after the backup stop working."""
        body = {"confirm": confirm, **({"checksum": checksum} if checksum else {})}
        return await self._c.call("backup.restore", path={"backup_id": backup_id}, json=body,
                                  model=m.RestoreResult)

    async def delete(self, backup_id: str) -> m.ActionResult:
        return await self._c.call("backup.delete", path={"backup_id": backup_id},
                                  model=m.ActionResult)


class PerformanceApi(_Group):
    """``/performance``: the server's metrics, history and alerts."""

    async def metrics(self) -> m.PerformanceMetrics:
        return await self._c.call("performance.metrics", model=m.PerformanceMetrics)

    async def history(self, *, minutes: float = 60, limit: int = 100, offset: int = 0
                      ) -> m.PerformanceHistory:
        return await self._c.call("performance.history", model=m.PerformanceHistory,
                                  params={"minutes": minutes, "limit": limit, "offset": offset})

    async def alerts(self, *, active_only: bool = False, limit: int = 50, offset: int = 0
                     ) -> m.PerformanceAlerts:
        return await self._c.call("performance.alerts", model=m.PerformanceAlerts, params={
            "active_only": active_only, "limit": limit, "offset": offset})

    async def summary(self) -> m.PerformanceSummary:
        return await self._c.call("performance.summary", model=m.PerformanceSummary)


class KeysApi(_Group):
    """``/users/me/keys``, ``/users/{user_id}/keys``: the public-key directory for
    end-to-end encrypted messages (the server never sees a private key)."""

    async def publish(self, public_key: str, *, algorithm: str = "x25519") -> m.PublishedKey:
        """Publish (or replace) the caller's public key (base64url of the raw key)."""
        return await self._c.call("keys.publish", json={"algorithm": algorithm,
                                                        "public_key": public_key},
                                  model=m.PublishedKey)

    async def get(self, user_id: str) -> m.UserKeys:
        """A user's published keys (empty ``keys`` when none); 404 unknown user."""
        return await self._c.call("keys.get", path={"user_id": user_id}, model=m.UserKeys)

    async def withdraw(self) -> m.ActionResult:
        return await self._c.call("keys.withdraw", model=m.ActionResult)


def _chat_messages(messages: Sequence[m.ChatMessage | dict[str, Any] | tuple[str, str]]
                   ) -> list[dict[str, Any]]:
    """Messages as the API takes them: models, dicts or ``(role, content)`` pairs."""
    out = []
    for item in messages:
        if isinstance(item, tuple):
            item = {"role": item[0], "content": item[1]}
        message = item if isinstance(item, m.ChatMessage) else m.ChatMessage.model_validate(item)
        out.append(message.model_dump())
    return out


ChatInput = Sequence[m.ChatMessage | dict[str, Any] | tuple[str, str]] | str


class AiApi(_Group):
    """``/ai``: chat (whole or streamed), models, providers, health, usage, moderation.

    Models are ``"<provider>/<model>"`` (``"builtin/plexi-rules"``, ``"ollama/llama3.2"``);
    ``model=None`` uses the server's default. ``messages`` may be a plain string (one user
    message), ``(role, content)`` pairs, dicts or :class:`models.ChatMessage`.
    """

    @staticmethod
    def _chat_body(messages: ChatInput, model: str | None, max_tokens: int | None,
                   temperature: float | None, top_p: float | None,
                   stop: list[str] | None, stream: bool) -> dict[str, Any]:
        listed = [("user", messages)] if isinstance(messages, str) else messages
        fields = {"messages": _chat_messages(listed), "model": model, "stream": stream,
                  "max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
                  "stop": stop}
        # Checked here as the server would (a bad role or temperature fails before sending).
        return m.ChatRequest.model_validate(
            {k: v for k, v in fields.items() if v is not None}).model_dump(
            mode="json", exclude_none=True)

    async def chat(self, messages: ChatInput, *, model: str | None = None,
                   max_tokens: int | None = None, temperature: float | None = None,
                   top_p: float | None = None, stop: list[str] | None = None
                   ) -> m.ChatCompletion:
        """The whole answer (``.content``, ``.usage``). A provider that is down or answers
        badly raises with the server's 502/503/504 naming it."""
        body = self._chat_body(messages, model, max_tokens, temperature, top_p, stop, False)
        return await self._c.call("ai.chat", json=body, model=m.ChatCompletion)

    async def chat_stream(self, messages: ChatInput, *, model: str | None = None,
                          max_tokens: int | None = None, temperature: float | None = None,
                          top_p: float | None = None, stop: list[str] | None = None
                          ) -> AsyncIterator[m.ChatDelta]:
        """The answer as it is generated: one :class:`models.ChatDelta` per piece of text,
        then one with ``finish_reason`` and one with ``usage``. Leaving the loop early
        closes the connection, and the server cancels the generation. A provider failure
        before the first piece raises :class:`ApiHTTPError` (502/503/504); one after it
        raises :class:`ApiHTTPError` with the status the stream's error event carries."""
        self._c.check(ENDPOINTS["ai.chat"])
        body = self._chat_body(messages, model, max_tokens, temperature, top_p, stop, True)
        async with self._c.client.stream("ai.chat", json=body,
                                         caller=getattr(self._c, "plugin_id", None)
                                         ) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    # Read on to the end of the body (nothing follows) rather than return:
                    # a return leaves aiter_lines() suspended, and where the loop installs
                    # no async-generator hooks (qasync, the desktop window) the garbage
                    # collector closes it outside the loop: the connection is not released.
                    continue
                chunk = json.loads(data)
                if "error" in chunk:
                    error = chunk["error"]
                    raise ApiHTTPError("POST", "/ai/chat", int(error.get("code") or 502),
                                       error.get("message") or str(error))
                delta = m.ChatDelta(id=chunk.get("id", ""), model=chunk.get("model", ""))
                if chunk.get("usage") is not None:
                    delta.usage = m.ChatUsage.model_validate(chunk["usage"])
                    delta.usage_estimated = chunk.get("usage_estimated")
                    yield delta
                    continue
                for choice in chunk.get("choices") or ():
                    delta.content = (choice.get("delta") or {}).get("content") or ""
                    delta.finish_reason = choice.get("finish_reason")
                    if delta.content or delta.finish_reason:
                        yield delta

    async def request(self, prompt: str, *, model_id: str | None = None,
                      system_prompt: str | None = None, max_tokens: int | None = None,
                      temperature: float | None = None) -> m.AiRequestResult:
        """The original PlexiChat's ``POST /ai/request`` (prompt in, content out)."""
        body = {k: v for k, v in {"prompt": prompt, "model_id": model_id,
                                  "system_prompt": system_prompt, "max_tokens": max_tokens,
                                  "temperature": temperature}.items() if v is not None}
        return await self._c.call("ai.request", json=body, model=m.AiRequestResult)

    async def models(self) -> m.AiModelList:
        """Every enabled provider's models, asked of the providers now."""
        return await self._c.call("ai.models", model=m.AiModelList)

    async def providers(self) -> m.AiProviderList:
        return await self._c.call("ai.providers", model=m.AiProviderList)

    async def configure_provider(self, name: str, **fields: Any) -> m.AiProvider:
        """Add or change provider ``name`` (administrators): ``base_url``, ``api_key``
        (write-only), ``enabled``, ``timeout``, ``models`` (allowlist), ``kind``,
        ``model_path``, ``clear_api_key``."""
        body = m.AiProviderConfig.model_validate(fields).model_dump(mode="json",
                                                                    exclude_none=True)
        return await self._c.call("ai.configure_provider", path={"name": name}, json=body,
                                  model=m.AiProvider)

    async def delete_provider(self, name: str) -> m.ActionResult:
        return await self._c.call("ai.delete_provider", path={"name": name},
                                  model=m.ActionResult)

    async def test_provider(self, name: str, *, model: str | None = None,
                            prompt: str | None = None) -> m.AiProviderTest:
        """A real short chat with the provider (administrators); ``ok`` says how it went."""
        body = {k: v for k, v in {"model": model, "prompt": prompt}.items() if v is not None}
        return await self._c.call("ai.test_provider", path={"name": name}, json=body,
                                  model=m.AiProviderTest)

    async def health(self) -> m.AiHealth:
        return await self._c.call("ai.health", model=m.AiHealth)

    async def usage(self, *, days: int = 30, all_users: bool = False) -> m.AiUsage:
        """Requests and tokens per user and model; everyone's with ``all_users``
        (administrators)."""
        return await self._c.call("ai.usage", params={"days": days, "all_users": all_users},
                                  model=m.AiUsage)

    async def moderate(self, text: str | list[str]) -> m.Moderation:
        """The server's local moderation rules on ``text`` (one or a list)."""
        return await self._c.call("ai.moderate", json={"input": text}, model=m.Moderation)


class CollaborationApi(_Group):
    """``/collaboration``: shared documents edited live (Yjs over y-websocket)."""

    async def create(self, title: str, *, collaboration_type: m.CollaborationType = "document",
                     initial_content: str = "", max_users: int = 50,
                     join_role: m.JoinRole = "editor") -> m.CollaborationSession:
        """A new session owned by the caller; ``join_role="viewer"`` makes joiners
        read-only until the owner promotes them."""
        body = _body(m.CreateCollaboration, title=title, collaboration_type=collaboration_type,
                     initial_content=initial_content, max_users=max_users,
                     join_role=join_role)
        return await self._c.call("collaboration.create", json=body,
                                  model=m.CollaborationSession)

    async def list(self, *, limit: int = 50, offset: int = 0) -> m.CollaborationSessionList:
        """The sessions the caller is a member of, most recently changed first."""
        return await self._c.call("collaboration.list", params={"limit": limit,
                                                                 "offset": offset},
                                  model=m.CollaborationSessionList)

    async def stats(self) -> m.CollaborationStats:
        return await self._c.call("collaboration.stats", model=m.CollaborationStats)

    async def get(self, session_id: str) -> m.CollaborationSession:
        """The session with its members and current content."""
        return await self._c.call("collaboration.get", path={"session_id": session_id},
                                  model=m.CollaborationSession)

    async def delete(self, session_id: str) -> m.ActionResult:
        return await self._c.call("collaboration.delete", path={"session_id": session_id},
                                  model=m.ActionResult)

    async def join(self, session_id: str, role: m.CollaborationRole = "editor"
                   ) -> m.CollaborationSession:
        return await self._c.call("collaboration.join", path={"session_id": session_id},
                                  json=_body(m.JoinCollaboration, role=role),
                                  model=m.CollaborationSession)

    async def leave(self, session_id: str) -> m.ActionResult:
        return await self._c.call("collaboration.leave", path={"session_id": session_id},
                                  model=m.ActionResult)

    async def set_role(self, session_id: str, user_id: str, role: m.JoinRole
                       ) -> m.RoleChanged:
        """Make a member an editor or a viewer (the session's owner only)."""
        return await self._c.call("collaboration.set_role",
                                  path={"session_id": session_id, "user_id": user_id},
                                  json=_body(m.MemberRole, role=role), model=m.RoleChanged)

    async def session_stats(self, session_id: str) -> m.CollaborationSessionStats:
        return await self._c.call("collaboration.session_stats",
                                  path={"session_id": session_id},
                                  model=m.CollaborationSessionStats)

    async def content(self, session_id: str, *, format: str = "text"
                      ) -> m.CollaborationContent:
        """The document's text now (``format="markdown"``: under the title)."""
        return await self._c.call("collaboration.content", path={"session_id": session_id},
                                  params={"format": format}, model=m.CollaborationContent)

    async def ticket(self, session_id: str) -> m.CollaborationTicket:
        """A single-use ticket for the session's socket (valid for a minute)."""
        return await self._c.call("collaboration.ticket", path={"session_id": session_id},
                                  model=m.CollaborationTicket)

    async def history(self, session_id: str, *, limit: int = 50, offset: int = 0
                      ) -> m.SnapshotList:
        return await self._c.call("collaboration.history", path={"session_id": session_id},
                                  params={"limit": limit, "offset": offset},
                                  model=m.SnapshotList)

    async def snapshot(self, session_id: str, label: str = "") -> m.Snapshot:
        """Keep the current text as a snapshot (editors and the owner)."""
        return await self._c.call("collaboration.snapshot", path={"session_id": session_id},
                                  json=_body(m.SnapshotRequest, label=label),
                                  model=m.Snapshot)

    async def get_snapshot(self, session_id: str, snapshot_id: str) -> m.Snapshot:
        return await self._c.call("collaboration.get_snapshot",
                                  path={"session_id": session_id, "snapshot_id": snapshot_id},
                                  model=m.Snapshot)

    async def restore(self, session_id: str, snapshot_id: str) -> m.SnapshotRestored:
        """Make the text the snapshot's again (a new change every peer receives)."""
        return await self._c.call("collaboration.restore",
                                  path={"session_id": session_id, "snapshot_id": snapshot_id},
                                  model=m.SnapshotRestored)

    def open(self, session_id: str, doc: Doc[Any] | None = None
             ) -> contextlib.AbstractAsyncContextManager[LiveDocument]:
        """``async with client.collaboration.open(session_id) as live:`` a
        :class:`~api_integration_layer.collaboration.LiveDocument` kept in sync until the
        block ends (``live.text`` is the shared text). Pass ``doc`` (a ``pycrdt.Doc``)
        to merge edits made offline into the session."""
        from urllib.parse import quote

        from api_integration_layer.client import format_path, websocket_url
        from api_integration_layer.collaboration import live_document

        endpoint = ENDPOINTS["collaboration.open"]
        self._c.check(endpoint)

        @contextlib.asynccontextmanager
        async def opened() -> AsyncIterator[LiveDocument]:
            ticket = await self.ticket(session_id)
            url = websocket_url(self._c.client.base_url, format_path(
                endpoint, {"session_id": session_id})) + "?ticket=" + quote(ticket.ticket)
            async with live_document(url, ticket.role, doc) as live:
                yield live

        return opened()


class Groups:
    """The endpoint groups over one caller; the client and the scoped facade are both."""

    def __init__(self, caller: Caller):
        self.auth = AuthApi(caller)
        self.users = UsersApi(caller)
        self.messages = MessagesApi(caller)
        self.files = FilesApi(caller)
        self.groups = GroupsApi(caller)
        self.search = SearchApi(caller)
        self.notifications = NotificationsApi(caller)
        self.system = SystemApi(caller)
        self.realtime = RealtimeApi(caller)
        self.webhooks = WebhooksApi(caller)
        self.analytics = AnalyticsApi(caller)
        self.backup = BackupApi(caller)
        self.performance = PerformanceApi(caller)
        self.keys = KeysApi(caller)
        self.collaboration = CollaborationApi(caller)
        self.ai = AiApi(caller)

    async def discover(self) -> DiscoveryReport:
        """The server's description compared with the endpoints this client knows."""
        from api_integration_layer.discovery import compare

        return compare(await self.system.discover())
