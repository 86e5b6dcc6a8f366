"""Maintenance of the app's own files: SQLite checks, clean-up, test results, disk usage.

Everything here is blocking (run it in a thread) and works on an :class:`AppDirs`, the
folders of the running app. Clean-up is planned first and the plan is what the user
sees; applying it re-plans and deletes only what is still a candidate, so a file that
changed in between is left alone. Only files the app itself makes are candidates: rotated
log files (never the current one), leftovers of interrupted work (``.partial`` files,
drill and restore staging folders, abandoned uploads) and ``plexichat-dev-*`` holder
folders of dev sessions that are over; each must be older than its age limit (a day at
least for temp entries).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SQLITE_MAGIC = b"SQLite format 3\x00"
_SKIP_SUFFIXES = ("-wal", "-shm", "-journal")
#: Temp entries the app itself makes (``plexichat_desktop/dev.py``'s holder folders):
#: the only ones clean-up may delete from the temp folder, and only when unused.
TEMP_PREFIXES = ("plexichat-dev-",)


@dataclass(frozen=True)
class AppDirs:
    """The folders maintenance looks at."""

    data_dir: Path
    plugin_data: Path
    log_dir: Path | None
    temp_dir: Path
    own_dir: Path

    @property
    def tests_db(self) -> Path:
        return self.data_dir / "tests.sqlite3"

    @property
    def api_dir(self) -> Path:
        return self.data_dir / "api_v1"


def find_log_dir() -> Path | None:
    """The folder of the app's log file, from the root logger's file handler."""
    for handler in logging.getLogger().handlers:
        name = getattr(handler, "baseFilename", None)
        if name:
            return Path(name).parent
    return None


def _size(path: Path) -> tuple[int, int]:
    """(bytes, files) under ``path``; symlinks are not followed."""
    if path.is_symlink() or path.is_file():
        with contextlib.suppress(OSError):
            return path.lstat().st_size, 1
        return 0, 0
    total = files = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
                files += 1
    return total, files


def disk_usage(dirs: AppDirs) -> dict[str, Any]:
    """Bytes and files per plugin data folder and per app area, plus the disk's space."""
    plugins: list[dict[str, Any]] = []
    if dirs.plugin_data.is_dir():
        for child in sorted(dirs.plugin_data.iterdir()):
            if child.is_dir() and not child.name.startswith("."):
                size, files = _size(child)
                plugins.append({"plugin": child.name, "bytes": size, "files": files,
                                "path": str(child)})
    plugins.sort(key=lambda p: int(p["bytes"]), reverse=True)
    areas = []
    for label, path in (("v1 database and files", dirs.api_dir),
                        ("v1 backups", dirs.api_dir / "backups"),
                        ("test results", dirs.tests_db), ("logs", dirs.log_dir)):
        if path is not None and path.exists():
            size, files = _size(path)
            if label == "v1 database and files":
                backups = _size(path / "backups")
                size, files = size - backups[0], files - backups[1]
            areas.append({"area": label, "bytes": size, "files": files, "path": str(path)})
    disk = shutil.disk_usage(dirs.data_dir)
    return {"plugins": plugins, "areas": areas,
            "disk": {"path": str(dirs.data_dir), "total": disk.total, "used": disk.used,
                     "free": disk.free,
                     "free_percent": round(100.0 * disk.free / disk.total, 1)
                     if disk.total else 0.0}}


# -- SQLite -----------------------------------------------------------------------------

def find_databases(dirs: AppDirs) -> list[dict[str, Any]]:
    """SQLite files of plugin data (VACUUM allowed) and of the app (checked only)."""
    found: list[dict[str, Any]] = []

    def add(path: Path, owner: str, vacuum: bool) -> None:
        try:
            with path.open("rb") as fh:
                if fh.read(16) != SQLITE_MAGIC:
                    return
            size = path.stat().st_size
        except OSError:
            return
        found.append({"path": str(path), "owner": owner, "bytes": size, "vacuum": vacuum,
                      "name": path.name})

    if dirs.plugin_data.is_dir():
        for root, _dirs, names in os.walk(dirs.plugin_data):
            for name in sorted(names):
                if name.endswith(_SKIP_SUFFIXES):
                    continue
                path = Path(root) / name
                owner = path.relative_to(dirs.plugin_data).parts[0]
                add(path, owner, True)
    for path, owner in ((dirs.tests_db, "app: test results"),
                        (dirs.api_dir / "plexichat.sqlite3", "app: v1 API")):
        if path.is_file():
            # The app's own stores are open and busy: checked, never vacuumed from here.
            add(path, owner, False)
    return found


