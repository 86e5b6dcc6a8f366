"""A provider for any server that speaks OpenAI's chat completions API.

Ollama (``http://127.0.0.1:11434/v1``), the llama.cpp server (``http://127.0.0.1:8080/v1``),
LM Studio (``http://127.0.0.1:1234/v1``), vLLM and OpenAI itself (``https://api.openai.com/v1``)
all serve ``POST <base>/chat/completions`` (streamed as SSE ``data:`` lines ending with
``data: [DONE]``) and ``GET <base>/models``. The base URL is checked against server-side
request forgery with the webhooks' guard (:func:`webhooks.resolve_target`) at configuration
and again before every request (DNS rebinding); the request goes to the address that was
checked. Loopback is always allowed (local model servers are the point); private
addresses only with ``[api] ai_allow_private``; link-local and cloud metadata addresses
never.

The API key is sent as ``Authorization: Bearer``; it never goes into an error message, a
log line or an answer (upstream text is passed through :func:`providers.redact`). Upstream
answers are read up to :data:`MAX_BODY` bytes; anything that is not the expected JSON is a
502 naming the provider, never a 500.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from plexichat_desktop import __version__
from plexichat_desktop.plugins.tls import shared_tls_context
from plexichat_desktop.server.v1.ai.providers import (
    ChatParams,
    Completion,
    Delta,
    ModelInfo,
    ProviderError,
    Usage,
    estimate_prompt,
    estimate_tokens,
    redact,
)
from plexichat_desktop.server.v1.webhooks import (
    Target,
    TargetRefused,
    non_public_reason,
    resolve_target,
)

if TYPE_CHECKING:  # httpx is imported when a provider is first used
    import httpx

MAX_BODY = 8 << 20
# Cloud instance metadata services (AWS, GCP, Azure, OpenStack; ECS; AWS IPv6;
# Alibaba): refused whatever ``allow_private`` says.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200"))
ERROR_EXCERPT = 300
USER_AGENT = f"PlexiChat-Desktop-AI/{__version__}"


async def check_base_url(url: str, allow_private: bool) -> list[Target]:
    """The checked targets of ``url``: loopback always allowed, private addresses only
    with ``allow_private``, anything else (link-local, metadata...) must be public.

    Raises :class:`TargetRefused` (naming the address and why) or ``OSError`` (the name
    does not resolve)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("base_url: must be an http:// or https:// URL with a host")
    targets = await resolve_target(url, allow_private=True)
    for target in targets:
        address = ipaddress.ip_address(urlsplit(target.url).hostname or "")
        reason = non_public_reason(address)
        if reason is None or reason == "loopback":
            continue
        if address in METADATA_ADDRESSES:
            reason = "cloud metadata service"
        elif allow_private and reason == "private":
            # Link-local addresses stay refused: 169.254.169.254 and its kind answer
            # cloud credentials, and no one serves a model on a link-local address.
            continue
        host = parts.hostname
        shown = host if str(address) == host else f"{host} resolves to {address}, which"
        raise TargetRefused(
            f"base_url: {shown} is a {reason} address; AI providers may be on loopback or "
            f"public addresses" + ("" if allow_private else
                                   ", or private ones when an administrator sets "
                                   "[api] ai_allow_private"))
    return targets


