"""The desktop shell for real: offscreen Qt, QtWebEngine, the real server over HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from PySide6.QtCore import QSettings, Qt, QUrl
from PySide6.QtWebEngineWidgets import QWebEngineView
from PySide6.QtWidgets import QLabel, QMessageBox

from plexichat_desktop.core.settings import Settings
from plexichat_desktop.gui.browser import BrowserPane, FallbackPane, ProblemPane
from plexichat_desktop.gui.main_window import MainWindow, PluginWindow
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from plexichat_desktop.server.token import load_or_create_token
from tests.conftest import FIXTURE_PLUGINS, switch_off_bundled, write_priority_plugin
from tests.gui.shell_helpers import WINDOW_PLUGINS, bundled_only, make_shell, wait_loaded

SCREENSHOTS = os.environ.get("PLEXICHAT_SCREENSHOT_DIR")


def test_window_opens_with_plugins_and_the_home_tab(shell: Any, qtbot: Any, js: Any) -> None:
    window: MainWindow = shell.window
    assert window.isVisible()
    names = [window.plugin_list.item(i).text() for i in range(window.plugin_list.count())]
    assert "Performance Monitor" in names and "Good Plugin" in names
    home = window.tabs.currentWidget()
    assert isinstance(home, BrowserPane) and home.home_path == "/"
    wait_loaded(qtbot, js, home, "document.querySelectorAll('.plugin').length > 3")
    qtbot.waitUntil(lambda: window.tabs.tabText(0).startswith("Plugins"), timeout=5_000)
    assert str(shell.runtime.url) in window.url_label.text()


def test_a_plugin_tab_renders_live_data(shell: Any, qtbot: Any, js: Any) -> None:
    window: MainWindow = shell.window
    item = next(window.plugin_list.item(i) for i in range(window.plugin_list.count())
                if window.plugin_list.item(i).text() == "Performance Monitor")
    window.plugin_list.itemActivated.emit(item)
    pane = window.tabs.currentWidget()
    assert isinstance(pane, BrowserPane)
    assert pane.home_path == "/plugins/performance_monitor/index.html"
    wait_loaded(qtbot, js, pane, r"/^\d+(\.\d+)?%$/.test("
                                 r"document.getElementById('cpu-value').textContent.trim())")
    qtbot.waitUntil(lambda: window.tabs.tabText(window.tabs.currentIndex()) ==
                    "Performance Monitor",
                    timeout=5_000)
    if SCREENSHOTS:
        window.resize(1280, 820)
        qtbot.wait(2500)
        window.open_window("/plugins/performance_monitor/index.html", "Performance")
        other = window.windows[-1]
        other.resize(900, 640)
        qtbot.wait(3000)
        window.grab().save(os.path.join(SCREENSHOTS, "main-window.png"))
        other.grab().save(os.path.join(SCREENSHOTS, "plugin-window.png"))


def test_the_token_comes_from_the_interceptor_only(shell: Any, qtbot: Any, js: Any) -> None:
    pane = shell.window.open_page("/healthz")
    wait_loaded(qtbot, js, pane, "document.body && document.body.innerText.includes('ok')")
    # The token is in no URL and no page script can read it.
    assert "token" not in pane.view.url().toString()
    assert shell.runtime.token not in js(pane.view, "document.documentElement.outerHTML")
    plain = QWebEngineView()  # the default profile has no interceptor
    try:
        with qtbot.waitSignal(plain.loadFinished, timeout=15_000):
            plain.load(QUrl(shell.runtime.url + "healthz"))
        assert "missing or wrong token" in js(plain, "document.body.innerText")
    finally:
        plain.deleteLater()


def test_foreign_navigation_leaves_the_view(shell: Any, qtbot: Any, js: Any,
                                            opened_urls: list[str]) -> None:
    pane = shell.window.open_page("/plugins/good_plugin/index.html")
    wait_loaded(qtbot, js, pane, "document.querySelector('h1') !== null")
    port = shell.runtime.server.port
    foreign = f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}/elsewhere"
    js(pane.view, f"(location.href = {foreign!r}, 1)")
    qtbot.waitUntil(lambda: foreign in opened_urls, timeout=5_000)
    qtbot.wait(300)
    assert pane.view.url().toString().startswith(shell.runtime.url)
    assert js(pane.view, "document.querySelector('h1').textContent") == "Good page"


def test_a_standalone_window_opens_and_closes(shell: Any, qtbot: Any, js: Any) -> None:
    window: MainWindow = shell.window
    plugin_window = window.open_window("/plugins/good_plugin/index.html", "Good")
    assert isinstance(plugin_window, PluginWindow) and plugin_window.isVisible()
    wait_loaded(qtbot, js, plugin_window.pane,
                "document.querySelector('h1') && document.querySelector('h1').textContent")
    assert window.windows == [plugin_window]
    plugin_window.close()
    assert window.windows == []


SYNTAX_PLUGIN = """id = "syntax_page"
name = "Syntax Page"
version = "1.0.0"
entry = "syntax_pkg:Plugin"

