"""Search by name (glob or regex) and by content, streamed as it finds.

The walk never follows symlinks, skips ``.git``, honours every ``.gitignore`` on the way
down (the rules of a folder apply below it, as git applies them), reads content only
from files up to the size cap and skips binary files (a NUL byte in the first 8 KiB, as
git and grep judge it).

A user's regular expression can backtrack for hours on one line. The plugin therefore
runs a search in a child process (this file run as a script, :func:`child_main`): matching
one name or one file's lines gets ``regex_seconds`` (a SIGALRM timer, which interrupts
``re`` between steps), after which that file is skipped and counted as
``regex_timeout``; the page going away kills the process. No thread of the app's shared
executor is ever held by a pattern.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Only the type: run as the child process's script, this module imports nothing of
    # the plugin (nor of the app).
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
    # Seconds one name or one file's lines may take to match; None: unbounded (only the
    # main thread of a process can have the timer: the child process has it).
    regex_seconds: float | None = None


class RegexTimeout(Exception):
    """Matching one name or one file took longer than ``regex_seconds``."""


def _on_alarm(_signum: int, _frame: Any) -> None:
    raise RegexTimeout


@contextlib.contextmanager
def _time_bound(seconds: float | None) -> Iterator[None]:
    """Raise :class:`RegexTimeout` inside the block after ``seconds`` (main thread only;
    elsewhere, or with None, the block runs unbounded)."""
    if (seconds is None or not hasattr(signal, "setitimer")  # no SIGALRM on Windows
            or threading.current_thread() is not threading.main_thread()):
        yield
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


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
    skipped = {"binary": 0, "too_large": 0, "unreadable": 0, "ignored": 0,
               "regex_timeout": 0}

    def name_matches(name: str) -> bool:
        assert q.name is not None
        try:
            with _time_bound(q.regex_seconds):
                return q.name.match(name) is not None
        except RegexTimeout:
            skipped["regex_timeout"] += 1
            return False

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
            if q.name is not None and q.content is None and name_matches(name):
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
            if q.name is not None and not name_matches(name):
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
    out: list[dict[str, Any]] = []
    try:
        with _time_bound(q.regex_seconds):
            for number, line in enumerate(text.splitlines(), 1):
                if q.content.search(line):
                    out.append({"line": number, "text": line[:MAX_LINE_CHARS]})
                    if len(out) >= MAX_LINES_PER_FILE:
                        break
    except RegexTimeout:
        skipped["regex_timeout"] += 1
        return []
    return out


# -- the child process -------------------------------------------------------------------

def child_command() -> list[str]:
    """The command that runs a search in a child process: this file as a script, in
    isolated mode (no PYTHON* variables, no user site: only the interpreter's own
    packages, pathspec among them)."""
    return [sys.executable, "-I", os.path.abspath(__file__)]


def child_request(base: Path, root_path: Path, q: Query) -> bytes:
    """What the parent writes to the child's stdin: the query as JSON."""
    def pattern(p: re.Pattern[str] | None) -> list[Any] | None:
        return None if p is None else [p.pattern, p.flags]

    return json.dumps({"base": str(base), "root": str(root_path), "name": pattern(q.name),
                       "content": pattern(q.content), "max_file_bytes": q.max_file_bytes,
                       "max_results": q.max_results, "gitignore": q.gitignore,
                       "hidden": q.hidden, "regex_seconds": q.regex_seconds}).encode()


class _NoCancel:
    """The child's Ctl: cancelling is the parent killing the process."""

    def check(self) -> None:
        return None


def child_main() -> int:
    """Read the query from stdin, write ``[event, data]`` JSON lines to stdout; the last
    is ``["done", summary]`` or ``["error", {"detail": ...}]``."""
    out = sys.stdout

    def emit(name: str, data: Any) -> None:
        out.write(json.dumps([name, data]) + "\n")
        out.flush()

    try:
        spec = json.loads(sys.stdin.read())

        def pattern(value: list[Any] | None) -> re.Pattern[str] | None:
            return None if value is None else re.compile(value[0], value[1])

        q = Query(pattern(spec["name"]), pattern(spec["content"]), spec["max_file_bytes"],
                  spec["max_results"], spec["gitignore"], spec["hidden"],
                  spec["regex_seconds"])
        summary = search(_NoCancel(), Path(spec["base"]), Path(spec["root"]), q,  # type: ignore[arg-type]
                         emit)
    except Exception as exc:
        emit("error", {"detail": f"{type(exc).__name__}: {exc}"})
        return 1
    emit("done", summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(child_main())