def _text(value: Any) -> str:
    """Message content as text: a string, or OpenAI's list of ``{type: text}`` parts."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(p.get("text", "") for p in value
                       if isinstance(p, dict) and isinstance(p.get("text", ""), str))
    raise TypeError(f"content is a {type(value).__name__}")


def _usage(value: Any) -> Usage | None:
    if not isinstance(value, dict):
        return None
    prompt, completion = value.get("prompt_tokens"), value.get("completion_tokens")
    if not (isinstance(prompt, int) and isinstance(completion, int)) or min(
            prompt, completion) < 0:
        return None
    return Usage(prompt, completion)


class OpenAICompatibleProvider:
    """One configured OpenAI-compatible server (see the module docstring)."""

    kind = "openai_compatible"

    def __init__(self, name: str, base_url: str, api_key: str | None, timeout: float,
                 allow_private: Callable[[], bool]):
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._key = api_key or None
        self.timeout = timeout
        self.allow_private = allow_private

    # -- errors ------------------------------------------------------------------------
    def _error(self, status: int, message: str, retry_after: int | None = None
               ) -> ProviderError:
        return ProviderError(self.name, status, redact(message, self._key), retry_after)

    def _malformed(self, what: str) -> ProviderError:
        return self._error(502, f"sent a malformed answer: {what}")

    def _transport_error(self, exc: Exception) -> ProviderError:
        import httpx

        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            return self._error(504, f"did not answer in time ({self.timeout:g} s): {text}")
        if isinstance(exc, httpx.ConnectError | OSError):
            return self._error(503, f"is unreachable at {self.base_url}: {text}")
        return self._error(502, f"failed: {text}")

    async def _status_error(self, response: httpx.Response) -> ProviderError:
        body = (await _read_capped(response, 64 * 1024)).decode("utf-8", "replace")
        message = body
        try:
            parsed = json.loads(body)
            error = parsed.get("error") if isinstance(parsed, dict) else None
            if isinstance(error, dict):
                message = str(error.get("message") or error)
            elif isinstance(error, str):
                message = error
            elif isinstance(parsed, dict) and "detail" in parsed:
                message = str(parsed["detail"])
        except ValueError:
            pass
        message = " ".join(message.split())[:ERROR_EXCERPT] or response.reason_phrase
        code = response.status_code
        if code in (401, 403):
            return self._error(502, f"refused the request (HTTP {code}; check its API key): "
                                    f"{message}")
        if code == 404:
            return self._error(404, f"does not know this model or route (HTTP 404): "
                                    f"{message}")
        if code in (429, 503):
            after = response.headers.get("retry-after", "")
            return self._error(503, f"is busy or rate-limited (HTTP {code}): {message}",
                               int(after) if after.isdigit() else None)
        return self._error(502, f"answered HTTP {code}: {message}")

    # -- transport ---------------------------------------------------------------------
    def _headers(self, host_header: str) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Host": host_header,
                   "Accept": "application/json, text/event-stream"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    @asynccontextmanager
    async def _open(self, method: str, path: str, body: dict[str, Any] | None,
                    timeout: float) -> AsyncIterator[httpx.Response]:
        """A streamed request to the first checked address that accepts a connection;
        transport failures become :class:`ProviderError`."""
        import httpx

        url = self.base_url + path
        try:
            targets = await check_base_url(url, self.allow_private())
        except TargetRefused as exc:
            raise self._error(502, f"is refused: {exc}") from None
        except OSError as exc:
            raise self._error(503, f"is unreachable: cannot resolve "
                                   f"{urlsplit(url).hostname}: {exc}") from None
        limits = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        # trust_env off: a proxy from the environment would connect somewhere other than
        # the checked address; no redirects, for the same reason.
        async with httpx.AsyncClient(timeout=limits, follow_redirects=False,
                                     trust_env=False,
                                     verify=shared_tls_context(trust_env=False)) as client:
            for index, target in enumerate(targets):
                extensions = ({"sni_hostname": target.sni_hostname}
                              if target.sni_hostname else None)
                request = client.build_request(
                    method, target.url, json=body, headers=self._headers(target.host_header),
                    extensions=extensions)
                try:
                    response = await client.send(request, stream=True)
                except httpx.ConnectError as exc:
                    if index < len(targets) - 1:
                        continue
                    raise self._transport_error(exc) from None
                except httpx.HTTPError as exc:
                    raise self._transport_error(exc) from None
                try:
                    yield response
                except httpx.HTTPError as exc:
                    raise self._transport_error(exc) from None
                finally:
                    await response.aclose()
                return

    def _payload(self, params: ChatParams, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": params.model, "stream": stream, "max_tokens": params.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in params.messages]}
        if params.temperature is not None:
            body["temperature"] = params.temperature
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.stop:
            body["stop"] = list(params.stop)
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def _completion(self, data: Any, params: ChatParams) -> Completion:
        try:
            choice = data["choices"][0]
            content = _text(choice["message"].get("content"))
            finish = choice.get("finish_reason") or "stop"
            if not isinstance(finish, str):
                raise TypeError("finish_reason is not a string")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise self._malformed(f"no choices[0].message.content ({exc})") from None
        usage = _usage(data.get("usage")) or Usage(
            estimate_prompt(params.messages), estimate_tokens(content), estimated=True)
        return Completion(content, finish, usage)

    # -- the Provider protocol ---------------------------------------------------------
    async def complete(self, params: ChatParams) -> Completion:
        async with self._open("POST", "/chat/completions", self._payload(params, False),
                              self.timeout) as response:
            if response.status_code >= 400:
                raise await self._status_error(response)
            raw = await _read_capped(response, MAX_BODY)
        try:
            data = json.loads(raw)
        except ValueError:
            raise self._malformed(f"not JSON: {raw[:80]!r}") from None
        return self._completion(data, params)

    async def stream(self, params: ChatParams) -> AsyncIterator[Delta]:
        payload = self._payload(params, True)
        while True:
            async with self._open("POST", "/chat/completions", payload,
                                  self.timeout) as response:
                if response.status_code >= 400:
                    error = await self._status_error(response)
                    if response.status_code == 400 and "stream_options" in payload and \
                            "stream_options" in str(error):
                        # An older server that refuses OpenAI's newer field: ask again
                        # without it (usage is then estimated when it sends none).
                        payload = {k: v for k, v in payload.items() if k != "stream_options"}
                        continue
                    raise error
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    # Some servers ignore "stream": one JSON completion, as one piece.
                    raw = await _read_capped(response, MAX_BODY)
                    try:
                        whole = self._completion(json.loads(raw), params)
                    except ValueError:
                        raise self._malformed(f"neither SSE nor JSON: {raw[:80]!r}") from None
                    yield Delta(whole.content, whole.finish_reason, whole.usage)
                    return
                async for delta in self._events(response, params):
                    yield delta
                return

    async def _events(self, response: httpx.Response, params: ChatParams
                      ) -> AsyncIterator[Delta]:
        text_len = 0
        finish: str | None = None
        usage: Usage | None = None
        received = 0
        async for line in response.aiter_lines():
            received += len(line)
            if received > MAX_BODY:
                raise self._malformed(f"the stream exceeds {MAX_BODY} bytes")
            if not line.startswith("data:"):
                continue  # comments (": ping"), "event:", "id:", blank separators
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
                if not isinstance(chunk, dict):
                    raise TypeError("a chunk is not an object")
                if "error" in chunk:
                    error = chunk["error"]
                    message = error.get("message") if isinstance(error, dict) else error
                    raise self._error(502, f"reported an error mid-stream: {message}")
                usage = _usage(chunk.get("usage")) or usage
                choices = chunk.get("choices") or []
                if not isinstance(choices, list):
                    raise TypeError("choices is not a list")
                if not choices:
                    continue  # the usage-only chunk of stream_options.include_usage
                choice = choices[0]
                piece = _text((choice.get("delta") or {}).get("content"))
                finish = choice.get("finish_reason") or finish
                if finish is not None and not isinstance(finish, str):
                    raise TypeError("finish_reason is not a string")
            except (ValueError, TypeError, AttributeError) as exc:
                raise self._malformed(f"a stream chunk is not a chat.completion.chunk "
                                      f"({exc}): {data[:80]!r}") from None
            if piece:
                text_len += len(piece)
                yield Delta(piece)
        else:
            if finish is None:
                raise self._malformed("the stream ended without a finish_reason or "
                                      "'data: [DONE]'")
        if usage is None:
            # Estimated from the text: ~4 characters per token (see providers.py).
            usage = Usage(estimate_prompt(params.messages),
                          max(0, -(-text_len // 4)), estimated=True)
        yield Delta("", finish or "stop", usage)

    async def list_models(self, timeout: float) -> list[ModelInfo]:
        async with self._open("GET", "/models", None, timeout) as response:
            if response.status_code >= 400:
                raise await self._status_error(response)
            raw = await _read_capped(response, MAX_BODY)
        try:
            data = json.loads(raw)
            items = data["data"] if isinstance(data, dict) else data
            models = [ModelInfo(str(item["id"]), "", str(item.get("owned_by") or ""))
                      for item in items]
        except (ValueError, KeyError, TypeError) as exc:
            raise self._malformed(f"the model list is not {{data: [{{id}}]}} ({exc})") from None
        return models


async def _read_capped(response: httpx.Response, cap: int) -> bytes:
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) > cap:
            break
    return bytes(data[:cap])
