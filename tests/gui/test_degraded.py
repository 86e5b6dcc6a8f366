"""A degraded plugin (running, an optional requirement missing) looks running, with the
reason, in the window and on the home page, and its page opens. For real: QtWebEngine
offscreen and the fixture plugin ``degraded_kit`` on the real server."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QTextDocumentFragment
from pytestqt.exceptions import TimeoutError as WaitTimeout

from plexichat_desktop.gui.browser import BrowserPane, ProblemPane
from plexichat_desktop.gui.main_window import STATE_COLOURS, MainWindow
from tests.gui.shell_helpers import wait_loaded

MISSING = "plexichat-fixture-absent-extra>=1"
PAGE = "/plugins/degraded_kit/index.html"
CARD = "document.querySelector('[data-plugin=\"degraded_kit\"]')"


def list_item(window: MainWindow, plugin_id: str) -> Any:
    items = [window.plugin_list.item(i) for i in range(window.plugin_list.count())]
    return next(i for i in items if i.data(Qt.ItemDataRole.UserRole) == plugin_id)


def home_card(js: Any, pane: Any) -> Any:
    return js(pane.view, f"""(() => {{ const card = {CARD};
        const pages = card.querySelector('[data-role="pages"]');
        const reason = card.querySelector('[data-role="reason"]');
        const badge = card.querySelector('[data-role="state"]');
        return {{state: badge.textContent, title: badge.title,
                 colour: getComputedStyle(badge).backgroundColor,
                 reason: reason.hidden ? null : reason.textContent,
                 pages: pages.hidden ? null : [...pages.querySelectorAll('a')].map(
                   (a) => a.getAttribute('href'))}}; }})()""")


def card_shows(qtbot: Any, js: Any, home: Any, state: str, running: bool) -> None:
    """Until the card shows ``state``, with the page links when ``running`` (a start
    passes through the same state without them first)."""
    def shown() -> bool:
        card = home_card(js, home)
        return bool(card["state"] == state and (card["pages"] is not None) == running)

    try:
        qtbot.waitUntil(shown, timeout=15_000)
    except WaitTimeout as exc:  # say what the page shows instead
        raise AssertionError(f"the home page did not show {state}: {home_card(js, home)}"
                             ) from exc


def test_a_degraded_plugin_looks_running_with_its_reason(kit_shell: Any, qtbot: Any,
                                                         js: Any) -> None:
    window: MainWindow = kit_shell.window
    rec = kit_shell.runtime.plugins.by_id["degraded_kit"]
    assert str(rec.state) == "degraded" and rec.running

    # The plugin list: an amber dot, the missing requirement on hover.
    item = list_item(window, "degraded_kit")
    dot = item.icon().pixmap(16, 16).toImage().pixelColor(8, 8)
    assert dot.name() == QColor(STATE_COLOURS["degraded"]).name()
    assert "degraded (running without:)" in item.toolTip() and MISSING in item.toolTip()

    # Its page opens (a plugin that is not running gets a pane saying why instead).
    window.plugin_list.itemActivated.emit(item)
    assert "Degraded Kit runs without: missing " + MISSING in \
        window.statusBar().currentMessage()
    pane = window.tabs.currentWidget()
    assert isinstance(pane, BrowserPane) and pane.home_path == PAGE
    wait_loaded(qtbot, js, pane, "document.querySelector('h1') !== null")
    assert js(pane.view, "document.querySelector('h1').textContent") == "Degraded page"

    # Details… says it runs, and without what.
    box = window.show_details(rec)
    qtbot.waitUntil(lambda: "Reading its schedules" not in box.text(), timeout=15_000)
    text = QTextDocumentFragment.fromHtml(box.text()).toPlainText()
    assert "Running, without:" in text and MISSING in text
    assert "No schedules." in text
    box.close()

    # The home page: the state, the reason as a note, and the page links.
    home = window.open_page("/", "Plugins")
    wait_loaded(qtbot, js, home, f"{CARD} !== null")
    card = home_card(js, home)
    assert card["state"] == "degraded" and MISSING in card["title"]
    assert card["reason"].startswith("Running without: missing " + MISSING)
    assert card["pages"] == [PAGE]
    assert card["colour"] == "rgb(168, 111, 0)"  # app.css .state-degraded


def test_the_home_page_and_the_window_follow_it_off_and_back(
        kit_shell: Any, qtbot: Any, js: Any, arun: Any) -> None:
    window: MainWindow = kit_shell.window
    plugins = kit_shell.runtime.plugins
    home = window.open_page("/", "Plugins")
    # index.js follows /events through the shared live connection: open before we act.
    wait_loaded(qtbot, js, home, "document.readyState === 'complete' && "
                                 "window.plexichatLive && plexichatLive.streams().length > 0 "
                                 "&& plexichatLive.streams().every((s) => s.readyState === 1)")

    arun(plugins.disable("degraded_kit"))
    card_shows(qtbot, js, home, "disabled", running=False)
    assert home_card(js, home)["pages"] is None
    pane = window.open_page(PAGE, "Degraded")
    assert isinstance(pane, ProblemPane)

    arun(plugins.enable("degraded_kit"))
    card_shows(qtbot, js, home, "degraded", running=True)
    card = home_card(js, home)
    assert card["pages"] == [PAGE] and MISSING in card["reason"]
    # The pane that said "not running" gives way to the page, as for an active plugin.
    qtbot.waitUntil(lambda: isinstance(window.tabs.currentWidget(), BrowserPane),
                    timeout=15_000)
    page = window.tabs.currentWidget()
    assert page.home_path == PAGE
    wait_loaded(qtbot, js, page, "document.querySelector('h1') !== null")
    assert MISSING in list_item(window, "degraded_kit").toolTip()
