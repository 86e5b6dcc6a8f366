"""The native test dashboard: counts, actions, a live test tree, run progress and details.

Every action calls the test manager or the scheduler directly (no web page involved);
live state comes from the event bridge's Qt signals and updates the model row by row.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QResizeEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QScrollArea,
    QSplitter,
    QToolBar,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from plexichat_desktop.gui.bridge import EventBridge
from plexichat_desktop.gui.dashboard.analytics_dialog import AnalyticsDialog
from plexichat_desktop.gui.dashboard.details import TestDetails
from plexichat_desktop.gui.dashboard.schedule_dialog import ScheduleDialog
from plexichat_desktop.gui.dashboard.schedules_list import SchedulesDialog
from plexichat_desktop.gui.dashboard.tree_model import (
    BAD,
    KEY_ROLE,
    KIND_ROLE,
    PLUGIN_ROLE,
    Node,
    TestFilterProxy,
    TestTreeModel,
    format_duration,
    is_file_result,
    outcome_filter_groups,
)
from plexichat_desktop.runtime import Runtime
from plexichat_desktop.testing.events import TestFinished
from plexichat_desktop.testing.manager import TestSelectionError
from plexichat_desktop.testing.models import RunnerClosed, TestAttempt
from plexichat_desktop.testing.results import FLAKY_WINDOW
from plexichat_desktop.testing.summary import outcome_word, summary_cards

log = logging.getLogger(__name__)

# "Tests" counts the tests the tree knows (collected or run); the other cards count the
# final results of the runs in the store, as the web dashboard's cards do.
CARDS = (("tests", "Tests"), ("passed", "Passed"), ("failed", "Failed"),
         ("errors", "Errors"), ("skipped", "Skipped"), ("success_rate", "Success rate"),
         ("mean_duration", "Mean duration"))
SCHEDULED_TRIGGERS = {"schedule", "catch_up"}
NO_VALUE = "\u2013"  # an en dash: nothing measured yet


def cards_note(cards: dict[str, Any]) -> str:
    """The line under the cards, worded as on the web dashboard."""
    bits = []
    others = [f"{n} {outcome_word(o)}" for o, n in cards.get("others", {}).items()]
    if others:
        bits.append(f"Also {', '.join(others)}.")
    if cards.get("total"):
        runs, total = cards.get("runs", 0), cards["total"]
        line = (f"{total} final result{'s' if total != 1 else ''} of {runs} "
                f"run{'s' if runs != 1 else ''}")
        if cards.get("p95_duration") is not None:
            line += f"; p95 duration {format_duration(cards['p95_duration'])}"
        if cards.get("flaky_rate"):
            line += f"; flaky {cards['flaky_rate']:.1%}"
        bits.append(line + ".")
    else:
        bits.append("No results yet.")
    return " ".join(bits)


class RunProgress(QWidget):
    """One running or queued suite: label, bar and a cancel button."""

    def __init__(self, run: dict[str, Any], cancel: Callable[[int], None],
                 parent: QWidget | None = None, name: str | None = None):
        super().__init__(parent)
        self.run_id: int = run["id"]
        self.plugin_id: str = run["plugin_id"]
        self.name = name or self.plugin_id  # as the tree calls it
        self.total = 0
        self.completed = 0
        self.bad = 0
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.bar.setMaximumHeight(16)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setAccessibleName(f"Cancel run {self.run_id}")
        self.cancel_button.clicked.connect(lambda: cancel(self.run_id))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 2)
        layout.addWidget(self.bar, 3)
        layout.addWidget(self.cancel_button)
        # QProgressBar.setValue repaints synchronously (~0.35 ms); a frame timer keeps a
        # burst of results from paying that per result.
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(16)
        self._render_timer.timeout.connect(self._render)
        self.set_status(run.get("status", "queued"))

    def set_status(self, status: str) -> None:
        self.status = status
        self._render()

    def set_total(self, total: int) -> None:
        self.total = total
        self._render()

    def finished_one(self, completed: int, total: int, bad: bool) -> None:
        self.completed = completed
        self.total = max(total, self.total, completed)
        self.bad += int(bad)
        if not self._render_timer.isActive():
            self._render_timer.start()

    def _render(self) -> None:
        bad = f" · {self.bad} bad" if self.bad else ""
        self.label.setText(f"{self.name} · run {self.run_id} · {self.status}{bad}")
        if self.status == "queued" or not self.total:
            self.bar.setRange(0, 0 if self.status == "running" else 1)
            self.bar.setFormat("queued" if self.status == "queued" else "collecting…")
        else:
            self.bar.setRange(0, self.total)
            self.bar.setValue(self.completed)
            self.bar.setFormat(f"{self.completed}/{self.total}")


class _MessageLine(QLabel):
    """The panel's wrapped message line, as tall as its text at its width, without being a
    height-for-width item: with one in it, the dock's scroll area sized the whole panel by
    its preferred height (592-866 px in a 358 px dock), and the selected test and its
    failure text were scrolled out of sight."""

    def hasHeightForWidth(self) -> bool:
        return False

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def setText(self, text: str) -> None:
        super().setText(text)
        self._fit()

    def _fit(self) -> None:
        needed = QLabel.heightForWidth(self, max(1, self.width()))
        if needed > 0 and needed != self.minimumHeight():
            self.setMinimumHeight(needed)


class TestDashboard(QWidget):
    """The dock's content. ``message`` shows inline what an action did or why it failed."""

    __test__ = False

    scheduledRunFailed = Signal(dict)   # a run started by a schedule ended failed or error
    countsChanged = Signal(int, int)    # running, queued

    def __init__(self, runtime: Runtime, bridge: EventBridge, parent: QWidget | None = None):
        super().__init__(parent)
        self.runtime = runtime
        self.bridge = bridge
        self.manager = runtime.tests
        self.store = runtime.store
        self.scheduler = runtime.scheduler
        self.model = TestTreeModel(self)
        self.proxy = TestFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.progress: dict[int, RunProgress] = {}
        self.runs: dict[int, dict[str, Any]] = {}
        self.cards: dict[str, Any] = {}
        self._bad_before: set[tuple[int, str]] = set()
        # Results of runs still going, which the store only gets when a run ends: a reload
        # meanwhile replays them over what the store knows.
        self._live: dict[int, dict[str, tuple[str, str, float, str, bool]]] = {}
        # Per plugin: its last run when that ended with an error, and the collection errors
        # (file-level results) it recorded; the tree marks them, the details pane shows them.
        self.run_errors: dict[str, tuple[dict[str, Any], list[TestAttempt]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._details_generation = 0
        # The runs the message line last announced as queued, and how each one ended: when
        # all have ended, the line says so instead of "Queued ..." forever.
        self._announced: dict[int, str | None] = {}
        self._loaded = asyncio.Event()
        self._shown = asyncio.Event()  # set by showEvent
        self._reloading: asyncio.Task[Any] | None = None
        self._reload_again = False
        self._collecting: set[str] = set()  # plugins whose first collection is under way

        self._build_header()
        self._build_toolbar()
        self._build_filters()
        self._build_tree()
        self.details = TestDetails()
        self.details.setObjectName("testDetails")
        self.progress_box = QFrame()
        self.progress_box.setObjectName("runProgress")
        self.progress_layout = QVBoxLayout(self.progress_box)
        self.progress_layout.setContentsMargins(0, 0, 0, 0)
        self.progress_box.hide()
        self.message = _MessageLine()
        self.message.setObjectName("dashboardMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.hide()

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(self.filter_row)
        left_layout.addWidget(self.progress_box)
        left_layout.addWidget(self.tree, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.details)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([700, 460])
        self.content = QWidget()
        layout = QVBoxLayout(self.content)
        layout.setContentsMargins(6, 4, 6, 6)
        layout.addWidget(self.header)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.message)
        layout.addWidget(self.splitter, 1)
        # Scrolled when the dock is made shorter than all of it needs (~360 px): its
        # minimum held the dock at that height, and a 800x600 window left the page 113 px.
        scroll = QScrollArea(self)
        scroll.setObjectName("dashboardScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

        # Statistics come from the store, which a run writes when it ends; recomputing
        # them at most every 300 ms keeps a burst of finishing runs cheap.
        self._stats_timer = QTimer(self)
        self._stats_timer.setSingleShot(True)
        self._stats_timer.setInterval(300)
        self._stats_timer.timeout.connect(lambda: self.spawn(self.refresh_counts()))

        bridge.testStarted.connect(self._test_started)
        bridge.testFinished.connect(self._test_finished)
        bridge.testsCollected.connect(self._tests_collected)
        bridge.runsChanged.connect(self._run_changed)
        bridge.pluginStateChanged.connect(lambda *_: self.request_reload())
        for run in self.manager.queued() + self.manager.running():
            self._run_changed(run.to_dict())
        self.request_reload()

    # -- layout ---------------------------------------------------------------------------
    def _build_header(self) -> None:
        self.header = QFrame()
        self.header.setObjectName("dashboardCards")
        grid = QGridLayout(self.header)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(18)
        self.card_labels: dict[str, QLabel] = {}
        for column, (key, title) in enumerate(CARDS):
            value = QLabel(NO_VALUE)
            value.setObjectName(f"card_{key}")
            font = value.font()
            font.setPointSizeF(font.pointSizeF() * 1.5)
            font.setBold(True)
            value.setFont(font)
            caption = QLabel(title)
            caption.setEnabled(False)  # the palette's secondary text colour
            grid.addWidget(value, 0, column)
            grid.addWidget(caption, 1, column)
            self.card_labels[key] = value
        grid.setColumnStretch(len(CARDS), 1)
        self.cards_note = QLabel()
        self.cards_note.setObjectName("cardsNote")
        self.cards_note.setEnabled(False)
        grid.addWidget(self.cards_note, 2, 0, 1, len(CARDS) + 1)

    def _build_toolbar(self) -> None:
        self.toolbar = QToolBar("Test actions")
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.actions_by_name: dict[str, QAction] = {}
        for name, tip, shortcut, slot in (
            ("Discover", "Collect every plugin's tests again", None, self.discover),
            ("Run all", "Run every plugin's tests", None, self.run_all),
            ("Run plugin", "Run all tests of the selected plugin", None, self.run_plugin),
            ("Run selected", "Run the selected tests and files", "Ctrl+Return",
             self.run_selected),
            ("Rerun failed", "Run the tests whose last result was bad", None,
             self.rerun_failed),
            ("Cancel", "Cancel the selected plugin's runs (all runs when none is selected)",
             None, self.cancel),
            ("Schedule…", "Schedule runs of the selected plugin or test", None,
             self.open_schedule_dialog),
            ("Schedules…", "List, enable, disable and delete the schedules", None,
             self.open_schedules_list),
            ("Analytics…", "Failure patterns, slow tests with suggestions, categories",
             None, self.open_analytics),
        ):
            action = self.toolbar.addAction(name)
            action.setToolTip(tip)
            if shortcut:
                # Ctrl+Enter is Ctrl+Return on the main keys and Ctrl+Enter on the keypad.
                action.setShortcuts([QKeySequence(shortcut), QKeySequence("Ctrl+Enter")])
                action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
                # Added to the panel too: the shortcut then works wherever the focus is in
                # the panel (the tree above all), not only in the toolbar.
                self.addAction(action)
            action.triggered.connect(slot)
            self.actions_by_name[name] = action

    def _build_filters(self) -> None:
        self.filter_edit = QLineEdit()
        self.filter_edit.setObjectName("testFilter")
        self.filter_edit.setPlaceholderText("Filter tests by name or id…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.proxy.set_text)
        self.filter_row = QHBoxLayout()
        self.filter_row.addWidget(self.filter_edit, 1)
        self.outcome_buttons: dict[str, QToolButton] = {}
        for name in outcome_filter_groups():
            button = QToolButton()
            button.setText(name)
            button.setCheckable(True)
            button.toggled.connect(self._outcomes_changed)
            self.filter_row.addWidget(button)
            self.outcome_buttons[name] = button

    def _build_tree(self) -> None:
        self.tree = QTreeView()
        self.tree.setObjectName("testTree")
        self.tree.setModel(self.proxy)
        self.tree.setSortingEnabled(True)
        self.tree.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setUniformRowHeights(True)  # cheap layout while results stream in
        self.tree.setMinimumHeight(80)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        # Narrow enough for the test names to show at 800 px (Outcome took 190 of them).
        for column, width in ((1, 130), (2, 70), (3, 46)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, width)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # both ends of an id
        self.tree.selectionModel().currentChanged.connect(self._current_changed)
        # A test row runs; a plugin or file row only opens or closes, as in other test
        # runners (it ran the whole suite of a plugin).
        self.tree.doubleClicked.connect(
            lambda index: self.run_selected() if index.data(KIND_ROLE) == "test" else None)

    def _outcomes_changed(self) -> None:
        groups = outcome_filter_groups()
        chosen: set[str] = set()
        for name, button in self.outcome_buttons.items():
            if button.isChecked():
                chosen |= groups[name]
        self.proxy.set_outcomes(chosen)
        if chosen or self.proxy.text:
            self.tree.expandAll()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._shown.set()

    # -- async helpers ----------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run an action, once the runtime's test side has started (the panel can be
        built before, in a slow start); its failure is shown in the panel, never lost."""
        task = asyncio.get_running_loop().create_task(self._when_started(coro))
        self._tasks.add(task)
        task.add_done_callback(self._done)
        # Cancelled before its first step (the panel closing right after a timer fired),
        # _when_started never ran to close ``coro``: "never awaited" otherwise. Closing a
        # coroutine that ran or finished does nothing.
        task.add_done_callback(lambda t: coro.close() if t.cancelled() else None)
        return task

    async def _when_started(self, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            await self.runtime.tests_ready()
        except BaseException:
            coro.close()  # cancelled before it ran: no "never awaited" warning
            raise
        return await coro

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, RunnerClosed):
            return  # the app is stopping: a collection it cut short is nothing to report
        if isinstance(exc, TestSelectionError | ValueError):
            self.say(str(exc), error=True)
        elif exc is not None:
            log.error("dashboard action failed", exc_info=exc)
            self.say(f"Something went wrong: {exc}", error=True)

    def say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #d64545" if error else "")
        self.message.setText(text)
        self.message.setVisible(bool(text))

    async def shutdown(self) -> None:
        """Cancel the panel's tasks and wait for them (not QWidget.close: it stays shown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- loading ------------------------------------------------------------------------------
    def _plugins(self) -> list[tuple[str, str]]:
        return [(rec.id, rec.name) for rec in self.manager.testable()
                if self.manager.tests_dir(rec).is_dir()]

    def request_reload(self) -> None:
        """Reload the tree soon: one reload at a time, and what asks during one gets one
        more after it. (Every plugin starting asked for its own: a start with 15 plugins
        ran 15 reloads side by side, ~0.2 s of the window's thread while pages loaded.)"""
        if self._reloading is not None and not self._reloading.done():
            self._reload_again = True
            return
        self._reloading = self.spawn(self._reload_until_current())

    async def _reload_until_current(self) -> None:
        while True:
            self._reload_again = False  # what asked before this point, this reload shows
            try:
                await self.reload()
            except Exception:
                if not self._reload_again:
                    raise
                log.warning("reloading the tests panel failed; once more for what "
                            "changed meanwhile", exc_info=True)
                continue
            if not self._reload_again:
                return

    async def reload(self) -> None:
        """Rebuild the tree from the store (collected tests and last results)."""
        plugins = self._plugins()
        known = {pid for pid, _ in plugins}

        def read() -> tuple[list[Any], dict[str, Any]]:
            return self.store.collected(), {pid: self.store.test_summaries(pid, FLAKY_WINDOW)
                                            for pid in known}

        collected, summaries = await asyncio.to_thread(read)
        collected = [c for c in collected if c.plugin_id in known]
        current = self.proxy.mapToSource(self.tree.currentIndex())
        kept = (current.data(KIND_ROLE), current.data(PLUGIN_ROLE), current.data(KEY_ROLE)) \
            if current.isValid() else None
        self.model.reset(plugins, collected, summaries)
        self.run_errors.clear()
        def latest_runs() -> list[Any]:
            return [run for pid in known for run in self.store.list_runs(pid, 1)]

        for run in await asyncio.to_thread(latest_runs):
            if str(run.status) == "error":
                await self._run_outcome(run.to_dict(), announce=False)
        for run in self.runs.values():
            if run.get("status") == "running":
                self.model.ensure_plugin(run["plugin_id"])
        for results in self._live.values():
            for nodeid, (plugin_id, outcome, duration, message, flaky) in results.items():
                self.model.test_finished(plugin_id, nodeid, outcome, duration, message, flaky)
        self.tree.expandToDepth(0)
        # The reset dropped the current row (any plugin starting or stopping reloads):
        # the same row again, or, when it is gone, no details of it either.
        if kept is None or not self._reselect(*kept):
            self._current_changed(self.tree.currentIndex(), QModelIndex())
        await self.refresh_counts()
        self._loaded.set()
        never = [pid for pid in known if pid not in self._collecting
                 and not any(c.plugin_id == pid for c in collected)]
        if never:
            # Its own task: the next reload must not wait for these sessions (nor for the
            # panel to be shown).
            self._collecting.update(never)
            self.spawn(self._collect_once(never))

    async def _collect_once(self, never: list[str]) -> None:
        """A plugin never collected would show an empty row: collect it once, quietly, so
        the tree lists its tests the first time the panel is seen. Not before the panel
        shows, nor before the plugins have started: a pytest session per plugin (and a
        fork server with the app's imports, ~1 s of CPU) would share the first seconds
        with their start and with the pages being opened."""
        try:
            await self.runtime.plugins.started.wait()
            if not self.isVisible():
                self._shown.clear()
                await self._shown.wait()
            for pid in never:
                try:
                    discovery = await self.manager.discover(pid)
                except TestSelectionError as exc:
                    log.info("could not collect the tests of %s: %s", pid, exc)
                    continue
                self.model.merge_collected(pid, discovery.items)
                self.show_test_count()
        finally:
            self._collecting.difference_update(never)

    def show_test_count(self) -> None:
        self.cards["tests"] = len(self.model.tests())
        self.card_labels["tests"].setText(str(self.cards["tests"]))

    async def refresh_counts(self) -> None:
        stats = await asyncio.to_thread(self.store.statistics)
        self.cards = summary_cards(stats)
        self.cards["tests"] = len(self.model.tests())
        for key, label in self.card_labels.items():
            value = self.cards.get(key)
            if key == "success_rate":
                label.setText(NO_VALUE if value is None else f"{value:.1%}")
            elif key == "mean_duration":
                label.setText(NO_VALUE if value is None else format_duration(value))
            else:
                label.setText(str(value))
        self.cards_note.setText(cards_note(self.cards))

    # -- actions --------------------------------------------------------------------------------
    def discover(self) -> None:
        self.spawn(self._discover())

    async def _discover(self) -> None:
        self.say("Discovering tests…")
        found = await self.manager.discover_all(refresh=True)
        for pid, discovery in found.items():
            self.model.ensure_plugin(pid, self.manager.plugins.by_id[pid].name)
            self.model.merge_collected(pid, discovery.items)
        self.show_test_count()
        errors = sum(len(d.errors) for d in found.values())
        tests = sum(len(d.items) for d in found.values())
        self.say(f"Found {tests} tests in {len(found)} plugins"
                 + (f"; {errors} collection errors" if errors else "") + ".", error=bool(errors))
        self.tree.expandToDepth(0)

    def run_all(self) -> None:
        self.spawn(self._submit_many([(pid, None) for pid, _ in self._plugins()], "all"))

    def run_plugin(self) -> None:
        plugin = self.selected_plugin()
        if plugin is None:
            self.say("Select a plugin (or one of its tests) first.", error=True)
            return
        self.spawn(self._submit_many([(plugin, None)], self.plugin_name(plugin)))

    def run_selected(self) -> None:
        chosen: dict[str, list[str]] = {}
        whole: list[str] = []
        for index in self._selected_source():
            kind, key, plugin = (index.data(KIND_ROLE), index.data(KEY_ROLE),
                                 index.data(PLUGIN_ROLE))
            if kind == "plugin":
                whole.append(plugin)
            else:
                chosen.setdefault(plugin, []).append(key)
        jobs: list[tuple[str, list[str] | None]] = [(pid, None) for pid in whole]
        jobs += [(pid, ids) for pid, ids in chosen.items() if pid not in whole]
        if not jobs:
            self.say("Select tests, files or plugins to run.", error=True)
            return
        self.spawn(self._submit_many(jobs, "the selection"))

    def rerun_failed(self) -> None:
        plugin = self.selected_plugin()
        by_plugin: dict[str, list[str]] = {}
        for node in self.model.failed(plugin):
            by_plugin.setdefault(node.plugin_id, []).append(node.key)
        if not by_plugin:
            self.say("No failed tests to rerun"
                     + (f" in {self.plugin_name(plugin)}." if plugin else "."))
            return
        self.spawn(self._submit_many(list(by_plugin.items()), "failed tests"))

    async def _submit_many(self, jobs: list[tuple[str, list[str] | None]], what: str) -> None:
        ids, problems = [], []
        for plugin_id, tests in jobs:
            try:
                run = await self.manager.submit(plugin_id, tests, trigger="manual")
            except TestSelectionError as exc:
                problems.append(str(exc))
                continue
            ids.append(str(run.id))
        self._announced = {int(i): None for i in ids}
        text = f"Queued {len(ids)} run{'s' if len(ids) != 1 else ''} of {what}" + (
            f" (#{', #'.join(ids)})." if ids else ".")
        self.say(text + (" " + "; ".join(problems) if problems else ""), error=bool(problems))

    def cancel(self) -> None:
        plugin = self.selected_plugin()
        targets = [rid for rid, run in self.runs.items()
                   if plugin is None or run["plugin_id"] == plugin]
        if not targets:
            self.say("Nothing is running" + (f" for {plugin}." if plugin else "."))
            return
        for rid in targets:
            self.cancel_run(rid)

    def cancel_run(self, run_id: int) -> None:
        async def go() -> None:
            if await self.manager.cancel(run_id):
                self.say(f"Cancelled run #{run_id}.")
        self.spawn(go())

    def open_schedule_dialog(self) -> ScheduleDialog:
        """Open the (non-modal) dialog; returns it so callers and tests can drive it."""
        tests: dict[str, list[str]] = {node.plugin_id: [] for node in self.model.root.children}
        for node in self.model.tests():
            tests[node.plugin_id].append(node.key)
        current = self.model.node(self.proxy.mapToSource(self.tree.currentIndex()))
        dialog = ScheduleDialog(self.scheduler, self._plugins(), tests,
                                plugin_id=current.plugin_id if current else None,
                                test_id=current.key if current and current.kind != "plugin"
                                else None, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def created(result: int) -> None:
            if result == QDialog.DialogCode.Accepted and dialog.created is not None:
                record = dialog.created
                self.say(f"Schedule {record.id} created for {record.plugin_id} "
                         f"({record.expression}).")

        dialog.finished.connect(created)
        dialog.open()
        return dialog

    def open_schedules_list(self) -> SchedulesDialog:
        """The schedules, wherever they were made; returns the (non-modal) dialog."""
        dialog = SchedulesDialog(self.scheduler, self.bridge, self.plugin_name,
                                 self.open_schedule_dialog, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def open_analytics(self) -> AnalyticsDialog:
        """Failure patterns, durations and categories (of the selected plugin, if any);
        returns the (non-modal) dialog."""
        dialog = AnalyticsDialog(self.store, self.bridge, self._plugins(), self.plugin_name,
                                 parent=self, plugin_id=self.selected_plugin())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    # -- selection ------------------------------------------------------------------------------
    def _selected_source(self) -> list[QModelIndex]:
        rows = self.tree.selectionModel().selectedRows(0)
        return [self.proxy.mapToSource(index) for index in rows]

    def selected_plugin(self) -> str | None:
        index = self.proxy.mapToSource(self.tree.currentIndex())
        return index.data(PLUGIN_ROLE) if index.isValid() else None

    def select(self, plugin_id: str, nodeid: str | None = None) -> bool:
        """Make a row current (for keyboard users' scripts and tests)."""
        node = self.model.find(plugin_id, nodeid)
        return node is not None and self._make_current(node)

    def _make_current(self, node: Node) -> bool:
        index = self.proxy.mapFromSource(self.model.index_for(node))
        if not index.isValid():
            return False
        self.tree.scrollTo(index)
        self.tree.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows)
        return True

    def _reselect(self, kind: str, plugin_id: str, key: str) -> bool:
        """Make the row of this kind, plugin and key current again, if it still is there."""
        if kind == "file":
            plugin = self.model.find(plugin_id)
            node = plugin.by_key.get(key) if plugin is not None else None
            return node is not None and self._make_current(node)
        return self.select(plugin_id, key if kind == "test" else None)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._details_generation += 1
        source = self.proxy.mapToSource(current)
        if not source.isValid():
            self.details.clear()
            return
        self.spawn(self._load_details(self._details_generation, source.data(KIND_ROLE),
                                      source.data(PLUGIN_ROLE), source.data(KEY_ROLE)))

    async def _load_details(self, generation: int, kind: str, plugin_id: str, key: str) -> None:
        store = self.store
        if kind == "test":
            history = await asyncio.to_thread(store.test_history, plugin_id, key, 30)
            trend = await asyncio.to_thread(store.daily_trend, plugin_id, key, 14)
            flips = await asyncio.to_thread(store.flip_rate, plugin_id, key)
            if generation == self._details_generation:
                self.details.show_test(plugin_id, key, history, trend, flips)
            return
        # A file has no statistics of its own in the store; show its plugin's.
        stats = await asyncio.to_thread(store.statistics, plugin_id)
        trend = await asyncio.to_thread(store.daily_trend, plugin_id, None, 14)
        if generation == self._details_generation:
            name = self.plugin_name(plugin_id)
            title = name if kind == "plugin" else f"{key} (statistics of {name})"
            self.details.show_scope(title, stats, trend)
            failed = self.run_errors.get(plugin_id)
            if failed is not None and (kind == "plugin" or key in self.model.errors(plugin_id)):
                run, collect = failed
                self.details.show_error(run, [a for a in collect
                                              if kind == "plugin" or a.nodeid == key])

    def refresh_details(self) -> None:
        self._current_changed(self.tree.currentIndex(), QModelIndex())

    def plugin_name(self, plugin_id: str) -> str:
        rec = self.manager.plugins.by_id.get(plugin_id)
        return rec.name if rec is not None else plugin_id

    async def _run_outcome(self, run: dict[str, Any], announce: bool = True) -> None:
        """A run ended: an error (collection error, timeout, crash of pytest itself) marks
        the plugin's row and the files it names; any other end clears the marks."""
        plugin_id = run["plugin_id"]
        if str(run.get("status")) == "error":
            attempts = await asyncio.to_thread(self.store.attempts_for_run, run["id"])
            collect = [a for a in attempts
                       if is_file_result(a.nodeid) and str(a.outcome) == "error"]
            self.run_errors[plugin_id] = (run, collect)
            self.model.set_errors(plugin_id, run.get("error") or "the run ended with an error",
                                  {a.nodeid: a.message for a in collect})
            if announce:
                first = (run.get("error") or "no reason recorded").splitlines()[0]
                self.say(f"Run #{run['id']} of {self.plugin_name(plugin_id)} ended with an "
                         f"error: {first}", error=True)
        elif self.run_errors.pop(plugin_id, None) is not None:
            self.model.clear_errors(plugin_id)
        current = self.proxy.mapToSource(self.tree.currentIndex())
        if current.isValid() and current.data(PLUGIN_ROLE) == plugin_id:
            self.refresh_details()

    async def _refresh_plugin(self, plugin_id: str) -> None:
        """After a run: the plugin's rows as the store (and so the web dashboard) has them,
        flaky marks included."""
        summaries = await asyncio.to_thread(self.store.test_summaries, plugin_id,
                                            FLAKY_WINDOW)
        if any(r["plugin_id"] == plugin_id for r in self.runs.values()):
            return  # another run of it is going: its own end refreshes the rows
        self.model.apply_summaries(plugin_id, summaries)

    # -- live -------------------------------------------------------------------------------------
    def _test_started(self, run_id: int, plugin_id: str, nodeid: str) -> None:
        self.model.test_started(plugin_id, nodeid)

    def _test_finished(self, event: TestFinished) -> None:
        key = (event.run_id, event.nodeid)
        bad = event.outcome in BAD
        flaky = not bad and key in self._bad_before and event.outcome == "passed"
        if bad:
            self._bad_before.add(key)
        self.model.test_finished(event.plugin_id, event.nodeid, event.outcome,
                                 event.duration, event.message, flaky)
        self._live.setdefault(event.run_id, {})[event.nodeid] = (
            event.plugin_id, event.outcome, event.duration, event.message, flaky)
        bar = self.progress.get(event.run_id)
        if bar is not None:
            bar.finished_one(event.completed, event.total, bad)

    def _tests_collected(self, run_id: int, plugin_id: str, total: int) -> None:
        bar = self.progress.get(run_id)
        if bar is not None:
            bar.set_total(total)

    def _run_changed(self, run: dict[str, Any]) -> None:
        run_id, status = run["id"], run.get("status")
        if status in ("queued", "running"):
            self.runs[run_id] = run
            bar = self.progress.get(run_id)
            if bar is None:
                bar = RunProgress(run, self.cancel_run, name=self.plugin_name(run["plugin_id"]))
                self.progress[run_id] = bar
                self.progress_layout.addWidget(bar)
            bar.set_status(status)
        else:
            self.runs.pop(run_id, None)
            bar = self.progress.pop(run_id, None)
            if bar is not None:
                bar.deleteLater()
            self._bad_before = {k for k in self._bad_before if k[0] != run_id}
            self._live.pop(run_id, None)  # the store has them now
            if not any(r["plugin_id"] == run["plugin_id"] for r in self.runs.values()):
                self.model.clear_states(run["plugin_id"])
            self._stats_timer.start()
            if run_id in self._announced:
                self._announced[run_id] = str(status)
                if all(self._announced.values()):
                    ended = Counter(self._announced.values())
                    runs = len(self._announced)
                    self.say(f"{'All ' if runs > 1 else ''}{runs} run{'s' if runs != 1 else ''}"
                             f" ended: " + ", ".join(f"{n} {s}" for s, n in ended.items()) + ".",
                             error=any(s in ("failed", "error") for s in ended))
                    self._announced = {}
            self.spawn(self._run_outcome(run))
            self.spawn(self._refresh_plugin(run["plugin_id"]))
            if run.get("trigger") in SCHEDULED_TRIGGERS and status in ("failed", "error"):
                self.scheduledRunFailed.emit(run)
        self.progress_box.setVisible(bool(self.progress))
        running = sum(1 for r in self.runs.values() if r.get("status") == "running")
        self.countsChanged.emit(running, len(self.runs) - running)
