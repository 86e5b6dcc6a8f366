"""``/files``: uploads (size and type limits), downloads, sharing."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mimetypes
import os
import re
import sqlite3
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import FileResponse
from pydantic import Field

from plexichat_desktop.core.permissions import FILE_MODE, private_dir
from plexichat_desktop.server.v1 import accounts
from plexichat_desktop.server.v1.common import (
    Body,
    Offset,
    done,
    invalid,
    iso,
    limit_query,
    new_id,
    not_found,
    now,
    or_404,
    owned,
    page,
)
from plexichat_desktop.server.v1.deps import Api, User
from plexichat_desktop.server.v1.store import one, rows, scalar

router = APIRouter(prefix="/files", tags=["files"])

CHUNK = 1 << 20
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
VISIBLE_SQL = ("(f.owner_id = :me OR f.is_public = 1 OR EXISTS (SELECT 1 FROM file_shares s "
               "WHERE s.file_id = f.id AND s.user_id = :me))")


class ShareBody(Body):
    user_id: str = Field(min_length=1, max_length=64)
    permission: Literal["read"] = "read"


def clean_filename(raw: str | None) -> str:
    """The last path component of ``raw`` without control characters, at most 255 chars."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _CONTROL.sub("", name).strip().strip(".")
    if len(name) > 255:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 255 - len(ext) - 1] + dot + ext) if dot else name[:255]
    return name


def file_dict(row: dict[str, Any], me: str, shared_with: list[dict[str, Any]] | None = None
              ) -> dict[str, Any]:
    """``FileInfo``."""
    body = {
        "id": row["id"],
        "filename": row["filename"],
        "content_type": row["content_type"],
        "file_type": row["extension"].lstrip("."),
        "size": row["size"],
        "sha256": row["sha256"],
        "uploaded_by": row["owner_id"],
        "uploaded_at": iso(row["created_at"]),
        "description": row["description"],
        "is_public": bool(row["is_public"]),
        "download_count": row["download_count"],
        "is_owner": row["owner_id"] == me,
    }
    if shared_with is not None:
        body["shared_with"] = shared_with
    return body


def _store_upload(source: Any, target: Path, limit: int) -> tuple[int, str] | None:
    """Copy the spooled upload to ``target``; None (and nothing left) when over ``limit``."""
    private_dir(target.parent)
    digest = hashlib.sha256()
    size = 0
    source.seek(0)
    partial = target.with_name(target.name + ".part")
    # Created 0600 whatever the umask: uploads may be private files.
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE),
                   "wb") as out:
        while chunk := source.read(CHUNK):
            size += len(chunk)
            if size > limit:
                break
            digest.update(chunk)
            out.write(chunk)
    if size > limit:
        partial.unlink()
        return None
    os.replace(partial, target)
    return size, digest.hexdigest()


def _insert(conn: sqlite3.Connection, row: dict[str, Any]) -> dict[str, Any]:
    conn.execute(
        "INSERT INTO files (id, owner_id, filename, extension, content_type, size, sha256, "
        "description, is_public, created_at) VALUES (:id, :owner_id, :filename, :extension, "
        ":content_type, :size, :sha256, :description, :is_public, :created_at)", row)
    stored = one(conn.execute("SELECT * FROM files WHERE id = ?", (row["id"],)))
    assert stored is not None
    return stored


@router.post("/upload", status_code=201)
async def upload(
    user: User, api: Api,
    file: Annotated[UploadFile, File(description="The file (multipart field 'file').")],
    description: Annotated[str | None, Form(max_length=1000)] = None,
    is_public: Annotated[bool, Form()] = False,
) -> dict[str, Any]:
    """Store an uploaded file. 413 over ``[api] max_upload_mb``; 400 for a file type not in
    ``[api] allowed_upload_types``."""
    name = clean_filename(file.filename)
    if not name:
        raise invalid("file", "the upload has no file name", file.filename)
    extension = Path(name).suffix.lower()
    allowed = api.upload_types
    if extension not in allowed:
        raise HTTPException(400, f"file: type '{extension or '(none)'}' is not allowed; "
                                 f"allowed: {', '.join(sorted(allowed))}")
    limit = int(api.settings.max_upload_mb * (1 << 20))
    file_id = new_id()
    target = api.file_path(file_id)
    stored = await asyncio.to_thread(_store_upload, file.file, target, limit)
    if stored is None:
        raise HTTPException(413, f"file: larger than the limit of "
                                 f"{api.settings.max_upload_mb:g} MiB ({limit} bytes)")
    size, sha256 = stored
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    try:
        row = await api.store.write(_insert, {
            "id": file_id, "owner_id": user.id, "filename": name, "extension": extension,
            "content_type": content_type, "size": size, "sha256": sha256,
            "description": description, "is_public": int(is_public), "created_at": now()})
    except BaseException:
        with contextlib.suppress(OSError):
            target.unlink()
        raise
    info = file_dict(row, user.id, [])
    api.emit("file.uploaded", info, [user.id])
    return info


