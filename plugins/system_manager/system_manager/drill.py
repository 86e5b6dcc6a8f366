"""Restore drills: restore a backup into a throw-away v1 server and check what came back.

The drill builds a second, private :class:`~plexichat_desktop.server.v1.service.ApiV1`
on a fresh temp home (its own database, files and backups folders), and talks to it
in-process over ASGI: no port is opened and the live server, its data and its sessions
are never touched. It goes through the same code path as a real disaster recovery:

1. register an administrator on the empty drill server (the owner check is a secret of
   this drill only);
2. hand the archive with its SHA-256 to the drill server's backup manager, as its
   ``POST /backup/upload`` route does with a received body (it re-hashes the archive
   and checks its format and unpacked size);
3. ``POST /backup/{id}/restore`` with ``confirm`` and the expected checksum;
4. compare the restored database with the archive's manifest: the counts the restore
   reports, the rows counted again in the restored database, SQLite's
   ``integrity_check``, and every file row's content on disk (present, its size and its
   SHA-256 as recorded).

The drill server is never *started*: webhook delivery and metric sampling stay off, so
restored webhooks cannot call out. The temp home is deleted afterwards, whatever
happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from system_manager.archive import COUNTED, ArchiveProblem, read_manifest, sha256_of

DRILL_PREFIX = ".drill-"
_FILE_ID = re.compile(r"[0-9a-f-]{36}")
_PASSWORD_CHARS = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class DrillFailed(RuntimeError):
    """The drill could not restore the backup; ``step`` names where it stopped."""

    def __init__(self, step: str, detail: str):
        super().__init__(f"{step}: {detail}")
        self.step = step
        self.detail = detail


def _password() -> str:
    # Meets the v1 password rules (length, classes) without depending on their details.
    return "Dr1ll-" + "".join(secrets.choice(_PASSWORD_CHARS) for _ in range(24)) + "!9a"


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
        detail = body.get("detail", body) if isinstance(body, dict) else body
    except ValueError:
        detail = response.text[:300]
    return f"HTTP {response.status_code}: {detail}"


def _unpacked_size(archive: Path) -> int:
    import zipfile

    try:
        with zipfile.ZipFile(archive) as zf:
            return sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise DrillFailed("archive", f"not a readable zip archive ({exc})") from None


def _verify_restored(root: Path) -> dict[str, Any]:
    """Count the restored database's rows and check every file's content (blocking)."""
    db = root / "plexichat.sqlite3"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        check = [str(r[0]) for r in conn.execute("PRAGMA integrity_check(20)")]
        counts = {t: int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                  for t in COUNTED}
        rows = conn.execute("SELECT id, size, sha256 FROM files").fetchall()
    finally:
        conn.close()
    problems: list[str] = []
    verified = 0
    for file_id, size, digest in rows:
        if not isinstance(file_id, str) or not _FILE_ID.fullmatch(file_id):
            # The id comes from the archive's database: "../../.ssh/id_rsa" must not make
            # the drill hash (and report the size of) a file outside the drill home.
            problems.append(f"file {str(file_id)[:60]!r}: not a file id")
            continue
        blob = root / "files" / file_id[:2] / file_id
        if not blob.is_file():
            problems.append(f"file {file_id}: missing")
            continue
        if blob.stat().st_size != size:
            problems.append(f"file {file_id}: {blob.stat().st_size} bytes, {size} recorded")
            continue
        actual = sha256_of(blob)
        if actual != digest:
            problems.append(f"file {file_id}: SHA-256 differs from the recorded one")
            continue
        verified += 1
    return {"integrity": check, "counts": counts, "files_checked": len(rows),
            "files_verified": verified, "file_problems": problems[:20]}


async def run_drill(archive: Path, checksum: str, work_root: Path,
                    progress: Callable[[int, str], None] | None = None,
                    api_settings: Any = None) -> dict[str, Any]:
    """Run a restore drill of ``archive`` (whose SHA-256 should be ``checksum``) in a
    temp home under ``work_root``; returns the comparison (``passed`` says it all).

    Raises :class:`DrillFailed` when the drill server refuses the upload or the restore
    (a damaged archive, a checksum that does not match).
    """
    from plexichat_desktop.core.paths import AppPaths
    from plexichat_desktop.core.settings import ApiSettings
    from plexichat_desktop.server.v1.backup import BackupError
    from plexichat_desktop.server.v1.service import ApiV1

    def step(percent: int, message: str) -> None:
        if progress is not None:
            progress(percent, message)

    started = time.monotonic()
    try:
        manifest = await asyncio.to_thread(read_manifest, archive)
    except ArchiveProblem as exc:
        raise DrillFailed("manifest", str(exc)) from None
    work_root.mkdir(parents=True, exist_ok=True)
    unpacked = await asyncio.to_thread(_unpacked_size, archive)
    # The restore unpacks into a staging folder and builds a clean database beside it.
    need = 2 * unpacked + archive.stat().st_size
    free = shutil.disk_usage(work_root).free
    if free < need:
        raise DrillFailed("space", f"{work_root} has {free} bytes free; the drill needs "
                                   f"about {need} (set work_dir to a roomier folder)")
    home = Path(tempfile.mkdtemp(prefix=DRILL_PREFIX, dir=work_root))
    api: Any = None
    try:
        step(5, "building the throw-away server")
        base = ApiSettings() if api_settings is None else api_settings
        # Cheap password hashing and no limits that a drill could trip over.
        settings = base.model_copy(update={
            "scrypt_cost": 4, "login_rate_limit": 0, "register_rate_limit": 0,
            "requests_per_minute": 0, "max_backups": 5,
            "max_backup_mb": max(float(base.max_backup_mb),
                                 archive.stat().st_size / (1 << 20) + 1),
            # The live server may allow more than the default; the drill must not refuse
            # what the live server would restore (space was checked above).
            "max_restore_mb": max(float(base.max_restore_mb), unpacked / (1 << 20) + 1)})
        paths = AppPaths(home / "config", home / "data", home / "cache", home / "logs")
        api = await asyncio.to_thread(ApiV1, paths, settings)
        owner = secrets.token_urlsafe(24)
        api.is_owner = lambda headers: headers.get("x-plexichat-app-token") == owner
        transport = httpx.ASGITransport(app=api.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1",
                                     timeout=600) as client:
            password = _password()
            step(15, "creating the drill administrator")
            response = await client.post("/auth/register", headers={
                "X-PlexiChat-App-Token": owner}, json={
                "username": "drill_admin", "email": "drill@example.org",
                "password": password, "terms_accepted": True})
            if response.status_code >= 400:
                raise DrillFailed("register", _detail(response))
            response = await client.post("/auth/login", json={
                "username": "drill_admin", "password": password})
            if response.status_code >= 400:
                raise DrillFailed("login", _detail(response))
            login = response.json()
            auth = {"Authorization": f"Bearer {login['access_token']}"}
            response = await client.get("/users/me", headers=auth)
            if response.status_code >= 400:
                raise DrillFailed("login", _detail(response))
            user_id = response.json()["id"]
            step(25, "handing the archive to the drill server")
            # What POST /backup/upload does once the body is on disk, without the body:
            # over in-process ASGI a multipart upload would sit in memory whole, and
            # archives can be gigabytes. A hard link costs nothing on the same disk.
            staged = home / "incoming.zip"
            try:
                await asyncio.to_thread(os.link, archive, staged)
            except OSError:
                await asyncio.to_thread(shutil.copyfile, archive, staged)
            try:
                record = await asyncio.to_thread(api.backups.adopt_upload, staged, checksum,
                                                 user_id, "restore drill")
            except BackupError as exc:
                raise DrillFailed("upload", f"HTTP {exc.status}: {exc.detail}") from None
            drill_id = record["id"]
            step(45, "restoring into the drill server")
            response = await client.post(f"/backup/{drill_id}/restore", headers=auth,
                                         json={"confirm": True, "checksum": checksum})
            if response.status_code >= 400:
                raise DrillFailed("restore", _detail(response))
            reported = response.json().get("counts") or {}
        step(70, "checking the restored data")
        found = await asyncio.to_thread(_verify_restored, api.root)
    finally:
        if api is not None:
            with contextlib.suppress(Exception):
                await api.stop()
        await asyncio.to_thread(shutil.rmtree, home, True)
    expected = manifest.get("counts") or {}
    tables = [{"table": t, "manifest": expected.get(t), "reported": reported.get(t),
               "restored": found["counts"][t],
               "ok": expected.get(t) == reported.get(t) == found["counts"][t]}
              for t in COUNTED]
    files_ok = (found["files_verified"] == found["files_checked"]
                and manifest.get("file_count") in (None, found["files_checked"]))
    passed = (all(t["ok"] for t in tables) and found["integrity"] == ["ok"] and files_ok)
    step(100, "drill passed" if passed else "drill found differences")
    return {"passed": passed, "tables": tables, "integrity": found["integrity"],
            "files_checked": found["files_checked"], "files_verified": found["files_verified"],
            "manifest_file_count": manifest.get("file_count"),
            "file_problems": found["file_problems"],
            "seconds": round(time.monotonic() - started, 2),
            "manifest": {k: manifest.get(k) for k in ("created_at", "schema_version",
                                                       "app_version")}}


