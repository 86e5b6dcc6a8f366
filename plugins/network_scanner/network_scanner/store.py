"""The scan history: SQLite (WAL) in the plugin's data dir.

One row per scan with its summary columns (for the list) and the whole result as JSON
(for the page, the diff and exports), plus the diff against the previous scan of the
same profile, computed once when the scan is saved. The oldest scans beyond ``keep``
are deleted.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS scans (
    id TEXT PRIMARY KEY,
    profile_id TEXT,
    baseline TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL DEFAULT '',
    started REAL NOT NULL,
    finished REAL,
    backend TEXT NOT NULL,
    targets TEXT NOT NULL,
    open_ports INTEGER NOT NULL,
    findings INTEGER NOT NULL,
    changes INTEGER,
    result TEXT NOT NULL,
    diff TEXT
);
CREATE INDEX IF NOT EXISTS scans_baseline ON scans(baseline, started);
CREATE INDEX IF NOT EXISTS scans_started ON scans(started);
"""


class UnknownScan(KeyError):
    def __init__(self, scan_id: str):
        super().__init__(scan_id)
        self.field = "scan_id"
        self.status = 404

    def __str__(self) -> str:
        return f"scan_id: no scan {self.args[0]!r} in the history"


class History:
    """Thread-safe access to the history database (calls are short; the plugin runs
    them on the loop)."""

    def __init__(self, path: Path, keep: int = 300):
        self.path = path
        self.keep = keep
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def save(self, scan: dict[str, Any], diff: dict[str, Any] | None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO scans (id, profile_id, baseline, name, started, "
                "finished, backend, targets, open_ports, findings, changes, result, diff) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (scan["id"], scan.get("profile_id"), scan.get("baseline") or "",
                 scan.get("name") or "", scan["started"],
                 scan.get("finished"), scan["backend"], scan["targets"],
                 scan["counts"]["open"], len(scan["findings"]),
                 len(diff["changes"]) if diff else None, json.dumps(scan),
                 json.dumps(diff) if diff else None))
            self._db.execute(
                "DELETE FROM scans WHERE id NOT IN (SELECT id FROM scans ORDER BY started "
                "DESC LIMIT ?)", (self.keep,))

    def get(self, scan_id: str) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute("SELECT result, diff FROM scans WHERE id = ?",
                                   (scan_id,)).fetchone()
        if row is None:
            raise UnknownScan(scan_id)
        scan: dict[str, Any] = json.loads(row[0])
        scan["diff"] = json.loads(row[1]) if row[1] else None
        return scan

    def latest(self, baseline: str, before: float | None = None) -> dict[str, Any] | None:
        """The newest scan with this ``baseline`` key (a profile, or the same targets
        and ports) started before ``before``, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT id FROM scans WHERE baseline = ? AND started < ? "
                "ORDER BY started DESC LIMIT 1",
                (baseline, before if before is not None else 1e18)).fetchone()
        return self.get(row[0]) if row else None

    def list(self, limit: int = 100, profile_id: str | None = None) -> list[dict[str, Any]]:
        query = ("SELECT id, profile_id, name, started, finished, backend, targets, "
                 "open_ports, findings, changes, diff FROM scans")
        args: list[Any] = []
        if profile_id:
            query += " WHERE profile_id = ?"
            args.append(profile_id)
        query += " ORDER BY started DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        out = []
        for row in rows:
            diff = json.loads(row[10]) if row[10] else None
            out.append({"id": row[0], "profile_id": row[1], "name": row[2], "started": row[3],
                        "finished": row[4], "backend": row[5], "targets": row[6],
                        "open_ports": row[7], "findings": row[8], "changes": row[9],
                        "change_summary": diff["summary"] if diff else None})
        return out

    def alerts(self, limit: int = 30) -> builtins.list[dict[str, Any]]:
        """The newest scans whose diff found changes, with their changes."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, profile_id, name, started, targets, diff FROM scans "
                "WHERE changes > 0 ORDER BY started DESC LIMIT ?", (limit,)).fetchall()
        return [{"id": r[0], "profile_id": r[1], "name": r[2], "started": r[3],
                 "targets": r[4], "diff": json.loads(r[5])} for r in rows]

    def delete(self, scan_id: str) -> None:
        with self._lock:
            gone = self._db.execute("DELETE FROM scans WHERE id = ?", (scan_id,)).rowcount
        if not gone:
            raise UnknownScan(scan_id)