def _visible(conn: sqlite3.Connection, file_id: str, me: str) -> dict[str, Any] | None:
    return one(conn.execute(f"SELECT f.* FROM files f WHERE f.id = :id AND {VISIBLE_SQL}",
                            {"id": file_id, "me": me}))


def _shares(conn: sqlite3.Connection, file_id: str) -> list[dict[str, Any]]:
    return [{"user_id": r["user_id"], "username": r["username"],
             "permission": r["permission"], "shared_at": iso(r["created_at"])}
            for r in conn.execute(
                "SELECT s.user_id, u.username, s.permission, s.created_at FROM file_shares s "
                "JOIN users u ON u.id = s.user_id WHERE s.file_id = ? ORDER BY s.created_at",
                (file_id,))]


def _info(conn: sqlite3.Connection, file_id: str, me: str
          ) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    row = _visible(conn, file_id, me)
    if row is None:
        return None, None
    return row, _shares(conn, file_id) if row["owner_id"] == me else None


@router.get("/stats")
async def stats(user: User, api: Api) -> dict[str, Any]:
    """Figures about the caller's own files."""
    def query(conn: sqlite3.Connection) -> dict[str, Any]:
        totals = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(download_count), 0), "
            "COALESCE(SUM(is_public), 0) FROM files WHERE owner_id = ?", (user.id,)).fetchone()
        types = {r[0].lstrip(".") or "(none)": r[1] for r in conn.execute(
            "SELECT extension, COUNT(*) FROM files WHERE owner_id = ? GROUP BY extension "
            "ORDER BY 2 DESC", (user.id,))}
        shared = scalar(conn, "SELECT COUNT(DISTINCT s.file_id) FROM file_shares s JOIN files f "
                              "ON f.id = s.file_id WHERE f.owner_id = ?", (user.id,))
        shared_with_me = scalar(conn, "SELECT COUNT(*) FROM file_shares WHERE user_id = ?",
                                (user.id,))
        return {"total_files": totals[0], "total_size_bytes": totals[1],
                "total_downloads": totals[2], "file_types": types, "public_files": totals[3],
                "shared_files": shared, "shared_with_me": shared_with_me}
    return await api.store.read(query)


def _list(conn: sqlite3.Connection, me: str, scope: str, file_type: str | None, limit: int,
          offset: int) -> tuple[list[dict[str, Any]], int]:
    where = {
        "own": "f.owner_id = :me",
        "shared": "EXISTS (SELECT 1 FROM file_shares s WHERE s.file_id = f.id "
                  "AND s.user_id = :me)",
        "public": "f.is_public = 1",
        "all": VISIBLE_SQL,
    }[scope]
    args: dict[str, Any] = {"me": me, "limit": limit, "offset": offset}
    if file_type:
        where += " AND f.extension = :ext"
        args["ext"] = "." + file_type.lower().lstrip(".")
    total = scalar(conn, f"SELECT COUNT(*) FROM files f WHERE {where}", args)
    found = rows(conn.execute(f"SELECT f.* FROM files f WHERE {where} ORDER BY f.seq DESC "
                              f"LIMIT :limit OFFSET :offset", args))
    return found, total


