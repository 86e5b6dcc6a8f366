"""The test manager's persistent result store: runs, test attempts and collected tests.

Plain stdlib ``sqlite3``, one database file, WAL journal. Every method is synchronous and
blocking; async callers run them through ``asyncio.to_thread``.

Timestamps are UNIX seconds (float, UTC). "Local day" in :meth:`ResultStore.daily_trend`
means the machine's local time zone as the C library sees it (SQLite's ``'localtime'``
modifier, the same source Python's ``time.localtime``/``time.mktime`` use), so it follows
``TZ`` and DST like every other local clock in the process.

Vocabulary used by the statistics:

* a *final result* is the last attempt of one test in one run (highest attempt number,
  newest row on a tie); retries before it are history, not results;
* *success* is ``passed``, ``xfailed`` or ``xpassed`` (xpassed because xfail is non-strict
  by default); *failure* is ``failed``, ``error``, ``timed_out`` or ``crashed``;
  ``skipped`` and ``not_run`` are neither and stay out of success rates and flip rates;
* a final result is *flaky* when it is a success and an earlier attempt of the same test in
  the same run was a failure.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from plexichat_desktop.core.owner import is_running, this_process
from plexichat_desktop.core.sqlite import SQLITE_INT_MAX, SchemaVersionError, SqliteDatabase
from plexichat_desktop.testing.analytics import FailurePattern, pattern_id
from plexichat_desktop.testing.models import (
    BAD_OUTCOMES,
    CollectedTest,
    Outcome,
    Priority,
    RunRecord,
    RunStatus,
    TestAttempt,
)
from plexichat_desktop.testing.results import (
    NEUTRAL_OUTCOMES,
    SUCCESS_OUTCOMES,
    flips,
    passed_on_retry,
)

__all__ = [
    "MESSAGE_CAP",
    "SCHEMA_VERSION",
    "TEXT_CAP",
    "TRUNCATION_MARKER",
    "ResultStore",
    "SchemaVersionError",
    "clip_text",
    "sanitise_text",
]

TEXT_CAP = 64 * 1024
"""Cap, in UTF-8 bytes, of an attempt's longrepr, stdout, stderr and log and a run's error."""
MESSAGE_CAP = 4 * 1024
"""Cap, in UTF-8 bytes, of an attempt's one-line message."""
REPORTS_CAP = 200
"""Extra reports (failed subtests...) kept per attempt; a suite with thousands of failing
subtests keeps the first ones, and the counts stay right (passed ones are one entry)."""
TRUNCATION_MARKER = "\n... [truncated {} bytes]"
"""Appended to clipped text; ``{}`` is the number of UTF-8 bytes dropped."""

RETENTION_BATCH = 500

UNFINISHED_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


def _sql_list(values: Any) -> str:
    """An SQL list literal of enum values; only ever fed our own enum members."""
    return "(" + ", ".join(f"'{v!s}'" for v in sorted(values)) + ")"


_SUCCESS_SQL = _sql_list(SUCCESS_OUTCOMES)
_BAD_SQL = _sql_list(BAD_OUTCOMES)
_NEUTRAL_SQL = _sql_list(NEUTRAL_OUTCOMES)
_UNFINISHED_SQL = _sql_list(UNFINISHED_STATUSES)


# ---------------------------------------------------------------------------------------
# Text hygiene


def sanitise_text(value: object) -> str:
    """Return ``value`` as text SQLite can store and every reader can decode.

    Lone surrogates (from ``surrogateescape`` decoding or broken pairs) and NUL characters
    become U+FFFD; valid surrogate pairs are joined into the character they encode.
    ``None`` becomes the empty string. Never raises.
    """
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        # NUL cuts text short in many C APIs and in SQLite's own string functions.
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # utf-16 with surrogatepass re-pairs valid halves; 'replace' fixes the lone ones.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def clip_text(value: object, cap: int = TEXT_CAP) -> str:
    """Sanitise ``value`` and clip it to at most ``cap`` UTF-8 bytes.

    Clipped text keeps its head and ends with :data:`TRUNCATION_MARKER` naming how many
    bytes were dropped; the marker counts towards the cap. Never cuts a character in half.
    """
    text = sanitise_text(value)
    if len(text) * 4 <= cap:
        return text  # cannot exceed the cap: skip encoding the common small text
    data = text.encode("utf-8")
    if len(data) <= cap:
        return text
    # Room for the longest marker this text could need; the real one is never longer.
    room = len(TRUNCATION_MARKER.format(len(data)).encode("utf-8"))
    head = data[:max(cap - room, 0)].decode("utf-8", "ignore")
    dropped = len(data) - len(head.encode("utf-8"))
    return head + TRUNCATION_MARKER.format(dropped)


def _nullable(value: str | None) -> str | None:
    return None if value is None else sanitise_text(value)


# ---------------------------------------------------------------------------------------
# Schema and migrations

Migration = Callable[[sqlite3.Connection], None]

