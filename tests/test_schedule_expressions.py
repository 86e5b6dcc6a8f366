"""Schedule expressions: the alias table, strict validation, fire times and DST rules.

No sleeping and no clock reads: every instant is passed in explicitly.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from plexichat_desktop.scheduling.expressions import (
    ACCEPTED_FORMS,
    EPOCH,
    InvalidScheduleError,
    Schedule,
    local_zone,
    parse,
)

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(schedule: Schedule, instant: datetime) -> datetime:
    return instant.astimezone(schedule.tz)


def fires_on_local_day(schedule: Schedule, day: date) -> list[datetime]:
    """Fire times whose local date (in the schedule's zone) is ``day``."""
    start = datetime.combine(day, time(0), schedule.tz).astimezone(UTC) - 3 * HOUR
    fires = schedule.fires_between(start, start + 30 * HOUR, 10_000)
    return [f for f in fires if local(schedule, f).date() == day]


# -- the alias table ---------------------------------------------------------------------


@pytest.mark.parametrize(("expression", "at", "cron", "wall_clock", "period"), [
    ("hourly", time(0), "0 * * * *", False, HOUR),
    ("@hourly", time(6, 30), "0 * * * *", False, HOUR),      # at is ignored
    ("daily", time(0), "0 0 * * *", True, DAY),
    ("@daily", time(6, 30), "30 6 * * *", True, DAY),
    ("daily", time(6, 30, 15), "30 6 * * * 15", True, DAY),
    ("@midnight", time(6, 30), "0 0 * * *", True, DAY),      # always midnight
    ("weekly", time(0), "0 0 * * 0", True, 7 * DAY),
    ("@weekly", time(23, 5), "5 23 * * 0", True, 7 * DAY),
    ("monthly", time(0), "0 0 1 * *", True, 31 * DAY),
    ("@monthly", time(4), "0 4 1 * *", True, 31 * DAY),
    ("@yearly", time(0), "0 0 1 1 *", True, 365 * DAY),
    ("@annually", time(12), "0 12 1 1 *", True, 365 * DAY),
    ("  Daily ", time(0), "0 0 * * *", True, DAY),           # stripped, any case
    ("@WEEKLY", time(0), "0 0 * * 0", True, 7 * DAY),
])
def test_words_and_aliases_map_as_documented(expression: str, at: time, cron: str,
                                             wall_clock: bool, period: timedelta) -> None:
    schedule = parse(expression, tz="UTC", at=at)
    assert schedule.kind == "cron"
    assert schedule.expression == expression.strip()
    assert schedule.cron == cron
    assert schedule.interval is None
    assert schedule.wall_clock is wall_clock
    assert schedule.period_estimate == period


@pytest.mark.parametrize(("expression", "interval"), [
    ("every_1_minute", MINUTE),
    ("every_1_minutes", MINUTE),
    ("every_45_minutes", 45 * MINUTE),
    ("every_525600_minutes", 525_600 * MINUTE),
    ("every_1_hour", HOUR),
    ("every_7_hours", 7 * HOUR),
    ("every_8760_hours", 8_760 * HOUR),
    ("every_1_day", DAY),
    ("every_3_days", 3 * DAY),
    ("every_365_days", 365 * DAY),
    ("Every_2_Hours", 2 * HOUR),
])
def test_intervals_map_as_documented(expression: str, interval: timedelta) -> None:
    schedule = parse(expression, tz=BERLIN)
    assert schedule.kind == "interval"
    assert schedule.interval == interval
    assert schedule.cron is None
    assert schedule.anchor == EPOCH
    assert schedule.period_estimate == interval
    assert not schedule.wall_clock


@pytest.mark.parametrize(("expression", "cron"), [
    ("  0   9 * * MON-FRI ", "0 9 * * mon-fri"),
    ("*/15 * * * *", "*/15 * * * *"),
    ("0 0 L * *", "0 0 l * *"),
    ("0 0 * * 5#3", "0 0 * * 5#3"),
    ("0 * * * * 30", "0 * * * * 30"),
    ("0 0 * * 6-7", "0 0 * * 6-7"),
    ("0 0 29 2 *", "0 0 29 2 *"),
    ("*/59 * * * *", "*/59 * * * *"),
])
def test_cron_is_normalised(expression: str, cron: str) -> None:
    assert parse(expression, tz="UTC").cron == cron


def test_six_fields_put_the_seconds_last() -> None:
    schedule = parse("0 * * * * 30", tz="UTC")
    assert schedule.upcoming(utc(2026, 5, 1, 10, 0, 45), 2) == [
        utc(2026, 5, 1, 11, 0, 30), utc(2026, 5, 1, 12, 0, 30)]


def test_daily_at_fires_at_that_local_time() -> None:
    schedule = parse("daily", tz=NEW_YORK, at=time(6, 30))
    fires = schedule.upcoming(utc(2026, 3, 5), 7)      # across the March DST change
    assert [local(schedule, f).time() for f in fires] == [time(6, 30)] * 7
    assert {f - g for f, g in zip(fires[1:], fires, strict=False)} == {DAY, DAY - HOUR}


def test_weekly_and_monthly_fire_on_sunday_and_the_first() -> None:
    weekly = parse("weekly", tz=BERLIN, at=time(8))
    assert all(local(weekly, f).strftime("%a %H:%M") == "Sun 08:00"
               for f in weekly.upcoming(utc(2026, 1, 1), 10))
    monthly = parse("monthly", tz=BERLIN)
    assert [local(monthly, f).date() for f in monthly.upcoming(utc(2026, 1, 15), 3)] == [
        date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1)]


