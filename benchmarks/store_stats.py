"""Result-store benchmark: statistics and daily trend over 100,000 stored attempts.

Fills a temporary database with 20 plugins x 50 tests x 100 runs (2,000 runs, ~100,000
attempts, about 2% of them retries, spread over the last 30 days), then times
``statistics()`` overall, for one plugin and for one test, ``daily_trend()`` and
``flip_rate()``, each as the median of several calls. The baseline, measured in the same
run on the same file, is a plain ``SELECT COUNT(*) FROM attempts``; each figure is also
printed as a ratio against it.

    .venv/bin/python benchmarks/store_stats.py [--plugins 20] [--tests 50] [--runs 100]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from plexichat_desktop.testing.models import (  # noqa: E402
    Outcome,
    RunRecord,
    RunStatus,
    TestAttempt,
)
from plexichat_desktop.testing.store import ResultStore  # noqa: E402

OUTCOMES = [Outcome.PASSED] * 85 + [Outcome.FAILED] * 5 + [Outcome.SKIPPED] * 5 + [
    Outcome.ERROR, Outcome.XFAILED, Outcome.XPASSED, Outcome.TIMED_OUT, Outcome.CRASHED]


def fill(store: ResultStore, plugins: int, tests: int, runs: int, now: float) -> int:
    rng = random.Random(1234)
    span = 30 * 86400.0
    count = 0
    for r in range(runs):
        for p in range(plugins):
            plugin_id = f"plugin_{p:02d}"
            queued = now - span + span * (r * plugins + p) / (runs * plugins)
            run = RunRecord(plugin_id=plugin_id, status=RunStatus.RUNNING, queued_at=queued,
                            started_at=queued + 1)
            store.create_run(run)
            assert run.id is not None
            attempts: list[TestAttempt] = []
            clock = queued + 1
            failed = False
            for t in range(tests):
                nodeid = f"tests/test_mod{t % 5}.py::test_{t:03d}"
                outcome = rng.choice(OUTCOMES)
                duration = rng.expovariate(1 / 0.05)
                if outcome is Outcome.FAILED and rng.random() < 0.4:
                    attempts.append(TestAttempt(
                        run_id=run.id, plugin_id=plugin_id, nodeid=nodeid, outcome=outcome,
                        attempt=1, duration=duration, message="assert 1 == 2",
                        longrepr="E   assert 1 == 2\n" * 20, started_at=clock,
                        finished_at=clock + duration))
                    clock += duration
                    outcome = Outcome.PASSED
                    attempt = 2
                else:
                    attempt = 1
                failed = failed or outcome in (Outcome.FAILED, Outcome.ERROR)
                attempts.append(TestAttempt(
                    run_id=run.id, plugin_id=plugin_id, nodeid=nodeid, outcome=outcome,
                    attempt=attempt, duration=duration, started_at=clock,
                    finished_at=clock + duration))
                clock += duration
            store.add_attempts(attempts)
            count += len(attempts)
            run.status = RunStatus.FAILED if failed else RunStatus.PASSED
            run.finished_at = clock
            store.update_run(run)
    return count


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", type=int, default=20)
    parser.add_argument("--tests", type=int, default=50)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "results.sqlite3"
        with ResultStore(path) as store:
            start = time.perf_counter()
            attempts = fill(store, args.plugins, args.tests, args.runs, now)
            insert = time.perf_counter() - start
            size = path.stat().st_size + Path(str(path) + "-wal").stat().st_size
            print(f"inserted {attempts:,} attempts in {args.plugins * args.runs:,} runs: "
                  f"{insert:.2f} s ({insert / attempts * 1e6:.1f} us per attempt), "
                  f"file {size / 1e6:.1f} MB")

            raw = sqlite3.connect(path)
            raw.execute("SELECT COUNT(*) FROM attempts").fetchone()  # warm the page cache
            baseline = median_time(
                lambda: raw.execute("SELECT COUNT(*) FROM attempts").fetchone(), args.repeat)
            print(f"baseline SELECT COUNT(*) FROM attempts: {baseline * 1e3:8.2f} ms")

            cases: list[tuple[str, Callable[[], object]]] = [
                ("statistics() overall", lambda: store.statistics()),
                ("statistics(plugin)", lambda: store.statistics("plugin_07")),
                ("statistics(plugin, test)",
                 lambda: store.statistics("plugin_07", "tests/test_mod2.py::test_012")),
                ("statistics(plugin, since=7 days)",
                 lambda: store.statistics("plugin_07", since=now - 7 * 86400)),
                ("daily_trend() overall, 30 days", lambda: store.daily_trend(now=now)),
                ("daily_trend(plugin), 30 days",
                 lambda: store.daily_trend("plugin_07", now=now)),
                ("flip_rate(plugin, test)",
                 lambda: store.flip_rate("plugin_07", "tests/test_mod2.py::test_012")),
                ("last_results(plugin)", lambda: store.last_results("plugin_07")),
            ]
            for name, fn in cases:
                fn()
                elapsed = median_time(fn, args.repeat)
                print(f"{name:34s} {elapsed * 1e3:8.2f} ms  ({elapsed / baseline:7.1f}x baseline)")
            raw.close()


if __name__ == "__main__":
    main()
