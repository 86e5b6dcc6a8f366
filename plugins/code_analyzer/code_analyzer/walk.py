"""Finding the files of a project: .gitignore respected, symlinks never followed.

Every .gitignore from the scanned folder down applies to its own subtree (git's rule,
through pathspec's ``GitIgnoreSpec``). Symlinked folders are not entered, so a symlink
loop cannot make the walk endless; symlinked files are reported as skipped with the
reason (a loop, a dangling link, a target outside the folder) instead of being read
twice or read from outside the folder.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pathspec

from plexichat_desktop.plugins.guards import read_regular

# Extensions lizard reads (lizard_languages), minus Python, which radon handles.
LIZARD_EXTENSIONS: dict[str, str] = {
    **dict.fromkeys(["c", "h"], "c"),
    **dict.fromkeys(["cpp", "cc", "cxx", "hh", "hpp"], "cpp"),
    "java": "java", "cs": "csharp", **dict.fromkeys(["js", "cjs", "mjs"], "javascript"),
    **dict.fromkeys(["m", "mm"], "objective-c"), "rb": "ruby", "php": "php",
    "swift": "swift", "scala": "scala", "gd": "gdscript", "go": "go", "lua": "lua",
    "rs": "rust", "ts": "typescript", **dict.fromkeys(["tsx", "jsx"], "tsx"),
    **dict.fromkeys(["f90", "f95", "f03", "f08", "for", "ftn"], "fortran"),
    **dict.fromkeys(["kt", "kts"], "kotlin"), "sol": "solidity",
    **dict.fromkeys(["erl", "hrl"], "erlang"), "zig": "zig", "vue": "vue",
    **dict.fromkeys(["pl", "pm"], "perl"), "r": "r",
}


def language_of(name: str) -> str | None:
    """The language analysed for a file name, or None for files the scan ignores."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext in ("py", "pyi"):
        return "python"
    return LIZARD_EXTENSIONS.get(ext)


@dataclass(frozen=True)
class Candidate:
    """A source file to analyse. ``rel`` uses '/' whatever the platform."""

    rel: str
    path: Path
    language: str
    size: int


@dataclass(frozen=True)
class Skipped:
    rel: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.rel, "reason": self.reason}


# A .gitignore bigger than this is not read (git's own are a few KiB).
MAX_GITIGNORE_BYTES = 1024 * 1024


def kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "not a regular file"


def read_gitignore(path: Path, cap: int = MAX_GITIGNORE_BYTES) -> str | None:
    """The text of the .gitignore at ``path``, or None when it is no regular file (git
    does not follow a symlinked .gitignore either), is unreadable or is over ``cap``."""
    try:
        return read_regular(path, cap).decode("utf-8", "replace")
    except (OSError, ValueError):
        return None


def _load_spec(folder: Path) -> pathspec.GitIgnoreSpec | None:
    text = read_gitignore(folder / ".gitignore")
    if text is None:
        return None
    return pathspec.GitIgnoreSpec.from_lines(text.splitlines())


# A .gitignore in effect: the folder it is in (relative to the scanned folder; "" for
# the scanned folder and those above it), what to put before a path relative to that
# folder (for one above the scanned folder: the way down to it), and its patterns.
Ignore = tuple[str, str, pathspec.GitIgnoreSpec]


def _outer_ignores(root: Path) -> list[Ignore]:
    """The .gitignore files above ``root`` up to the top of its git repository, which
    git applies too (a scan of a subfolder counted generated code its parent ignores),
    outermost first; none when ``root`` is no repository's subfolder."""
    if (root / ".git").exists():
        return []
    found: list[Ignore] = []
    for parent in root.parents:
        spec = _load_spec(parent)
        if spec is not None:
            found.append(("", root.relative_to(parent).as_posix() + "/", spec))
        if (parent / ".git").exists():
            return found[::-1]
    return []


def _ignored(ignores: Iterable[Ignore], rel: str, is_dir: bool) -> bool:
    # As git: the deepest .gitignore with a pattern for the path decides, so a deeper
    # '!name' takes back what a file above ignores.
    for base, prefix, spec in reversed(list(ignores)):
        sub = prefix + (rel[len(base) + 1:] if base else rel)
        verdict = spec.check_file(sub + "/" if is_dir else sub).include
        if verdict is not None:
            return verdict
    return False


def discover(folder: Path, *, max_bytes: int, exclude: Iterable[str] = (),
             ) -> tuple[list[Candidate], list[Skipped]]:
    """The analysable files under ``folder`` (sorted) and those skipped, with why."""
    excluded = set(exclude)
    candidates: list[Candidate] = []
    skipped: list[Skipped] = []
    specs: dict[str, pathspec.GitIgnoreSpec] = {}
    root = folder.resolve()
    outer = _outer_ignores(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        base = here.relative_to(root).as_posix()
        base = "" if base == "." else base
        spec = _load_spec(here)
        if spec is not None:
            specs[base] = spec
        active = outer + [(b, "", s) for b, s in specs.items()
                          if not b or base == b or base.startswith(b + "/")]
        dirnames[:] = _subfolders(here, base, sorted(dirnames), active, excluded, skipped)
        for name in sorted(filenames):
            rel = f"{base}/{name}" if base else name
            language = language_of(name)
            if language is not None and not _ignored(active, rel, False):
                found = candidate(here / name, rel, language, root, max_bytes)
                (candidates if isinstance(found, Candidate) else skipped).append(found)
    candidates.sort(key=lambda c: c.rel)
    return candidates, skipped


def _subfolders(here: Path, base: str, names: list[str],
                active: list[Ignore], excluded: set[str],
                skipped: list[Skipped]) -> list[str]:
    """The subfolders to enter: not excluded, not ignored, not symlinks (never followed,
    so a symlink loop cannot make the walk endless)."""
    kept = []
    for name in names:
        rel = f"{base}/{name}" if base else name
        if name in excluded or _ignored(active, rel, True):
            continue
        if (here / name).is_symlink():
            skipped.append(Skipped(rel, "symlinked folder, not followed"))
            continue
        kept.append(name)
    return kept


def candidate(path: Path, rel: str, language: str, root: Path, max_bytes: int,
              ) -> Candidate | Skipped:
    """``path`` (``rel`` below ``root``) to be read, or why it is not."""
    if path.is_symlink():
        return Skipped(rel, _symlink_reason(path, root))
    try:
        info = path.lstat()
    except OSError as exc:
        return Skipped(rel, f"cannot read: {exc.strerror or exc}")
    if not stat.S_ISREG(info.st_mode):
        return Skipped(rel, f"{kind_of(info.st_mode)}, not read")
    size = info.st_size
    if size > max_bytes:
        return Skipped(rel, f"too large: {size // 1024} KiB, the limit is "
                            f"{max_bytes // 1024} KiB (setting max_file_kb)")
    return Candidate(rel, path, language, size)


def _symlink_reason(path: Path, root: Path) -> str:
    try:
        target = path.resolve(strict=True)
    except RuntimeError:
        return "symlink loop"
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            return "symlink loop"
        return "dangling symlink"
    if not target.is_relative_to(root):
        return "symlink leading outside the scanned folder"
    return f"symlink to {target.relative_to(root).as_posix()} (analysed there)"
