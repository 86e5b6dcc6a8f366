"""Roots, checked paths and folder listings: what every route starts from.

A user path is always a pair: a root id (its index in the configured roots, as text) and a
path relative to that root. Every path goes through :func:`Roots.resolve`, built on the
host's ``safe_path``; errors are :class:`FieldError` carrying the HTTP status and the name
of the request field, so a route answers ``{"detail": "...", "field": "..."}`` and never a 500.
"""

from __future__ import annotations

import fnmatch
import mimetypes
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from plexichat_desktop.plugins.guards import UnsafePath, safe_path

SORT_KEYS = ("name", "size", "mtime", "type")


class FieldError(Exception):
    """A request that cannot be served; ``status`` is the HTTP code, ``field`` the input."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.status = status
        self.field = field
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {"detail": str(self), "field": self.field}


@dataclass(frozen=True)
class Root:
    id: str
    name: str
    path: Path

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "path": str(self.path),
                "exists": self.path.is_dir()}


class Roots:
    """The configured roots and the one way of turning user input into a path."""

    def __init__(self, paths: list[Path]):
        self.items = [Root(str(i), p.name or str(p), p) for i, p in enumerate(paths)]

    def get(self, root_id: object, field: str = "root") -> Root:
        for root in self.items:
            if str(root_id) == root.id:
                return root
        raise FieldError(404, field, f"no root {str(root_id)[:40]!r}; the roots are "
                         f"{', '.join(r.id for r in self.items)}")

    def resolve(self, root_id: object, user_path: object, *, field: str = "path",
                root_field: str = "root", follow: bool = True) -> Path:
        """The absolute path for ``user_path`` inside root ``root_id``.

        ``follow=False`` keeps the last component unresolved (a symlink is then the link
        itself, for rename, delete and copy), while its folder is still checked."""
        root = self.get(root_id, root_field)
        if not isinstance(user_path, str):
            raise FieldError(422, field, f"must be text, got {type(user_path).__name__}")
        if user_path.startswith("/"):
            # Paths are relative to a root; an absolute one is a client bug or a probe.
            raise FieldError(400, field, f"{user_path[:80]!r} is absolute; give a path "
                             "relative to the root")
        text = user_path.strip("/")
        try:
            if follow or text in ("", "."):
                return safe_path(root.path, text, field=field)
            # The link itself: one leading out of the root can still be renamed, moved
            # or trashed (it was refused as "leads outside"); its folder is checked.
            return safe_path(root.path, text, field=field, follow_last=False)
        except UnsafePath as exc:
            raise FieldError(400, field, str(exc).split(": ", 1)[-1]) from None

    def relative(self, root_id: object, path: Path) -> str:
        root = self.get(root_id)
        rel = path.relative_to(root.path).as_posix()
        return "" if rel == "." else rel

    def locate(self, path: Path) -> tuple[Root, str] | None:
        """Which root holds ``path`` (an absolute path), and its relative path."""
        for root in self.items:
            if path == root.path or path.is_relative_to(root.path):
                rel = path.relative_to(root.path).as_posix()
                return root, "" if rel == "." else rel
        return None


def check_name(name: object, field: str = "name") -> str:
    """A single file name for rename, mkdir and archive output."""
    if not isinstance(name, str) or not name.strip():
        raise FieldError(422, field, "must be a non-empty name")
    if "\x00" in name:
        raise FieldError(400, field, "contains a NUL character")
    if "/" in name or "\\" in name:
        raise FieldError(400, field, f"{name[:80]!r} contains a path separator; give a "
                         "name, not a path")
    if name in (".", ".."):
        raise FieldError(400, field, f"{name!r} is not a file name")
    if len(name.encode("utf-8", "surrogateescape")) > 255:
        raise FieldError(400, field, "is longer than 255 bytes")
    return name


def kind_of(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def entry_info(path: Path, rel: str, root_path: Path) -> dict[str, Any]:
    """One row of a listing; a symlink is described, never followed out of the root."""
    st = path.lstat()
    kind = kind_of(st.st_mode)
    info: dict[str, Any] = {
        "name": path.name, "path": rel, "type": kind, "size": st.st_size,
        "mtime": st.st_mtime, "mode": stat.filemode(st.st_mode),
        "octal": f"{stat.S_IMODE(st.st_mode):04o}", "hidden": path.name.startswith("."),
        "mime": mimetypes.guess_type(path.name)[0] if kind == "file" else None,
    }
    if kind == "symlink":
        target = os.readlink(path)
        info["link"] = target
        try:
            resolved = path.resolve()
            info["link_inside"] = resolved.is_relative_to(root_path)
            info["link_type"] = kind_of(resolved.stat().st_mode) if info["link_inside"] \
                else None
        except (OSError, RuntimeError):
            info["link_inside"], info["link_type"] = False, None
    return info


def list_folder(roots: Roots, root_id: str, rel: str, *, sort: str = "name",
                order: str = "asc", name_filter: str = "", hidden: bool = False,
                limit: int = 20_000) -> dict[str, Any]:
    """A folder's entries with size, mtime, type and permissions; folders first."""
    if sort not in SORT_KEYS:
        raise FieldError(422, "sort", f"must be one of {', '.join(SORT_KEYS)}, got {sort!r}")
    if order not in ("asc", "desc"):
        raise FieldError(422, "order", f"must be 'asc' or 'desc', got {order!r}")
    if len(name_filter) > 255 or "\x00" in name_filter:
        raise FieldError(422, "filter", "must be at most 255 characters without NUL")
    folder = roots.resolve(root_id, rel)
    root = roots.get(root_id)
    if not folder.exists():
        raise FieldError(404, "path", f"{rel!r} does not exist")
    if not folder.is_dir():
        raise FieldError(409, "path", f"{rel!r} is not a folder")
    pattern = name_filter.lower()
    if pattern and not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    entries: list[dict[str, Any]] = []
    hidden_count = 0
    try:
        with os.scandir(folder) as it:
            for item in it:
                if item.name.startswith("."):
                    hidden_count += 1
                    if not hidden:
                        continue
                if pattern and not fnmatch.fnmatchcase(item.name.lower(), pattern):
                    continue
                child = folder / item.name
                try:
                    entries.append(entry_info(child, roots.relative(root_id, child), root.path))
                except OSError:
                    continue  # vanished between scandir and lstat
    except PermissionError:
        raise FieldError(403, "path", f"{rel!r} cannot be read (permission denied)") from None
    except OSError as exc:
        raise FieldError(409, "path", f"{rel!r} cannot be listed: {exc.strerror}") from None

    def key(e: dict[str, Any]) -> Any:
        if sort == "size":
            return e["size"]
        if sort == "mtime":
            return e["mtime"]
        if sort == "type":
            return (PurePosixPath(e["name"]).suffix.lower(), e["name"].lower())
        return e["name"].lower()

    entries.sort(key=key, reverse=order == "desc")
    # Folders first whatever the order, as in every two-pane manager.
    entries.sort(key=lambda e: not (e["type"] == "dir" or e.get("link_type") == "dir"))
    parent = None if folder == root.path else roots.relative(root_id, folder.parent)
    return {
        "root": root.id, "path": roots.relative(root_id, folder), "parent": parent,
        "entries": entries[:limit], "total": len(entries), "truncated": len(entries) > limit,
        "hidden_count": hidden_count, "writable": is_writable(folder),
    }


def is_writable(folder: Path) -> bool:
    """Whether the user may write into ``folder``.

    The write bits are honoured even for root (who would pass ``os.access``): a folder a
    person marked read-only stays read-only in the file manager."""
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) and \
        os.access(folder, os.W_OK)


def require_writable(folder: Path, field: str, shown: str) -> None:
    if not is_writable(folder):
        raise FieldError(403, field, f"{shown!r} is read-only; nothing can be written there")
