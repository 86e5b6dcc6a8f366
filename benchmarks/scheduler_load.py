"""Scheduler service under load: 10,000 schedules in a temporary SQLite store.

Measures, in one process and one event loop, each figure next to a baseline taken in the
same run:

* load and arm: ``SchedulerService.start()`` over N stored schedules (read, parse, plan,
  persist, arm), against reading the N rows alone (``ResultStore.load_schedules``);
* start-up after the app was closed for 3 hours: the same, with catch-ups and missed
  fire times to plan and record;
* idle CPU: ``time.process_time`` over an idle period with the service running, scaled to
  a minute, against the same period of a bare asyncio loop; plus the CPU of one idle
  wake-up (a tick with nothing due) against one bare ``await asyncio.sleep(0)``;
* firing lateness, p50 / p99: bursts of 100 schedules due in the same second, against
  100 bare tasks doing ``await asyncio.sleep(...)`` to the same instants.

The test manager is a stand-in whose async ``submit`` only records the time: 100 real
pytest children would measure pytest and process start-up, not the scheduler. Store
writes are real.

    .venv/bin/python benchmarks/scheduler_load.py [--count N] [--idle S] [--bursts B]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from datetime import time as time_of_day
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from plexichat_desktop.core.events import EventBus  # noqa: E402
from plexichat_desktop.scheduling.expressions import parse  # noqa: E402
from plexichat_desktop.scheduling.service import (  # noqa: E402
    ScheduleRecord,
    SchedulerService,
)
from plexichat_desktop.testing.models import Priority, RunRecord, RunStatus  # noqa: E402
from plexichat_desktop.testing.store import ResultStore  # noqa: E402

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney", None]
BURST = 100
QUIET = 300.0  # generated schedules have no fire time within this many seconds of "now"


class FakeManager:
    """Enough of TestManager for the scheduler: submit() records when it was called."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.calls: list[float] = []
        self._ids = itertools.count(1)

    def _record(self, plugin_id: str) -> object:
        return object()

    def tests_dir(self, rec: object) -> Path:
        return self.folder

    async def submit(self, plugin_id: str, tests: list[str] | None = None, **options: Any
                     ) -> RunRecord:
        self.calls.append(time.time())
        return RunRecord(plugin_id=plugin_id, id=next(self._ids), status=RunStatus.QUEUED,
                         trigger=options.get("trigger", "schedule"),
                         schedule_id=options.get("schedule_id"))

    def queued(self) -> list[RunRecord]:
        return []

    def running(self) -> list[RunRecord]:
        return []


def random_expression(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.3:
        return rng.choice(("hourly", "daily", "weekly", "monthly", "@yearly", "@midnight"))
    if roll < 0.55:
        unit, most = rng.choice((("minutes", 720), ("hours", 72), ("days", 14)))
        return f"every_{rng.randint(5, most)}_{unit}"
    minute, hour = rng.randrange(60), rng.randrange(24)
    return rng.choice((
        f"{minute} {hour} * * *", f"*/{rng.choice((10, 15, 20, 30))} * * * *",
        f"{minute} {hour} * * 1-5", f"{minute} */{rng.choice((2, 3, 4, 6))} * * *",
        f"{minute} {hour} {rng.randint(1, 28)} * *", f"{minute} * * * *",
    ))


def make_rows(count: int, rng: random.Random, now: float, at: time_of_day) -> list[dict]:
    """Schedules created a second ago with no fire time in the next QUIET seconds, so the
    idle measurement is idle and start-up has nothing to catch up."""
    rows: list[dict] = []
    start, stop = datetime.fromtimestamp(now - 1, UTC), now + QUIET
    while len(rows) < count:
        expression, zone = random_expression(rng), rng.choice(ZONES)
        anchor = None
        if expression.startswith("every_"):
            anchor = math.floor((now - rng.randrange(90 * 86400)) / 60) * 60.0
        schedule = parse(expression, zone, at=at,
                         anchor=None if anchor is None else datetime.fromtimestamp(anchor, UTC))
        if schedule.next_after(start).timestamp() <= stop:
            continue
        record = ScheduleRecord(
            id=f"{len(rows):012x}", plugin_id=f"plugin_{len(rows) % 50}", expression=expression,
            timezone=zone, priority=rng.choice(list(Priority)), created_at=now - 1,
            armed_at=now - 1, anchor=anchor)
        rows.append(record.to_row())
    return rows


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def lateness(calls: list[float], instants: list[float]) -> list[float]:
    return [t - max(i for i in instants if i <= t) for t in calls]


def burst_instants(count: int, gap: int = 2, lead: float = 2.5) -> list[float]:
    first = math.ceil(time.time() + lead)
    return [float(first + gap * i) for i in range(count)]


async def baseline_lateness(instants: list[float]) -> list[float]:
    """100 bare asyncio tasks per instant, each sleeping until it the way the service does
    (a wall-clock difference handed to the loop's monotonic timer)."""
    late: list[float] = []

    async def sleeper(target: float) -> None:
        await asyncio.sleep(target - time.time())
        late.append(time.time() - target)

    await asyncio.gather(*(sleeper(t) for t in instants for _ in range(BURST)))
    return late


async def cpu_over(seconds: float) -> float:
    start = time.process_time()
    await asyncio.sleep(seconds)
    return time.process_time() - start


async def wake_cpu(service: SchedulerService | None, wakes: int = 2000) -> float:
    """CPU seconds per wake-up of the service's timer task (its event set, one tick with
    nothing due, back to sleep), or of a minimal wait_for loop when ``service`` is None."""
    count = 0
    if service is not None:
        event = service._wake
        tick = service.tick

        async def counting() -> list[int]:
            nonlocal count
            count += 1
            return await tick()

        service.tick = counting  # type: ignore[method-assign]
        task = None
    else:
        event = asyncio.Event()

        async def minimal() -> None:
            nonlocal count
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), 30.0)
                event.clear()
                count += 1

        task = asyncio.get_running_loop().create_task(minimal())
        await asyncio.sleep(0)
    start = time.process_time()
    for _ in range(wakes):
        before = count
        event.set()
        while count == before:
            await asyncio.sleep(0)
    used = (time.process_time() - start) / wakes
    if service is not None:
        del service.tick
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return used


