"""The desktop start as the app does it (gui/app.py _main): the window and its restored tab
come first, pointed at the bound port, while the server and the plugins start; the tab's
plugin starts before the others, which wait for the tab to load. No timings asserted."""

from __future__ import annotations

import asyncio
from typing import Any

from plexichat_desktop.gui.app import DesktopShell
from plexichat_desktop.gui.browser import BrowserPane
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from tests.gui.shell_helpers import (
    RESTORED_TAB,
    WINDOW_PLUGINS,
    restore_tabs,
    restored_tab_runtime,
)


def test_a_restored_tab_loads_while_its_plugin_starts_first(qapp: Any, home: Any, arun: Any,
                                                           qtbot: Any, js: Any) -> None:
    runtime = restored_tab_runtime(home)
    assert not any(rec.running for rec in runtime.plugins.records)
    shell = DesktopShell(qapp, runtime, home, asyncio.Event(), None)
    try:
        shell.show()
        pane = shell.window.tabs.widget(0)
        # The page itself, not "this plugin is not running": it is about to start.
        assert isinstance(pane, BrowserPane) and pane.home_path == RESTORED_TAB
        runtime.plugins.hold_others(shell.first_pages_loaded, 600)
        arun(runtime.start(plugins_in_background=True))
        qtbot.waitUntil(shell.first_pages_loaded.is_set, timeout=60_000)
        assert js(pane.view, "document.title") == "Performance Monitor"
        arun(asyncio.wait_for(runtime.plugins.started.wait(), 60), timeout=70_000)
        order = [rec.id for rec in runtime.plugins.active()]
        assert order[0] == "performance_monitor" and sorted(order) == sorted(WINDOW_PLUGINS)
    finally:
        runtime.begin_stop()
        arun(shell.shutdown())
        arun(runtime.stop())
        arun(shell.finish())


def test_a_restored_tab_whose_plugin_fails_to_start_says_why(qapp: Any, home: Any, arun: Any,
                                                            qtbot: Any) -> None:
    from plexichat_desktop.gui.browser import ProblemPane
    from tests.conftest import FIXTURE_PLUGINS

    settings = restore_tabs(home, ("/plugins/setup_raises/", "Raises"))
    runtime = Runtime(home, settings, RuntimeOptions(bundled=False, include_installed=False,
                                                     extra_plugin_dirs=[FIXTURE_PLUGINS]))
    runtime.prepare()
    shell = DesktopShell(qapp, runtime, home, asyncio.Event(), None)
    try:
        shell.show()
        assert isinstance(shell.window.tabs.widget(0), BrowserPane)  # it may still start
        arun(runtime.start(plugins_in_background=True))
        arun(asyncio.wait_for(runtime.plugins.started.wait(), 60), timeout=70_000)
        qtbot.waitUntil(lambda: isinstance(shell.window.tabs.widget(0), ProblemPane),
                        timeout=20_000)
        pane = shell.window.tabs.widget(0)
        assert pane.home_path == "/plugins/setup_raises/" and shell.window.tabs.count() == 1
    finally:
        runtime.begin_stop()
        arun(shell.shutdown())
        arun(runtime.stop())
        arun(shell.finish())


def test_the_window_is_shown_before_the_core_and_its_tab_loads_once_it_starts(
        qapp: Any, home: Any, arun: Any, qtbot: Any, js: Any) -> None:
    """As gui/app.py _main does it: listener and window first (the core imported in a
    worker thread meanwhile), then the runtime is made on the listener and attached. A
    restored tab of a plugin that is switched off shows why once the plugins are known."""
    from plexichat_desktop.core.events import EventBus
    from plexichat_desktop.gui.browser import ProblemPane
    from plexichat_desktop.runtime import Listener
    from tests.gui.shell_helpers import keep_bundled

    settings = restore_tabs(home, (RESTORED_TAB, "Performance"),
                            ("/plugins/data_visualizer/", "Data"))
    listener = Listener(home, settings)
    bus = EventBus()
    shell = DesktopShell(qapp, None, home, asyncio.Event(), None, listener=listener, bus=bus)
    runtime: Runtime | None = None
    try:
        shell.show()
        window = shell.window
        assert not window.attached and window.server_url == listener.url
        panes = [window.tabs.widget(i) for i in range(window.tabs.count())]
        assert [type(p) for p in panes] == [BrowserPane, BrowserPane]
        assert [p.home_path for p in panes] == [RESTORED_TAB, "/plugins/data_visualizer/"]
        assert window.plugin_list.count() == 1
        assert window.plugin_list.item(0).text() == "Starting…"
        window._copy_url("")  # nothing to sign in with yet: it says so
        assert "still starting" in window.statusBar().currentMessage()

        runtime = Runtime(home, settings, RuntimeOptions(include_installed=False),
                          listener=listener, bus=bus)
        keep_bundled(runtime, *WINDOW_PLUGINS)
        runtime.prepare()
        shell.attach(runtime)
        assert window.attached and window.plugin_list.count() == len(runtime.plugins.records)
        assert isinstance(window.tabs.widget(1), ProblemPane)  # data_visualizer is off
        assert window.tabs.widget(0) is panes[0]  # the page of a plugin about to start
        runtime.plugins.hold_others(shell.first_pages_loaded, 600)
        arun(runtime.start(plugins_in_background=True))
        qtbot.waitUntil(shell.first_pages_loaded.is_set, timeout=60_000)
        assert js(panes[0].view, "document.title") == "Performance Monitor"
        arun(asyncio.wait_for(runtime.plugins.started.wait(), 60), timeout=70_000)
        assert next(rec.id for rec in runtime.plugins.active()) == "performance_monitor"
        qtbot.waitUntil(lambda: window.dashboard_built, timeout=20_000)
    finally:
        if runtime is not None:
            runtime.begin_stop()
        arun(shell.shutdown())
        arun(runtime.stop() if runtime is not None else listener.stop())
        arun(shell.finish())


def test_without_webengine_pages_asked_for_during_the_start_open_once_it_can_sign_in(
        qapp: Any, home: Any, arun: Any, opened_urls: list[str]) -> None:
    """The browser needs a one-time sign-in link, which only the runtime makes: a restored
    tab's page opens in it when the runtime is attached, not before and not never."""
    from plexichat_desktop.core.events import EventBus
    from plexichat_desktop.gui.browser import FallbackPane
    from plexichat_desktop.runtime import Listener

    settings = restore_tabs(home, (RESTORED_TAB, "Performance"))
    listener = Listener(home, settings)
    bus = EventBus()
    shell = DesktopShell(qapp, None, home, asyncio.Event(), "it was turned off",
                         listener=listener, bus=bus)
    runtime = Runtime(home, settings, RuntimeOptions(include_installed=False, bundled=False),
                      listener=listener, bus=bus)
    try:
        shell.show()
        assert isinstance(shell.window.tabs.widget(0), FallbackPane)
        assert opened_urls == []
        runtime.prepare()
        shell.attach(runtime)
        assert len(opened_urls) == 1 and "/login?code=" in opened_urls[0]
        assert opened_urls[0].endswith(f"next={RESTORED_TAB}")
        assert runtime.token not in opened_urls[0]
    finally:
        arun(shell.shutdown())
        arun(runtime.stop())
        arun(shell.finish())
