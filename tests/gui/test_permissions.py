"""Permissions, for real: the desktop window and QtWebEngine offscreen. A plugin page on
our server asks for the clipboard; a page of another loopback server asks for it too."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import QUrl
from PySide6.QtGui import QGuiApplication
from PySide6.QtWebEngineCore import QWebEnginePage
from PySide6.QtWebEngineWidgets import QWebEngineView
from PySide6.QtWidgets import QMessageBox

from tests.gui.conftest import FAKE_MEDIA
from tests.gui.shell_helpers import wait_loaded

KIT_PAGE = "/plugins/desktop_kit/index.html"
COPY = "(window.__copied = undefined, window.copyText({text!r}).then((r) => {{ " \
       "window.__copied = r; }}), 1)"


def open_kit(shell: Any, qtbot: Any, js: Any) -> Any:
    pane = shell.window.open_page(KIT_PAGE, "Kit")
    wait_loaded(qtbot, js, pane, "typeof window.copyText === 'function'")
    focus(qtbot, js, shell.window, pane.view)
    return pane


def focus(qtbot: Any, js: Any, window: Any, view: Any) -> None:
    """The clipboard API refuses a document without focus before asking anything."""
    window.activateWindow()
    view.setFocus()
    qtbot.waitUntil(lambda: js(view, "document.hasFocus()") is True, timeout=15_000)


def copy(js: Any, view: Any, text: str) -> None:
    js(view, COPY.format(text=text))


def copied(js: Any, view: Any) -> Any:
    return js(view, "window.__copied === undefined ? null : window.__copied")


def test_our_page_asks_once_and_the_answer_is_kept_per_plugin(
        kit_shell: Any, qtbot: Any, js: Any, home: Any) -> None:
    gate = kit_shell.permissions
    asked: list[Any] = []
    gate.asked.connect(asked.append)
    QGuiApplication.clipboard().setText("before")
    pane = open_kit(kit_shell, qtbot, js)

    copy(js, pane.view, "hello from the kit")
    qtbot.waitUntil(lambda: bool(gate.open_questions), timeout=15_000)
    (question,) = gate.open_questions
    box = question.box
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert "Desktop Kit" in box.text() and "clipboard" in box.text()
    assert copied(js, pane.view) is None  # the page waits for the answer
    allow = next(b for b in box.buttons() if b.text() == "Allow")
    allow.click()
    qtbot.waitUntil(lambda: copied(js, pane.view) is not None, timeout=15_000)
    assert copied(js, pane.view) == "copied"
    assert QGuiApplication.clipboard().text() == "hello from the kit"
    stored = json.loads((home.config_dir / "permissions.json").read_text())
    assert stored == {"desktop_kit": {"clipboard": "granted"}}

    # Again in the same page: Chromium holds the grant while the page lives.
    focus(qtbot, js, kit_shell.window, pane.view)  # the question had it
    copy(js, pane.view, "again")
    qtbot.waitUntil(lambda: copied(js, pane.view) is not None, timeout=15_000)
    assert copied(js, pane.view) == "copied"
    assert QGuiApplication.clipboard().text() == "again"
    # A new page of the same plugin asks Chromium anew; the window answers from what
    # the user said, without a question.
    kit_shell.window.close_tab(kit_shell.window.tabs.indexOf(pane))
    pane = open_kit(kit_shell, qtbot, js)
    copy(js, pane.view, "new page")
    qtbot.waitUntil(lambda: copied(js, pane.view) is not None, timeout=15_000)
    assert copied(js, pane.view) == "copied"
    assert QGuiApplication.clipboard().text() == "new page"
    assert len(asked) == 1 and not gate.open_questions
    assert gate.decisions[-1].how == "remembered" and gate.decisions[-1].granted


RAW_COPY = ("(window.__copied = undefined, navigator.clipboard.writeText({text!r}).then("
            "() => {{ window.__copied = 'copied'; }}, "
            "(e) => {{ window.__copied = `refused: ${{e.name}}`; }}), 1)")


def test_a_grant_does_not_follow_the_tab_to_another_plugin(
        kit_shell: Any, qtbot: Any, js: Any) -> None:
    """Every plugin shares the origin: a tab that moves from a plugin the user allowed to
    another one is asked about that one."""
    gate = kit_shell.permissions
    gate.store.set("desktop_kit", "clipboard", True)
    pane = open_kit(kit_shell, qtbot, js)
    copy(js, pane.view, "kit")
    qtbot.waitUntil(lambda: copied(js, pane.view) is not None, timeout=15_000)
    assert copied(js, pane.view) == "copied"
    with qtbot.waitSignal(pane.view.loadFinished, timeout=15_000):
        js(pane.view, "(location.href = '/plugins/degraded_kit/index.html', 1)")
    focus(qtbot, js, kit_shell.window, pane.view)
    js(pane.view, RAW_COPY.format(text="other plugin"))
    qtbot.waitUntil(lambda: bool(gate.open_questions), timeout=15_000)
    (question,) = gate.open_questions
    assert question.plugin == "degraded_kit" and "Degraded Kit" in question.text
    next(b for b in question.box.buttons() if b.text() == "Deny").click()
    qtbot.waitUntil(lambda: copied(js, pane.view) is not None, timeout=15_000)
    assert copied(js, pane.view) == "refused: NotAllowedError"
    assert gate.store.of("degraded_kit") == {"clipboard": False}
    assert gate.store.of("desktop_kit") == {"clipboard": True}


def test_a_denied_answer_is_kept_too(kit_shell: Any, qtbot: Any, js: Any) -> None:
    gate = kit_shell.permissions
    pane = open_kit(kit_shell, qtbot, js)
    QGuiApplication.clipboard().setText("untouched")
    copy(js, pane.view, "nope")
    qtbot.waitUntil(lambda: bool(gate.open_questions), timeout=15_000)
    box = gate.open_questions[0].box
    next(b for b in box.buttons() if b.text() == "Deny").click()
    qtbot.waitUntil(lambda: copied(js, pane.view) is not None, timeout=15_000)
    assert copied(js, pane.view) == "refused: NotAllowedError"
    assert gate.store.get("desktop_kit", "clipboard") is False
    focus(qtbot, js, kit_shell.window, pane.view)
    copy(js, pane.view, "still nope")
    qtbot.waitUntil(lambda: copied(js, pane.view) is not None, timeout=15_000)
    assert copied(js, pane.view) == "refused: NotAllowedError"
    assert not gate.open_questions
    assert QGuiApplication.clipboard().text() == "untouched"


FOREIGN_PAGE = b"""<!doctype html><title>Elsewhere</title><h1>Another server</h1>"""


@pytest.fixture
def foreign_server() -> Iterator[str]:
    """A second loopback server, on a port of its own: another origin."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(FOREIGN_PAGE)))
            self.end_headers()
            self.wfile.write(FOREIGN_PAGE)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_foreign_origin_is_refused_without_a_question(
        kit_shell: Any, qtbot: Any, js: Any, arun: Any, foreign_server: str) -> None:
    gate = kit_shell.permissions
    asked: list[Any] = []
    gate.asked.connect(asked.append)
    # The window's own pages never navigate there; a page of the same profile that got
    # there anyway is what the gate is for.
    view = QWebEngineView()
    page = QWebEnginePage(kit_shell.profile, view)
    view.setPage(page)
    gate.watch(page)
    try:
        view.resize(600, 400)
        view.show()
        with qtbot.waitSignal(view.loadFinished, timeout=15_000) as loaded:
            view.load(QUrl(foreign_server))
        assert loaded.args == [True]
        focus(qtbot, js, view, view)
        js(view, RAW_COPY.format(text="x"))
        qtbot.waitUntil(lambda: copied(js, view) is not None, timeout=15_000)
        assert copied(js, view) == "refused: NotAllowedError"
        assert asked == [] and not gate.open_questions
        decision = gate.decisions[-1]
        assert (decision.origin, decision.kind, decision.granted, decision.how) == (
            foreign_server.rstrip("/"), "clipboard", False, "refused")
        assert gate.store.of("app") == {}
        if FAKE_MEDIA in os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", ""):
            js(view, "(window.__copied = undefined, navigator.mediaDevices.getUserMedia("
                     "{audio: true}).then(() => { window.__copied = 'listening'; }, (e) => {"
                     " window.__copied = `refused: ${e.name}`; }), 1)")
            qtbot.waitUntil(lambda: copied(js, view) is not None, timeout=15_000)
            # A refused capture ends in AbortError in QtWebEngine, not NotAllowedError.
            assert copied(js, view).startswith("refused: ")
            assert asked == [] and gate.decisions[-1].kind == "microphone"
            assert gate.decisions[-1].how == "refused"
    finally:
        view.close()
        view.deleteLater()
        arun(asyncio.sleep(0.05))


