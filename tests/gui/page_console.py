"""Loading server pages in QtWebEngine and collecting what went wrong on them.

A page opens as the desktop window opens it (the app's profile, token interceptor, page
class and theme), and every problem a person would see in DevTools is recorded: console
errors, Content-Security-Policy violations (``securitypolicyviolation`` events, which also
catch a refused eval), resources that failed to load, and uncaught errors.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QUrl
from PySide6.QtWebEngineCore import QWebEnginePage, QWebEngineProfile, QWebEngineScript

from plexichat_desktop.gui.web import (
    PluginPage,
    PluginView,
    TokenInterceptor,
    create_profile,
    set_profile_theme,
)

Level = QWebEnginePage.JavaScriptConsoleMessageLevel

# Runs before any page script (DocumentCreation), in the page's own world so that it sees
# the page's fetches. In-flight requests are counted so that a test can wait until the
# page's first requests have answered, and their errors have been logged, before it looks.
WATCH_SOURCE = r"""
(() => {
  if (window.__pageWatch) return;
  const watch = window.__pageWatch = {csp: [], failed: [], errors: [], inflight: 0};
  document.addEventListener("securitypolicyviolation", (e) => {
    watch.csp.push(`${e.effectiveDirective} refused ${e.blockedURI || "(inline)"}` +
      ` at ${e.sourceFile || e.documentURI}:${e.lineNumber}` +
      (e.sample ? ` (${e.sample})` : ""));
  });
  // Element load errors do not bubble; a capturing listener on window sees them.
  window.addEventListener("error", (e) => {
    const t = e.target;
    if (t && t !== window && (t.src || t.href)) {
      watch.failed.push(`${t.tagName.toLowerCase()} ${t.src || t.href}`);
    } else if (e.message) {
      watch.errors.push(`${e.message} at ${e.filename}:${e.lineno}`);
    }
  }, true);
  window.addEventListener("unhandledrejection", (e) => {
    watch.errors.push(`unhandled rejection: ${e.reason && e.reason.stack || e.reason}`);
  });
  const fetch0 = window.fetch;
  window.fetch = function (...args) {
    watch.inflight += 1;
    return fetch0.apply(this, args).then((answer) => {
      if (!answer.ok) watch.failed.push(`fetch ${answer.url}: ${answer.status}`);
      return answer;
    }).finally(() => { watch.inflight -= 1; });
  };
})();
"""
WATCH_SCRIPT = "plexichat-test-page-watch"
# Idle: loaded, nothing in flight, and two animation frames run since (so that the
# promise callbacks of the last answer have had their turn).
IDLE = """(() => {
  const w = window.__pageWatch;
  if (!w || document.readyState !== "complete" || w.inflight) return false;
  if (w.frameAfterIdle) { w.frameAfterIdle = false; return true; }
  if (!w.waitingFrame) {
    w.waitingFrame = true;
    requestAnimationFrame(() => requestAnimationFrame(() => {
      w.waitingFrame = false; w.frameAfterIdle = !w.inflight; }));
  }
  return false;
})()"""


def evaluate(qtbot: Any, view: Any, expression: str, timeout: int = 20_000) -> Any:
    """``expression``'s value in the view's page, through JSON (PySide6 turns JS objects
    into '' otherwise).

    QtWebEngine drops a call made while the page navigates: its callback never comes
    (seen with every call made between a navigation's start and its commit, which on a
    loaded machine lasts seconds; the test then waited out its whole timeout and
    failed). So a call is made once the page is not loading, and made again if a
    navigation began before it was answered."""
    page = view.page()
    deadline = time.monotonic() + timeout / 1000

    def left() -> int:
        return max(1, int((deadline - time.monotonic()) * 1000))

    while True:
        qtbot.waitUntil(lambda: not page.isLoading(), timeout=left())
        results: list[str] = []
        page.runJavaScript(f"JSON.stringify({expression})", 0, results.append)
        qtbot.waitUntil(lambda r=results: bool(r) or page.isLoading(), timeout=left())
        if not results:  # navigating: answered by the old document, or dropped
            qtbot.waitUntil(lambda r=results: bool(r) or not page.isLoading(),
                            timeout=left())
        if results:
            return json.loads(results[0]) if results[0] else None


@dataclass
class ConsoleMessage:
    level: str
    message: str
    source: str
    line: int

    def __str__(self) -> str:
        return f"console {self.level}: {self.message} ({self.source}:{self.line})"


class RecordingPage(PluginPage):
    """The app's page class, keeping every console message."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.console: list[ConsoleMessage] = []

    def javaScriptConsoleMessage(self, level: QWebEnginePage.JavaScriptConsoleMessageLevel,
                                 message: str, line: int, source: str) -> None:
        names = {Level.ErrorMessageLevel: "error", Level.WarningMessageLevel: "warning",
                 Level.InfoMessageLevel: "info"}
        self.console.append(ConsoleMessage(names.get(level, str(level)), message, source,
                                           line))
        super().javaScriptConsoleMessage(level, message, line, source)


