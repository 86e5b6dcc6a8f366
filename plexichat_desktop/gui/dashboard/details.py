"""The details pane: a test's attempts (message, traceback, output) and its history chart."""

from __future__ import annotations

import datetime as dt
from typing import Any

from PySide6.QtCharts import QChart, QChartView, QDateTimeAxis, QLineSeries, QValueAxis
from PySide6.QtCore import QDateTime, QEvent, QMargins, Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from plexichat_desktop.gui.dashboard.tree_model import (
    OUTCOME_COLOURS,
    format_duration,
    outcome_icon,
    outcome_label,
)
from plexichat_desktop.testing.models import TestAttempt

PASS_COLOUR = OUTCOME_COLOURS["passed"]
DURATION_COLOUR = "#3563e9"


def _local(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


class HistoryChart(QChartView):
    """Pass rate (left axis, %) and mean duration (right axis) per day."""

    def __init__(self, parent: QWidget | None = None):
        chart = QChart()
        chart.setMargins(QMargins(4, 4, 4, 4))
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        chart.setBackgroundRoundness(0)
        super().__init__(chart, parent)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        # Below this the axis labels are elided to "…" and the plot is a few pixels tall;
        # more would make the whole dock taller than a first start gives it.
        self.setMinimumHeight(130)
        self.pass_rate = QLineSeries()
        self.pass_rate.setName("Pass rate")
        self.duration = QLineSeries()
        self.duration.setName("Mean duration")
        for series in (self.pass_rate, self.duration):
            # A day on its own is a point, not a line: markers make it visible.
            series.setPointsVisible(True)
        self.pass_rate.setPen(QPen(QColor(PASS_COLOUR), 2))
        self.duration.setPen(QPen(QColor(DURATION_COLOUR), 2, Qt.PenStyle.DashLine))
        chart.addSeries(self.pass_rate)
        chart.addSeries(self.duration)
        self.x_axis = QDateTimeAxis()
        self.x_axis.setFormat("MMM d")
        self.rate_axis = QValueAxis()
        self.rate_axis.setRange(0, 100)
        self.rate_axis.setLabelFormat("%d%%")
        self.duration_axis = QValueAxis()
        self.duration_axis.setLabelFormat("%.2f s")
        chart.addAxis(self.x_axis, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(self.rate_axis, Qt.AlignmentFlag.AlignLeft)
        chart.addAxis(self.duration_axis, Qt.AlignmentFlag.AlignRight)
        for series, axis in ((self.pass_rate, self.rate_axis),
                             (self.duration, self.duration_axis)):
            series.attachAxis(self.x_axis)
            series.attachAxis(axis)
        self.apply_palette()

    def apply_palette(self) -> None:
        """Follow the widget palette, so the chart is readable in light and dark themes."""
        palette = self.palette()
        chart = self.chart()
        chart.setBackgroundBrush(palette.base())
        chart.legend().setLabelColor(palette.text().color())
        for axis in (self.x_axis, self.rate_axis, self.duration_axis):
            axis.setLabelsColor(palette.text().color())
            axis.setGridLineColor(palette.mid().color())

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self.apply_palette()  # the desktop switched between light and dark
        super().changeEvent(event)

    def set_trend(self, trend: list[dict[str, Any]], title: str) -> None:
        """``trend``: rows of ResultStore.daily_trend (oldest first)."""
        self.chart().setTitle(title)
        self.chart().setTitleBrush(self.palette().text())
        rate, duration = [], []
        longest = 0.0
        for row in trend:
            stamp = QDateTime.fromString(row["day"], "yyyy-MM-dd").toMSecsSinceEpoch()
            if row["success_rate"] is not None:
                rate.append((stamp, row["success_rate"] * 100))
            if row["mean_duration"] is not None:
                duration.append((stamp, row["mean_duration"]))
                longest = max(longest, row["mean_duration"])
        self.pass_rate.clear()
        self.duration.clear()
        for x, y in rate:
            self.pass_rate.append(x, y)
        for x, y in duration:
            self.duration.append(x, y)
        if trend:
            first = QDateTime.fromString(trend[0]["day"], "yyyy-MM-dd")
            last = QDateTime.fromString(trend[-1]["day"], "yyyy-MM-dd")
            if first == last:
                # One day: an empty range draws nothing; half a day either side of it.
                first, last = first.addSecs(-12 * 3600), last.addSecs(12 * 3600)
                self.x_axis.setTickCount(3)
            else:
                self.x_axis.setTickCount(min(len(trend), 8))
            self.x_axis.setRange(first, last)
        self.duration_axis.setRange(0, max(longest * 1.15, 0.01))


class TestDetails(QWidget):
    """What one test (or a plugin) did: attempts on top, the chosen attempt's text below."""

    __test__ = False

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.attempts: list[TestAttempt] = []
        self.heading = QLabel("Select a test to see its attempts and history.")
        self.heading.setWordWrap(True)
        self.heading.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget(0, 5)
        self.table.setObjectName("attemptsTable")
        self.table.setHorizontalHeaderLabels(["Finished", "Run", "Try", "Outcome", "Duration"])
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._show_selected)
        self.table.setMinimumHeight(50)

        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.texts: dict[str, QPlainTextEdit] = {}
        self.text_tabs = QTabWidget()
        for name in ("Failure", "Output", "Log"):
            edit = QPlainTextEdit()
            edit.setReadOnly(True)
            edit.setFont(mono)
            edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
            edit.setObjectName(f"details{name}")
            self.texts[name] = edit
            self.text_tabs.addTab(edit, name)
        self.chart = HistoryChart()
        self.text_tabs.addTab(self.chart, "History")

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.text_tabs)
        splitter.setSizes([110, 260])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.heading)
        layout.addWidget(splitter, 1)
        bold = QFont(self.heading.font())
        bold.setBold(True)
        self.heading.setFont(bold)

    def show_test(self, plugin_id: str, nodeid: str, attempts: list[TestAttempt],
                  trend: list[dict[str, Any]], flip_rate: float | None) -> None:
        """``attempts`` newest first, as ResultStore.test_history returns them."""
        flips = "" if flip_rate is None else f" · flip rate {flip_rate:.0%}"
        self.heading.setText(f"{plugin_id} · {nodeid}{flips}")
        self._fill(attempts)
        self.chart.set_trend(trend, "Pass rate and mean duration per day")

    def show_scope(self, title: str, stats: dict[str, Any], trend: list[dict[str, Any]]
                   ) -> None:
        """A plugin or file row: its statistics instead of attempts."""
        rate = stats.get("success_rate")
        mean = stats.get("mean_duration")
        self.heading.setText(
            f"{title} · {stats.get('total', 0)} results in {stats.get('runs', 0)} runs"
            + (f" · success {rate:.1%}" if rate is not None else "")
            + (f" · mean {format_duration(mean)}" if mean is not None else ""))
        self._fill([])
        self.chart.set_trend(trend, "Pass rate and mean duration per day")

    def show_error(self, run: dict[str, Any], attempts: list[TestAttempt]) -> None:
        """Under a plugin's or file's statistics: why its last run could not run tests.
        ``attempts``: the collection errors (file-level results) of that run, whose
        tracebacks the Failure tab shows; else the run's own error text."""
        self.heading.setText(f"{self.heading.text()} · run #{run['id']} ended with an error")
        self._fill(attempts)
        if not attempts:
            self.texts["Failure"].setPlainText(
                f"Run #{run['id']} ended with an error:\n\n"
                f"{run.get('error') or 'no reason was recorded'}")
        self.text_tabs.setCurrentIndex(0)

    def clear(self) -> None:
        self.heading.setText("Select a test to see its attempts and history.")
        self._fill([])
        self.chart.set_trend([], "")

    def _fill(self, attempts: list[TestAttempt]) -> None:
        self.attempts = attempts
        self.table.setRowCount(len(attempts))
        for row, attempt in enumerate(attempts):
            outcome = str(attempt.outcome)
            cells = [_local(attempt.finished_at), str(attempt.run_id), str(attempt.attempt),
                     outcome_label(outcome), format_duration(attempt.duration)]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == 3:
                    item.setIcon(outcome_icon(outcome))
                if attempt.message:
                    item.setToolTip(attempt.message)
                self.table.setItem(row, column, item)
        for edit in self.texts.values():
            edit.clear()
        if attempts:
            # The newest failing attempt is what a person opens the pane for.
            bad = next((i for i, a in enumerate(attempts) if a.longrepr or a.message), 0)
            # Cleared first: re-selecting the row that is already selected emits nothing,
            # and the text panes were just emptied.
            self.table.clearSelection()
            self.table.selectRow(bad)

    def _show_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.attempts):
            return
        attempt = self.attempts[rows[0].row()]
        failure = attempt.message
        if attempt.longrepr:
            failure = f"{failure}\n\n{attempt.longrepr}" if failure else attempt.longrepr
        self.texts["Failure"].setPlainText(failure or "No failure recorded for this attempt.")
        output = ""
        if attempt.stdout:
            output += f"--- stdout ---\n{attempt.stdout}\n"
        if attempt.stderr:
            output += f"--- stderr ---\n{attempt.stderr}\n"
        self.texts["Output"].setPlainText(output or "No captured output.")
        self.texts["Log"].setPlainText(attempt.log or "No log records.")
        if failure and self.text_tabs.currentWidget() is not self.chart:
            self.text_tabs.setCurrentIndex(0)