_SCHEMA_1 = (
    # AUTOINCREMENT: ids shown in the UI and used as parent_run_id must never be reused
    # after retention deletes the newest rows' predecessors.
    """
    CREATE TABLE runs (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        plugin_id     TEXT    NOT NULL,
        selection     TEXT,                       -- JSON list of node ids; NULL = all
        trigger       TEXT    NOT NULL,
        priority      INTEGER NOT NULL,
        status        TEXT    NOT NULL,
        queued_at     REAL    NOT NULL,
        started_at    REAL,
        finished_at   REAL,
        exit_code     INTEGER,
        attempt       INTEGER NOT NULL DEFAULT 1,
        parent_run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
        schedule_id   TEXT,
        error         TEXT,
        counts        TEXT    NOT NULL DEFAULT '{}'  -- JSON object outcome -> count
    )
    """,
    "CREATE INDEX runs_plugin_queued ON runs(plugin_id, queued_at)",
    "CREATE INDEX runs_queued ON runs(queued_at)",
    "CREATE INDEX runs_unfinished ON runs(status) WHERE status IN ('queued', 'running')",
    # Lets ON DELETE SET NULL find children without scanning runs for every deleted run.
    "CREATE INDEX runs_parent ON runs(parent_run_id) WHERE parent_run_id IS NOT NULL",
    # Small columns first, big text last: reading outcome or duration of a row whose
    # longrepr spills into overflow pages never has to follow the overflow chain.
    # is_final/flaky are kept up to date by add_attempts so statistics never have to work
    # out "last attempt per (run, test)" at query time.
    """
    CREATE TABLE attempts (
        id          INTEGER PRIMARY KEY,
        run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        plugin_id   TEXT    NOT NULL,
        nodeid      TEXT    NOT NULL,
        attempt     INTEGER NOT NULL,
        outcome     TEXT    NOT NULL,
        duration    REAL    NOT NULL,
        started_at  REAL    NOT NULL,
        finished_at REAL    NOT NULL,
        is_final    INTEGER NOT NULL DEFAULT 0,
        flaky       INTEGER NOT NULL DEFAULT 0,
        phase       TEXT,
        message     TEXT    NOT NULL DEFAULT '',
        longrepr    TEXT    NOT NULL DEFAULT '',
        stdout      TEXT    NOT NULL DEFAULT '',
        stderr      TEXT    NOT NULL DEFAULT '',
        log         TEXT    NOT NULL DEFAULT ''
    )
    """,
    # Cascade deletes, attempts_for_run and the finality bookkeeping of add_attempts.
    "CREATE INDEX attempts_run ON attempts(run_id, nodeid, attempt)",
    # test_history (every attempt, retries included).
    "CREATE INDEX attempts_test ON attempts(plugin_id, nodeid, finished_at)",
    # Covering indexes over final results only: statistics, flip_rate, last_results and
    # daily_trend read nothing but these, never the table. The trailing is_final looks
    # redundant but is not: SQLite (3.40) counts a partial index as covering only if it
    # also holds the columns of its own WHERE clause.
    """
    CREATE INDEX attempts_final_test
        ON attempts(plugin_id, nodeid, finished_at, run_id, outcome, duration, flaky,
                    is_final)
        WHERE is_final = 1
    """,
    """
    CREATE INDEX attempts_final_time
        ON attempts(plugin_id, finished_at, outcome, duration, flaky, is_final)
        WHERE is_final = 1
    """,
    """
    CREATE TABLE collected (
        plugin_id  TEXT    NOT NULL,
        nodeid     TEXT    NOT NULL,
        file       TEXT    NOT NULL,
        line       INTEGER,
        name       TEXT    NOT NULL,
        cls        TEXT,
        position   INTEGER NOT NULL,   -- collection order, which pytest users expect
        first_seen REAL    NOT NULL,
        last_seen  REAL    NOT NULL,
        PRIMARY KEY (plugin_id, nodeid)
    ) WITHOUT ROWID
    """,
)


def _migration_1(conn: sqlite3.Connection) -> None:
    """Initial schema: runs, attempts, collected."""
    for statement in _SCHEMA_1:
        conn.execute(statement)


