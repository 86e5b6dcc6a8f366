"""SQLite in the plugin's data folder: the content-hash cache and the scan history.

One short-lived connection per call, so the scan thread and the routes never share one;
WAL lets a page read the history while a scan writes its cache.
"""

from __future__ import annotations

import json
import sqlite3
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, result TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    folder TEXT NOT NULL,
    finished_at REAL NOT NULL,
    summary TEXT NOT NULL,
    result BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS scans_folder ON scans (folder, id);
"""


class Store:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()

    # -- cache ---------------------------------------------------------------------------
    def cached(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        keys = list(keys)
        found: dict[str, dict[str, Any]] = {}
        with self._db() as db:
            for start in range(0, len(keys), 500):  # SQLite's bound-variable limit
                chunk = keys[start:start + 500]
                # Only "?" placeholders are formatted in; the keys are bound parameters.
                marks = ",".join("?" * len(chunk))
                query = f"SELECT key, result FROM cache WHERE key IN ({marks})"  # nosec B608
                for key, text in db.execute(query, chunk):
                    found[key] = json.loads(text)
        return found

    def remember(self, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO cache (key, result) VALUES (?, ?)",
                           [(k, json.dumps(v, separators=(",", ":"))) for k, v in items])

    # -- scans ---------------------------------------------------------------------------
    def save_scan(self, folder: str, summary: dict[str, Any], result: dict[str, Any],
                  keep: int) -> int:
        blob = zlib.compress(json.dumps(result, separators=(",", ":")).encode(), 6)
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO scans (folder, finished_at, summary, result) VALUES (?,?,?,?)",
                (folder, time.time(), json.dumps(summary), blob))
            scan_id = int(cursor.lastrowid or 0)
            db.execute("DELETE FROM scans WHERE folder = ? AND id NOT IN (SELECT id FROM "
                       "scans WHERE folder = ? ORDER BY id DESC LIMIT ?)",
                       (folder, folder, keep))
        return scan_id

    def scans(self, folder: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Summaries, oldest first (a trend reads left to right)."""
        query = "SELECT id, folder, finished_at, summary FROM scans"
        args: tuple[Any, ...] = ()
        if folder is not None:
            query += " WHERE folder = ?"
            args = (folder,)
        query += " ORDER BY id DESC LIMIT ?"
        with self._db() as db:
            rows = db.execute(query, (*args, limit)).fetchall()
        return [{"id": i, "folder": f, "finished_at": t, **json.loads(s)}
                for i, f, t, s in reversed(rows)]

    def scan(self, scan_id: int) -> dict[str, Any] | None:
        if not 0 < scan_id < 2**63:  # past SQLite's integers: no such scan (was a 500)
            return None
        with self._db() as db:
            row = db.execute("SELECT result FROM scans WHERE id = ?", (scan_id,)).fetchone()
        return None if row is None else json.loads(zlib.decompress(row[0]))
