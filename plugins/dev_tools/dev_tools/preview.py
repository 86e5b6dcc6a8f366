"""Change previews: run a tool on a copy of the workspace, show the diff, write on approval.

Tools that rewrite files (formatters, fixers, hooks) never touch the workspace here. They
run in a temporary copy; every file that changed there becomes a :class:`FileChange` with
the SHA-256 of the original it was made from. Applying a change writes the bytes the user
saw, and only when the workspace file still has that hash: a file edited since the
preview is refused (409) rather than overwritten with a stale result.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import shutil
import stat
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dev_tools import gitops
from dev_tools.errors import ApiError
from dev_tools.workspace import SKIP_DIRS, Workspace
from plexichat_desktop.plugins.files import write_atomic
from plexichat_desktop.plugins.guards import UnsafePath, safe_path

MAX_DIFF_CHARS = 400_000
KEEP_PREVIEWS = 20


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class FileChange:
    path: str
    before_sha: str | None       # None: the tool created the file
    after: bytes | None          # None: the tool deleted the file
    diff: str
    applied: bool = False

    @property
    def kind(self) -> str:
        if self.before_sha is None:
            return "created"
        return "deleted" if self.after is None else "modified"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "before_sha256": self.before_sha,
                "after_sha256": None if self.after is None else sha256(self.after),
                "diff": self.diff, "applied": self.applied}


@dataclass
class Preview:
    id: str
    kind: str
    workspace: Path
    changes: dict[str, FileChange]
    report: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "workspace": str(self.workspace),
                "created_at": self.created_at,
                "files": [c.to_dict() for c in self.changes.values()], **self.report}


class PreviewStore:
    """The last few previews, by id (kept in memory: they hold the proposed bytes)."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, Preview] = OrderedDict()

    def add(self, preview: Preview) -> Preview:
        self._items[preview.id] = preview
        while len(self._items) > KEEP_PREVIEWS:
            self._items.popitem(last=False)
        return preview

    def get(self, preview_id: str) -> Preview:
        try:
            return self._items[preview_id]
        except KeyError:
            raise ApiError(404, "preview", f"no preview {preview_id!r} (it expired or the "
                                           "app restarted): preview again") from None


async def list_files(ws: Workspace, is_git: bool) -> list[str]:
    """The workspace's files, workspace-relative: git's view (tracked and untracked, not
    ignored) in a repository, else every file outside cache and environment folders."""
    if is_git and shutil.which("git"):
        # Through gitops: with the overrides that keep an untrusted repository's config
        # from running programs.
        result = await gitops.git(ws, "ls-files", "-z", "--cached", "--others",
                           "--exclude-standard", "--", ".", cap=200_000_000, check=False)
        if result.exit_code == 0 and not result.truncated:
            names = [n for n in result.output.split("\x00") if n]
            return sorted({n for n in names if (ws.path / n).is_file()
                           and not (ws.path / n).is_symlink()})
    return await asyncio.to_thread(_walk, ws.path)


def _walk(root: Path) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


class Copy:
    """A temporary copy of some workspace files, with the hash of each original."""

    def __init__(self, ws: Workspace, files: list[str], max_files: int, max_bytes: int):
        if len(files) > max_files:
            raise ApiError(413, "workspace", f"{len(files)} files, more than the preview "
                                             f"limit of {max_files} (max_copy_files)")
        self.ws = ws
        self.files = files
        self.max_bytes = max_bytes
        self.dir = Path(tempfile.mkdtemp(prefix="dev_tools-preview-"))
        self.before: dict[str, str] = {}

    def fill(self) -> None:
        """Copy the files (real copies: a tool writing in place must never reach the
        originals through a hard link)."""
        total = 0
        for rel in self.files:
            source = self.ws.path / rel
            try:
                data, mode = _read_capped(source, self.max_bytes - total)
            except _TooBig:
                raise ApiError(413, "workspace", f"more than {self.max_bytes} bytes to copy "
                                                 "for the preview (max_copy_bytes)"
                               ) from None
            except OSError:
                continue  # vanished, unreadable or no regular file: the tool will not see it
            total += len(data)
            target = self.dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            os.chmod(target, mode)
            self.before[rel] = sha256(data)

    def snapshot(self) -> dict[str, str]:
        """Hashes of the copy's files now (to tell which step changed what)."""
        result = {}
        # Copied files under a skipped folder name (a tracked build/ file) count too.
        for rel in sorted(set(_walk(self.dir)) | set(self.before)):
            try:
                result[rel] = sha256((self.dir / rel).read_bytes())
            except (FileNotFoundError, IsADirectoryError):
                continue
        return result

    def changes(self) -> dict[str, FileChange]:
        """Every file the tools created, changed or deleted in the copy."""
        now = self.snapshot()
        changes: dict[str, FileChange] = {}
        for rel in sorted(set(now) | set(self.before)):
            before, after = self.before.get(rel), now.get(rel)
            if before == after:
                continue
            new = (self.dir / rel).read_bytes() if after is not None else None
            # The original is read again rather than kept from the copy: a preview of a
            # big tree must not hold every file twice in memory.
            old = b""
            if before is not None:
                try:
                    old = (self.ws.path / rel).read_bytes()
                except OSError:
                    old = b""
                if sha256(old) != before:
                    changes[rel] = FileChange(rel, before, new, f"{rel} changed in the "
                                              "workspace while the preview ran; preview "
                                              "again to see its diff\n")
                    continue
            changes[rel] = FileChange(rel, before, new, unified(rel, old, new or b"",
                                                                 before is None, new is None))
        return changes

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class _TooBig(Exception):
    """A file that would take the copy past its byte budget."""


