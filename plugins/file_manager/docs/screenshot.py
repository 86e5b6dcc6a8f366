"""Takes docs/file-manager.png: the page in QtWebEngine offscreen, as the desktop window
shows it, on a demo folder with an archive open, a search done and a sync plan waiting.

Run from the repository root (it uses the project's GUI test fixtures; set
FM_SCREENSHOT_THEME=dark for docs/file-manager-dark.png):

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -c pyproject.toml -p tests.conftest \\
        -p tests.gui.conftest plugins/file_manager/docs/screenshot.py -q -n 0 -p no:cacheprovider
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

from tests.gui.plugin_screenshots import docs_app, page_shots, sign_in

HERE = Path(__file__).resolve().parent


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
    root = tmp_path / "Documents"
    root.mkdir()
    demo(root)
    with docs_app(home, arun, tmp_path,
                  plugin_settings={"file_manager": {"roots": [str(root)]}}) as rt:
        sign_in(rt, arun)
        with page_shots(qapp, qtbot, rt, tmp_path, arun, HERE, "FM_SCREENSHOT_THEME") as shots:
            shots.open("/plugins/file_manager/", size=(1400, 1750))
            js, count, text = shots.js, shots.count, shots.text

            qtbot.waitUntil(lambda: count("#pane-left tbody tr") == 5)
            js("fileManager.state.panes[1].go('Notes') || 1")
            qtbot.waitUntil(lambda: count("#pane-right tbody tr") == 3)
            # Open the archive, select two rows, search, and plan a sync of Notes.
            js("[...document.querySelectorAll('#pane-left .name-button')]"
               ".find(b => b.textContent === 'site-backup.zip').click() || 1")
            qtbot.waitUntil(lambda: not js("document.getElementById('archive-panel').hidden"))
            js("[...document.querySelectorAll('#pane-left tbody tr')].slice(2, 4)"
               ".forEach(r => r.click()) || 1")
            shots.set_value("search-content", "TODO")
            shots.click("search-start")
            qtbot.waitUntil(lambda: "match" in text("search-status"))
            qtbot.waitUntil(lambda: "ann" in text("sync-user"))
            js("fileManager.state.active = 1")
            shots.set_value("sync-cloud", "Notes")
            shots.click("sync-plan")
            qtbot.waitUntil(lambda: count("#sync-rows tr") == 2, timeout=20_000)
            js("fileManager.state.active = 0")
            shots.save("file-manager", settle=400)
