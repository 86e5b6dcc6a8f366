"""The dock's analytics: failure patterns, slow tests with suggestions, categories.

The same figures as the web page /tests/analytics (both read ResultStore.failure_groups,
duration_history, run_durations and statistics through testing/analytics.py), reloaded
when a run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from plexichat_desktop.gui.bridge import EventBridge
from plexichat_desktop.testing.analytics import CATEGORIES, FailurePattern, duration_report
from plexichat_desktop.testing.results import BAD_OUTCOMES, SUCCESS_OUTCOMES
from plexichat_desktop.testing.store import ResultStore

log = logging.getLogger(__name__)

PATTERN_COLUMNS = ("Pattern", "Failures", "Tests", "First seen", "Last seen")
SLOW_COLUMNS = ("Test", "Plugin", "Median", "Last")
FINDING_COLUMNS = ("Kind", "Where", "What to do", "Evidence")
CATEGORY_COLUMNS = ("Category", "Results", "Passed", "Failed", "Success")


def _when(ts: float, run_id: int) -> str:
    return f"{dt.datetime.fromtimestamp(ts):%Y-%m-%d %H:%M} (run #{run_id})"


def _seconds(value: float | None) -> str:
    if value is None:
        return "\u2013"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _evidence(evidence: dict[str, Any]) -> str:
    return ", ".join(f"{key.replace('_', ' ')} {value:.3f}" if isinstance(value, float)
                     else f"{key.replace('_', ' ')} {value}"
                     for key, value in evidence.items() if not isinstance(value, list))


def _table(name: str, columns: tuple[str, ...], stretch: int) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setObjectName(name)
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().hide()
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setWordWrap(True)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    return table


def _fill(table: QTableWidget, rows: list[list[str]], tips: list[str] | None = None) -> None:
    table.setRowCount(len(rows))
    for r, cells in enumerate(rows):
        for c, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if tips is not None:
                item.setToolTip(tips[r])
            table.setItem(r, c, item)
    table.resizeRowsToContents()


class AnalyticsDialog(QDialog):
    """Non-modal; reloads when a run finishes and when the plugin filter changes."""

    def __init__(self, store: ResultStore, bridge: EventBridge,
                 plugins: list[tuple[str, str]], plugin_name: Callable[[str], str],
                 parent: QWidget | None = None, plugin_id: str | None = None):
        super().__init__(parent)
        self.setWindowTitle("Test analytics")
        self.store = store
        self.plugin_name = plugin_name
        self._tasks: set[asyncio.Task[Any]] = set()
        self.plugin_box = QComboBox()
        self.plugin_box.setObjectName("analyticsPlugin")
        self.plugin_box.addItem("All plugins", None)
        for pid, name in plugins:
            self.plugin_box.addItem(name, pid)
        if plugin_id is not None:
            self.plugin_box.setCurrentIndex(max(0, self.plugin_box.findData(plugin_id)))
        self.plugin_box.currentIndexChanged.connect(lambda _i: self.refresh())
        self.patterns = _table("patternsTable", PATTERN_COLUMNS, 0)
        self.slow = _table("slowTable", SLOW_COLUMNS, 0)
        self.findings = _table("findingsTable", FINDING_COLUMNS, 2)
        self.categories = _table("categoriesTable", CATEGORY_COLUMNS, 0)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.patterns, "Failure patterns")
        slow_page = QWidget()
        slow_layout = QVBoxLayout(slow_page)
        slow_layout.setContentsMargins(0, 0, 0, 0)
        self.slow_plugins = QLabel()
        self.slow_plugins.setWordWrap(True)
        slow_layout.addWidget(self.slow, 2)
        slow_layout.addWidget(self.slow_plugins)
        slow_layout.addWidget(QLabel("Got slower, and suggestions:"))
        slow_layout.addWidget(self.findings, 2)
        self.tabs.addTab(slow_page, "Durations")
        self.tabs.addTab(self.categories, "Categories")
        self.message = QLabel()
        self.message.setObjectName("analyticsMessage")
        self.message.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        top = QHBoxLayout()
        top.addWidget(QLabel("Plugin:"))
        top.addWidget(self.plugin_box, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.message)
        layout.addWidget(buttons)
        self.resize(900, 520)
        self._bridge = bridge
        bridge.busEvent.connect(self._event)
        self.loaded = asyncio.Event()
        self.refresh()

    def _event(self, event: Any) -> None:
        if getattr(event, "topic", "") == "tests.run_finished":
            self.refresh()

    def closeEvent(self, event: Any) -> None:
        with contextlib.suppress(RuntimeError, TypeError):  # already gone with the bridge
            self._bridge.busEvent.disconnect(self._event)
        super().closeEvent(event)

    def refresh(self) -> None:
        task = asyncio.get_running_loop().create_task(self._load())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _load(self) -> None:
        plugin_id = self.plugin_box.currentData()

        def gather() -> tuple[list[FailurePattern], dict[str, Any], dict[str, Any]]:
            patterns = self.store.failure_groups(plugin_id)
            durations = duration_report(self.store.duration_history(plugin_id),
                                        self.store.run_durations(plugin_id))
            categories = {name: self.store.statistics(plugin_id, category=name)
                          for name in CATEGORIES}
            return patterns, durations, categories

        try:
            patterns, durations, categories = await asyncio.to_thread(gather)
        except Exception as exc:  # a closed store while the app stops
            log.warning("could not load the test analytics: %s", exc)
            self.message.setText(f"Could not load the analytics: {exc}")
            return
        _fill(self.patterns, [
            [p.signature, str(p.count),
             ", ".join(t.split("::")[-1] for t in p.tests[:3])
             + (f" and {p.tests_affected - 3} more" if p.tests_affected > 3 else ""),
             _when(p.first_seen, p.first_run_id), _when(p.last_seen, p.last_run_id)]
            for p in patterns], tips=[str(p.example.get("message", "")) for p in patterns])
        _fill(self.slow, [[t["nodeid"], self.plugin_name(t["plugin_id"]),
                           _seconds(t["median"]), _seconds(t["last"])]
                          for t in durations["slowest_tests"]])
        self.slow_plugins.setText("Slowest plugins: " + (", ".join(
            f"{self.plugin_name(p['plugin_id'])} {_seconds(p['median_run'])} per run"
            for p in durations["slowest_plugins"]) or "no whole-suite runs yet") + ".")
        findings = [*durations["slower"], *durations["suggestions"]]
        _fill(self.findings, [[f["kind"].replace("_", " "), f"{f['plugin_id']}::{f['nodeid']}",
                               f["text"], _evidence(f["evidence"])]
                              for f in findings])
        rows = []
        for name, stats in categories.items():
            counts = stats["counts"]
            passed = sum(counts.get(str(o), 0) for o in SUCCESS_OUTCOMES)
            failed = sum(counts.get(str(o), 0) for o in BAD_OUTCOMES)
            rate = stats["success_rate"]
            rows.append([name, str(stats["total"]), str(passed), str(failed),
                         "\u2013" if rate is None else f"{rate:.0%}"])
        _fill(self.categories, rows)
        self.message.setText(f"{len(patterns)} failure pattern(s), {len(findings)} finding(s).")
        self.loaded.set()
