"""Helpers for tests that need a real PlexiChat v1 server: the app's core, on loopback.

Plugin authors can use them too::

    from api_integration_layer.testing import embedded_server

    async def test_something(tmp_path):
        async with embedded_server(tmp_path) as server:
            ann = await server.account("ann")     # a logged-in ApiClient
            bob = await server.account("bob")
            await ann.messages.send(bob.user["id"], "hi")

Each server has its own home under the given folder and a free port on 127.0.0.1;
password hashing runs at a tiny cost so registering and logging in stay fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_integration_layer.client import ApiClient
from api_integration_layer.config import ClientConfig
from plexichat_desktop.core.paths import PLUGINS_PATH_ENV, AppPaths
from plexichat_desktop.core.settings import ApiSettings, Settings
from plexichat_desktop.plugins.tls import shared_tls_context
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from plexichat_desktop.testing.harness import (  # noqa: F401 (re-exported for conftests)
    SharedCore,
    event_loop_for_tests,
    module_loop,
    pytest_pyfunc_call,
)

PASSWORD = "Corr3ct-Horse-Battery"
# webhook_allow_private: the tests' webhook receivers listen on 127.0.0.1.
FAST_API: dict[str, Any] = {"scrypt_cost": 4, "performance_interval": 3600.0,
                            "register_rate_limit": 0, "login_rate_limit": 0,
                            "webhook_allow_private": True}
# Test clients fail fast instead of waiting out real-world backoffs.
FAST_CLIENT: dict[str, Any] = {"retry_base_delay": 0.02, "retry_max_delay": 0.2,
                               "ws_reconnect_max_delay": 0.5, "timeout": 10.0}
_names = itertools.count(1)


def _test_transport() -> httpx.AsyncHTTPTransport:
    """httpx's default transport with the app's shared certificate store."""
    return httpx.AsyncHTTPTransport(verify=shared_tls_context())


def unique_name(prefix: str = "user") -> str:
    return f"{prefix}{os.getpid() % 10000}x{next(_names)}"


@contextlib.contextmanager
def _no_plugin_path() -> Iterator[None]:
    # The runtime adds folders from this variable; a developer's own plugins must not load.
    saved = os.environ.pop(PLUGINS_PATH_ENV, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[PLUGINS_PATH_ENV] = saved


@dataclass
class EmbeddedServer:
    """A running core with its v1 API; :meth:`client` and :meth:`account` make clients
    that are closed with the server."""

    home: Path
    settings: Settings
    plugin_dirs: list[Path]
    runtime: Runtime | None = None
    clients: list[ApiClient] = field(default_factory=list)

    @property
    def paths(self) -> AppPaths:
        h = self.home
        return AppPaths(h / "config", h / "data", h / "cache", h / "logs")

    @property
    def url(self) -> str:
        assert self.runtime is not None
        return self.runtime.url

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/") + "/api/v1"

    @property
    def port(self) -> int:
        assert self.runtime is not None and self.runtime.server is not None
        return self.runtime.server.port

    @property
    def app_headers(self) -> dict[str, str]:
        """The app token, for the host's own routes (plugin pages and routes)."""
        assert self.runtime is not None
        return {"Authorization": f"Bearer {self.runtime.token}"}

    def plugin(self, plugin_id: str) -> Any:
        """The running instance of a plugin (fails with its reason when it is not active)."""
        assert self.runtime is not None
        record = self.runtime.plugins.by_id[plugin_id]
        assert str(record.state) == "active", (record.reason, record.detail)
        return record.instance

    async def start(self) -> EmbeddedServer:
        with _no_plugin_path():
            self.runtime = Runtime(self.paths, self.settings, RuntimeOptions(
                bundled=False, include_installed=False, extra_plugin_dirs=self.plugin_dirs))
        await self.runtime.start()
        return self

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
            self.runtime = None

    async def restart(self) -> None:
        """Stop the core and start a new one on the same home and port."""
        port = self.port
        await self.stop()
        self.settings.server.port = port
        await self.start()

    def client(self, base_url: str | None = None, **config: Any) -> ApiClient:
        """A new client (tokens in memory) for this server or ``base_url``."""
        client = ApiClient(base_url or self.base_url,
                           ClientConfig.model_validate({**FAST_CLIENT, **config}),
                           transport=_test_transport(),
                           owner_token=self.runtime.token if base_url is None else None)
        self.clients.append(client)
        return client

    async def account(self, name: str | None = None, *, remember_me: bool = False,
                      **config: Any) -> ApiClient:
        """Register ``name`` (a fresh name by default) and return its logged-in client."""
        name = name or unique_name()
        client = self.client(**config)
        await client.auth.register(name, f"{name}@example.org", PASSWORD,
                                   display_name=name.title())
        await client.auth.login(name, PASSWORD, remember_me=remember_me)
        return client

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
        self.clients.clear()
        await self.stop()


def server_settings(plugin_settings: dict[str, dict[str, Any]] | None = None, port: int = 0,
                    **api: Any) -> Settings:
    settings = Settings()
    settings.server.port = port
    settings.api = ApiSettings(**{**FAST_API, **api})
    if plugin_settings:
        settings.plugin = dict(plugin_settings)
    return settings