def _read_capped(path: Path, budget: int) -> tuple[bytes, int]:
    """The bytes and permission bits of the regular file at ``path``, reading at most
    ``budget + 1`` bytes: the size is judged (fstat) before anything is read, and a file
    growing meanwhile is still cut at the budget, so a huge file never reaches memory.
    OSError for a file that is gone, unreadable, a link or not a regular file."""
    flags = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
             | getattr(os, "O_CLOEXEC", 0))
    fd = os.open(path, flags)
    with open(fd, "rb") as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path} is not a regular file")
        if st.st_size > budget:
            raise _TooBig
        data = handle.read(budget + 1)
    if len(data) > budget:
        raise _TooBig
    return data, stat.S_IMODE(st.st_mode)


def unified(rel: str, old: bytes, new: bytes, created: bool = False,
            deleted: bool = False) -> str:
    if b"\x00" in old[:8192] or b"\x00" in new[:8192]:
        return f"Binary file {rel} changed ({len(old)} -> {len(new)} bytes)\n"
    import difflib  # lazily: app start-up imports every plugin

    a = old.decode("utf-8", "replace").splitlines(keepends=True)
    b = new.decode("utf-8", "replace").splitlines(keepends=True)
    lines = difflib.unified_diff(a, b, "/dev/null" if created else f"a/{rel}",
                                 "/dev/null" if deleted else f"b/{rel}")
    text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)
    if len(text) > MAX_DIFF_CHARS:
        text = text[:MAX_DIFF_CHARS] + f"\n… diff cut at {MAX_DIFF_CHARS} characters …\n"
    return text


def apply(preview: Preview, ws: Workspace, paths: list[str]) -> dict[str, Any]:
    """Write the previewed content of ``paths``; all or nothing.

    409 (nothing written) when any of them changed since the preview, naming each."""
    if ws.path != preview.workspace:
        raise ApiError(409, "workspace", "the preview was made for another workspace "
                                         f"({preview.workspace})")
    wanted = paths or [p for p, c in preview.changes.items() if not c.applied]
    chosen: list[FileChange] = []
    for index, rel in enumerate(wanted):
        change = preview.changes.get(rel)
        if change is None:
            raise ApiError(404, f"files[{index}]", f"{rel!r} is not part of the preview")
        # A tool may have created a folder in the copy where the workspace has a symlink
        # leading out of it: never write through one.
        try:
            safe_path(ws.path, change.path, field=f"files[{index}]")
        except UnsafePath as exc:
            raise ApiError(409, f"files[{index}]", str(exc).partition(": ")[2]) from None
        chosen.append(change)
    conflicts, already = [], []
    for change in chosen:
        target = ws.path / change.path
        try:
            current: str | None = sha256(target.read_bytes())
        except FileNotFoundError:
            current = None
        except OSError as exc:
            raise ApiError(409, "files", f"{change.path}: cannot be read ({exc})") from None
        if change.applied and current == (None if change.after is None
                                          else sha256(change.after)):
            already.append(change)  # applied before (a second click): nothing to do
        elif current != change.before_sha:
            conflicts.append(change.path)
    if conflicts:
        raise ApiError(409, "files", "changed since the preview, nothing was written: "
                                     + ", ".join(conflicts) + " (preview again)",
                       conflicts=conflicts)
    written: list[str] = []
    for change in (c for c in chosen if c not in already):
        try:
            _write(ws.path / change.path, change.after)
        except OSError as exc:
            done = f"; written before it: {', '.join(written)}" if written else ""
            raise ApiError(403 if isinstance(exc, PermissionError) else 409, "files",
                           f"{change.path} cannot be written ({exc.strerror or exc}){done}",
                           applied=written) from None
        change.applied = True
        written.append(change.path)
    return {"preview": preview.id, "applied": written,
            "already_applied": [c.path for c in already]}


def _write(target: Path, data: bytes | None) -> None:
    if data is None:
        target.unlink(missing_ok=True)
        return
    try:
        mode = stat.S_IMODE(target.stat().st_mode)  # a user's file keeps its mode
    except FileNotFoundError:
        mode = 0o644
    write_atomic(target, data, mode=mode)


def new_id() -> str:
    return secrets.token_hex(8)
