"""Scheduler service under load: 10,000 schedules in a temporary SQLite store.

Measures, in one process and one event loop, each figure next to a baseline taken in the
same run:

* load and arm: ``SchedulerService.start()`` over N stored schedules (read, parse, plan,
  persist, arm), against reading the N rows alone (``ScheduleStore.load_schedules``);
* start-up after the app was closed for 3 hours: the same, with catch-ups and missed
  fire times to plan and record;
* idle CPU: ``time.process_time`` over an idle period with the service running, scaled to
  a minute, against the same period of a bare asyncio loop; plus the CPU of one idle
  wake-up (a tick with nothing due) against one bare ``await asyncio.sleep(0)``;
* firing lateness, p50 / p99: bursts of 100 schedules due in the same second, against
  100 bare tasks doing ``await asyncio.sleep(...)`` to the same instants.

Every figure is measured twice, each time with a fresh store holding the same schedules:

* with a stand-in test manager whose async ``submit`` only records the time, so the
  figures are the scheduler's own;
* with the real ``TestManager`` over 50 trivial plugins (one passing test each, started
  with its worker pool): the burst's fires go through real submission (selection check,
  the run row written to SQLite from a thread, the queue, the bus event), and the pool
  starts pytest children for the first runs while the rest of the burst is still being
  queued. Lateness is taken when ``submit`` returns. Between bursts the runs are
  cancelled, or every schedule would still have a run going at its next fire and skip it.

Store writes are real in both. Baselines (reading the rows, a bare loop) are measured once.

    .venv/bin/python benchmarks/scheduler_load.py [--count N] [--idle S] [--bursts B]
        [--manager both|stand-in|real]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as time_of_day
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from plexichat_desktop.core.events import EventBus  # noqa: E402
from plexichat_desktop.core.paths import AppPaths  # noqa: E402
from plexichat_desktop.core.settings import Settings  # noqa: E402
from plexichat_desktop.plugins.manager import PluginManager  # noqa: E402
from plexichat_desktop.scheduling.expressions import parse  # noqa: E402
from plexichat_desktop.scheduling.service import (  # noqa: E402
    ScheduleRecord,
    SchedulerService,
)
from plexichat_desktop.scheduling.store import ScheduleStore  # noqa: E402
from plexichat_desktop.testing.manager import TestManager  # noqa: E402
from plexichat_desktop.testing.models import Priority, RunRecord, RunStatus  # noqa: E402
from plexichat_desktop.testing.store import ResultStore  # noqa: E402

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney", None]
BURST = 100
PLUGINS = 50
QUIET = 300.0  # generated schedules have no fire time within this many seconds of "now"


class FakeManager:
    """Enough of TestManager for the scheduler: submit() records when it was called."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self._ids = itertools.count(1)

    def plugin_record(self, plugin_id: str) -> object:
        return object()

    async def check_selection(self, plugin_id: str, test_id: str | None = None
                              ) -> list[str] | None:
        return None

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
            id=f"{len(rows):012x}", plugin_id=plugin_id(len(rows)), expression=expression,
            timezone=zone, priority=rng.choice(list(Priority)), created_at=now - 1,
            armed_at=now - 1, anchor=anchor)
        rows.append(record.to_row())
    return rows


def plugin_id(index: int) -> str:
    return f"bench_{index % PLUGINS:02d}"


def write_plugins(root: Path) -> Path:
    """PLUGINS plugins with one trivial passing test each (the real manager's suites)."""
    for index in range(PLUGINS):
        folder = root / plugin_id(index)
        (folder / "tests").mkdir(parents=True)
        (folder / "plugin.toml").write_text(
            f'id = "{plugin_id(index)}"\nname = "Bench {index}"\nversion = "1.0.0"\n'
            f'entry = "{plugin_id(index)}_pkg:Plugin"\n')
        (folder / "tests" / "test_trivial.py").write_text("def test_ok():\n    pass\n")
    return root


