"""The dock's list of schedules: what runs when, its last outcome, enable, delete, new."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from plexichat_desktop.gui.bridge import EventBridge
from plexichat_desktop.scheduling.service import ScheduleRecord, SchedulerService

log = logging.getLogger(__name__)

COLUMNS = ("Plugin", "Tests", "When", "Next run", "Last outcome", "Enabled")


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%a %Y-%m-%d %H:%M") if ts else "\u2013"


class SchedulesDialog(QDialog):
    """Non-modal; follows schedule changes made anywhere (the web form, the API)."""

    def __init__(self, scheduler: SchedulerService, bridge: EventBridge,
                 plugin_name: Callable[[str], str], new_schedule: Callable[[], object],
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Schedules")
        self.scheduler = scheduler
        self.plugin_name = plugin_name
        self.records: list[ScheduleRecord] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("schedulesTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.itemChanged.connect(self._item_changed)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setObjectName("schedulesMessage")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.close)
        new = QPushButton("New…")
        new.clicked.connect(new_schedule)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self.delete_selected)
        self.buttons.addButton(new, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(self.delete_button, QDialogButtonBox.ButtonRole.ActionRole)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.resize(820, 360)
        self._bridge = bridge
        bridge.busEvent.connect(self._event)
        self.refresh()

    def _event(self, event: Any) -> None:
        if getattr(event, "topic", "").startswith("schedules."):
            self.refresh()

    def refresh(self) -> None:
        self.records = self.scheduler.list()
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.records))
        for row, record in enumerate(self.records):
            cells = [self.plugin_name(record.plugin_id), record.test_id or "all tests",
                     record.expression + (f" ({record.timezone})" if record.timezone else ""),
                     _when(record.next_run_at) if record.enabled else "disabled",
                     record.last_status or "not yet"]
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
            enabled = QTableWidgetItem()
            enabled.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled
                             | Qt.ItemFlag.ItemIsSelectable)
            enabled.setCheckState(Qt.CheckState.Checked if record.enabled
                                  else Qt.CheckState.Unchecked)
            self.table.setItem(row, len(COLUMNS) - 1, enabled)
        self.table.blockSignals(False)
        self.delete_button.setEnabled(bool(self.records))
        if not self.records and not self.message.text():
            self.message.setText("No schedules yet: New… makes one.")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() != len(COLUMNS) - 1 or item.row() >= len(self.records):
            return
        record = self.records[item.row()]
        on = item.checkState() == Qt.CheckState.Checked

        async def toggle() -> None:
            try:
                await self.scheduler.update(record.id, enabled=on)
                self.message.setText(f"Schedule {record.id} {'enabled' if on else 'disabled'}.")
            except (KeyError, ValueError) as exc:
                self.message.setText(f"Could not change schedule {record.id}: {exc}")
                self.refresh()

        self._spawn(toggle())

    def delete_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            self.message.setText("Select a schedule to delete.")
            return
        record = self.records[rows[0].row()]

        async def delete() -> None:
            try:
                await self.scheduler.delete(record.id)
                self.message.setText(f"Schedule {record.id} ({record.expression}, "
                                     f"{self.plugin_name(record.plugin_id)}) deleted.")
            except KeyError:
                self.message.setText(f"Schedule {record.id} was already gone.")
            self.refresh()

        self._spawn(delete())

    def closeEvent(self, event: Any) -> None:
        self._bridge.busEvent.disconnect(self._event)
        super().closeEvent(event)