def ratio(value: float, base: float) -> str:
    return f"x{value / base:,.1f}" if base > 0 else "x(inf)"


async def main_async(args: argparse.Namespace) -> None:
    at = time_of_day(9, 0)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="scheduler-load-") as tmp:
        folder = Path(tmp)
        store = ResultStore(folder / "tests.sqlite3")
        manager = FakeManager(folder)
        bus = EventBus()
        now = time.time()
        rows = make_rows(args.count, rng, now, at)
        store.save_schedules(rows)
        kinds = sum(r["expression"].startswith("every_") for r in rows)
        print(f"scheduler_load: {args.count:,} schedules ({kinds:,} every_N_*, "
              f"{args.count - kinds:,} cron/words, {len(ZONES)} zones); Python "
              f"{sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}")
        print("test manager: a stand-in whose submit() records the time (real pytest "
              "children would measure pytest, not the scheduler); store writes are real")
        print()

        read_rows = min(timed_sync(store.load_schedules) for _ in range(3))
        await asyncio.sleep(1.0)
        bare = await cpu_over(args.idle)  # an idle asyncio loop, before the service exists
        service = SchedulerService(store, manager, bus, at=at)  # type: ignore[arg-type]
        started = time.perf_counter()
        await service.start()
        load = time.perf_counter() - started
        print(f"load and arm, start():          {load * 1e3:9.1f} ms   "
              f"{ratio(load, read_rows)} of reading the rows alone ({read_rows * 1e3:.1f} ms)")

        # Idle: the service's timer task and nothing else, against the bare loop above.
        await asyncio.sleep(1.0)  # let start-up's tail (the history prune thread) finish
        busy = await cpu_over(args.idle)
        per_minute = busy / args.idle * 60
        base_minute = bare / args.idle * 60
        print(f"idle CPU over {args.idle:.0f} s, per minute: {per_minute * 1e3:9.3f} ms   "
              f"{ratio(per_minute, base_minute)} of an idle asyncio loop "
              f"({base_minute * 1e3:.3f} ms/min)")
        # The timer wakes at most every max_sleep (30 s), so a few idle seconds may hold no
        # wake at all: the CPU of one wake, against a minimal wait_for timer loop, is the
        # sharper figure.
        wake = await wake_cpu(service)
        base_wake = await wake_cpu(None)
        print(f"CPU of one idle wake-up:         {wake * 1e6:9.1f} us   "
              f"{ratio(wake, base_wake)} of a bare asyncio.wait_for timer loop "
              f"({base_wake * 1e6:.1f} us); at most {60 / service.max_sleep:.0f} wakes/min "
              f"when nothing is due")

        # Bursts: BURST schedules firing at the same instants (a 6-field cron's seconds).
        instants = burst_instants(args.bursts)
        seconds = ",".join(str(int(t) % 60) for t in instants)
        for _ in range(BURST):
            await service.create("plugin_0", f"* * * * * {seconds}", timezone="UTC")
        manager.calls.clear()
        await asyncio.sleep(instants[-1] - time.time() + 0.5)
        late = lateness(list(manager.calls), instants)
        fired = len(late)
        base = await baseline_lateness(burst_instants(args.bursts))
        p50, p99 = percentile(late, 0.5), percentile(late, 0.99)
        b50, b99 = percentile(base, 0.5), percentile(base, 0.99)
        print(f"firing lateness, {args.bursts} bursts of {BURST} due in the same second "
              f"({fired} fires):")
        print(f"  p50 {p50 * 1e3:7.2f} ms   {ratio(p50, b50)} of bare asyncio.sleep to the "
              f"same instant (p50 {b50 * 1e3:.2f} ms)")
        print(f"  p99 {p99 * 1e3:7.2f} ms   {ratio(p99, b99)} of bare asyncio.sleep "
              f"(p99 {b99 * 1e3:.2f} ms); max {max(late) * 1e3:.2f} ms")
        await service.stop()

        # Start-up after the app was closed for three hours.
        later = SchedulerService(store, manager, bus, at=at,  # type: ignore[arg-type]
                                 clock=lambda: time.time() + 3 * 3600)
        started = time.perf_counter()
        await later.start()
        load_late = time.perf_counter() - started
        catch_ups = len(later._catch_ups)
        missed = store._conn.execute(
            "SELECT COUNT(*) FROM schedule_fires WHERE status = 'missed'").fetchone()[0]
        print(f"start() after 3 h closed:        {load_late * 1e3:9.1f} ms   "
              f"{ratio(load_late, read_rows)} of reading the rows alone; "
              f"{catch_ups:,} catch-ups planned, {missed:,} missed fire times recorded")
        await later.stop()
        store.close()


def timed_sync(action: Any) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--idle", type=float, default=5.0, help="idle period, seconds")
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
