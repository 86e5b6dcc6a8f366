"""The scheduler service: an injected clock, a real SQLite store, a real TestManager and
real pytest children for two tiny plugins written to tmp_path."""

from __future__ import annotations

import asyncio
import json
import math
import random
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path

import pytest
import pytest_asyncio

from plexichat_desktop.core.events import EventBus
from plexichat_desktop.core.settings import Settings
from plexichat_desktop.plugins.manager import PluginManager
from plexichat_desktop.scheduling.events import (
    ScheduleChanged,
    ScheduleFired,
    ScheduleMissed,
    ScheduleSkipped,
)
from plexichat_desktop.scheduling.expressions import (
    ACCEPTED_FORMS,
    DuplicateScheduleError,
    InvalidScheduleError,
)
from plexichat_desktop.scheduling.service import ORPHAN_AFTER, ORPHAN_FIRES, SchedulerService
from plexichat_desktop.scheduling.store import SCHEDULE_COLUMNS, ScheduleStore
from plexichat_desktop.testing import store as store_module
from plexichat_desktop.testing.events import RunFinished
from plexichat_desktop.testing.manager import TestManager, TestSelectionError
from plexichat_desktop.testing.models import Priority
from plexichat_desktop.testing.store import ResultStore
from tests.shared_runner import module_runner  # noqa: F401 (a fixture)

# The module's loop: the worlds' managers run their tests through one runner (one pytest
# fork server for the module, see tests/shared_runner.py).
pytestmark = pytest.mark.asyncio(loop_scope="module")

T0 = datetime(2026, 6, 1, 12, 0, 10, tzinfo=UTC).timestamp()  # a Monday
SCHEDULE_EVENTS = (ScheduleChanged, ScheduleFired, ScheduleMissed, ScheduleSkipped)


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


class FakeClock:
    """Wall clock and monotonic clock that move only when told to."""

    def __init__(self, now: float = T0):
        self.now = now
        self.mono = 1_000.0

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float, suspended: bool = False) -> None:
        """Move on; while suspended the monotonic clock stands still (as on Linux)."""
        self.now += seconds
        if not suspended:
            self.mono += seconds


