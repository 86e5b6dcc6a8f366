"""Takes docs/file-manager.png: the page in QtWebEngine offscreen, as the desktop window
shows it, on a demo folder with an archive open, a search done and a sync plan waiting.

Run from the repository root (it uses the project's GUI test fixtures; set
FM_SCREENSHOT_THEME=dark for docs/file-manager-dark.png):

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -p tests.conftest \\
        -p tests.gui.conftest plugins/file_manager/docs/screenshot.py -q -n 0 -p no:cacheprovider
"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path
from typing import Any

from plexichat_desktop.core.settings import Settings
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from tests.gui.page_console import page_browser

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parents[1] / "api_integration_layer"))


def demo(root: Path) -> None:
    (root / "Projects" / "site").mkdir(parents=True)
    (root / "Photos").mkdir()
    (root / "Notes").mkdir()
    (root / "Projects" / "site" / "index.html").write_text("<h1>TODO: hero</h1>\n")
    (root / "Projects" / "site" / "app.js").write_text("// TODO wire the form\n")
    (root / "Projects" / "plan.md").write_text("# Plan\n- TODO budget\n")
    (root / "Photos" / "beach.jpg").write_bytes(b"\xff\xd8" + os.urandom(300_000))
    (root / "Notes" / "ideas.txt").write_text("ideas\n")
    (root / "Notes" / "todo.txt").write_text("TODO: call Bob\n")
    (root / "Notes" / "setup.exe").write_bytes(b"MZ" + b"\0" * 1000)
    (root / "report.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(90_000))
    with zipfile.ZipFile(root / "site-backup.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("site/index.html", "<h1>old</h1>" * 100)
        zf.writestr("site/css/style.css", "body{}" * 300)
        zf.writestr("site/app.js", "let a = 1;\n" * 200)


def test_screenshot(qapp: Any, qtbot: Any, home: Any, arun: Any, tmp_path: Path) -> None:
    from api_integration_layer.testing import FAST_API, PASSWORD

    from plexichat_desktop.core.settings import ApiSettings

    root = tmp_path / "Documents"
    root.mkdir()
    demo(root)
    settings = Settings()
    settings.server.port = 0
    settings.api = ApiSettings(**FAST_API)
    settings.plugin = {"file_manager": {"roots": [str(root)]}}
    rt = Runtime(home, settings, RuntimeOptions(bundled=True, include_installed=False))
    arun(rt.start())
    try:
        layer = rt.plugins.by_id["api_integration_layer"].instance
        arun(layer.client.auth.register("ann", "ann@example.org", PASSWORD))
        arun(layer.client.auth.login("ann", PASSWORD))
        theme = os.environ.get("FM_SCREENSHOT_THEME", "light")
        with page_browser(qapp, qtbot, rt, tmp_path, arun, theme=theme) as browser:
            view = browser.open("/plugins/file_manager/", size=(1400, 1750))
            browser.wait_idle(view)
            js = browser.js

            def count(selector: str) -> int:
                return int(js(view, f"document.querySelectorAll({selector!r}).length"))

            def text(element_id: str) -> str:
                return str(js(view, f"document.getElementById({element_id!r}).textContent"))

            def click(element_id: str) -> None:
                js(view, f"document.getElementById({element_id!r}).click() || 1")

            def value(element_id: str, to: str) -> None:
                js(view, f"(document.getElementById({element_id!r}).value = {to!r}) && 1")

            qtbot.waitUntil(lambda: count("#pane-left tbody tr") == 5)
            js(view, "fileManager.state.panes[1].go('Notes') || 1")
            qtbot.waitUntil(lambda: count("#pane-right tbody tr") == 3)
            # Open the archive, select two rows, search, and plan a sync of Notes.
            js(view, "[...document.querySelectorAll('#pane-left .name-button')]"
                     ".find(b => b.textContent === 'site-backup.zip').click() || 1")
            qtbot.waitUntil(lambda: not js(view, "document.getElementById('archive-panel')"
                                                 ".hidden"))
            js(view, "[...document.querySelectorAll('#pane-left tbody tr')].slice(2, 4)"
                     ".forEach(r => r.click()) || 1")
            value("search-content", "TODO")
            click("search-start")
            qtbot.waitUntil(lambda: "match" in text("search-status"))
            qtbot.waitUntil(lambda: "ann" in text("sync-user"))
            js(view, "fileManager.state.active = 1")
            value("sync-cloud", "Notes")
            click("sync-plan")
            qtbot.waitUntil(lambda: count("#sync-rows tr") == 2, timeout=20_000)
            js(view, "fileManager.state.active = 0")
            browser.wait_idle(view)
            qtbot.wait(400)
            report = browser.report(view)
            assert not report.problems, report.problems
            name = "file-manager.png" if theme == "light" else f"file-manager-{theme}.png"
            view.grab().save(str(HERE / name))
    finally:
        arun(rt.stop())
