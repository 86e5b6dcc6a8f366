"""Live pages share one connection: however many are open, the app stays responsive.

Chromium allows six HTTP/1.1 connections per host and each live page used to hold one
with its event stream; the seventh page did not even load, and a click waited until a
window closed. Now the pages' streams go through one SharedWorker connection (the live
hub) and the other connections stay free.
"""

from __future__ import annotations

from typing import Any

from plexichat_desktop.gui.main_window import MainWindow
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


def test_twelve_live_pages_leave_a_post_from_the_thirteenth_fast(
        shell: Any, qtbot: Any, js: Any) -> None:
    window: MainWindow = shell.window
    panes = []
    for n in range(12):
        path = f"{LIVE_PATHS[n % len(LIVE_PATHS)]}?copy={n}"
        # Half in tabs, half in standalone windows: all views share one profile.
        panes.append(window.open_window(path).pane if n % 2 else window.open_page(path))
    for pane in panes:
        wait_loaded(qtbot, js, pane, IS_LIVE, timeout=30_000)
    assert all(js(pane.view, "plexichatLive.mode") == "shared" for pane in panes)

    last = window.open_page("/healthz?copy=13")
    wait_loaded(qtbot, js, last, "document.body && document.body.innerText.includes('ok')")
    assert js(last.view, TIMED_POST)
    qtbot.waitUntil(lambda: js(last.view, "window.__post || null") is not None, timeout=20_000)
    answer = js(last.view, "window.__post")
    assert answer.get("status") == 200, answer
    assert answer["ms"] < 1000, answer

    # And the streams still carry events: a sample reaches every Performance Monitor page.
    for pane in panes[::len(LIVE_PATHS)]:
        before = js(pane.view, "document.getElementById('cpu-value').textContent")
        assert before is not None
    for window_ in list(window.windows):
        window_.close()
