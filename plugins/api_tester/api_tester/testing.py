"""Test helpers: a real loopback HTTP server to test against, and the real app core.

Every request of these tests goes to 127.0.0.1. Async tests take no async fixtures (the
test manager runs them with its own runner), so servers start inside each test through
the async context managers here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from plexichat_desktop.core.paths import PLUGINS_PATH_ENV, AppPaths
from plexichat_desktop.core.settings import ApiSettings, Settings
from plexichat_desktop.runtime import Runtime, RuntimeOptions

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_ID = "api_tester"
PASSWORD = "Corr3ct-Horse-Battery"


@dataclass
class Loopback:
    """The test server's address and a switch tests flip (``/toggle`` answers 200 while
    ``healthy`` is true, else 500)."""

    url: str
    port: int
    state: dict[str, Any] = field(default_factory=lambda: {"healthy": True, "hits": 0})


def make_app(state: dict[str, Any]) -> Starlette:
    async def echo(request: Request) -> Response:
        body = await request.body()
        form: dict[str, Any] = {}
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            parsed = await request.form()
            for key, value in parsed.multi_items():
                if hasattr(value, "read"):
                    form[key] = {"filename": value.filename,
                                 "content": (await value.read()).decode()}
                else:
                    form.setdefault(key, []).append(value)
        try:
            text: Any = body.decode()
        except UnicodeDecodeError:
            text = base64.b64encode(body).decode()
        return JSONResponse({"method": request.method, "path": request.url.path,
                             "query": request.url.query,
                             "args": [list(p) for p in request.query_params.multi_items()],
                             "headers": dict(request.headers), "body": text, "form": form},
                            headers={"X-Request-Id": "req-42"})

    async def user(request: Request) -> Response:
        return JSONResponse({"id": 7, "name": "Ann", "roles": ["admin", "dev"],
                             "token": "tok-" + request.path_params["name"]})

    async def binary(request: Request) -> Response:
        return Response(bytes(range(256)) * 4, media_type="application/octet-stream")

    async def huge(request: Request) -> Response:
        size = int(request.query_params.get("n", "100000"))
        return PlainTextResponse("x" * size)

    async def redirect(request: Request) -> Response:
        return RedirectResponse("/users/redirected", status_code=302)

    async def toggle(request: Request) -> Response:
        state["hits"] += 1
        if state["healthy"]:
            return JSONResponse({"ok": True})
        return JSONResponse({"ok": False}, status_code=500)

    async def status(request: Request) -> Response:
        return JSONResponse({"status": int(request.path_params["code"])},
                            status_code=int(request.path_params["code"]))

    async def whoami(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        if auth != "Bearer good-token":
            return JSONResponse({"detail": "no"}, status_code=401)
        return JSONResponse({"user": "ann"})

    async def slow(request: Request) -> Response:
        await asyncio.sleep(float(request.query_params.get("s", "2")))
        return PlainTextResponse("late")

    async def drip(request: Request) -> Response:
        """``n`` bytes, one every ``every`` seconds: each read is quick, the whole slow."""
        count = int(request.query_params.get("n", "5"))
        every = float(request.query_params.get("every", "0.25"))

        async def body() -> Any:
            for _ in range(count):
                await asyncio.sleep(every)
                yield b"."

        return StreamingResponse(body(), media_type="text/plain")

    async def cookie(request: Request) -> Response:
        """Sets a session cookie, and says which cookies came."""
        answer = JSONResponse({"cookie": request.headers.get("cookie")})
        answer.set_cookie("sid", "abcdef123456")
        return answer

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(routes=[
        Route("/echo", echo, methods=methods), Route("/users/{name}", user),
        Route("/binary", binary), Route("/huge", huge), Route("/redirect", redirect),
        Route("/toggle", toggle), Route("/status/{code:int}", status),
        Route("/whoami", whoami), Route("/slow", slow), Route("/drip", drip),
        Route("/cookie", cookie)])


@contextlib.asynccontextmanager
async def loopback_server() -> AsyncIterator[Loopback]:
    """A Starlette app under uvicorn on 127.0.0.1:<free port>, stopped on exit."""
    state: dict[str, Any] = {"healthy": True, "hits": 0}
    config = uvicorn.Config(make_app(state), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield Loopback(f"http://127.0.0.1:{port}", port, state)
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)


@dataclass
class App:
    """The real app core with this plugin active, its URL and the app token."""

    runtime: Runtime
    url: str

    @property
    def api(self) -> str:
        return f"{self.url}plugins/{PLUGIN_ID}/api/"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.runtime.token}"}

    def plugin(self) -> Any:
        record = self.runtime.plugins.by_id[PLUGIN_ID]
        assert str(record.state) == "active", (record.reason, record.detail)
        return record.instance

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.api, headers=self.headers, timeout=20,
                                 trust_env=False)

    async def v1_user(self, name: str) -> str:
        """Register a v1 account; returns its name (the password is PASSWORD)."""
        async with httpx.AsyncClient(base_url=f"{self.url}api/v1", timeout=20,
                                     trust_env=False) as client:
            answer = await client.post("/auth/register", json={
                "username": name, "email": f"{name}@example.org", "password": PASSWORD})
            assert answer.status_code in (200, 201), answer.text
        return name


@contextlib.asynccontextmanager
async def running_app(tmp_path: Path, *, v1: bool = True, **settings: Any
                      ) -> AsyncIterator[App]:
    """The core on a free port with only this plugin; ``settings`` go to its table.
    ``v1=False`` leaves out the embedded v1 API, for tests that never call it (opening
    its database is a good part of a start)."""
    saved = os.environ.pop(PLUGINS_PATH_ENV, None)
    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    link = folder / PLUGIN_ID
    if not link.exists():
        link.symlink_to(PLUGIN_ROOT, target_is_directory=True)
    home = tmp_path / "home"
    paths = AppPaths(home / "config", home / "data", home / "cache", home / "logs")
    config = Settings()
    config.server.port = 0
    config.api = ApiSettings(enabled=v1, scrypt_cost=4, register_rate_limit=0,
                             login_rate_limit=0, performance_interval=3600.0)
    config.plugin = {PLUGIN_ID: {"collections_dir": str(tmp_path / "collections"),
                                 "secrets_storage": "file", **settings}}
    runtime = Runtime(paths, config, RuntimeOptions(
        bundled=False, include_installed=False, extra_plugin_dirs=[folder]))
    try:
        url = await runtime.start()
        yield App(runtime, url)
    finally:
        await runtime.stop()
        if saved is not None:
            os.environ[PLUGINS_PATH_ENV] = saved


async def wait_job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """Poll a job of the plugin until it has finished (20 s at most)."""
    async with asyncio.timeout(20):
        while True:
            job: dict[str, Any] = (await client.get(f"_host/jobs/{job_id}")).json()
            if job["state"] in ("succeeded", "failed", "cancelled"):
                return job
            await asyncio.sleep(0.05)
