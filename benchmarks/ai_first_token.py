"""Time to the first streamed token of an AI answer: through the v1 API, a plugin and its
page vs in process.

A real app core (the embedded v1 API on 127.0.0.1, temporary home, with the Advanced
Client and API Integration Layer plugins running in it, the layer signed in) serves
``POST /api/v1/ai/chat`` with ``stream: true``. Ways to get the first token of the
built-in provider's answer (``builtin/plexi-echo``, a 40-word prompt), alternating in each
round so that drift hits all of them alike:

* direct (the baseline): ``BuiltinProvider.stream()`` called in this process, until its first
  piece with text; no HTTP, no auth, no SSE;
* HTTP + SSE: httpx (one kept-alive connection), from sending the request to the first
  ``data:`` line carrying text (token check, limits, model resolution, the usage row of the
  previous answer, SSE framing, uvicorn);
* client layer: ``ApiClient.ai.chat_stream()`` of the API integration layer, to its first
  delta with text (its rate limiter, token handling, parsing into models);
* plugin route: the Advanced Client's own ``POST /plugins/advanced_client/api/chats/{id}/
  send`` (httpx, a new chat each round, deleted after it), to its first ``delta`` event:
  the plugin stores the question, builds the context, asks the v1 API through the layer's
  client (HTTP + SSE again) and relays the pieces as SSE of its own;
* page (only with ``--page``): the Advanced Client's page in QtWebEngine (offscreen, the
  app's profile and token), "+ New chat", the prompt typed in, Send clicked; from the
  click to the first token in the DOM, both times taken inside the page
  (``performance.now()``, the token by a MutationObserver on the answer being written).
  The server then runs in the qasync loop with Qt, as in the desktop window, so the other
  rows of such a run include Qt's share of the loop.

For reference, a whole authenticated ``GET /api/v1/users/me`` is timed too: what any
request of the API costs on this machine, of which the first token's time is mostly made.

Prints the median and p90 of each over ``--rounds`` and their ratio to the direct call
measured in the same run. The server runs in this process too (one event loop), as it does
in the desktop app.

    .venv/bin/python benchmarks/ai_first_token.py [--rounds 200] [--page]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "plugins" / "api_integration_layer"))

PROMPT = " ".join(f"word{i}" for i in range(40))
MODEL = "builtin/plexi-echo"
PLUGINS = ("advanced_client", "api_integration_layer")


async def direct_first_token() -> float:
    from plexichat_desktop.server.v1.ai.builtin import BuiltinProvider
    from plexichat_desktop.server.v1.ai.providers import ChatMessage, ChatParams

    provider = BuiltinProvider()
    params = ChatParams("plexi-echo", [ChatMessage("user", PROMPT)], 1024)
    started = time.perf_counter()
    pieces = provider.stream(params)
    try:
        async for delta in pieces:
            if delta.content:
                return time.perf_counter() - started
    finally:
        await pieces.aclose()  # type: ignore[attr-defined]
    raise RuntimeError("the built-in provider produced no text")


async def http_first_token(http: httpx.AsyncClient, url: str, token: str) -> float:
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
    started = time.perf_counter()
    async with http.stream("POST", url, json=body,
                           headers={"Authorization": f"Bearer {token}"}) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(f"{response.status_code} {response.text}")
        lines = response.aiter_lines()
        async for line in lines:
            if line.startswith("data: ") and '"content":"word' in line:
                elapsed = time.perf_counter() - started
                break
        else:
            raise RuntimeError("no token in the stream")
        async for _rest in lines:
            pass  # read to the end: the connection is reused by the next round
    return elapsed


async def client_first_token(client: object) -> float:
    import contextlib

    started = time.perf_counter()
    stream = client.ai.chat_stream(PROMPT, model=MODEL)  # type: ignore[attr-defined]
    async with contextlib.aclosing(stream) as deltas:
        async for delta in deltas:
            if delta.content:
                elapsed = time.perf_counter() - started
                break
        else:
            raise RuntimeError("no token from the client")
        async for _rest in deltas:
            pass
    return elapsed


async def plugin_first_token(http: httpx.AsyncClient, base: str, headers: dict[str, str]
                             ) -> float:
    """The Advanced Client's send route, in a fresh chat (a growing one would send a
    growing history)."""
    created = await http.post(base + "chats", json={"model": MODEL}, headers=headers)
    if created.status_code >= 300:
        raise RuntimeError(f"new chat: {created.status_code} {created.text}")
    chat_id = created.json()["id"]
    started = time.perf_counter()
    async with http.stream("POST", f"{base}chats/{chat_id}/send", json={"content": PROMPT},
                           headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(f"{response.status_code} {response.text}")
        lines = response.aiter_lines()
        event = None
        async for line in lines:
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "delta":
                elapsed = time.perf_counter() - started
                break
            elif line.startswith("data: ") and event == "error":
                raise RuntimeError(f"the plugin answered an error: {line[6:]}")
        else:
            raise RuntimeError("no delta event from the plugin")
        async for _rest in lines:
            pass  # to the end: the answer is stored, the connection reused
    await http.delete(f"{base}chats/{chat_id}", headers=headers)
    return elapsed


# Installed into the page once: ``__benchSend()`` types the prompt and clicks Send, noting
# when, and when the answer being written first holds text (the delta handler sets the
# body's textContent; a whole answer in one network chunk is still seen, as a mutation
# of the ``streaming`` body, before the done event replaces it).
PAGE_DRIVER = """
(() => {
  window.__benchSend = (prompt) => {
    const list = document.getElementById("messages");
    window.__bench = {clicked: null, first: null};
    const seen = new MutationObserver((records) => {
      for (const r of records) {
        const body = r.target.nodeType === 1 ? r.target : r.target.parentElement;
        if (body && body.classList.contains("streaming") && body.textContent) {
          window.__bench.first = performance.now();
          seen.disconnect();
          return;
        }
      }
    });
    seen.observe(list, {subtree: true, childList: true, characterData: true});
    document.getElementById("prompt").value = prompt;
    window.__bench.clicked = performance.now();
    document.getElementById("send").click();
    return 1;
  };
  return 1;
})()
"""


class Page:
    """The Advanced Client's page in a QWebEngineView of the app's own profile."""

    def __init__(self, app: Any, tmp: Path):
        self.app = app
        self.tmp = tmp
        self.view: Any = None
        self.profile: Any = None
        self.interceptor: Any = None

    async def open(self, runtime: Any) -> None:
        from PySide6.QtCore import QUrl

        from plexichat_desktop.gui.web import (
            PluginPage,
            PluginView,
            TokenInterceptor,
            create_profile,
        )

        self.interceptor = TokenInterceptor(runtime.server.port, runtime.token, self.app)
        self.profile = create_profile(self.app, self.interceptor, self.tmp / "webengine",
                                      self.tmp / "webcache")
        self.view = PluginView(lambda owner: PluginPage(self.profile, self.interceptor, None,
                                                        owner))
        self.view.resize(1280, 900)
        self.view.show()
        loaded: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.view.loadFinished.connect(lambda ok: loaded.done() or loaded.set_result(ok))
        self.view.load(QUrl(runtime.url + "plugins/advanced_client/"))
        if not await loaded:
            raise RuntimeError("the Advanced Client page did not load")
        await self.until("document.body.dataset.ready === 'true'", 60, "the page's start")
        await self.evaluate(PAGE_DRIVER)

    async def evaluate(self, expression: str) -> Any:
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.view.page().runJavaScript(f"JSON.stringify({expression})", 0,
                                       lambda result: done.done() or done.set_result(result))
        result = await done
        return json.loads(result) if result else None

    async def until(self, expression: str, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.01)
        error = await self.evaluate("document.getElementById('page-error').textContent")
        raise TimeoutError(f"{what}: not within {timeout:.0f} s (page error: {error!r})")

    async def first_token(self, http: httpx.AsyncClient, base: str,
                          headers: dict[str, str]) -> float:
        await self.evaluate("document.getElementById('new-chat').click(), 1")
        await self.until("document.getElementById('chat-title').value === 'New chat' && "
                         "!document.querySelector('#messages li')", 30, "a new chat")
        await self.evaluate(f"window.__benchSend({json.dumps(PROMPT)})")
        bench = await self.until("window.__bench.first !== null && window.__bench", 30,
                                 "the first token in the DOM")
        # The answer finished and the page reloaded the chat: nothing of this round is
        # left running into the next way's measurement.
        await self.until("!document.getElementById('send').hidden && "
                         "!document.querySelector('#messages .writing') && "
                         "document.querySelectorAll('#messages li').length >= 2", 30,
                         "the answer's end")
        await asyncio.sleep(0.05)
        for chat in (await http.get(base + "chats", headers=headers)).json()["chats"]:
            await http.delete(f"{base}chats/{chat['id']}", headers=headers)
        return float(bench["first"] - bench["clicked"]) / 1000

    async def close(self) -> None:
        if self.view is not None:
            self.view.close()
            self.view.deleteLater()
        await asyncio.sleep(0.1)
        for part in (self.profile, self.interceptor):
            if part is not None:
                part.deleteLater()
        await asyncio.sleep(0.1)


async def http_round_trip(http: httpx.AsyncClient, url: str, token: str) -> float:
    """A whole authenticated GET of the v1 API: what any request costs, for reference."""
    started = time.perf_counter()
    response = await http.get(url, headers={"Authorization": f"Bearer {token}"})
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code} {response.text}")
    return elapsed


def summary(name: str, values: list[float], baseline: float | None) -> str:
    ordered = sorted(values)
    median = statistics.median(ordered)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    ratio = "" if baseline is None else f"{median / baseline:10.1f}x"
    return f"{name:34} {median * 1e3:10.3f} {p90 * 1e3:10.3f} {ratio}"


async def bench(rounds: int, page: Page | None = None) -> int:
    from api_integration_layer.testing import PASSWORD, embedded_server, plugin_folder

    with tempfile.TemporaryDirectory() as home:
        plugins = plugin_folder(Path(home), *(ROOT / "plugins" / p for p in PLUGINS))
        async with embedded_server(
                Path(home), plugin_dirs=[plugins],
                plugin_settings={"advanced_client": {"default_model": MODEL}},
                ai_requests_per_minute=0, ai_models_requests_per_minute=0,
                requests_per_minute=0) as server:
            assert server.runtime is not None
            for plugin_id in PLUGINS:
                record = server.runtime.plugins.by_id[plugin_id]
                if not record.running:
                    raise RuntimeError(f"plugin {plugin_id} is {record.state}: "
                                       f"{record.reason}")
            client = await server.account("bench")
            token = client.session.tokens.access_token  # type: ignore[union-attr]
            url = server.base_url + "/ai/chat"
            plugin_base = server.url + "plugins/advanced_client/api/"
            ways: dict[str, Callable[[], Awaitable[float]]] = {}
            async with httpx.AsyncClient(timeout=30) as http:
                # The layer signed in as the same user: the plugin's ctx.api acts for it.
                signed = await http.post(server.url + "plugins/api_integration_layer/api/"
                                         "login", json={"username": "bench",
                                                        "password": PASSWORD},
                                         headers=server.app_headers)
                if signed.status_code != 200:
                    raise RuntimeError(f"API layer login: {signed.status_code} "
                                       f"{signed.text}")
                ways = {
                    "direct (in process)": direct_first_token,
                    "HTTP + SSE (httpx)": lambda: http_first_token(http, url, token),
                    "client layer (chat_stream)": lambda: client_first_token(client),
                    "plugin route (advanced_client)": lambda: plugin_first_token(
                        http, plugin_base, server.app_headers),
                    "reference: GET /users/me (httpx)": lambda: http_round_trip(
                        http, server.base_url + "/users/me", token),
                }
                if page is not None:
                    await page.open(server.runtime)
                    ways["page (QtWebEngine, click -> DOM)"] = lambda: page.first_token(
                        http, plugin_base, server.app_headers)
                try:
                    for way in ways.values():  # warm up: app build, imports, connections
                        for _ in range(3):
                            await way()
                    times: dict[str, list[float]] = {name: [] for name in ways}
                    for _ in range(rounds):
                        for name, way in ways.items():
                            times[name].append(await way())
                finally:
                    if page is not None:
                        await page.close()  # before the server stops (its streams)
    baseline = statistics.median(times["direct (in process)"])
    print(f"time to the first streamed token of {MODEL}, {rounds} rounds "
          f"(ms; ratio = median / direct median)")
    print(f"{'way':34} {'median':>10} {'p90':>10} {'ratio':>11}")
    for name, values in times.items():
        print(summary(name, values, None if name.startswith("direct") else baseline))
    for name in ("HTTP + SSE (httpx)", "plugin route (advanced_client)",
                 "page (QtWebEngine, click -> DOM)"):
        if name in times:
            print(f"ratio {name} / direct: {statistics.median(times[name]) / baseline:.1f}")
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at the end")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="measurements per way")
    parser.add_argument("--page", action="store_true", help="also the Advanced Client's "
                        "page in QtWebEngine (offscreen unless QT_QPA_PLATFORM says)")
    args = parser.parse_args()
    if not args.page:
        return asyncio.run(bench(max(1, args.rounds)))
    return run_with_page(max(1, args.rounds))


def run_with_page(rounds: int) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from plexichat_desktop.gui.environment import prepare_qt_environment

    prepare_qt_environment()  # the app's Chromium flags (no GPU offscreen)
    flags = os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "")
    if os.geteuid() == 0 and "--no-sandbox" not in flags.split():
        # Chromium refuses to start as root with its sandbox.
        os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = f"{flags} --no-sandbox".strip()
    import PySide6.QtWebEngineWidgets  # noqa: F401  (before the QApplication)
    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory(prefix="plexichat-ai-page-") as tmp, loop:
        # Exactly one run_until_complete per process (qasync + QtWebEngine, see
        # /work/shared/reference/qt-webengine-notes.md).
        code = loop.run_until_complete(bench(rounds, Page(app, Path(tmp))))
    sys.stdout.flush()
    sys.stderr.flush()
    # QtWebEngine's exit-time teardown was seen to hang now and then; all is printed.
    os._exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
