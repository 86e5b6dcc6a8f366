"""Checks the panes' commander keys in QtWebEngine (arrows, Space, Enter, Backspace) on
the real page, with no console error. Run from the repository root like screenshot.py:

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -c pyproject.toml -p tests.conftest \\
        -p tests.gui.conftest plugins/file_manager/docs/keyboard_check.py \\
        -q -n 0 -p no:cacheprovider
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from plexichat_desktop.core.settings import Settings
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from tests.gui.page_console import page_browser

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshot import demo

ROWS = "document.querySelectorAll('#pane-left tbody tr').length"
CURSOR = ("[...document.querySelectorAll('#pane-left tbody tr')]"
          ".findIndex(r => r.classList.contains('cursor'))")


def test_commander_keys(qapp: Any, qtbot: Any, home: Any, arun: Any, tmp_path: Path) -> None:
    root = tmp_path / "Documents"
    root.mkdir()
    demo(root)
    settings = Settings()
    settings.server.port = 0
    settings.plugin = {"file_manager": {"roots": [str(root)]}}
    rt = Runtime(home, settings, RuntimeOptions(bundled=True, include_installed=False))
    arun(rt.start())
    try:
        with page_browser(qapp, qtbot, rt, tmp_path, arun) as browser:
            view = browser.open("/plugins/file_manager/")
            browser.wait_idle(view)
            js = browser.js

            def key(name: str) -> None:
                js(view, "document.querySelector('#pane-left .table-wrap').dispatchEvent("
                         f"new KeyboardEvent('keydown', {{key: {name!r}, bubbles: true}})) && 1")

            qtbot.waitUntil(lambda: js(view, ROWS) == 5)
            key("ArrowDown")
            key("ArrowDown")  # Notes, Photos, Projects
            assert js(view, CURSOR) == 2
            key(" ")
            assert js(view, "fileManager.state.panes[0].selection()") == ["Projects"]
            key("Enter")
            qtbot.waitUntil(lambda: js(view, "fileManager.state.panes[0].path") == "Projects")
            qtbot.waitUntil(lambda: js(view, ROWS) == 2)
            key("Backspace")
            qtbot.waitUntil(lambda: js(view, "fileManager.state.panes[0].path") == "")
            browser.wait_idle(view)
            report = browser.report(view)
            assert not report.problems, report.problems
    finally:
        arun(rt.stop())
