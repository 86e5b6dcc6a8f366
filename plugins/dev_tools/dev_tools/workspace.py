"""Workspaces: folders inside the configured roots, and what kind of project they hold."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from dev_tools.errors import ApiError
from plexichat_desktop.plugins.guards import UnsafePath, safe_path

# Markers looked for at the top of a workspace, and what the page calls them.
MARKERS = {
    "pyproject.toml": "pyproject",
    "package.json": "package.json",
    "Makefile": "Makefile",
    "makefile": "Makefile",
    "GNUmakefile": "Makefile",
    ".pre-commit-config.yaml": "pre-commit",
    ".git": "git",
}
# Folders never copied for previews nor listed in the picker: caches and environments.
SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__",
                       ".mypy_cache", ".ruff_cache", ".pytest_cache", ".tox", ".nox",
                       "build", "dist", ".eggs"})
MAX_LISTED = 500


@dataclass(frozen=True)
class Workspace:
    path: Path
    root: Path

    @property
    def name(self) -> str:
        return self.path.name or str(self.path)

    def detect(self) -> dict[str, Any]:
        """The markers found; a folder that cannot be searched is a 4xx naming it."""
        try:
            found = sorted({label for name, label in MARKERS.items()
                            if (self.path / name).exists()})
            git = (self.path / ".git").exists()
        except OSError as exc:
            raise os_problem(exc, self.path, "workspace") from None
        return {"path": str(self.path), "name": self.name, "root": str(self.root),
                "markers": found, "git": git}

    def git_rel(self, user_path: str, field: str = "path") -> str:
        """A path as git names it in the workspace, checked by its words and its folder
        but not through a symlink at its end: git stages and diffs a link itself, never
        what it points to (a link to /etc/hostname, or a dangling one, could not be
        staged, and Stage all failed on it)."""
        if not user_path:
            raise ApiError(422, field, "must not be empty")
        pure = PurePosixPath(user_path)
        if pure.is_absolute() or ".." in pure.parts or "\x00" in user_path:
            raise ApiError(400, field, f"{user_path!r} is not a path inside the workspace")
        parts = [part for part in pure.parts if part != "."]
        if not parts:
            raise ApiError(422, field, "names the workspace itself, not a file in it")
        if len(parts) > 1:
            # Its folder must be inside: a symlinked folder leading out is refused.
            folder = self.path.joinpath(*parts[:-1]).resolve()
            if not folder.is_relative_to(self.path.resolve()):
                raise ApiError(400, field, f"{user_path!r} leads (through a symlinked "
                                           "folder) outside the workspace")
        return "/".join(parts)

    def rel(self, user_path: str, field: str = "path") -> str:
        """A path inside the workspace, checked, as the workspace-relative POSIX text."""
        if not user_path:
            raise ApiError(422, field, "must not be empty")
        try:
            resolved = safe_path(self.path, user_path, field=field)
        except UnsafePath as exc:
            raise ApiError(400, field, str(exc).partition(": ")[2] or str(exc)) from None
        if resolved == self.path:
            raise ApiError(422, field, "names the workspace itself, not a file in it")
        return resolved.relative_to(self.path).as_posix()


def os_problem(exc: OSError, path: Path | str, field: str) -> ApiError:
    """A file system error as the 4xx answer naming the path and the field: permission
    denied is 403, a symlink loop or a name too long for the file system is 400, any
    other (an I/O error, a folder gone meanwhile) 409."""
    shown = repr(str(path)) if len(str(path)) <= 200 else repr(str(path)[:197] + "...")
    reason = exc.strerror or type(exc).__name__
    if isinstance(exc, PermissionError):
        return ApiError(403, field, f"{shown} cannot be read (permission denied)")
    if exc.errno in (errno.ELOOP, errno.ENAMETOOLONG):
        return ApiError(400, field, f"{shown} cannot be opened: {reason}")
    return ApiError(409, field, f"{shown} cannot be read: {reason}")


def open_workspace(roots: list[Path], user_path: str | None,
                   field: str = "workspace") -> Workspace:
    """The folder ``user_path`` (absolute, or relative to the first root) as a workspace.

    Refused: empty, outside every root (after resolving symlinks), not a folder.
    """
    if user_path is None or not str(user_path).strip():
        raise ApiError(422, field, "is required: the folder to work in")
    if not roots:
        raise ApiError(409, field, "no configured root exists on this machine "
                                   "([plugin.dev_tools] roots)")
    reasons = []
    for root in roots:
        try:
            resolved = safe_path(root, user_path, field=field)
        except UnsafePath as exc:
            reasons.append(str(exc))
            continue
        try:
            st = resolved.stat()
        except FileNotFoundError:
            raise ApiError(404, field, f"{user_path!r} does not exist") from None
        except OSError as exc:
            raise os_problem(exc, user_path, field) from None
        if not stat.S_ISDIR(st.st_mode):
            raise ApiError(422, field, f"{user_path!r} is not a folder")
        return Workspace(resolved, root)
    shown = ", ".join(str(r) for r in roots)
    detail = reasons[0].partition(": ")[2] if len(reasons) == 1 else \
        f"{user_path!r} is not inside the configured roots ({shown})"
    raise ApiError(400, field, detail)


def browse(roots: list[Path], user_path: str | None) -> dict[str, Any]:
    """Sub-folders of ``user_path`` (the roots themselves when it is empty), for the picker."""
    if not user_path:
        return {"path": None, "parent": None,
                "folders": [_entry(root, str(root)) for root in roots]}
    ws = open_workspace(roots, user_path, field="path")
    folders = []
    try:
        with os.scandir(ws.path) as it:
            for entry in it:
                if entry.name.startswith(".") or entry.name in SKIP_DIRS:
                    continue
                try:
                    if entry.is_dir():
                        folders.append(_entry(Path(entry.path), entry.name))
                except OSError:
                    continue
    except OSError as exc:
        raise os_problem(exc, ws.path, "path") from None
    detected = ws.detect()
    folders.sort(key=lambda f: f["name"].lower())
    parent = str(ws.path.parent) if ws.path != ws.root else ""
    return {"path": str(ws.path), "parent": parent, "workspace": detected,
            "folders": folders[:MAX_LISTED], "more": max(0, len(folders) - MAX_LISTED)}


def _entry(path: Path, name: str) -> dict[str, Any]:
    markers = []
    for marker, label in MARKERS.items():
        try:
            if (path / marker).exists():
                markers.append(label)
        except OSError:
            continue
    return {"name": name, "path": str(path), "markers": sorted(set(markers))}


def which(program: str) -> str | None:
    return shutil.which(program)