@dataclass
class PageReport:
    """What went wrong on one page; ``problems`` is empty for a clean page."""

    url: str
    console: list[ConsoleMessage] = field(default_factory=list)
    csp: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return ([str(m) for m in self.console if m.level == "error"]
                + [f"CSP violation: {v}" for v in self.csp]
                + [f"failed to load: {f}" for f in self.failed]
                + [f"uncaught: {e}" for e in self.errors])

    @property
    def warnings(self) -> list[str]:
        return [str(m) for m in self.console if m.level == "warning"]


class PageBrowser:
    """Opens pages of one running server; views are closed by :func:`page_browser`."""

    def __init__(self, qtbot: Any, base_url: str, profile: QWebEngineProfile,
                 interceptor: TokenInterceptor):
        self.qtbot = qtbot
        self.base_url = base_url.rstrip("/")
        self.profile = profile
        self.interceptor = interceptor
        self.views: list[PluginView] = []
        self._loads: dict[int, list[bool]] = {}  # id(view) -> its loadFinished arguments

    def open(self, path: str, size: tuple[int, int] = (1280, 860)) -> PluginView:
        view = self.start(path, size)
        self.wait_loaded(view)
        return view

    def start(self, path: str, size: tuple[int, int] = (1280, 860)) -> PluginView:
        """Begin loading ``path`` in a new view; :meth:`wait_loaded` waits for it (so that
        several pages can load at once)."""
        def make_page(owner: QObject) -> RecordingPage:
            return RecordingPage(self.profile, self.interceptor, None, owner)

        view = PluginView(make_page)
        view.resize(*size)
        view.show()
        self.views.append(view)
        finished = self._loads[id(view)] = []
        view.loadFinished.connect(finished.append)
        view.load(QUrl(self.base_url + path))
        return view

    def wait_loaded(self, view: PluginView, timeout: int = 30_000) -> None:
        finished = self._loads[id(view)]
        self.qtbot.waitUntil(lambda: bool(finished), timeout=timeout)
        assert finished[0], f"{view.url().toString()} did not load"

    def close(self, view: PluginView) -> None:
        """Close a view now (its renderer, and whatever its page keeps doing, go)."""
        self.views.remove(view)
        self._loads.pop(id(view), None)
        view.close()
        view.deleteLater()

    def js(self, view: PluginView, expression: str, timeout: int = 10_000) -> Any:
        return evaluate(self.qtbot, view, expression, timeout)

    def wait_idle(self, view: PluginView, timeout: int = 30_000) -> None:
        self.qtbot.waitUntil(lambda: bool(self.js(view, IDLE)), timeout=timeout)

    def report(self, view: PluginView) -> PageReport:
        page = view.page()
        assert isinstance(page, RecordingPage)
        watched = self.js(view, "window.__pageWatch || null") or {}
        return PageReport(url=page.url().toString(), console=list(page.console),
                          csp=watched.get("csp", []), failed=watched.get("failed", []),
                          errors=watched.get("errors", []))


def install_watch(profile: QWebEngineProfile) -> None:
    script = QWebEngineScript()
    script.setName(WATCH_SCRIPT)
    script.setInjectionPoint(QWebEngineScript.InjectionPoint.DocumentCreation)
    script.setWorldId(QWebEngineScript.ScriptWorldId.MainWorld)
    script.setRunsOnSubFrames(True)
    script.setSourceCode(WATCH_SOURCE)
    profile.scripts().insert(script)


@contextmanager
def page_browser(qapp: Any, qtbot: Any, runtime: Any, storage: Path,
                 arun: Callable[..., Any], theme: str = "light") -> Iterator[PageBrowser]:
    """A browser on ``runtime``'s server. Views go before the profile, and both before the
    server stops: leave this block before stopping the runtime."""
    assert runtime.server is not None
    interceptor = TokenInterceptor(runtime.server.port, runtime.token, qapp)
    profile = create_profile(qapp, interceptor, storage / "webengine", storage / "webcache")
    set_profile_theme(profile, theme)
    install_watch(profile)
    browser = PageBrowser(qtbot, runtime.url, profile, interceptor)
    try:
        yield browser
    finally:
        for view in browser.views:
            view.close()
            view.deleteLater()
        arun(asyncio.sleep(0.05))
        profile.deleteLater()
        interceptor.deleteLater()
        arun(asyncio.sleep(0.05))