LISTEN = "(window.__copied = undefined, window.listen().then((r) => { window.__copied = r; }), 1)"


def test_the_microphone_is_asked_for_like_the_clipboard(
        kit_shell: Any, qtbot: Any, js: Any, home: Any) -> None:
    if FAKE_MEDIA not in os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", ""):
        pytest.skip(f"needs {FAKE_MEDIA} in QTWEBENGINE_CHROMIUM_FLAGS (no capture device)")
    gate = kit_shell.permissions
    pane = open_kit(kit_shell, qtbot, js)
    js(pane.view, LISTEN)
    qtbot.waitUntil(lambda: bool(gate.open_questions), timeout=15_000)
    (question,) = gate.open_questions
    assert question.kind == "microphone" and "use the microphone" in question.box.text()
    next(b for b in question.box.buttons() if b.text() == "Allow").click()
    qtbot.waitUntil(lambda: copied(js, pane.view) is not None, timeout=15_000)
    assert copied(js, pane.view) == "listening"
    stored = json.loads((home.config_dir / "permissions.json").read_text())
    assert stored == {"desktop_kit": {"microphone": "granted"}}


def test_details_shows_the_answers_and_forgets_them(kit_shell: Any, qtbot: Any,
                                                    js: Any) -> None:
    gate = kit_shell.permissions
    window = kit_shell.window
    pane = open_kit(kit_shell, qtbot, js)
    copy(js, pane.view, "first")
    qtbot.waitUntil(lambda: bool(gate.open_questions), timeout=15_000)
    next(b for b in gate.open_questions[0].box.buttons() if b.text() == "Deny").click()
    qtbot.waitUntil(lambda: copied(js, pane.view) is not None, timeout=15_000)
    assert copied(js, pane.view) == "refused: NotAllowedError"

    box = window.show_details(kit_shell.runtime.plugins.by_id["desktop_kit"])
    qtbot.waitUntil(lambda: "Schedules" in box.text(), timeout=15_000)
    assert "Permissions: clipboard denied" in box.text()
    forget = next(b for b in box.buttons() if b.text() == "Forget its permissions")
    forget.click()
    assert gate.store.of("desktop_kit") == {}
    assert "will ask again" in window.statusBar().currentMessage()

    # The open page asks again too (Chromium's answer for it was dropped).
    focus(qtbot, js, window, pane.view)
    copy(js, pane.view, "second")
    qtbot.waitUntil(lambda: bool(gate.open_questions), timeout=15_000)
    next(b for b in gate.open_questions[0].box.buttons() if b.text() == "Allow").click()
    qtbot.waitUntil(lambda: copied(js, pane.view) is not None, timeout=15_000)
    assert copied(js, pane.view) == "copied"
    assert QGuiApplication.clipboard().text() == "second"
