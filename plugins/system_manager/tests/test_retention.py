"""GFS retention as properties over synthetic backup dates, zones and DST edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from system_manager.retention import Item, Policy, deletions, plan

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Pacific/Auckland", "Asia/Kolkata",
         "Australia/Lord_Howe"]
START = datetime(2024, 1, 1, tzinfo=UTC)

instants = st.lists(st.integers(min_value=0, max_value=3 * 365 * 24 * 60), min_size=0,
                    max_size=60).map(lambda minutes: [
                        Item(f"b{i:03d}", START + timedelta(minutes=m))
                        for i, m in enumerate(minutes)])
policies = st.builds(Policy, last=st.integers(0, 5), daily=st.integers(0, 10),
                     weekly=st.integers(0, 6), monthly=st.integers(0, 6),
                     yearly=st.integers(0, 3))


def _local_days(items: list[Item], zone: str) -> set[str]:
    return {i.created.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d") for i in items}


@settings(max_examples=150, deadline=None)
@given(items=instants, policy=policies, zone=st.sampled_from(ZONES))
def test_the_newest_backup_is_never_deleted(items: list[Item], policy: Policy,
                                            zone: str) -> None:
    decisions = plan(items, policy, zone)
    assert len(decisions) == len(items)
    if items:
        newest = max(items, key=lambda i: (i.created, i.id))
        assert decisions[0].item == newest
        assert decisions[0].keep
        assert newest not in deletions(decisions)


@settings(max_examples=150, deadline=None)
@given(items=instants, days=st.integers(0, 12), zone=st.sampled_from(ZONES))
def test_daily_keeps_exactly_the_newest_of_each_of_the_last_n_local_days(
        items: list[Item], days: int, zone: str) -> None:
    decisions = plan(items, Policy(last=0, daily=days, weekly=0, monthly=0), zone)
    kept = [d.item for d in decisions if d.keep]
    distinct = sorted(_local_days(items, zone), reverse=True)
    wanted_days = distinct[:days]
    expected = set()
    for day in wanted_days:
        of_day = [i for i in items
                  if i.created.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d") == day]
        expected.add(max(of_day, key=lambda i: (i.created, i.id)))
    if items and not expected:  # daily=0: only the always-kept newest
        expected.add(max(items, key=lambda i: (i.created, i.id)))
    assert set(kept) == expected
    assert len(kept) == (min(days, len(distinct)) if days else min(1, len(items)))


@settings(max_examples=100, deadline=None)
@given(items=instants, policy=policies, zone=st.sampled_from(ZONES))
def test_per_rule_counts_are_exact_and_the_order_of_input_does_not_matter(
        items: list[Item], policy: Policy, zone: str) -> None:
    decisions = plan(items, policy, zone)
    for rule in ("daily", "weekly", "monthly", "yearly"):
        tagged = [d for d in decisions if any(r.startswith(rule + " ") for r in d.reasons)]
        buckets = {r.split(" ", 1)[1] for d in tagged for r in d.reasons
                   if r.startswith(rule + " ")}
        assert len(tagged) == len(buckets) <= getattr(policy, rule)
    assert sum(1 for d in decisions if any(r.startswith("last ") for r in d.reasons)) == \
        min(policy.last, len(items))
    again = plan(list(reversed(items)), policy, zone)
    assert [d.item.id for d in again if d.keep] == [d.item.id for d in decisions if d.keep]


def test_a_restic_style_example() -> None:
    # Two backups a day for 40 days: last 2, 7 daily, 4 weekly, 2 monthly.
    items = [Item(f"{day:02d}{half}", datetime(2026, 1, 1, 6 + 10 * half, tzinfo=UTC)
                  + timedelta(days=day)) for day in range(40) for half in (0, 1)]
    decisions = plan(items, Policy(last=2, daily=7, weekly=4, monthly=2), "UTC")
    kept = {d.item.id: d.reasons for d in decisions if d.keep}
    assert kept["391"] == ["last 1", "daily 2026-02-09", "weekly 2026-W07",
                           "monthly 2026-02"]
    assert kept["390"] == ["last 2"]
    # days 33..38 each keep their evening backup; the morning ones go
    for day in range(33, 39):
        assert f"{day:02d}1" in kept and f"{day:02d}0" not in kept
    assert kept["311"] == ["weekly 2026-W05"]    # Sun Feb 1 ends ISO week 5
    assert kept["241"] == ["weekly 2026-W04"]    # Sun Jan 25
    assert kept["301"] == ["monthly 2026-01"]    # Jan 31, the last of January
    assert len(kept) == 2 + 6 + 2 + 1  # 390/391, six more days, two more weeks, January
    assert len(deletions(decisions)) == 80 - len(kept)


def test_local_days_follow_the_zone_not_utc() -> None:
    # 23:30 UTC is already the next day in Auckland and still the same day in New York.
    late = Item("late", datetime(2026, 6, 10, 23, 30, tzinfo=UTC))
    early = Item("early", datetime(2026, 6, 10, 1, 0, tzinfo=UTC))
    policy = Policy(last=0, daily=2, weekly=0, monthly=0)
    auckland = plan([late, early], policy, "Pacific/Auckland")
    assert [r for d in auckland for r in d.reasons if r.startswith("daily")] == [
        "daily 2026-06-11", "daily 2026-06-10"]
    new_york = plan([late, early], policy, "America/New_York")
    assert [r for d in new_york for r in d.reasons if r.startswith("daily")] == [
        "daily 2026-06-10", "daily 2026-06-09"]


@pytest.mark.parametrize("first, second", [
    # Autumn: 02:30 CEST and 02:30 CET are two instants of one local day (the fall-back).
    (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),
    # Spring: 01:59 CET and 03:00 CEST are one minute apart and one local day (the gap).
    (datetime(2026, 3, 29, 0, 59, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
])
def test_dst_changes_do_not_split_or_merge_local_days(first: datetime, second: datetime
                                                      ) -> None:
    items = [Item("first", first), Item("second", second),
             Item("day_before", first - timedelta(days=1))]
    decisions = plan(items, Policy(last=0, daily=5, weekly=0, monthly=0), "Europe/Berlin")
    kept = {d.item.id for d in decisions if d.keep}
    assert kept == {"second", "day_before"}
    assert [d.item.id for d in decisions if not d.keep] == ["first"]


def test_a_policy_of_zeros_keeps_only_the_newest() -> None:
    items = [Item(str(i), START + timedelta(hours=i)) for i in range(5)]
    decisions = plan(items, Policy(last=0, daily=0, weekly=0, monthly=0), "UTC")
    assert [d.item.id for d in decisions if d.keep] == ["4"]
    assert decisions[0].reasons == ["newest (always kept)"]
    assert plan([], Policy(), "UTC") == []
