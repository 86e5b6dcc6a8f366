"""``/ai``: chat with models (OpenAI's message format, streamed as SSE), the models and
providers, their health, usage per user and model, local moderation rules.

Models are named ``<provider>/<model>``: ``builtin/plexi-rules``, ``ollama/llama3.2:1b``.
The provider layer (``server/v1/ai``) turns every provider into the same pieces; this
module adds what the API promises around them:

* limits: ``max_tokens`` at most ``[api] ai_max_tokens`` (422 above), ``[api]
  ai_requests_per_minute`` chat requests per user (429 with ``Retry-After``); ``[api]
  ai_models_requests_per_minute`` model lists and health checks per user, whose provider
  probes are shared by everyone for ``ai_models_cache_seconds`` (they use the
  administrator's API keys);
* non-administrators see providers by name, kind, state and models only;
* errors that name the provider: 502 a bad or refusing upstream, 503 an unreachable or
  disabled one, 504 a timeout; never a 500. The provider's own message (its address,
  the upstream's words) only for administrators. A streamed answer only starts (200) once its
  first piece has arrived, so these are real HTTP statuses; a failure after that is an
  ``error`` event in the stream;
* cancellation: when the client goes away, the upstream request is cancelled (its
  connection closed; a local model stops generating) and the usage row says
  ``cancelled``;
* one usage row per request (``GET /ai/usage``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import Field
from starlette.requests import ClientDisconnect

from plexichat_desktop.core.waiting import within
from plexichat_desktop.server.v1.ai import moderation
from plexichat_desktop.server.v1.ai import usage as usage_store
from plexichat_desktop.server.v1.ai.builtin import NAME as BUILTIN
from plexichat_desktop.server.v1.ai.openai_compat import check_base_url
from plexichat_desktop.server.v1.ai.providers import (
    ChatMessage,
    ChatParams,
    Completion,
    Delta,
    Provider,
    ProviderError,
    Usage,
    estimate_prompt,
)
from plexichat_desktop.server.v1.ai.service import AiService, ModelRef, parse_model
from plexichat_desktop.server.v1.common import Body, done, invalid, iso, not_found, now
from plexichat_desktop.server.v1.deps import Admin, CurrentUser, User, get_api
from plexichat_desktop.server.v1.webhooks import TargetRefused

router = APIRouter(prefix="/ai", tags=["ai"])

T = TypeVar("T")
PROVIDER_NAME = r"^[a-z0-9][a-z0-9_-]{0,39}$"
MAX_MESSAGES = 500


def get_ai(request: Request) -> AiService:
    """The AI service of this v1 server (made on first use: nothing to load before)."""
    state = request.app.state
    service: AiService | None = getattr(state, "ai", None)
    if service is None:
        api = get_api(request)
        service = AiService(api.store, api.settings, api.root)
        state.ai = service
    return service


Ai = Annotated[AiService, Depends(get_ai)]
ProviderName = Annotated[str, Path(pattern=PROVIDER_NAME, description=(
    "Provider name: lower-case letters, digits, '-' and '_', at most 40."))]


# -- request bodies --------------------------------------------------------------------
class Message(Body):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = Field(max_length=200_000, description="Text (content parts are not "
                                                          "supported).")
    name: str | None = Field(None, max_length=64)


class StreamOptions(Body):
    include_usage: bool = Field(True, description="Usage is always in the last chunk; "
                                                  "accepted for OpenAI clients.")


class ChatBody(Body):
    """OpenAI's chat completion request (the fields a local provider can honour)."""

    model: str | None = Field(None, min_length=3, max_length=300, description=(
        "'<provider>/<model>' (GET /ai/models); default [api] ai_default_model."))
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = Field(False, description="Answer as Server-Sent Events (OpenAI chunks).")
    max_tokens: int | None = Field(None, ge=1, description="Default and maximum: [api] "
                                                           "ai_max_tokens.")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = Field(None, description="Up to 4 stop sequences.")
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=200, description="Accepted, unused (the "
                                                               "caller is the token's user).")
    n: int = Field(1, ge=1, le=1, description="One choice per request.")


