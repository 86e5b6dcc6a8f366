"""The session: the tokens of the logged-in user, refreshed ahead of expiry and after a 401.

Refresh tokens rotate on the server, and presenting one that was already used revokes the
whole session. So refreshing is serialised (one lock) and a caller whose token was already
replaced by a concurrent refresh just uses the new one instead of refreshing again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from api_integration_layer.errors import ApiHTTPError, ApiUnavailable, NotAuthenticated
from api_integration_layer.tokens import FallbackTokenStore, TokenSet, TokenStore

if TYPE_CHECKING:
    from api_integration_layer.client import ApiClient

log = logging.getLogger(__name__)


class Session:
    """Holds the :class:`TokenSet` and keeps it valid; persisted through a token store."""

    def __init__(self, client: ApiClient, store: TokenStore | FallbackTokenStore, key: str,
                 refresh_margin: float, memory: MutableMapping[str, Any] | None = None):
        self._client = client
        self.store = store
        self.key = key
        # For as long as ``memory`` lasts (the layer passes ctx.memory, which outlives its
        # reloads): sessions not to be kept ("keep me logged in" unticked), and that
        # choice of each login waiting for its 2FA step, by challenge.
        memory = {} if memory is None else memory
        self.unkept: MutableMapping[str, TokenSet] = memory.setdefault("unkept_tokens", {})
        self.pending_remember: MutableMapping[str, bool] = memory.setdefault(
            "mfa_remember", {})
        self.refresh_margin = refresh_margin
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[Session], Any]] = []
        self.refreshes = 0
        # Refresh attempts ended, and how the last one failed to reach the server: the
        # callers that queued behind it share that answer instead of each trying again.
        self._attempts = 0
        self._unreachable: ApiUnavailable | None = None
        try:
            self.tokens: TokenSet | None = store.load(key)
        except Exception as exc:
            log.warning("could not read the stored session (%s); starting logged out", exc)
            self.tokens = None
        if self.tokens is None:
            self.tokens = self.unkept.get(key)

    # -- state ---------------------------------------------------------------------------
    @property
    def identity(self) -> str:
        """Whose answers the cache holds: the user id, '' when logged out."""
        return self.tokens.user_id if self.tokens else ""

    @property
    def logged_in(self) -> bool:
        return self.tokens is not None

    def on_change(self, listener: Callable[[Session], Any]) -> None:
        """Call ``listener(session)`` after every login, refresh and logout."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in list(self._listeners):
            try:
                listener(self)
            except Exception:
                log.exception("session listener %r failed", listener)

    def set(self, body: dict[str, Any]) -> TokenSet:
        """Adopt the tokens of a login or refresh answer; store them when the login asked
        to be kept ("keep me logged in"), else forget any stored ones: the session lasts
        until the app stops."""
        kept_before = self.tokens is None or self.tokens.remember
        self.tokens = TokenSet.from_login(body)
        try:
            if self.tokens.remember:
                self.unkept.pop(self.key, None)
                self.store.save(self.key, self.tokens)
            else:
                self.unkept[self.key] = self.tokens
                if kept_before:  # a refresh of an unkept one has nothing stored to forget
                    self.store.delete(self.key)
        except Exception as exc:
            # The session still works for this run; only keeping it across restarts failed.
            log.warning("could not store the session tokens (%s)", exc)
        self._changed()
        return self.tokens

    def clear(self) -> None:
        """Forget the session here and in the store."""
        had = self.tokens is not None
        self.tokens = None
        self.unkept.pop(self.key, None)
        try:
            self.store.delete(self.key)
        except Exception as exc:
            log.warning("could not delete the stored session tokens (%s)", exc)
        if had:
            self._changed()

    def margin(self, tokens: TokenSet) -> float:
        """How long before expiry to refresh: the setting, at most a quarter of the token's
        lifetime (a 2-second token is refreshed after 1.5 s, not at once)."""
        return min(self.refresh_margin, tokens.lifetime / 4)

    def describe(self) -> dict[str, Any] | None:
        t = self.tokens
        if t is None:
            return None
        now = time.time()
        return {"user_id": t.user_id, "username": t.username, "session_id": t.session_id,
                "permissions": list(t.permissions), "expires_at": t.expires_at,
                "expires_in": round(t.expires_at - now, 3),
                "refresh_expires_at": t.refresh_expires_at, "refreshes": self.refreshes,
                "kept": t.remember}

    # -- tokens for requests ---------------------------------------------------------------
    async def access_token(self) -> str | None:
        """The access token to send, refreshed first when it is about to expire."""
        t = self.tokens
        if t is None:
            return None
        if self.refresh_margin > 0 and t.expires_in() <= self.margin(t) and self._refreshable(t):
            try:
                await self.refresh(t.access_token)
            except ApiUnavailable as exc:
                # The server is unreachable: the request will fail or succeed on its own.
                log.info("refreshing ahead of expiry failed (%s); using the current token", exc)
        return self.tokens.access_token if self.tokens else None

    async def recover(self, used: str | None) -> bool:
        """After a 401 for ``used``: whether the request may be sent again with a new
        token (someone refreshed meanwhile, or a refresh worked now)."""
        t = self.tokens
        if t is None:
            return False
        if used is not None and t.access_token != used:
            return True
        try:
            return await self.refresh(used)
        except NotAuthenticated:
            return False

    def _refreshable(self, t: TokenSet) -> bool:
        return t.refresh_expires_at is None or t.refresh_expires_at > time.time()

    async def refresh(self, used: str | None = None) -> bool:
        """Rotate the tokens with ``/auth/refresh``. Raises :class:`NotAuthenticated`
        (and forgets the session) when the server refuses the refresh token."""
        queued_at = self._attempts
        async with self._lock:
            if self._attempts != queued_at and self._unreachable is not None:
                # The refresh tried while this caller waited found no server: trying
                # again at once only multiplied the wait (five callers, five timeouts).
                raise self._unreachable
            t = self.tokens
            if t is None:
                raise NotAuthenticated("POST", "/auth/refresh", 401,
                                       "not logged in: call auth.login first")
            if used is not None and t.access_token != used:
                return True  # a concurrent refresh already replaced it
            if not self._refreshable(t):
                self.clear()
                raise NotAuthenticated("POST", "/auth/refresh", 401,
                                       "the session expired; log in again")
            self._unreachable = None
            try:
                body = await self._client.call("auth.refresh",
                                               json={"refresh_token": t.refresh_token})
            except ApiUnavailable as exc:
                self._unreachable = exc
                raise
            except ApiHTTPError as exc:
                if exc.status in (400, 401, 403, 422):
                    self.clear()
                    raise NotAuthenticated("POST", "/auth/refresh", 401,
                                           f"the session ended: {exc.detail}; log in again",
                                           exc.headers) from exc
                raise
            finally:
                self._attempts += 1
            self.refreshes += 1
            body.setdefault("remember_me", t.remember)  # a server that does not say
            self.set(body)
            return True