def test_upcoming_returns_increasing_instants_in_utc() -> None:
    schedule = parse("*/20 9-17 * * mon-fri", tz=BERLIN)
    fires = schedule.upcoming(utc(2026, 6, 5, 15, 30), 5)    # a Friday afternoon
    assert len(fires) == 5
    assert all(f.tzinfo is UTC for f in fires)
    assert all(a < b for a, b in pairwise(fires))
    assert fires[0] == utc(2026, 6, 5, 15, 40)
    assert local(schedule, fires[1]) == datetime(2026, 6, 8, 9, 0, tzinfo=schedule.tz)
    assert schedule.upcoming(utc(2026, 6, 5), 0) == []


def test_fires_between_is_start_exclusive_end_inclusive_and_limited() -> None:
    schedule = parse("every_1_hour")
    start, end = utc(2026, 1, 1, 0), utc(2026, 1, 1, 5)
    assert schedule.fires_between(start, end, 100) == [utc(2026, 1, 1, h) for h in range(1, 6)]
    assert schedule.fires_between(start, end, 2) == [utc(2026, 1, 1, 1), utc(2026, 1, 1, 2)]
    assert schedule.fires_between(end, start, 10) == []


def test_instants_must_be_aware_and_come_back_in_utc() -> None:
    schedule = parse("hourly", tz=BERLIN)
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule.next_after(datetime(2026, 1, 1))
    berlin_noon = datetime(2026, 1, 1, 12, 10, tzinfo=ZoneInfo(BERLIN))
    assert schedule.next_after(berlin_noon) == utc(2026, 1, 1, 12)
    assert schedule.previous_at_or_before(berlin_noon) == utc(2026, 1, 1, 11)


def test_schedule_is_frozen_and_comparable() -> None:
    schedule = parse("daily", tz=BERLIN)
    with pytest.raises(AttributeError):
        schedule.cron = "* * * * *"  # type: ignore[misc]
    assert schedule == parse("daily", tz=BERLIN)
    assert schedule != parse("daily", tz=NEW_YORK)


