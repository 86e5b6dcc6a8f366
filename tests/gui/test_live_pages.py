"""Live pages share one connection: however many are open, the app stays responsive.

Chromium allows six HTTP/1.1 connections per host and each live page used to hold one
with its event stream; the seventh page did not even load, and a click waited until a
window closed. Now the pages' streams go through one SharedWorker connection (the live
hub) and the other connections stay free.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from plexichat_desktop.core.events import AppFocusRequested
from plexichat_desktop.gui.main_window import MainWindow
from plexichat_desktop.plugins.sse import next_event, read_events
from tests.gui.shell_helpers import wait_loaded

LIVE_PATHS = ["/plugins/performance_monitor/index.html", "/plugins/api_integration_layer/",
              "/tests", "/"]
IS_LIVE = ("window.plexichatLive && plexichatLive.streams().length > 0 && "
           "plexichatLive.streams().every((s) => s.readyState === 1)")
TIMED_POST = """(() => {
  const started = performance.now();
  fetch("/api/app/focus", {method: "POST"}).then((answer) => {
    window.__post = {status: answer.status, ms: performance.now() - started};
  }, (err) => { window.__post = {error: String(err)}; });
  return true;
})()"""


# A bound on "they all go live", not a speed claim. Over 30 s was seen when the /tests pages
# among them collected every plugin's tests at once: those requests held all of Chromium's
# six connections to the server, and the other pages' loads and the live hub's
# subscriptions waited behind them (the page now collects one plugin at a time).
TWELVE_LIVE_WAIT = 60_000


def test_twelve_live_pages_leave_a_post_from_the_thirteenth_fast(
        shell: Any, qtbot: Any, js: Any) -> None:
    window: MainWindow = shell.window
    panes = []
    for n in range(12):
        path = f"{LIVE_PATHS[n % len(LIVE_PATHS)]}?copy={n}"
        # Half in tabs, half in standalone windows: all views share one profile.
        panes.append(window.open_window(path).pane if n % 2 else window.open_page(path))
    for pane in panes:
        wait_loaded(qtbot, js, pane, IS_LIVE, timeout=TWELVE_LIVE_WAIT)
    assert all(js(pane.view, "plexichatLive.mode") == "shared" for pane in panes)

    last = window.open_page("/healthz?copy=13")
    wait_loaded(qtbot, js, last, "document.body && document.body.innerText.includes('ok')")
    assert js(last.view, TIMED_POST)
    qtbot.waitUntil(lambda: js(last.view, "window.__post || null") is not None, timeout=20_000)
    answer = js(last.view, "window.__post")
    assert answer.get("status") == 200, answer
    assert answer["ms"] < 1000, answer

    # And the shared stream still carries events: new samples reach every Performance
    # Monitor page (one every 2 s, pushed; the page never polls for them).
    perf_pages = panes[::len(LIVE_PATHS)]
    before = [js(pane.view, "document.getElementById('updated').textContent")
              for pane in perf_pages]
    for pane, seen in zip(perf_pages, before, strict=True):
        qtbot.waitUntil(lambda p=pane, s=seen: js(
            p.view, "document.getElementById('updated').textContent") != s, timeout=20_000)
    for window_ in list(window.windows):
        window_.close()


def test_the_hub_carries_several_streams_and_refuses_what_is_not_one(
        runtime: Any, arun: Any) -> None:
    """The server half over real HTTP: one connection, streams asked for by POST, their
    events tagged with the subscription id; a path that is no stream fails with its
    status, the hub itself cannot be nested."""

    async def scenario() -> dict[str, list[dict[str, Any]]]:
        seen: dict[str, list[dict[str, Any]]] = {}
        client = httpx.AsyncClient(base_url=runtime.url, timeout=10, headers={
            "Authorization": f"Bearer {runtime.token}"})
        try:
            async with client.stream("GET", "/_live/stream") as response:
                assert response.status_code == 200
                events = read_events(response)
                hub = (await next_event(events, "hello"))["hub"]
                answer = await client.post(f"/_live/{hub}", json={"subscribe": [
                    {"id": "bus", "url": "/events"},
                    {"id": "tests", "url": "/tests/events", "last_event_id": "0"},
                    {"id": "missing", "url": "/tests/no-such-stream"},
                    {"id": "nested", "url": "/_live/stream"}]})
                assert answer.status_code == 200, answer.text
                focused = False
                async with asyncio.timeout(20):
                    async for name, items in events:
                        for item in items if name == "m" else []:
                            seen.setdefault(item["s"], []).append(item)
                        if not focused and any(i["t"] == "open" for i in seen.get("bus", [])):
                            focused = True
                            await client.post("/api/app/focus")
                        if any(i["t"] == "event" for i in seen.get("bus", [])) and \
                                "missing" in seen and "nested" in seen and "tests" in seen:
                            break
                gone = await client.post("/_live/not-a-hub", json={})
                assert gone.status_code == 404
                # Without the app's token (or a browser session) the hub is closed, like
                # every route it could follow.
                async with httpx.AsyncClient(base_url=runtime.url, timeout=10) as anonymous:
                    assert (await anonymous.get("/_live/stream")).status_code == 401
                    assert (await anonymous.post(f"/_live/{hub}", json={})).status_code == 401
        finally:
            await client.aclose()
        return seen

    seen = arun(scenario())
    assert seen["bus"][0]["t"] == "open"
    focus = next(i for i in seen["bus"] if i["t"] == "event")
    assert focus["e"] == AppFocusRequested.topic and json.loads(focus["d"]) is not None
    assert seen["tests"][0]["t"] == "open"
    assert seen["missing"] == [{"s": "missing", "t": "fail", "status": 404,
                                "detail": seen["missing"][0]["detail"]}]
    assert seen["nested"][0]["t"] == "fail" and seen["nested"][0]["status"] == 400


# A closed view's page is deleted, not unloaded: the worker learns of it when the page's
# Web Lock is released, then unsubscribes with a request of its own. Over 10 s was seen
# when that request waited for a free connection behind the /tests page's collections
# (see TWELVE_LIVE_WAIT). A bound on "it ends", not a speed claim.
CLOSE_WAIT = 30_000


def hub_streams() -> list[str]:
    """The streams the live hub follows for pages right now (its tasks are named
    'live hub <connection> <url>')."""
    return sorted(t.get_name().split(" ", 3)[3] for t in asyncio.all_tasks()
                  if t.get_name().startswith("live hub ") and not t.done())


def test_closing_pages_ends_their_streams_on_the_server(shell: Any, qtbot: Any,
                                                        js: Any) -> None:
    window: MainWindow = shell.window
    perf = "/plugins/performance_monitor/api/stream"
    tabs = [window.open_page(f"/plugins/performance_monitor/index.html?n={n}")
            for n in range(2)]
    own = window.open_window("/tests?n=3")
    for pane in [*tabs, own.pane]:
        wait_loaded(qtbot, js, pane, IS_LIVE, timeout=30_000)
    assert hub_streams().count(perf) == 2
    assert any(s.startswith("/tests/events") for s in hub_streams())
    window.close_tab(window.tabs.indexOf(tabs[0]))
    qtbot.waitUntil(lambda: hub_streams().count(perf) == 1, timeout=CLOSE_WAIT)
    own.close()
    qtbot.waitUntil(lambda: not any(s.startswith("/tests/events") for s in hub_streams()),
                    timeout=CLOSE_WAIT)
    while window.tabs.count():
        window.close_tab(0)
    qtbot.waitUntil(lambda: hub_streams() == [], timeout=CLOSE_WAIT)


def test_without_shared_workers_pages_use_their_own_streams(shell: Any, qtbot: Any,
                                                            js: Any) -> None:
    """A browser without SharedWorker (or one that refuses to start it) still gets live
    pages: plexichatLive.open() then is a plain EventSource."""
    from PySide6.QtWebEngineCore import QWebEngineScript

    script = QWebEngineScript()
    script.setName("no-shared-worker")
    script.setInjectionPoint(QWebEngineScript.InjectionPoint.DocumentCreation)
    script.setWorldId(QWebEngineScript.ScriptWorldId.MainWorld)
    script.setSourceCode("delete window.SharedWorker;")
    shell.profile.scripts().insert(script)
    try:
        pane = shell.window.open_page("/tests?direct=1")
        wait_loaded(qtbot, js, pane, IS_LIVE, timeout=30_000)
        assert js(pane.view, "plexichatLive.mode") == "direct"
        wait_loaded(qtbot, js, pane, "document.getElementById('conn').dataset.state === 'live'")
    finally:
        shell.profile.scripts().remove(script)


def test_a_signed_out_browser_is_told_so_and_stops_asking(
        shell: Any, qtbot: Any, js: Any, monkeypatch: Any) -> None:
    """A page in a web browser (no app token: a signed-in browser session) stayed
    "Reconnecting…" for ever after the browser was signed out (a restart of the app, or
    "Sign out all browsers"): the live worker retried the 401 for ever."""
    from PySide6.QtCore import QUrl
    from PySide6.QtWebEngineWidgets import QWebEngineView

    from plexichat_desktop.server.security import SecurityMiddleware

    refused: list[str] = []
    deny = SecurityMiddleware._deny

    async def counting(self: Any, scope: Any, send: Any, status: int, detail: str,
                       html: bool = False) -> None:
        if status == 401:
            refused.append(scope.get("path", ""))
        await deny(self, scope, send, status, detail, html)

    monkeypatch.setattr(SecurityMiddleware, "_deny", counting)
    page = "/plugins/performance_monitor/index.html"
    browser = QWebEngineView()  # the default profile: no interceptor, no app token
    try:
        browser.load(QUrl(shell.runtime.browser_login_link(page)))
        qtbot.waitUntil(lambda: browser.url().path() == page, timeout=30_000)
        qtbot.waitUntil(lambda: bool(js(browser, IS_LIVE)), timeout=60_000)
        assert js(browser, "plexichatLive.mode") == "shared"

        assert shell.runtime.sign_out_browsers() == 1
        qtbot.waitUntil(lambda: js(browser, "plexichatLive.signedOut") != "", timeout=30_000)
        assert js(browser, "plexichatLive.streams().every((s) => s.readyState === 2)")
        bar = js(browser, "(() => { const a = document.querySelector("
                          "'#plexichat-signed-out a'); return a && a.getAttribute('href'); })()")
        assert bar == "/login?next=%2Fplugins%2Fperformance_monitor%2Findex.html", bar
        # And then nothing more is asked of the server: the page's own reconnects end
        # at once in the page (it asks again every few seconds).
        asked = len(refused)
        qtbot.wait(8_000)
        assert len(refused) == asked, refused[asked:]
    finally:
        browser.deleteLater()