[[pages]]
title = "Broken"
path = "index.html"
"""


def test_a_failed_plugins_page_says_why_and_offers_details(
        qapp: Any, home: Any, arun: Any, qtbot: Any, js: Any, tmp_path: Any,
        opened_urls: list[str]) -> None:
    root = tmp_path / "plugins" / "syntax"
    (root / "syntax_pkg").mkdir(parents=True)
    (root / "web").mkdir()
    (root / "plugin.toml").write_text(SYNTAX_PLUGIN)
    (root / "syntax_pkg" / "__init__.py").write_text("def broken(:\n    pass\n")
    (root / "web" / "index.html").write_text("<h1>never shown</h1>")
    settings = Settings()
    settings.server.port = 0
    runtime = Runtime(home, settings, RuntimeOptions(
        bundled=False, include_installed=False, extra_plugin_dirs=[
            FIXTURE_PLUGINS, root.parent,
            bundled_only(tmp_path / "window-plugins", *WINDOW_PLUGINS)]))
    arun(runtime.start())
    shell = make_shell(qapp, runtime, home)
    try:
        window: MainWindow = shell.window
        reason = runtime.plugins.by_id["syntax_page"].reason
        assert reason and "syntax" in reason.lower()
        item = next(window.plugin_list.item(i) for i in range(window.plugin_list.count())
                    if window.plugin_list.item(i).text() == "Syntax Page")
        assert reason in item.toolTip()
        window.plugin_list.itemActivated.emit(item)
        pane = window.tabs.currentWidget()
        assert isinstance(pane, ProblemPane)
        assert "Syntax Page is not running" in pane.findChild(QLabel).text()
        assert reason in pane.reason.text()
        # All of it shows, at any width (audit: cut after a line, the reason unseen).
        for width in (800, 1600):
            window.resize(width, 700)
            qtbot.waitUntil(lambda: pane.reason.width() <= pane.width(), timeout=5_000)
            needed = pane.reason.heightForWidth(pane.reason.width())
            assert pane.reason.height() >= needed > 2 * pane.reason.fontMetrics().height()
        qtbot.mouseClick(pane.details_button, Qt.MouseButton.LeftButton)
        box = next(b for b in window.findChildren(QMessageBox) if b.isVisible())
        assert reason in box.text() + box.detailedText()
        box.close()

        # The page itself, when it is loaded anyway (a reload, a link): the server's
        # answer naming the reason stays; no "$1 is unable to handle this request".
        browser = shell.make_pane("/plugins/syntax_page/index.html", "Broken", None)
        try:
            wait_loaded(qtbot, js, browser, "document.body && "
                        "document.body.innerText.includes('Plugin not running')")
            qtbot.wait(500)
            text = js(browser.view, "document.body.innerText")
            assert "syntax" in text.lower() and "$1" not in text
            assert "Page not loaded" not in text
        finally:
            browser.shutdown()
            browser.deleteLater()

        # The home page links to the pages of running plugins only.
        home_pane = window.open_page("/")
        visible = ("[...document.querySelectorAll('[data-plugin=\"%s\"] .pages a')]"
                   ".filter((a) => a.offsetParent !== null).length")
        wait_loaded(qtbot, js, home_pane, visible % "good_plugin" + " > 0")
        assert js(home_pane.view, visible % "syntax_page") == 0
    finally:
        arun(shell.shutdown())
        arun(runtime.stop())


def test_a_plugin_without_a_page_opens_its_details_not_a_404(shell: Any, qtbot: Any) -> None:
    """Audit: a running plugin that serves others and has no page opened a tab titled
    "404" ("has no web/ folder"), and the list said nothing of it."""
    window: MainWindow = shell.window
    item = next(window.plugin_list.item(i) for i in range(window.plugin_list.count())
                if window.plugin_list.item(i).text() == "Depends On Good")
    assert "No page of its own" in item.toolTip()
    tabs = window.tabs.count()
    window.plugin_list.itemActivated.emit(item)
    box = next(b for b in window.findChildren(QMessageBox) if b.isVisible())
    assert "Depends On Good" in box.text() + box.windowTitle()
    box.close()
    assert window.tabs.count() == tabs


def test_tabs_windows_and_geometry_come_back(qapp: Any, runtime: Any, home: Any, arun: Any,
                                            qtbot: Any) -> None:
    first = make_shell(qapp, runtime, home)
    first.window.open_page("/plugins/good_plugin/index.html", "Good")
    first.window.open_window("/plugins/performance_monitor/index.html", "Performance")
    first.window.resize(643, 477)  # inside the 800x600 offscreen screen
    first.window.close()  # saves the state, closes the windows
    arun(first.shutdown())
    second = make_shell(qapp, runtime, home)
    try:
        paths = [second.window.tabs.widget(i).home_path
                 for i in range(second.window.tabs.count())]
        assert paths == ["/", "/plugins/good_plugin/index.html"]
        assert [w.pane.home_path for w in second.window.windows] == [
            "/plugins/performance_monitor/index.html"]
        assert second.window.size().width() == 643
        settings = QSettings(str(home.config_dir / "gui.ini"), QSettings.Format.IniFormat)
        assert settings.value("main/tabs")
    finally:
        arun(second.shutdown())


def test_each_tab_comes_back_as_itself_with_its_start_page(
        qapp: Any, runtime: Any, home: Any, arun: Any, qtbot: Any) -> None:
    """Audit: the plugin list's tab, taken to a plugin's page by a click there, was saved as
    that page; with another tab on the same page the two were joined at the restart (the
    list's tab gone), and the current tab index pointed elsewhere."""
    good = "/plugins/good_plugin/index.html"
    first = make_shell(qapp, runtime, home)
    listing = first.window.tabs.widget(0)
    assert listing.home_path == "/"
    listing.view.load(listing.url(good))
    qtbot.waitUntil(lambda: listing.path == good, timeout=20_000)
    first.window.open_page("/plugins/performance_monitor/index.html", "Performance")
    first.window._new_tab(good, "Good again")
    first.window.tabs.setCurrentIndex(2)
    first.window.close()
    arun(first.shutdown())
    second = make_shell(qapp, runtime, home)
    try:
        tabs = [second.window.tabs.widget(i) for i in range(second.window.tabs.count())]
        wanted = [("/", good), ("/plugins/performance_monitor/index.html",) * 2, (good, good)]
        qtbot.waitUntil(lambda: [(t.home_path, t.path) for t in tabs] == wanted,
                        timeout=20_000)  # each page loaded where it was
        assert second.window.tabs.currentIndex() == 2
        # The list's tab is still the list's: the plugin list's Home finds it.
        assert second.window.open_page("/", "Plugins") is tabs[0]
    finally:
        arun(second.shutdown())


def test_without_webengine_pages_open_in_the_browser(qapp: Any, runtime: Any, home: Any,
                                                     arun: Any, opened_urls: list[str]) -> None:
    shell = make_shell(qapp, runtime, home, webengine_missing="it was turned off")
    try:
        pane = shell.window.open_page("/plugins/good_plugin/index.html", "Good")
        assert isinstance(pane, FallbackPane)
        assert opened_urls and "/login?code=" in opened_urls[-1]
        assert runtime.token not in opened_urls[-1]
        assert opened_urls[-1].endswith("next=/plugins/good_plugin/index.html")
    finally:
        arun(shell.shutdown())


def app_env(home: Any) -> dict[str, str]:
    """The environment of a real app process on ``home``, offscreen, with the bundled
    plugins switched off as a user would: these tests are about the app process (its
    start, its exit, its single instance), and starting fifteen plugins in it only made
    each of them slower (they are covered in test_plugin_pages.py)."""
    switch_off_bundled(home)
    env = {**os.environ, "PLEXICHAT_DESKTOP_HOME": str(home.config_dir.parent),
           "QT_QPA_PLATFORM": "offscreen"}
    env.pop("PLEXICHAT_DESKTOP_PLUGINS_PATH", None)
    return env


def test_a_second_launch_focuses_the_running_window_and_sigterm_exits_cleanly(
        home: Any, tmp_path: Path) -> None:
    """One app process for all of it (each start of one is seconds of CPU): a second
    launch finds it and brings it to the front; a test run yields the CPU to the window
    ([tests] nice, 10 by default) while the app keeps its own priority; then SIGTERM
    ends it cleanly."""
    env = app_env(home)
    report = tmp_path / "priority.txt"
    env["PLEXICHAT_DESKTOP_PLUGINS_PATH"] = str(
        write_priority_plugin(tmp_path / "plugins", report))
    first = subprocess.Popen([sys.executable, "-m", "plexichat_desktop", "--port", "0"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert first.stdout is not None
        line = first.stdout.readline()
        assert re.search(r"serving at http://127\.0\.0\.1:\d+/", line), line
        url = re.search(r"serving at (\S+)", line)[1]
        second = subprocess.run([sys.executable, "-m", "plexichat_desktop", "--port", "0"],
                                env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stderr
        assert f"already running at {url}" in second.stdout
        assert "brought to the front" in second.stdout
        token = load_or_create_token(home.token_file)
        run = httpx.post(f"{url}tests/run?wait=true", json={"plugin_name": "prio"},
                         headers={"Authorization": f"Bearer {token}"}, timeout=120)
        assert run.status_code == 200, run.text
        app_nice = os.getpriority(os.PRIO_PROCESS, first.pid)
        _how, nice, group, leads = report.read_text().split()
        assert int(nice) == min(app_nice + 10, 19) and group in ("-", "10") and leads == "True"
        assert app_nice == os.nice(0)
    finally:
        first.send_signal(signal.SIGTERM)
        try:
            rc = first.wait(30)
        finally:
            if first.poll() is None:
                first.kill()
    stderr = first.stderr.read() if first.stderr else ""
    assert rc == 0, stderr[-3000:]
    assert "bringing the window to the front" in stderr
    assert "Traceback" not in stderr and "Segmentation" not in stderr
    assert "closing the desktop window" in stderr


def test_a_core_that_cannot_start_after_the_window_shows_says_why_and_exits(
        home: Any) -> None:
    """The window is shown before the core is made: a failure then (here the test store
    is not a database) ends the app with exit code 1 and the reason in the log file, not
    only on a console nobody sees when the app was started from a launcher."""
    from plexichat_desktop.core.logs import LOG_FILE_NAME

    env = app_env(home)
    home.data_dir.mkdir(parents=True, exist_ok=True)
    (home.data_dir / "tests.sqlite3").write_bytes(b"this is not a database" * 100)
    done = subprocess.run([sys.executable, "-m", "plexichat_desktop", "--port", "0"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Segmentation" not in done.stderr
    logged = (home.log_dir / LOG_FILE_NAME).read_text()
    assert "PlexiChat Desktop could not start" in logged
    assert "DatabaseError" in logged and "Traceback" in logged


def test_pages_call_the_v1_api_with_their_own_token(shell: Any, qtbot: Any, js: Any) -> None:
    """The interceptor adds the app token everywhere on our origin except /api/v1, where
    the page's own Bearer token (from its v1 login) must reach the server unchanged."""
    pane = shell.window.open_page("/healthz")
    wait_loaded(qtbot, js, pane, "document.body && document.body.innerText.includes('ok')")
    pane.view.page().runJavaScript("""
        (async () => {
          const post = (path, body) => fetch(path, {method: "POST", body: JSON.stringify(body),
              headers: {"Content-Type": "application/json"}});
          await post("/api/v1/auth/register", {username: "pagetester",
              email: "page@example.org", password: "Correct-Horse-9!", terms_accepted: true});
          const login = await (await post("/api/v1/auth/login",
              {username: "pagetester", password: "Correct-Horse-9!"})).json();
          const me = await fetch("/api/v1/users/me",
              {headers: {Authorization: "Bearer " + login.access_token}});
          window.__v1 = {status: me.status, body: await me.json()};
        })().catch((e) => { window.__v1 = {error: String(e)}; });
    """)
    qtbot.waitUntil(lambda: js(pane.view, "window.__v1 || null") is not None, timeout=15_000)
    result = js(pane.view, "window.__v1")
    assert result.get("status") == 200, result
    assert result["body"]["username"] == "pagetester"


def test_a_disabled_plugins_page_opens_once_it_runs(shell: Any, arun: Any, qtbot: Any,
                                                    js: Any) -> None:
    window: MainWindow = shell.window
    arun(shell.runtime.plugins.disable("good_plugin"))
    pane = window.open_page("/plugins/good_plugin/index.html", "Good")
    assert isinstance(pane, ProblemPane) and "disabled" in pane.reason.text()
    index = window.tabs.indexOf(pane)
    arun(shell.runtime.plugins.enable("good_plugin"))
    qtbot.waitUntil(lambda: isinstance(window.tabs.widget(index), BrowserPane),
                    timeout=10_000)
    page = window.tabs.widget(index)
    assert window.tabs.currentWidget() is page
    wait_loaded(qtbot, js, page, "document.querySelector('h1') !== null")
