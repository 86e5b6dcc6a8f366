"""README screenshots of the window, taken only when PLEXICHAT_SCREENSHOT_DIR is set.

Light, dark (the pages dark too) and, when the process runs with QT_SCALE_FACTOR=2, the
same at 200 %: ``PLEXICHAT_DESKTOP_THEME=dark QT_SCALE_FACTOR=2 PLEXICHAT_SCREENSHOT_DIR=
docs/screenshots pytest tests/gui/test_screenshots.py``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from plexichat_desktop.gui.main_window import MainWindow
from plexichat_desktop.gui.theme import apply_theme
from tests.gui.shell_helpers import wait_loaded

SCREENSHOTS = os.environ.get("PLEXICHAT_SCREENSHOT_DIR")
pytestmark = pytest.mark.skipif(not SCREENSHOTS, reason="set PLEXICHAT_SCREENSHOT_DIR")


def suffix() -> str:
    theme = os.environ.get("PLEXICHAT_DESKTOP_THEME", "light")
    scale = os.environ.get("QT_SCALE_FACTOR", "1")
    return ("-dark" if theme == "dark" else "") + ("-200pct" if scale == "2" else "")


def test_window_screenshots(shell: Any, qapp: Any, qtbot: Any, js: Any) -> None:
    assert SCREENSHOTS is not None
    apply_theme(qapp)
    window: MainWindow = shell.window
    window.resize(1280, 820)
    window.first_start_layout()  # as a first start at this size lays it out
    panel = window.dashboard
    qtbot.waitUntil(panel._loaded.is_set, timeout=30_000)
    # The dock collects never-collected plugins on its first open: until that is over.
    last = {"count": -1, "since": time.monotonic()}

    def settled() -> bool:
        count = len(panel.model.tests())
        if count != last["count"]:
            last.update(count=count, since=time.monotonic())
        return count > 20 and time.monotonic() - last["since"] > 3

    qtbot.waitUntil(settled, timeout=90_000)
    panel.tree.expandToDepth(0)
    item = next(window.plugin_list.item(i) for i in range(window.plugin_list.count())
                if window.plugin_list.item(i).text() == "Performance Monitor")
    window.plugin_list.setCurrentItem(item)
    window.plugin_list.itemActivated.emit(item)
    pane = window.tabs.currentWidget()
    wait_loaded(qtbot, js, pane, r"/^\d+(\.\d+)?%$/.test("
                                 r"document.getElementById('cpu-value').textContent.trim())")
    qtbot.wait(4000)  # a few samples in the chart
    window.grab().save(os.path.join(SCREENSHOTS, f"main-window{suffix()}.png"))
    other = window.open_window("/tests", "Tests")
    other.resize(1000, 700)
    wait_loaded(qtbot, js, other.pane, "document.getElementById('conn') && "
                                       "document.getElementById('conn').dataset.state === 'live'")
    qtbot.wait(1500)
    other.grab().save(os.path.join(SCREENSHOTS, f"web-dashboard-window{suffix()}.png"))
    other.close()