# -- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("expression", [
    "", "   ", "garbage", "yearly", "@reboot", "every day",
    "every_0_minutes", "every_x_hours", "every_-1_days", "every_05_minutes", "every_5_minute",
    "every_2_weeks", "every_525601_minutes", "every_8761_hours", "every_366_days",
    "every_\u0663_minutes",
    "* * * *", "0 0 * * * 0 2030", "0 0 1 1 * 0 2030 x",
    "*/0 * * * *", "0-59/0 * * * *",
    "60 * * * *", "0 24 * * *", "0 0 0 * *", "0 0 32 * *", "0 0 * 13 *", "0 0 * * 8",
    "0 0 * * * 60", "0 0 * * * *", "0 0 * * * */1",
    "5-5 * * * *", "0 0 * jan-jan *", "10/5 * * * *", "59/15 * * * *",
    "50-10 * * * *", "0 0 * * sat-sun", "0 0 * nov-feb *",
    "*/60 * * * *", "0 */24 * * *", "10-20/15 * * * *",
    "0 0 31 2 *", "0 0 30 2 *",
    "R * * * *", "H * * * *", "0 0 ? * *", "0 0 15W * *", "0 0 * * L5", "0 0 * * 1#6",
    "0 0 * * 5#3,1", "a * * * *", "1,,2 * * * *", "0\u00a00 * * *", "\u0661 * * * *",
])
def test_invalid_expressions_are_refused_with_the_accepted_forms(expression: str) -> None:
    with pytest.raises(InvalidScheduleError) as info:
        parse(expression, tz="UTC")
    assert ACCEPTED_FORMS in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(("expression", "fragment"), [
    ("0 0 31 2 *", "can never occur"),
])
def test_croniter_reason_is_included(expression: str, fragment: str) -> None:
    with pytest.raises(InvalidScheduleError, match="croniter refuses it") as info:
        parse(expression, tz="UTC")
    assert fragment in info.value.reason


@pytest.mark.parametrize(("expression", "reason"), [
    ("61 * * * *", "'61' in the minute field is out of its range 0-59"),
    ("* 24 * * *", "'24' in the hour field is out of its range 0-23"),
    ("0 0 1-40 * *", "'40' in the day-of-month field is out of its range 1-31"),
    ("0 0 * 13 *", "'13' in the month field is out of its range 1-12"),
    ("0 0 * * 8", "'8' in the day-of-week field is out of its range 0-7"),
    ("0 30 9 * * *", "'30' in the hour field is out of its range 0-23"),
    ("0 9 * * 1-5 60", "'60' in the second field is out of its range 0-59"),
    ("0 0 * foo *", "'foo' in the month field is not a month name (jan-dec)"),
    ("0 0 * * fun", "'fun' in the day-of-week field is not a day name (sun-sat)"),
    ("0 abc * * *", "'abc' in the hour field: names are for months and days only"),
    ("*/0 * * * *", "step 0 in '*/0' (minute field): a step is 1 or more"),
])
def test_a_bad_value_is_named_with_its_field(expression: str, reason: str) -> None:
    """Audit: croniter said "[60 * * * *] is not acceptable, out of range" (no field, no
    value; names not even that), while this module promised "(hour 30)"."""
    with pytest.raises(InvalidScheduleError) as info:
        parse(expression, tz="UTC")
    assert info.value.reason == reason


@pytest.mark.parametrize(("expression", "hint"), [
    ("5-5 * * * *", "whole cycle"),
    ("10/5 * * * *", "10-59/5"),
    ("50-10 * * * *", "50-59,0-10"),
    ("*/45 */24 * * *", "wider than the field"),
    ("0 0 * * * *", "seconds field"),
    ("0 0 ? * *", "Quartz"),
])
def test_ambiguous_croniter_forms_are_explained(expression: str, hint: str) -> None:
    with pytest.raises(InvalidScheduleError, match="invalid schedule") as info:
        parse(expression, tz="UTC")
    assert hint in info.value.reason


def test_unknown_zone_is_named() -> None:
    with pytest.raises(InvalidScheduleError, match="Mars/Olympus") as info:
        parse("daily", tz="Mars/Olympus")
    # The expression's forms do not help with a zone (audit: 400 characters of them).
    assert ACCEPTED_FORMS not in str(info.value)
    with pytest.raises(InvalidScheduleError) as info:
        parse("daily", tz="X" * 5000)
    assert len(str(info.value)) < 200
    for bad in ("", "Europe", "../etc/passwd", "/usr/share/zoneinfo/UTC"):
        with pytest.raises(InvalidScheduleError):
            parse("daily", tz=bad)


