"""Takes docs/system-manager.png (the Backups tab) and docs/system-manager-retention.png
(a schedule's retention dry run): the page in QtWebEngine offscreen, as the desktop window
shows it, after real backups, drills, an encrypted off-site copy and a health check on
the embedded v1 server.

Run from the repository root (it uses the project's GUI test fixtures; set
SM_SCREENSHOT_THEME=dark for the -dark variants, SM_TABS_DIR=folder to keep a shot of
every other tab for a look):

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -c pyproject.toml -p tests.conftest \\
        -p tests.gui.conftest plugins/system_manager/docs/screenshot.py -q -n 0 -p no:cacheprovider
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from plexichat_desktop.runtime import Runtime
from tests.gui.plugin_screenshots import docs_app, page_shots

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))  # system_manager.models, .service


async def demo(rt: Runtime, usb: Path) -> None:
    """Accounts, messages and a file; schedules, a target, a window; backups with checks."""
    from api_integration_layer.testing import PASSWORD
    from system_manager.models import ScheduleIn, TargetIn, WindowIn
    from system_manager.service import SCHEDULE, WINDOW

    layer = rt.plugins.by_id["api_integration_layer"].instance
    await layer.client.auth.register("ada", "ada@example.org", PASSWORD)
    await layer.client.auth.login("ada", PASSWORD)
    me = (await layer.client.auth.me()).id
    for name in ("bob", "cleo", "dev"):
        await layer.client.auth.register(name, f"{name}@example.org", PASSWORD)
    users = await layer.client.users.list(limit=10)
    for user in users.users:
        if user.id != me:
            await layer.client.messages.send(user.id, f"hello {user.username}")
    note = usb.parent / "minutes.txt"
    note.write_text("Minutes of the meeting\n" * 400)
    await layer.client.files.upload(note, description="minutes")

    m = rt.plugins.by_id["system_manager"].instance.manager
    tid = m.save_target(TargetIn(name="USB stick", path=str(usb), keep=5, encrypt=True,
                                 password="correct horse battery"))
    nightly = ScheduleIn(name="nightly", expression="30 2 * * *", targets=[tid],
                         policy={"last": 7, "daily": 7, "weekly": 4, "monthly": 6})
    sid = m.store.put(SCHEDULE, nightly.model_dump())
    m.store.put(SCHEDULE, ScheduleIn(name="before updates", expression="every_6_hours",
                                     drill=False, policy={"last": 4, "daily": 0, "weekly": 0,
                                                          "monthly": 0}).model_dump())
    m.store.put(WINDOW, WindowIn(name="Sunday night", days=[6], start="01:00",
                                 minutes=180).model_dump())
    await m.rebuild_timer()
    for _ in range(4):
        job = m.start_backup(nightly, sid, "schedule")
        await m.ctx.jobs.wait(job.id)
    manual = ScheduleIn(name="before the upgrade", expression="daily", drill=False)
    await m.ctx.jobs.wait(m.start_backup(manual, None, "manual").id)
    await m.check_health()


def test_screenshot(qapp: Any, qtbot: Any, home: Any, arun: Any, tmp_path: Path) -> None:
    usb = tmp_path / "media" / "BACKUP"
    usb.mkdir(parents=True)
    with docs_app(home, arun, tmp_path,
                  plugin_settings={"system_manager": {"scrypt_log_n": 12}}) as rt:
        arun(demo(rt, usb), timeout=120_000)
        with page_shots(qapp, qtbot, rt, tmp_path, arun, HERE, "SM_SCREENSHOT_THEME") as shots:
            shots.open("/plugins/system_manager/", size=(1400, 1000))
            js, count = shots.js, shots.count

            qtbot.waitUntil(lambda: count("#backups-table tbody tr") == 5, timeout=20_000)
            shots.save("system-manager")

            js("document.querySelector('[data-tab=schedules]').click() || 1")
            js("[...document.querySelectorAll('#schedules-table button')]"
               ".find(b => b.textContent === 'Edit').click() || 1")
            # A stricter policy than the schedule's: the dry run shows what it would delete.
            shots.set_value("sf-last", "2")
            shots.click("sf-preview")
            qtbot.waitUntil(lambda: count("#retention-table tbody tr") == 4, timeout=20_000)
            shots.save("system-manager-retention")
            # The other tabs, for a look (not kept in docs/).
            for tab in ("offsite", "restore", "maintenance", "health", "history"):
                js(f"document.querySelector('[data-tab={tab}]').click() || 1")
                if tab == "restore":
                    js("(document.getElementById('rw-backup').selectedIndex = 2) && 1")
                    js("document.getElementById('rw-backup').dispatchEvent("
                       "new Event('change')) || 1")
                if tab == "maintenance":
                    shots.click("mf-preview")
                shots.save(f"tab-{tab}", settle=500,
                           folder=Path(os.environ.get("SM_TABS_DIR", tmp_path)))