@router.get("/")
@router.get("", include_in_schema=False)
async def list_files(
    user: User, api: Api, scope: Literal["own", "shared", "public", "all"] = "own",
    file_type: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, limit_query(20, 100)] = 20, offset: Offset = 0,
) -> dict[str, Any]:
    """The caller's files (``scope=own``), files shared with them, public files, or all of
    these; newest first; ``file_type`` filters by extension (``pdf``)."""
    found, total = await api.store.read(_list, user.id, scope, file_type, limit, offset)
    return page("files", [file_dict(r, user.id) for r in found], total, limit, offset)


@router.get("/{file_id}/info")
async def info(file_id: str, user: User, api: Api) -> dict[str, Any]:
    """A file's metadata; its owner also sees whom it is shared with."""
    row, shares = await api.store.read(_info, file_id, user.id)
    return file_dict(or_404(row, "file", file_id), user.id, shares)


def _count_download(conn: sqlite3.Connection, file_id: str, me: str) -> dict[str, Any] | None:
    row = _visible(conn, file_id, me)
    if row is not None:
        conn.execute("UPDATE files SET download_count = download_count + 1 WHERE id = ?",
                     (file_id,))
    return row


@router.get("/{file_id}/download", response_class=FileResponse)
async def download(file_id: str, user: User, api: Api) -> FileResponse:
    """The file's content as an attachment (never rendered inline)."""
    row = or_404(await api.store.write(_count_download, file_id, user.id), "file", file_id)
    path = api.file_path(file_id)
    if not path.is_file():
        raise HTTPException(404, f"file '{file_id}': its content is missing on disk")
    return FileResponse(path, media_type=row["content_type"], filename=row["filename"],
                        content_disposition_type="attachment",
                        headers={"X-Content-SHA256": row["sha256"]})


def _share(conn: sqlite3.Connection, file_id: str, me: str, body: ShareBody) -> str:
    row = owned(_visible(conn, file_id, me), me, "file", file_id,
                "only the owner can share a file")
    if accounts.get_user(conn, body.user_id) is None:
        raise not_found("user", body.user_id)
    conn.execute("INSERT INTO file_shares (file_id, user_id, permission, created_at) "
                 "VALUES (?, ?, ?, ?) ON CONFLICT (file_id, user_id) DO UPDATE SET "
                 "permission = excluded.permission", (file_id, body.user_id, body.permission,
                                                      now()))
    return row["filename"]


@router.post("/{file_id}/share")
async def share(file_id: str, body: ShareBody, user: User, api: Api) -> dict[str, Any]:
    """Let another user read a file (owner only; sharing again is harmless)."""
    if body.user_id == user.id:
        raise HTTPException(400, "user_id: you own this file already")
    filename = await api.store.write(_share, file_id, user.id, body)
    event = {"file_id": file_id, "filename": filename, "owner_id": user.id,
             "shared_with": body.user_id, "permission": body.permission}
    api.emit("file.shared", event, [user.id, body.user_id])
    return done("File shared", file_id=file_id, shared_with=body.user_id,
                permission=body.permission)


def _unshare(conn: sqlite3.Connection, file_id: str, me: str, other: str) -> None:
    owned(_visible(conn, file_id, me), me, "file", file_id,
          "only the owner can change who a file is shared with")
    removed = conn.execute("DELETE FROM file_shares WHERE file_id = ? AND user_id = ?",
                           (file_id, other)).rowcount
    if not removed:
        raise HTTPException(404, f"file '{file_id}' is not shared with user '{other}'")


@router.delete("/{file_id}/share/{user_id}")
async def unshare(file_id: str, user_id: str, user: User, api: Api) -> dict[str, Any]:
    """Stop sharing a file with a user (owner only)."""
    await api.store.write(_unshare, file_id, user.id, user_id)
    return done("File no longer shared", file_id=file_id, user_id=user_id)


def _delete(conn: sqlite3.Connection, file_id: str, me: str) -> None:
    owned(_visible(conn, file_id, me), me, "file", file_id, "only the owner can delete a file")
    conn.execute("DELETE FROM files WHERE id = ?", (file_id,))


@router.delete("/{file_id}")
async def delete(file_id: str, user: User, api: Api) -> dict[str, Any]:
    """Delete a file and its content (owner only)."""
    await api.store.write(_delete, file_id, user.id)
    with contextlib.suppress(FileNotFoundError):
        await asyncio.to_thread(api.file_path(file_id).unlink)
    return done("File deleted", file_id=file_id)
