"""Links that ask for a new window: target=_blank, middle-click. App pages open as tabs,
foreign ones in the system browser (never a real one here: ``opened_urls`` records them)."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt, QUrl
from PySide6.QtGui import QDesktopServices

from plexichat_desktop.gui.main_window import MainWindow
from tests.gui.shell_helpers import wait_loaded

ADD_LINK = """(() => {
  const a = document.createElement("a");
  a.id = %(id)r; a.href = %(href)r; a.target = "_blank"; a.textContent = "follow me";
  a.style.cssText = "position:fixed;left:0;top:0;width:300px;height:120px;display:block;"
    + "z-index:9999;background:#fc0";
  // The presses the page received: a click sent while the view is still being shown
  // again (a tab switch on a loaded machine) can be dropped before it reaches the page.
  a.addEventListener("mousedown", (e) => { window.__presses = (window.__presses || 0) + 1; });
  document.body.append(a);
  window.__presses = 0;
  return true;
})()"""


def add_link(js: Any, pane: Any, href: str) -> None:
    for old in ("link",):
        js(pane.view, f"(document.getElementById({old!r}) || {{remove() {{}}}}).remove(), 1")
    assert js(pane.view, ADD_LINK % {"id": "link", "href": href})


def click(qtbot: Any, js: Any, pane: Any, button: Qt.MouseButton) -> None:
    """Click the link once the page shows it under the pointer. Chromium drops input
    that arrives while a view it is showing again has not drawn yet; the page counts the
    presses it got, so the click is sent again only when none arrived (never twice to
    the page)."""
    wait_loaded(qtbot, js, pane, "document.visibilityState === 'visible'"
                " && (document.elementFromPoint(40, 40) || {}).id === 'link'")
    target = pane.view.focusProxy()
    for _ in range(3):
        qtbot.mouseMove(target, QPoint(40, 40))
        qtbot.mouseClick(target, button, pos=QPoint(40, 40))
        try:
            wait_loaded(qtbot, js, pane, "window.__presses > 0", timeout=3_000)
            return
        except qtbot.TimeoutError:
            continue
    raise AssertionError("the page never received the click")


def status_messages(window: MainWindow) -> list[str]:
    """Every message the status bar shows from now on: another one (a plugin's
    notification, a reload) may follow within the same poll interval, and the check is that
    this one was shown, not that nothing came after it."""
    shown: list[str] = []
    window.statusBar().messageChanged.connect(shown.append)
    return shown


def paths(window: MainWindow) -> list[str]:
    return [window.tabs.widget(i).home_path for i in range(window.tabs.count())]


def test_blank_links_and_middle_clicks_open_tabs_or_the_browser(
        shell: Any, qtbot: Any, js: Any, opened_urls: list[str]) -> None:
    window: MainWindow = shell.window
    window.resize(1000, 700)
    pane = window.open_page("/plugins/good_plugin/index.html", "Good")
    wait_loaded(qtbot, js, pane, "document.querySelector('h1') !== null")

    add_link(js, pane, "/healthz?from=blank")
    click(qtbot, js, pane, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "/healthz?from=blank" in paths(window), timeout=10_000)
    assert window.tabs.currentWidget().home_path == "/healthz?from=blank"

    # A middle-click opens the tab behind the current one.
    window.tabs.setCurrentWidget(pane)
    add_link(js, pane, "/healthz?from=middle")
    click(qtbot, js, pane, Qt.MouseButton.MiddleButton)
    qtbot.waitUntil(lambda: "/healthz?from=middle" in paths(window), timeout=10_000)
    assert window.tabs.currentWidget() is pane

    add_link(js, pane, "https://example.org/docs")
    shown = status_messages(window)
    click(qtbot, js, pane, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "https://example.org/docs" in opened_urls, timeout=10_000)
    assert "Opened in your web browser: https://example.org/docs" in shown
    assert not any(p.startswith("http") for p in paths(window))


def test_without_a_browser_the_status_bar_says_so(
        shell: Any, qtbot: Any, js: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(QDesktopServices, "openUrl", staticmethod(lambda url: False))
    window: MainWindow = shell.window
    window.resize(1000, 700)
    pane = window.open_page("/plugins/good_plugin/index.html", "Good")
    wait_loaded(qtbot, js, pane, "document.querySelector('h1') !== null")
    add_link(js, pane, "https://example.org/nowhere")
    shown = status_messages(window)
    click(qtbot, js, pane, Qt.MouseButton.MiddleButton)
    qtbot.waitUntil(lambda: any("No web browser could open" in m for m in shown),
                    timeout=10_000)
    from PySide6.QtGui import QGuiApplication

    assert QGuiApplication.clipboard().text() == QUrl("https://example.org/nowhere").toString()


def test_a_link_in_a_pages_own_window_is_told_there(
        shell: Any, qtbot: Any, js: Any, opened_urls: list[str]) -> None:
    """The "Opened in your web browser" message went to the main window's status bar,
    which the user of the page's own window does not see."""
    window: MainWindow = shell.window
    own = window.open_window("/plugins/good_plugin/index.html", "Good")
    own.resize(1000, 700)
    wait_loaded(qtbot, js, own.pane, "document.querySelector('h1') !== null")
    add_link(js, own.pane, "https://example.org/own")
    shown = status_messages(own)  # type: ignore[arg-type]
    in_main = status_messages(window)
    click(qtbot, js, own.pane, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "https://example.org/own" in opened_urls, timeout=10_000)
    assert "Opened in your web browser: https://example.org/own" in shown
    assert not any("example.org/own" in m for m in in_main)
    own.close()
