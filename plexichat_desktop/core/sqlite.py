"""The SQLite files of the app: one shared connection, WAL, explicit transactions and
append-only schema migrations. The test result store and the v1 API store build on it.

One connection shared by all threads, serialised by a lock, rather than one connection per
thread: SQLite allows a single writer at a time anyway, so the lock costs little;
``asyncio.to_thread`` runs callers on pool threads that come and go, whose per-thread
connections could never be closed; and our own connections cannot fight each other with
SQLITE_BUSY. ``isolation_level=None``: every BEGIN/COMMIT is ours, so every transaction
boundary is explicit.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from plexichat_desktop.core.permissions import FILE_MODE, private_dir

BUSY_TIMEOUT_S = 10.0
SQLITE_INT_MAX = 2**63 - 1  # the largest integer (and row id) SQLite stores

Migration = Callable[[sqlite3.Connection], None]


class SchemaVersionError(RuntimeError):
    """The database file was written by a newer version of the app."""

    def __init__(self, path: Path | str, found: int, supported: int,
                 what: str = "database"):
        self.path = Path(path)
        self.found = found
        self.supported = supported
        super().__init__(
            f"{path}: the {what} has schema version {found}, but this version of PlexiChat "
            f"Desktop only understands up to version {supported}. It was written by a newer "
            f"release; upgrade the app, or move the file away to start afresh.")


class SqliteDatabase:
    """An open database file whose schema is brought up to date on opening.

    Subclasses set :attr:`what` (named in errors) and pass their migrations: migration
    ``i`` takes the schema from version ``i`` to ``i + 1`` (``PRAGMA user_version``);
    the list is append-only. Thread-safe and blocking.
    """

    what: ClassVar[str] = "database"

    def __init__(self, path: Path, migrations: Sequence[Migration]):
        """Open (or create) the file; raises :class:`SchemaVersionError` when it comes from
        a newer app version."""
        self.path = Path(path)
        private_dir(self.path.parent)
        with suppress(FileExistsError):
            # Created 0600 before SQLite opens it: its -wal and -shm files take the
            # database file's mode, so they are private too.
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        self._lock = threading.Lock()
        self._closed = False
        self._conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S,
                                     isolation_level=None, check_same_thread=False)
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            # WAL: readers in other processes (CLI, a second window) never block the writer.
            self._conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable across app crashes under WAL; only an OS crash can lose the
            # last commits.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._migrate(migrations)
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        """Close the connection. Idempotent; later transactions raise."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with suppress(sqlite3.Error):
                # Cheap; refreshes planner statistics only where they went stale.
                self._conn.execute("PRAGMA optimize")
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """The schema version stored in the file (``PRAGMA user_version``)."""
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        target = len(migrations)
        while True:
            # A write transaction takes the lock before the version is read, so two
            # processes opening the same old file cannot both run one migration.
            with self.transaction(write=True) as conn:
                current = conn.execute("PRAGMA user_version").fetchone()[0]
                if current > target:
                    raise SchemaVersionError(self.path, current, target, self.what)
                if current == target:
                    return
                migrations[current](conn)
                conn.execute(f"PRAGMA user_version = {current + 1}")

    @contextmanager
    def transaction(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """The lock and one transaction: IMMEDIATE for writes (the write lock up front, so
        no upgrade deadlock halfway), a snapshot for reads; rolled back on any error."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.path}: the {self.what} is closed")
            self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT, which leaves the transaction open.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
