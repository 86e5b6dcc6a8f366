"""``/backup``: backups of the v1 data (administrators only).

``create`` works in the background (202, then poll ``/{id}/status``, or ``?wait=true``);
``download`` sends the zip with its SHA-256 in ``X-Content-SHA256``; ``restore`` checks that
checksum (and an expected one, when given) before replacing every table and file. Restoring
also restores the sessions of that time: tokens issued after the backup stop working.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import Field

from plexichat_desktop.server.v1.backup import BackupError
from plexichat_desktop.server.v1.common import (
    Body,
    Offset,
    done,
    invalid,
    limit_query,
    new_id,
    page,
)
from plexichat_desktop.server.v1.deps import Admin, Api
from plexichat_desktop.server.v1.service import ApiV1

router = APIRouter(prefix="/backup", tags=["backup"])

SHA256 = r"^[0-9a-fA-F]{64}$"
WAIT_LIMIT_S = 300.0


class CreateBody(Body):
    name: str | None = Field(None, max_length=200)


class RestoreBody(Body):
    # Strict: "yes", 1 or "on" replaced all data as true did (pydantic's lax booleans).
    confirm: bool = Field(strict=True,
                          description="Must be true: a restore replaces all v1 data.")
    checksum: str | None = Field(None, pattern=SHA256,
                                 description="Expected SHA-256 of the archive.")


def public(record: dict[str, Any]) -> dict[str, Any]:
    """A backup record as the API shows it."""
    body = {k: v for k, v in record.items() if k != "created_ts"}
    body["download_url"] = (f"/api/v1/backup/{record['id']}/download"
                            if record.get("status") == "completed" else None)
    return body


def _get(api: ApiV1, backup_id: str) -> dict[str, Any]:
    record = api.backups.get(backup_id)
    if record is None:
        raise HTTPException(404, f"backup '{backup_id}' not found")
    return record


@router.post("/create", status_code=202)
async def create(user: Admin, api: Api, response: Response, body: CreateBody | None = None,
                 wait: bool = False) -> dict[str, Any]:
    """Start a backup: 202 with its record; ``?wait=true`` answers 201 when it is done."""
    record = api.backups.start_create(user.id, body.name if body else None)
    if wait:
        await api.backups.wait(record["id"], WAIT_LIMIT_S)
        record = _get(api, record["id"])
        response.status_code = 201
    return public(record)


@router.get("/")
@router.get("", include_in_schema=False)
async def list_backups(user: Admin, api: Api, limit: Annotated[int, limit_query(50, 100)] = 50,
                       offset: Offset = 0) -> dict[str, Any]:
    """Every backup, newest first; ``max_backups``: how many finished ones are kept (a new
    one deletes the oldest beyond that)."""
    records = await asyncio.to_thread(api.backups.list)
    chunk = records[offset: offset + limit]
    return page("backups", [public(r) for r in chunk], len(records), limit, offset,
                max_backups=api.backups.keep)


@router.post("/upload", status_code=201)
async def upload(
    user: Admin, api: Api,
    file: Annotated[UploadFile, File(description="A backup archive from /download.")],
    checksum: Annotated[str, Form(pattern=SHA256)],
    name: Annotated[str | None, Form(max_length=200)] = None,
) -> dict[str, Any]:
    """Add a downloaded archive (from this or another server), checked against
    ``checksum``; restore it afterwards with ``/{id}/restore``."""
    target = api.uploads_tmp / f"{new_id()}.zip"

    def save() -> None:
        file.file.seek(0)
        with target.open("wb") as out:
            shutil.copyfileobj(file.file, out, 1 << 20)

    try:
        await asyncio.to_thread(save)
        record = await asyncio.to_thread(api.backups.adopt_upload, target, checksum, user.id,
                                         name)
    except BackupError as exc:
        raise HTTPException(exc.status, exc.detail) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            Path(target).unlink()
    return public(record)


@router.get("/{backup_id}/status")
async def status(backup_id: str, user: Admin, api: Api) -> dict[str, Any]:
    """A backup's record: status pending, running, completed or failed."""
    return public(_get(api, backup_id))


@router.get("/{backup_id}")
async def get_backup(backup_id: str, user: Admin, api: Api) -> dict[str, Any]:
    return public(_get(api, backup_id))


@router.get("/{backup_id}/download", response_class=FileResponse)
async def download(backup_id: str, user: Admin, api: Api) -> FileResponse:
    """The zip archive; ``X-Content-SHA256`` carries its checksum."""
    record = _get(api, backup_id)
    if record.get("status") != "completed":
        raise HTTPException(409, f"backup '{backup_id}' is {record.get('status')}; only a "
                                 f"completed backup can be downloaded")
    path = api.backups.archive(backup_id)
    if not path.is_file():
        raise HTTPException(409, f"backup '{backup_id}' has no archive on disk")
    return FileResponse(path, media_type="application/zip",
                        filename=f"plexichat-backup-{backup_id}.zip",
                        headers={"X-Content-SHA256": record["checksum"]})


def _session_ids(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT id FROM sessions")}


@router.post("/{backup_id}/restore")
async def restore(backup_id: str, body: RestoreBody, user: Admin, api: Api) -> dict[str, Any]:
    """Verify the archive's SHA-256, then replace all v1 data with the backup's."""
    if not body.confirm:
        raise invalid("confirm", "must be true: a restore replaces all v1 data", False)
    try:
        result = await api.backups.restore(backup_id, body.checksum)
    except BackupError as exc:
        raise HTTPException(exc.status, exc.detail) from None
    # Sockets of sessions that the restored data does not know any more are closed.
    alive = await api.store.read(_session_ids)
    stale = {c.session_id for c in api.hub.connections.values()} - alive
    await api.hub.close_sessions(stale, reason="data restored from a backup")
    api.webhooks.wake()
    record = result["backup"]
    return done("Backup restored", backup_id=backup_id, checksum=record["checksum"],
                checksum_verified=True, counts=result["counts"],
                restored_at=record["last_restored_at"])


@router.delete("/{backup_id}")
async def delete(backup_id: str, user: Admin, api: Api) -> dict[str, Any]:
    record = _get(api, backup_id)
    if record.get("status") in ("pending", "running"):
        raise HTTPException(409, f"backup '{backup_id}' is still being made")
    await asyncio.to_thread(api.backups.delete, backup_id)
    return done("Backup deleted", backup_id=backup_id)
