"""Backups of the v1 data: the database and the uploaded files, in one zip archive.

An archive holds ``manifest.json``, ``plexichat.sqlite3`` (a consistent snapshot taken with
SQLite's online backup API while the server keeps running) and ``files/<xx>/<file id>``.
Its SHA-256 is recorded when it is made (or uploaded) and checked again before a restore:
a damaged or swapped archive is refused, never half-restored.

Backups live beside the data, in ``<data>/api_v1/backups/<id>.zip`` with a ``<id>.json``
record each. They are deliberately not inside the database, so restoring an old backup does
not forget the backups made after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plexichat_desktop import __version__
from plexichat_desktop.core.permissions import private_dir, private_file
from plexichat_desktop.core.waiting import within
from plexichat_desktop.plugins.files import write_atomic
from plexichat_desktop.server.v1.common import iso, new_id, now
from plexichat_desktop.server.v1.store import (
    SCHEMA_VERSION,
    ApiStore,
    clean_copy,
    inspect_database,
)

log = logging.getLogger(__name__)

DB_NAME = "plexichat.sqlite3"
FORMAT = 1
_FILE_ENTRY = re.compile(r"^files/[0-9a-f]{2}/[0-9a-f-]{36}$")
_ID = re.compile(r"^[0-9a-f-]{36}$")
_CHUNK = 1 << 20
COUNTED_TABLES = ("users", "messages", "files", "groups", "notifications", "webhooks")


class BackupError(Exception):
    """A backup cannot be made or restored; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


# What a restore takes from the live database, not from the backup, for the accounts in
# both: sign-ins and one-time tokens (a session a user ended, or that ended when the
# password changed, worked again after a restore), the password, 2FA state and recovery
# codes (the password a user changed away from signed in again). The sessions of now
# stay: whoever restores (the System Manager's own session) is not signed out.
_LIVE_PER_USER = ("sessions", "mfa_challenges", "password_resets", "mfa", "recovery_codes")
# Of those, what an account only the backup holds keeps from the backup: its 2FA (it came
# back without it, and its password alone signed in).
_ACCOUNT_CREDENTIALS = ("mfa", "recovery_codes")


def _keep_credentials(live: sqlite3.Connection, restored: Path) -> None:
    """Prepare the restored database ``restored`` before it replaces ``live``: the
    backup's sign-ins, challenges and resets go, and for every account in both the live
    ones, with its current password, 2FA state and recovery codes, are kept. An account
    only the backup holds keeps the backup's 2FA and recovery codes."""
    target = sqlite3.connect(str(restored))
    try:
        with target:
            ids = [row[0] for row in target.execute("SELECT id FROM users")]
            kept = set(ids)
            both = [(user_id,) for (user_id,) in live.execute("SELECT id FROM users")
                    if user_id in kept]
            target.execute("DELETE FROM refresh_history")
            for table in _LIVE_PER_USER:
                if table in _ACCOUNT_CREDENTIALS:
                    target.executemany(f"DELETE FROM {table} WHERE user_id = ?", both)
                else:
                    target.execute(f"DELETE FROM {table}")
            for user_id, password_hash in live.execute("SELECT id, password_hash FROM users"):
                if user_id in kept:
                    target.execute("UPDATE users SET password_hash = ? WHERE id = ?",
                                   (password_hash, user_id))
            for table in _LIVE_PER_USER:
                _copy_rows(live, target, table, f"SELECT * FROM {table}",
                           lambda row: row["user_id"] in kept)
            sessions = {row[0] for row in target.execute("SELECT id FROM sessions")}
            _copy_rows(live, target, "refresh_history", "SELECT * FROM refresh_history",
                       lambda row: row["session_id"] in sessions)
    finally:
        target.close()


def _copy_rows(source: sqlite3.Connection, target: sqlite3.Connection, table: str,
               query: str, wanted: Callable[[sqlite3.Row], bool]) -> None:
    rows = source.execute(query)
    names = [d[0] for d in rows.description]
    target.executemany(f"INSERT INTO {table} ({', '.join(names)}) "
                       f"VALUES ({', '.join('?' * len(names))})",
                       [tuple(row) for row in rows.fetchall() if wanted(row)])


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {table: int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                for table in COUNTED_TABLES}
    finally:
        conn.close()