def test_bad_options_are_refused() -> None:
    with pytest.raises(InvalidScheduleError, match="tzinfo"):
        parse("daily", tz="UTC", at=time(6, tzinfo=UTC))
    with pytest.raises(InvalidScheduleError, match="whole seconds"):
        parse("daily", tz="UTC", at=time(6, 0, 0, 500))
    with pytest.raises(InvalidScheduleError, match="timezone-aware"):
        parse("every_5_minutes", anchor=datetime(2026, 1, 1))
    with pytest.raises(InvalidScheduleError, match="string"):
        parse(None)  # type: ignore[arg-type]


# -- intervals -----------------------------------------------------------------------------


def test_every_45_minutes_has_exact_gaps_across_the_hour() -> None:
    anchor = utc(2026, 5, 1, 10, 7, 13)
    schedule = parse("every_45_minutes", anchor=anchor)
    fires = schedule.upcoming(utc(2026, 5, 1, 10, 30), 6)
    assert fires[0] == utc(2026, 5, 1, 10, 52, 13)
    assert {b - a for a, b in pairwise(fires)} == {45 * MINUTE}
    assert len({f.hour for f in fires}) > 1                    # crossed hour boundaries
    assert {f.minute for f in fires} == {52, 37, 22, 7}         # not the cron 0/45 pattern


def test_interval_grid_survives_a_restart() -> None:
    anchor = utc(2026, 5, 1, 10, 7, 13)
    now = utc(2026, 7, 3, 4, 5, 6)
    before = parse("every_45_minutes", anchor=anchor).next_after(now)
    after = parse("every_45_minutes", anchor=anchor).next_after(now)  # "restart"
    assert before == after
    assert (before - anchor) % (45 * MINUTE) == timedelta(0)
    # the default anchor is the epoch, also stable
    default = parse("every_45_minutes").next_after(now)
    assert (default - EPOCH) % (45 * MINUTE) == timedelta(0)
    assert default == parse("every_45_minutes").next_after(now)


def test_anchor_in_another_zone_is_converted_to_utc() -> None:
    anchor = datetime(2026, 5, 1, 12, 0, tzinfo=ZoneInfo(BERLIN))
    schedule = parse("every_7_hours", anchor=anchor)
    assert schedule.anchor == utc(2026, 5, 1, 10)
    assert schedule.anchor is not None and schedule.anchor.tzinfo is UTC


def test_every_7_hours_gaps_are_exact() -> None:
    schedule = parse("every_7_hours", tz=BERLIN, anchor=utc(2026, 3, 28, 22))
    fires = schedule.upcoming(utc(2026, 3, 28, 22), 12)        # across Berlin's spring DST
    assert {b - a for a, b in pairwise(fires)} == {7 * HOUR}
    assert fires[0] == utc(2026, 3, 29, 5)


def test_interval_previous_and_exact_grid_points() -> None:
    schedule = parse("every_7_hours", anchor=utc(2026, 1, 1))
    assert schedule.next_after(utc(2026, 1, 1, 7)) == utc(2026, 1, 1, 14)
    assert schedule.previous_at_or_before(utc(2026, 1, 1, 7)) == utc(2026, 1, 1, 7)
    assert schedule.previous_at_or_before(utc(2026, 1, 1, 6, 59)) == utc(2026, 1, 1)
    # the anchor fixes the phase only: the grid extends before it
    assert schedule.previous_at_or_before(utc(2025, 12, 31, 20)) == utc(2025, 12, 31, 17)


def test_every_1_day_keeps_24_hours_across_dst() -> None:
    schedule = parse("every_1_day", tz=BERLIN, anchor=utc(2026, 3, 27, 5))
    fires = schedule.upcoming(utc(2026, 3, 27, 6), 3)
    assert {b - a for a, b in pairwise(fires)} == {DAY}
    assert [local(schedule, f).hour for f in fires] == [6, 7, 7]   # local time moves


