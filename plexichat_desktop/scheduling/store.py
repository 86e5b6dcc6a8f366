"""The scheduler's own store: schedules and the fire history of each.

They live in the same SQLite file as the test results (``tests.sqlite3``: a schedule's fire
history sits next to the runs it started, and one file keeps backups and "move the file
away to start fresh" simple), and the file's one migration chain creates their tables
(``testing/store.py``, migration 2); every read and write here goes through that
database's transactions, so a closed store fails the same way for both.
Plain dicts in and out (keys = :data:`SCHEDULE_COLUMNS`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from plexichat_desktop.core.sqlite import SqliteDatabase
from plexichat_desktop.testing.models import Priority
from plexichat_desktop.testing.store import MESSAGE_CAP, clip_text, sanitise_text


def _nullable(value: str | None) -> str | None:
    return None if value is None else sanitise_text(value)


SCHEDULE_COLUMNS = ("id", "plugin_id", "test_id", "expression", "timezone", "priority",
                    "timeout", "retries", "enabled", "created_at", "armed_at", "anchor",
                    "last_fire_at", "last_run_id", "last_status", "next_run_at")
"""The keys of a schedule dict as ScheduleStore.save_schedule` takes and returns it."""
FIRE_STATUSES = frozenset({"fired", "caught_up", "missed", "skipped"})
"""What became of one fire time of a schedule."""
FIRE_HISTORY_KEEP = 1000
"""Fire records kept per schedule by ScheduleStore.prune_fire_history`."""


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _schedule_params(schedule: Mapping[str, Any]) -> tuple[Any, ...]:
    missing = [name for name in SCHEDULE_COLUMNS if name not in schedule]
    if missing:
        raise KeyError(f"schedule dict lacks {', '.join(missing)}")
    s = schedule
    return (
        sanitise_text(s["id"]), sanitise_text(s["plugin_id"]), _nullable(s["test_id"]),
        sanitise_text(s["expression"]), _nullable(s["timezone"]),
        int(Priority.parse(s["priority"])), _optional_float(s["timeout"]),
        _optional_int(s["retries"]), int(bool(s["enabled"])), float(s["created_at"]),
        float(s["armed_at"]), _optional_float(s["anchor"]), _optional_float(s["last_fire_at"]),
        _optional_int(s["last_run_id"]), _nullable(s["last_status"]),
        _optional_float(s["next_run_at"]),
    )


def _schedule_from_row(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["enabled"] = bool(data["enabled"])
    return data


def _fire_params(schedule_id: str, fire_at: float, status: str, run_id: int | None = None,
                 detail: str | None = None) -> tuple[Any, ...]:
    if status not in FIRE_STATUSES:
        raise ValueError(f"fire status must be one of {', '.join(sorted(FIRE_STATUSES))}; "
                         f"got {status!r}")
    return (sanitise_text(schedule_id), float(fire_at), status, _optional_int(run_id),
            None if detail is None else clip_text(detail, MESSAGE_CAP), time.time())


class ScheduleStore:
    """Schedules and fire records in the database ``db`` (the test result store)."""

    def __init__(self, db: SqliteDatabase):
        self.db = db

    def save_schedule(self, schedule: Mapping[str, Any] | None = None, /,
                      **fields: Any) -> None:
        """Insert or update one schedule: a dict of :data:`SCHEDULE_COLUMNS` and/or fields.

        Every column must be given (``KeyError`` otherwise). An existing row is updated in
        place, so its fire history stays.
        """
        self.save_schedules([{**(schedule or {}), **fields}])

    def save_schedules(self, schedules: Sequence[Mapping[str, Any]],
                       fires: Sequence[Sequence[Any]] = ()) -> None:
        """Upsert many schedules and append fire records, all in one transaction.

        ``fires`` holds ``(schedule_id, fire_at, status, run_id[, detail])`` tuples, as for
        :meth:`add_fire`. One transaction per scheduler tick or start-up, not one per
        schedule: 10,000 schedules re-planned after a night's sleep commit once.
        """
        rows = [_schedule_params(schedule) for schedule in schedules]
        fire_rows = [_fire_params(*fire) for fire in fires]
        if not rows and not fire_rows:
            return
        names = ", ".join(SCHEDULE_COLUMNS)
        marks = ", ".join("?" * len(SCHEDULE_COLUMNS))
        updates = ", ".join(f"{name} = excluded.{name}" for name in SCHEDULE_COLUMNS[1:])
        with self.db.transaction(write=True) as conn:
            # An upsert, not INSERT OR REPLACE: a replace deletes the row first, and the
            # cascade would take the schedule's fire history with it.
            conn.executemany(
                f"INSERT INTO schedules ({names}) VALUES ({marks}) "
                f"ON CONFLICT (id) DO UPDATE SET {updates}", rows)
            conn.executemany(
                "INSERT INTO schedule_fires (schedule_id, fire_at, status, run_id, detail, "
                "recorded_at) VALUES (?, ?, ?, ?, ?, ?)", fire_rows)

    def delete_schedule(self, schedule_id: str) -> bool:
        """Delete a schedule and its fire history; False when there was none."""
        with self.db.transaction(write=True) as conn:
            return conn.execute("DELETE FROM schedules WHERE id = ?",
                                (schedule_id,)).rowcount > 0

    def load_schedules(self) -> list[dict[str, Any]]:
        """Every schedule as a dict of :data:`SCHEDULE_COLUMNS`, oldest first."""
        with self.db.transaction() as conn:
            rows = conn.execute(
                f"SELECT {', '.join(SCHEDULE_COLUMNS)} FROM schedules "
                f"ORDER BY created_at, id").fetchall()
        return [_schedule_from_row(row) for row in rows]

    def add_fire(self, schedule_id: str, fire_at: float, status: str,
                 run_id: int | None = None, detail: str | None = None) -> None:
        """Record what became of one fire time of a schedule.

        ``status`` is one of :data:`FIRE_STATUSES`; ``fire_at`` is the scheduled instant
        (UNIX seconds), not when it was recorded. The schedule must exist
        (``sqlite3.IntegrityError`` otherwise).
        """
        self.save_schedules((), [(schedule_id, fire_at, status, run_id, detail)])

    def fire_history(self, schedule_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` fire records of a schedule, newest fire time first.

        Each is a dict with ``schedule_id``, ``fire_at``, ``status``, ``run_id``, ``detail``
        and ``recorded_at``.
        """
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT schedule_id, fire_at, status, run_id, detail, recorded_at "
                "FROM schedule_fires WHERE schedule_id = ? "
                "ORDER BY fire_at DESC, id DESC LIMIT ?",
                (schedule_id, max(0, int(limit)))).fetchall()
        return [dict(row) for row in rows]

    def prune_fire_history(self, keep: int = FIRE_HISTORY_KEEP) -> int:
        """Keep the newest ``keep`` fire records of each schedule; return how many went.

        An every-minute schedule adds 1,440 rows a day; the scheduler calls this at start
        and once a day rather than on every insert, which would cost an index walk per fire.
        """
        with self.db.transaction(write=True) as conn:
            return conn.execute(
                """
                DELETE FROM schedule_fires WHERE id IN (
                    SELECT id FROM (
                        SELECT id, ROW_NUMBER() OVER (
                            PARTITION BY schedule_id ORDER BY fire_at DESC, id DESC) AS n
                        FROM schedule_fires)
                    WHERE n > ?)
                """, (max(0, int(keep)),)).rowcount