class BackupManager:
    """Create, list, verify, restore and delete backups; one operation at a time."""

    def __init__(self, store: ApiStore, files_dir: Path, backups_dir: Path, keep: int,
                 on_completed: Callable[[dict[str, Any]], None] | None = None,
                 max_unpacked: Callable[[], int] = lambda: 4 << 30):
        self.store = store
        # Read at each check, so that a settings change applies without a restart.
        self.max_unpacked = max_unpacked
        self.files_dir = files_dir
        self.dir = backups_dir
        self.keep = keep
        self.on_completed = on_completed
        self._lock = asyncio.Lock()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        private_dir(self.dir)

    # -- records ----------------------------------------------------------------------

    def archive(self, backup_id: str) -> Path:
        return self.dir / f"{backup_id}.zip"

    def _record_path(self, backup_id: str) -> Path:
        return self.dir / f"{backup_id}.json"

    def _save(self, record: dict[str, Any]) -> None:
        write_atomic(self._record_path(record["id"]), json.dumps(record, indent=1))

    def get(self, backup_id: str) -> dict[str, Any] | None:
        """The record of ``backup_id``, or None (also for malformed ids)."""
        if not _ID.match(backup_id):
            return None
        try:
            return json.loads(self._record_path(backup_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def list(self) -> list[dict[str, Any]]:
        """Every backup record, newest first."""
        records = []
        for path in self.dir.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                records.append(json.loads(path.read_text(encoding="utf-8")))
        records.sort(key=lambda r: r.get("created_ts", 0), reverse=True)
        return records

    def recover(self) -> None:
        """Mark backups that were being made when the app stopped as failed."""
        for record in self.list():
            if record.get("status") in ("pending", "running"):
                record.update(status="failed", error="the app stopped while it was being made")
                self._save(record)

    # -- create -----------------------------------------------------------------------

    def start_create(self, user_id: str, name: str | None) -> dict[str, Any]:
        """Record a pending backup and start making it in the background."""
        current = now()
        record: dict[str, Any] = {
            "id": new_id(), "name": name or f"backup {iso(current)}", "status": "pending",
            "source": "created", "created_by": user_id, "created_at": iso(current),
            "created_ts": current, "completed_at": None, "size": None, "checksum": None,
            "checksum_algorithm": "sha256", "schema_version": SCHEMA_VERSION,
            "app_version": __version__, "counts": None, "file_count": None, "error": None,
            "last_restored_at": None,
        }
        self._save(record)
        task = asyncio.get_running_loop().create_task(self._create(record),
                                                      name=f"v1 backup {record['id']}")
        self._tasks[record["id"]] = task
        task.add_done_callback(lambda _t: self._tasks.pop(record["id"], None))
        return record

    async def stop(self, timeout: float = 30.0) -> None:
        """Let backups being made finish (they need the store), cancelling after ``timeout``;
        a cancelled one is marked failed at the next start."""
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()

    async def wait(self, backup_id: str, timeout: float) -> None:
        task = self._tasks.get(backup_id)
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await within(asyncio.shield(task), timeout)

    async def _create(self, record: dict[str, Any]) -> None:
        async with self._lock:
            record["status"] = "running"
            self._save(record)
            try:
                await asyncio.to_thread(self._make_archive, record)
                record["status"] = "completed"
            except Exception as exc:
                log.exception("v1 backup %s failed", record["id"])
                record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
                with contextlib.suppress(OSError):
                    self.archive(record["id"]).unlink()
            record["completed_at"] = iso(now())
            self._save(record)
            await asyncio.to_thread(self._prune)
        if record["status"] == "completed" and self.on_completed is not None:
            self.on_completed(record)

    def _make_archive(self, record: dict[str, Any]) -> None:
        final = self.archive(record["id"])
        with tempfile.TemporaryDirectory(dir=self.dir, prefix=".make-") as tmp:
            snapshot = Path(tmp) / DB_NAME
            self.store.snapshot_to(snapshot)
            counts = _counts(snapshot)
            partial = Path(tmp) / "archive.zip"
            file_count = 0
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.write(snapshot, DB_NAME)
                if self.files_dir.is_dir():
                    for path in sorted(self.files_dir.rglob("*")):
                        name = path.relative_to(self.files_dir.parent).as_posix()
                        if path.is_file() and _FILE_ENTRY.match(name):
                            zf.write(path, name)
                            file_count += 1
                manifest = {"format": FORMAT, "created_at": record["created_at"],
                            "schema_version": SCHEMA_VERSION, "app_version": __version__,
                            "counts": counts, "file_count": file_count}
                zf.writestr("manifest.json", json.dumps(manifest, indent=1))
            record.update(counts=counts, file_count=file_count, size=partial.stat().st_size,
                          checksum=sha256_of(partial))
            os.replace(private_file(partial), final)

    def _prune(self) -> None:
        """Keep the newest ``keep`` completed backups, and as many failed records. They
        counted together: runs failing on a full disk pushed every good backup out."""
        records = self.list()
        completed = [r for r in records if r.get("status") == "completed"]
        failed = [r for r in records if r.get("status") == "failed"]
        for record in completed[self.keep:] + failed[self.keep:]:
            self._delete_files(record["id"])

    # -- upload, delete ---------------------------------------------------------------

    def adopt_upload(self, upload: Path, checksum: str, user_id: str,
                     name: str | None) -> dict[str, Any]:
        """Take an uploaded archive whose SHA-256 must equal ``checksum``; blocking."""
        actual = sha256_of(upload)
        if actual != checksum.lower():
            raise BackupError(409, f"checksum: the upload has SHA-256 {actual}, not "
                                   f"{checksum.lower()}; it was damaged on the way")
        manifest = self._validate_archive(upload)
        current = now()
        record: dict[str, Any] = {
            "id": new_id(), "name": name or f"uploaded backup {iso(current)}",
            "status": "completed", "source": "uploaded", "created_by": user_id,
            "created_at": manifest.get("created_at") or iso(current), "created_ts": current,
            "completed_at": iso(current), "size": upload.stat().st_size, "checksum": actual,
            "checksum_algorithm": "sha256",
            "schema_version": manifest.get("schema_version"),
            "app_version": manifest.get("app_version"), "counts": manifest.get("counts"),
            "file_count": manifest.get("file_count"), "error": None, "last_restored_at": None,
        }
        shutil.move(str(private_file(upload)), self.archive(record["id"]))
        self._save(record)
        self._prune()
        return record

    def delete(self, backup_id: str) -> None:
        self._delete_files(backup_id)

    def _delete_files(self, backup_id: str) -> None:
        for path in (self.archive(backup_id), self._record_path(backup_id)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # -- restore ----------------------------------------------------------------------

    async def restore(self, backup_id: str, expected: str | None) -> dict[str, Any]:
        """Verify and restore ``backup_id``; raises :class:`BackupError`."""
        async with self._lock:
            record = self.get(backup_id)
            if record is None:
                raise BackupError(404, f"backup '{backup_id}' not found")
            if record.get("status") != "completed":
                raise BackupError(409, f"backup '{backup_id}' is {record.get('status')}, "
                                       f"only a completed backup can be restored")
            counts = await asyncio.to_thread(self._restore, record, expected)
            record["last_restored_at"] = iso(now())
            self._save(record)
            return {"backup": record, "counts": counts}

    def _validate_archive(self, archive: Path) -> dict[str, Any]:
        try:
            with zipfile.ZipFile(archive) as zf:
                names = zf.namelist()
                odd = [n for n in names if n not in (DB_NAME, "manifest.json")
                       and not _FILE_ENTRY.match(n)]
                if odd:
                    raise BackupError(422, f"file: the archive has unexpected entries: "
                                           f"{', '.join(sorted(odd)[:5])}")
                if DB_NAME not in names or "manifest.json" not in names:
                    raise BackupError(422, "file: the archive has no database or manifest; "
                                           "it is not a PlexiChat v1 backup")
                # Decided from the directory, before anything is unpacked; zipfile never
                # writes more than an entry's declared size.
                unpacked = sum(info.file_size for info in zf.infolist())
                cap = self.max_unpacked()
                if unpacked > cap:
                    raise BackupError(422, f"file: the archive unpacks to {unpacked} bytes, "
                                           f"more than the {cap} allowed ([api] "
                                           f"max_restore_mb)")
                manifest = json.loads(zf.read("manifest.json"))
        except (zipfile.BadZipFile, ValueError, OSError) as exc:
            raise BackupError(422, f"file: not a readable backup archive ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise BackupError(422, "file: unknown backup format")
        return manifest

    def _restore(self, record: dict[str, Any], expected: str | None) -> dict[str, int]:
        archive = self.archive(record["id"])
        if not archive.is_file():
            raise BackupError(409, f"backup '{record['id']}' has no archive on disk")
        actual = sha256_of(archive)
        if actual != record["checksum"]:
            raise BackupError(409, f"checksum: the archive's SHA-256 is {actual} but "
                                   f"{record['checksum']} was recorded; it is damaged")
        if expected is not None and expected.lower() != actual:
            raise BackupError(409, f"checksum: the archive's SHA-256 is {actual}, not the "
                                   f"expected {expected.lower()}")
        self._validate_archive(archive)
        # The files are staged beside files/ (the same file system, so the swap is two
        # renames) and the database in the backups folder, which may be another disk:
        # staged there too, the files' swap failed (EXDEV) after the database had been
        # replaced, a half restore answered as a bare 500.
        self.files_dir.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.dir, prefix=".restore-") as tmp, \
                tempfile.TemporaryDirectory(dir=self.files_dir.parent,
                                            prefix=".restore-files-") as files_tmp:
            staging, files_stage = Path(tmp), Path(files_tmp)
            try:
                with zipfile.ZipFile(archive) as zf:
                    # Names checked above: no absolute or '..' paths.
                    zf.extract(DB_NAME, staging)
                    for name in zf.namelist():
                        if _FILE_ENTRY.match(name):
                            zf.extract(name, files_stage)
                db = staging / DB_NAME
                clean = staging / "clean.sqlite3"
                try:
                    inspect_database(db)
                    clean_copy(db, clean)
                except ValueError as exc:
                    raise BackupError(422, f"backup '{record['id']}': {exc}") from None
                counts = _counts(clean)
                self.store.call(_keep_credentials, clean)
                # What the database is now, to put back if replacing it fails midway (its
                # copy may be done and a migration after it fail).
                before = staging / "live-before.sqlite3"
                self.store.snapshot_to(before)
            except OSError as exc:
                raise BackupError(500, f"the restore could not be prepared ({exc}); "
                                       "nothing was changed") from exc
            new_files = private_dir(files_stage / "files")
            old = files_stage / "files-replaced"
            had_files = self.files_dir.exists()
            try:
                if had_files:
                    os.replace(self.files_dir, old)
                os.replace(new_files, self.files_dir)
            except OSError as exc:
                if had_files and old.exists() and not self.files_dir.exists():
                    os.replace(old, self.files_dir)
                raise BackupError(500, f"the restore could not put the backup's files in "
                                       f"place ({exc}); nothing was changed") from exc
            try:
                self.store.replace_from(clean)
            except Exception as exc:
                try:
                    self.store.replace_from(before)
                except Exception:
                    log.exception("v1 restore %s: the database could not be put back",
                                  record["id"])
                    raise BackupError(500, f"the restore failed midway ({exc}) and the "
                                           "database could not be put back: restore the "
                                           "safety backup") from exc
                # The files go back to what they were, as the database did.
                os.replace(self.files_dir, files_stage / "files-restored")
                if had_files:
                    os.replace(old, self.files_dir)
                raise BackupError(500, f"the restore could not replace the database "
                                       f"({exc}); nothing was changed") from exc
        return counts