def held_open(path: Path, busy_timeout: float = 0.2) -> str | None:
    """Why ``path`` is in use by someone else (its owner plugin, another process), or
    None when nobody holds it: a WAL or rollback journal beside it (a WAL database keeps
    ``-wal``/``-shm`` while any connection is open), an open handle in this process (the
    plugins run here; Linux ``/proc/self/fd``), or an exclusive lock that cannot be had
    within ``busy_timeout`` seconds. Call it before opening a connection of your own."""
    for suffix in ("-wal", "-shm", "-journal"):
        if Path(str(path) + suffix).exists():
            return f"in use: {path.name}{suffix} exists (the database is open)"
    fds = Path("/proc/self/fd")
    if fds.is_dir():
        try:
            wanted = path.resolve()
            for fd in fds.iterdir():
                with contextlib.suppress(OSError):
                    if Path(os.readlink(fd)) == wanted:
                        return "in use: open in the app (its plugin is running)"
        except OSError:
            pass
    try:
        probe = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        return f"in use: {exc}"
    try:
        probe.execute("BEGIN EXCLUSIVE")
        probe.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        return f"in use: {exc}"
    finally:
        probe.close()
    return None


def check_database(path: Path, vacuum: bool, busy_timeout: float = 5.0) -> dict[str, Any]:
    """``integrity_check`` and, when asked, sound and not in use, ``VACUUM``.

    ``integrity_check`` only reads (a read-only connection). VACUUM rewrites the whole
    file, so it runs only on a store nobody holds open (:func:`held_open`): a store in
    use is reported with ``skipped`` = why, and vacuumed another time (its plugin
    stopped). A damaged database is never vacuumed (VACUUM could drop what is left of
    the damaged pages). A database locked by its owner for longer than ``busy_timeout``
    is reported as busy, not as a failure.
    """
    before = _db_bytes(path)
    result: dict[str, Any] = {"path": str(path), "bytes_before": before, "vacuumed": False}
    started = time.monotonic()
    in_use = held_open(path) if vacuum else None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                               timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        return {**result, "status": "error", "detail": str(exc)}
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check(20)")]
        result["integrity"] = rows
        if rows != ["ok"]:
            result.update(status="damaged", detail="; ".join(rows[:3]))
            return result
        conn.close()
        if vacuum and in_use is not None:
            result["skipped"] = in_use
        elif vacuum:
            # Only for the VACUUM itself, with a short wait: an owner that opened the
            # store meanwhile keeps it, and this one is reported as in use.
            conn = sqlite3.connect(path, timeout=0.2, isolation_level=None)
            try:
                conn.execute("VACUUM")
                result["vacuumed"] = True
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                result["skipped"] = f"in use: {exc}"
        result["status"] = "ok"
    except sqlite3.OperationalError as exc:
        busy = "locked" in str(exc) or "busy" in str(exc)
        result.update(status="busy" if busy else "error", detail=str(exc))
    except sqlite3.DatabaseError as exc:
        result.update(status="damaged", detail=str(exc))
    finally:
        conn.close()
    result["bytes_after"] = _db_bytes(path)
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def _db_bytes(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            total += Path(str(path) + suffix).stat().st_size
    return total


# -- clean-up ---------------------------------------------------------------------------

def cleanup_plan(dirs: AppDirs, *, log_days: float, temp_days: float,
                 busy: set[Path] | None = None, now: float | None = None
                 ) -> list[dict[str, Any]]:
    """What a clean-up would delete: ``[{path, bytes, age_days, reason}]``."""
    now = time.time() if now is None else now
    busy = busy or set()
    plan: list[dict[str, Any]] = []

    def consider(path: Path, days: float, reason: str) -> None:
        if path in busy:
            return
        try:
            mtime = path.lstat().st_mtime
        except OSError:
            return
        age = (now - mtime) / 86400.0
        if age < days:
            return
        size, _files = _size(path)
        plan.append({"path": str(path), "bytes": size, "age_days": round(age, 1),
                     "reason": reason})

    if dirs.log_dir is not None and dirs.log_dir.is_dir():
        for path in sorted(dirs.log_dir.iterdir()):
            # Rotated files end in .1, .2 ...; the live log file never qualifies.
            stem, _, number = path.name.rpartition(".")
            if path.is_file() and stem.endswith(".log") and number.isdigit():
                consider(path, log_days, f"rotated log older than {log_days:g} days")
    leftovers = [(dirs.api_dir / "incoming", "*", "abandoned v1 upload"),
                 (dirs.api_dir / "backups", ".make-*", "interrupted v1 backup"),
                 (dirs.api_dir / "backups", ".restore-*", "interrupted v1 restore"),
                 (dirs.own_dir, ".drill-*", "interrupted restore drill"),
                 (dirs.own_dir, ".work-*", "interrupted backup check")]
    for folder, pattern, reason in leftovers:
        if folder.is_dir():
            for path in sorted(folder.glob(pattern)):
                consider(path, min(temp_days, 1.0), reason)
    if dirs.plugin_data.is_dir():
        for path in sorted(dirs.plugin_data.rglob("*.partial")):
            consider(path, min(temp_days, 1.0), "partial file of an interrupted write")
    if dirs.temp_dir.is_dir():
        for prefix in TEMP_PREFIXES:
            for path in sorted(dirs.temp_dir.glob(prefix + "*")):
                with contextlib.suppress(OSError):
                    if path.owner() == _me() and _dev_holder_unused(path):
                        consider(path, max(temp_days, 1.0),
                                 f"unused dev-session folder older than "
                                 f"{max(temp_days, 1.0):g} days")
    return plan


def _dev_holder_unused(path: Path) -> bool:
    """Whether ``path`` is a ``plexichat-dev-*`` holder of a session that is over: a
    real folder (not a link) holding only symlinks (what ``plexichat-desktop dev``
    makes), none of which leads to an existing plugin folder. A holder whose link still
    works may belong to a running session: kept."""
    if path.is_symlink() or not path.is_dir():
        return False
    return all(child.is_symlink() and not child.exists() for child in path.iterdir())


def _me() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return "\0"


def apply_cleanup(plan: list[dict[str, Any]]) -> dict[str, Any]:
    """Delete the planned entries; returns ``{deleted, bytes, errors}``."""
    deleted, freed, errors = 0, 0, []
    for entry in plan:
        path = Path(entry["path"])
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            deleted += 1
            freed += int(entry["bytes"])
        except FileNotFoundError:
            continue
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror or exc}")
    return {"deleted": deleted, "bytes": freed, "errors": errors}