# Schedules live here too: a schedule's fire history sits next to the runs it started,
# and one file keeps backups and "move the file away to start fresh" simple.
_SCHEMA_2 = (
    # Everything the scheduler needs to carry on after a restart. ``anchor`` fixes the phase
    # of every_N_* grids (so a restart keeps the same fire times); ``armed_at`` is when the
    # schedule's current timing took effect (creation, re-enable, expression change): fire
    # times at or before it were never due, so they are never reported as missed.
    """
    CREATE TABLE schedules (
        id           TEXT    PRIMARY KEY,
        plugin_id    TEXT    NOT NULL,
        test_id      TEXT,                      -- NULL = the whole suite
        expression   TEXT    NOT NULL,
        timezone     TEXT,                      -- IANA name; NULL = the machine's zone
        priority     INTEGER NOT NULL,
        timeout      REAL,
        retries      INTEGER,
        enabled      INTEGER NOT NULL DEFAULT 1,
        created_at   REAL    NOT NULL,
        armed_at     REAL    NOT NULL,
        anchor       REAL,                      -- UNIX s; NULL for crons
        last_fire_at REAL,
        last_run_id  INTEGER,
        last_status  TEXT,
        next_run_at  REAL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX schedules_plugin ON schedules(plugin_id)",
    # No foreign key on run_id: retention deletes old runs, and the history row must stay
    # (a gap in the history is the point of this table), with an id that no longer resolves.
    """
    CREATE TABLE schedule_fires (
        id          INTEGER PRIMARY KEY,
        schedule_id TEXT    NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
        fire_at     REAL    NOT NULL,
        status      TEXT    NOT NULL
                    CHECK (status IN ('fired', 'caught_up', 'missed', 'skipped')),
        run_id      INTEGER,
        detail      TEXT,                       -- why it was skipped
        recorded_at REAL    NOT NULL
    )
    """,
    # fire_history (newest first), prune_fire_history and the cascade from schedules.
    "CREATE INDEX schedule_fires_schedule ON schedule_fires(schedule_id, fire_at)",
)


def _migration_2(conn: sqlite3.Connection) -> None:
    """Schedules and their fire history (fired, caught up, missed, skipped)."""
    for statement in _SCHEMA_2:
        conn.execute(statement)


_SCHEMA_3 = (
    # What pytest reported besides a test's deciding phase: subtests, a teardown error
    # after a failed call (JSON list; see TestAttempt.reports).
    "ALTER TABLE attempts ADD COLUMN reports TEXT NOT NULL DEFAULT '[]'",
    # Seconds per phase and CPU seconds (JSON object), for duration suggestions.
    "ALTER TABLE attempts ADD COLUMN timings TEXT NOT NULL DEFAULT '{}'",
    # Category markers as ",security,integration," so one LIKE finds a category.
    "ALTER TABLE attempts ADD COLUMN categories TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE collected ADD COLUMN categories TEXT NOT NULL DEFAULT ''",
    # The failure pattern of a bad final result; patterns are a GROUP BY over it.
    "ALTER TABLE attempts ADD COLUMN signature TEXT NOT NULL DEFAULT ''",
    # Every failed attempt counts towards its pattern, a rerun's included.
    "CREATE INDEX attempts_signature ON attempts(signature, finished_at) WHERE signature != ''",
)


def _migration_3(conn: sqlite3.Connection) -> None:
    """Subtest and teardown reports, phase timings, categories and failure signatures."""
    for statement in _SCHEMA_3:
        conn.execute(statement)


def _migration_4(conn: sqlite3.Connection) -> None:
    """The process that made each run (see core.owner): a second process on the same
    file (``plexichat-desktop test`` beside the app) must not take the app's runs in
    flight for runs a stopped app left behind."""
    conn.execute("ALTER TABLE runs ADD COLUMN owner TEXT")


MIGRATIONS: list[Migration] = [_migration_1, _migration_2, _migration_3, _migration_4]
"""Migration ``i`` (0-based) takes the schema from version ``i`` to ``i + 1``.

Append only; never edit a released entry. Each one runs in its own transaction together with
the ``user_version`` bump, so a failed migration leaves the file at the previous version.
Statements are executed one by one (``executescript`` would commit behind our back).
"""


def schema_version() -> int:
    """The schema version this code writes (the number of migrations)."""
    return len(MIGRATIONS)


SCHEMA_VERSION = schema_version()


# ---------------------------------------------------------------------------------------
# Row conversion

_RUN_COLUMNS = ("plugin_id, selection, trigger, priority, status, queued_at, started_at, "
                "finished_at, exit_code, attempt, parent_run_id, schedule_id, error, counts")
_ATTEMPT_COLUMNS = ("run_id, plugin_id, nodeid, attempt, outcome, duration, phase, message, "
                    "longrepr, stdout, stderr, log, started_at, finished_at, reports, "
                    "timings, categories, signature")


def _run_params(run: RunRecord) -> tuple[Any, ...]:
    return (
        sanitise_text(run.plugin_id),
        None if run.selection is None else json.dumps(list(run.selection)),
        sanitise_text(run.trigger),
        int(Priority.parse(run.priority)),
        RunStatus(run.status).value,
        float(run.queued_at),
        run.started_at,
        run.finished_at,
        run.exit_code,
        int(run.attempt),
        run.parent_run_id,
        _nullable(run.schedule_id),
        None if run.error is None else clip_text(run.error, TEXT_CAP),
        json.dumps(dict(run.counts or {})),
    )


def _run_from_row(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        plugin_id=row["plugin_id"],
        id=row["id"],
        selection=None if row["selection"] is None else json.loads(row["selection"]),
        trigger=row["trigger"],
        priority=Priority(row["priority"]),
        status=RunStatus(row["status"]),
        queued_at=row["queued_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        exit_code=row["exit_code"],
        attempt=row["attempt"],
        parent_run_id=row["parent_run_id"],
        schedule_id=row["schedule_id"],
        error=row["error"],
        counts=json.loads(row["counts"] or "{}"),
    )


def _attempt_from_row(row: sqlite3.Row) -> TestAttempt:
    return TestAttempt(
        run_id=row["run_id"],
        plugin_id=row["plugin_id"],
        nodeid=row["nodeid"],
        outcome=Outcome(row["outcome"]),
        attempt=row["attempt"],
        duration=row["duration"],
        phase=row["phase"],
        message=row["message"],
        longrepr=row["longrepr"],
        stdout=row["stdout"],
        stderr=row["stderr"],
        log=row["log"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        reports=json.loads(row["reports"] or "[]"),
        timings=json.loads(row["timings"] or "{}"),
        categories=_split_categories(row["categories"]),
        signature=row["signature"],
    )


def _attempt_filter(first: str, *, plugin_id: str | None = None, nodeid: str | None = None,
                    category: str | None = None, since: float | None = None,
                    run_id: int | None = None, outcome: str | None = None
                    ) -> tuple[str, list[Any]]:
    """A WHERE clause over attempts (``first`` and every filter given) and its params."""
    clauses: list[str] = [first]
    params: list[Any] = []
    for column, value in (("plugin_id = ?", plugin_id), ("nodeid = ?", nodeid),
                          ("run_id = ?", None if run_id is None else int(run_id)),
                          ("outcome = ?", None if outcome is None else str(outcome)),
                          ("finished_at >= ?", None if since is None else float(since)),
                          ("categories LIKE ?",
                           None if category is None else f"%,{category},%")):
        if value is not None:
            clauses.append(column)
            params.append(value)
    return " AND ".join(clauses), params


def _join_categories(categories: Sequence[str]) -> str:
    return f",{','.join(sorted(set(categories)))}," if categories else ""


def _split_categories(text: str | None) -> list[str]:
    return [c for c in (text or "").split(",") if c]


def _reports_json(reports: Sequence[Mapping[str, Any]]) -> str:
    kept = [dict(r) for r in reports[:REPORTS_CAP]]
    dropped: dict[tuple[str, str], int] = {}
    for report in reports[REPORTS_CAP:]:
        key = (str(report.get("kind")), str(report.get("outcome")))
        dropped[key] = dropped.get(key, 0) + int(report.get("count", 1))
    # What is dropped still counts: one entry per kind and outcome carries the number.
    kept += [{"kind": kind, "label": None, "outcome": outcome, "count": n}
             for (kind, outcome), n in dropped.items()]
    clipped = [{key: clip_text(value, MESSAGE_CAP if key == "message" else TEXT_CAP // 4)
                if isinstance(value, str) else value for key, value in report.items()}
               for report in kept]
    return json.dumps(clipped)


def _local_midnight(day: dt.date) -> float:
    # mktime with isdst=-1 lets the C library pick the DST state, as SQLite's 'localtime'
    # does, so the window edges agree with the day labels SQLite computes.
    return time.mktime((day.year, day.month, day.day, 0, 0, 0, 0, 0, -1))


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


# ---------------------------------------------------------------------------------------
# The store


class ResultStore(SqliteDatabase):
    """Persistent history of test runs, per-test attempts and collected tests.

    Thread-safe; blocking. Open one per database file and share it between threads.
    """

    what = "test result database"
    retention_batch: int = RETENTION_BATCH
    """Runs deleted per transaction by :meth:`enforce_retention`."""

    def __init__(self, path: Path):
        """Open (or create) the database at ``path`` and bring its schema up to date.

        Raises :class:`SchemaVersionError` when the file comes from a newer app version.
        """
        # Long writers (retention) commit in batches so readers never wait long.
        super().__init__(path, MIGRATIONS)

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        """Lock + one write transaction; rolls back on any error."""
        return self.transaction(write=True)

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        """Lock + one read transaction, so several queries see the same snapshot."""
        return self.transaction(write=False)

    # -- runs -----------------------------------------------------------------------------

    def create_run(self, run: RunRecord) -> int:
        """Insert ``run``, set ``run.id`` and return it."""
        if run.id is not None:
            raise ValueError(f"run {run.id} is already stored; use update_run")
        with self._write() as conn:
            cursor = conn.execute(
                f"INSERT INTO runs ({_RUN_COLUMNS}, owner) VALUES ({', '.join('?' * 15)})",
                (*_run_params(run), this_process()))
            run.id = int(cursor.lastrowid)  # type: ignore[arg-type]
        return run.id

    def update_run(self, run: RunRecord) -> None:
        """Write every field of ``run`` except its id; raise ``KeyError`` if it is gone."""
        if run.id is None:
            raise ValueError("run has no id; use create_run first")
        assignments = ", ".join(f"{column.strip()} = ?" for column in _RUN_COLUMNS.split(","))
        with self._write() as conn:
            cursor = conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?",
                                  (*_run_params(run), run.id))
            if cursor.rowcount == 0:
                raise KeyError(f"run {run.id} is not in the store")

    def get_run(self, run_id: int) -> RunRecord | None:
        """The run with this id, or ``None``."""
        with self._read() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else _run_from_row(row)

    def list_runs(self, plugin_id: str | None = None, limit: int = 50, offset: int = 0,
                  status: RunStatus | None = None) -> list[RunRecord]:
        """Runs, newest queued first, optionally of one plugin and/or in one status."""
        where, params = self._run_filter(plugin_id, status)
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT * FROM runs {where} ORDER BY queued_at DESC, id DESC "
                f"LIMIT ? OFFSET ?", (*params, int(limit), int(offset))).fetchall()
        return [_run_from_row(row) for row in rows]

    def count_runs(self, plugin_id: str | None = None) -> int:
        """How many runs are stored (of one plugin, or all)."""
        where, params = self._run_filter(plugin_id, None)
        with self._read() as conn:
            return conn.execute(f"SELECT COUNT(*) FROM runs {where}",
                                      params).fetchone()[0]

    @staticmethod
    def _run_filter(plugin_id: str | None,
                    status: RunStatus | None) -> tuple[str, tuple[Any, ...]]:
        clauses: list[str] = []
        params: list[Any] = []
        if plugin_id is not None:
            clauses.append("plugin_id = ?")
            params.append(plugin_id)
        if status is not None:
            clauses.append("status = ?")
            params.append(RunStatus(status).value)
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)

    def last_run_id(self) -> int:
        """The highest run id ever given (0 for none); ids are never reused."""
        with self._read() as conn:
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'runs'").fetchone()
        return int(row[0]) if row is not None else 0

    def mark_interrupted(self, reason: str = "the app stopped while this run was going",
                         up_to: int | None = None) -> int:
        """Mark every queued or running run (with ``up_to``: of those, the ones whose id is
        at most that) whose process is gone as interrupted; return how many.

        Meant for start-up: a run left unfinished by a process that stopped. The runs of
        a process still running (the app, while ``plexichat-desktop test`` starts on the
        same file) are its own to finish. Sets ``finished_at`` to now and ``error`` to
        ``reason``; attempts already stored stay.
        """
        with self._write() as conn:
            rows = conn.execute(
                f"SELECT id, owner FROM runs WHERE status IN {_UNFINISHED_SQL} AND id <= ?",
                (up_to if up_to is not None else SQLITE_INT_MAX,)).fetchall()
            gone = [(row["id"],) for row in rows
                    if row["owner"] == this_process() or not is_running(row["owner"])]
            conn.executemany(
                "UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE id = ?",
                [(RunStatus.INTERRUPTED.value, time.time(), clip_text(reason, TEXT_CAP),
                  run_id) for (run_id,) in gone])
            return len(gone)

    # -- attempts -------------------------------------------------------------------------

    def add_attempts(self, attempts: Sequence[TestAttempt]) -> None:
        """Store attempts in one transaction.

        Text is sanitised (see :func:`sanitise_text`) and clipped: ``message`` to
        :data:`MESSAGE_CAP`, ``longrepr``/``stdout``/``stderr``/``log`` to :data:`TEXT_CAP`
        UTF-8 bytes each, ending with :data:`TRUNCATION_MARKER`. Attempts of one test may
        arrive in any order and over several calls; which attempt is final is recomputed.
        The runs must exist (``sqlite3.IntegrityError`` otherwise).
        """
        if not attempts:
            return
        groups: dict[tuple[int, str], list[tuple[Any, ...]]] = {}
        for a in attempts:
            row = (
                int(a.run_id), sanitise_text(a.plugin_id), sanitise_text(a.nodeid),
                int(a.attempt), Outcome(a.outcome).value, float(a.duration or 0.0),
                _nullable(a.phase), clip_text(a.message, MESSAGE_CAP),
                clip_text(a.longrepr), clip_text(a.stdout), clip_text(a.stderr),
                clip_text(a.log), float(a.started_at), float(a.finished_at),
                _reports_json(a.reports), json.dumps(dict(a.timings)),
                _join_categories(a.categories), sanitise_text(a.signature),
            )
            groups.setdefault((row[0], row[2]), []).append(row)

        inserts: list[tuple[Any, ...]] = []
        clear_final: list[tuple[int]] = []
        set_flaky: list[tuple[int, int]] = []
        with self._write() as conn:
            for (run_id, nodeid), new in groups.items():
                old = conn.execute(
                    "SELECT id, attempt, outcome, is_final, flaky FROM attempts "
                    "WHERE run_id = ? AND nodeid = ?", (run_id, nodeid)).fetchall()
                outcomes = [r["outcome"] for r in old] + [r[4] for r in new]
                best_new = max(range(len(new)), key=lambda i: (new[i][3], i))
                old_final = next((r for r in old if r["is_final"]), None)
                # New rows get higher ids than old ones, so they win ties in attempt number.
                new_wins = old_final is None or new[best_new][3] >= old_final["attempt"]
                if new_wins:
                    final_outcome = new[best_new][4]
                    final_index = len(old) + best_new
                else:
                    assert old_final is not None  # new_wins when there is none
                    final_outcome = old_final["outcome"]
                    final_index = next(i for i, r in enumerate(old) if r["is_final"])
                flaky = int(passed_on_retry(
                    final_outcome, (o for i, o in enumerate(outcomes) if i != final_index)))
                for i, row in enumerate(new):
                    final = new_wins and i == best_new
                    inserts.append((*row, int(final), flaky if final else 0))
                # Touch old rows only when their flags change: an UPDATE rewrites the whole
                # row, overflow pages of a 64 KiB traceback included.
                if old_final is not None and new_wins:
                    clear_final.append((old_final["id"],))
                elif old_final is not None and old_final["flaky"] != flaky:
                    set_flaky.append((flaky, old_final["id"]))
            conn.executemany("UPDATE attempts SET is_final = 0, flaky = 0 WHERE id = ?",
                             clear_final)
            conn.executemany("UPDATE attempts SET flaky = ? WHERE id = ?", set_flaky)
            conn.executemany(
                f"INSERT INTO attempts ({_ATTEMPT_COLUMNS}, is_final, flaky) "
                f"VALUES ({', '.join('?' * 20)})", inserts)

    def attempts_for_run(self, run_id: int) -> list[TestAttempt]:
        """Every attempt of a run, in insertion order."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE run_id = ? ORDER BY id",
                (run_id,)).fetchall()
        return [_attempt_from_row(row) for row in rows]

    def test_history(self, plugin_id: str, nodeid: str, limit: int = 30) -> list[TestAttempt]:
        """The newest ``limit`` attempts of one test, retries included, newest first."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE plugin_id = ? AND nodeid = ? "
                f"ORDER BY finished_at DESC, id DESC LIMIT ?",
                (plugin_id, nodeid, int(limit))).fetchall()
        return [_attempt_from_row(row) for row in rows]

    def last_results(self, plugin_id: str) -> dict[str, TestAttempt]:
        """The latest result of each test of a plugin, keyed by node id.

        For each test: its final attempt (highest attempt number) in the newest run (highest
        run id) that has an attempt of it. Tests no longer collected are included too.
        """
        with self._read() as conn:
            rows = conn.execute(
                f"""
                WITH latest AS (
                    SELECT nodeid, MAX(run_id) AS run_id FROM attempts
                    WHERE is_final = 1 AND plugin_id = ? GROUP BY nodeid
                )
                SELECT {', '.join('a.' + c.strip() for c in _ATTEMPT_COLUMNS.split(','))}
                FROM latest JOIN attempts AS a
                  ON a.run_id = latest.run_id AND a.nodeid = latest.nodeid
                WHERE a.is_final = 1
                """, (plugin_id,)).fetchall()
        return {row["nodeid"]: _attempt_from_row(row) for row in rows}

    def recent_results(self, plugin_id: str | None = None, outcome: str | None = None,
                       limit: int = 50, offset: int = 0, category: str | None = None,
                       run_id: int | None = None) -> tuple[list[TestAttempt], int]:
        """Final results, newest first, filtered before the limit; with the filtered total."""
        clause, params = _attempt_filter("is_final = 1", plugin_id=plugin_id,
                                         category=category, run_id=run_id, outcome=outcome)
        with self._read() as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM attempts WHERE {clause}",
                                 params).fetchone()[0]
            rows = conn.execute(
                f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE {clause} "
                "ORDER BY finished_at DESC, id DESC LIMIT ? OFFSET ?",
                [*params, int(limit), int(offset)]).fetchall()
        return [_attempt_from_row(row) for row in rows], int(total)

    # -- collected tests --------------------------------------------------------------------

    def replace_collected(self, plugin_id: str, tests: Sequence[CollectedTest]) -> None:
        """Make ``tests`` the plugin's collected tests, in this order.

        Tests that stay keep their ``first_seen``; every listed test gets ``last_seen`` =
        now; tests no longer listed are removed.
        """
        for test in tests:
            if test.plugin_id != plugin_id:
                raise ValueError(f"{test.nodeid!r} belongs to {test.plugin_id!r}, "
                                 f"not {plugin_id!r}")
        now = time.time()
        rows = [(plugin_id, sanitise_text(t.nodeid), sanitise_text(t.file), t.line,
                 sanitise_text(t.name), _nullable(t.cls), _join_categories(t.categories),
                 position, now, now)
                for position, t in enumerate(tests)]
        keep = {row[1] for row in rows}
        with self._write() as conn:
            stored = [r[0] for r in conn.execute(
                "SELECT nodeid FROM collected WHERE plugin_id = ?", (plugin_id,))]
            conn.executemany("DELETE FROM collected WHERE plugin_id = ? AND nodeid = ?",
                             [(plugin_id, n) for n in stored if n not in keep])
            conn.executemany(
                """
                INSERT INTO collected
                    (plugin_id, nodeid, file, line, name, cls, categories, position,
                     first_seen, last_seen)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (plugin_id, nodeid) DO UPDATE SET
                    file = excluded.file, line = excluded.line, name = excluded.name,
                    cls = excluded.cls, categories = excluded.categories,
                    position = excluded.position, last_seen = excluded.last_seen
                """, rows)

    def collected(self, plugin_id: str | None = None) -> list[CollectedTest]:
        """Collected tests of one plugin (or all, grouped by plugin) in collection order."""
        sql = "SELECT plugin_id, nodeid, file, line, name, cls, categories FROM collected"
        params: tuple[Any, ...] = ()
        if plugin_id is not None:
            sql += " WHERE plugin_id = ?"
            params = (plugin_id,)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY plugin_id, position", params).fetchall()
        return [CollectedTest(plugin_id=r["plugin_id"], nodeid=r["nodeid"], file=r["file"],
                              line=r["line"], name=r["name"], cls=r["cls"],
                              categories=_split_categories(r["categories"])) for r in rows]

    def collected_seen(self, plugin_id: str) -> dict[str, tuple[float, float]]:
        """``nodeid -> (first_seen, last_seen)`` for a plugin's collected tests.

        Separate from :meth:`collected` because :class:`CollectedTest` has no such fields.
        """
        with self._read() as conn:
            rows = conn.execute(
                "SELECT nodeid, first_seen, last_seen FROM collected WHERE plugin_id = ?",
                (plugin_id,)).fetchall()
        return {r["nodeid"]: (r["first_seen"], r["last_seen"]) for r in rows}

    # -- statistics -----------------------------------------------------------------------

    @staticmethod
    def _final_filter(plugin_id: str | None, nodeid: str | None,
                      since: float | None, category: str | None = None
                      ) -> tuple[str, list[Any]]:
        # "is_final = 1" spelled literally: SQLite only uses a partial index when the query
        # repeats its WHERE term.
        return _attempt_filter("is_final = 1", plugin_id=plugin_id, nodeid=nodeid,
                               since=since, category=category)

    def statistics(self, plugin_id: str | None = None, nodeid: str | None = None,
                   since: float | None = None, category: str | None = None
                   ) -> dict[str, Any]:
        """Aggregate final results of a scope: everything, one plugin, or one test.

        ``since`` keeps results (and, for ``runs``, runs queued) at or after that time;
        ``category`` keeps results of tests with that category marker.
        Returns a dict with:

        * ``total``: number of final results (one per test per run);
        * ``counts``: ``{outcome value: n}`` for every :class:`Outcome`, zeros included;
        * ``success_rate``: successes / (total - skipped - not_run), 0..1, ``None`` when
          nothing ran;
        * ``mean_duration``, ``p95_duration``: seconds over final results that ran (all but
          ``not_run``); p95 by nearest rank (the ceil(0.95 n)-th smallest); ``None`` if none;
        * ``flaky_rate``: flaky final results / total, ``None`` when total is 0;
        * ``last_green``: for a plugin or everything, ``finished_at`` of the newest run with
          status ``passed``; for one test, ``finished_at`` of its newest successful final
          result; ``None`` if never. Not limited by ``since``;
        * ``runs``: runs in scope that have ended (for one test: runs with a result of it).
        """
        where, params = self._final_filter(plugin_id, nodeid, since, category)
        with self._read() as conn:
            rows = conn.execute(
                f"""
                SELECT outcome, COUNT(*) AS n, SUM(flaky) AS flaky,
                       TOTAL(duration) AS duration
                FROM attempts WHERE {where} GROUP BY outcome
                """, params).fetchall()
            counts = {o.value: 0 for o in Outcome}
            flaky = 0
            duration_sum = 0.0
            for row in rows:
                counts[row["outcome"]] = row["n"]
                flaky += row["flaky"]
                if row["outcome"] != Outcome.NOT_RUN:
                    duration_sum += row["duration"]
            total = sum(counts.values())
            ran = total - counts[Outcome.NOT_RUN]
            decided = ran - counts[Outcome.SKIPPED]
            successes = sum(counts[o] for o in SUCCESS_OUTCOMES)

            p95 = None
            if ran:
                # Nearest rank k = ceil(0.95 n). Counting from the top (OFFSET n - k, DESC)
                # lets SQLite's LIMIT sorter keep ~5% of the rows instead of 95%.
                rank = (95 * ran + 99) // 100
                p95 = conn.execute(
                    f"SELECT duration FROM attempts WHERE {where} AND outcome != 'not_run' "
                    f"ORDER BY duration DESC LIMIT 1 OFFSET ?",
                    (*params, ran - rank)).fetchone()[0]

            if nodeid is not None:
                green_where, green_params = self._final_filter(plugin_id, nodeid, None)
                last_green = conn.execute(
                    f"SELECT MAX(finished_at) FROM attempts "
                    f"WHERE {green_where} AND outcome IN {_SUCCESS_SQL}",
                    green_params).fetchone()[0]
                runs = total
            else:
                where_runs, run_params = self._run_filter(plugin_id, None)
                green_where = (where_runs + " AND " if where_runs else "WHERE ") + "status = ?"
                last_green = conn.execute(
                    f"SELECT MAX(finished_at) FROM runs {green_where}",
                    (*run_params, RunStatus.PASSED.value)).fetchone()[0]
                if since is not None:
                    where_runs = (where_runs + " AND " if where_runs else "WHERE ") + \
                        "queued_at >= ?"
                    run_params = (*run_params, float(since))
                # Ended runs only: the cards say "final results of N runs", and a run
                # still queued or going has none yet.
                where_runs = (where_runs + " AND " if where_runs else "WHERE ") + \
                    f"status NOT IN {_UNFINISHED_SQL}"
                runs = conn.execute(f"SELECT COUNT(*) FROM runs {where_runs}",
                                    run_params).fetchone()[0]

        return {
            "total": total,
            "counts": counts,
            "success_rate": _ratio(successes, decided),
            "mean_duration": duration_sum / ran if ran else None,
            "p95_duration": p95,
            "flaky_rate": _ratio(flaky, total),
            "last_green": last_green,
            "runs": runs,
        }

    def daily_trend(self, plugin_id: str | None = None, nodeid: str | None = None,
                    days: int = 30, now: float | None = None) -> list[dict[str, Any]]:
        """Final results per local calendar day, oldest first, one row for each of the
        ``days`` days ending with today (days without results included, with zeros).

        Days are in the machine's local time zone (SQLite ``'localtime'``; see the module
        docstring). Each row: ``day`` ("YYYY-MM-DD"), ``total``, ``passed`` (passed, xfailed
        and xpassed), ``failed`` (failed, error, timed_out, crashed), ``skipped``
        (skipped and not_run), ``success_rate`` (passed / (passed + failed), ``None`` when
        both are 0) and ``mean_duration`` (of results that ran, ``None`` if none).
        """
        if days < 1:
            return []
        now = time.time() if now is None else float(now)
        today = dt.date.fromtimestamp(now)
        first = today - dt.timedelta(days=days - 1)
        start = _local_midnight(first)
        end = _local_midnight(today + dt.timedelta(days=1))
        where, params = self._final_filter(plugin_id, nodeid, None)
        with self._read() as conn:
            rows = conn.execute(
                f"""
                SELECT date(finished_at, 'unixepoch', 'localtime') AS day,
                       COUNT(*) AS total,
                       SUM(outcome IN {_SUCCESS_SQL}) AS passed,
                       SUM(outcome IN {_BAD_SQL}) AS failed,
                       SUM(outcome IN {_NEUTRAL_SQL}) AS skipped,
                       TOTAL(CASE WHEN outcome != 'not_run' THEN duration END) AS duration,
                       SUM(outcome != 'not_run') AS ran
                FROM attempts
                WHERE {where} AND finished_at >= ? AND finished_at < ?
                GROUP BY day
                """, (*params, start, end)).fetchall()
        by_day = {row["day"]: row for row in rows}
        trend = []
        for offset in range(days):
            day = (first + dt.timedelta(days=offset)).isoformat()
            row = by_day.get(day)
            if row is None:
                trend.append({"day": day, "total": 0, "passed": 0, "failed": 0, "skipped": 0,
                              "success_rate": None, "mean_duration": None})
                continue
            trend.append({
                "day": day,
                "total": row["total"],
                "passed": row["passed"],
                "failed": row["failed"],
                "skipped": row["skipped"],
                "success_rate": _ratio(row["passed"], row["passed"] + row["failed"]),
                "mean_duration": row["duration"] / row["ran"] if row["ran"] else None,
            })
        return trend

    def flip_rate(self, plugin_id: str, nodeid: str, window: int = 30) -> float | None:
        """How often a test switches between success and failure, 0..1.

        Over its newest ``window`` final results that are a success or a failure (skipped
        and not_run are left out before counting), the number of switches between
        consecutive results divided by (n - 1). ``None`` with fewer than two results.
        """
        with self._read() as conn:
            row = conn.execute(
                f"""
                WITH recent AS (
                    SELECT outcome IN {_SUCCESS_SQL} AS ok, finished_at, run_id
                    FROM attempts
                    WHERE is_final = 1 AND plugin_id = ? AND nodeid = ?
                      AND outcome NOT IN {_NEUTRAL_SQL}
                    ORDER BY finished_at DESC, run_id DESC LIMIT ?
                ), paired AS (
                    SELECT ok, LAG(ok) OVER (ORDER BY finished_at, run_id) AS previous
                    FROM recent
                )
                SELECT COUNT(*) AS n, TOTAL(ok != previous) AS flips FROM paired
                """, (plugin_id, nodeid, int(window))).fetchone()
        n = row["n"]
        return row["flips"] / (n - 1) if n >= 2 else None

    # -- retention ------------------------------------------------------------------------

    def enforce_retention(self, max_age_days: float | None, max_runs_per_plugin: int | None,
                          now: float | None = None) -> int:
        """Delete old runs (their attempts go with them); return how many runs went.

        A run goes when it was queued more than ``max_age_days`` ago, or when it is not
        among the ``max_runs_per_plugin`` newest runs of its plugin (queued or running runs
        count towards that number). Queued and running runs are never deleted. ``None``
        disables a rule. Works in transactions of :attr:`retention_batch` runs, releasing
        the lock in between, so other threads and processes are never held up for long.
        """
        rules: list[str] = []
        params: list[Any] = []
        if max_age_days is not None:
            now = time.time() if now is None else float(now)
            rules.append("queued_at < ?")
            params.append(now - float(max_age_days) * 86400.0)
        if max_runs_per_plugin is not None:
            rules.append("""id IN (SELECT id FROM (
                SELECT id, ROW_NUMBER() OVER (
                    PARTITION BY plugin_id ORDER BY queued_at DESC, id DESC) AS position
                FROM runs) WHERE position > ?)""")
            params.append(max(int(max_runs_per_plugin), 0))
        if not rules:
            return 0
        select = (f"SELECT id FROM runs WHERE status NOT IN {_UNFINISHED_SQL} "
                  f"AND ({' OR '.join(rules)}) LIMIT ?")
        deleted = 0
        while True:
            with self._write() as conn:
                ids = [r[0] for r in conn.execute(select, (*params, self.retention_batch))]
                if ids:
                    conn.execute(f"DELETE FROM runs WHERE id IN ({', '.join('?' * len(ids))})",
                                 ids)
            deleted += len(ids)
            if len(ids) < self.retention_batch:
                return deleted

    # -- analytics ------------------------------------------------------------------------

    def failure_groups(self, plugin_id: str | None = None, category: str | None = None,
                       since: float | None = None, new_since_run: int | None = None,
                       limit: int = 50) -> list[FailurePattern]:
        """Failures grouped by signature (every failed attempt, reruns included), newest
        group first. ``new_since_run`` keeps groups first seen in a later run."""
        clause, params = _attempt_filter("signature != ''", plugin_id=plugin_id,
                                         category=category, since=since)
        having, having_params = "", []
        if new_since_run is not None:
            having, having_params = "HAVING MIN(run_id) > ?", [int(new_since_run)]
        out: list[FailurePattern] = []
        with self._read() as conn:
            groups = conn.execute(
                f"""
                SELECT signature, COUNT(*) AS n, MIN(finished_at) AS first_seen,
                       MAX(finished_at) AS last_seen, MIN(run_id) AS first_run,
                       MAX(run_id) AS last_run,
                       COUNT(DISTINCT plugin_id || '::' || nodeid) AS tests
                FROM attempts WHERE {clause} GROUP BY signature {having}
                ORDER BY last_seen DESC LIMIT ?
                """, [*params, *having_params, int(limit)]).fetchall()
            for group in groups:
                members = conn.execute(
                    f"""
                    SELECT plugin_id, nodeid, MAX(finished_at) AS last FROM attempts
                    WHERE {clause} AND signature = ? GROUP BY plugin_id, nodeid
                    ORDER BY last DESC LIMIT 20
                    """, [*params, group["signature"]]).fetchall()
                newest = conn.execute(
                    f"""
                    SELECT run_id, plugin_id, nodeid, message, finished_at FROM attempts
                    WHERE {clause} AND signature = ? ORDER BY finished_at DESC, id DESC
                    LIMIT 1
                    """, [*params, group["signature"]]).fetchone()
                out.append(FailurePattern(
                    id=pattern_id(group["signature"]), signature=group["signature"],
                    count=group["n"], tests=[f"{m['plugin_id']}::{m['nodeid']}"
                                             for m in members],
                    tests_affected=group["tests"],
                    plugins=sorted({m["plugin_id"] for m in members}),
                    first_seen=group["first_seen"], last_seen=group["last_seen"],
                    first_run_id=group["first_run"], last_run_id=group["last_run"],
                    example=dict(newest)))
        return out

    def duration_history(self, plugin_id: str | None = None, window: int = 30
                         ) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """``(plugin, nodeid) -> newest final results first`` (duration, timings, run
        id, outcome), at most ``window`` per test, for tests that ran."""
        where, params = "is_final = 1 AND outcome != 'not_run'", []
        if plugin_id is not None:
            where += " AND plugin_id = ?"
            params.append(plugin_id)
        with self._read() as conn:
            rows = conn.execute(
                f"""
                SELECT plugin_id, nodeid, run_id, outcome, duration, timings FROM (
                    SELECT plugin_id, nodeid, run_id, outcome, duration, timings,
                           ROW_NUMBER() OVER (PARTITION BY plugin_id, nodeid
                                              ORDER BY finished_at DESC, run_id DESC) AS n
                    FROM attempts WHERE {where})
                WHERE n <= ? ORDER BY plugin_id, nodeid, n
                """, [*params, max(1, int(window))]).fetchall()
        out: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            out.setdefault((row["plugin_id"], row["nodeid"]), []).append(
                {"run_id": row["run_id"], "outcome": row["outcome"],
                 "duration": row["duration"], "timings": json.loads(row["timings"] or "{}")})
        return out

    def run_durations(self, plugin_id: str | None = None, per_plugin: int = 10
                      ) -> dict[str, list[float]]:
        """``plugin -> durations (s) of its newest finished whole-suite runs``, newest
        first."""
        where, params = "started_at IS NOT NULL AND finished_at IS NOT NULL " \
                        "AND selection IS NULL AND status IN ('passed', 'failed')", []
        if plugin_id is not None:
            where += " AND plugin_id = ?"
            params.append(plugin_id)
        with self._read() as conn:
            rows = conn.execute(
                f"""
                SELECT plugin_id, took FROM (
                    SELECT plugin_id, finished_at - started_at AS took,
                           ROW_NUMBER() OVER (PARTITION BY plugin_id ORDER BY id DESC) AS n
                    FROM runs WHERE {where})
                WHERE n <= ? ORDER BY plugin_id, n
                """, [*params, max(1, int(per_plugin))]).fetchall()
        out: dict[str, list[float]] = {}
        for row in rows:
            out.setdefault(row["plugin_id"], []).append(float(row["took"]))
        return out

    # -- dashboards -----------------------------------------------------------------------

    def test_summaries(self, plugin_id: str, window: int = 30) -> dict[str, dict[str, Any]]:
        """What a dashboard row shows for each test of a plugin, without the big text.

        ``nodeid -> dict`` with, of the test's newest final result (newest ``finished_at``,
        then highest run id): ``run_id``, ``outcome``, ``duration``, ``finished_at``,
        ``flaky`` (bool) and ``message`` (only for a failure, else ``""``); and over its
        newest ``window`` final results: ``recent_flaky`` (how many were flaky), ``flips``
        (switches between success and failure, skipped and not_run left out as in
        :meth:`flip_rate`) and ``decided`` (how many were a success or a failure).
        Tests no longer collected are included, as in :meth:`last_results`.
        """
        window = max(1, int(window))
        with self._read() as conn:
            # The partition order is the covering index's own (plugin_id, nodeid,
            # finished_at, run_id): no sort, and no table row is read.
            rows = conn.execute(
                """
                SELECT nodeid, run_id, outcome, duration, finished_at, flaky FROM (
                    SELECT nodeid, run_id, outcome, duration, finished_at, flaky,
                           ROW_NUMBER() OVER (PARTITION BY nodeid
                                              ORDER BY finished_at DESC, run_id DESC) AS n
                    FROM attempts WHERE is_final = 1 AND plugin_id = ?)
                WHERE n <= ? ORDER BY nodeid, n
                """, (plugin_id, window)).fetchall()
            out: dict[str, dict[str, Any]] = {}
            history: dict[str, list[str]] = {}
            for row in rows:
                nodeid = row["nodeid"]
                summary = out.get(nodeid)
                if summary is None:
                    summary = out[nodeid] = {
                        "run_id": row["run_id"], "outcome": row["outcome"],
                        "duration": row["duration"], "finished_at": row["finished_at"],
                        "flaky": bool(row["flaky"]), "message": "", "recent_flaky": 0,
                        "flips": 0, "decided": 0}
                summary["recent_flaky"] += row["flaky"]
                history.setdefault(nodeid, []).append(row["outcome"])
            for nodeid, outcomes in history.items():
                out[nodeid]["flips"], out[nodeid]["decided"] = flips(outcomes)
            # Messages of failures only: the message column is the first not in the index.
            failing = [(s["run_id"], nodeid) for nodeid, s in out.items()
                       if s["outcome"] in BAD_OUTCOMES]
            for start in range(0, len(failing), 400):
                chunk = failing[start:start + 400]
                pairs = " OR ".join("(run_id = ? AND nodeid = ?)" for _ in chunk)
                for row in conn.execute(
                        f"SELECT nodeid, message FROM attempts "
                        f"WHERE is_final = 1 AND ({pairs})",
                        [value for pair in chunk for value in pair]):
                    out[row["nodeid"]]["message"] = row["message"]
        return out
