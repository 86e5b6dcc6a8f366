"""Misfire and catch-up planning: pure functions over an injected "now".

When the app was not running (closed, machine asleep, clock changed) some fire times of a
schedule pass unseen. :func:`plan_misfires` decides what to do about them:

* the newest missed fire runs once as a catch-up if it is at most ``grace`` old (default
  :func:`grace_for`: the schedule's own period, capped at 24 h);
* that catch-up run stands for every missed fire of the last ``max(grace, 24 h)``
  (:data:`COALESCE_WINDOW`), so a frequent schedule after a night's sleep gives one run and
  no noise;
* every other missed fire is reported in ``missed`` (the newest :data:`MISSED_CAP`), to be
  recorded, so a daily schedule that was down for three days shows two lost days.

:func:`spread` staggers the catch-ups, :func:`detect_clock_jump` tells the caller to
re-plan, and :func:`age_priority` keeps waiting low-priority runs from starving.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from plexichat_desktop.scheduling.expressions import Schedule

__all__ = [
    "COALESCE_WINDOW",
    "MAX_GRACE",
    "MISSED_CAP",
    "MisfirePlan",
    "age_priority",
    "detect_clock_jump",
    "grace_for",
    "plan_misfires",
    "spread",
]

T = TypeVar("T")

MAX_GRACE = timedelta(hours=24)
COALESCE_WINDOW = timedelta(hours=24)
MISSED_CAP = 100
_TINY = timedelta(microseconds=1)


@dataclass(frozen=True)
class MisfirePlan:
    """What to do about the fire times a schedule missed.

    Attributes:
        catch_up_at: the newest missed fire time, to run once now; None if nothing was
            missed or the newest miss is older than the grace.
        missed: missed fire times not covered by the catch-up, oldest first, at most
            :data:`MISSED_CAP` (the newest ones); record them as missed.
        next_fire: the first fire time strictly after ``now`` (and after ``last_fire``).
        missed_truncated: True if older missed fire times were dropped by the cap.
        latest_due: the newest fire time at or before ``now`` that this plan accounts for
            (caught up or missed); store it as the schedule's new ``last_fire``. None if
            nothing was missed.
    """

    catch_up_at: datetime | None
    missed: list[datetime]
    next_fire: datetime
    missed_truncated: bool = False
    latest_due: datetime | None = None


def grace_for(schedule: Schedule) -> timedelta:
    """The default misfire grace: the schedule's typical period, capped at 24 h.

    A run more than one period late would collide with the next regular one anyway.
    """
    return min(schedule.period_estimate, MAX_GRACE)


def plan_misfires(schedule: Schedule, last_fire: datetime | None, now: datetime,
                  grace: timedelta | None = None) -> MisfirePlan:
    """Plan catch-up and missed records for the fire times in (last_fire, now].

    Args:
        schedule: the parsed schedule.
        last_fire: the scheduled fire time (not the wall time the run started) of the last
            slot that ran or was recorded, aware. None for a schedule that never fired:
            it has missed nothing and waits for its next fire time.
        now: the current instant, aware; injected so the plan is reproducible.
        grace: how old the newest missed fire may be and still run; default
            :func:`grace_for`.

    If ``last_fire`` is after ``now`` (the wall clock went back), nothing is missed and
    ``next_fire`` comes after ``last_fire``, so a slot never runs twice.
    """
    current = _aware(now, "now")
    if grace is None:
        grace = grace_for(schedule)
    elif grace < timedelta(0):
        raise ValueError(f"grace must not be negative, got {grace}")
    last = _aware(last_fire, "last_fire") if last_fire is not None else None
    next_fire = schedule.next_after(current if last is None or last <= current else last)
    if last is None or last >= current:
        return MisfirePlan(catch_up_at=None, missed=[], next_fire=next_fire)
    latest = schedule.previous_at_or_before(current)
    if latest is None or latest <= last:
        return MisfirePlan(catch_up_at=None, missed=[], next_fire=next_fire)

    if current - latest <= grace:
        catch_up: datetime | None = latest
        # Fires inside the coalescing window are covered by the catch-up run.
        newest_recorded = schedule.previous_at_or_before(current - max(grace, COALESCE_WINDOW))
    else:
        catch_up = None
        newest_recorded = latest
    missed, truncated = _walk_back(schedule, newest_recorded, last)
    return MisfirePlan(catch_up_at=catch_up, missed=missed, next_fire=next_fire,
                       missed_truncated=truncated, latest_due=latest)


def _walk_back(schedule: Schedule, newest: datetime | None,
               last: datetime) -> tuple[list[datetime], bool]:
    found: list[datetime] = []
    fire = newest
    while fire is not None and fire > last and len(found) <= MISSED_CAP:
        found.append(fire)
        fire = schedule.previous_at_or_before(fire - _TINY)
    truncated = len(found) > MISSED_CAP
    del found[MISSED_CAP:]
    found.reverse()
    return found, truncated


def spread(catch_ups: list[T], max_delay: float, rng: random.Random) -> list[tuple[T, float]]:
    """Pair each catch-up with a random start delay in [0, max_delay] seconds.

    Ten overdue plugins then do not all start in the same second. The order of
    ``catch_ups`` is kept; pass a seeded ``random.Random`` for reproducible delays.
    """
    if not math.isfinite(max_delay) or max_delay < 0:
        raise ValueError(f"max_delay must be a finite number >= 0, got {max_delay}")
    return [(item, min(max_delay, rng.uniform(0.0, max_delay))) for item in catch_ups]


def detect_clock_jump(wall_before: datetime | float, wall_now: datetime | float,
                      mono_before: float, mono_now: float,
                      tolerance: timedelta | float = timedelta(seconds=60)) -> bool:
    """True if the wall clock moved differently from the monotonic clock by > tolerance.

    That happens when the machine was suspended (the monotonic clock of ``time.monotonic``
    does not count suspend on Linux) or the wall clock was changed; either way the
    schedules should be re-planned with :func:`plan_misfires`. Wall readings are aware
    datetimes or UNIX timestamps, monotonic readings are seconds, ``tolerance`` a
    timedelta or seconds.
    """
    if isinstance(wall_before, datetime) and isinstance(wall_now, datetime):
        wall_delta = (wall_now - wall_before).total_seconds()
    elif isinstance(wall_before, datetime) or isinstance(wall_now, datetime):
        raise TypeError("wall_before and wall_now must both be datetimes or both numbers")
    else:
        wall_delta = float(wall_now) - float(wall_before)
    limit = tolerance.total_seconds() if isinstance(tolerance, timedelta) else float(tolerance)
    return abs(wall_delta - (mono_now - mono_before)) > limit


def age_priority(base_priority: int, waited_seconds: float, step_seconds: float = 600,
                 max_priority: int = 3) -> int:
    """Raise a waiting run's priority one level per ``step_seconds`` waited, up to the max.

    With the defaults a LOW (0) run becomes CRITICAL-level (3) after 30 minutes, so a
    stream of higher-priority runs cannot starve it. Aging never lowers a priority: a base
    already above ``max_priority`` is returned unchanged.
    """
    if step_seconds <= 0:
        raise ValueError(f"step_seconds must be > 0, got {step_seconds}")
    if not waited_seconds > 0:  # also NaN
        return base_priority
    if math.isinf(waited_seconds):
        return max(base_priority, max_priority)
    levels = int(waited_seconds // step_seconds)
    return max(base_priority, min(max_priority, base_priority + levels))


def _aware(instant: datetime, what: str) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {instant.isoformat()}")
    return instant
