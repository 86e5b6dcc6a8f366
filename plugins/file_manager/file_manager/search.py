"""Search by name (glob or regex) and by content, streamed as it finds.

The walk never follows symlinks, skips ``.git``, honours every ``.gitignore`` on the way
down (the rules of a folder apply below it, as git applies them), reads content only
from files up to the size cap and skips binary files (a NUL byte in the first 8 KiB, as
git and grep judge it).
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from file_manager.worker import Ctl

SNIFF = 8192
MAX_LINES_PER_FILE = 20
MAX_LINE_CHARS = 300
# A .gitignore bigger than this is not read (git's own are a few KiB).
MAX_GITIGNORE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Query:
    name: re.Pattern[str] | None
    content: re.Pattern[str] | None
    max_file_bytes: int
    max_results: int
    gitignore: bool = True
    hidden: bool = False


def compile_name(text: str, mode: str, case: bool) -> re.Pattern[str] | None:
    """The name pattern; ``ValueError`` says what is wrong with it."""
    if not text:
        return None
    flags = 0 if case else re.IGNORECASE
    if mode == "glob":
        # A plain word means "contains", as in every file manager's filter box.
        pattern = text if any(c in text for c in "*?[") else f"*{text}*"
        return re.compile(fnmatch.translate(pattern), flags)
    return re.compile(text, flags)


def compile_content(text: str, mode: str, case: bool) -> re.Pattern[str] | None:
    if not text:
        return None
    flags = 0 if case else re.IGNORECASE
    return re.compile(text if mode == "regex" else re.escape(text), flags)


def read_gitignore(path: Path, cap: int = MAX_GITIGNORE_BYTES) -> str | None:
    """The text of the .gitignore at ``path``, or None when it is no regular file (git
    does not follow a symlinked .gitignore either), is unreadable or is over ``cap``.

    Opened with O_NOFOLLOW and O_NONBLOCK and checked with fstat: a FIFO must not block
    the walk waiting for a writer, and a link to /dev/zero must not be read forever."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > cap:
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(cap + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) > cap:  # grew since the fstat
        return None
    return data.decode("utf-8", "replace")


def _ignore_spec(folder: Path) -> Any:
    text = read_gitignore(folder / ".gitignore")
    if text is None:
        return None
    lines = text.splitlines()
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(lines)


def search(ctl: Ctl, base: Path, root_path: Path, q: Query,
           emit: Callable[[str, dict[str, Any]], None]) -> dict[str, Any]:
    """Walk ``base``; call ``emit("match", ...)`` per hit and ``emit("progress", ...)`` now
    and then. Returns the summary (also what the stream's last event says)."""
    scanned = matches = 0
    skipped = {"binary": 0, "too_large": 0, "unreadable": 0, "ignored": 0}
    # (folder, spec) of every .gitignore above the current folder, outermost first.
    specs: dict[str, list[tuple[Path, Any]]] = {}
    truncated = False

    def ignored(path: Path, is_dir: bool, chain: list[tuple[Path, Any]]) -> bool:
        for folder, spec in chain:
            rel = path.relative_to(folder).as_posix() + ("/" if is_dir else "")
            if spec.match_file(rel):
                return True
        return False

    for folder, dirs, files in os.walk(base):
        ctl.check()
        here = Path(folder)
        chain = specs.get(folder, [])
        if q.gitignore:
            spec = _ignore_spec(here)
            if spec is not None:
                chain = [*chain, (here, spec)]
        kept_dirs = []
        for name in sorted(dirs):
            child = here / name
            if name == ".git" or (not q.hidden and name.startswith(".")):
                continue
            if q.gitignore and ignored(child, True, chain):
                skipped["ignored"] += 1
                continue
            kept_dirs.append(name)
            specs[str(child)] = chain
            if q.name is not None and q.content is None and q.name.match(name):
                matches += 1
                emit("match", _hit(child, root_path, "dir"))
        dirs[:] = kept_dirs
        for name in sorted(files):
            if matches >= q.max_results:
                truncated = True
                break
            if not q.hidden and name.startswith("."):
                continue
            path = here / name
            if q.gitignore and ignored(path, False, chain):
                skipped["ignored"] += 1
                continue
            scanned += 1
            if scanned % 200 == 0:
                ctl.check()
                emit("progress", {"scanned": scanned, "matches": matches})
            if q.name is not None and not q.name.match(name):
                continue
            if q.content is None:
                matches += 1
                emit("match", _hit(path, root_path, "file"))
                continue
            lines = _grep(path, q, skipped)
            if lines:
                matches += 1
                emit("match", {**_hit(path, root_path, "file"), "lines": lines})
        if truncated:
            break
        specs.pop(folder, None)
    return {"scanned": scanned, "matches": matches, "skipped": skipped,
            "truncated": truncated}


def _hit(path: Path, root_path: Path, kind: str) -> dict[str, Any]:
    try:
        st = path.lstat()
        size, mtime = st.st_size, st.st_mtime
        if stat.S_ISLNK(st.st_mode):
            kind = "symlink"
    except OSError:
        size, mtime = 0, None
    return {"path": path.relative_to(root_path).as_posix(), "name": path.name,
            "type": kind, "size": size, "mtime": mtime}


def _grep(path: Path, q: Query, skipped: dict[str, int]) -> list[dict[str, Any]]:
    assert q.content is not None
    try:
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode):
            return []
        if st.st_size > q.max_file_bytes:
            skipped["too_large"] += 1
            return []
        with open(path, "rb") as fh:
            data = fh.read(q.max_file_bytes + 1)
    except OSError:
        skipped["unreadable"] += 1
        return []
    if b"\x00" in data[:SNIFF]:
        skipped["binary"] += 1
        return []
    text = data.decode("utf-8", "replace")
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if q.content.search(line):
            out.append({"line": number, "text": line[:MAX_LINE_CHARS]})
            if len(out) >= MAX_LINES_PER_FILE:
                break
    return out
