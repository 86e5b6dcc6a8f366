"""File Manager: two panes over configured roots, undoable jobs, safe archives, search.

Layers, each usable on its own in tests: ``core`` (roots, checked paths, listings),
``ops`` (copy/move/trash/undo, atomic writes), ``archives`` (create/list/test/extract with
bomb and traversal checks), ``search`` and ``hashing``; ``worker`` runs their blocking
parts in threads as host jobs with progress and a cancel that cleans up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from file_manager import hashing, ops, search, sync
from file_manager.config import FileManagerConfig
from file_manager.core import FieldError, Roots, check_name, list_folder, require_writable
from file_manager.worker import Ctl, run_in_thread
from plexichat_desktop.plugins.api import Plugin, PluginContext
from plexichat_desktop.plugins.files import user_modes, write_atomic
from plexichat_desktop.plugins.jobs import JobHandle

if TYPE_CHECKING:
    # At run time each archive route imports it: it pulls in tarfile, zipfile, bz2 and
    # lzma, which app start-up (every plugin's setup) should not pay for.
    from file_manager import archives


# One line of the search process's output: a match with its lines is a few KiB.
SEARCH_LINE_LIMIT = 1024 * 1024


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Sources(_Body):
    root: str = Field(max_length=40)
    paths: list[str] = Field(min_length=1, max_length=10_000)


class Transfer(Sources):
    dest_root: str = Field(max_length=40)
    dest: str = ""
    conflict: Literal["skip", "rename", "overwrite"] = "skip"


class ArchiveCreate(Sources):
    dest_root: str = Field(max_length=40)
    dest: str = ""
    name: str
    format: Literal["zip", "tar.gz", "tar.xz", "tar.zst", "7z"] = "zip"
    # AES-256 (zip only); never logged or kept.
    password: str | None = Field(None, min_length=1, max_length=1024)


class ArchivePath(_Body):
    root: str = Field(max_length=40)
    path: str
    password: str | None = Field(None, max_length=1024)


class ArchiveExtract(ArchivePath):
    dest_root: str = Field(max_length=40)
    dest: str = ""


class HashRequest(ArchivePath):
    algorithms: list[Literal["sha256", "blake3", "sha1", "md5"]] = Field(
        default_factory=lambda: ["sha256"], min_length=1, max_length=4)


class DuplicatesRequest(_Body):
    root: str = Field(max_length=40)
    path: str = ""
    min_size: int = Field(1, ge=0)
    hidden: bool = False


class SyncPlanRequest(_Body):
    root: str = Field(max_length=40)
    path: str = ""
    cloud: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")


class SyncApplyRequest(_Body):
    plan_id: str = Field(max_length=40)
    approve: list[str] = Field(max_length=100_000)


class Rename(_Body):
    root: str = Field(max_length=40)
    path: str
    name: str


class Mkdir(_Body):
    root: str = Field(max_length=40)
    path: str = ""
    name: str


def error(exc: FieldError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.status)


async def parse(request: Request, model: type[Any]) -> Any:
    """The request's JSON body as ``model``; a :class:`FieldError` naming the first bad
    field otherwise (the host's 422 lists pydantic's raw errors; this says it in words)."""
    try:
        data = await request.json()
    except ValueError:
        raise FieldError(400, "body", "must be a JSON object") from None
    if not isinstance(data, dict):
        raise FieldError(400, "body", "must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise FieldError(422, where, first["msg"]) from None


def _os_error(exc: OSError, field: str) -> FieldError:
    if isinstance(exc, PermissionError):
        return FieldError(403, field, f"permission denied ({exc.filename})")
    return FieldError(409, field, f"{exc.strerror or exc} ({exc.filename})")


class FileManagerPlugin(Plugin):
    """Serves the two-pane page and its API under /plugins/file_manager/api/."""

    settings_model = FileManagerConfig

    def setup(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.config: FileManagerConfig = ctx.config
        self.roots = Roots(self.config.root_paths())
        # Kept on disk beside its stash: an app restart must not lose the way back (the
        # overwritten originals stayed in the stash, with nothing left to restore them).
        self._undo_file = ctx.data_dir / "undo" / "last.json"
        self.last_undo: ops.UndoRecord | None = self._load_undo()
        self._undo_lock = asyncio.Lock()
        self.plans: dict[str, tuple[sync.Plan, Path]] = {}
        self._sync_lock = asyncio.Lock()
        routes: list[tuple[str, Any, list[str]]] = [
            ("/roots", self.get_roots, ["GET"]),
            ("/list", self.get_list, ["GET"]),
            ("/ops/copy", self.op_copy, ["POST"]),
            ("/ops/move", self.op_move, ["POST"]),
            ("/ops/rename", self.op_rename, ["POST"]),
            ("/ops/mkdir", self.op_mkdir, ["POST"]),
            ("/ops/trash", self.op_trash, ["POST"]),
            ("/ops/undo", self.op_undo, ["POST"]),
            ("/ops/undo", self.get_undo, ["GET"]),
            ("/archive/list", self.archive_list, ["GET"]),
            ("/archive/create", self.archive_create, ["POST"]),
            ("/archive/test", self.archive_test, ["POST"]),
            ("/archive/extract", self.archive_extract, ["POST"]),
            ("/search", self.search, ["GET"]),
            ("/hash", self.hash, ["POST"]),
            ("/duplicates", self.duplicates, ["POST"]),
            ("/metadata", self.metadata, ["GET"]),
            ("/sync/status", self.sync_status, ["GET"]),
            ("/sync/plan", self.sync_plan, ["POST"]),
            ("/sync/apply", self.sync_apply, ["POST"]),
        ]
        for path, endpoint, methods in routes:
            ctx.add_route(path, self._guarded(endpoint), methods=methods)
        ctx.logger.info("roots: %s", ", ".join(str(r.path) for r in self.roots.items))

    def _guarded(self, endpoint: Any) -> Any:
        """Every route answers a FieldError as 4xx JSON naming the field."""
        async def route(request: Request) -> Any:
            try:
                return await endpoint(request)
            except FieldError as exc:
                return error(exc)
            except OSError as exc:
                # A file system refusal found while checking a request (permissions, a
                # vanished file, a full disk) is the user's situation, not a server bug.
                return error(_os_error(exc, "path"))
        route.__name__ = endpoint.__name__
        route.__doc__ = endpoint.__doc__
        return route

    # -- browsing ----------------------------------------------------------------------
    async def get_roots(self, request: Request) -> Any:
        """The configured roots (id, name, absolute path) and what is available."""
        return {"roots": [r.to_dict() for r in self.roots.items],
                "capabilities": self.capabilities(), "degraded": self.ctx.degraded}

    def capabilities(self) -> dict[str, Any]:
        from file_manager import archives
        return {"trash": self.ctx.has("send2trash"), "blake3": hashing.has_blake3(),
                "aes_zip": archives.has_aes(),
                "create_formats": [f for f in archives.CREATE_FORMATS
                                   if self.ctx.has(archives.OPTIONAL.get(f, f))]}

    async def get_list(self, request: Request) -> Any:
        """``?root=&path=&sort=name|size|mtime|type&order=asc|desc&filter=&hidden=``."""
        q = request.query_params
        hidden = q.get("hidden", "false").lower()
        if hidden not in ("true", "false", "1", "0"):
            raise FieldError(422, "hidden", f"must be true or false, got {hidden[:20]!r}")
        return await asyncio.to_thread(
            list_folder, self.roots, q.get("root", "0"), q.get("path", ""),
            sort=q.get("sort", "name"), order=q.get("order", "asc"),
            name_filter=q.get("filter", ""), hidden=hidden in ("true", "1"),
            limit=self.config.list_max_entries)

    # -- operations --------------------------------------------------------------------
    def _sources(self, root: str, paths: list[str], field: str = "paths") -> list[Path]:
        out = []
        for i, rel in enumerate(paths):
            name = f"{field}[{i}]"
            path = self.roots.resolve(root, rel, field=name, follow=False)
            if path == self.roots.get(root).path:
                raise FieldError(400, name, "is the root itself")
            if not os.path.lexists(path):
                raise FieldError(404, name, f"{rel!r} does not exist")
            out.append(path)
        return out

    def _dest_folder(self, root: str, rel: str) -> Path:
        folder = self.roots.resolve(root, rel, field="dest", root_field="dest_root")
        if not folder.is_dir():
            raise FieldError(404 if not folder.exists() else 409, "dest",
                             f"{rel!r} is not an existing folder")
        require_writable(folder, "dest", rel or "/")
        return folder

    def _new_undo(self, kind: str, description: str) -> ops.UndoRecord:
        stash = self.ctx.data_dir / "undo" / os.urandom(6).hex()
        return ops.UndoRecord(kind, description, stash_dir=str(stash))

    def _keep_undo(self, record: ops.UndoRecord) -> None:
        """One-step undo: the newest operation replaces the one before (and its stash)."""
        if record.empty:
            return
        old = self.last_undo
        self._set_undo(record)
        if old and old.stash_dir and old.stash_dir != record.stash_dir:
            shutil.rmtree(old.stash_dir, ignore_errors=True)

    def _set_undo(self, record: ops.UndoRecord | None) -> None:
        """Make ``record`` the one step of undo, on disk too (written whole, then renamed
        over the old file: a crash leaves the old record or the new one)."""
        self.last_undo = record
        try:
            if record is None:
                self._undo_file.unlink(missing_ok=True)
                return
            write_atomic(self._undo_file, json.dumps(dataclasses.asdict(record)))
        except OSError as exc:  # undo still works until the app stops
            self.ctx.logger.warning("the undo step could not be saved to %s: %s",
                                    self._undo_file, exc)

    def _load_undo(self) -> ops.UndoRecord | None:
        try:
            data = json.loads(self._undo_file.read_text(encoding="utf-8"))
            record = ops.UndoRecord(
                kind=str(data["kind"]), description=str(data["description"]),
                created=[str(p) for p in data["created"]],
                moved=[(str(a), str(b)) for a, b in data["moved"]],
                stashed=[(str(a), str(b)) for a, b in data["stashed"]],
                trashed=[(str(a), str(b), str(c)) for a, b, c in data["trashed"]],
                stash_dir=None if data["stash_dir"] is None else str(data["stash_dir"]),
                at=float(data["at"]),
                fingerprints={str(k): [int(n) for n in v]
                              for k, v in (data.get("fingerprints") or {}).items()})
            self._check_undo(record)
            return record
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.ctx.logger.warning("the saved undo step %s could not be read (%s); there is "
                                    "nothing to undo", self._undo_file, exc)
            return None

    def _check_undo(self, record: ops.UndoRecord) -> None:
        """A record read from disk may only touch what one of ours could: its stash in
        the plugin's undo folder, every other path inside a root configured now (a root
        removed since is no longer the plugin's to change; ".." and symlinked folders do
        not count as inside), trashed items in a trash of their own. ValueError else."""
        undo_dir = (self.ctx.data_dir / "undo").resolve()
        stash = Path(record.stash_dir).resolve() if record.stash_dir else None
        if stash is not None and stash.parent != undo_dir:
            raise ValueError(f"its stash {record.stash_dir} is not in {undo_dir}")
        record.stash_dir = str(stash) if stash is not None else None  # what rmtree gets

        def plain(path: str) -> Path:
            # No ".." (a lexical check takes "<root>/../victim" as inside), the folder
            # resolved (a symlinked folder is where it leads), the name itself not (a link
            # is the link).
            if not os.path.isabs(path) or os.path.normpath(path) != path:
                raise ValueError(f"{path} is not a plain absolute path")
            given = Path(path)
            return given.parent.resolve() / given.name

        originals = [*record.created, *(p for pair in record.moved for p in pair),
                     *(original for original, _ in record.stashed),
                     *(original for original, _, _ in record.trashed)]
        for path in originals:
            if self.roots.locate(plain(path)) is None:
                raise ValueError(f"{path} is in none of the configured folders")
        for _, copy in record.stashed:
            if stash is None or plain(copy).parent != stash:
                raise ValueError(f"{copy} is not in its stash")
        for original, file, info in record.trashed:
            info_path, file_path = plain(info), plain(file)
            trashes = {d.resolve() for d in ops.trash_info_dirs(Path(original))}
            if (info_path.parent not in trashes
                    or info_path.suffix != ".trashinfo"
                    or file_path != info_path.parent.parent / "files" / info_path.stem):
                raise ValueError(f"{file} is not in a trash of {original}")

    async def _start(self, request: Request, name: str, work: Any, *args: Any) -> Any:
        job = self.ctx.jobs.start(name, work, *args)
        if request.query_params.get("wait", "").lower() in ("1", "true"):
            job = await self.ctx.jobs.wait(job.id)
        return JSONResponse(job.to_dict(), status_code=202 if not job.state.finished else 200)

    async def _transfer(self, request: Request, move: bool) -> Any:
        body: Transfer = await parse(request, Transfer)
        sources = self._sources(body.root, body.paths)
        dest = self._dest_folder(body.dest_root, body.dest)
        for i, src in enumerate(sources):
            if src.is_dir() and not src.is_symlink() and (dest == src or
                                                          dest.is_relative_to(src)):
                raise FieldError(409, "dest", f"cannot {'move' if move else 'copy'} "
                                 f"{src.name!r} into itself (paths[{i}])")
            if move:
                require_writable(src.parent, f"paths[{i}]", body.paths[i])
            if src.parent == dest and (move or body.conflict == "overwrite"):
                raise FieldError(409, "dest", f"{src.name!r} (paths[{i}]) is already in that "
                                 "folder; " + ("moving it there does nothing" if move else
                                               "overwriting it with itself would lose it"))
        verb = "move" if move else "copy"
        label = f"{verb} {len(sources)} item(s) to {body.dest or '/'}"
        return await self._start(request, verb, self._transfer_job, sources, dest,
                                 body.conflict, move, label)

    async def _transfer_job(self, job: JobHandle, sources: list[Path], dest: Path,
                            conflict: str, move: bool, label: str) -> dict[str, Any]:
        record = self._new_undo("move" if move else "copy", label)

        def work(ctl: Ctl) -> ops.Outcome:
            total = sum(ops.tree_size(s) for s in sources)
            mover = ops.Mover(ctl, conflict, record, Path(str(record.stash_dir)), move=move,
                              total=total)
            return mover.run([(s, dest) for s in sources])

        try:
            outcome = await run_in_thread(job, work)
        finally:
            # Even a cancelled or failed run keeps what it finished undoable.
            self._keep_undo(record)
        return {**outcome.to_dict(), "undo": not record.empty}

    async def op_copy(self, request: Request) -> Any:
        """Copy ``paths`` of ``root`` into ``dest_root``/``dest`` (a job)."""
        return await self._transfer(request, move=False)

    async def op_move(self, request: Request) -> Any:
        """Move ``paths`` of ``root`` into ``dest_root``/``dest`` (a job)."""
        return await self._transfer(request, move=True)

    async def op_rename(self, request: Request) -> Any:
        """Rename ``path`` to ``name`` in the same folder (a job)."""
        body: Rename = await parse(request, Rename)
        src = self._sources(body.root, [body.path], field="path")[0]
        name = check_name(body.name)
        target = src.parent / name
        require_writable(src.parent, "path", body.path)
        if os.path.lexists(target) and target != src:
            raise FieldError(409, "name", f"{name!r} already exists in that folder")
        record = self._new_undo("rename", f"rename {src.name} to {name}")

        async def work(job: JobHandle) -> dict[str, Any]:
            try:
                await asyncio.to_thread(os.rename, src, target)
            except OSError as exc:
                raise RuntimeError(f"renaming {src} failed: {exc.strerror}") from None
            record.moved.append((str(src), str(target)))
            self._keep_undo(record)
            return {"done": [str(target)]}

        return await self._start(request, "rename", work)

    async def op_mkdir(self, request: Request) -> Any:
        """Create folder ``name`` inside ``path`` (a job)."""
        body: Mkdir = await parse(request, Mkdir)
        parent = self.roots.resolve(body.root, body.path)
        if not parent.is_dir():
            raise FieldError(404, "path", f"{body.path!r} is not an existing folder")
        name = check_name(body.name)
        require_writable(parent, "path", body.path or "/")
        target = parent / name
        if os.path.lexists(target):
            raise FieldError(409, "name", f"{name!r} already exists")
        record = self._new_undo("mkdir", f"new folder {name}")

        async def work(job: JobHandle) -> dict[str, Any]:
            await asyncio.to_thread(target.mkdir)
            # As the user's session makes folders (0755 mostly): the app's own umask
            # made it 0700, unreadable to the group in a shared place.
            await asyncio.to_thread(os.chmod, target, user_modes()[1])
            record.created.append(str(target))
            self._keep_undo(record)
            return {"done": [str(target)]}

        return await self._start(request, "mkdir", work)

    async def op_trash(self, request: Request) -> Any:
        """Send ``paths`` to the system trash (a job; undo restores them)."""
        if not self.ctx.has("send2trash"):
            raise FieldError(503, "paths", "the trash needs the send2trash package: "
                             + "; ".join(self.ctx.degraded))
        body: Sources = await parse(request, Sources)
        sources = self._sources(body.root, body.paths)
        for i, src in enumerate(sources):
            require_writable(src.parent, f"paths[{i}]", body.paths[i])
        record = self._new_undo("trash", f"trash {len(sources)} item(s)")

        async def work(job: JobHandle) -> dict[str, Any]:
            try:
                outcome = await run_in_thread(job, ops.trash, sources, record)
            finally:
                self._keep_undo(record)
            return {**outcome.to_dict(), "undo": not record.empty}

        return await self._start(request, "trash", work)

    async def get_undo(self, request: Request) -> Any:
        """What one step of undo would reverse (``null`` when nothing)."""
        return {"undo": self.last_undo.to_dict() if self.last_undo else None}

    async def op_undo(self, request: Request) -> Any:
        """Reverse the last operation (a job)."""
        record = self.last_undo
        if record is None:
            raise FieldError(409, "undo", "nothing to undo")
        self._set_undo(None)

        async def work(job: JobHandle) -> dict[str, Any]:
            async with self._undo_lock:
                return await run_in_thread(job, ops.undo, record)

        return await self._start(request, "undo", work)

    # -- archives ----------------------------------------------------------------------
    @property
    def caps(self) -> archives.Caps:
        from file_manager import archives
        return archives.Caps(self.config.max_extract_bytes, self.config.max_ratio,
                             self.config.max_members)

    def _archive(self, root: str, rel: str) -> Path:
        from file_manager import archives
        path = self.roots.resolve(root, rel)
        if not path.is_file():
            raise FieldError(404, "path", f"{rel!r} is not an existing file")
        fmt = archives.detect(path)
        if fmt is None:
            raise FieldError(415, "path", f"{path.name!r} is not an archive this plugin "
                             "reads (zip, tar, tar.gz, tar.bz2, tar.xz, tar.zst, 7z)")
        if not archives.available(fmt):
            raise FieldError(503, "path", f"{fmt} needs the {archives.OPTIONAL[fmt]} "
                             "package, which is not installed")
        return path

    async def _members(self, path: Path) -> tuple[str, list[archives.Member]]:
        from file_manager import archives
        try:
            return await asyncio.to_thread(archives.members, path, self.config.max_members)
        except archives.ArchiveError as exc:
            raise FieldError(422, "path", str(exc)) from None

    async def archive_list(self, request: Request) -> Any:
        """``?root=&path=&inner=``: the archive's members inside folder ``inner`` (browse
        it as a folder), with the first unsafe member named under ``refused``."""
        from file_manager import archives
        q = request.query_params
        path = self._archive(q.get("root", "0"), q.get("path", ""))
        inner = q.get("inner", "")
        if "\x00" in inner or len(inner) > 4096:
            raise FieldError(422, "inner", "must be a folder name inside the archive")
        fmt, found = await self._members(path)
        refused = None
        try:
            archives.check(found, self.caps, path.stat().st_size)
        except archives.ArchiveRefused as exc:
            refused = {"member": exc.member, "reason": exc.reason, "detail": str(exc)}
        return {"format": fmt, "path": q.get("path", ""), "inner": inner.strip("/"),
                "entries": archives.browse(found, inner), "members": len(found),
                "size": path.stat().st_size, "unpacked": sum(m.size for m in found),
                "refused": refused}

    async def archive_create(self, request: Request) -> Any:
        """Pack ``paths`` of ``root`` into ``dest_root``/``dest``/``name`` (a job)."""
        from file_manager import archives
        body: ArchiveCreate = await parse(request, ArchiveCreate)
        if not archives.available(body.format):
            raise FieldError(503, "format", f"{body.format} needs the "
                             f"{archives.OPTIONAL[body.format]} package, not installed")
        if body.password and body.format != "zip":
            raise FieldError(422, "password", "encryption is offered for zip only")
        if body.password and not archives.has_aes():
            raise FieldError(503, "password", "an encrypted zip needs the pyzipper "
                             "package, which is not installed")
        sources = self._sources(body.root, body.paths)
        dest = self._dest_folder(body.dest_root, body.dest)
        name = check_name(body.name)
        if not name.lower().endswith("." + body.format):
            name = f"{name}.{body.format}"
        out = dest / name
        if os.path.lexists(out):
            raise FieldError(409, "name", f"{name!r} already exists")
        record = self._new_undo("archive", f"create {name}")

        async def work(job: JobHandle) -> dict[str, Any]:
            result = await run_in_thread(job, archives.create, sources, out, body.format,
                                         body.password)
            record.created.append(str(out))
            self._keep_undo(record)
            return result

        return await self._start(request, "archive", work)

    async def archive_test(self, request: Request) -> Any:
        """Read every member of the archive at ``path`` (a job; ``result.ok``)."""
        body: ArchivePath = await parse(request, ArchivePath)
        path = self._archive(body.root, body.path)
        await self._check_password(path, body.password)
        return await self._start(request, "test archive", self._test_job, path,
                                 body.password)

    async def _check_password(self, path: Path, password: str | None) -> None:
        """An encrypted zip without (or with a wrong) password: 422 on ``password``."""
        from file_manager import archives
        if archives.detect(path) != "zip":
            return
        try:
            await asyncio.to_thread(archives.check_password, path, password)
        except archives.PasswordError as exc:
            raise FieldError(422, "password", str(exc)) from None
        except archives.ArchiveError as exc:
            raise FieldError(422, "path", str(exc)) from None

    async def _test_job(self, job: JobHandle, path: Path,
                        password: str | None) -> dict[str, Any]:
        from file_manager import archives
        return await run_in_thread(job, archives.test, path, password,
                                   self.config.max_members)

    async def archive_extract(self, request: Request) -> Any:
        """Extract the archive at ``path`` into a new folder in ``dest`` (a job). An
        unsafe archive is refused before anything is written: 422 naming the member."""
        from file_manager import archives
        body: ArchiveExtract = await parse(request, ArchiveExtract)
        path = self._archive(body.root, body.path)
        dest = self._dest_folder(body.dest_root, body.dest)
        _fmt, found = await self._members(path)
        try:
            archives.check(found, self.caps, path.stat().st_size)
        except archives.ArchiveRefused as exc:
            return JSONResponse({"detail": f"path: {exc}", "field": "path",
                                 "member": exc.member, "reason": exc.reason},
                                status_code=422)
        await self._check_password(path, body.password)
        record = self._new_undo("extract", f"extract {path.name}")
        caps = self.caps

        async def work(job: JobHandle) -> dict[str, Any]:
            result = await run_in_thread(job, archives.extract, path, dest, caps,
                                         body.password)
            record.created.append(result["folder"])
            self._keep_undo(record)
            return result

        return await self._start(request, "extract", work)

    # -- search ------------------------------------------------------------------------
    async def search(self, request: Request) -> Any:
        """Server-Sent Events: ``match`` per hit, ``progress`` now and then, then ``done``
        with counts (or ``error``). Query: ``root``, ``path``, ``name`` with ``mode``
        glob|regex, ``content`` with ``content_mode`` text|regex, ``case``,
        ``gitignore`` (default true), ``hidden``. Bad patterns are 422 before streaming."""
        q = request.query_params
        base = self.roots.resolve(q.get("root", "0"), q.get("path", ""))
        root = self.roots.get(q.get("root", "0"))
        if not base.is_dir():
            raise FieldError(404, "path", f"{q.get('path', '')!r} is not an existing folder")
        flags = {}
        for key, default in (("case", "false"), ("gitignore", "true"), ("hidden", "false")):
            value = q.get(key, default).lower()
            if value not in ("true", "false", "1", "0"):
                raise FieldError(422, key, f"must be true or false, got {value[:20]!r}")
            flags[key] = value in ("true", "1")
        mode, content_mode = q.get("mode", "glob"), q.get("content_mode", "text")
        if mode not in ("glob", "regex"):
            raise FieldError(422, "mode", f"must be glob or regex, got {mode[:20]!r}")
        if content_mode not in ("text", "regex"):
            raise FieldError(422, "content_mode", "must be text or regex")
        name, content = q.get("name", ""), q.get("content", "")
        if not name and not content:
            raise FieldError(422, "name", "give a name pattern, a content pattern or both")
        for field, value in (("name", name), ("content", content)):
            if len(value) > 1000 or "\x00" in value:
                raise FieldError(422, field, "must be at most 1000 characters without NUL")
        try:
            name_re = search.compile_name(name, mode, flags["case"])
        except re.error as exc:
            raise FieldError(422, "name", f"not a valid regular expression: {exc}") from None
        try:
            content_re = search.compile_content(content, content_mode, flags["case"])
        except re.error as exc:
            raise FieldError(422, "content", f"not a valid regular expression: {exc}") \
                from None
        query = search.Query(name_re, content_re, self.config.search_max_file_bytes,
                             self.config.search_max_results, flags["gitignore"],
                             flags["hidden"])
        return self.ctx.event_stream(self._search_events(base, root.path, query))

    async def _search_events(self, base: Path, root_path: Path,
                             query: search.Query) -> AsyncIterator[tuple[str, Any]]:
        """Run the search in a child process (see :mod:`file_manager.search`): a user
        regex that backtracks costs that process a few seconds per file, never a thread
        of the app's shared executor; the page going away kills it."""
        import json

        query = dataclasses.replace(query, regex_seconds=self.config.search_regex_seconds)
        proc = await asyncio.create_subprocess_exec(
            *search.child_command(), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            limit=SEARCH_LINE_LIMIT)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(search.child_request(base, root_path, query))
            await proc.stdin.drain()
            proc.stdin.close()
            yield "start", {"path": base.relative_to(root_path).as_posix()}
            final: tuple[str, Any] | None = None
            while line := await proc.stdout.readline():
                name, data = json.loads(line)
                if name in ("done", "error"):
                    final = (name, data)
                    break
                yield name, data
            await proc.wait()
            if final is None:
                final = ("error", {"detail": f"the search process ended with code "
                                             f"{proc.returncode} before it finished"})
            if final[0] == "error":
                self.ctx.logger.warning("search in %s failed: %s", base, final[1]["detail"])
            yield final
        finally:
            # The page went away (or the plugin stops): the search ends with its process.
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

    # -- metadata ----------------------------------------------------------------------
    async def hash(self, request: Request) -> Any:
        """SHA-256 (and BLAKE3, SHA-1, MD5 on request) of the file at ``path`` (a job)."""
        body: HashRequest = await parse(request, HashRequest)
        path = self.roots.resolve(body.root, body.path)
        if not path.is_file():
            raise FieldError(404, "path", f"{body.path!r} is not an existing file")
        algorithms = list(dict.fromkeys(body.algorithms))
        if "blake3" in algorithms and not hashing.has_blake3():
            raise FieldError(503, "algorithms", "blake3 needs the blake3 package, which is "
                             "not installed")

        async def work(job: JobHandle) -> dict[str, Any]:
            result = await run_in_thread(job, hashing.digests, path, algorithms)
            return {"path": body.path, **result}

        return await self._start(request, "hash", work)

    async def metadata(self, request: Request) -> Any:
        """``?root=&path=``: EXIF of an image, PDF document info, audio tags, plus size,
        mtime and permissions of any file."""
        from file_manager import metadata
        from file_manager.core import entry_info

        q = request.query_params
        rel = q.get("path", "")
        path = self.roots.resolve(q.get("root", "0"), rel)
        if not path.is_file():
            raise FieldError(404, "path", f"{rel!r} is not an existing file")
        root = self.roots.get(q.get("root", "0"))
        info = await asyncio.to_thread(entry_info, path, rel, root.path)
        return {**info, **await asyncio.to_thread(metadata.read, path)}

    async def duplicates(self, request: Request) -> Any:
        """Groups of identical files under ``path`` (size first, then hashes; a job)."""
        body: DuplicatesRequest = await parse(request, DuplicatesRequest)
        base = self.roots.resolve(body.root, body.path)
        if not base.is_dir():
            raise FieldError(404, "path", f"{body.path!r} is not an existing folder")
        root_path = self.roots.get(body.root).path

        async def work(job: JobHandle) -> dict[str, Any]:
            return await run_in_thread(job, hashing.duplicates, base, root_path,
                                       body.min_size, body.hidden)

        return await self._start(request, "duplicates", work)

    # -- sync ----------------------------------------------------------------------------
    def _api(self) -> Any:
        try:
            api = self.ctx.api
        except Exception as exc:
            raise FieldError(503, "cloud", f"the PlexiChat API is not available: {exc}") \
                from None
        if api.user is None:
            raise FieldError(409, "cloud", "nobody is signed in to PlexiChat; sign in on "
                             "the API Integration page first")
        return api

    async def sync_status(self, request: Request) -> Any:
        """Who the cloud side belongs to, and the max-delete guard in force."""
        try:
            api = self.ctx.api
            user = api.user
        except Exception as exc:
            return {"available": False, "reason": str(exc), "user": None}
        return {"available": True, "user": user and {"id": user.get("id"),
                                                     "username": user.get("username")},
                "max_delete": self.config.sync_max_delete}

    async def sync_plan(self, request: Request) -> Any:
        """A dry run (a job): what syncing folder ``path`` with cloud folder ``cloud``
        would do, item by item. Nothing is written; ``result`` is the plan."""
        body: SyncPlanRequest = await parse(request, SyncPlanRequest)
        folder = self.roots.resolve(body.root, body.path)
        if not folder.is_dir():
            raise FieldError(404, "path", f"{body.path!r} is not an existing folder")
        api = self._api()
        baseline_path = sync.baseline_file(self.ctx.data_dir, folder, body.cloud)

        async def work(job: JobHandle) -> dict[str, Any]:
            job.message(f"comparing {folder.name} with the cloud folder {body.cloud}")
            baseline = await asyncio.to_thread(sync.Baseline, baseline_path)
            plan = await sync.make_plan(api, folder, body.cloud, baseline)
            self.plans[plan.id] = (plan, baseline_path)
            while len(self.plans) > 20:
                del self.plans[next(iter(self.plans))]
            return {**plan.to_dict(), "max_delete": self.config.sync_max_delete}

        return await self._start(request, "sync plan", work)

    async def sync_apply(self, request: Request) -> Any:
        """Carry out the approved items of plan ``plan_id`` (a job); ``approve`` lists
        their paths. Anything not listed is left alone on both sides."""
        body: SyncApplyRequest = await parse(request, SyncApplyRequest)
        if body.plan_id not in self.plans:
            raise FieldError(404, "plan_id", "no such plan (plans are kept until the "
                             "plugin restarts); make a new one")
        plan, baseline_path = self.plans[body.plan_id]
        by_path = {item.path: item for item in plan.items}
        for i, rel in enumerate(body.approve):
            if rel not in by_path:
                raise FieldError(422, f"approve[{i}]", f"{rel[:200]!r} is not an item of "
                                 "the plan")
        approved = [by_path[rel] for rel in dict.fromkeys(body.approve)]
        deletes = sum(1 for item in approved if item.action.startswith("delete"))
        if deletes > self.config.sync_max_delete:
            raise FieldError(409, "approve", f"{deletes} deletions approved, over the "
                             f"max-delete limit of {self.config.sync_max_delete} "
                             "(sync_max_delete in the settings); approve fewer")
        api = self._api()
        folder = Path(plan.folder)
        del self.plans[body.plan_id]  # a plan is used once: the baseline moves on

        def trash(path: Path) -> None:
            from send2trash import send2trash
            send2trash(str(path))

        async def work(job: JobHandle) -> dict[str, Any]:
            async with self._sync_lock:
                baseline = await asyncio.to_thread(sync.Baseline, baseline_path)
                applier = sync.Applier(api, folder, plan, baseline, trash, job.progress)
                result = await applier.run(approved)
            return {**result, "plan_id": plan.id, "left": len(plan.items) - len(approved)}

        return await self._start(request, "sync", work)


__all__ = ["FileManagerPlugin"]
