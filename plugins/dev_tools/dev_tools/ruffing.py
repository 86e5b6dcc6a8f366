"""ruff: the Problems list (``ruff check``) and previews of formatting and fixes."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from pathlib import Path
from typing import Any

from dev_tools import procs
from dev_tools.errors import ApiError
from dev_tools.workspace import Workspace

MAX_PROBLEMS = 5000
_RULE = re.compile(r"^[A-Z]+[0-9]+$")


def ruff_binary() -> str:
    try:  # the ruff wheel knows where its binary is, even outside an activated venv
        from ruff.__main__ import find_ruff_bin
        return str(find_ruff_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("ruff")
        if found is None:
            raise ApiError(409, None, "ruff is not installed: lint and format are off "
                                      "(install: pip install 'ruff>=0.6')") from None
        return found


async def lint(ws: Workspace, timeout: float) -> dict[str, Any]:
    """``ruff check`` of the workspace as Problems: file, position, rule, link, fix."""
    # --no-cache: reading must not write a .ruff_cache into the user's project.
    result = await procs.run([ruff_binary(), "check", "--output-format", "json", "--no-cache",
                              "--exit-zero", "--no-fix", "--force-exclude", "."],
                             ws.path, cap=100_000_000, timeout=timeout)
    if result.exit_code != 0:
        raise ApiError(409, None, f"ruff check failed: {result.output.strip()[-2000:]}")
    text = result.output
    start = text.find("[")  # ruff may print warnings (bad config keys) before the JSON
    try:
        items = json.loads(text[start:]) if start >= 0 else []
    except ValueError as exc:
        raise ApiError(409, None, f"ruff check gave no JSON ({exc}): {text[:500]}") from None
    problems = [_problem(ws.path, item) for item in items[:MAX_PROBLEMS]]
    problems.sort(key=lambda p: (p["path"], p["line"], p["column"]))
    counts = {"safe": 0, "unsafe": 0}
    for problem in problems:
        if problem["fix"] in counts:
            counts[problem["fix"]] += 1
    return {"workspace": str(ws.path), "problems": problems, "total": len(items),
            "shown": len(problems), "fixable": counts,
            "warnings": text[:start].strip() if start > 0 else ""}


def _problem(root: Path, item: dict[str, Any]) -> dict[str, Any]:
    filename = Path(item.get("filename") or "")
    try:
        rel = filename.resolve().relative_to(root).as_posix()
    except ValueError:
        rel = str(filename)
    location = item.get("location") or {}
    end = item.get("end_location") or {}
    fix = item.get("fix") or None
    code = item.get("code")
    return {
        "path": rel, "line": location.get("row", 1), "column": location.get("column", 1),
        "end_line": end.get("row"), "end_column": end.get("column"),
        "rule": code, "message": item.get("message", ""),
        # Syntax errors have no rule code (or "invalid-syntax") and no rule page.
        "url": item.get("url") or (f"https://docs.astral.sh/ruff/rules/{code}"
                                   if code and _RULE.match(code) else None),
        "syntax_error": not code or not _RULE.match(code),
        "severity": ("error" if not code or not _RULE.match(code)
                     or code.startswith(("E9", "F")) else "warning"),
        "fix": fix.get("applicability") if fix else None,
        "fix_message": fix.get("message") if fix else None,
        "tool": "ruff",
    }


# Files ruff reads its settings from; copied with the files of a format preview.
CONFIG_FILES = frozenset({"pyproject.toml", "ruff.toml", ".ruff.toml"})


def format_command() -> list[str]:
    """Formats ``.`` (the last argument; a preview replaces it with the files to format)."""
    return [ruff_binary(), "format", "--no-cache", "--force-exclude", "."]


def check_format_command() -> list[str]:
    # --diff rather than --check: its file headers read the same in every ruff >= 0.6
    # (--check's report changed format), and it writes nothing.
    return [ruff_binary(), "format", "--diff", "--no-cache", "--force-exclude", "."]


def would_reformat(output: str) -> set[str]:
    """The files of ``ruff format --diff``: a ``--- path`` line directly followed by
    ``+++ path`` (the same path), which a changed line of code cannot imitate."""
    lines = output.splitlines()
    found = set()
    for first, second in itertools.pairwise(lines):
        if first.startswith("--- ") and second.startswith("+++ ") and first[4:] == second[4:]:
            found.add(first[4:].strip())
    return found


def fix_command(unsafe: bool) -> list[str]:
    command = [ruff_binary(), "check", "--fix", "--no-cache", "--exit-zero",
               "--force-exclude", "--output-format", "concise", "."]
    # Explicit either way: a project's `unsafe-fixes = true` must not slip unsafe fixes
    # into a preview the user asked to keep safe.
    command.insert(3, "--unsafe-fixes" if unsafe else "--no-unsafe-fixes")
    return command


def messages(output: str) -> str:
    """ruff's own messages (errors, warnings) from an output that also holds diffs."""
    return "".join(line + "\n" for line in output.splitlines()
                   if line.startswith(("error", "warning")))
