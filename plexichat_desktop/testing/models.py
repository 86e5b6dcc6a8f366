"""The test manager's vocabulary: outcomes, run states, priorities and stored records."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from enum import IntEnum, StrEnum
from typing import Any


class RunnerClosed(RuntimeError):
    """The runner was closed (the app is stopping) while this was being done."""


class Outcome(StrEnum):
    """Per-test outcomes: pytest's own, plus what the host itself observes."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"          # setup or teardown failed
    SKIPPED = "skipped"
    XFAILED = "xfailed"
    XPASSED = "xpassed"
    TIMED_OUT = "timed_out"  # our per-test or per-run timeout killed it
    CRASHED = "crashed"      # the child died while the test ran
    NOT_RUN = "not_run"      # the run ended (cancelled, crashed twice) before it started


BAD_OUTCOMES = frozenset({Outcome.FAILED, Outcome.ERROR, Outcome.TIMED_OUT, Outcome.CRASHED})


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PASSED = "passed"            # every test passed, skipped or xfailed
    FAILED = "failed"            # at least one test failed, errored, timed out or crashed
    ERROR = "error"              # collection errors or an infrastructure problem
    NO_TESTS = "no_tests"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # the app stopped (or crashed) while it ran

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)


class Priority(IntEnum):
    LOW = 0
    MEDIUM = 1
    HIGH = 2
    CRITICAL = 3

    @classmethod
    def parse(cls, value: str | int | Priority) -> Priority:
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                raise ValueError(f"priority must be one of low, medium, high, critical; "
                                 f"got {value!r}") from None
        return cls(value)


@dataclass
class CollectedTest:
    """One test item as pytest collects it."""

    plugin_id: str
    nodeid: str          # pytest's node id, relative to the plugin folder
    file: str            # path relative to the plugin folder
    line: int | None     # 1-based, None when pytest does not know
    name: str            # e.g. "test_add[1-2]"
    cls: str | None = None
    categories: list[str] = field(default_factory=list)   # its category markers

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TestAttempt:
    """One execution of one test inside a run (a rerun is another attempt)."""

    __test__ = False

    run_id: int
    plugin_id: str
    nodeid: str
    outcome: Outcome
    attempt: int = 1
    duration: float = 0.0      # seconds, all phases
    phase: str | None = None   # the phase that decided: setup, call or teardown
    message: str = ""          # one line: the assertion or exception
    longrepr: str = ""         # the traceback text (truncated)
    stdout: str = ""
    stderr: str = ""
    log: str = ""
    started_at: float = field(default_factory=time.time)
    finished_at: float = field(default_factory=time.time)
    # What pytest reported besides the deciding phase, and counts in its summary: failed
    # subtests ({"kind": "subtest", "label", "outcome", "message", "longrepr"}), passed
    # ones as one {"kind": "subtest", "outcome": "passed", "count"}, and a teardown error
    # after a failed call ({"kind": "teardown", "outcome": "error", ...}).
    reports: list[dict[str, Any]] = field(default_factory=list)
    # Seconds per phase (setup, call, teardown) and the child's CPU seconds (cpu).
    timings: dict[str, float] = field(default_factory=dict)
    categories: list[str] = field(default_factory=list)
    signature: str = ""        # failure pattern (see testing/analytics.py); "" if none

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunRecord:
    """One run of (some of) a plugin's tests in one or more pytest children."""

    plugin_id: str
    id: int | None = None
    selection: list[str] | None = None   # node ids; None means the whole suite
    trigger: str = "manual"              # manual, cli, api, schedule, catch_up, retry
    priority: Priority = Priority.MEDIUM
    status: RunStatus = RunStatus.QUEUED
    queued_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    attempt: int = 1                     # run-level retry number
    parent_run_id: int | None = None
    schedule_id: str | None = None
    error: str | None = None             # why the run is error/cancelled/interrupted
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["priority"] = self.priority.name.lower()
        data["duration"] = self.duration
        return data
