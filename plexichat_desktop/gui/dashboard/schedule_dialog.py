"""The native "Schedule…" dialog: the same validation and next-fire preview as the web form."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import zoneinfo
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from plexichat_desktop.scheduling.expressions import (
    ACCEPTED_FORMS,
    InvalidScheduleError,
    is_zone_name,
)
from plexichat_desktop.scheduling.service import ScheduleRecord, SchedulerService
from plexichat_desktop.testing.manager import TestSelectionError

log = logging.getLogger(__name__)

PRESETS = ("hourly", "daily", "weekly", "every_30_minutes", "every_6_hours")
PRIORITIES = ("low", "medium", "high", "critical")
WHOLE_PLUGIN = "(all tests of the plugin)"
LOCAL_ZONE = "(this computer's time zone)"


class ScheduleDialog(QDialog):
    """Create a schedule; the expression is checked as it is typed."""

    def __init__(self, scheduler: SchedulerService, plugins: list[tuple[str, str]],
                 tests: dict[str, list[str]], plugin_id: str | None = None,
                 test_id: str | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Schedule test runs")
        self.scheduler = scheduler
        self.tests = tests
        self.created: ScheduleRecord | None = None
        self._task: asyncio.Task[None] | None = None

        self.plugin = QComboBox()
        self.plugin.setObjectName("schedulePlugin")
        for pid, name in plugins:
            self.plugin.addItem(f"{name} ({pid})", pid)
        self.test = QComboBox()
        self.test.setObjectName("scheduleTest")
        self.test.setEditable(True)
        self.expression = QComboBox()
        self.expression.setObjectName("scheduleExpression")
        self.expression.setEditable(True)
        self.expression.addItems(PRESETS)
        self.expression.setCurrentText("daily")
        self.expression.setToolTip("cron (5 or 6 fields), @hourly-style aliases, the words "
                                   "hourly/daily/weekly/monthly, or every_N_minutes|hours|days")
        self.timezone = QComboBox()
        self.timezone.setEditable(True)
        self.timezone.addItem(LOCAL_ZONE)
        self.timezone.addItems(sorted(z for z in zoneinfo.available_timezones()
                                      if is_zone_name(z)))
        self.priority = QComboBox()
        self.priority.addItems(PRIORITIES)
        self.priority.setCurrentText("medium")
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(0, 86_400)
        self.timeout.setDecimals(0)
        self.timeout.setSuffix(" s")
        self.timeout.setSpecialValueText("plugin default")
        self.retries = QSpinBox()
        self.retries.setRange(-1, 10)
        self.retries.setValue(-1)
        self.retries.setSpecialValueText("default")
        self.enabled = QCheckBox("Enabled")
        self.enabled.setChecked(True)
        self.preview = QLabel()
        self.preview.setObjectName("schedulePreview")
        self.preview.setWordWrap(True)
        self.preview.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.preview.setMinimumWidth(420)
        # What is wrong with the expression or zone: a row of its own, the dialog's full
        # width and as many lines as it needs (in the form it was cut off).
        self.problem = QLabel()
        self.problem.setObjectName("scheduleProblem")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #d64545")
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem.hide()
        self.error = QLabel()
        self.error.setObjectName("scheduleError")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #d64545")

        form = QFormLayout()
        form.addRow("&Plugin", self.plugin)
        form.addRow("&Test", self.test)
        form.addRow("&When", self.expression)
        form.addRow("Time &zone", self.timezone)
        form.addRow("P&riority", self.priority)
        form.addRow("Time&out per test", self.timeout)
        form.addRow("Re&tries", self.retries)
        form.addRow("", self.enabled)
        form.addRow("Next runs", self.preview)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok |
                                        QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Create schedule")
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

        # Validate shortly after typing stops, not on every keystroke.
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(150)
        self._debounce.timeout.connect(self.validate)
        self.expression.editTextChanged.connect(lambda _: self._debounce.start())
        self.timezone.editTextChanged.connect(lambda _: self._debounce.start())
        self.plugin.currentIndexChanged.connect(self._fill_tests)

        if plugin_id is not None:
            self.plugin.setCurrentIndex(max(0, self.plugin.findData(plugin_id)))
        self._fill_tests()
        if test_id:
            self.test.setCurrentText(test_id)
        self.validate()

    def _fill_tests(self) -> None:
        self.test.clear()
        self.test.addItem(WHOLE_PLUGIN)
        self.test.addItems(self.tests.get(self.plugin.currentData() or "", []))

    def _zone(self) -> str | None:
        text = self.timezone.currentText().strip()
        return None if not text or text == LOCAL_ZONE else text

    def validate(self) -> bool:
        """Show the next five fire times, or the scheduler's own error message."""
        ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        try:
            times = self.scheduler.preview(self.expression.currentText().strip(), self._zone())
        except (InvalidScheduleError, ValueError) as exc:
            self.preview.setText("\u2013")
            self.problem.setText(problem_text(exc))
            self.problem.show()
            self.adjustSize()
            ok_button.setEnabled(False)
            return False
        self.problem.hide()
        lines = [t.astimezone().strftime("%a %Y-%m-%d %H:%M:%S %Z") for t in times]
        self.preview.setText("<br>".join(lines) or "never")
        ok_button.setEnabled(self.plugin.count() > 0)
        return True

    def values(self) -> dict[str, Any]:
        test = self.test.currentText().strip()
        return {
            "plugin_id": self.plugin.currentData(),
            "expression": self.expression.currentText().strip(),
            "test_id": None if not test or test == WHOLE_PLUGIN else test,
            "timezone": self._zone(),
            "priority": self.priority.currentText(),
            "timeout": self.timeout.value() or None,
            "retries": None if self.retries.value() < 0 else self.retries.value(),
            "enabled": self.enabled.isChecked(),
        }

    def submit(self) -> None:
        if not self.validate() or (self._task is not None and not self._task.done()):
            return
        self.error.clear()
        self.buttons.setEnabled(False)
        self._task = asyncio.get_running_loop().create_task(self._create(self.values()))

    def reject(self) -> None:
        # Esc while the schedule is being created: it will exist either way, so the dialog
        # stays until it can say so (the task needs the dialog alive).
        if self._task is not None and not self._task.done():
            return
        super().reject()

    async def _create(self, values: dict[str, Any]) -> None:
        plugin_id = values.pop("plugin_id")
        expression = values.pop("expression")
        try:
            self.created = await self.scheduler.create(plugin_id, expression, **values)
        except (TestSelectionError, InvalidScheduleError, ValueError) as exc:
            self.error.setText(problem_text(exc))
            self.buttons.setEnabled(True)
            return
        except Exception as exc:  # shown, not swallowed: the dialog stays open
            log.exception("creating a schedule for %s failed", plugin_id)
            self.error.setText(f"Could not create the schedule: {exc}")
            self.buttons.setEnabled(True)
            return
        when = self.created.next_run_at
        log.info("schedule %s created for %s (%s), next run %s", self.created.id, plugin_id,
                 expression, dt.datetime.fromtimestamp(when) if when else "never")
        self.accept()


def problem_text(exc: Exception) -> str:
    """The scheduler's reason in the dialog's words: the list of expression forms only
    when the expression is what is wrong, and no library names."""
    if not isinstance(exc, InvalidScheduleError):
        return str(exc)
    reason = exc.reason.replace("croniter refuses it", "not a valid cron expression")
    if "zone" in reason.lower():
        return reason[:1].upper() + reason[1:] + "."
    forms = ACCEPTED_FORMS[:1].upper() + ACCEPTED_FORMS[1:]
    return f"{reason[:1].upper() + reason[1:]}.\n\n{forms}."
