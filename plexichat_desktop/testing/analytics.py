"""Result analytics: failure patterns, duration tracking with suggestions, categories.

Failure patterns group failures across runs and plugins by a *signature*: the exception
type, its message with what changes from run to run masked (numbers, hex and UUID ids,
paths, addresses, quoted values), and the innermost frames of the plugin's own code
(file and function, not line: an edit above the failing line must not split a group).
It is computed once, when a result is recorded, so grouping is a plain GROUP BY.

Durations: a test *got slower* when the median of its newest results is well above the
median of its own history before them, measured against that history's spread (median
absolute deviation), never against a fixed threshold. Suggestions come from what the
child saw: time in setup against time in the call, wall time against CPU time (a test
that sleeps or waits), and setups paid again and again in one file (a fixture that
could be shared).
"""

from __future__ import annotations

import hashlib
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from plexichat_desktop.testing.models import Outcome

CATEGORIES = ("functionality", "performance", "security", "integration", "analytics", "ux")
"""Test categories (pytest markers the host registers in every pytest child)."""

_MASKS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
     "<uuid>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b[0-9a-f]{16,}\b", re.I), "<hex>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<address>"),
    (re.compile(r"\[[0-9a-f:]+\](?::\d+)?", re.I), "<address>"),
    (re.compile(r"(?:[A-Za-z]:)?(?:[/\\][\w.@+-]+){2,}[/\\]?"), "<path>"),
    (re.compile(r"'[^'\n]{0,200}'|\"[^\"\n]{0,200}\""), "<str>"),
    (re.compile(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", re.I), "<n>"),
]
_EXC_LINE = re.compile(r"^(?:E\s+)?([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|"
                       r"Warning|Failed|Timeout|Skipped))\b:?")


def mask(text: str) -> str:
    """``text`` with the parts that differ between occurrences of one bug masked."""
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return re.sub(r"\s+", " ", text).strip()


def exception_type(message: str, given: str | None = None) -> str:
    """The exception's type: pytest's own when the child sent it, else read off the
    message (``AssertionError: ...``), else ``"failure"``."""
    if given:
        return given
    match = _EXC_LINE.match(message.strip())
    return match.group(1).rsplit(".", 1)[-1] if match else "failure"


def pattern_id(signature: str) -> str:
    """A short stable id for a signature (for URLs and the CLI)."""
    return hashlib.sha1(signature.encode("utf-8")).hexdigest()[:12]


def failure_signature(outcome: str, message: str, nodeid: str, exc_type: str | None = None,
                      frames: Sequence[Mapping[str, Any]] = ()) -> str:
    """The signature of a failure, in words:
    ``AssertionError: expected <n> got <n> @ tests/test_x.py:test_y``."""
    kind = exception_type(message, exc_type)
    text = message.strip()
    if text.startswith(kind):
        text = text[len(kind):].lstrip(": ")
    if outcome in (Outcome.TIMED_OUT, Outcome.CRASHED, Outcome.NOT_RUN):
        kind = str(outcome)
    where = [f"{f.get('path')}:{f.get('func')}" for f in frames[:2]] or [nodeid.split("::")[0]]
    return f"{kind}: {mask(text)[:200]} @ {' < '.join(where)}"


@dataclass
class FailurePattern:
    """One group of failures with the same signature."""

    id: str
    signature: str
    count: int
    tests: list[str]                # plugin::nodeid, most recent first, at most 20
    tests_affected: int
    plugins: list[str]
    first_seen: float
    last_seen: float
    first_run_id: int
    last_run_id: int
    example: dict[str, Any] = field(default_factory=dict)   # newest failure: message, run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DurationFinding:
    """A test that got slower, or a suggestion, with the figures behind it."""

    kind: str                       # "slower", "setup_heavy", "waits", "shared_fixture"
    plugin_id: str
    nodeid: str                     # a test, or a file for shared_fixture
    text: str                       # what to do, in words
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SLOWER_RECENT = 5        # newest results compared ...
SLOWER_HISTORY = 25      # ... with up to this many before them
SLOWER_MIN_HISTORY = 5
SLOWER_MIN_DELTA = 0.05  # seconds: below this no one notices
SLOWER_RATIO = 1.5
SLOWER_MADS = 4.0
SETUP_HEAVY = 0.2        # seconds of setup worth a word
WAIT_MIN = 0.3           # seconds of wall time
WAIT_CPU_SHARE = 0.2     # CPU below this share of the call's wall time: it waits
SHARED_MIN_TESTS = 3


def got_slower(durations_newest_first: Sequence[float]) -> dict[str, Any] | None:
    """Evidence that a test got slower, from its final durations newest first; None
    when it did not (or there is too little history to say)."""
    recent = list(durations_newest_first[:SLOWER_RECENT])
    history = list(durations_newest_first[SLOWER_RECENT:SLOWER_RECENT + SLOWER_HISTORY])
    if len(recent) < SLOWER_RECENT or len(history) < SLOWER_MIN_HISTORY:
        return None
    now, before = statistics.median(recent), statistics.median(history)
    spread = statistics.median(abs(d - before) for d in history)
    if (now - before < SLOWER_MIN_DELTA or now < before * SLOWER_RATIO
            or now - before < SLOWER_MADS * spread):
        return None
    return {"recent_median": round(now, 4), "history_median": round(before, 4),
            "history_mad": round(spread, 4), "recent_n": len(recent),
            "history_n": len(history), "ratio": round(now / before, 2) if before else None}


def suggestions(plugin_id: str, rows: Iterable[Mapping[str, Any]]) -> list[DurationFinding]:
    """Suggestions from one plugin's newest final results (``nodeid``, ``duration``,
    ``timings`` with setup/call/teardown/cpu seconds), each with its evidence."""
    found: list[DurationFinding] = []
    setup_by_file: dict[str, list[tuple[str, float]]] = {}
    for row in rows:
        timings = row.get("timings") or {}
        setup, call = float(timings.get("setup", 0.0)), float(timings.get("call", 0.0))
        cpu = timings.get("cpu")
        nodeid = str(row["nodeid"])
        setup_by_file.setdefault(nodeid.split("::")[0], []).append((nodeid, setup))
        if setup >= SETUP_HEAVY and setup > call:
            found.append(DurationFinding(
                "setup_heavy", plugin_id, nodeid,
                f"spends {setup:.2f} s in setup and {call:.2f} s in the test itself: "
                "look at its fixtures first",
                {"setup": setup, "call": call}))
        if cpu is not None and call >= WAIT_MIN and float(cpu) < call * WAIT_CPU_SHARE:
            found.append(DurationFinding(
                "waits", plugin_id, nodeid,
                f"runs {call:.2f} s but uses {float(cpu):.2f} s of CPU: it sleeps or waits "
                "on I/O; wait for the event itself (or poll faster) instead of a fixed sleep",
                {"call": call, "cpu": float(cpu)}))
    for file, setups in setup_by_file.items():
        heavy = [(n, s) for n, s in setups if s >= SETUP_HEAVY]
        if len(heavy) >= SHARED_MIN_TESTS:
            total = sum(s for _, s in heavy)
            # One finding for the file says it better than one per test.
            found = [f for f in found if not (f.kind == "setup_heavy"
                                              and f.nodeid.split("::")[0] == file)]
            found.append(DurationFinding(
                "shared_fixture", plugin_id, file,
                f"{len(heavy)} tests in this file spend {total:.2f} s in setup in all: a "
                "module- or session-scoped fixture would pay it once",
                {"tests": [n for n, _ in heavy][:20], "setup_total": round(total, 4)}))
    return found


def duration_report(history: Mapping[tuple[str, str], Sequence[Mapping[str, Any]]],
                    run_durations: Mapping[str, Sequence[float]], top: int = 10
                    ) -> dict[str, Any]:
    """What a user asks about time: the slowest tests (median of their newest results),
    the slowest plugins (median whole-suite run), tests that got slower, and suggestions,
    each with its evidence. ``history`` as ``ResultStore.duration_history`` gives it."""
    tests: list[dict[str, Any]] = []
    slower: list[DurationFinding] = []
    newest_by_plugin: dict[str, list[dict[str, Any]]] = {}
    for (plugin_id, nodeid), rows in history.items():
        durations = [float(r["duration"]) for r in rows]
        recent = durations[:SLOWER_RECENT]
        tests.append({"plugin_id": plugin_id, "nodeid": nodeid,
                      "median": round(statistics.median(recent), 4),
                      "last": round(durations[0], 4), "results": len(durations)})
        evidence = got_slower(durations)
        if evidence is not None:
            slower.append(DurationFinding(
                "slower", plugin_id, nodeid,
                f"got slower: {evidence['recent_median']:.3f} s now (median of its newest "
                f"{evidence['recent_n']}) against {evidence['history_median']:.3f} s before",
                evidence))
        newest_by_plugin.setdefault(plugin_id, []).append({"nodeid": nodeid, **rows[0]})
    tests.sort(key=lambda t: t["median"], reverse=True)
    plugins: list[dict[str, Any]] = sorted(
        ({"plugin_id": p, "median_run": round(statistics.median(d), 3), "runs": len(d)}
         for p, d in run_durations.items() if d),
        key=lambda p: p["median_run"], reverse=True)
    hints = [finding.to_dict() for plugin_id, rows in sorted(newest_by_plugin.items())
             for finding in suggestions(plugin_id, rows)]
    return {"slowest_tests": tests[:top], "slowest_plugins": plugins[:top],
            "slower": [f.to_dict() for f in slower], "suggestions": hints}