class OriginRequest(Body):
    """The original PlexiChat's ``POST /ai/request`` body."""

    prompt: str = Field(min_length=1, max_length=200_000)
    model_id: str | None = Field(None, min_length=3, max_length=300)
    user_id: str | None = Field(None, description="When sent, the caller's own id.")
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.7, ge=0, le=2)
    stream: bool = False
    system_prompt: str | None = Field(None, max_length=200_000)
    context: list[Message] | None = Field(None, max_length=MAX_MESSAGES, description=(
        "Earlier messages of the conversation, oldest first."))
    metadata: dict[str, Any] | None = Field(None, description="Accepted, unused.")
    priority: int = Field(5, ge=1, le=10, description="Accepted, unused (one queue).")
    timeout_seconds: float | None = Field(None, ge=5, le=300)
    functions: list[dict[str, Any]] | None = Field(None, description="Not supported: "
                                                                     "must be empty.")


class ProviderBody(Body):
    """``PUT /ai/providers/{name}``: fields left out keep their value (defaults on
    creation). ``api_key`` is write-only."""

    kind: Literal["openai_compatible", "local_gguf"] | None = None
    base_url: str | None = Field(None, max_length=2000)
    api_key: str | None = Field(None, description="Write-only; never shown again.")
    clear_api_key: bool = False
    enabled: bool | None = None
    timeout: float | None = Field(None, gt=0, le=3600)
    models: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        None, max_length=500, description="Allowlist of model names; empty: all.")
    model_path: str | None = Field(None, max_length=4096)


class TestBody(Body):
    __test__ = False
    model: str | None = Field(None, min_length=1, max_length=200, description=(
        "The provider's model name (without the '<provider>/' prefix)."))
    prompt: str = Field("Say OK.", min_length=1, max_length=2000)
    max_tokens: int = Field(16, ge=1, le=256)


class ModerateBody(Body):
    input: str | list[Annotated[str, Field(max_length=200_000)]] = Field(
        max_length=200_000, description="A text or a list of up to 100 texts.")


# -- helpers -----------------------------------------------------------------------------
# What a non-administrator is told when a provider fails: the provider's own message
# names its address or model file and quotes the upstream's answer.
PUBLIC_FAILURES = {404: "does not have this model", 502: "answered with an error",
                   503: "is unreachable or busy", 504: "did not answer in time"}


def public_failure(provider: str, what: str) -> str:
    return (f"AI provider '{provider}' {what} (an administrator sees why: GET "
            f"/api/v1/ai/health)")


def failure_detail(exc: ProviderError, full: bool) -> str:
    """``exc``'s message as the caller may see it (``full``: administrators)."""
    if full:
        return exc.detail
    return public_failure(exc.provider, PUBLIC_FAILURES.get(exc.status, "failed"))


def provider_http_error(exc: ProviderError, full: bool) -> HTTPException:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return HTTPException(exc.status, failure_detail(exc, full), headers=headers)


async def _until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it when the client goes away (then ClientDisconnect)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request.receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
        watcher.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)
    if task.cancelled():
        raise ClientDisconnect()
    return task.result()


