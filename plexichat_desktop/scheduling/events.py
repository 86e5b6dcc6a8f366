"""Bus events of the scheduler; the web push and the GUI bridge read these.

Instants (``fire_at``) are UNIX seconds of the *scheduled* fire time, not of the moment
the event was published (that is the event's own ``timestamp``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from plexichat_desktop.core.events import Event

__all__ = ["ScheduleChanged", "ScheduleFired", "ScheduleMissed", "ScheduleSkipped"]


@dataclass(frozen=True, kw_only=True)
class ScheduleChanged(Event):
    """A schedule was created, updated (by the user, or its last run finished) or deleted.

    ``schedule`` is ``ScheduleRecord.to_dict()``; for ``deleted`` it is the last state.
    """

    topic: ClassVar[str] = "schedules.changed"
    schedule: dict[str, Any]
    change: str  # created, updated, deleted


@dataclass(frozen=True, kw_only=True)
class ScheduleFired(Event):
    """A schedule queued a run: on time, or as the one catch-up run after a pause."""

    topic: ClassVar[str] = "schedules.fired"
    schedule_id: str
    run_id: int
    fire_at: float
    catch_up: bool = False


@dataclass(frozen=True, kw_only=True)
class ScheduleMissed(Event):
    """Fire times passed while the app was closed or the machine slept, and will not run.

    One event per schedule and planning round, not per fire time (a night's sleep of ten
    thousand schedules must not flood the bus): ``fire_at`` is the newest missed time and
    ``count`` how many were recorded in the fire history.
    """

    topic: ClassVar[str] = "schedules.missed"
    schedule_id: str
    fire_at: float
    count: int = 1


@dataclass(frozen=True, kw_only=True)
class ScheduleSkipped(Event):
    """A fire time came but no run was queued; ``reason`` says why (for the user)."""

    topic: ClassVar[str] = "schedules.skipped"
    schedule_id: str
    fire_at: float
    reason: str
