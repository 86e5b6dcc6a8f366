"""Schedule planning benchmark: "load and arm" and misfire planning for many schedules.

Builds N schedules (default 10,000) of mixed kinds (words, every_N_* intervals, 5- and
6-field crons) in mixed zones, then times, in one process:

* baseline A: N bare ``croniter.get_next`` calls on prebuilt iterators (aware start);
* baseline B: N bare ``croniter(expr, start).get_next()`` (construct + one step);
* load and arm: ``parse`` + ``next_after`` for every schedule, with cold caches and warm;
* ``plan_misfires`` for every schedule after a simulated one-day sleep.

Each figure is printed with its ratio to both baselines measured in the same run.

    .venv/bin/python benchmarks/schedule_planning.py [--count N] [--repeat R] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

from croniter import croniter

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from plexichat_desktop.scheduling import expressions  # noqa: E402
from plexichat_desktop.scheduling.expressions import Schedule, parse  # noqa: E402
from plexichat_desktop.scheduling.planner import plan_misfires  # noqa: E402

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney",
         "America/Santiago", None]
NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
SLEEP = timedelta(days=1)

Spec = tuple[str, str | None, clock, datetime | None]


def make_specs(count: int, rng: random.Random) -> list[Spec]:
    specs: list[Spec] = []
    for _ in range(count):
        zone = rng.choice(ZONES)
        at = clock(rng.randrange(24), rng.choice((0, 15, 30, 45)))
        roll = rng.random()
        anchor = None
        if roll < 0.25:
            expression = rng.choice(("hourly", "daily", "@daily", "weekly", "monthly",
                                     "@yearly", "@midnight"))
        elif roll < 0.5:
            unit, most = rng.choice((("minutes", 720), ("hours", 72), ("days", 14)))
            expression = f"every_{rng.randint(1, most)}_{unit}"
            anchor = NOW - timedelta(seconds=rng.randrange(90 * 86400))
        else:
            minute, hour = rng.randrange(60), rng.randrange(24)
            expression = rng.choice((
                f"{minute} {hour} * * *",
                f"*/{rng.choice((5, 10, 15, 20, 30))} * * * *",
                f"{minute} {hour} * * 1-5",
                f"{minute} */{rng.choice((2, 3, 4, 6))} * * *",
                f"{minute} {hour} {rng.randint(1, 28)} * *",
                f"{minute} * * * *",
                f"0 {hour} * * * {rng.randrange(60)}",
            ))
        specs.append((expression, zone, at, anchor))
    return specs


def cron_for(spec: Spec) -> str:
    """The cron a bare-croniter implementation would use for this spec (baselines)."""
    expression = spec[0]
    if expression.startswith("every_"):
        return "*/5 * * * *"
    if not expression[0].isdigit() and not expression.startswith("*"):
        return "0 0 * * *"
    return expression


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def best_of(repeat: int, action: Callable[[], object]) -> float:
    return min(timed(action) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    specs = make_specs(args.count, random.Random(args.seed))
    zones = {name: ZoneInfo(name) if name else expressions.local_zone() for name in ZONES}
    starts = [NOW.astimezone(zones[spec[1]]) for spec in specs]
    crons = [cron_for(spec) for spec in specs]
    iterators = [croniter(cron, start) for cron, start in zip(crons, starts, strict=True)]

    def baseline_next() -> None:
        for iterator, start in zip(iterators, starts, strict=True):
            iterator.get_next(datetime, start_time=start)

    def baseline_construct() -> None:
        for cron, start in zip(crons, starts, strict=True):
            croniter(cron, start).get_next(datetime)

    schedules: list[Schedule] = []

    def load_and_arm() -> None:
        schedules.clear()
        for expression, zone, at, anchor in specs:
            schedule = parse(expression, tz=zone, at=at, anchor=anchor)
            schedule.next_after(NOW)
            schedules.append(schedule)

    def cold_load_and_arm() -> None:
        expressions._compile_cron.cache_clear()
        load_and_arm()

    now = NOW + SLEEP
    last_fires = []

    def plan_all() -> None:
        for schedule, last in zip(schedules, last_fires, strict=True):
            plan_misfires(schedule, last, now)

    base_a = best_of(args.repeat, baseline_next)
    base_b = best_of(args.repeat, baseline_construct)
    cold = statistics.median(timed(cold_load_and_arm) for _ in range(args.repeat))
    warm = best_of(args.repeat, load_and_arm)
    last_fires.extend(s.previous_at_or_before(NOW) for s in schedules)
    first_plan = timed(plan_all)   # includes computing each cron's period estimate once
    plan = best_of(args.repeat, plan_all)

    unique = len({s.cron for s in schedules if s.cron})
    kinds = {kind: sum(s.kind == kind for s in schedules) for kind in ("cron", "interval")}
    print(f"{args.count} schedules: {kinds['cron']} cron ({unique} distinct), "
          f"{kinds['interval']} interval, {len(ZONES)} zones; sleep {SLEEP}")
    rows = [
        ("baseline A: bare croniter get_next", base_a),
        ("baseline B: bare croniter construct+get_next", base_b),
        ("load and arm, cold caches (median)", cold),
        ("load and arm, warm caches (best)", warm),
        ("plan_misfires after 1-day sleep, first", first_plan),
        ("plan_misfires after 1-day sleep, best", plan),
    ]
    print(f"{'':46} {'total ms':>9} {'us each':>8} {'vs A':>6} {'vs B':>6}")
    for label, seconds in rows:
        print(f"{label:46} {seconds * 1e3:9.1f} {seconds / args.count * 1e6:8.1f} "
              f"{seconds / base_a:6.2f} {seconds / base_b:6.2f}")


if __name__ == "__main__":
    main()
