"""The client as other plugins get it: the same methods, limited to declared scopes.

``ctx.api`` (``ctx.service("api")``) in a plugin that requires ``api_integration_layer``
returns a :class:`ScopedApi`. Every call checks, before anything is sent, that the scope
of the endpoint is among the plugin's ``[permissions] api_scopes``; otherwise it raises
:class:`errors.ApiPermissionError` naming the plugin, the scope and the call.

The facade shares the layer's session, cache, rate limiter and request log (calls are
logged with the plugin's id). Scopes make what a plugin does with the API explicit and
reviewable; they are not a sandbox: plugins run in the app's own Python process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from api_integration_layer.batch import BatchResult
from api_integration_layer.client import ApiClient
from api_integration_layer.endpoints import (
    SCOPES,
    Endpoint,
    endpoint_named,
    scope_matches,
    unknown_scopes,
)
from api_integration_layer.errors import ApiPermissionError, UnknownScopeError
from api_integration_layer.groups import Groups

T = TypeVar("T")


class ScopedCaller:
    """Checks scopes, then hands the call to the client with the plugin's id."""

    def __init__(self, client: ApiClient, plugin_id: str, scopes: Iterable[str]):
        self._client = client
        self.plugin_id = plugin_id
        self.scopes: tuple[str, ...] = tuple(dict.fromkeys(scopes))
        bad = unknown_scopes(list(self.scopes))
        if bad:
            raise UnknownScopeError(
                f"plugin '{plugin_id}' declares unknown API scope(s) {', '.join(bad)} in "
                f"[permissions] api_scopes; known scopes: {', '.join(SCOPES)} (or "
                "'<group>:*', '*')")

    @property
    def client(self) -> ApiClient:
        return self._client

    def allows(self, scope: str) -> bool:
        return any(scope_matches(granted, scope) for granted in self.scopes)

    def check(self, endpoint: Endpoint) -> None:
        if not self.allows(endpoint.scope):
            raise ApiPermissionError(self.plugin_id, endpoint.scope, endpoint.call,
                                     list(self.scopes))

    async def call(self, name: str, **kwargs: Any) -> Any:
        self.check(endpoint_named(name))
        kwargs["caller"] = self.plugin_id
        return await self._client.call(name, **kwargs)


class ScopedApi(Groups):
    """The PlexiChat v1 client for one plugin, limited to its declared scopes.

    Same groups and methods as the layer's client (``api.messages.send(...)``,
    ``api.files.upload(...)``, ``api.realtime.subscribe(...)``, ...), plus
    :attr:`user`, :meth:`allows`, :meth:`batch` and :meth:`discover`. Scope names: see
    :data:`endpoints.SCOPES` and the plugin's README.
    """

    def __init__(self, client: ApiClient, plugin_id: str, scopes: Iterable[str]):
        self._caller = ScopedCaller(client, plugin_id, scopes)
        super().__init__(self._caller)

    @property
    def plugin_id(self) -> str:
        return self._caller.plugin_id

    @property
    def scopes(self) -> tuple[str, ...]:
        """The scopes the plugin declared."""
        return self._caller.scopes

    def allows(self, scope: str) -> bool:
        """Whether a call needing ``scope`` (e.g. ``"messages:write"``) is allowed."""
        return self._caller.allows(scope)

    @property
    def base_url(self) -> str:
        return self._caller.client.base_url

    @property
    def user(self) -> dict[str, Any] | None:
        """``{id, username}`` of the logged-in user (the session is the layer's, shared
        by every plugin), None when nobody is logged in."""
        return self._caller.client.user

    @property
    def logged_in(self) -> bool:
        return self._caller.client.session.logged_in

    async def call(self, name: str, **kwargs: Any) -> Any:
        """A raw call of endpoint ``name`` (``endpoints.ENDPOINTS``), scope-checked."""
        return await self._caller.call(name, **kwargs)

    def bypass_cache(self) -> contextlib.AbstractContextManager[Any]:
        """GETs in this block skip the shared cache."""
        return self._caller.client.bypass_cache()  # type: ignore[no-any-return]

    async def batch(self, calls: Iterable[Callable[[], Awaitable[T]]],
                    concurrency: int | None = None) -> BatchResult[T]:
        """Run calls with bounded concurrency and a result per item (see ApiClient)."""
        return await self._caller.client.batch(calls, concurrency)

    async def batch_map(self, fn: Callable[[Any], Awaitable[T]], items: Iterable[Any],
                        concurrency: int | None = None) -> BatchResult[T]:
        return await self._caller.client.batch_map(fn, items, concurrency)

    def __repr__(self) -> str:
        return f"<ScopedApi plugin={self.plugin_id!r} scopes={list(self.scopes)!r}>"