def real_manager(folder: Path, store: ResultStore, bus: EventBus, plugins: Path
                 ) -> TestManager:
    home = AppPaths.from_env({"PLEXICHAT_DESKTOP_HOME": str(folder / "home")})
    settings = Settings()
    plugin_manager = PluginManager(paths=home, settings=settings, bus=bus, bundled_dir=None,
                                   extra_dirs=[plugins], include_installed=False)
    plugin_manager.discover()
    return TestManager(plugin_manager, store, bus, home.cache_dir / "runs", settings.tests)


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


@dataclass
class Baselines:
    read_rows: float      # seconds to read the N rows alone
    idle_minute: float    # CPU seconds per minute of a bare asyncio loop
    wake: float           # CPU seconds of one wake of a minimal wait_for timer loop
    late: list[float]     # lateness of bare asyncio.sleep to the burst instants


@dataclass
class Figures:
    load: float
    idle_minute: float
    wake: float
    late: list[float]
    expected_fires: int
    load_late: float
    catch_ups: int
    missed: int


async def cancel_after_each(manager: TestManager, instants: list[float], delay: float) -> None:
    """Cancel every queued and running run ``delay`` s after each burst instant."""
    for instant in instants:
        await asyncio.sleep(max(0.0, instant + delay - time.time()))
        for run in [*manager.queued(), *manager.running()]:
            assert run.id is not None
            await manager.cancel(run.id)


async def measure(plugins: Path | None, folder: Path, rows: list[dict],
                  args: argparse.Namespace, at: time_of_day) -> tuple[Figures, int]:
    """Load and arm, idle CPU, the bursts and the start after 3 h closed, over a fresh
    store holding ``rows``: with the stand-in manager, or with a real TestManager over the
    plugins in ``plugins``. Also returns the manager's pool size (0 for the stand-in)."""
    folder.mkdir(parents=True)
    store = ResultStore(folder / "tests.sqlite3")
    ScheduleStore(store).save_schedules(rows)
    bus = EventBus()
    manager: Any
    calls: list[float] = []
    real = plugins is not None
    if real:
        manager = real_manager(folder, store, bus, plugins)
        submit: Callable[..., Awaitable[RunRecord]] = manager.submit

        async def timed_submit(*a: Any, **kw: Any) -> RunRecord:
            run = await submit(*a, **kw)
            calls.append(time.time())
            return run

        manager.submit = timed_submit  # type: ignore[method-assign]
        await manager.start()
    else:
        manager = FakeManager()
        calls = manager.calls
    try:
        await asyncio.sleep(1.0)  # the manager's start-up (retention pass) out of the way
        service = SchedulerService(store, manager, bus, at=at)
        started = time.perf_counter()
        await service.start()
        load = time.perf_counter() - started

        # Idle: the service's timer task (and the real manager's idle pool) and nothing else.
        await asyncio.sleep(1.0)  # let start-up's tail (the history prune thread) finish
        idle_minute = await cpu_over(args.idle) / args.idle * 60
        wake = await wake_cpu(service)

        # Bursts: BURST schedules firing at the same instants (a 6-field cron's seconds).
        gap = 2
        instants = burst_instants(args.bursts, gap=gap)
        seconds = ",".join(str(int(t) % 60) for t in instants)
        for _ in range(BURST):
            await service.create(plugin_id(0), f"* * * * * {seconds}", timezone="UTC")
        calls.clear()
        canceller = (asyncio.get_running_loop().create_task(
            cancel_after_each(manager, instants, 0.6 * gap)) if real else None)
        await asyncio.sleep(instants[-1] - time.time() + 0.5 * gap)
        if canceller is not None:
            await canceller
        late = lateness(list(calls), instants)
        await service.stop()

        # Start-up after the app was closed for three hours.
        later = SchedulerService(store, manager, bus, at=at,
                                 clock=lambda: time.time() + 3 * 3600)
        started = time.perf_counter()
        await later.start()
        load_late = time.perf_counter() - started
        catch_ups = len(later._catch_ups)
        missed = store._conn.execute(
            "SELECT COUNT(*) FROM schedule_fires WHERE status = 'missed'").fetchone()[0]
        await later.stop()
    finally:
        if real:
            await manager.stop()
        store.close()
    return Figures(load, idle_minute, wake, late, args.bursts * BURST, load_late, catch_ups,
                   missed), (manager.concurrency if real else 0)


