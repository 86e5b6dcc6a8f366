"""The git facts the gate and the hotspots need, from the ``git`` program (argument lists).

New code is what ``git diff <ref>`` shows as added in the working tree (committed or not)
plus untracked files that are not ignored: the lines a change would bring in.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from plexichat_desktop.plugins.guards import (
    GIT_DRIVER_QUERY,
    git_config_env,
    untrusted_git_settings,
)

HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")
# A ref a user types: names, ~N, ^N, @{...}, hashes. No option (leading '-') can pass.
# \w: letters and digits of any script (git takes "fëature"); no space, no control
# character, no leading "-" (an option), and rev-parse gets --end-of-options as well.
REF = re.compile(r"(?!-)[\w./@{}~^:+-]{1,200}")  # used with fullmatch: "$" takes a final \n


class GitError(RuntimeError):
    """git is missing, the folder is no repository, or a ref does not exist."""


_BASE = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null",
         "-c", "core.pager=cat", "-c", "core.quotepath=off")


def _git(repo: Path, *args: str, timeout: float = 60) -> str:
    exe = shutil.which("git")
    if exe is None:
        raise GitError("git is not installed")
    # The repository's own config is not trusted to run programs (it may come from a
    # clone, an archive or a shared drive): every command here only reads, so besides
    # fsmonitor, hooks and pager, its filters (clean runs on changed files), textconv and
    # external diff drivers and signature programs are neutralised (the host's
    # untrusted_git_settings, as GIT_CONFIG_* variables).
    # core.quotepath=off: a path with non-ASCII characters comes as it is, not quoted
    # with octal escapes the diff parser would not match.
    query = subprocess.run([exe, "-C", str(repo), *_BASE, *GIT_DRIVER_QUERY],
                           capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    names = (query.stdout.decode("utf-8", "surrogateescape").split("\0")
             if query.returncode == 0 else [])
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0",
           **git_config_env(untrusted_git_settings(names))}
    if args[0] in ("diff", "log", "show"):
        args = (args[0], "--no-ext-diff", "--no-textconv", *args[1:])
    proc = subprocess.run([exe, "-C", str(repo), *_BASE, *args], capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=env)
    if proc.returncode != 0:
        raise GitError(f"git {args[0]}: {proc.stderr.decode('utf-8', 'replace').strip()}")
    return proc.stdout.decode("utf-8", "surrogateescape")


def toplevel(folder: Path) -> Path | None:
    """The work tree holding ``folder``, or None (not a repo, or no git)."""
    try:
        return Path(_git(folder, "rev-parse", "--show-toplevel").strip()).resolve()
    except (GitError, OSError, subprocess.TimeoutExpired):
        return None


def resolve_ref(repo: Path, ref: str) -> str:
    if not REF.fullmatch(ref) or ".." in ref:
        raise GitError(f"ref: {ref!r} is not a git ref")
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options",
                    f"{ref}^{{commit}}").strip()
    except GitError:
        raise GitError(f"ref: {ref!r} names no commit in {repo}") from None


@dataclass
class Change:
    """One changed file: its path from the repo top, status, and its new line numbers."""

    path: str
    status: str  # A(dded) M(odified) R(enamed) U(ntracked)
    old_path: str | None
    lines: set[int] = field(default_factory=set)
    whole: bool = False  # every line is new (added or untracked)


def changes(repo: Path, commit: str, under: str) -> list[Change]:
    """Files changed since ``commit`` under the repo-relative folder ``under`` ('' = all)."""
    spec = [f":(top){under}" if under else ":(top)"]
    found: dict[str, Change] = {}
    # The patch below lists the same files in the same order: its sections are matched
    # to these by position, because the names in its "+++ b/..." lines are quoted or
    # followed by a tab for names with a space, a quote, a backslash or a control
    # character, and such a file's new lines were missed (the gate passed on them).
    order: list[str | None] = []
    # --submodule=short: with diff.submodule=log a submodule's change has no "diff --git"
    # section, and every file after it would take the lines of the one before.
    out = _git(repo, "diff", "--name-status", "-z", "-M", "--no-ext-diff",
               "--submodule=short", commit, "--", *spec)
    parts = out.split("\0")
    i = 0
    while i < len(parts) - 1:
        status = parts[i]
        if status.startswith(("R", "C")):
            old, new = parts[i + 1], parts[i + 2]
            i += 3
            found[new] = Change(new, "R", old)
            order.append(new)
        else:
            path = parts[i + 1]
            i += 2
            order.append(None if status == "D" else path)
            if status == "T":  # a type change is two sections: the old deleted, the new
                order.append(path)
            if status != "D":
                found[path] = Change(path, status[0], path if status[0] != "A" else None,
                                     whole=status[0] == "A")
    diff = _git(repo, "diff", "-U0", "-M", "--no-color", "--no-ext-diff", "--submodule=short",
                commit, "--", *spec)
    current: Change | None = None
    section = -1
    # Split on newlines only: str.splitlines() also breaks at form feeds and other
    # separators inside a changed line.
    for line in diff.split("\n"):
        if line.startswith("diff --git "):
            section += 1
            name = order[section] if section < len(order) else None
            current = found.get(name) if name is not None else None
        elif current is not None and (m := HUNK.match(line)):
            start, count = int(m[1]), int(m[2]) if m[2] is not None else 1
            current.lines.update(range(start, start + count))
    untracked = _git(repo, "ls-files", "--others", "--exclude-standard", "-z", "--",
                     *spec)
    for path in filter(None, untracked.split("\0")):
        found[path] = Change(path, "U", None, whole=True)
    return sorted(found.values(), key=lambda c: c.path)


def show(repo: Path, commit: str, path: str) -> bytes | None:
    """``path`` as it was at ``commit`` (None if it did not exist there)."""
    exe = shutil.which("git")
    if exe is None:
        return None
    proc = subprocess.run([exe, "-C", str(repo), "show", f"{commit}:{path}"],
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    return proc.stdout if proc.returncode == 0 else None


def show_many(repo: Path, commit: str, paths: list[str]) -> dict[str, bytes | None]:
    """Each of ``paths`` as it was at ``commit`` (None where it did not exist), read by one
    ``git cat-file --batch`` instead of a process per file."""
    return cat_objects(repo, paths, [f"{commit}:{p}" for p in paths])


def cat_objects(repo: Path, keys: list[str], names: list[str]) -> dict[str, bytes | None]:
    """``{key: content}`` of the blobs ``names`` (object names or ``commit:path``), None for
    a missing object or one that is not a blob."""
    exe = shutil.which("git")
    if exe is None or not names:
        return dict.fromkeys(keys)
    request = "".join(f"{n}\n" for n in names).encode("utf-8", "surrogateescape")
    proc = subprocess.run([exe, "-C", str(repo), "cat-file", "--batch"], input=request,
                          capture_output=True, timeout=300)
    if proc.returncode != 0:
        raise GitError(f"git cat-file: {proc.stderr.decode('utf-8', 'replace').strip()}")
    out, pos, found = proc.stdout, 0, {}
    for key in keys:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        size = int(header[2]) if len(header) == 3 else -1
        found[key] = out[pos:pos + size] if header[1:2] == [b"blob"] else None
        if size >= 0:
            pos += size + 1  # the content is followed by a newline
    return found


@dataclass
class Commit:
    sha: str
    time: int
    subject: str


def log(repo: Path, under: str, count: int) -> list[Commit]:
    """The last ``count`` commits touching ``under`` (newest first)."""
    spec = [f":(top){under}" if under else ":(top)"]
    out = _git(repo, "log", f"-n{count}", "--no-merges", "--format=%H%x00%ct%x00%s", "--",
               *spec)
    commits = []
    for line in out.splitlines():
        sha, when, subject = line.split("\0", 2)
        commits.append(Commit(sha, int(when), subject))
    return commits


def tree_files(repo: Path, commit: str, under: str) -> list[tuple[str, int, str]]:
    """``(path from the repo top, size, blob name)`` of every file at ``commit`` under
    ``under``; symlinks and submodules are left out."""
    spec = [f":(top){under}" if under else ":(top)"]
    out = _git(repo, "ls-tree", "-r", "-l", "-z", "--full-tree", commit, "--", *spec)
    files = []
    for item in filter(None, out.split("\0")):
        meta, path = item.split("\t", 1)
        mode, kind, blob, size = meta.split()
        if kind == "blob" and mode in ("100644", "100755"):
            files.append((path, int(size), blob))
    return files


def churn(repo: Path, under: str, days: int) -> dict[str, dict[str, int]]:
    """Per repo-relative file: commits touching it and lines added + deleted in ``days``."""
    spec = [f":(top){under}" if under else ":(top)"]
    out = _git(repo, "log", f"--since={days} days ago", "--no-merges", "--numstat",
               "--format=@%H", "--no-renames", "--", *spec, timeout=120)
    stats: dict[str, dict[str, int]] = {}
    for line in out.splitlines():
        if not line or line.startswith("@"):
            continue
        added, deleted, path = line.split("\t", 2)
        entry = stats.setdefault(path, {"commits": 0, "lines": 0})
        entry["commits"] += 1
        if added != "-":  # binary files show '-'
            entry["lines"] += int(added) + int(deleted)
    return stats