async def _disconnected(receive: Callable[[], Awaitable[MutableMapping[str, Any]]]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def resolve(ai: AiService, model_id: str | None) -> tuple[Provider, ModelRef]:
    """The provider and model of ``model_id`` (default: ``[api] ai_default_model``)."""
    chosen = model_id or ai.settings.ai_default_model
    ref = parse_model(chosen)
    if ref is None:
        raise invalid("model", f"'{chosen}' is not '<provider>/<model>' (e.g. "
                               f"builtin/plexi-rules; see GET /api/v1/ai/models)", chosen)
    providers = await ai.providers()
    provider = providers.get(ref.provider)
    if provider is None:
        raise HTTPException(404, f"model '{chosen}' not found: there is no provider "
                                 f"'{ref.provider}' (providers: {', '.join(providers)}; "
                                 f"see GET /api/v1/ai/models)")
    if not ai.enabled(ref.provider):
        raise HTTPException(503, f"AI provider '{ref.provider}' is disabled (an "
                                 f"administrator can enable it: PUT /ai/providers/"
                                 f"{ref.provider})")
    allowed = ai.allowlist(ref.provider)
    if allowed and ref.model not in allowed:
        raise HTTPException(404, f"model '{chosen}' not found: provider '{ref.provider}' "
                                 f"offers {', '.join(allowed)}")
    if ref.provider == BUILTIN:
        names = [m.name for m in await provider.list_models(1.0)]
        if ref.model not in names:
            raise HTTPException(404, f"model '{chosen}' not found: the built-in provider "
                                     f"has {', '.join('builtin/' + n for n in names)}")
    return provider, ref


def _params(ai: AiService, ref: ModelRef, messages: list[ChatMessage],
            max_tokens: int | None, temperature: float | None, top_p: float | None,
            stop: str | list[str] | None) -> ChatParams:
    cap = ai.settings.ai_max_tokens
    if max_tokens is not None and max_tokens > cap:
        raise invalid("max_tokens", f"at most {cap} tokens per answer here ([api] "
                                    f"ai_max_tokens)", max_tokens)
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if len(stops) > 4 or any(not s or len(s) > 200 for s in stops):
        raise invalid("stop", "up to 4 non-empty stop sequences of at most 200 characters")
    return ChatParams(ref.model, messages, max_tokens or cap, temperature, top_p, stops)


def _completion_body(cid: str, ref: ModelRef, result: Completion, latency_ms: float
                     ) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion", "created": int(time.time()),
            "model": ref.id, "provider": ref.provider,
            "choices": [{"index": 0, "message": {"role": "assistant",
                                                 "content": result.content},
                         "finish_reason": result.finish_reason}],
            "usage": result.usage.to_dict(), "usage_estimated": result.usage.estimated,
            "latency_ms": round(latency_ms, 2)}


