"""Bus events of the test manager; the GUI bridge and the web push read these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from plexichat_desktop.core.events import Event


@dataclass(frozen=True, kw_only=True)
class RunQueued(Event):
    topic: ClassVar[str] = "tests.run_queued"
    run: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    topic: ClassVar[str] = "tests.run_started"
    run: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class TestsCollected(Event):
    __test__ = False
    topic: ClassVar[str] = "tests.collected"
    run_id: int
    plugin_id: str
    total: int
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class TestStarted(Event):
    __test__ = False
    topic: ClassVar[str] = "tests.test_started"
    run_id: int
    plugin_id: str
    nodeid: str


@dataclass(frozen=True, kw_only=True)
class TestFinished(Event):
    __test__ = False
    topic: ClassVar[str] = "tests.test_finished"
    run_id: int
    plugin_id: str
    nodeid: str
    outcome: str
    attempt: int
    duration: float
    message: str
    completed: int      # tests of this run finished so far
    total: int          # tests of this run (0 while unknown)


@dataclass(frozen=True, kw_only=True)
class RunFinished(Event):
    topic: ClassVar[str] = "tests.run_finished"
    run: dict[str, Any]