@contextlib.asynccontextmanager
async def embedded_server(home: Path, *, plugin_dirs: Sequence[Path] = (),
                          plugin_settings: dict[str, dict[str, Any]] | None = None,
                          **api: Any) -> AsyncIterator[EmbeddedServer]:
    """Start the core (with ``plugin_dirs``, each holding plugin folders) on a free
    port; ``api`` overrides ``[api]`` settings (e.g. ``access_token_minutes=1/30``)."""
    server = EmbeddedServer(Path(home), server_settings(plugin_settings, **api),
                            list(plugin_dirs))
    try:
        await server.start()
        yield server
    finally:
        await server.aclose()


# -- one event loop per test module ------------------------------------------------------
# A core takes a second or more to start (several on a busy machine), so a test module may
# start one and let its tests share it, on the module's one event loop: ``module_loop``
# and ``pytest_pyfunc_call`` are the host harness's (plexichat_desktop.testing.harness,
# where they are documented), re-exported here for the conftests that import them::
#
#     from api_integration_layer.testing import module_loop, pytest_pyfunc_call
#
# Such tests carry no ``asyncio`` mark (pytest-asyncio would run them on its loop).
#
# A suite whose modules can share one core imports ``suite_module_loop`` instead of
# ``module_loop``: the same loop, for the whole session, so a session-scoped core fixture
# can live on it (one start per suite, not one per module).


