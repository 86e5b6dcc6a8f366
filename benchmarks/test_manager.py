"""Test manager benchmark: isolation cost against single-process pytest and pytest-xdist.

A generated set of 15 plugins x 40 small tests runs
  (a) through the test manager (one pytest child per plugin, default concurrency),
  (b) by plain pytest in one process,
  (c) by pytest -n <cores> (pytest-xdist), when installed,
in the same run; then the latency from "run this one test" to its finished event,
with the runner's fork server (the default), its warm child and a cold start (interleaved,
same run).

    .venv/bin/python benchmarks/test_manager.py [--plugins 15] [--tests 40] [--rounds 5]
                                                [--latency-runs 20]

The three variants run in interleaved rounds (a, b, c, a, b, c, ...; each round of (a) with
a manager and a fork server of its own) and each figure is the median of its rounds, with
every round's value beside it: one round alone swung from 1.03x to 1.53x on a 2-core VM,
and the median of three once came out 1.56x (two slow rounds) where five gave 1.25x.

Besides wall time each variant's CPU time (user + system of every process it used) is
printed: on a shared machine the wall ratios swing with the load, the CPU ratio much less.

Where (a)'s time goes (issue 21), per forked session of 40 tests, median CPU ms between
pytest's hooks (2 cores at load 5-12, so CPU rather than wall), first round -> second
round (fork server commits of 2026-12-06 evening, 3 runs back to back with the first
round's code, test files' rewrite cached, wait4 of each session):

    config: get_config, ini, -p plugins, argparse  70 -> 26-31 -> 9-11  entry points of -p
                                                                       names remembered,
                                                                       readline imported
                                                                       in the server
    pytest_configure                                7 -> 4     -> 3
    sessionstart: fixtures of ~38 plugins          15 -> 16    -> 5-6   the server parses
                                                                       pytest's plugins;
                                                                       sessions skip those
                                                                       without fixtures
    collection                                     28 -> 28-32 -> 12-14  the first two with
                                                                       the asserts' rewrite
                                                                       made, the last cached
    the 40 tests, our reporter included            32 -> 29-33 -> 28-29
    unconfigure and exit (from wait4)              31 -> 1-2   -> 4-5
    session total (wait4)                         187 -> 104-119 -> 63-69 (82-90 before it)

Before the run the test files are collected once, untimed (--cold-rewrite skips it):
whichever variant ran first rewrote their asserts and left them cached for the others, so
(b) and (c) started from a cache that (a) had paid for (~12 ms of CPU per file).

What (a) still pays that (b) does not: pytest's fixed setup per session (config, configure,
sessionstart, the collection's fixed part: ~30 ms x 15 instead of once), the reporter's
events (~0.18 s of the manager's CPU for 600 results: decoding, attempts, the store), the
fork server's own start (Python, pytest, asyncio: ~0.2 s, on the critical path as (b)'s
interpreter start is), the page faults of each fork's copy-on-write (~3000 a session), and
the uneven split of 15 suites over 2 workers (8 and 7).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from plexichat_desktop.core.events import EventBus  # noqa: E402
from plexichat_desktop.core.paths import AppPaths  # noqa: E402
from plexichat_desktop.core.settings import Settings  # noqa: E402
from plexichat_desktop.plugins.manager import PluginManager  # noqa: E402
from plexichat_desktop.testing.events import TestFinished  # noqa: E402
from plexichat_desktop.testing.manager import TestManager, default_concurrency  # noqa: E402
from plexichat_desktop.testing.store import ResultStore  # noqa: E402

MODES = {"fork": "fork server (default)", "warm": "warm child",
         "cold": "cold child (baseline)"}


def generate(root: Path, plugins: int, tests: int) -> list[Path]:
    folders = []
    for p in range(plugins):
        folder = root / f"bench_{p:02d}"
        (folder / "tests").mkdir(parents=True)
        (folder / "plugin.toml").write_text(
            f'id = "bench_{p:02d}"\nname = "Bench {p}"\nversion = "1.0.0"\n'
            f'entry = "bench_{p:02d}_pkg:Plugin"\n')
        package = folder / f"bench_{p:02d}_pkg"
        package.mkdir()
        (package / "__init__.py").write_text(
            "from plexichat_desktop.plugins.api import Plugin as Base\n\n\n"
            "class Plugin(Base):\n    pass\n")
        body = ["import pytest", ""]
        for t in range(tests // 2):
            body += [f"def test_plain_{t}():", f"    assert sum(range({t})) >= 0", ""]
        body += [f"@pytest.mark.parametrize('n', range({tests - tests // 2}))",
                 "def test_param(n):", "    assert n * n >= 0", ""]
        (folder / "tests" / f"test_bench_{p:02d}.py").write_text("\n".join(body))
        folders.append(folder)
    return folders


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one pytest command (its workers included)."""
    cpu = cpu_of_children()
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return elapsed, cpu_of_children() - cpu


