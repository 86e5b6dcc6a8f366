"""The async PlexiChat v1 client: one request pipeline under typed endpoint groups.

Every call goes through :meth:`ApiClient.call`: cache lookup (GETs) -> rate limiter ->
access token (refreshed ahead of expiry) -> the HTTP request -> retries of transient
failures (idempotent requests only) -> one refresh and resend after a 401 -> waiting out
a 429's Retry-After -> cache invalidation after writes -> a typed answer. Each call is
recorded in :attr:`ApiClient.activity` (method, path, status, latency, cache hit).

    async with ApiClient("http://127.0.0.1:8000/api/v1") as client:
        await client.auth.login("ann", "Corr3ct-Horse-Battery")
        await client.messages.send(bob_id, "hello")
        history = await client.messages.conversation(bob_id)
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, MutableMapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ValidationError

from api_integration_layer.activity import ActivityLog, RequestRecord
from api_integration_layer.batch import BatchResult, run_batch
from api_integration_layer.cache import ResponseCache
from api_integration_layer.config import ClientConfig
from api_integration_layer.endpoints import ENDPOINTS, Endpoint, endpoint_named
from api_integration_layer.errors import (
    ApiHTTPError,
    ApiUnavailable,
    InvalidCredentials,
    InvalidResponse,
    NotAuthenticated,
    RateLimited,
)
from api_integration_layer.groups import Groups
from api_integration_layer.ratelimit import GLOBAL, SCOPE_HEADER, PausedError, RateLimiter
from api_integration_layer.retry import RetryPolicy
from api_integration_layer.session import Session
from api_integration_layer.tokens import FallbackTokenStore, MemoryTokenStore, TokenStore
from plexichat_desktop.plugins.tls import shared_tls_context

if TYPE_CHECKING:
    from api_integration_layer.realtime import Subscription

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

# How many 429s in a row one call waits out before giving up.
MAX_RATE_LIMIT_WAITS = 3
_bypass_cache: contextvars.ContextVar[bool] = contextvars.ContextVar("bypass_cache",
                                                                     default=False)


def join_url(base_url: str, path: str) -> str:
    """``base_url`` + ``path`` keeping every segment of the base.

    ``urljoin("http://h/api/v1", "auth/login")`` gives ``http://h/api/auth/login`` (the
    origin's bug: the last segment of a base without a trailing slash is replaced); this
    appends instead: ``http://h/api/v1/auth/login``.
    """
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def websocket_url(base_url: str, path: str) -> str:
    """The ws:// (or wss://) URL of ``path`` under ``base_url``; only the scheme changes
    (the origin's ``replace("http", "ws")`` also rewrote hosts containing "http")."""
    parts = urlsplit(join_url(base_url, path))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))


def format_path(endpoint: Endpoint, values: Mapping[str, Any] | None) -> str:
    """The endpoint's path with its parameters filled in, each quoted as one segment
    (an id like ``../admin`` cannot climb out of its place)."""
    values = values or {}
    missing = [p for p in endpoint.params if values.get(p) in (None, "")]
    if missing:
        raise ValueError(f"{endpoint.name}: missing path parameter(s) {', '.join(missing)}")
    path = endpoint.path
    for name in endpoint.params:
        value = str(values[name])
        if value in (".", ".."):
            # quote() leaves dots alone, and the URL's dot segment then climbed a level:
            # files.info with "..", for one, answered the server's /api/v1/info.
            raise ValueError(f"{endpoint.name}: path parameter {name}={value!r} is no id")
        path = path.replace("{" + name + "}", quote(value, safe=""))
    return path


def _query(params: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, list | tuple | set):
            out[key] = ",".join(str(v) for v in value)
        else:
            out[key] = str(value)
    return out


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), None when absent."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _detail(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    return body.get("detail", body) if isinstance(body, dict) else body