# -- DST -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("zone", "day", "at", "expected"), [
    # spring forward: 02:30 does not exist; it runs once at the first instant after the gap
    (BERLIN, date(2026, 3, 29), time(2, 30), [utc(2026, 3, 29, 1, 0)]),      # 03:00 CEST
    (NEW_YORK, date(2026, 3, 8), time(2, 30), [utc(2026, 3, 8, 7, 0)]),      # 03:00 EDT
    # fall back: a repeated time runs once, at its first occurrence
    (BERLIN, date(2026, 10, 25), time(2, 30), [utc(2026, 10, 25, 0, 30)]),   # 02:30 CEST
    (NEW_YORK, date(2026, 11, 1), time(1, 30), [utc(2026, 11, 1, 5, 30)]),   # 01:30 EDT
    (NEW_YORK, date(2026, 11, 1), time(2, 30), [utc(2026, 11, 1, 7, 30)]),   # not repeated
    # Santiago springs forward at midnight: 00:00 does not exist on 2026-09-06
    ("America/Santiago", date(2026, 9, 6), time(0), [utc(2026, 9, 6, 4)]),   # 01:00 -03
    # Lord Howe moves by 30 minutes: 02:15 does not exist on 2026-10-04
    ("Australia/Lord_Howe", date(2026, 10, 4), time(2, 15), [utc(2026, 10, 3, 15, 30)]),
])
def test_daily_runs_once_on_dst_days(zone: str, day: date, at: time,
                                     expected: list[datetime]) -> None:
    schedule = parse("daily", tz=zone, at=at)
    assert fires_on_local_day(schedule, day) == expected
    for neighbour in (day - DAY, day + DAY):   # and normally around it
        (fire,) = fires_on_local_day(schedule, neighbour)
        assert local(schedule, fire).time() == at


def test_spring_forward_first_valid_instant_is_the_transition() -> None:
    schedule = parse("daily", tz=BERLIN, at=time(2, 30))
    fire = schedule.next_after(utc(2026, 3, 28, 12))
    assert fire == utc(2026, 3, 29, 1)
    assert local(schedule, fire).isoformat() == "2026-03-29T03:00:00+02:00"
    assert schedule.previous_at_or_before(fire) == fire
    assert schedule.previous_at_or_before(fire - timedelta(microseconds=1)) == utc(
        2026, 3, 28, 1, 30)


def test_slots_inside_and_at_the_end_of_a_gap_collapse() -> None:
    schedule = parse("0,30 2,3 * * *", tz=BERLIN)
    assert [local(schedule, f).strftime("%H:%M") for f in
            fires_on_local_day(schedule, date(2026, 3, 29))] == ["03:00", "03:30"]
    every_minute = parse("* 2 * * *", tz=BERLIN)
    assert fires_on_local_day(every_minute, date(2026, 3, 29)) == [utc(2026, 3, 29, 1)]
    assert len(fires_on_local_day(every_minute, date(2026, 10, 25))) == 60   # first pass only


def test_fall_back_repeat_is_skipped_from_inside_the_second_pass() -> None:
    schedule = parse("daily", tz=BERLIN, at=time(2, 30))
    second_pass = utc(2026, 10, 25, 1, 10)                      # 02:10 CET
    assert local(schedule, second_pass).fold == 1
    assert schedule.next_after(second_pass) == utc(2026, 10, 26, 1, 30)
    assert schedule.previous_at_or_before(second_pass) == utc(2026, 10, 25, 0, 30)
    assert schedule.next_after(utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 26, 1, 30)


@pytest.mark.parametrize(("zone", "at", "instant", "expected"), [
    # 01:38 EST is in the second pass of New York's repeated hour; 02:30 EST still comes
    (NEW_YORK, time(2, 30), utc(2026, 11, 1, 6, 38), utc(2026, 11, 1, 7, 30)),
    # the very instant Santiago falls back to 23:00; the following midnight still comes
    ("America/Santiago", time(0), utc(2026, 4, 5, 3), utc(2026, 4, 5, 4)),
])
def test_slot_right_after_a_repeat_is_not_skipped(zone: str, at: time, instant: datetime,
                                                  expected: datetime) -> None:
    schedule = parse("daily", tz=zone, at=at)
    assert local(schedule, instant).fold == 1 or zone == "America/Santiago"
    assert schedule.next_after(instant) == expected
    assert schedule.previous_at_or_before(expected - timedelta(microseconds=1)) < instant