class Midpoint(random.Random):
    """Catch-up delays of exactly half the spread, so tests know when they start."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


def write_plugin(root: Path, plugin_id: str, test_body: str) -> None:
    folder = root / plugin_id
    (folder / "tests").mkdir(parents=True)
    (folder / "plugin.toml").write_text(
        f'id = "{plugin_id}"\nname = "{plugin_id}"\nversion = "1.0.0"\nentry = "x_pkg:P"\n')
    (folder / "tests" / "test_x.py").write_text(test_body)


class World:
    """One store, bus and test manager; any number of scheduler services over them."""

    def __init__(self, store: ResultStore, manager: TestManager, bus: EventBus):
        self.store = store
        self.manager = manager
        self.bus = bus
        self.services: list[SchedulerService] = []
        self.events = bus.subscribe(SCHEDULE_EVENTS, name="test")

    def service(self, clock: FakeClock | None = None, **options) -> SchedulerService:
        if clock is not None:
            # A long max_sleep keeps the real timer task asleep while a test moves the fake
            # clock and calls tick() itself.
            options = {"clock": clock, "monotonic": clock.monotonic, "max_sleep": 3600.0,
                       "rng": Midpoint(), "catch_up_spread": 60.0, **options}
        made = SchedulerService(self.store, self.manager, self.bus, **options)
        self.services.append(made)
        return made

    def drain(self) -> list:
        out = []
        while not self.events.queue.empty():
            out.append(self.events.queue.get_nowait())
        return out


@pytest_asyncio.fixture(loop_scope="module")
async def world(home, tmp_path, module_runner):  # noqa: F811 (the fixture)
    plugins_dir = tmp_path / "plugins"
    write_plugin(plugins_dir, "quick", "def test_passes():\n    assert 1 + 1 == 2\n")
    write_plugin(plugins_dir, "slow",
                 "import time\n\n\ndef test_sleeps():\n    time.sleep(60)\n")
    settings = Settings()
    bus = EventBus()
    plugins = PluginManager(paths=home, settings=settings, bus=bus, bundled_dir=None,
                            extra_dirs=[plugins_dir], include_installed=False)
    plugins.discover()
    store = ResultStore(home.data_dir / "tests.sqlite3")
    manager = TestManager(plugins, store, bus, home.cache_dir / "runs", settings.tests)
    manager.runner = module_runner
    await manager.start()
    made = World(store, manager, bus)
    yield made
    for service in made.services:
        await service.stop()
    await manager.stop()
    store.close()


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def settle(service: SchedulerService) -> None:
    """Let the service's own timer task finish reacting to the last change.

    Each change wakes the timer, which takes a tick against the fake clock; a test that
    moves the clock and ticks itself waits for that first, or the timer fires instead.
    """
    await asyncio.sleep(0)
    await until(lambda: not service._lock.locked() and not service._wake.is_set())
    await asyncio.sleep(0)


def statuses(history: list[dict]) -> list[str]:
    return [h["status"] for h in history]


# -- validation, preview, records ----------------------------------------------------------


async def test_create_validates_everything_before_storing(world):
    service = world.service(FakeClock())
    with pytest.raises(TestSelectionError, match="unknown plugin 'ghost'"):
        await service.create("ghost", "daily")
    with pytest.raises(TestSelectionError, match="no test 'test_nope'"):
        await service.create("quick", "daily", test_id="test_nope")
    with pytest.raises(InvalidScheduleError) as bad:
        await service.create("quick", "every_0_minutes")
    assert ACCEPTED_FORMS in str(bad.value)
    with pytest.raises(InvalidScheduleError, match="Mars/Olympus"):
        await service.create("quick", "daily", timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="priority must be one of"):
        await service.create("quick", "daily", priority="urgent")
    for timeout in (0, -5, math.nan):
        with pytest.raises(ValueError, match="timeout"):
            await service.create("quick", "daily", timeout=timeout)
    with pytest.raises(ValueError, match="retries"):
        await service.create("quick", "daily", retries=-1)
    assert service.list() == [] and ScheduleStore(world.store).load_schedules() == []
    assert world.drain() == []

    record = await service.create("quick", " every_15_minutes ", test_id="test_passes",
                                  priority="high", timezone="Europe/Berlin", timeout=5)
    assert len(record.id) == 12 and int(record.id, 16) >= 0
    assert record.expression == "every_15_minutes" and record.priority is Priority.HIGH
    assert record.next_run_at == ts(2026, 6, 1, 12, 15)
    data = json.loads(json.dumps(record.to_dict()))
    assert data["priority"] == "high" and data["timeout"] == 5.0
    assert data["next_run_iso"] == "2026-06-01T12:15:00+00:00" and data["last_fire_iso"] is None
    [changed] = world.drain()
    assert isinstance(changed, ScheduleChanged) and changed.change == "created"
    assert changed.topic == "schedules.changed" and changed.schedule["id"] == record.id


async def test_preview_lists_the_next_fire_times(world):
    service = world.service(FakeClock())
    assert service.preview("every_15_minutes", count=3) == [
        datetime(2026, 6, 1, 12, 15, tzinfo=UTC), datetime(2026, 6, 1, 12, 30, tzinfo=UTC),
        datetime(2026, 6, 1, 12, 45, tzinfo=UTC)]
    # Daily words use the service's time of day, in the schedule's zone.
    berlin = world.service(FakeClock(), at=time_of_day(9, 30))
    assert berlin.preview("daily", "Europe/Berlin", 1) == [
        datetime(2026, 6, 2, 7, 30, tzinfo=UTC)]
    with pytest.raises(InvalidScheduleError, match="accepted forms"):
        service.preview("sometimes")
    with pytest.raises(ValueError, match="count"):
        service.preview("daily", count=-1)


# -- firing -----------------------------------------------------------------------------------


async def test_a_schedule_whose_plugin_is_gone_is_switched_off(world, tmp_path):
    """Audit: a schedule whose plugin was removed went on "firing" every slot (a skipped
    row each minute, logged at info level), enabled, for ever."""
    clock = FakeClock()
    service = world.service(clock)
    await service.start()
    record = await service.create("quick", "every_1_minutes")
    await settle(service)
    moved = tmp_path / "quick-moved-away"
    (tmp_path / "plugins" / "quick").rename(moved)
    world.manager.plugins.discover()
    # Away for a few minutes (a git checkout, a review): counted, not switched off, and a
    # fire that queues again starts the count over.
    for _ in range(ORPHAN_FIRES + 2):
        clock.advance(60)
        assert await service.tick() == []
    assert service.get(record.id).enabled
    moved.rename(tmp_path / "plugins" / "quick")
    world.manager.plugins.discover()
    clock.advance(60)
    [run_id] = await service.tick()
    await world.manager.wait(run_id)
    (tmp_path / "plugins" / "quick").rename(moved)
    world.manager.plugins.discover()
    # Gone for good: switched off once ORPHAN_FIRES in a row span ORPHAN_AFTER.
    clock.advance(60)
    assert await service.tick() == []
    assert service.get(record.id).enabled
    clock.advance(ORPHAN_AFTER)  # the timer was held up: one fire, the rest missed
    assert await service.tick() == []
    assert service.get(record.id).enabled
    clock.advance(60)
    assert await service.tick() == []
    after = service.get(record.id)
    assert not after.enabled and after.next_run_at is None and after.last_status == "skipped"
    history = await service.history(record.id, 500)
    assert "unknown plugin 'quick'" in history[0]["detail"]
    assert "switched off after 3 fires in a row over 1.0 h" in history[0]["detail"]
    clock.advance(600)
    assert await service.tick() == []  # nothing more
    assert len(await service.history(record.id, 500)) == len(history)


async def test_the_same_schedule_twice_is_refused_and_sub_minute_ones_too(world):
    """Audit: a retried POST (or a double click) made a second, identical schedule and
    every run happened twice; '* * * * * */10' queued the whole suite every 10 s."""
    service = world.service(FakeClock())
    await service.start()
    first = await service.create("quick", "every_5_minutes", test_id="test_passes")
    with pytest.raises(DuplicateScheduleError, match=first.id) as info:
        await service.create("quick", "every_5_minutes", test_id="test_passes")
    assert info.value.schedule_id == first.id
    await service.create("quick", "every_5_minutes")  # the whole suite: another schedule
    for fine in ("* * * * * */10", "* * * * * 0,30"):
        with pytest.raises(InvalidScheduleError, match="at most once a minute"):
            await service.create("quick", fine)
    assert len(service.list("quick")) == 2
    # An edit that would make it the same as another is refused too (review).
    other = await service.create("quick", "every_10_minutes", test_id="test_passes")
    with pytest.raises(DuplicateScheduleError, match=first.id):
        await service.update(other.id, expression="every_5_minutes")
    await service.update(other.id, priority="high")  # its own change: fine


async def test_a_schedule_from_before_the_minute_limit_can_still_be_paused(world, monkeypatch):
    """Review: one made before the limit kept firing every few seconds and could not
    even be switched off (every update re-checked the limit)."""
    import plexichat_desktop.scheduling.service as service_module

    service = world.service(FakeClock())
    await service.start()
    monkeypatch.setattr(service_module, "MIN_PERIOD", timedelta(0))
    old = await service.create("quick", "* * * * * */10")
    monkeypatch.undo()
    paused = await service.update(old.id, enabled=False)
    assert paused.enabled is False and paused.expression == "* * * * * */10"
    with pytest.raises(InvalidScheduleError, match="at most once a minute"):
        await service.update(old.id, expression="* * * * * */5")


async def test_a_due_schedule_fires_and_its_run_outcome_is_recorded(world):
    clock = FakeClock()
    service = world.service(clock)
    await service.start()
    record = await service.create("quick", "every_1_minutes", test_id="test_passes",
                                  retries=1)
    assert record.next_run_at == ts(2026, 6, 1, 12, 1)
    await settle(service)
    clock.advance(49)
    assert await service.tick() == []  # one second early: nothing
    clock.advance(1)
    [run_id] = await service.tick()
    assert await service.tick() == []  # fired once, not again
    done = await world.manager.wait(run_id)
    assert (done.status, done.trigger, done.schedule_id) == ("passed", "schedule", record.id)
    assert done.selection == ["tests/test_x.py::test_passes"]
    await until(lambda: service.get(record.id).last_status == "passed")
    after = service.get(record.id)
    assert after.last_run_id == run_id and after.last_fire_at == ts(2026, 6, 1, 12, 1)
    assert after.next_run_at == ts(2026, 6, 1, 12, 2)
    history = await service.history(record.id)
    assert [(h["status"], h["fire_at"], h["run_id"]) for h in history] == [
        ("fired", ts(2026, 6, 1, 12, 1), run_id)]
    events = world.drain()
    kinds = [(type(e).__name__, getattr(e, "change", None)) for e in events]
    # Re-armed at the fire (the pages' row showed the old next run until the run ended),
    # then the run's start ("queued" stayed for the whole of a long run) and its end.
    assert kinds == [("ScheduleChanged", "created"), ("ScheduleFired", None),
                     ("ScheduleChanged", "updated"), ("ScheduleChanged", "updated"),
                     ("ScheduleChanged", "updated")]
    assert events[2].schedule["next_run_at"] == ts(2026, 6, 1, 12, 2)
    assert [e.schedule["last_status"] for e in events[2:]] == ["queued", "running", "passed"]
    assert ScheduleStore(world.store).load_schedules()[0]["last_status"] == "passed"


async def test_a_schedule_whose_run_is_still_going_is_skipped(world):
    clock = FakeClock()
    service = world.service(clock)
    await service.start()
    record = await service.create("slow", "every_1_minutes", timeout=120)
    await settle(service)
    clock.advance(50)
    [run_id] = await service.tick()
    clock.advance(60)
    assert await service.tick() == []
    skipped = service.get(record.id)
    assert skipped.last_status == "skipped" and skipped.last_run_id == run_id
    assert skipped.next_run_at == ts(2026, 6, 1, 12, 3)
    history = await service.history(record.id)
    assert statuses(history) == ["skipped", "fired"]
    assert str(run_id) in history[0]["detail"]
    events = world.drain()
    [event] = [e for e in events if isinstance(e, ScheduleSkipped)]
    assert event.fire_at == ts(2026, 6, 1, 12, 2) and str(run_id) in event.reason
    # The skip re-armed the schedule: said to the pages, which kept the old next run.
    after = events[events.index(event) + 1]
    assert after.change == "updated" and after.schedule["last_status"] == "skipped"
    assert after.schedule["next_run_at"] == ts(2026, 6, 1, 12, 3)
    assert await world.manager.cancel(run_id)


async def test_several_schedules_per_test_each_queue_their_own_run(world):
    clock = FakeClock()
    service = world.service(clock)
    low = await service.create("quick", "every_1_minutes", priority="low")
    high = await service.create("quick", "every_1_minutes", priority="critical", timeout=7)
    clock.advance(50)
    run_ids = await service.tick()
    assert len(run_ids) == 2
    runs = {world.store.get_run(i).schedule_id: world.store.get_run(i) for i in run_ids}
    assert runs[low.id].priority is Priority.LOW
    assert runs[high.id].priority is Priority.CRITICAL
    # Submitted highest priority first.
    assert run_ids[0] == runs[high.id].id


async def test_a_held_up_timer_runs_the_newest_slot_and_records_the_rest(world):
    clock = FakeClock()
    service = world.service(clock)
    record = await service.create("quick", "every_1_minutes")
    clock.advance(190)  # 12:03:20, no clock jump: the loop was merely blocked
    assert len(await service.tick()) == 1
    history = await service.history(record.id)
    assert [(h["status"], h["fire_at"]) for h in history] == [
        ("fired", ts(2026, 6, 1, 12, 3)), ("missed", ts(2026, 6, 1, 12, 2)),
        ("missed", ts(2026, 6, 1, 12, 1))]
    assert service.get(record.id).next_run_at == ts(2026, 6, 1, 12, 4)


async def test_a_fire_that_cannot_queue_is_skipped_with_the_reason(world, tmp_path):
    clock = FakeClock()
    service = world.service(clock)
    record = await service.create("quick", "every_1_minutes")
    for path in sorted((tmp_path / "plugins" / "quick" / "tests").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (tmp_path / "plugins" / "quick" / "tests").rmdir()
    clock.advance(50)
    assert await service.tick() == []
    [history] = await service.history(record.id)
    assert history["status"] == "skipped" and "no tests folder" in history["detail"]
    assert service.get(record.id).next_run_at == ts(2026, 6, 1, 12, 2)


async def test_run_results_follow_the_last_run_and_its_retries_only(world):
    clock = FakeClock()
    service = world.service(clock)
    await service.start()
    record = await service.create("slow", "every_1_minutes", timeout=120)
    await settle(service)
    clock.advance(50)
    [run_id] = await service.tick()

    def finished(run: dict) -> None:
        world.bus.publish(RunFinished(run={"schedule_id": record.id, "parent_run_id": None,
                                           **run}))

    finished({"id": run_id + 100, "status": "failed"})      # not this schedule's last run
    finished({"id": run_id + 1, "parent_run_id": run_id, "status": "error"})  # its retry
    await until(lambda: service.get(record.id).last_run_id == run_id + 1)
    assert service.get(record.id).last_status == "error"
    await service.stop()
    await world.manager.cancel(run_id)
    assert (await world.manager.wait(run_id)).status == "cancelled"

    # A run that ended while the scheduler was not listening is read back from the store.
    second = world.service(clock)
    await second.start()
    again = second.get(record.id)
    assert again.last_run_id == run_id + 1 and again.last_status == "error"
    ScheduleStore(world.store).save_schedule({**again.to_row(), "last_run_id": run_id,
                               "last_status": "running"})
    await second.stop()
    third = world.service(clock)
    await third.start()
    assert third.get(record.id).last_status == "cancelled"


# -- misfires -------------------------------------------------------------------------------


async def test_three_hours_closed_give_one_spread_catch_up_run(world):
    clock = FakeClock()
    first = world.service(clock)
    await first.start()
    record = await first.create("quick", "every_30_minutes")
    await first.stop()
    clock.advance(3 * 3600)  # closed from 12:00:10 to 15:00:10
    second = world.service(clock)
    await second.start()
    again = second.get(record.id)
    assert again.next_run_at == ts(2026, 6, 1, 15, 30)
    # The six missed slots coalesce into one catch-up, 30 s later (half the spread).
    assert second.sleep_time() == pytest.approx(30.0)
    await settle(second)
    clock.advance(29)
    assert await second.tick() == []
    clock.advance(1)
    [run_id] = await second.tick()
    assert world.store.get_run(run_id).trigger == "catch_up"
    history = await second.history(record.id)
    assert [(h["status"], h["fire_at"]) for h in history] == [
        ("caught_up", ts(2026, 6, 1, 15, 0))]
    assert second.get(record.id).last_fire_at == ts(2026, 6, 1, 15, 0)
    assert not [e for e in world.drain() if isinstance(e, ScheduleMissed)]


async def test_days_closed_record_missed_fires_beyond_the_window(world):
    clock = FakeClock()
    first = world.service(clock, at=time_of_day(9, 0))
    await first.start()
    daily = await first.create("quick", "daily", timezone="UTC")
    weekly = await first.create("quick", "0 9 * * mon", timezone="UTC")
    off = await first.create("quick", "hourly", enabled=False)
    await first.stop()
    world.drain()
    clock.advance(9 * 86400)  # back on Wednesday 2026-06-10 12:00:10
    second = world.service(clock, at=time_of_day(9, 0))
    await second.start()

    # daily: today's 09:00 is within its 24 h grace and runs once; the eight before are
    # outside the coalescing window and are recorded as missed.
    daily_history = await second.history(daily.id)
    missed = [h["fire_at"] for h in daily_history if h["status"] == "missed"]
    assert sorted(missed) == [ts(2026, 6, day, 9, 0) for day in range(2, 10)]
    # weekly: Monday 09:00 is two days old, beyond its grace: missed, no catch-up.
    assert statuses(await second.history(weekly.id)) == ["missed"]
    assert second.get(weekly.id).last_status == "missed"
    assert second.get(weekly.id).next_run_at == ts(2026, 6, 15, 9, 0)
    # disabled: nothing at all.
    assert await second.history(off.id) == [] and second.get(off.id).next_run_at is None
    events = {e.schedule_id: e for e in world.drain() if isinstance(e, ScheduleMissed)}
    assert events[daily.id].count == 8 and events[daily.id].fire_at == ts(2026, 6, 9, 9, 0)
    assert set(events) == {daily.id, weekly.id}

    await settle(second)
    clock.advance(30)
    [run_id] = await second.tick()
    assert world.store.get_run(run_id).schedule_id == daily.id


async def test_a_clock_jump_on_a_tick_replans_and_disabled_schedules_stay_quiet(world):
    clock = FakeClock()
    service = world.service(clock)
    await service.start()
    on = await service.create("quick", "every_30_minutes")
    off = await service.create("quick", "every_1_minutes", enabled=False)
    await settle(service)
    clock.advance(3 * 3600, suspended=True)  # the machine slept: monotonic stood still
    assert await service.tick() == []  # re-planned: the catch-up waits for its delay
    assert service.sleep_time() == pytest.approx(30.0)
    clock.advance(30)
    [run_id] = await service.tick()
    assert world.store.get_run(run_id).schedule_id == on.id
    assert await service.history(off.id) == []
    assert service.get(off.id).next_run_at is None


# -- editing --------------------------------------------------------------------------------


async def test_update_rearms_and_delete_removes(world):
    clock = FakeClock()
    service = world.service(clock)
    record = await service.create("quick", "hourly", enabled=False)
    assert record.next_run_at is None
    clock.advance(7200)
    assert await service.tick() == []
    enabled = await service.update(record.id, enabled=True, expression="every_5_minutes")
    assert enabled.next_run_at == ts(2026, 6, 1, 14, 5)
    same = await service.update(record.id, priority="high", retries=2)
    assert same.next_run_at == enabled.next_run_at and same.priority is Priority.HIGH
    moved = await service.update(record.id, expression="0 18 * * *", timezone="Europe/Berlin")
    assert moved.next_run_at == ts(2026, 6, 1, 16, 0)
    with pytest.raises(InvalidScheduleError):
        await service.update(record.id, expression="sometimes")
    with pytest.raises(TestSelectionError, match="no test 'test_nope'"):
        await service.update(record.id, test_id="test_nope")
    with pytest.raises(ValueError, match="cannot change plugin_id"):
        await service.update(record.id, plugin_id="slow")
    with pytest.raises(ValueError, match="timeout"):
        await service.update(record.id, timeout=0)
    assert service.get(record.id) == moved  # failed updates change nothing
    paused = await service.update(record.id, enabled=False)
    assert paused.next_run_at is None
    assert ScheduleStore(world.store).load_schedules()[0]["enabled"] is False
    with pytest.raises(KeyError):
        await service.update("nope", enabled=True)

    await service.delete(record.id)
    for call in (lambda: service.get(record.id), lambda: service.delete(record.id),
                 lambda: service.history(record.id)):
        with pytest.raises(KeyError):
            result = call()
            if asyncio.iscoroutine(result):
                await result
    assert ScheduleStore(world.store).load_schedules() == []
    changes = [e.change for e in world.drain() if isinstance(e, ScheduleChanged)]
    assert changes == ["created", "updated", "updated", "updated", "updated", "deleted"]


async def test_list_orders_by_next_run_and_filters_by_plugin(world):
    service = world.service(FakeClock())
    later = await service.create("quick", "hourly")
    off = await service.create("slow", "hourly", enabled=False)
    soon = await service.create("slow", "every_1_minutes")
    assert [r.id for r in service.list()] == [soon.id, later.id, off.id]
    assert [r.id for r in service.list("slow")] == [soon.id, off.id]


# -- persistence ----------------------------------------------------------------------------


async def test_schedules_and_history_survive_a_restart(world):
    clock = FakeClock()
    first = world.service(clock)
    await first.start()
    fired = await first.create("quick", "every_1_minutes", retries=1)
    grid = await first.create("quick", "every_7_minutes", priority="low", timeout=9.5)
    aligned = await first.create("quick", "every_45_minutes")
    berlin = await first.create("slow", "daily", timezone="Europe/Berlin")
    await first.create("slow", "weekly", enabled=False)
    # every_7 does not divide a day: its grid starts at creation (to the minute); every_45
    # does, and stays on the UTC-midnight grid.
    assert grid.next_run_at == ts(2026, 6, 1, 12, 7)
    assert aligned.next_run_at == ts(2026, 6, 1, 12, 45)
    await settle(first)
    clock.advance(50)
    [run_id] = await first.tick()
    await world.manager.wait(run_id)
    await until(lambda: first.get(fired.id).last_status == "passed")
    before = [r.to_dict() for r in first.list()]
    await first.stop()

    second = world.service(clock)
    await second.start()
    assert [r.to_dict() for r in second.list()] == before
    assert second.get(berlin.id).next_run_at == ts(2026, 6, 1, 22, 0)
    assert statuses(await second.history(fired.id)) == ["fired"]
    # An hour later (the catch-up aside) the interval grids are where they were.
    await second.stop()
    clock.advance(3600)
    third = world.service(clock)
    await third.start()
    assert third.get(grid.id).next_run_at == ts(2026, 6, 1, 13, 3)
    assert third.get(aligned.id).next_run_at == ts(2026, 6, 1, 13, 30)


async def test_the_store_keeps_schedules_and_fire_history(tmp_path, monkeypatch):
    path = tmp_path / "old.sqlite3"
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:1])
    ResultStore(path).close()  # a file from before schedules existed
    monkeypatch.undo()
    with ResultStore(path) as results:
        assert results.schema_version == store_module.SCHEMA_VERSION
        store = ScheduleStore(results)
        row = dict.fromkeys(SCHEDULE_COLUMNS)
        row.update(id="abc", plugin_id="quick", expression="daily", priority="high",
                   enabled=True, created_at=1.0, armed_at=1.0)
        store.save_schedule(row)
        store.add_fire("abc", 10.0, "fired", 7)
        store.save_schedules([{**row, "last_status": "passed"}],
                             [("abc", 20.0, "skipped", None, "busy"),
                              ("abc", 5.0, "missed", None)])
        [loaded] = store.load_schedules()
        assert loaded["priority"] == int(Priority.HIGH) and loaded["last_status"] == "passed"
        assert [(h["fire_at"], h["status"], h["run_id"], h["detail"])
                for h in store.fire_history("abc")] == [
            (20.0, "skipped", None, "busy"), (10.0, "fired", 7, None),
            (5.0, "missed", None, None)]
        assert len(store.fire_history("abc", limit=1)) == 1
        with pytest.raises(ValueError, match="fire status"):
            store.add_fire("abc", 1.0, "exploded")
        with pytest.raises(sqlite3.IntegrityError):
            store.add_fire("ghost", 1.0, "fired")
        with pytest.raises(KeyError, match="next_run_at"):
            store.save_schedule({"id": "x"})
        assert store.prune_fire_history(keep=2) == 1
        assert [h["fire_at"] for h in store.fire_history("abc")] == [20.0, 10.0]
        assert store.delete_schedule("abc") and not store.delete_schedule("abc")
        assert store.fire_history("abc") == [] and store.load_schedules() == []
    # One path for every read and write: a closed store says so the same way for both.
    for call in (results.list_runs, store.load_schedules):
        with pytest.raises(RuntimeError, match="is closed"):
            call()


# -- the real timer --------------------------------------------------------------------------


async def test_the_timer_sleeps_exactly_until_due_and_never_longer_than_max_sleep(world):
    clock = FakeClock()
    service = world.service(clock, max_sleep=30.0)
    assert service.sleep_time() == 30.0  # nothing scheduled: the cap
    record = await service.create("quick", "every_1_minutes")
    assert service.sleep_time() == 30.0  # due in 50 s: the cap
    clock.now = record.next_run_at - 0.25
    assert service.sleep_time() == pytest.approx(0.25)
    clock.now = record.next_run_at + 3
    assert service.sleep_time() == 0.0


class ShiftedClock:
    """The real clock, moved to a chosen instant: real sleeps against a fake date."""

    def __init__(self, fake_now: float):
        self.offset = fake_now - time.time()

    def __call__(self) -> float:
        return time.time() + self.offset

    monotonic = staticmethod(time.monotonic)


async def test_the_timer_loop_fires_an_every_minute_schedule_on_time(world):
    minute = (math.floor(time.time() / 60) + 10) * 60.0
    clock = ShiftedClock(minute - 0.3)  # 0.3 s before a whole minute
    service = world.service(clock=clock)
    await service.start()
    record = await service.create("quick", "every_1_minutes")
    assert record.next_run_at == minute
    loop_late = loop_lateness(minute, clock)
    fired = await asyncio.wait_for(next_fired(world), 2.0)
    assert fired.fire_at == minute and fired.schedule_id == record.id
    lateness = fired.timestamp + clock.offset - minute
    await until(lambda: bool(loop_late))
    assert 0 <= lateness < LATE_BOUND + loop_late[0], (lateness, loop_late)


LATE_BOUND = 0.5


def loop_lateness(at: float, clock: Callable[[], float] = time.time) -> list[float]:
    """How late a plain loop timer for the same instant runs (filled in then): what a
    loaded machine adds to any timer, which a schedule's own lateness is measured above.
    The schedule must never fire early, and at most LATE_BOUND s after that timer: not a
    sleep step late (max_sleep), whatever else the machine runs (the firing's own thread
    hops waited 0.14 s once in a fresh-clone run beside other work, past 0.1 s)."""
    late: list[float] = []
    asyncio.get_running_loop().call_later(max(0.0, at - clock()),
                                          lambda: late.append(max(0.0, clock() - at)))
    return late


async def next_fired(world: World) -> ScheduleFired:
    while True:
        event = await world.events.get()
        if isinstance(event, ScheduleFired):
            return event


async def test_a_seconds_cron_fires_on_the_real_clock(world):
    service = world.service()  # time.time, time.monotonic, default max_sleep
    await service.start()
    target = math.ceil(time.time() + 0.3)
    record = await service.create("quick", f"* * * * * {target % 60}", timezone="UTC")
    assert record.next_run_at == target
    loop_late = loop_lateness(target)
    fired = await asyncio.wait_for(next_fired(world), target - time.time() + 1.0)
    assert fired.fire_at == target
    await until(lambda: bool(loop_late))
    assert 0 <= fired.timestamp - target < LATE_BOUND + loop_late[0], (fired.timestamp,
                                                                      loop_late)
    assert timedelta(seconds=time.time() - target) < timedelta(seconds=1)
