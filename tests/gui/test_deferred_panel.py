"""The Tests panel waits for the first pages: the dock is there from the start with a
placeholder, the panel is built once the restored tab has loaded, and a window closed
before that never builds it. No timings asserted."""

from __future__ import annotations

import asyncio
from typing import Any

from PySide6.QtWidgets import QLabel

from plexichat_desktop.gui.app import DesktopShell
from tests.gui.shell_helpers import restored_tab_runtime


def test_the_tests_panel_is_built_once_the_first_page_has_loaded(
        qapp: Any, home: Any, arun: Any, qtbot: Any) -> None:
    runtime = restored_tab_runtime(home)
    shell = DesktopShell(qapp, runtime, home, asyncio.Event(), None)
    window = shell.window
    try:
        shell.show()
        assert not window.dashboard_built
        waiting = window.tests_dock.widget()
        assert isinstance(waiting, QLabel) and waiting.text() == "Loading the tests…"
        assert window.tests_dock.toggleViewAction().isChecked()  # View > Tests: shown
        runtime.plugins.hold_others(shell.first_pages_loaded, 600)
        arun(runtime.start(plugins_in_background=True))
        qtbot.waitUntil(shell.first_pages_loaded.is_set, timeout=60_000)
        qtbot.waitUntil(lambda: window.dashboard_built, timeout=10_000)
        panel = window.dashboard
        assert window.tests_dock.widget() is panel
        qtbot.waitUntil(panel._loaded.is_set, timeout=10_000)
        assert panel.actions_by_name["Run all"].isEnabled()
    finally:
        runtime.begin_stop()
        arun(shell.shutdown())
        arun(runtime.stop())
        arun(shell.finish())


def test_a_window_closed_before_its_first_page_loaded_never_builds_the_panel(
        qapp: Any, home: Any, arun: Any) -> None:
    runtime = restored_tab_runtime(home)  # never started: the tab waits in the backlog
    shell = DesktopShell(qapp, runtime, home, asyncio.Event(), None)
    window = shell.window
    try:
        shell.show()
        assert not shell.first_pages_loaded.is_set()
    finally:
        runtime.begin_stop()
        arun(shell.shutdown())
        arun(runtime.stop())
        arun(shell.finish())
    assert not window.dashboard_built