def _wall_clock_reference(cron: str, zone: ZoneInfo, start: datetime,
                          end: datetime) -> list[datetime]:
    """The documented rule, spelled out slowly: each wall-clock slot of '<m> <h> * * *' runs
    once, at its first occurrence, or at the end of the gap it falls into."""
    (mins, hours, *_rest), _nth = croniter.expand(cron)
    fires = set()
    day = start.astimezone(zone).date() - DAY
    while day <= end.astimezone(zone).date() + DAY:
        for hour in range(24) if hours == ["*"] else hours:
            for minute in range(60) if mins == ["*"] else mins:
                wall = datetime.combine(day, time(hour, minute))
                first = wall.replace(tzinfo=zone).astimezone(UTC)
                if first.astimezone(zone).replace(tzinfo=None) != wall:     # in a gap
                    first = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
                    offset = first.astimezone(zone).utcoffset()
                    while first.astimezone(zone).utcoffset() == offset:
                        first += MINUTE
                fires.add(first)
        day += DAY
    return sorted(f for f in fires if start < f <= end)


@pytest.mark.parametrize("zone", [BERLIN, NEW_YORK, "America/Santiago",
                                  "Australia/Lord_Howe", "Pacific/Chatham"])
@pytest.mark.parametrize("cron", ["0 0 * * *", "*/15 2 * * *", "30 1-3 * * *", "45 2,3 * * *"])
def test_wall_clock_crons_match_the_documented_rule(zone: str, cron: str) -> None:
    schedule = parse(cron, tz=zone)
    for transition in _transitions(schedule.tz, 2026):
        start, end = transition - 30 * HOUR, transition + 30 * HOUR
        assert schedule.fires_between(start, end, 1000) == _wall_clock_reference(
            cron, schedule.tz, start, end), (cron, zone, transition)


@pytest.mark.parametrize(("zone", "day", "count"), [
    (BERLIN, date(2026, 10, 25), 25),
    (BERLIN, date(2026, 3, 29), 23),
    (NEW_YORK, date(2026, 11, 1), 25),
    (NEW_YORK, date(2026, 3, 8), 23),
    (BERLIN, date(2026, 7, 1), 24),
])
def test_hourly_follows_absolute_time(zone: str, day: date, count: int) -> None:
    schedule = parse("hourly", tz=zone)
    fires = fires_on_local_day(schedule, day)
    assert len(fires) == count
    assert {b - a for a, b in pairwise(fires)} == {HOUR}


def test_hourly_repeats_the_wall_clock_hour_on_fall_back() -> None:
    schedule = parse("@hourly", tz=BERLIN)
    fires = schedule.fires_between(utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 2, 30), 10)
    assert [local(schedule, f).strftime("%H:%M%z") for f in fires] == [
        "02:00+0200", "02:00+0100", "03:00+0100"]


def _brute_force(cron: str, zone: ZoneInfo, start: datetime, minutes: int) -> list[datetime]:
    """Every whole-minute instant whose local reading matches a '<minutes> <hours> * * *'."""
    (mins, hours, *_rest), _nth = croniter.expand(cron)
    found = []
    for step in range(1, minutes + 1):
        instant = start + step * MINUTE
        reading = instant.astimezone(zone)
        if (mins == ["*"] or reading.minute in mins) and (hours == ["*"] or reading.hour in hours):
            found.append(instant)
    return found


@pytest.mark.parametrize("zone", [BERLIN, NEW_YORK, "Australia/Lord_Howe", "Pacific/Chatham"])
@pytest.mark.parametrize("cron", ["*/20 * * * *", "45 * * * *", "0,15 * * * *"])
def test_absolute_crons_match_every_instant_whose_reading_matches(zone: str, cron: str) -> None:
    schedule = parse(cron, tz=zone)
    for transition in _transitions(schedule.tz, 2026):
        start = transition - 5 * HOUR
        expected = _brute_force(cron, schedule.tz, start, 10 * 60)
        assert schedule.fires_between(start, start + 10 * HOUR, 1000) == expected


