"""A pytest plugin the Development Tools plugin loads into the workspace's pytest
(``-p devtools_report``): one JSON line per test result in $DEVTOOLS_PYTEST_REPORT.

It has no dependency but pytest, so it works in any project's environment.
"""

from __future__ import annotations

import json
import os
from typing import Any

_PATH = os.environ.get("DEVTOOLS_PYTEST_REPORT")
MAX_TEXT = 20_000


def _write(record: dict[str, Any]) -> None:
    if not _PATH:
        return
    with open(_PATH, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def _text(report: Any) -> str | None:
    if report.longrepr is None:
        return None
    text = report.longreprtext if hasattr(report, "longreprtext") else str(report.longrepr)
    return text[-MAX_TEXT:]


# (rootdir, invocation folder) when they differ: pytest names tests from its rootdir (the
# folder of pytest.ini), the run starts in the workspace, and a node id handed back to
# pytest from there must be relative to it ("pkg/tests/t.py::x" found nothing).
_SHIFT: tuple[str, str] | None = None


def pytest_configure(config: Any) -> None:
    global _SHIFT
    root = getattr(config, "rootpath", None)
    params = getattr(config, "invocation_params", None)
    here = getattr(params, "dir", None)
    if root is not None and here is not None and str(root) != str(here):
        _SHIFT = (str(root), str(here))


def _here(nodeid: str) -> str:
    """``nodeid`` as the invocation folder names it."""
    if _SHIFT is None or not nodeid:
        return nodeid
    file_part, sep, rest = nodeid.partition("::")
    root, here = _SHIFT
    moved = os.path.relpath(os.path.join(root, file_part), here).replace(os.sep, "/")
    return moved + sep + rest


def pytest_collection_finish(session: Any) -> None:
    _write({"event": "collected", "count": len(session.items)})


def pytest_collectreport(report: Any) -> None:
    if report.failed:
        _write({"event": "result", "nodeid": _here(report.nodeid) or "(collection)",
                "outcome": "error", "when": "collect", "duration": 0.0,
                "longrepr": _text(report)})


def pytest_runtest_logreport(report: Any) -> None:
    xfail = hasattr(report, "wasxfail")
    if report.when == "call":
        outcome = report.outcome
        if xfail:
            outcome = "xfailed" if report.skipped else "xpassed"
    elif report.when == "setup" and not report.passed:
        outcome = "error" if report.failed else ("xfailed" if xfail else "skipped")
    elif report.when == "teardown" and report.failed:
        outcome = "error"
    else:
        return
    _write({"event": "result", "nodeid": _here(report.nodeid), "outcome": outcome,
            "when": report.when, "duration": round(report.duration, 6),
            "longrepr": _text(report) if outcome != "passed" else None})


def pytest_sessionfinish(session: Any, exitstatus: Any) -> None:
    _write({"event": "finish", "exitstatus": int(exitstatus)})
