"""pytest of the workspace, in a subprocess of the workspace's interpreter, as a tree."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from dev_tools import procs
from dev_tools.errors import ApiError
from dev_tools.tasks import python_for
from dev_tools.workspace import Workspace

REPORTER_DIR = Path(__file__).resolve().parent / "pytest_report"
FAILED = {"failed", "error"}
MAX_NODEIDS = 2000


def check_nodeids(ws: Workspace, nodeids: list[str]) -> list[str]:
    if len(nodeids) > MAX_NODEIDS:
        raise ApiError(422, "nodeids", f"at most {MAX_NODEIDS}, got {len(nodeids)}")
    for index, nodeid in enumerate(nodeids):
        field = f"nodeids[{index}]"
        if not nodeid or nodeid.startswith("-") or "\x00" in nodeid:
            raise ApiError(422, field, f"{nodeid!r} is not a pytest node id")
        ws.rel(nodeid.split("::", 1)[0], field)  # the file part stays in the workspace
    return nodeids


def read_report(path: Path) -> tuple[list[dict[str, Any]], int | None, int | None]:
    results: list[dict[str, Any]] = []
    collected = exit_status = None
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError:
        return results, None, None
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        if record.get("event") == "collected":
            collected = record["count"]
        elif record.get("event") == "finish":
            exit_status = record["exitstatus"]
        elif record.get("event") == "result":
            results.append(record)
    return results, collected, exit_status


# pytest's exit statuses that mean it could not do what was asked.
USAGE_FAILURES = {2: "interrupted", 3: "an internal error", 4: "a usage error"}


def split_nodeid(nodeid: str) -> list[str]:
    """A node id's parts at "::", but not inside a parameter id's brackets
    ("test_p[x::y]" is one test, not a test "test_p[x" holding a "y]")."""
    parts: list[str] = []
    depth = start = 0
    i = 0
    while i < len(nodeid):
        char = nodeid[i]
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
        elif depth == 0 and nodeid.startswith("::", i):
            parts.append(nodeid[start:i])
            start = i + 2
            i += 2
            continue
        i += 1
    parts.append(nodeid[start:])
    return parts


async def run(ws: Workspace, nodeids: list[str], cap: int,
              progress: Any = None, autoload: bool = True) -> dict[str, Any]:
    fd, name = tempfile.mkstemp(prefix="dev_tools-pytest-", suffix=".jsonl")
    os.close(fd)
    report = Path(name)
    python = python_for(ws)
    env = procs.child_env({
        "DEVTOOLS_PYTEST_REPORT": str(report),
        "PYTHONPATH": os.pathsep.join([str(REPORTER_DIR),
                                       *filter(None, [os.environ.get("PYTHONPATH")])]),
    })
    # The app's own test settings must not leak into the user's project.
    for key in ("PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_CURRENT_TEST"):
        env.pop(key, None)
    if not autoload:
        # Seconds saved per run in an environment full of pytest plugins the project
        # does not use; the user chooses it per run.
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    argv = [python, "-m", "pytest", "-p", "devtools_report", "-q", "-rN", "--color=no",
            "-p", "no:cacheprovider", *(["--", *nodeids] if nodeids else [])]

    async def watch() -> None:
        while True:
            await asyncio.sleep(0.3)
            results, collected, _ = read_report(report)
            if progress is not None and collected:
                progress(len(results), collected, f"{len(results)} of {collected} tests")

    watcher = asyncio.create_task(watch())
    try:
        result = await procs.run(argv, ws.path, cap=cap, env=env)
        results, collected, exit_status = read_report(report)
    finally:
        watcher.cancel()
        report.unlink(missing_ok=True)
    tail = result.output.strip()[-1500:]
    if exit_status is None and not results:
        if collected is not None:
            # It ran and collected: something ended the process under the tests.
            raise ApiError(409, None, f"pytest ended (exit code {result.exit_code}) after "
                           f"collecting {collected} tests, before any result: a test that "
                           f"exits or crashes the interpreter (os._exit, a segfault)? {tail}")
        raise ApiError(409, None, f"pytest did not run with {python} (is pytest installed "
                                  f"in the workspace's environment?): {tail}")
    if exit_status in USAGE_FAILURES and not results:
        # "file or directory not found" and the like: nothing ran, which is no success.
        raise ApiError(409, "nodeids" if nodeids else None,
                       f"pytest could not run this ({USAGE_FAILURES[exit_status]}, exit "
                       f"status {exit_status}): {tail}")
    counts: dict[str, int] = {}
    for item in results:
        counts[item["outcome"]] = counts.get(item["outcome"], 0) + 1
    return {
        "workspace": str(ws.path), "python": python, "nodeids": nodeids,
        "autoload": autoload, "exit_code": result.exit_code, "exit_status": exit_status,
        "collected": collected,
        # Results came, then no end: a test ended the process in the middle.
        "ended_early": exit_status is None,
        "counts": counts, "results": results, "tree": tree(results),
        "failed": [r["nodeid"] for r in results if r["outcome"] in FAILED],
        "output": result.output, "truncated": result.truncated,
    }


def tree(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Folders -> files -> classes -> tests, each node with counts of its outcomes."""
    root: dict[str, Any] = {"children": {}}
    for item in results:
        file_part, *rest = split_nodeid(item["nodeid"])
        parts = [*file_part.split("/"), *rest]
        node = root
        path = ""
        for depth, part in enumerate(parts):
            path = part if not path else (f"{path}/{part}" if depth < len(
                file_part.split("/")) else f"{path}::{part}")
            node = node["children"].setdefault(part, {"name": part, "id": path,
                                                      "children": {}, "counts": {}})
            node["counts"][item["outcome"]] = node["counts"].get(item["outcome"], 0) + 1
        node["result"] = item

    def finish(node: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for child in node["children"].values():
            child["children"] = finish(child)
            out.append(child)
        return out

    return finish(root)
