"""A plugin's schedules in its Details… dialog: name, expression, next run and last
result, as the plugin's ``_host/schedules`` gives them. The fixture plugin ``desktop_kit``
has one schedule every 2 seconds that fails and one daily that has not run yet."""

from __future__ import annotations

from typing import Any

import httpx
from PySide6.QtGui import QTextDocumentFragment

from plexichat_desktop.gui.main_window import MainWindow, when


def schedules(runtime: Any, arun: Any) -> dict[str, dict[str, Any]]:
    async def get() -> dict[str, dict[str, Any]]:
        async with httpx.AsyncClient(base_url=runtime.url, timeout=10, headers={
                "Authorization": f"Bearer {runtime.token}"}) as client:
            answer = await client.get("/plugins/desktop_kit/api/_host/schedules")
            answer.raise_for_status()
            return {s["name"]: s for s in answer.json()["schedules"]}

    result: dict[str, dict[str, Any]] = arun(get())
    return result


def test_details_lists_the_plugins_schedules(kit_shell: Any, qtbot: Any, arun: Any) -> None:
    window: MainWindow = kit_shell.window
    runtime = kit_shell.runtime
    qtbot.waitUntil(lambda: schedules(runtime, arun)["probe upstream"]["last_status"]
                    == "failed", timeout=20_000)
    daily = schedules(runtime, arun)["daily digest"]

    box = window.show_details(runtime.plugins.by_id["desktop_kit"])
    assert box.isVisible()
    qtbot.waitUntil(lambda: "Schedules" in box.text(), timeout=15_000)
    text = QTextDocumentFragment.fromHtml(box.text()).toPlainText()
    assert "Name\nWhen\nNext run\nLast result" in text
    lines = text.splitlines()
    probe = lines[lines.index("probe upstream"):][:4]
    assert probe[1] == "* * * * * */2"
    assert probe[3].startswith("failed ") and probe[3].endswith(": upstream unreachable")
    digest = lines[lines.index("daily digest"):][:4]
    assert digest == ["daily digest", "daily", when(daily["next_fire_at"]), "not run yet"]
    box.close()


def test_details_of_a_stopped_plugin_lists_no_schedules(kit_shell: Any, qtbot: Any,
                                                        arun: Any) -> None:
    window: MainWindow = kit_shell.window
    arun(kit_shell.runtime.plugins.disable("desktop_kit"))
    box = window.show_details(kit_shell.runtime.plugins.by_id["desktop_kit"])
    text = QTextDocumentFragment.fromHtml(box.text()).toPlainText()
    assert text.startswith("Desktop Kit — disabled")
    assert "Schedules" not in text and "Reading" not in text
    box.close()