# -- properties over a year, several zones --------------------------------------------------

ZONES = ["UTC", BERLIN, NEW_YORK, "America/Santiago", "Australia/Lord_Howe",
         "Pacific/Chatham", "Asia/Kolkata"]
EXPRESSIONS = [("daily", time(2, 30)), ("daily", time(0)), ("hourly", time(0)),
               ("*/20 * * * *", time(0)), ("30 1-3 * * *", time(0)),
               ("0 */2 * * 1-5", time(0)), ("every_45_minutes", time(0)),
               ("15 * * * * 30", time(0))]


def _transitions(zone: ZoneInfo, year: int) -> Iterator[datetime]:
    instant = datetime(year, 1, 1, tzinfo=UTC)
    offset = instant.astimezone(zone).utcoffset()
    while instant.year == year:
        instant += HOUR
        if instant.astimezone(zone).utcoffset() != offset:
            offset = instant.astimezone(zone).utcoffset()
            yield instant


def _sample_instants(zone: ZoneInfo, rng: random.Random) -> list[datetime]:
    year = utc(2026, 1, 1)
    instants = [year + timedelta(seconds=rng.randrange(365 * 86400)) for _ in range(25)]
    for transition in _transitions(zone, 2026):
        instants += [transition + timedelta(seconds=rng.randrange(-4 * 3600, 4 * 3600))
                     for _ in range(12)]
        instants += [transition, transition - timedelta(seconds=1)]
    return sorted(instants)


@pytest.mark.parametrize("zone", ZONES)
def test_next_after_is_strictly_later_monotonic_and_consistent(zone: str) -> None:
    rng = random.Random(f"schedule-{zone}")
    for expression, at in EXPRESSIONS:
        schedule = parse(expression, tz=zone, at=at)
        instants = _sample_instants(schedule.tz, rng)
        nexts = [schedule.next_after(t) for t in instants]
        for t, following in zip(instants, nexts, strict=True):
            assert following > t, (expression, zone, t)
            previous = schedule.previous_at_or_before(t)
            assert previous is not None and previous <= t, (expression, zone, t)
            assert schedule.next_after(previous) == following, (expression, zone, t)
            assert schedule.previous_at_or_before(following) == following
        assert nexts == sorted(nexts), (expression, zone)


@pytest.mark.parametrize("zone", [BERLIN, NEW_YORK, "America/Santiago", "Australia/Lord_Howe"])
def test_walking_forwards_and_backwards_agree_across_transitions(zone: str) -> None:
    for expression, at in EXPRESSIONS:
        schedule = parse(expression, tz=zone, at=at)
        for transition in _transitions(schedule.tz, 2026):
            start, end = transition - 30 * HOUR, transition + 30 * HOUR
            forwards = schedule.fires_between(start, end, 10_000)
            backwards = []
            fire = schedule.previous_at_or_before(end)
            while fire is not None and fire > start:
                backwards.append(fire)
                fire = schedule.previous_at_or_before(fire - timedelta(microseconds=1))
            assert forwards == backwards[::-1], (expression, zone, transition)


# -- the local zone --------------------------------------------------------------------------


@pytest.fixture
def fresh_local_zone() -> Iterator[None]:
    local_zone.cache_clear()
    yield
    local_zone.cache_clear()


def test_default_zone_is_the_machines_iana_zone(fresh_local_zone: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", ":America/New_York")
    assert parse("daily").tz == ZoneInfo(NEW_YORK)
    local_zone.cache_clear()
    monkeypatch.setenv("TZ", "Not/AZone")
    zone = parse("daily").tz
    assert isinstance(zone, ZoneInfo)
    assert zone.utcoffset(datetime(2026, 1, 1)) is not None


@pytest.mark.parametrize("name", ["Factory", "posixrules", "right/UTC", "posix/Europe/Berlin"])
def test_tzdata_files_that_are_not_zones_are_refused(name):
    with pytest.raises(InvalidScheduleError, match="unknown time zone"):
        parse("daily", tz=name)