class Call:
    """One chat request in flight: its figures for the usage row."""

    def __init__(self, ai: AiService, user: CurrentUser, ref: ModelRef, params: ChatParams,
                 stream: bool):
        self.ai, self.user_id, self.ref, self.params, self.stream = (
            ai, user.id, ref, params, stream)
        self.full_errors = user.is_admin
        self.id = "chatcmpl-" + uuid.uuid4().hex
        self.started = time.perf_counter()
        self.first_token: float | None = None
        self.completion_chars = 0
        self.pieces = 0

    @property
    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    async def record(self, status: str, usage: Usage | None, error: str | None = None
                     ) -> None:
        if usage is None:  # ended before the provider reported: what was sent so far
            usage = Usage(estimate_prompt(self.params.messages),
                          max(self.pieces, -(-self.completion_chars // 4)), estimated=True)
        item = usage_store.UsageRecord(
            user_id=self.user_id, provider=self.ref.provider, model=self.ref.model,
            status=status, stream=self.stream, prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens, estimated=usage.estimated,
            latency_ms=self.elapsed_ms,
            first_token_ms=None if self.first_token is None
            else (self.first_token - self.started) * 1000, error=error, id=self.id)
        await self.ai.store.write(usage_store.record, item)

    def note(self, delta: Delta) -> None:
        if delta.content:
            if self.first_token is None:
                self.first_token = time.perf_counter()
            self.pieces += 1
            self.completion_chars += len(delta.content)


async def run_plain(request: Request, call: Call, provider: Provider,
                    timeout: float | None = None) -> Completion:
    """A whole answer; usage recorded however it ends."""
    work: Awaitable[Completion] = provider.complete(call.params)
    if timeout is not None:
        work = within(work, timeout)
    try:
        result = await _until_disconnect(request, work)
    except ClientDisconnect:
        await call.record("cancelled", None, "the client went away")
        raise
    except ProviderError as exc:
        await call.record("error", Usage(), exc.detail)
        raise provider_http_error(exc, call.full_errors) from None
    except TimeoutError:
        detail = f"AI provider '{call.ref.provider}' did not answer in {timeout:g} s"
        await call.record("error", Usage(), detail)
        raise HTTPException(504, detail) from None
    call.first_token = time.perf_counter()
    await call.record("ok", result.usage)
    return result


def _sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


class ChatEventStream(StreamingResponse):
    """SSE of one chat answer that notices the client leaving at once (not only at the
    next write), cancels the producer (and so the upstream request), and records usage
    after the stream ended, however it ended."""

    def __init__(self, call: Call, first: Delta, rest: AsyncIterator[Delta]):
        self.call = call
        self.first = first
        self.rest = rest
        self.status = "cancelled"
        self.usage: Usage | None = None
        self.error: str | None = "the client went away"
        super().__init__(self._events(), media_type="text/event-stream", headers={
            "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse({"id": self.call.id, "object": "chat.completion.chunk",
                     "created": int(time.time()), "model": self.call.ref.id,
                     "provider": self.call.ref.provider,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    async def _deltas(self) -> AsyncIterator[Delta]:
        yield self.first
        async for delta in self.rest:
            yield delta

    async def _events(self) -> AsyncIterator[bytes]:
        yield self._chunk({"role": "assistant", "content": ""})
        finish: str | None = None
        try:
            async for delta in self._deltas():
                self.call.note(delta)
                if delta.content:
                    yield self._chunk({"content": delta.content})
                if delta.finish_reason is not None:
                    finish, self.usage = delta.finish_reason, delta.usage
        except ProviderError as exc:
            self.status, self.error = "error", exc.detail
            yield _sse({"error": {"message": failure_detail(exc, self.call.full_errors),
                                  "type": "provider_error",
                                  "provider": exc.provider, "code": exc.status}})
            yield _sse("[DONE]")
            return
        usage = self.usage or Usage(estimate_prompt(self.call.params.messages),
                                    self.call.pieces, estimated=True)
        self.usage = usage
        yield self._chunk({}, finish or "stop")
        # Usage in the last chunk, as OpenAI's stream_options.include_usage gives it.
        yield _sse({"id": self.call.id, "object": "chat.completion.chunk",
                    "created": int(time.time()), "model": self.call.ref.id,
                    "provider": self.call.ref.provider, "choices": [],
                    "usage": usage.to_dict(), "usage_estimated": usage.estimated})
        yield _sse("[DONE]")
        self.status, self.error = "ok", None

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        producer = asyncio.ensure_future(self._produce(send))
        watcher = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (producer, watcher):
                task.cancel()
            await asyncio.gather(producer, watcher, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.rest.aclose()  # type: ignore[attr-defined]
            await self.call.record(self.status, self.usage, self.error)

    async def _produce(self, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        try:
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            self.status = "cancelled" if self.status != "error" else self.status


async def run_stream(request: Request, call: Call, provider: Provider) -> ChatEventStream:
    """Start a streamed answer: the response begins once its first piece is there."""
    pieces = provider.stream(call.params)
    try:
        first = await _until_disconnect(request, pieces.__anext__())
    except ClientDisconnect:
        await _close(pieces)
        await call.record("cancelled", None, "the client went away")
        raise
    except ProviderError as exc:
        await _close(pieces)
        await call.record("error", Usage(), exc.detail)
        raise provider_http_error(exc, call.full_errors) from None
    except StopAsyncIteration:
        first = Delta("", "stop", None)
    return ChatEventStream(call, first, pieces)


async def _close(pieces: AsyncIterator[Delta]) -> None:
    with contextlib.suppress(Exception):
        await pieces.aclose()  # type: ignore[attr-defined]


# -- chat ------------------------------------------------------------------------------
@router.post("/chat", response_model=None)
async def chat(body: ChatBody, request: Request, user: User, ai: Ai
               ) -> dict[str, Any] | ChatEventStream:
    """A chat completion in OpenAI's format. With ``stream: true`` the answer is
    Server-Sent Events: ``chat.completion.chunk`` objects (a role chunk, one chunk per
    piece, a finish chunk, then one with ``usage`` and no choices) and ``data: [DONE]``."""
    ai.limiter.check(user.id)
    provider, ref = await resolve(ai, body.model)
    messages = [ChatMessage(m.role, m.content) for m in body.messages]
    params = _params(ai, ref, messages, body.max_tokens, body.temperature, body.top_p,
                     body.stop)
    call = Call(ai, user, ref, params, body.stream)
    if body.stream:
        return await run_stream(request, call, provider)
    result = await run_plain(request, call, provider)
    return _completion_body(call.id, ref, result, call.elapsed_ms)


@router.post("/request", response_model=None)
async def origin_request(body: OriginRequest, request: Request, user: User, ai: Ai
                         ) -> dict[str, Any] | ChatEventStream:
    """The original PlexiChat's AI request (``prompt``, ``model_id``, ``system_prompt``):
    the same chat as ``POST /ai/chat``, answered in the original's shape (or streamed like
    ``/ai/chat`` with ``stream: true``)."""
    if body.user_id is not None and body.user_id != user.id:
        raise HTTPException(403, "user_id: requests are made as the token's user; leave "
                                 "user_id out or send your own id")
    if body.functions:
        raise invalid("functions", "function calling is not supported")
    ai.limiter.check(user.id)
    provider, ref = await resolve(ai, body.model_id)
    messages = ([ChatMessage("system", body.system_prompt)] if body.system_prompt else [])
    messages += [ChatMessage(m.role, m.content) for m in body.context or ()]
    messages.append(ChatMessage("user", body.prompt))
    params = _params(ai, ref, messages, body.max_tokens, body.temperature, None, None)
    call = Call(ai, user, ref, params, body.stream)
    if body.stream:
        return await run_stream(request, call, provider)
    result = await run_plain(request, call, provider, body.timeout_seconds)
    return {"request_id": call.id, "model_id": ref.id, "content": result.content,
            "usage": result.usage.to_dict(), "usage_estimated": result.usage.estimated,
            "finish_reason": result.finish_reason, "cost": None,
            "latency_ms": round(call.elapsed_ms, 2), "provider": ref.provider,
            "timestamp": iso(now()), "success": True, "error": None}


# -- models, providers, health ---------------------------------------------------------
# What a non-administrator is told about a provider that failed its probe (see
# PUBLIC_FAILURES).
PUBLIC_ERRORS = {"unreachable": "is unreachable", "error": "answered with an error"}
Refresh = Annotated[bool, Query(description=(
    "Ask every provider now instead of reusing the last answer (administrators; for "
    "others it is ignored)."))]


async def _probe(ai: AiService, name: str, provider: Provider, row: dict[str, Any] | None
                 ) -> dict[str, Any]:
    """One provider's model list, timed; the health entry of ``name`` (``row``: its
    configuration, which the answer is cached under)."""
    entry: dict[str, Any] = {"name": name, "kind": provider.kind, "enabled": True,
                             "status": "healthy", "reachable": True, "latency_ms": None,
                             "models": [], "error": None, "checked_at": iso(now())}
    started = time.perf_counter()
    try:
        found = await within(provider.list_models(ai.settings.ai_health_timeout),
                             ai.settings.ai_health_timeout)
    except ProviderError as exc:
        reachable = exc.status not in (503, 504)
        entry.update(status="error" if reachable else "unreachable", reachable=reachable,
                     error=exc.detail)
        found = []
    except TimeoutError:
        entry.update(status="unreachable", reachable=False,
                     error=f"AI provider '{name}' did not answer in "
                           f"{ai.settings.ai_health_timeout:g} s")
        found = []
    entry["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    # The allowlist of the row this probe is cached under, not whatever is loaded now.
    allowed = json.loads(row["models"]) if row else []
    entry["models"] = [m.name for m in found if not allowed or m.name in allowed]
    entry["_found"] = found
    return entry


async def _probe_all(ai: AiService, user: CurrentUser, refresh: bool
                     ) -> list[dict[str, Any]]:
    """Every provider's health entry: enabled ones from the shared probe cache (asked
    again only when it is stale, or when an administrator asks for ``refresh``)."""
    ai.models_limiter.check(user.id)
    providers, rows = await ai.snapshot()
    ai.probes.retain(providers)
    fresh = refresh and user.is_admin
    active = [(n, p) for n, p in providers.items()
              if n == BUILTIN or (n in rows and rows[n]["enabled"])]
    results = await asyncio.gather(*(
        ai.probes.get(n, rows.get(n), functools.partial(_probe, ai, n, p, rows.get(n)),
                      fresh)
        for n, p in active))
    entries = {e["name"]: e for e in results}
    out = []
    for name, provider in providers.items():
        entry = entries.get(name) or {
            "name": name, "kind": provider.kind, "enabled": False, "status": "disabled",
            "reachable": None, "latency_ms": None, "models": [], "error": None,
            "checked_at": None, "_found": []}
        if not user.is_admin:
            entry.pop("latency_ms")
            if entry["error"]:
                entry["error"] = public_failure(
                    name, PUBLIC_ERRORS.get(entry["status"], "failed"))
        out.append(entry)
    return out


@router.get("/models")
async def list_models(user: User, ai: Ai, refresh: Refresh = False) -> dict[str, Any]:
    """The models of every enabled provider, as ``<provider>/<model>`` ids (each provider
    asked at most every ``[api] ai_models_cache_seconds``; an unreachable provider's
    allowlisted models are listed as ``unreachable``, its error in ``errors``)."""
    entries = await _probe_all(ai, user, refresh)
    data: list[dict[str, Any]] = []
    errors = []
    for entry in entries:
        if not entry["enabled"]:
            continue
        name = entry["name"]
        infos = {m.name: m for m in entry["_found"]}
        names = entry["models"]
        status = "available"
        if entry["error"]:
            errors.append({"provider": name, "status": entry["status"],
                           "error": entry["error"]})
            names, status = ai.allowlist(name), entry["status"]
        for model in names:
            info = infos.get(model)
            data.append({"id": f"{name}/{model}", "object": "model", "name": model,
                         "provider": name, "kind": entry["kind"],
                         "owned_by": info.owned_by if info else "",
                         "description": info.description if info else "",
                         "capabilities": ["chat", "stream"], "status": status,
                         "max_tokens": ai.settings.ai_max_tokens,
                         "deterministic": name == BUILTIN})
    return {"object": "list", "data": data, "total": len(data),
            "default_model": ai.settings.ai_default_model, "errors": errors}


@router.get("/providers")
async def list_providers(user: User, ai: Ai) -> dict[str, Any]:
    """Every provider: its settings for administrators (API keys are never shown, only
    ``api_key_set`` and a hint of the last four characters); for others its name, kind,
    state and allowlisted models only."""
    providers = await ai.providers()
    items = [ai.describe(name, full=user.is_admin) for name in providers]
    return {"providers": items, "total": len(items), "kinds": ["builtin",
                                                                "openai_compatible",
                                                                "local_gguf"]}


@router.get("/health")
async def health(user: User, ai: Ai, refresh: Refresh = False) -> dict[str, Any]:
    """Each provider asked for its models (at most every ``[api]
    ai_models_cache_seconds``; ``checked_at`` per provider says when): ``status``
    healthy, unreachable (no connection, timeout), error (it answered, badly) or
    disabled; latency and the error's detail for administrators; models."""
    entries = await _probe_all(ai, user, refresh)
    for entry in entries:
        entry.pop("_found")
    bad = [e for e in entries if e["enabled"] and e["status"] != "healthy"]
    return {"status": "degraded" if bad else "healthy", "checked_at": iso(now()),
            "cache_seconds": ai.settings.ai_models_cache_seconds, "providers": entries,
            "healthy": sum(e["status"] == "healthy" for e in entries),
            "unhealthy": len(bad)}


async def _check_provider_body(ai: AiService, name: str, body: ProviderBody,
                               current: dict[str, Any] | None) -> dict[str, Any]:
    """The row values of a valid ``body`` (422 naming the field otherwise)."""
    sent = body.model_dump(exclude_unset=True)
    kind = body.kind or (current["kind"] if current else "openai_compatible")
    values: dict[str, Any] = {"kind": kind}
    if body.api_key is not None and (not body.api_key.strip() or len(body.api_key) > 4096
                                     or any(c.isspace() for c in body.api_key)):
        # The key itself is never echoed back, not even in an error.
        raise invalid("api_key", "must be 1-4096 characters without spaces (to remove "
                                 "the key send clear_api_key: true)")
    if body.api_key is not None and body.clear_api_key:
        raise invalid("clear_api_key", "send either api_key or clear_api_key, not both")
    if kind == "openai_compatible":
        base_url = body.base_url if "base_url" in sent else (current or {}).get("base_url")
        if not base_url:
            raise invalid("base_url", "required for an openai_compatible provider, e.g. "
                                      "http://127.0.0.1:11434/v1 (Ollama)")
        base_url = base_url.strip().rstrip("/")
        from urllib.parse import urlsplit

        parts = urlsplit(base_url)
        if parts.username or parts.password:
            raise invalid("base_url", "must not hold credentials; send the key as api_key")
        if parts.query or parts.fragment:
            raise invalid("base_url", "must have no query or fragment", base_url)
        try:
            await check_base_url(base_url, ai.settings.ai_allow_private)
        except TargetRefused as exc:
            raise invalid("base_url", str(exc).removeprefix("base_url: "), base_url) from None
        except (OSError, ValueError):
            pass  # a name that does not resolve now; every request checks it again
        values["base_url"] = base_url
        values["model_path"] = None
    else:
        if body.base_url:
            raise invalid("base_url", "a local_gguf provider has no base_url (it runs in "
                                      "process); use model_path")
        if body.api_key is not None:
            raise invalid("api_key", "a local_gguf provider takes no API key")
        values["base_url"] = None
        values["model_path"] = body.model_path if "model_path" in sent else (
            (current or {}).get("model_path"))
    values["enabled"] = body.enabled if body.enabled is not None else (
        bool(current["enabled"]) if current else True)
    values["timeout"] = body.timeout if body.timeout is not None else (
        current["timeout"] if current else ai.settings.ai_timeout)
    if body.models is not None:
        values["models"] = list(dict.fromkeys(body.models))
    elif current is None:
        values["models"] = []
    return values


@router.put("/providers/{name}")
async def configure_provider(name: ProviderName, body: ProviderBody, response: Response,
                             admin: Admin, ai: Ai) -> dict[str, Any]:
    """Add (201) or change (200) a provider (administrators). ``api_key`` is write-only:
    stored in a file readable by the user only, never returned or logged."""
    if name == BUILTIN:
        raise HTTPException(409, "the built-in provider is fixed: it cannot be changed "
                                 "or removed")
    current = (await ai.rows()).get(name)
    values = await _check_provider_body(ai, name, body, current)
    _row, created = await ai.configure(name, values, body.api_key, body.clear_api_key)
    response.status_code = 201 if created else 200
    if name not in await ai.rows():
        raise not_found("AI provider", name)  # removed meanwhile by another request
    return ai.describe(name)


@router.delete("/providers/{name}")
async def delete_provider(name: ProviderName, admin: Admin, ai: Ai) -> dict[str, Any]:
    """Remove a provider and its API key (administrators); its usage rows stay."""
    if name == BUILTIN:
        raise HTTPException(409, "the built-in provider is fixed: it cannot be changed "
                                 "or removed")
    if not await ai.remove(name):
        raise not_found("AI provider", name)
    return done("AI provider removed", name=name)


@router.post("/providers/{name}/test")
async def test_provider(name: ProviderName, request: Request, admin: Admin, ai: Ai,
                        body: TestBody | None = None) -> dict[str, Any]:
    """A real short chat with the provider (administrators), even when it is disabled:
    ``ok``, latency, the reply's start, usage; on failure ``ok: false`` with the
    ``error`` and the ``status_code`` a chat would get."""
    body = body or TestBody()
    providers = await ai.providers()
    provider = providers.get(name)
    if provider is None:
        raise not_found("AI provider", name)
    model = body.model
    if model is None:
        allowed = ai.allowlist(name)
        if allowed:
            model = allowed[0]
        else:
            try:
                listed = await provider.list_models(ai.settings.ai_health_timeout)
            except ProviderError as exc:
                return {"provider": name, "ok": False, "model": None, "latency_ms": None,
                        "reply": None, "usage": None, "error": exc.detail,
                        "status_code": exc.status}
            if not listed:
                return {"provider": name, "ok": False, "model": None, "latency_ms": None,
                        "reply": None, "usage": None, "status_code": 502,
                        "error": f"AI provider '{name}' lists no models; send one as model"}
            model = listed[-1].name if name == BUILTIN else listed[0].name
    ref = ModelRef(name, model)
    params = ChatParams(model, [ChatMessage("user", body.prompt)],
                        min(body.max_tokens, ai.settings.ai_max_tokens))
    call = Call(ai, admin, ref, params, False)
    try:
        result = await run_plain(request, call, provider)
    except HTTPException as exc:
        return {"provider": name, "ok": False, "model": ref.id,
                "latency_ms": round(call.elapsed_ms, 2), "reply": None, "usage": None,
                "error": exc.detail, "status_code": exc.status_code}
    return {"provider": name, "ok": True, "model": ref.id,
            "latency_ms": round(call.elapsed_ms, 2), "reply": result.content[:200],
            "usage": result.usage.to_dict(), "error": None, "status_code": 200}


# -- usage, moderation -----------------------------------------------------------------
@router.get("/usage")
async def get_usage(user: User, ai: Ai,
                    days: Annotated[int, Query(ge=1, le=3650)] = 30,
                    all_users: Annotated[bool, Query(description=(
                        "Everyone's usage (administrators)."))] = False) -> dict[str, Any]:
    """Requests and tokens per user and model (and per UTC day) over the last ``days``:
    the caller's own, or everyone's for an administrator with ``all_users=true``."""
    if all_users and not user.is_admin:
        raise HTTPException(403, "all_users: everyone's usage is for the administrator")
    since = now() - days * 86_400
    found = await ai.store.read(usage_store.summary, since, None if all_users else user.id)
    return {"period_days": days, "since": iso(since), "all_users": all_users, **found}


@router.post("/moderate")
async def moderate(body: ModerateBody, user: User, ai: Ai) -> dict[str, Any]:
    """Local rules (see ``checks`` and ``not_checked`` in the answer): personal data and
    secrets with a recognisable shape, and the administrator's blocklist. Not a model:
    meaning (hate, threats, ...) is not checked."""
    texts = [body.input] if isinstance(body.input, str) else body.input
    if len(texts) > 100:
        raise invalid("input", "at most 100 texts per request")
    blocklist = ai.settings.ai_moderation_blocklist
    # Off the event loop: up to 100 texts of 200 000 characters are a few seconds of
    # regular expressions.
    results = await asyncio.to_thread(
        lambda: [moderation.moderate(text, blocklist) for text in texts])
    return {"id": "modr-" + uuid.uuid4().hex, "model": moderation.MODEL,
            "results": results, "flagged": any(r["flagged"] for r in results),
            "checks": moderation.checks(blocklist),
            "not_checked": list(moderation.NOT_CHECKED)}
