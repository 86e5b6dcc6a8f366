"""The native test dashboard for real: offscreen Qt widgets, real pytest children, real store.

The shell is built without QtWebEngine here (the fallback panes): the dock is Qt widgets
only, and leaving Chromium out keeps these tests fast.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from plexichat_desktop.core.settings import Settings
from plexichat_desktop.gui.app import DesktopShell
from plexichat_desktop.gui.dashboard.panel import TestDashboard
from plexichat_desktop.gui.dashboard.tree_model import KEY_ROLE
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from plexichat_desktop.testing.summary import summary_cards
from tests.conftest import FIXTURES

SCREENSHOTS = os.environ.get("PLEXICHAT_SCREENSHOT_DIR")
SLOW_TESTS = '''
import time

def test_quick():
    assert True

def test_sleeps():
    time.sleep(60)
'''


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    root = tmp_path / "plugins"
    shutil.copytree(FIXTURES / "suites" / "mixed", root / "mixed",
                    ignore=shutil.ignore_patterns("__pycache__"))
    slow = root / "slow"
    (slow / "tests").mkdir(parents=True)
    (slow / "plugin.toml").write_text(
        'id = "slow_suite"\nname = "Slow suite"\nversion = "1.0.0"\nentry = "slow_pkg:P"\n')
    (slow / "tests" / "test_slow.py").write_text(SLOW_TESTS)
    return root


@pytest.fixture
def shell(qapp: Any, home: Any, arun: Any, plugin_dir: Path) -> Any:
    settings = Settings()
    settings.server.port = 0
    runtime = Runtime(home, settings, RuntimeOptions(
        bundled=False, include_installed=False, extra_plugin_dirs=[plugin_dir]))
    arun(runtime.start())
    import asyncio

    made = DesktopShell(qapp, runtime, home, asyncio.Event(), "not needed by these tests")
    made.show()
    yield made
    arun(made.shutdown())
    arun(runtime.stop())


def dashboard_of(shell: Any, qtbot: Any) -> TestDashboard:
    panel: TestDashboard = shell.window.dashboard
    qtbot.waitUntil(panel._loaded.is_set, timeout=10_000)
    return panel


def trigger(panel: TestDashboard, name: str) -> None:
    panel.actions_by_name[name].trigger()


def discover(panel: TestDashboard, qtbot: Any) -> None:
    trigger(panel, "Discover")
    qtbot.waitUntil(lambda: panel.message.text().startswith("Found"), timeout=30_000)


def wait_idle(panel: TestDashboard, qtbot: Any, timeout: int = 60_000) -> None:
    qtbot.waitUntil(lambda: not panel.runs and not panel.manager.queued()
                    and not panel.manager.running(), timeout=timeout)


def test_the_panel_shows_a_real_run_as_it_arrives(shell: Any, qtbot: Any, arun: Any) -> None:
    panel = dashboard_of(shell, qtbot)
    assert shell.window.tests_dock.widget() is panel
    discover(panel, qtbot)
    assert len(panel.model.tests("mixed_suite")) == 22
    assert panel.model.find("mixed_suite", "tests/test_mixed.py::test_passes").outcome is None
    # The Tests card counts tests (known before any run), not results.
    assert panel.card_labels["tests"].text() == str(len(panel.model.tests())) != "0"

    seen: list[tuple[bool, str | None, str]] = []

    def record(event: Any) -> None:
        # Connected after the panel: by now the panel has handled this event.
        node = panel.model.find(event.plugin_id, event.nodeid)
        seen.append((event.run_id in panel.progress, node.outcome if node else None,
                     event.outcome))

    shell.bridge.testFinished.connect(record)
    assert panel.select("mixed_suite")
    trigger(panel, "Run plugin")
    qtbot.waitUntil(lambda: bool(panel.progress), timeout=10_000)
    assert panel.progress_box.isVisibleTo(panel)
    wait_idle(panel, qtbot)
    shell.bridge.testFinished.disconnect(record)

    assert len(seen) >= 22
    assert all(outcome == expected for _, outcome, expected in seen)
    assert any(in_progress for in_progress, _, _ in seen), "rows changed while the run went"
    model = panel.model
    assert model.find("mixed_suite", "tests/test_mixed.py::test_passes").outcome == "passed"
    assert model.find("mixed_suite", "tests/test_mixed.py::test_fails").outcome == "failed"
    assert model.find("mixed_suite", "tests/test_mixed.py::test_xfails").outcome == "xfailed"
    assert not panel.progress and not panel.progress_box.isVisibleTo(panel)

    # The cards show what /tests/statistics says, through the same folding as the web cards.
    runtime = shell.runtime
    stats = arun(get_json(runtime, "tests/statistics"))
    cards = summary_cards(stats.get("statistics", stats))
    qtbot.waitUntil(lambda: panel.cards.get("total") == cards["total"], timeout=5_000)
    assert panel.card_labels["failed"].text() == str(cards["failed"])
    assert panel.card_labels["passed"].text() == str(cards["passed"])
    assert cards["failed"] > 0 and cards["passed"] > 0
    # The web dashboard's wording of the rarer outcomes (resources/web/dashboard/cards.js).
    assert panel.cards_note.text().startswith(
        f"Also 1 xfailed, 1 xpassed. {cards['total']} final results of 1 run")

    # Outcome and text filters.
    panel.outcome_buttons["Failed"].setChecked(True)
    shown = visible_tests(panel)
    assert shown and all(model.find("mixed_suite", n).outcome in
                         {"failed", "error", "timed_out", "crashed"} for n in shown)
    panel.outcome_buttons["Failed"].setChecked(False)
    panel.filter_edit.setText("xpass")
    assert sorted(visible_tests(panel)) == ["tests/test_mixed.py::test_xpasses",
                                           "tests/test_mixed.py::test_xpasses_strict"]
    panel.filter_edit.clear()
    if SCREENSHOTS:
        dock = shell.window.tests_dock
        dock.setFloating(True)  # the dock alone, at a size that shows its details pane
        dock.resize(1280, 760)
        panel.tree.expandAll()
        panel.select("mixed_suite", "tests/test_mixed.py::test_fails")
        qtbot.wait(800)
        dock.grab().save(os.path.join(SCREENSHOTS, "native-dashboard.png"))
        dock.setFloating(False)


async def get_json(runtime: Any, path: str) -> Any:
    # Async: the server runs in this very loop, so a blocking request would never be served.
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(runtime.url + path,
                                    headers={"Authorization": f"Bearer {runtime.token}"})
        return response.json()


def visible_tests(panel: TestDashboard) -> list[str]:
    from plexichat_desktop.gui.dashboard.tree_model import KEY_ROLE, KIND_ROLE

    proxy, found = panel.proxy, []

    def walk(parent: Any) -> None:
        for row in range(proxy.rowCount(parent)):
            index = proxy.index(row, 0, parent)
            if index.data(KIND_ROLE) == "test":
                found.append(index.data(KEY_ROLE))
            walk(index)

    from PySide6.QtCore import QModelIndex

    walk(QModelIndex())
    return found


def test_details_pane_shows_a_failures_traceback(shell: Any, qtbot: Any, arun: Any) -> None:
    panel = dashboard_of(shell, qtbot)
    run = arun(shell.runtime.tests.submit("mixed_suite", ["tests/test_mixed.py"]))
    arun(shell.runtime.tests.wait(run.id), timeout=60_000)
    wait_idle(panel, qtbot)
    assert panel.select("mixed_suite", "tests/test_mixed.py::test_fails")
    details = panel.details
    qtbot.waitUntil(lambda: details.table.rowCount() >= 1, timeout=5_000)
    failure = details.texts["Failure"].toPlainText()
    assert "lists differ" in failure and "assert [1, 2] == [1, 3]" in failure
    assert details.table.item(0, 3).text() == "failed"
    assert "test_fails" in details.heading.text()
    assert details.chart.pass_rate.count() == 1 and details.chart.duration.count() == 1

    assert panel.select("mixed_suite")
    qtbot.waitUntil(lambda: "results in" in details.heading.text(), timeout=5_000)
    assert details.table.rowCount() == 0


def test_actions_run_selected_cancel_and_rerun_failed(shell: Any, qtbot: Any,
                                                      arun: Any) -> None:
    panel = dashboard_of(shell, qtbot)
    discover(panel, qtbot)
    manager, store = shell.runtime.tests, shell.runtime.store

    # Cancel a running suite from the panel.
    assert panel.select("slow_suite")
    trigger(panel, "Run plugin")
    qtbot.waitUntil(lambda: (node := panel.model.find(
        "slow_suite", "tests/test_slow.py::test_sleeps")) is not None
        and node.state == "running", timeout=30_000)
    running = next(iter(panel.runs))
    # The progress row names the plugin as the tree does.
    assert panel.progress[running].label.text().startswith("Slow suite · run")
    trigger(panel, "Cancel")
    wait_idle(panel, qtbot)
    assert store.get_run(running).status == "cancelled"
    assert panel.model.find("slow_suite", "tests/test_slow.py::test_sleeps").state is None
    assert shell.window.tests_label.text() == "No tests running"

    # Run two selected tests, then rerun exactly the failed one.
    from PySide6.QtCore import QItemSelectionModel

    assert panel.select("mixed_suite", "tests/test_mixed.py::test_passes")
    other = panel.proxy.mapFromSource(panel.model.index_for(
        panel.model.find("mixed_suite", "tests/test_mixed.py::test_fails")))
    panel.tree.selectionModel().select(other, QItemSelectionModel.SelectionFlag.Select
                                       | QItemSelectionModel.SelectionFlag.Rows)
    trigger(panel, "Run selected")
    # Bounds, not speed claims: a run is queued once its selection is checked against a
    # collection (seconds on a loaded machine; 10 s was seen to be too little).
    qtbot.waitUntil(lambda: bool(store.list_runs("mixed_suite", limit=1)), timeout=30_000)
    wait_idle(panel, qtbot)
    last = store.list_runs("mixed_suite", limit=1)[0]
    assert sorted(last.selection or []) == ["tests/test_mixed.py::test_fails",
                                            "tests/test_mixed.py::test_passes"]
    assert panel.select("mixed_suite")
    # As a person would: the failure is shown before Rerun failed is clicked (the tree
    # learns of it from the run's events, which may still be on their way).
    qtbot.waitUntil(lambda: [n.key for n in panel.model.failed("mixed_suite")] == [
        "tests/test_mixed.py::test_fails"], timeout=30_000)
    trigger(panel, "Rerun failed")
    qtbot.waitUntil(lambda: store.list_runs("mixed_suite", limit=1)[0].id != last.id,
                    timeout=30_000)
    rerun = store.list_runs("mixed_suite", limit=1)[0]
    assert rerun.selection == ["tests/test_mixed.py::test_fails"]
    wait_idle(panel, qtbot)
    del manager


def test_ctrl_enter_in_the_tree_runs_the_selection_and_the_line_says_how_it_ended(
        shell: Any, qtbot: Any) -> None:
    from PySide6.QtCore import Qt

    panel = dashboard_of(shell, qtbot)
    discover(panel, qtbot)
    store = shell.runtime.store
    assert panel.select("mixed_suite", "tests/test_mixed.py::test_passes")
    panel.tree.setFocus()
    qtbot.waitUntil(panel.tree.hasFocus, timeout=2_000)
    qtbot.keyClick(panel.tree, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: bool(store.list_runs("mixed_suite", limit=1)), timeout=10_000)
    assert store.list_runs("mixed_suite", limit=1)[0].selection == [
        "tests/test_mixed.py::test_passes"]
    # "Queued 1 run ..." does not stay once the run is over.
    qtbot.waitUntil(lambda: panel.message.text() == "1 run ended: 1 passed.", timeout=60_000)


def test_schedule_dialog_validates_and_creates(shell: Any, qtbot: Any) -> None:
    panel = dashboard_of(shell, qtbot)
    discover(panel, qtbot)
    assert panel.select("mixed_suite", "tests/test_mixed.py::test_passes")
    dialog = panel.open_schedule_dialog()
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert dialog.values()["plugin_id"] == "mixed_suite"
    assert dialog.values()["test_id"] == "tests/test_mixed.py::test_passes"

    dialog.expression.setCurrentText("every_90_fortnights")
    qtbot.waitUntil(lambda: not ok.isEnabled(), timeout=3_000)
    assert "every_N_minutes" in dialog.problem.text()  # the accepted forms are listed
    assert dialog.problem.isVisibleTo(dialog) and dialog.problem.wordWrap()
    # A cron that does not parse: said in plain words, not by the library's name.
    dialog.expression.setCurrentText("61 * * * *")
    qtbot.waitUntil(lambda: "cron" in dialog.problem.text(), timeout=3_000)
    assert "croniter" not in dialog.problem.text()
    # A zone that does not exist: only that, not the expression forms.
    dialog.expression.setCurrentText("daily")
    dialog.timezone.setCurrentText("Mars/Olympus_Mons")
    qtbot.waitUntil(lambda: "zone" in dialog.problem.text(), timeout=3_000)
    assert "accepted forms" not in dialog.problem.text().lower()
    dialog.timezone.setCurrentIndex(0)

    dialog.expression.setCurrentText("every_30_minutes")
    qtbot.waitUntil(ok.isEnabled, timeout=3_000)
    assert dialog.preview.text().count("<br>") == 4  # five fire times
    dialog.priority.setCurrentText("high")
    ok.click()
    qtbot.waitUntil(lambda: dialog.created is not None, timeout=10_000)
    schedules = shell.runtime.scheduler.list("mixed_suite")
    assert [(s.expression, s.test_id, s.priority.name) for s in schedules] == [
        ("every_30_minutes", "tests/test_mixed.py::test_passes", "HIGH")]
    qtbot.waitUntil(lambda: "created for mixed_suite" in panel.message.text(), timeout=3_000)

    # A selection the scheduler refuses keeps the dialog open with its reason.
    second = panel.open_schedule_dialog()
    second.test.setCurrentText("tests/test_nope.py::test_missing")
    second.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    qtbot.waitUntil(lambda: "test_nope" in second.error.text(), timeout=10_000)
    assert second.isVisible() and second.created is None
    second.reject()

    # The dock lists the schedules, disables and deletes them.
    listing = panel.open_schedules_list()
    assert listing.table.rowCount() == 1
    assert listing.table.item(0, 0).text() == "Mixed suite"
    assert listing.table.item(0, 2).text() == "every_30_minutes"
    from PySide6.QtCore import Qt

    listing.table.item(0, 5).setCheckState(Qt.CheckState.Unchecked)
    qtbot.waitUntil(lambda: not shell.runtime.scheduler.list("mixed_suite")[0].enabled,
                    timeout=5_000)
    qtbot.waitUntil(lambda: listing.table.item(0, 3).text() == "disabled", timeout=5_000)
    listing.table.selectRow(0)
    listing.delete_button.click()
    qtbot.waitUntil(lambda: shell.runtime.scheduler.list() == [], timeout=5_000)
    qtbot.waitUntil(lambda: listing.table.rowCount() == 0, timeout=5_000)
    assert "deleted" in listing.message.text()
    listing.close()


def test_a_failed_scheduled_run_notifies(shell: Any, qtbot: Any, arun: Any) -> None:
    panel = dashboard_of(shell, qtbot)
    run = arun(shell.runtime.tests.submit("mixed_suite", ["tests/test_mixed.py::test_fails"],
                                          trigger="schedule"))
    arun(shell.runtime.tests.wait(run.id), timeout=60_000)
    notifier = shell.window.notifier
    qtbot.waitUntil(lambda: bool(notifier.sent), timeout=5_000)
    title, text = notifier.sent[-1]
    assert title == "Scheduled tests of mixed_suite failed"
    assert text == f"Run #{run.id}: 1 of 1 tests failed"
    assert "Scheduled tests of mixed_suite failed" in shell.window.statusBar().currentMessage()
    del panel


def test_a_hidden_panel_collects_the_never_collected_tests_once_shown(
        shell: Any, qtbot: Any) -> None:
    """The panel lists a plugin's tests without a Discover by collecting the plugins never
    collected, quietly: once the plugins have started and the panel is seen, not while its
    dock is closed (a pytest session per plugin nobody looks at)."""
    window = shell.window
    window.tests_dock.hide()
    panel = dashboard_of(shell, qtbot)
    assert not panel.isVisible()
    qtbot.wait(500)
    assert panel.model.tests() == [] and panel.store.collected() == []
    window.tests_dock.show()
    qtbot.waitUntil(lambda: any(t.plugin_id == "mixed_suite" for t in panel.store.collected()),
                    timeout=60_000)
    qtbot.waitUntil(lambda: len(panel.model.tests()) > 0, timeout=10_000)


def test_an_action_cancelled_before_it_starts_is_closed(shell: Any, qtbot: Any,
                                                        arun: Any) -> None:
    """A timer's refresh spawned just before the panel cancelled its tasks was left
    unstarted: "coroutine 'TestDashboard.refresh_counts' was never awaited" (a warning
    seen in a suite run). Now it is closed."""
    import asyncio
    import contextlib

    panel = dashboard_of(shell, qtbot)

    async def scenario() -> tuple[list[int], object]:
        ran: list[int] = []

        async def action() -> None:
            ran.append(1)

        coro = action()
        task = panel.spawn(coro)
        task.cancel()  # before the loop ever ran it
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return ran, coro.cr_frame

    ran, frame = arun(scenario())
    assert ran == [] and frame is None  # closed, not left pending


def test_a_reload_keeps_the_selection_and_the_details_follow_it(shell: Any, qtbot: Any,
                                                               arun: Any,
                                                               plugin_dir: Path) -> None:
    """Any plugin starting or stopping reloads the tree: the reset dropped the selected
    row while the details still showed it, and "Run plugin" then asked to select one."""
    panel = dashboard_of(shell, qtbot)
    discover(panel, qtbot)
    assert panel.select("slow_suite")
    qtbot.waitUntil(lambda: panel.details.heading.text().startswith("Slow suite"),
                    timeout=10_000)
    arun(panel.reload())
    assert panel.selected_plugin() == "slow_suite"
    nodeid = "tests/test_mixed.py::test_passes"
    assert panel.select("mixed_suite", nodeid)
    qtbot.waitUntil(lambda: nodeid in panel.details.heading.text(), timeout=10_000)
    arun(panel.reload())
    current = panel.proxy.mapToSource(panel.tree.currentIndex())
    assert current.data(KEY_ROLE) == nodeid
    # A row that is gone after the reload (its plugin has no tests folder now) leaves
    # no details behind.
    assert panel.select("slow_suite")
    shutil.rmtree(plugin_dir / "slow" / "tests")
    arun(panel.reload())
    assert panel.selected_plugin() is None
    qtbot.waitUntil(lambda: "Select a test" in panel.details.heading.text(), timeout=10_000)


def test_the_tests_dock_can_be_made_short_in_a_small_window(shell: Any, qtbot: Any) -> None:
    """The panel's minimum (~360 px of cards, toolbar, filters and tree) held the dock
    at that height: at 800x600 the page kept 113 px, at the window's minimum 20 px."""
    window = shell.window
    dashboard_of(shell, qtbot)
    window.resize(800, 600)
    window.first_start_layout()
    qtbot.waitUntil(lambda: window.tests_dock.height() <= 600 // 2 + 10,
                    timeout=5_000)
    window.resizeDocks([window.tests_dock], [80], Qt.Orientation.Vertical)
    qtbot.waitUntil(lambda: window.tests_dock.height() < 150, timeout=5_000)
    assert window.pages.height() > 600 // 2


def test_messages_name_plugins_as_the_tree_does(shell: Any, qtbot: Any) -> None:
    """"Queued 1 run of mixed_suite": the id, where the tree and the details show the
    plugin's name."""
    panel = dashboard_of(shell, qtbot)
    discover(panel, qtbot)
    assert panel.select("mixed_suite")
    name = panel.plugin_name("mixed_suite")
    assert name == "Mixed suite"
    trigger(panel, "Rerun failed")
    assert panel.message.text() == f"No failed tests to rerun in {name}."
    trigger(panel, "Run plugin")
    qtbot.waitUntil(lambda: panel.message.text().startswith(f"Queued 1 run of {name} (#"),
                    timeout=10_000)
    wait_idle(panel, qtbot)
