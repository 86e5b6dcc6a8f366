"""Misfire planning, catch-up spreading, clock-jump detection and priority aging.

Pure functions over injected instants: no sleeping, no clock reads.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise

import pytest

from plexichat_desktop.scheduling.expressions import parse
from plexichat_desktop.scheduling.planner import (
    COALESCE_WINDOW,
    MISSED_CAP,
    MisfirePlan,
    age_priority,
    detect_clock_jump,
    grace_for,
    plan_misfires,
    spread,
)

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# -- grace ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("expression", "grace"), [
    ("every_30_minutes", 30 * MINUTE),
    ("hourly", HOUR),
    ("every_7_hours", 7 * HOUR),
    ("daily", DAY),
    ("weekly", DAY),           # capped
    ("every_3_days", DAY),     # capped
    ("*/5 * * * *", 5 * MINUTE),
    ("0 9 * * 1-5", DAY),
])
def test_grace_is_the_period_capped_at_a_day(expression: str, grace: timedelta) -> None:
    assert grace_for(parse(expression, tz="UTC")) == grace


# -- plan_misfires ---------------------------------------------------------------------------


def test_three_hour_sleep_gives_one_catch_up_and_no_missed_rows() -> None:
    schedule = parse("every_30_minutes")
    plan = plan_misfires(schedule, last_fire=utc(2026, 5, 1, 10), now=utc(2026, 5, 1, 13, 10))
    assert plan == MisfirePlan(catch_up_at=utc(2026, 5, 1, 13), missed=[],
                               next_fire=utc(2026, 5, 1, 13, 30),
                               latest_due=utc(2026, 5, 1, 13))


def test_daily_missed_for_two_days_catches_up_the_latest_and_records_the_older() -> None:
    schedule = parse("daily", tz="UTC", at=time(6))
    plan = plan_misfires(schedule, last_fire=utc(2026, 5, 1, 6), now=utc(2026, 5, 3, 9))
    assert plan.catch_up_at == utc(2026, 5, 3, 6)
    assert plan.missed == [utc(2026, 5, 2, 6)]
    assert plan.next_fire == utc(2026, 5, 4, 6)
    assert not plan.missed_truncated
    assert plan.latest_due == utc(2026, 5, 3, 6)


def test_miss_beyond_grace_is_recorded_without_catch_up() -> None:
    weekly = parse("weekly", tz="UTC")                 # Sundays 00:00, grace capped at 24 h
    plan = plan_misfires(weekly, last_fire=utc(2026, 5, 3), now=utc(2026, 5, 13, 12))
    assert plan.catch_up_at is None
    assert plan.missed == [utc(2026, 5, 10)]
    assert plan.next_fire == utc(2026, 5, 17)
    assert plan.latest_due == utc(2026, 5, 10)


def test_explicit_grace_overrides_the_default() -> None:
    schedule = parse("every_30_minutes")
    last, now = utc(2026, 5, 1, 10), utc(2026, 5, 1, 10, 50)
    strict = plan_misfires(schedule, last, now, grace=10 * MINUTE)
    assert strict.catch_up_at is None
    assert strict.missed == [utc(2026, 5, 1, 10, 30)]
    generous = plan_misfires(parse("weekly", tz="UTC"), utc(2026, 5, 3), utc(2026, 5, 13, 12),
                             grace=5 * DAY)
    assert generous.catch_up_at == utc(2026, 5, 10)
    assert generous.missed == []
    exact = plan_misfires(schedule, last, utc(2026, 5, 1, 10, 30), grace=timedelta(0))
    assert exact.catch_up_at == utc(2026, 5, 1, 10, 30)


def test_nothing_missed() -> None:
    schedule = parse("every_30_minutes")
    on_time = plan_misfires(schedule, utc(2026, 5, 1, 10), utc(2026, 5, 1, 10, 20))
    assert on_time == MisfirePlan(catch_up_at=None, missed=[], next_fire=utc(2026, 5, 1, 10, 30))
    never_ran = plan_misfires(schedule, None, utc(2026, 5, 1, 13, 10))
    assert never_ran == MisfirePlan(catch_up_at=None, missed=[],
                                    next_fire=utc(2026, 5, 1, 13, 30))


def test_clock_set_back_never_repeats_a_slot() -> None:
    schedule = parse("every_30_minutes")
    plan = plan_misfires(schedule, last_fire=utc(2026, 5, 1, 13), now=utc(2026, 5, 1, 11, 50))
    assert plan.catch_up_at is None
    assert plan.missed == []
    assert plan.next_fire == utc(2026, 5, 1, 13, 30)


def test_coalescing_window_boundary() -> None:
    schedule = parse("every_1_hour")
    now = utc(2026, 5, 3, 12)
    plan = plan_misfires(schedule, last_fire=now - 26 * HOUR, now=now)
    assert plan.catch_up_at == now
    # 25 h and exactly 24 h old: recorded; anything newer is covered by the catch-up
    assert plan.missed == [now - 25 * HOUR, now - COALESCE_WINDOW]


def test_missed_rows_are_capped_to_the_newest() -> None:
    schedule = parse("every_1_minute")
    now = utc(2026, 5, 4, 12, 0, 30)
    plan = plan_misfires(schedule, last_fire=now - 3 * DAY, now=now)
    assert plan.catch_up_at == utc(2026, 5, 4, 12)
    assert plan.missed_truncated
    assert len(plan.missed) == MISSED_CAP
    assert plan.missed[-1] == utc(2026, 5, 3, 12, 0)          # newest not coalesced
    assert {b - a for a, b in pairwise(plan.missed)} == {MINUTE}


def test_fall_back_does_not_plan_the_repeated_time_twice() -> None:
    schedule = parse("daily", tz="Europe/Berlin", at=time(2, 30))
    plan = plan_misfires(schedule, last_fire=utc(2026, 10, 24, 0, 30),
                         now=utc(2026, 10, 25, 3))
    assert plan.catch_up_at == utc(2026, 10, 25, 0, 30)
    assert plan.missed == []
    assert plan.next_fire == utc(2026, 10, 26, 1, 30)


def test_cron_schedule_after_a_weekend() -> None:
    schedule = parse("0 9 * * 1-5", tz="America/New_York")
    # Friday 09:00 EDT ran; the machine was off until Tuesday 08:00 EDT
    plan = plan_misfires(schedule, last_fire=utc(2026, 6, 5, 13), now=utc(2026, 6, 9, 12))
    assert plan.catch_up_at == utc(2026, 6, 8, 13)   # Monday 09:00, 23 h old, grace 1 day
    assert plan.missed == []
    assert plan.next_fire == utc(2026, 6, 9, 13)
    # one hour later Monday's run is out of grace and is recorded instead
    late = plan_misfires(schedule, last_fire=utc(2026, 6, 5, 13), now=utc(2026, 6, 9, 13, 30))
    assert late.catch_up_at == utc(2026, 6, 9, 13)
    assert late.missed == [utc(2026, 6, 8, 13)]


def test_planner_rejects_bad_input() -> None:
    schedule = parse("hourly", tz="UTC")
    with pytest.raises(ValueError, match="negative"):
        plan_misfires(schedule, None, utc(2026, 1, 1), grace=-MINUTE)
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_misfires(schedule, None, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_misfires(schedule, datetime(2026, 1, 1), utc(2026, 1, 1))


# -- spread ----------------------------------------------------------------------------------


def test_spread_is_bounded_ordered_and_deterministic() -> None:
    plugins = [f"plugin-{i}" for i in range(10)]
    first = spread(plugins, 30.0, random.Random(42))
    assert [item for item, _ in first] == plugins
    assert all(0.0 <= delay <= 30.0 for _, delay in first)
    assert len({delay for _, delay in first}) == 10            # not all in the same second
    assert spread(plugins, 30.0, random.Random(42)) == first
    assert spread(plugins, 30.0, random.Random(7)) != first


def test_spread_edge_cases() -> None:
    assert spread([], 10.0, random.Random(1)) == []
    assert spread(["a", "b"], 0.0, random.Random(1)) == [("a", 0.0), ("b", 0.0)]
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="max_delay"):
            spread(["a"], bad, random.Random(1))


# -- clock jumps -----------------------------------------------------------------------------


@pytest.mark.parametrize(("wall", "mono", "jumped"), [
    (100.0, 100.0, False),         # both clocks ran together
    (130.0, 100.0, False),         # drift inside the 60 s tolerance
    (3600.0, 5.0, True),           # suspended for an hour
    (-600.0, 10.0, True),          # wall clock set back
    (160.5, 100.0, True),          # just over the tolerance
])
def test_clock_jump_detection(wall: float, mono: float, jumped: bool) -> None:
    assert detect_clock_jump(1_000.0, 1_000.0 + wall, 50.0, 50.0 + mono) is jumped


def test_clock_jump_with_datetimes_and_custom_tolerance() -> None:
    before = utc(2026, 5, 1, 10)
    assert detect_clock_jump(before, before + 10 * MINUTE, 0.0, 60.0)
    assert not detect_clock_jump(before, before + 10 * MINUTE, 0.0, 60.0,
                                 tolerance=timedelta(minutes=10))
    assert not detect_clock_jump(before, before + 10 * MINUTE, 0.0, 60.0, tolerance=540.0)
    with pytest.raises(TypeError):
        detect_clock_jump(before, 1_000.0, 0.0, 1.0)


# -- aging -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("base", "waited", "expected"), [
    (0, 0, 0),
    (0, 599, 0),
    (0, 600, 1),
    (0, 1_799, 2),
    (0, 1_800, 3),
    (0, 10 * 3600, 3),           # capped
    (2, 600, 3),
    (3, 6_000, 3),
    (1, -50, 1),                 # negative wait: no aging
    (5, 600, 5),                 # aging never lowers a priority above the cap
    (0, float("inf"), 3),
])
def test_age_priority(base: int, waited: float, expected: int) -> None:
    assert age_priority(base, waited) == expected


def test_age_priority_options() -> None:
    assert age_priority(0, 120, step_seconds=60) == 2
    assert age_priority(0, 10_000, max_priority=2) == 2
    with pytest.raises(ValueError, match="step_seconds"):
        age_priority(0, 10, step_seconds=0)