def medians(values: list[tuple[float, float]]) -> tuple[float, float]:
    """Median wall and median CPU seconds of a variant's rounds."""
    return (statistics.median(wall for wall, _ in values),
            statistics.median(cpu for _, cpu in values))


def cpu_of_children() -> float:
    """CPU seconds (user + system) of every descendant ended and reaped so far: the
    pytest processes, and the fork server with the sessions it forked and reaped."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def start_manager(home: AppPaths, plugin_root: Path) -> tuple[TestManager, ResultStore,
                                                                 EventBus]:
    settings = Settings()
    bus = EventBus()
    plugins = PluginManager(paths=home, settings=settings, bus=bus, bundled_dir=None,
                            extra_dirs=[plugin_root], include_installed=False)
    plugins.discover()
    store = ResultStore(home.data_dir / "tests.sqlite3")
    return TestManager(plugins, store, bus, home.cache_dir / "runs", settings.tests), store, bus


async def through_manager(home: AppPaths, plugin_root: Path) -> tuple[float, float, int]:
    """Every suite through a manager started for the purpose: wall time, and CPU time of
    this process and of every process the run used (the fork server's start and
    imports included, as (b) pays for its interpreter's)."""
    manager, store, _ = start_manager(home, plugin_root)
    await manager.start()
    try:
        cpu = time.process_time() + cpu_of_children()
        start = time.perf_counter()
        runs = [await manager.submit(rec.id) for rec in manager.testable()]
        done = [await manager.wait(run.id) for run in runs]
        wall = time.perf_counter() - start
    finally:
        await manager.stop()  # the fork server ends and is reaped: its CPU is counted
        store.close()
    cpu = time.process_time() + cpu_of_children() - cpu
    return wall, cpu, sum(r.counts.get("passed", 0) for r in done)


async def one_test_latency(home: AppPaths, plugin_root: Path, latency_runs: int
                           ) -> dict[str, list[float]]:
    manager, store, bus = start_manager(home, plugin_root)
    await manager.start()
    try:
        first = manager.testable()[0].id
        await manager.discover(first)  # warm the discovery cache, as the UI would have it
        latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
        sub = bus.subscribe(TestFinished)
        runner = manager.runner
        # Interleaved, each run on its own: a person clicks "run", reads the result, clicks
        # again; the pause lets the runner's next warm child finish its imports.
        for _ in range(latency_runs):
            for mode in MODES:
                runner.fork = mode == "fork"
                runner.warm = mode != "cold"
                if mode == "warm":
                    runner._replenish()
                else:
                    await runner._drop_warm()
                await asyncio.sleep(0.3)
                t0 = time.perf_counter()
                run = await manager.submit(first, ["test_plain_1"])
                await sub.get()
                latencies[mode].append(time.perf_counter() - t0)
                await manager.wait(run.id)
        sub.close()
        return latencies
    finally:
        await manager.stop()
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", type=int, default=15)
    parser.add_argument("--tests", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved rounds of (a), (b) and (c); medians are printed")
    parser.add_argument("--latency-runs", type=int, default=20)
    parser.add_argument("--cold-rewrite", action="store_true",
                        help="no untimed collection first: (a) then rewrites the test files' "
                             "asserts and caches them, and (b) and (c) find them cached")
    args = parser.parse_args()
    cores = os.cpu_count() or 2
    with tempfile.TemporaryDirectory(prefix="plexichat-bench-") as tmp:
        root = Path(tmp)
        folders = generate(root / "plugins", args.plugins, args.tests)
        home = AppPaths.from_env({"PLEXICHAT_DESKTOP_HOME": str(root / "home")})
        (root / "pytest.ini").write_text("[pytest]\n")
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "--import-mode=importlib", "-c", str(root / "pytest.ini"), f"--rootdir={root}",
                *[str(f / "tests") for f in folders]]
        if not args.cold_rewrite:
            # Whichever variant ran first rewrote the test files' asserts and left them
            # cached in __pycache__ for the others (~12 ms of CPU a file): all start from
            # the cache, as a suite run again does.
            timed([*base, "--collect-only"], root)
        load = os.getloadavg()[0]
        has_xdist = importlib.util.find_spec("xdist") is not None
        rounds: dict[str, list[tuple[float, float]]] = {"a": [], "b": [], "c": []}
        for number in range(max(1, args.rounds)):
            # A fresh home per round: each manager starts with an empty result store.
            fresh = AppPaths.from_env({"PLEXICHAT_DESKTOP_HOME": str(root / f"home{number}")})
            wall, cpu, passed = asyncio.run(through_manager(fresh, root / "plugins"))
            if passed != args.plugins * args.tests:
                raise RuntimeError(f"expected {args.plugins * args.tests} passes, "
                                   f"got {passed}")
            rounds["a"].append((wall, cpu))
            rounds["b"].append(timed(base, root))
            if has_xdist:
                rounds["c"].append(timed([*base, "-p", "xdist", "-n", str(cores)], root))
        wall_a, cpu_a = medians(rounds["a"])
        wall_b, cpu_b = medians(rounds["b"])
        wall_c, cpu_c = medians(rounds["c"]) if has_xdist else (None, None)
        latencies = (asyncio.run(one_test_latency(home, root / "plugins", args.latency_runs))
                     if args.latency_runs else {})
    print(f"suite: {args.plugins} plugins x {args.tests} tests = {passed} tests, {cores} cores, "
          f"load average {load:.2f} at the start, asserts' rewrite "
          f"{'made by (a), cached for (b) and (c)' if args.cold_rewrite else 'cached for all'}; "
          f"medians of {len(rounds['a'])} interleaved rounds")
    print("                                       wall            CPU (user+sys, all processes)")
    print(f"(a) test manager, concurrency {default_concurrency()}:   {wall_a:6.2f} s        "
          f"{cpu_a:6.2f} s")
    print(f"(b) plain pytest, one process:       {wall_b:6.2f} s a/b = {wall_a / wall_b:.2f}"
          f"   {cpu_b:6.2f} s a/b = {cpu_a / cpu_b:.2f}")
    if wall_c is not None and cpu_c is not None:
        print(f"(c) pytest -n {cores} (xdist):            {wall_c:6.2f} s a/c = "
              f"{wall_a / wall_c:.2f}   {cpu_c:6.2f} s a/c = {cpu_a / cpu_c:.2f}")
    else:
        print("(c) pytest-xdist is not installed: run ./bootstrap.sh bench to install it")
    for key, label in (("a", "(a)"), ("b", "(b)"), ("c", "(c)")):
        if rounds[key]:
            print(f"    {label} each round: wall "
                  + " / ".join(f"{wall:.2f}" for wall, _ in rounds[key]) + " s, CPU "
                  + " / ".join(f"{cpu:.2f}" for _, cpu in rounds[key]) + " s")
    if not latencies:
        return 0
    for mode, label in MODES.items():
        values = latencies[mode]
        print(f"run one test -> finished event, {label}: median "
              f"{statistics.median(values) * 1000:.0f} ms (min {min(values) * 1000:.0f}, "
              f"max {max(values) * 1000:.0f}, {len(values)} runs)")
    cold = statistics.median(latencies["cold"])
    print(f"fork/cold median ratio: {statistics.median(latencies['fork']) / cold:.2f}; "
          f"warm/cold: {statistics.median(latencies['warm']) / cold:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
