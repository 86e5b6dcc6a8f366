"""The native dock when a run cannot run its tests: a file that does not import.

The row of the plugin and of the file are marked as errors, the message line says what
happened and the details pane shows the collection error (with its traceback when the
runner recorded one), instead of nothing at all.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from plexichat_desktop.core.settings import Settings
from plexichat_desktop.gui.app import DesktopShell
from plexichat_desktop.gui.dashboard.panel import TestDashboard
from plexichat_desktop.gui.dashboard.tree_model import KEY_ROLE
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from tests.conftest import FIXTURES


@pytest.fixture
def shell(qapp: Any, home: Any, arun: Any, tmp_path: Path, opened_urls: list[str]
          ) -> Any:
    root = tmp_path / "plugins"
    shutil.copytree(FIXTURES / "suites" / "broken", root / "broken",
                    ignore=shutil.ignore_patterns("__pycache__"))
    settings = Settings()
    settings.server.port = 0
    runtime = Runtime(home, settings, RuntimeOptions(
        bundled=False, include_installed=False, extra_plugin_dirs=[root]))
    arun(runtime.start())
    made = DesktopShell(qapp, runtime, home, asyncio.Event(), "not needed by these tests")
    made.show()
    yield made
    arun(made.shutdown())
    arun(runtime.stop())


def column_text(panel: TestDashboard, key: str, column: int = 1) -> str:
    node = panel.model.find("broken_suite") if key == "broken_suite" else next(
        f for f in panel.model.find("broken_suite").children if f.key == key)
    return str(panel.model.data(panel.model.index_for(node, column),
                                Qt.ItemDataRole.DisplayRole))


def test_a_collection_error_marks_the_rows_and_fills_the_details(
        shell: Any, qtbot: Any, arun: Any) -> None:
    panel: TestDashboard = shell.window.dashboard
    qtbot.waitUntil(panel._loaded.is_set, timeout=10_000)
    assert panel.select("broken_suite")
    panel.actions_by_name["Run plugin"].trigger()
    qtbot.waitUntil(lambda: "broken_suite" in panel.run_errors, timeout=60_000)

    run, _collect = panel.run_errors["broken_suite"]
    assert run["status"] == "error" and "test_syntax_error.py" in run["error"]
    assert "ended with an error" in panel.message.text()
    assert "test_syntax_error.py" in panel.message.text()
    plugin = panel.model.find("broken_suite")
    assert plugin is not None
    assert panel.model._worst(plugin) == "error"
    assert column_text(panel, "broken_suite").startswith("error: could not run")
    # The file that does not import has a row of its own, marked as the error.
    errors = panel.model.errors("broken_suite")
    bad_file = next(key for key in errors if key.endswith("test_syntax_error.py"))
    assert column_text(panel, bad_file).startswith("error")

    # The plugin row's details: the error itself, not an empty Failure pane.
    failure = panel.details.texts["Failure"]
    qtbot.waitUntil(lambda: "test_syntax_error.py" in failure.toPlainText(), timeout=10_000)
    assert "ended with an error" in panel.details.heading.text()
    assert panel.details.text_tabs.currentIndex() == 0

    # The file row: its collection error, with pytest's traceback when there is one.
    assert panel.select("broken_suite")
    index = next(panel.proxy.index(r, 0, panel.tree.currentIndex())
                 for r in range(panel.proxy.rowCount(panel.tree.currentIndex()))
                 if panel.proxy.index(r, 0, panel.tree.currentIndex()).data(KEY_ROLE)
                 == bad_file)
    panel.tree.setCurrentIndex(index)
    qtbot.waitUntil(lambda: panel.details.heading.text().startswith(bad_file),
                    timeout=10_000)
    assert "ended with an error" in panel.details.heading.text()
    assert "test_syntax_error.py" in failure.toPlainText()
    if _collect:  # the runner recorded the file's result: pytest's own report of it
        assert "SyntaxError" in failure.toPlainText()

    # Still marked after a reload from the store (as after a restart).
    arun(panel.reload())
    assert panel.model._worst(panel.model.find("broken_suite")) == "error"


def test_a_burst_of_plugin_changes_is_one_reload_and_one_after_it(
        shell: Any, qtbot: Any, arun: Any) -> None:
    """Every plugin state change started its own reload, side by side with the others: a
    start with 15 plugins ran 15 (~0.2 s of the window's thread while pages loaded)."""
    panel: TestDashboard = shell.window.dashboard
    qtbot.waitUntil(panel._loaded.is_set, timeout=10_000)
    qtbot.waitUntil(lambda: panel._reloading is None or panel._reloading.done(),
                    timeout=10_000)
    original = panel.reload
    started: list[int] = []
    gate = asyncio.Event()

    async def counted() -> None:
        started.append(1)
        if len(started) == 2:
            await gate.wait()  # held, to ask for more while it runs
        await original()

    panel.reload = counted  # type: ignore[method-assign]
    for _ in range(15):
        shell.bridge.pluginStateChanged.emit("broken_suite", "running", "")
    qtbot.waitUntil(lambda: panel._reloading is not None and panel._reloading.done(),
                    timeout=10_000)
    assert started == [1]  # asked before it began: all shown by the one
    # Asked while one runs: one more after it, which sees the change.
    panel._loaded.clear()
    panel.request_reload()
    qtbot.waitUntil(lambda: len(started) == 2, timeout=10_000)
    panel.request_reload()
    panel.request_reload()
    gate.set()
    qtbot.waitUntil(lambda: panel._reloading.done(), timeout=10_000)
    assert len(started) == 3 and panel._loaded.is_set()
    assert panel.model.find("broken_suite") is not None


def test_a_reload_does_not_wait_for_a_first_collection(
        shell: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: the reload went on into the first collection of never-collected plugins (a
    pytest session each, after the panel was shown): every reload asked meanwhile waited
    behind it, and the tree stayed stale."""
    panel: TestDashboard = shell.window.dashboard
    qtbot.waitUntil(panel._loaded.is_set, timeout=10_000)
    qtbot.waitUntil(lambda: not panel._collecting and panel._reloading.done(), timeout=60_000)
    gate = asyncio.Event()
    asked: list[str] = []
    original = panel.manager.discover

    async def held(plugin_id: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(plugin_id)
        await gate.wait()
        return await original(plugin_id, *args, **kwargs)

    monkeypatch.setattr(panel.manager, "discover", held)
    monkeypatch.setattr(panel.store, "collected", lambda: [])  # as if never collected
    panel.request_reload()
    qtbot.waitUntil(lambda: asked == ["broken_suite"], timeout=10_000)
    panel._loaded.clear()
    panel.request_reload()  # while the collection is held
    qtbot.waitUntil(lambda: panel._reloading.done() and panel._loaded.is_set(),
                    timeout=10_000)
    assert asked == ["broken_suite"]  # one collection at a time per plugin
    gate.set()
    qtbot.waitUntil(lambda: not panel._collecting, timeout=60_000)


def test_a_message_line_does_not_push_the_tree_out_of_the_dock(
        shell: Any, qtbot: Any) -> None:
    """Audit: once the message line showed, the panel took its preferred height (592 px,
    866 px after a resize) in a 358 px dock: the selected test and its failure text were
    below the dock's bottom, behind a second scroll bar."""
    from PySide6.QtWidgets import QScrollArea

    panel: TestDashboard = shell.window.dashboard
    qtbot.waitUntil(panel._loaded.is_set, timeout=10_000)
    shell.window.resize(1280, 820)
    scroll = panel.findChild(QScrollArea, "dashboardScroll")

    def fits() -> bool:
        allowed = max(scroll.viewport().height(), panel.content.minimumSizeHint().height())
        return panel.content.height() <= allowed

    panel.say("Queued 1 run of Broken Suite (#1). " * 6)  # wraps at any width
    for size in ((1280, 820), (1920, 1080), (800, 600)):
        shell.window.resize(*size)
        qtbot.waitUntil(fits, timeout=5_000)
    assert panel.message.isVisible()
    # Made smaller, the window leaves the page at least half (the dock kept its 374 px
    # over a 179 px page at 800x600).
    shell.window.resize(1280, 1000)
    shell.window.resizeDocks([shell.window.tests_dock], [480], Qt.Orientation.Vertical)
    shell.window.resize(800, 600)
    qtbot.waitUntil(lambda: shell.window.tests_dock.height() <= 300, timeout=5_000)
    # A dock the user made taller stays so while the window only gets wider (review).
    shell.window.resizeDocks([shell.window.tests_dock], [400], Qt.Orientation.Vertical)
    qtbot.waitUntil(lambda: shell.window.tests_dock.height() > 350, timeout=5_000)
    shell.window.resize(1000, 600)
    qtbot.wait(200)
    assert shell.window.tests_dock.height() > 350


def test_a_double_click_runs_a_test_but_only_opens_a_plugin_row(
        shell: Any, qtbot: Any, arun: Any) -> None:
    """Audit: double-clicking a plugin (or file) row ran its whole suite; in other test
    runners it only opens or closes the row."""
    panel: TestDashboard = shell.window.dashboard
    qtbot.waitUntil(panel._loaded.is_set, timeout=10_000)
    assert panel.select("broken_suite")
    plugin_row = panel.tree.currentIndex()
    runs_before = len(arun(asyncio.to_thread(panel.store.list_runs, "broken_suite", 50)))
    panel.tree.doubleClicked.emit(plugin_row)
    qtbot.wait(300)
    assert not panel.manager.queued() and not panel.manager.running()
    assert len(arun(asyncio.to_thread(panel.store.list_runs, "broken_suite", 50))) == \
        runs_before


def test_a_module_that_skips_itself_is_no_collection_error(qapp: Any) -> None:
    """A module-level skip arrives as a result for its file, as a collection error does:
    the tree marked the file and the plugin red with "Skipped: ..." until the next
    reload, while the run ended passed."""
    from plexichat_desktop.gui.dashboard.tree_model import TestTreeModel

    model = TestTreeModel()
    model.reset([("p", "P")], [], {})
    model.test_finished("p", "tests/test_gpu.py", "skipped", 0.0, "needs a GPU")
    assert model.errors("p") == {}
    assert model.find("p").error == ""
    model.test_finished("p", "tests/test_broken.py", "error", 0.0, "SyntaxError")
    assert model.errors("p") == {"p": "SyntaxError", "tests/test_broken.py": "SyntaxError"}