def bad_input_401(response: httpx.Response) -> bool:
    """A 401 about credentials the caller sent in the body (wrong current password, 2FA
    code, reset token: ``error="invalid_grant"``), not about the access token: refreshing
    cannot help, and the session must not be dropped for it."""
    return 'error="invalid_grant"' in response.headers.get("www-authenticate", "")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ApiClient(Groups):
    """The client. Endpoint groups are attributes (``auth``, ``users``, ``messages``,
    ``files``, ``groups``, ``search``, ``notifications``, ``system``, ``realtime``,
    ``webhooks``, ``analytics``, ``backup``, ``performance``, ``keys``, ``ai``,
    ``collaboration``); see :mod:`groups`.

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/api/v1``.
        config: timeouts, cache, rate limit, retries (defaults: :class:`ClientConfig`).
        token_store: where the session is kept (default: memory only).
        token_key: the session's key in the store (default: the base URL).
        memory: what must outlive this client but not the app (a session not to be
            kept, "keep me logged in" unticked, and that choice while a login waits for
            its 2FA step): the layer passes ``ctx.memory``, which outlives its reloads
            (default: this client only).
        transport: an httpx transport (tests, proxies).
        http_client: an ``httpx.AsyncClient`` to send with (its own limits, proxies,
            certificates); closed with this client. ``timeout`` still applies per call.
    """

    def __init__(self, base_url: str, config: ClientConfig | None = None, *,
                 token_store: TokenStore | FallbackTokenStore | None = None,
                 token_key: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 http_client: httpx.AsyncClient | None = None,
                 owner_token: str | None = None,
                 memory: MutableMapping[str, Any] | None = None):
        self.base_url = base_url.rstrip("/")
        # The app's token, sent with registrations only (the embedded server makes the
        # owner's first account its administrator); None for other servers.
        self.owner_token = owner_token
        self.config = config or ClientConfig()
        self._http = http_client or httpx.AsyncClient(
            timeout=self.config.timeout, transport=transport, follow_redirects=False,
            verify=shared_tls_context())
        self.cache = ResponseCache(self.config.cache_ttl, self.config.cache_max_entries)
        self.limiter = RateLimiter(self.config.rate_limit_per_second,
                                   self.config.rate_limit_burst)
        self.retry = RetryPolicy(self.config.max_retries, self.config.retry_base_delay,
                                 self.config.retry_max_delay)
        self.session = Session(self, token_store or MemoryTokenStore(),
                               token_key or self.base_url, self.config.refresh_margin,
                               memory)
        self.activity = ActivityLog(self.config.log_size)
        self.last_error: str | None = None
        self.last_ok_at: float | None = None
        self._closed = False
        self._subscriptions: set[Subscription] = set()
        super().__init__(self)

    # -- lifecycle -----------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close the connections and every realtime subscription."""
        if self._closed:
            return
        self._closed = True
        await self.close_subscriptions()
        await self._http.aclose()

    async def close_subscriptions(self) -> None:
        """Close every realtime subscription, whoever made it (the session ended)."""
        for subscription in list(self._subscriptions):
            await subscription.close()

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def client(self) -> ApiClient:
        return self

    @property
    def user(self) -> dict[str, Any] | None:
        """``{id, username}`` of the logged-in user, None when logged out."""
        t = self.session.tokens
        return None if t is None else {"id": t.user_id, "username": t.username}

    def check(self, endpoint: Endpoint) -> None:
        """Scope check hook; the unrestricted client allows everything."""

    def url(self, path: str) -> str:
        return join_url(self.base_url, path)

    @contextlib.contextmanager
    def bypass_cache(self) -> Any:
        """Within this block (this task and what it awaits), GETs skip the cache."""
        token = _bypass_cache.set(True)
        try:
            yield
        finally:
            _bypass_cache.reset(token)

    # -- batches -------------------------------------------------------------------------
    async def batch(self, calls: Iterable[Callable[[], Awaitable[T]]],
                    concurrency: int | None = None) -> BatchResult[T]:
        """Run ``calls`` (zero-argument callables returning awaitables), at most
        ``concurrency`` (default: the ``batch_concurrency`` setting) at a time, each with
        its own result or error."""
        return await run_batch(calls, concurrency or self.config.batch_concurrency)

    async def batch_map(self, fn: Callable[[Any], Awaitable[T]], items: Iterable[Any],
                        concurrency: int | None = None) -> BatchResult[T]:
        """``batch`` of ``fn(item)`` for every item."""
        return await self.batch([lambda item=item: fn(item) for item in items], concurrency)

    # -- the pipeline --------------------------------------------------------------------
    async def call(self, name: str, *, path: Mapping[str, Any] | None = None,
                   params: Mapping[str, Any] | None = None, json: Any = None,
                   files: Any = None, data: Mapping[str, Any] | None = None,
                   model: type[M] | None = None, raw: bool = False,
                   caller: str | None = None, timeout: float | None = None) -> Any:
        """Call endpoint ``name`` (see :data:`endpoints.ENDPOINTS`).

        Returns ``model`` parsed from the JSON answer, the JSON itself without a model,
        or the ``httpx.Response`` with ``raw``. Raises :class:`ApiHTTPError` (and its
        subclasses :class:`NotAuthenticated`, :class:`RateLimited`) for error answers and
        :class:`ApiUnavailable` when the server cannot be reached.

        ``timeout`` is the seconds each attempt may take; by default the ``timeout``
        setting, or ``slow_timeout`` for the endpoints marked slow (turning 2FA on, new
        recovery codes). After a timeout a request that is not repeatable (a POST) may
        still have been carried out by the server: :class:`ApiUnavailable` says so
        (``maybe_done``).
        """
        endpoint = endpoint_named(name)
        if timeout is None:
            timeout = (max(self.config.timeout, self.config.slow_timeout) if endpoint.slow
                       else self.config.timeout)
        rel = format_path(endpoint, path)
        query = _query(params)
        if isinstance(json, BaseModel):
            json = json.model_dump(mode="json", exclude_unset=True)
        cache_key = None
        if endpoint.is_cacheable and self.cache.enabled and not raw:
            identity = self.session.identity if endpoint.auth else ""
            cache_key = (identity, rel + ("?" + urlencode(sorted(query.items()))
                                          if query else ""))
        # A bypassing read still stores what it got: the next plain read went back to
        # the older answer.
        if cache_key is not None and not _bypass_cache.get():
            cached = self.cache.get(cache_key)
            if cached is not None:
                self._record(endpoint, rel, 200, 0.0, caller, cache_hit=True, statuses=[200])
                # A fresh object per hit: one caller changing its answer must not change
                # what the next one gets.
                return model.model_validate(cached) if model else copy.deepcopy(cached)
        generation = self.cache.generation
        started = time.perf_counter()
        statuses: list[int | None] = []
        try:
            response = await self._send(endpoint, rel, query, json, files, data, statuses,
                                        timeout)
        except ApiUnavailable as exc:
            # Offline is for a server that cannot be reached: one slow answer (a
            # timeout after sending) or a 503 of one route said so for the whole server.
            if exc.timeout is None and (not statuses or statuses[-1] is None):
                self.last_error = str(exc)
            if exc.maybe_done and endpoint.stale_prefixes:
                # It may have happened: a look at the state must not get the answer
                # from before it (the README's advice, defeated by the cache).
                self.cache.invalidate(endpoint.stale_prefixes)
            self._record(endpoint, rel, None, time.perf_counter() - started, caller,
                         statuses=statuses, error=exc.reason)
            raise
        except ApiHTTPError as exc:
            self._record(endpoint, rel, exc.status, time.perf_counter() - started, caller,
                         statuses=statuses, error=str(exc.detail))
            raise
        latency = time.perf_counter() - started
        self.last_ok_at, self.last_error = time.time(), None
        status = response.status_code
        # Redirects are not followed: a 3xx is no answer of the endpoint (it came back as
        # None, as if it had succeeded).
        if status >= 300:
            error = self._error(endpoint, rel, response)
            self._record(endpoint, rel, status, latency, caller, statuses=statuses,
                         error=str(error.detail))
            raise error
        if endpoint.stale_prefixes:
            self.cache.invalidate(endpoint.stale_prefixes)
        if raw:
            self._record(endpoint, rel, status, latency, caller, statuses=statuses)
            return response
        try:
            body = response.json() if response.content else None
            result = model.model_validate(body) if model else body
        except (ValueError, ValidationError) as exc:
            # ValidationError is a ValueError too; both mean the server is not speaking
            # the v1 contract here (an incompatible remote server, a proxy's error page).
            problem = InvalidResponse(f"{endpoint.method} {rel}: unexpected answer: "
                                      f"{str(exc)[:300]}")
            # Logged as the failure it is (the request log showed a plain 200).
            self._record(endpoint, rel, status, latency, caller, statuses=statuses,
                         error=str(problem))
            raise problem from exc
        self._record(endpoint, rel, status, latency, caller, statuses=statuses)
        if cache_key is not None:
            self.cache.put(cache_key, body, generation=generation)
        return result

    async def _send(self, endpoint: Endpoint, rel: str, query: dict[str, str], json: Any,
                    files: Any, data: Any, statuses: list[int | None],
                    timeout: float) -> httpx.Response:
        url = self.url(rel)
        # The server's per-user request limit holds every request of the signed-in user
        # (its 429 says X-RateLimit-Scope: user); its other limits hold one route (AI
        # chat, reactions) or one account's checks (2FA codes, passwords), and login and
        # register are per address and username. A 429 pauses only what it limits: any
        # 429 on a signed-in route used to pause everything, so five wrong 2FA codes held
        # every call, and every sign-in of any account, back for five minutes. A login's
        # bucket is its account's (a 429 for bob's mistyped password kept alice out).
        own_key = rel
        # Before sign-in the server counts per account: the login, its 2FA step and a
        # password reset are keyed by the account (its name, or its challenge token).
        if not endpoint.auth and isinstance(json, dict):
            account = json.get("username") or json.get("mfa_token")
            if isinstance(account, str):
                own_key = f"{rel}|{account.strip().lower()}"
        keys = (GLOBAL, own_key) if endpoint.auth else (own_key,)
        retries = waits = 0
        auth_retried = False
        while True:
            try:
                await self.limiter.acquire(*keys, max_pause=self.config.max_retry_after)
            except PausedError as exc:
                # An earlier 429 asked for a longer pause than we wait: refuse locally
                # rather than hang, and do not hammer a server that said "later".
                raise RateLimited(endpoint.method, rel,
                                  f"held back: the server asked for a pause after a 429; "
                                  f"retry in {exc.seconds:.1f} s", exc.seconds) from None
            headers: dict[str, str] = {}
            used: str | None = None
            if endpoint.auth:
                used = await self.session.access_token()
                if used is None:
                    raise NotAuthenticated(endpoint.method, rel, 401,
                                           "not logged in: call auth.login first")
                headers["Authorization"] = f"Bearer {used}"
            if self.owner_token and endpoint.name == "auth.register":
                headers["X-PlexiChat-App-Token"] = self.owner_token
            try:
                response = await self._http.request(
                    endpoint.method, url, params=query or None, json=json,
                    files=files() if callable(files) else files, data=data, headers=headers,
                    timeout=timeout)
            except httpx.HTTPError as exc:
                statuses.append(None)
                if (self.retry.retryable_error(exc)
                        and self.retry.should_retry(endpoint.is_idempotent, retries)):
                    await asyncio.sleep(self.retry.delay(retries))
                    retries += 1
                    continue
                reason = _describe(exc)
                # Sent and not answered in time: the server may be carrying it out still.
                sent = isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout)
                if sent:
                    reason = f"{reason} (no answer within {timeout:g} s)"
                raise ApiUnavailable(endpoint.method, rel, reason, len(statuses),
                                     maybe_done=sent and endpoint.is_write,
                                     timeout=timeout if sent else None) from exc
            status = response.status_code
            statuses.append(status)
            if self.retry.retryable_status(status):
                if self.retry.should_retry(endpoint.is_idempotent, retries):
                    await asyncio.sleep(self.retry.delay(retries, retry_after_seconds(response)))
                    retries += 1
                    continue
                raise ApiUnavailable(endpoint.method, rel,
                                     f"{status} {_detail(response)}", len(statuses))
            if status == 429:
                # Refused before the server acted on it: sending it again is safe for any
                # method once the wait is over (the limiter holds every caller back).
                wait = retry_after_seconds(response)
                wait = 1.0 if wait is None else wait
                user_wide = response.headers.get(SCOPE_HEADER, "").lower() == "user"
                self.limiter.pause(wait, GLOBAL if endpoint.auth and user_wide else own_key)
                if wait <= self.config.max_retry_after and waits < MAX_RATE_LIMIT_WAITS:
                    waits += 1
                    continue
                raise RateLimited(endpoint.method, rel, _detail(response), wait,
                                  dict(response.headers))
            if status == 401 and endpoint.auth and not auth_retried \
                    and not bad_input_401(response):
                auth_retried = True
                if await self.session.recover(used):
                    continue
            return response

    def _error(self, endpoint: Endpoint, rel: str, response: httpx.Response) -> ApiHTTPError:
        detail = _detail(response)
        headers = dict(response.headers)
        if response.status_code == 401:
            if endpoint.auth and bad_input_401(response):
                return InvalidCredentials(endpoint.method, rel, 401, detail, headers)
            if endpoint.auth:
                # A 401 that outlived the refresh: the session is over (revoked, or expired
                # beyond its refresh token). Forget it and say what to do.
                self.session.clear()
                if isinstance(detail, str):
                    detail = f"{detail}; the session could not be refreshed: log in again"
            return NotAuthenticated(endpoint.method, rel, 401, detail, headers)
        return ApiHTTPError(endpoint.method, rel, response.status_code, detail, headers)

    def _record(self, endpoint: Endpoint, rel: str, status: int | None, latency: float,
                caller: str | None, *, cache_hit: bool = False,
                statuses: list[int | None] | None = None, error: str | None = None) -> None:
        record = RequestRecord(
            id=self.activity.next_id(), at=time.time(), method=endpoint.method, path=rel,
            endpoint=endpoint.name, status=status, latency_ms=round(latency * 1000, 3),
            cache_hit=cache_hit, attempts=max(1, len(statuses or ())),
            statuses=list(statuses or ()), caller=caller, error=error)
        self.activity.add(record)

    async def probe(self, timeout: float = 3.0) -> float:
        """Whether the server answers: ``GET /system/ping`` outside the pipeline (no
        cache, limiter or log: the page's connection check must not flood the request
        log). Returns the latency in seconds; raises :class:`ApiUnavailable`."""
        path = ENDPOINTS["system.ping"].path
        started = time.perf_counter()
        try:
            response = await self._http.get(self.url(path), timeout=timeout)
        except (httpx.HTTPError, OSError, OverflowError, ExceptionGroup) as exc:
            # A port past 65535 in a hand-written base_url is an OverflowError in an
            # ExceptionGroup from the connect: it ended the connection check for good.
            self.last_error = f"GET {path}: {_describe(exc)}"
            raise ApiUnavailable("GET", path, _describe(exc), 1) from exc
        if response.status_code != 200:
            self.last_error = f"GET {path}: HTTP {response.status_code}"
            raise ApiUnavailable("GET", path, f"HTTP {response.status_code}", 1)
        self.last_ok_at, self.last_error = time.time(), None
        return time.perf_counter() - started

    # -- streaming downloads -------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def stream(self, name: str, *, path: Mapping[str, Any] | None = None,
                     caller: str | None = None, json: Any = None
                     ) -> AsyncIterator[httpx.Response]:
        """A request whose answer is read as it arrives (large downloads, streamed AI
        answers with ``json`` as the body). Token refresh applies; retries do not (the
        body may be half consumed, a POST may have been acted on)."""
        endpoint = endpoint_named(name)
        rel = format_path(endpoint, path)
        token = await self.session.access_token() if endpoint.auth else None
        if endpoint.auth and token is None:
            raise NotAuthenticated(endpoint.method, rel, 401,
                                   "not logged in: call auth.login first")
        try:
            await self.limiter.acquire(*((GLOBAL, rel) if endpoint.auth else (rel,)),
                                       max_pause=self.config.max_retry_after)
        except PausedError as exc:
            raise RateLimited(endpoint.method, rel, "held back after a 429", exc.seconds
                              ) from None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        started = time.perf_counter()
        answered = False
        try:
            async with self._http.stream(endpoint.method, self.url(rel), headers=headers,
                                         json=json, timeout=self.config.timeout) as response:
                answered = True
                # The server answered: the connection state says so, as for calls (a
                # stream's failure or success left "offline" or "online" as it was).
                self.last_ok_at, self.last_error = time.time(), None
                status = response.status_code
                self._record(endpoint, rel, status, time.perf_counter() - started, caller,
                             statuses=[status])
                if status >= 300:
                    await response.aread()
                    raise self._error(endpoint, rel, response)
                yield response
        except httpx.HTTPError as exc:
            problem = ApiUnavailable(endpoint.method, rel, _describe(exc), 1)
            if not answered:  # unreachable, not one stream cut short
                self.last_error = str(problem)
                self._record(endpoint, rel, None, time.perf_counter() - started, caller,
                             statuses=[None], error=problem.reason)
            raise problem from exc