def report(title: str, figures: Figures, base: Baselines, args: argparse.Namespace) -> None:
    print(title)
    print(f"  load and arm, start():          {figures.load * 1e3:9.1f} ms   "
          f"{ratio(figures.load, base.read_rows)} of reading the rows alone "
          f"({base.read_rows * 1e3:.1f} ms)")
    print(f"  idle CPU over {args.idle:.0f} s, per minute: {figures.idle_minute * 1e3:9.3f} ms   "
          f"{ratio(figures.idle_minute, base.idle_minute)} of an idle asyncio loop "
          f"({base.idle_minute * 1e3:.3f} ms/min)")
    # The timer wakes at most every max_sleep (30 s), so a few idle seconds may hold no
    # wake at all: the CPU of one wake, against a minimal wait_for timer loop, is the
    # sharper figure.
    print(f"  CPU of one idle wake-up:         {figures.wake * 1e6:9.1f} us   "
          f"{ratio(figures.wake, base.wake)} of a bare asyncio.wait_for timer loop "
          f"({base.wake * 1e6:.1f} us); at most 2 wakes/min when nothing is due")
    late = figures.late
    p50, p99 = percentile(late, 0.5), percentile(late, 0.99)
    b50, b99 = percentile(base.late, 0.5), percentile(base.late, 0.99)
    print(f"  firing lateness, {args.bursts} bursts of {BURST} due in the same second "
          f"({len(late)} of {figures.expected_fires} fires queued):")
    print(f"    p50 {p50 * 1e3:7.2f} ms   {ratio(p50, b50)} of bare asyncio.sleep to the "
          f"same instant (p50 {b50 * 1e3:.2f} ms)")
    print(f"    p99 {p99 * 1e3:7.2f} ms   {ratio(p99, b99)} of bare asyncio.sleep "
          f"(p99 {b99 * 1e3:.2f} ms); max {max(late) * 1e3:.2f} ms")
    print(f"  start() after 3 h closed:        {figures.load_late * 1e3:9.1f} ms   "
          f"{ratio(figures.load_late, base.read_rows)} of reading the rows alone; "
          f"{figures.catch_ups:,} catch-ups planned, {figures.missed:,} missed fire times "
          f"recorded")


async def main_async(args: argparse.Namespace) -> None:
    at = time_of_day(9, 0)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="scheduler-load-") as tmp:
        folder = Path(tmp)
        now = time.time()
        rows = make_rows(args.count, rng, now, at)
        kinds = sum(r["expression"].startswith("every_") for r in rows)
        print(f"scheduler_load: {args.count:,} schedules over {PLUGINS} plugins "
              f"({kinds:,} every_N_*, {args.count - kinds:,} cron/words, {len(ZONES)} zones); "
              f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, "
              f"SQLite {sqlite3.sqlite_version}")
        print()

        store = ResultStore(folder / "baseline.sqlite3")
        ScheduleStore(store).save_schedules(rows)
        read_rows = min(timed_sync(ScheduleStore(store).load_schedules) for _ in range(3))
        store.close()
        await asyncio.sleep(1.0)
        bare_minute = await cpu_over(args.idle) / args.idle * 60
        base_wake = await wake_cpu(None)
        base = Baselines(read_rows, bare_minute, base_wake,
                         await baseline_lateness(burst_instants(args.bursts)))

        if args.manager in ("both", "stand-in"):
            figures, _ = await measure(None, folder / "stand-in", rows, args, at)
            report("with a stand-in test manager (submit() only records the time):",
                   figures, base, args)
        if args.manager in ("both", "real"):
            plugins = write_plugins(folder / "plugins")
            figures, pool = await measure(plugins, folder / "real", rows, args, at)
            report(f"with the real TestManager ({PLUGINS} trivial plugins, a pool of {pool} "
                   f"pytest children; runs cancelled between bursts):", figures, base, args)


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
    parser.add_argument("--manager", choices=("both", "stand-in", "real"), default="both",
                        help="which test manager the scheduler submits to")
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