def default_temp_dir() -> Path:
    return Path(tempfile.gettempdir())


# -- test results -----------------------------------------------------------------------

def results_retention_plan(db: Path, keep_days: float, keep_runs: int,
                      now: float | None = None) -> dict[str, Any]:
    """How many finished test runs a retention with these limits would delete."""
    if not db.is_file():
        return {"runs": 0, "total_runs": 0, "present": False}
    now = time.time() if now is None else now
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        total = int(conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
        going = int(conn.execute(
            f"SELECT COUNT(*) FROM runs WHERE {_done_clause()} AND (queued_at < ? OR id IN ("
            "SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY plugin_id ORDER BY "
            "queued_at DESC, id DESC) AS position FROM runs) WHERE position > ?))",
            (now - keep_days * 86400.0, keep_runs)).fetchone()[0])
    finally:
        conn.close()
    return {"runs": going, "total_runs": total, "present": True}


def _done_clause() -> str:
    from plexichat_desktop.testing.store import UNFINISHED_STATUSES

    listed = ", ".join(f"'{status}'" for status in UNFINISHED_STATUSES)
    return f"status NOT IN ({listed})"


def apply_test_retention(db: Path, keep_days: float, keep_runs: int) -> int:
    """Delete old test runs through the test manager's own store; how many went."""
    if not db.is_file():
        return 0
    from plexichat_desktop.testing.store import ResultStore

    store = ResultStore(db)
    try:
        return store.enforce_retention(keep_days, keep_runs)
    finally:
        store.close()
