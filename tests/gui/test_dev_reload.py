"""``dev`` in the desktop window, with real QtWebEngine: saving a page file reloads its
open tab; a Python save that breaks the plugin turns the tab into the failed-plugin pane
with the reason; the next good save brings the page back, running the new code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plexichat_desktop.core.settings import Settings
from plexichat_desktop.dev import DevSession
from plexichat_desktop.gui.browser import BrowserPane, ProblemPane
from plexichat_desktop.plugins.scaffold import scaffold_plugin
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from tests.gui.shell_helpers import make_shell, wait_loaded

WAIT = 30_000  # ms; a bound, not a goal (benchmarks/author_loop.py measures the speed)


def test_saves_reload_the_open_tab_and_a_broken_save_shows_why(
        qapp: Any, home: Any, arun: Any, qtbot: Any, js: Any, tmp_path: Path) -> None:
    root = scaffold_plugin("live_edit", tmp_path / "plugins")
    settings = Settings()
    settings.server.port = 0
    runtime = Runtime(home, settings, RuntimeOptions(
        bundled=False, include_installed=False, extra_plugin_dirs=[root.parent]))
    arun(runtime.start())
    shell = make_shell(qapp, runtime, home)
    session = DevSession(runtime, root, tests=False)
    arun(session.start())
    qtbot.waitUntil(session.ready.is_set, timeout=WAIT)
    try:
        window = shell.window
        pane = window.open_page("/plugins/live_edit/index.html", "Live Edit")
        assert isinstance(pane, BrowserPane)
        wait_loaded(qtbot, js, pane, "document.getElementById('message').textContent"
                                     ".startsWith('Hello')", timeout=WAIT)

        # The plugin list's tab followed a link to the page: it reloads on saves too.
        home_tab = window.open_page("/", "Plugins")
        wait_loaded(qtbot, js, home_tab, "document.readyState === 'complete'", timeout=WAIT)
        js(home_tab.view, "location.assign('/plugins/live_edit/index.html'), 1")
        qtbot.waitUntil(lambda: home_tab.path == "/plugins/live_edit/index.html",
                        timeout=WAIT)
        wait_loaded(qtbot, js, home_tab, "document.readyState === 'complete'", timeout=WAIT)
        window.tabs.setCurrentWidget(pane)

        # A page save: the same view reloads (the marker set in the old document goes).
        for view in (pane.view, home_tab.view):
            js(view, "window.__before_reload = true")
        (root / "web" / "index.html").write_text(
            (root / "web" / "index.html").read_text().replace("<h1>", "<h1 id='edited'>"))
        for shown in (pane, home_tab):
            wait_loaded(qtbot, js, shown, "!window.__before_reload && "
                                          "!!document.getElementById('edited')", timeout=WAIT)
        assert window.tabs.currentWidget() is pane
        window.close_tab(window.tabs.indexOf(home_tab))
        index, count = window.tabs.indexOf(pane), window.tabs.count()

        # A broken Python save: the tab says why, in place.
        module = root / "live_edit" / "__init__.py"
        good = module.read_text()
        module.write_text(good + "\ndef broken(:\n")
        qtbot.waitUntil(lambda: isinstance(window.tabs.widget(index), ProblemPane), timeout=WAIT)
        problem = window.tabs.widget(index)
        assert isinstance(problem, ProblemPane) and window.tabs.currentWidget() is problem
        assert "syntax error" in problem.reason.text().lower()

        # The next good save: the page again, with the new code behind it.
        module.write_text(good.replace('f"{greeting}, {who}!"', 'f"{greeting}, {who}! v2"'))
        qtbot.waitUntil(lambda: isinstance(window.tabs.widget(index), BrowserPane), timeout=WAIT)
        again = window.tabs.widget(index)
        assert isinstance(again, BrowserPane) and window.tabs.count() == count
        wait_loaded(qtbot, js, again, "document.getElementById('message').textContent"
                                      ".endsWith('v2')", timeout=WAIT)
    finally:
        arun(session.stop())
        arun(shell.shutdown())
        arun(runtime.stop())


def test_dev_with_the_window_reloads_and_exits_cleanly(home: Any, tmp_path: Path) -> None:
    import re
    import signal
    import subprocess
    import sys
    import time

    from tests.gui.test_desktop_shell import app_env

    root = scaffold_plugin("windowed", tmp_path / "plugins")
    out = tmp_path / "dev.log"
    with out.open("w") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "plexichat_desktop", "dev", str(root),
                                 "--port", "0", "--no-tests"], env=app_env(home),
                                stdout=handle, stderr=subprocess.STDOUT, text=True)

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + WAIT / 1000
        while text not in out.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, out.read_text()
            time.sleep(0.05)

    try:
        wait_for("Watching ")
        assert re.search(r"Plugin windowed \(active\)", out.read_text())
        module = root / "windowed" / "__init__.py"
        module.write_text(module.read_text().replace('"Hello"', '"Hi"'))
        wait_for("reloaded windowed in")
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
    log = out.read_text()
    assert rc == 0, log[-3000:]
    assert "Traceback" not in log and "closing the desktop window" in log
