"""The plugin's own SQLite store: what the user configured, the job history, the
notifications, alert states and what is known about each backup (origin, checks).

Configured objects (schedules, off-site targets, windows, the maintenance plan, the
health watch) are JSON documents validated by their pydantic models on the way in.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (kind, id));
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, name TEXT NOT NULL,
    trigger TEXT NOT NULL, source_id TEXT, started_at REAL NOT NULL, finished_at REAL,
    status TEXT NOT NULL, summary TEXT NOT NULL DEFAULT '', details TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS history_time ON history(started_at);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, level TEXT NOT NULL,
    title TEXT NOT NULL, message TEXT NOT NULL, source TEXT NOT NULL DEFAULT '',
    suppressed INTEGER NOT NULL DEFAULT 0, read INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS alerts (
    key TEXT PRIMARY KEY, state TEXT NOT NULL, severity TEXT NOT NULL,
    message TEXT NOT NULL, since REAL NOT NULL, checked_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS catalog (
    backup_id TEXT PRIMARY KEY, origin TEXT NOT NULL, source_id TEXT,
    data TEXT NOT NULL DEFAULT '{}');
"""

HISTORY_KEEP = 2000
NOTIFICATIONS_KEEP = 500


class Store:
    """Thread-safe access to ``system_manager.sqlite3`` (WAL, one connection)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # -- configured objects -----------------------------------------------------------
    def put(self, kind: str, data: dict[str, Any], object_id: str | None = None) -> str:
        object_id = object_id or uuid.uuid4().hex[:12]
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO objects (kind, id, data, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (kind, id) DO UPDATE SET data = excluded.data",
                (kind, object_id, json.dumps(data), time.time()))
        return object_id

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT data FROM objects WHERE kind = ? AND id = ?",
                          (kind, object_id))
        return json.loads(rows[0]["data"]) if rows else None

    def all(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        rows = self._rows("SELECT id, data FROM objects WHERE kind = ? ORDER BY created_at, id",
                          (kind,))
        return [(r["id"], json.loads(r["data"])) for r in rows]

    def delete(self, kind: str, object_id: str) -> bool:
        with self._tx() as conn:
            return conn.execute("DELETE FROM objects WHERE kind = ? AND id = ?",
                                (kind, object_id)).rowcount > 0

    # -- history ------------------------------------------------------------------------
    def begin(self, kind: str, name: str, trigger: str, source_id: str | None = None) -> int:
        with self._tx() as conn:
            cursor = conn.execute(
                "INSERT INTO history (kind, name, trigger, source_id, started_at, status) "
                "VALUES (?, ?, ?, ?, ?, 'running')", (kind, name, trigger, source_id,
                                                      time.time()))
            conn.execute("DELETE FROM history WHERE id <= ?",
                         (int(cursor.lastrowid or 0) - HISTORY_KEEP,))
            return int(cursor.lastrowid or 0)

    def finish(self, entry_id: int, status: str, summary: str,
               details: dict[str, Any] | None = None) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE history SET status = ?, summary = ?, details = ?, "
                         "finished_at = ? WHERE id = ?",
                         (status, summary, json.dumps(details or {}, default=str),
                          time.time(), entry_id))

    def record(self, kind: str, name: str, trigger: str, status: str, summary: str,
               source_id: str | None = None, details: dict[str, Any] | None = None) -> int:
        """A history entry that starts and ends at once (a skipped fire, say)."""
        entry = self.begin(kind, name, trigger, source_id)
        self.finish(entry, status, summary, details)
        return entry

    def history(self, limit: int = 100, kind: str | None = None,
                source_id: str | None = None) -> list[dict[str, Any]]:
        clauses, params = [], []
        if kind:
            clauses.append("kind = ?")
            params.append(kind)
        if source_id:
            clauses.append("source_id = ?")
            params.append(source_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._rows(f"SELECT * FROM history {where} ORDER BY id DESC LIMIT ?",
                          (*params, limit))
        return [{**dict(r), "details": json.loads(r["details"] or "{}")} for r in rows]

    def last_finished(self, kind: str, source_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM history WHERE kind = ? AND source_id = ? AND "
                          "status IN ('succeeded', 'failed') ORDER BY id DESC LIMIT 1",
                          (kind, source_id))
        return dict(rows[0]) if rows else None

    def count(self, kind: str, source_id: str, status: str) -> int:
        """How many history entries of ``source_id`` ended with ``status``."""
        rows = self._rows("SELECT COUNT(*) AS n FROM history WHERE kind = ? AND "
                          "source_id = ? AND status = ?", (kind, source_id, status))
        return int(rows[0]["n"])

    def interrupted(self) -> int:
        """Entries left 'running' by an app that stopped: marked interrupted."""
        with self._tx() as conn:
            return conn.execute(
                "UPDATE history SET status = 'interrupted', finished_at = started_at, "
                "summary = 'the app stopped while it ran' WHERE status = 'running'").rowcount

    # -- notifications --------------------------------------------------------------------
    def notify(self, level: str, title: str, message: str, source: str = "",
               suppressed: bool = False) -> dict[str, Any]:
        now = time.time()
        with self._tx() as conn:
            cursor = conn.execute(
                "INSERT INTO notifications (at, level, title, message, source, suppressed, "
                "read) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (now, level, title, message, source, int(suppressed), int(suppressed)))
            new_id = int(cursor.lastrowid or 0)
            conn.execute("DELETE FROM notifications WHERE id <= ?",
                         (new_id - NOTIFICATIONS_KEEP,))
        return {"id": new_id, "at": now, "level": level, "title": title, "message": message,
                "source": source, "suppressed": suppressed, "read": suppressed}

    def notifications(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM notifications ORDER BY id DESC LIMIT ?", (limit,))
        return [{**dict(r), "suppressed": bool(r["suppressed"]), "read": bool(r["read"])}
                for r in rows]

    def unread(self) -> int:
        return int(self._rows("SELECT COUNT(*) AS n FROM notifications WHERE read = 0")[0]["n"])

    def mark_read(self) -> int:
        with self._tx() as conn:
            return conn.execute("UPDATE notifications SET read = 1 WHERE read = 0").rowcount

    # -- alerts --------------------------------------------------------------------------
    def alerts(self) -> dict[str, dict[str, Any]]:
        return {r["key"]: dict(r) for r in self._rows("SELECT * FROM alerts")}

    def set_alert(self, key: str, state: str, severity: str, message: str, since: float
                  ) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO alerts (key, state, severity, message, since, checked_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET state = "
                "excluded.state, severity = excluded.severity, message = excluded.message, "
                "since = excluded.since, checked_at = excluded.checked_at",
                (key, state, severity, message, since, time.time()))

    # -- catalog -------------------------------------------------------------------------
    def catalog(self) -> dict[str, dict[str, Any]]:
        rows = self._rows("SELECT * FROM catalog")
        return {r["backup_id"]: {"origin": r["origin"], "source_id": r["source_id"],
                                 **json.loads(r["data"] or "{}")} for r in rows}

    def catalog_entry(self, backup_id: str) -> dict[str, Any]:
        return self.catalog().get(backup_id, {})

    def remember(self, backup_id: str, origin: str | None = None,
                 source_id: str | None = None, **data: Any) -> None:
        """Add or update what is known about a backup (``data`` is merged)."""
        with self._tx() as conn:
            row = conn.execute("SELECT origin, source_id, data FROM catalog WHERE "
                               "backup_id = ?", (backup_id,)).fetchone()
            merged = {**(json.loads(row["data"]) if row else {}), **data}
            conn.execute(
                "INSERT INTO catalog (backup_id, origin, source_id, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (backup_id) DO UPDATE SET origin = excluded.origin, "
                "source_id = excluded.source_id, data = excluded.data",
                (backup_id, origin or (row["origin"] if row else "other"),
                 source_id if source_id is not None else (row["source_id"] if row else None),
                 json.dumps(merged, default=str)))

    def forget(self, backup_id: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM catalog WHERE backup_id = ?", (backup_id,))
