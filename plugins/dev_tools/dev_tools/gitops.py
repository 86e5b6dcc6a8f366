"""Source control through the ``git`` program (argument lists, no shell, no pager).

The workspace's own git configuration is not trusted to run programs (it may come from a
clone, an unpacked archive or a shared drive). Every command runs without fsmonitor,
pager or (but for a commit the user makes) hooks. The read-only ones the page runs on its
own (status, diff, log, show, branch listing, rev-parse, ls-files) also run with the
host's :func:`untrusted_git_settings`: the repository's clean/smudge filters, textconv
and external diff drivers, signature programs and the like are neutralised, through
``GIT_CONFIG_*`` variables. Staging, commit and switch are actions the user takes and
keep the repository's filters (git-lfs works there as on the command line).
"""

from __future__ import annotations

import re
import shutil
from typing import Any

from dev_tools import procs
from dev_tools.errors import ApiError
from dev_tools.workspace import Workspace
from plexichat_desktop.plugins.guards import (
    GIT_DRIVER_QUERY,
    git_config_env,
    untrusted_git_settings,
)

MAX_DIFF_BYTES = 2_000_000
_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)(?!.*@\{)[A-Za-z0-9._/-]{1,200}(?<![./])$")
_XY = {"M": "modified", "A": "added", "D": "deleted", "R": "renamed", "C": "copied",
       "T": "type changed", "U": "unmerged", ".": ""}


def git_binary() -> str:
    git = shutil.which("git")
    if git is None:
        raise ApiError(409, None, "git is not installed: Source Control is off "
                                  "(install git and press Enable in the plugin list)")
    return git


SAFE_GIT_CONFIG = ("-c", "core.fsmonitor=false", "-c", "core.pager=cat",
                   "-c", "pager.diff=false")
NO_HOOKS = ("-c", "core.hooksPath=/dev/null")
# Commands that only read: they get the full set of overrides (filters, drivers...).
READ_ONLY = frozenset({"status", "diff", "log", "show", "branch", "rev-parse", "ls-files",
                       "blame", "cat-file"})


async def _read_only_env(ws: Workspace, git_exe: str) -> dict[str, str]:
    """The overrides for the filter and diff drivers the repository's config names."""
    query = await procs.run([git_exe, *SAFE_GIT_CONFIG, *NO_HOOKS, *GIT_DRIVER_QUERY],
                            ws.path, cap=1_000_000, env=procs.child_env({"LC_ALL": "C"}),
                            timeout=60)
    names = query.output.split("\x00") if query.exit_code == 0 else []
    return git_config_env(untrusted_git_settings(names))


async def git(ws: Workspace, *args: str, stdin: bytes | None = None,
              cap: int = MAX_DIFF_BYTES, check: bool = True) -> procs.ProcResult:
    # -c core.quotepath=off: paths as they are, not octal-escaped. See the module doc
    # for what the workspace's own config may not run.
    exe = git_binary()
    argv = [exe, "-c", "core.quotepath=off", "-c", "color.ui=false",
            *SAFE_GIT_CONFIG, *(() if args[:1] == ("commit",) else NO_HOOKS), *args]
    # Literal pathspecs: the paths given are file names checked to be in the workspace;
    # read as pathspec magic, ":(top)*" staged the whole repository above it. Not for a
    # commit, which passes no paths and runs the repository's hooks: they inherit the
    # environment, and a hook's own "git diff -- '*.py'" would then match nothing.
    extra = {"LC_ALL": "C"}
    if args[0] != "commit":
        extra["GIT_LITERAL_PATHSPECS"] = "1"
    if args[0] in READ_ONLY:
        extra |= await _read_only_env(ws, exe)
    if args[0] in ("diff", "show", "log"):
        # Whatever the caller passed: no external diff, no textconv program.
        argv[len(argv) - len(args) + 1:len(argv) - len(args) + 1] = [
            "--no-ext-diff", "--no-textconv"]
    result = await procs.run(argv, ws.path, cap=cap, stdin=stdin,
                             env=procs.child_env(extra), timeout=120)
    if check and result.exit_code != 0:
        raise ApiError(409, None, f"git {args[0]} failed: {result.output.strip()[-2000:]}")
    return result


async def repo_state(ws: Workspace) -> dict[str, Any] | None:
    """None when the workspace is not in a git work tree (the page says so)."""
    if shutil.which("git") is None:
        return None
    result = await git(ws, "rev-parse", "--show-toplevel", "--show-prefix", check=False)
    if result.exit_code != 0:
        return None
    toplevel, _, prefix = result.output.partition("\n")
    return {"toplevel": toplevel.strip(), "prefix": prefix.strip()}


async def require_repo(ws: Workspace) -> dict[str, Any]:
    """The workspace's repository state (see :func:`repo_state`); a 409 when it has none."""
    state = await repo_state(ws)
    if state is None:
        raise ApiError(409, "workspace", f"{ws.path} is not a git repository "
                                         "(run `git init` there to start one)",
                       state="not_a_repository")
    return state


async def status(ws: Workspace) -> dict[str, Any]:
    state = await repo_state(ws)
    if state is None:
        available = shutil.which("git") is not None
        return {"repository": False, "git_available": available,
                "message": (f"{ws.name} is not a git repository." if available
                            else "git is not installed.")}
    result = await git(ws, "status", "--porcelain=v2", "--branch", "-z",
                       "--untracked-files=all", "--", ".")
    branch: dict[str, Any] = {"head": None, "upstream": None, "ahead": 0, "behind": 0,
                              "oid": None}
    files: list[dict[str, Any]] = []
    records = result.output.split("\x00")
    index = 0
    while index < len(records):
        rec = records[index]
        index += 1
        if not rec:
            continue
        if rec.startswith("# "):
            key, _, value = rec[2:].partition(" ")
            if key == "branch.head":
                branch["head"] = None if value == "(detached)" else value
            elif key == "branch.oid":
                branch["oid"] = None if value == "(initial)" else value
            elif key == "branch.upstream":
                branch["upstream"] = value
            elif key == "branch.ab":
                ahead, behind = value.split()
                branch["ahead"], branch["behind"] = int(ahead), -int(behind)
            continue
        kind = rec[0]
        if kind == "1":
            parts = rec.split(" ", 8)
            files.append(_entry(parts[8], parts[1]))
        elif kind == "2":
            parts = rec.split(" ", 9)
            entry = _entry(parts[9], parts[1])
            entry["from"] = records[index]
            index += 1
            files.append(entry)
        elif kind == "u":
            parts = rec.split(" ", 10)
            files.append({"path": parts[10], "staged": None, "unstaged": "unmerged",
                          "conflict": True, "untracked": False})
        elif kind == "?":
            files.append({"path": rec[2:], "staged": None, "unstaged": "untracked",
                          "conflict": False, "untracked": True})
    # Porcelain paths are relative to the repository's top; the page and the stage
    # routes speak workspace-relative paths (the workspace may be a sub-folder).
    prefix = state["prefix"]
    for entry in files:
        for key in ("path", "from"):
            if key in entry and prefix and entry[key].startswith(prefix):
                entry[key] = entry[key][len(prefix):]
    return {"repository": True, "toplevel": state["toplevel"], "prefix": prefix,
            "branch": branch, "files": files, "clean": not files,
            "operation": await operation(ws)}


def _entry(path: str, xy: str) -> dict[str, Any]:
    return {"path": path, "staged": _XY.get(xy[0]) or None, "unstaged": _XY.get(xy[1]) or None,
            "conflict": False, "untracked": False}


async def diff(ws: Workspace, path: str | None, staged: bool) -> dict[str, Any]:
    await require_repo(ws)
    args = ["diff", "--no-ext-diff", "--no-textconv", "--patch", "--find-renames"]
    if staged:
        args.append("--cached")
    args += ["--", path] if path else ["--", "."]
    result = await git(ws, *args)
    text = result.output
    truncated = result.truncated
    if path and not text and not staged:
        # An untracked file has no diff against the index: show it as all new.
        untracked = await git(ws, "ls-files", "--others", "--exclude-standard", "--", path)
        if untracked.output.strip():
            shown = await git(ws, "diff", "--no-index", "--no-ext-diff", "--no-textconv",
                              "--", "/dev/null", path, check=False)
            text = shown.output
            truncated = shown.truncated
    return {"path": path, "staged": staged, "diff": text, "truncated": truncated}


async def has_head(ws: Workspace) -> bool:
    return (await git(ws, "rev-parse", "--verify", "-q", "HEAD", check=False)).exit_code == 0


async def stage(ws: Workspace, paths: list[str]) -> None:
    await require_repo(ws)
    # -A also stages deletions of the given paths.
    await git(ws, "add", "-A", "--", *paths)


async def unstage(ws: Workspace, paths: list[str]) -> None:
    await require_repo(ws)
    if await has_head(ws):
        # A staged rename is one row on the page, named by its new path: unstage both of
        # its sides, as other git clients do (git restore --staged takes paths, not
        # renames: the old path's deletion stayed staged and the new path went untracked).
        other: dict[str, str] = {}
        for entry in (await status(ws))["files"]:
            if entry["staged"] == "renamed" and "from" in entry:
                other[entry["path"]], other[entry["from"]] = entry["from"], entry["path"]
        paths = list(dict.fromkeys([*paths, *(other[p] for p in paths if p in other)]))
        await git(ws, "restore", "--staged", "--", *paths)
    else:  # nothing committed yet: "unstage" means dropping from the index
        await git(ws, "rm", "--cached", "-r", "-q", "--", *paths)


# What git is in the middle of, by the file it keeps while it is (in .git).
OPERATIONS = (("MERGE_HEAD", "merge"), ("CHERRY_PICK_HEAD", "cherry-pick"),
              ("REVERT_HEAD", "revert"), ("REBASE_HEAD", "rebase"))


async def operation(ws: Workspace) -> str | None:
    """The merge, cherry-pick, revert or rebase in progress, or None."""
    for ref, name in OPERATIONS:
        found = await git(ws, "rev-parse", "-q", "--verify", ref, check=False)
        if found.exit_code == 0:
            return name
    return None


async def commit(ws: Workspace, message: str, amend: bool = False) -> dict[str, Any]:
    state = await require_repo(ws)
    if not message.strip():
        raise ApiError(422, "message", "a commit needs a message (it is empty)")
    doing = await operation(ws)
    if doing is not None:
        unmerged = await git(ws, "diff", "--name-only", "--diff-filter=U", check=False)
        if unmerged.output.strip():
            raise ApiError(409, None, f"a {doing} is in progress with conflicts left: "
                           f"resolve and stage {', '.join(unmerged.output.split()[:5])}")
        if amend and doing != "rebase":  # amending at a rebase's "edit" stop is its point
            raise ApiError(409, "amend", f"a {doing} is in progress: commit it (git does "
                                         "not amend in the middle of one)")
    elif not amend:
        # A merge resolved to what HEAD has stages nothing and is still a commit to make.
        staged = await git(ws, "diff", "--cached", "--quiet", check=False)
        if staged.exit_code == 0:
            raise ApiError(409, None, "nothing is staged: stage changes before committing")
    if state["prefix"]:
        # The page shows this folder only; a commit takes the whole index, so what is
        # staged elsewhere in the repository would go in unseen.
        # No pathspec: the whole index, named from the repository's top.
        every = await git(ws, "diff", "--cached", "--name-only", "-z", check=False)
        outside = [p for p in every.output.split("\x00")
                   if p and not p.startswith(state["prefix"])]
        if outside:
            shown = ", ".join(outside[:5]) + (f" and {len(outside) - 5} more"
                                             if len(outside) > 5 else "")
            raise ApiError(409, None, f"staged outside this workspace ({shown}): they "
                           "would go into the commit unseen; unstage them, or open the "
                           f"repository's top folder {state['toplevel']}",
                           outside=outside[:100])
    args = ["commit", "--file=-", "--cleanup=strip"]
    if amend:
        args.append("--amend")
    await git(ws, *args, stdin=message.encode("utf-8"))
    head = await git(ws, "log", "-1", "--format=%H%x1f%s")
    sha, _, subject = head.output.strip().partition("\x1f")
    return {"commit": sha, "subject": subject}


async def branches(ws: Workspace) -> dict[str, Any]:
    await require_repo(ws)
    result = await git(ws, "branch", "--all",
                       "--format=%(HEAD)%1f%(refname)%1f%(refname:short)%1f"
                       "%(objectname:short)%1f%(upstream:short)%1f%(committerdate:unix)%1f"
                       "%(contents:subject)")
    items = []
    for line in result.output.splitlines():
        parts = line.split("\x1f")
        if len(parts) < 7:
            continue
        current, full, name, sha, upstream, when, subject = parts[:7]
        if not full.startswith("refs/"):
            continue  # "(HEAD detached at ...)": no branch (the status says detached)
        items.append({"name": name, "current": current == "*", "commit": sha,
                      "upstream": upstream or None, "date": int(when) if when else None,
                      "subject": subject, "remote": full.startswith("refs/remotes/")})
    return {"branches": items}


def check_branch(name: str, field: str = "branch") -> str:
    if not _BRANCH.match(name) or name.endswith(".lock"):
        raise ApiError(422, field, f"{name!r} is not a valid branch name")
    return name


async def switch(ws: Workspace, name: str, create: bool) -> None:
    await require_repo(ws)
    check_branch(name)
    await git(ws, "switch", *(["-c"] if create else []), name, "--")


async def log(ws: Workspace, limit: int, ref: str | None = None) -> dict[str, Any]:
    await require_repo(ws)
    if not await has_head(ws):
        return {"commits": [], "message": "no commit yet"}
    args = ["log", f"-n{limit}", "--format=%H%x1f%h%x1f%an%x1f%ae%x1f%at%x1f%D%x1f%s%x1e"]
    if ref:
        # Any revision git names a commit by (HEAD~1, a tag, a hash), not only a branch;
        # resolved first, so what reaches git log is a commit id, never an option.
        if len(ref) > 200 or ref.startswith("-") or any(ord(c) < 32 for c in ref):
            raise ApiError(422, "ref", f"{ref[:80]!r} is not a revision")
        found = await git(ws, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}",
                          check=False)  # (no --end-of-options: git 2.30+ only; "-" refused)
        if found.exit_code != 0:
            raise ApiError(422, "ref", f"{ref!r} names no commit here")
        args.append(found.output.strip())
    args.append("--")
    result = await git(ws, *args)
    commits = []
    for record in result.output.split("\x1e"):
        parts = record.strip("\n").split("\x1f")
        if len(parts) != 7:
            continue
        sha, short, author, email, when, refs, subject = parts
        commits.append({"commit": sha, "short": short, "author": author, "email": email,
                        "date": int(when), "refs": refs, "subject": subject})
    return {"commits": commits}


async def show(ws: Workspace, sha: str) -> dict[str, Any]:
    await require_repo(ws)
    if not re.fullmatch(r"[0-9a-fA-F]{4,64}", sha):
        raise ApiError(422, "commit", f"{sha!r} is not a commit id")
    result = await git(ws, "show", "--no-ext-diff", "--no-textconv",
                       "--format=%H%n%an <%ae>%n%ad%n%n%B", sha, "--")
    return {"commit": sha, "text": result.output, "truncated": result.truncated}