@pytest.fixture(scope="session", name="module_loop")
def suite_module_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The harness's ``module_loop`` (the name its ``pytest_pyfunc_call`` runs tests on),
    kept for the whole session."""
    yield from event_loop_for_tests()


class SharedServer(SharedCore[EmbeddedServer]):
    """An :func:`embedded_server` started by the first test that calls :meth:`get` and
    stopped by :meth:`close` (from a module fixture, on ``module_loop``)."""

    def __init__(self, home: Path, **options: Any):
        self.home = Path(home)
        self.options = options
        super().__init__(lambda: embedded_server(self.home, **self.options))


def module_server(loop: asyncio.AbstractEventLoop, tmp_path_factory: pytest.TempPathFactory,
                  *plugin_roots: Path, plugin_settings: dict[str, dict[str, Any]] | None = None,
                  ) -> Iterator[SharedServer]:
    """The body of a module-scoped ``shared_core`` fixture: a :class:`SharedServer` with
    only ``plugin_roots`` (and ``plugin_settings``), stopped on ``loop`` (the
    ``module_loop``) after the module. Use as ``yield from module_server(...)``."""
    from plexichat_desktop.core.paths import PLUGINS_PATH_ENV

    home = tmp_path_factory.mktemp("shared-core")
    options: dict[str, Any] = {"plugin_dirs": [plugin_folder(home, *plugin_roots)]}
    if plugin_settings is not None:
        options["plugin_settings"] = plugin_settings
    shared = SharedServer(home / "apphome", **options)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(PLUGINS_PATH_ENV, raising=False)
        try:
            yield shared
        finally:
            loop.run_until_complete(shared.close())


def plugin_folder(tmp_path: Path, *roots: Path) -> Path:
    """A folder holding only the given plugin folders (symlinked), so other plugins next
    to them do not load."""
    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    for root in roots:
        link = folder / root.name
        if not link.exists():
            link.symlink_to(root, target_is_directory=True)
    return folder


def signature_ok(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Check ``X-PlexiChat-Signature`` as docs/api-v1.md says:
    ``sha256=`` + HMAC-SHA256(secret, timestamp + "." + raw body)."""
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class LoopbackHTTPServer:
    """A tiny HTTP/1.1 server on 127.0.0.1 that follows a script, one entry per
    connection: ``"drop"`` (accept, then close without answering), ``"hang"`` (read the
    request, then answer nothing until the client goes) or ``(status, body_dict,
    headers)``; the last entry repeats. Every request is recorded.
    For webhook receivers, retry tests and servers that misbehave on purpose."""

    def __init__(self, script: Sequence[Any] = ((200, {"ok": True}, {}),)):
        self.script = list(script)
        self.connections = 0
        self.requests: list[ReceivedRequest] = []
        self.received: asyncio.Queue[ReceivedRequest] = asyncio.Queue()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> LoopbackHTTPServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        index = min(self.connections, len(self.script) - 1)
        self.connections += 1
        action = self.script[index]
        try:
            if action == "drop":
                return
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    key, value = line.split(":", 1)
                    headers[key.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            request = ReceivedRequest(method, path, headers, body)
            self.requests.append(request)
            self.received.put_nowait(request)
            if action == "hang":
                await reader.read()  # until the client closes its end
                return
            status, payload, extra = action
            data = json.dumps(payload).encode()
            head_out = [f"HTTP/1.1 {status} X", "Content-Type: application/json",
                        f"Content-Length: {len(data)}", "Connection: close",
                        *(f"{k}: {v}" for k, v in extra.items())]
            writer.write(("\r\n".join(head_out) + "\r\n\r\n").encode() + data)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class FakeOpenAIServer:
    """A small OpenAI-compatible server on 127.0.0.1 for tests of ``/api/v1/ai`` and of
    plugins that chat: ``GET /v1/models`` and ``POST /v1/chat/completions`` (plain and
    streamed as SSE). It answers ``"<reply_prefix><last user message>"``, one streamed
    chunk per word, with usage (``prompt_tokens`` = words of all messages,
    ``completion_tokens`` = words of the answer) unless ``usage`` is False.

    ``mode`` changes its behaviour, also between requests: ``"ok"``; ``"malformed"``
    (200 with JSON that is not a completion, or an SSE chunk that is not JSON);
    ``"error"`` (``error_status`` with an OpenAI error body that echoes the request's
    Authorization header, as careless servers do); ``"hang"`` (a streamed answer sends
    its first word, a plain one nothing, then it waits until the client closes the
    connection: ``closed`` is set then). Every request is in ``requests`` (method, path,
    headers, JSON body) and sets ``received``.
    """

    def __init__(self, *, models: Sequence[str] = ("tiny", "small"), usage: bool = True,
                 reply_prefix: str = "fake says: "):
        self.models = list(models)
        self.usage = usage
        self.reply_prefix = reply_prefix
        self.mode = "ok"
        self.error_status = 500
        # Like older servers: 400 for OpenAI's newer "stream_options" field.
        self.refuse_stream_options = False
        self.requests: list[ReceivedRequest] = []
        self.closed = asyncio.Event()
        self.received = asyncio.Event()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> FakeOpenAIServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop listening (the provider is then "down": connections are refused)."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def answer(self, body: dict[str, Any]) -> str:
        users = [m.get("content", "") for m in body.get("messages", [])
                 if m.get("role") == "user"]
        return self.reply_prefix + (users[-1] if users else "")

    @staticmethod
    def _words(text: str) -> list[str]:
        words = text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    def _usage(self, body: dict[str, Any], reply: str) -> dict[str, int]:
        prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        completion = len(reply.split())
        return {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion}

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in
                       (line.split(":", 1) for line in lines[1:] if ":" in line)}
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(ReceivedRequest(method, path, headers, raw))
            self.received.set()
            body = json.loads(raw) if raw else {}
            await self._respond(method, path, headers, body, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, payload: Any,
                    content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
                     f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                     + data)
        await writer.drain()

    async def _respond(self, method: str, path: str, headers: dict[str, str],
                       body: dict[str, Any], reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        if self.mode == "error":
            await self._send(writer, self.error_status, {"error": {
                "message": f"rejected; you sent {headers.get('authorization', 'nothing')}",
                "type": "invalid_request_error"}})
            return
        if method == "GET" and path == "/v1/models":
            if self.mode == "malformed":
                await self._send(writer, 200, b"<html>not json</html>", "text/html")
                return
            await self._send(writer, 200, {"object": "list", "data": [
                {"id": m, "object": "model", "owned_by": "fake"} for m in self.models]})
            return
        if method != "POST" or path != "/v1/chat/completions":
            await self._send(writer, 404, {"error": {"message": f"no route {path}"}})
            return
        if self.refuse_stream_options and "stream_options" in body:
            await self._send(writer, 400, {"error": {
                "message": "Unrecognized request argument supplied: stream_options"}})
            return
        if body.get("model") not in self.models:
            await self._send(writer, 404, {"error": {
                "message": f"model '{body.get('model')}' not found"}})
            return
        reply = self.answer(body)
        if self.mode == "malformed" and not body.get("stream"):
            await self._send(writer, 200, {"id": "x", "object": "chat.completion",
                                           "result": reply})
            return
        if self.mode == "hang" and not body.get("stream"):
            await reader.read()  # until the client closes the connection
            self.closed.set()
            return
        if not body.get("stream"):
            answer: dict[str, Any] = {
                "id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
                "model": body["model"], "choices": [{
                    "index": 0, "message": {"role": "assistant", "content": reply},
                    "finish_reason": "stop"}]}
            if self.usage:
                answer["usage"] = self._usage(body, reply)
            await self._send(writer, 200, answer)
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n")

        def event(data: Any) -> bytes:
            return b"data: " + (data if isinstance(data, bytes)
                                else json.dumps(data).encode()) + b"\n\n"

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return event({"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                          "created": 0, "model": body["model"], "choices": [
                              {"index": 0, "delta": delta, "finish_reason": finish}]})

        writer.write(b": keep-alive\n\n" + chunk({"role": "assistant", "content": ""}))
        words = self._words(reply)
        if self.mode == "malformed":
            writer.write(chunk({"content": words[0]}) + event(b"{not json"))
            await writer.drain()
            return
        for index, word in enumerate(words):
            writer.write(chunk({"content": word}))
            await writer.drain()
            if self.mode == "hang" and index == 0:
                # Wait for the client to close the connection (the cancellation test).
                await reader.read()
                self.closed.set()
                return
        writer.write(chunk({}, "stop"))
        if self.usage:
            writer.write(event({"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                                "created": 0, "model": body["model"], "choices": [],
                                "usage": self._usage(body, reply)}))
        writer.write(event(b"[DONE]"))
        await writer.drain()
