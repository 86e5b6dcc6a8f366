"""``plexichat-desktop test`` and ``results``: the test manager on a terminal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from plexichat_desktop.core.events import EventBus
from plexichat_desktop.core.paths import AppPaths
from plexichat_desktop.core.settings import Settings
from plexichat_desktop.core.sqlite import SQLITE_INT_MAX
from plexichat_desktop.plugins.manager import PluginManager
from plexichat_desktop.testing.analytics import duration_report
from plexichat_desktop.testing.events import RunFinished, TestFinished, TestsCollected
from plexichat_desktop.testing.manager import TestManager, TestSelectionError
from plexichat_desktop.testing.models import BAD_OUTCOMES, RunRecord
from plexichat_desktop.testing.results import results_of, run_counts
from plexichat_desktop.testing.store import ResultStore

SUMMARY_ORDER = ["failed", "passed", "skipped", "xfailed", "xpassed", "error", "timed_out",
                 "crashed", "not_run", "flaky", "errors at teardown", "subtests failed",
                 "subtests passed"]
LONGREPR_LINES = 40      # of each failure shown in the text report
# pytest's exit codes a run can end with that say more than "tests failed" (1).
PYTEST_EXIT_CODES = {2, 3, 4}


def store_path(paths: AppPaths) -> Any:
    return paths.data_dir / "tests.sqlite3"


def _summary_words(counts: dict[str, int]) -> str:
    parts = [f"{counts[k]} {'errors' if k == 'error' and counts[k] > 1 else k.replace('_', ' ')}"
             for k in SUMMARY_ORDER if counts.get(k)]
    return ", ".join(parts) or "no tests ran"


class Progress:
    """A one-line progress bar on a terminal; silent elsewhere."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.enabled = stream.isatty()
        self.total = 0
        self.done = 0
        self.bad = 0

    def update(self, label: str) -> None:
        if not self.enabled:
            return
        width = max(10, min(40, shutil.get_terminal_size().columns - 40))
        filled = int(width * self.done / self.total) if self.total else 0
        bar = "#" * filled + "." * (width - filled)
        state = f" {self.bad} bad" if self.bad else ""
        self.stream.write(f"\r[{bar}] {self.done}/{self.total or '?'}{state} {label[:30]:<30}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 80 + "\r")
            self.stream.flush()


async def run_tests(paths: AppPaths, settings: Settings, target: str | None,
                    timeout: float | None, retries: int | None, priority: str,
                    as_json: bool, extra_dirs: list[Any], bundled_dir: Any) -> int:
    """Run plugin tests from the command line; returns the process exit code."""
    bus = EventBus()
    plugins = PluginManager(paths=paths, settings=settings, bus=bus, bundled_dir=bundled_dir,
                            extra_dirs=extra_dirs)
    if target:
        # Other plugins' problems are not this command's business (they stay in the log
        # file and `plugins list`); the target's own problem is reported when it is run.
        with _quiet_console(logging.getLogger("plexichat_desktop.plugins.manager")):
            plugins.discover()
        # Except a second folder with the target's id: which copy runs is its business
        # (a backup copy beside it ran silently, green, in place of the edited one).
        plugin_id = target.partition("::")[0]
        used = plugins.by_id.get(plugin_id)
        for rec in plugins.records:
            if used is not None and rec.id == plugin_id and rec is not used:
                print(f"warning: {rec.reason}; testing {used.root}", file=sys.stderr)
    else:
        plugins.discover()
    store = ResultStore(store_path(paths))
    manager = TestManager(plugins, store, bus, paths.cache_dir / "runs", settings.tests)
    out = sys.stdout
    progress = Progress(sys.stderr)
    started = time.monotonic()
    await manager.start()
    # pytest's imports (and the app's, for plugins whose tests start it) while the
    # plugins' tests are looked up.
    manager.runner.prepare([rec.root for rec in plugins.by_id.values()
                            if target is None or target.partition("::")[0] == rec.id])
    # Subscribed before anything is queued: a fast run could otherwise end unseen.
    sub = bus.subscribe((TestsCollected, TestFinished, RunFinished), name="cli progress")
    try:
        try:
            runs = await _submit(manager, target, timeout, retries, priority)
        except (TestSelectionError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            if isinstance(exc, TestSelectionError) and exc.subject == "plugin" and target:
                print(unknown_plugin_hint(paths, target.partition("::")[0]), file=sys.stderr)
            return 2
        pending = {run.id for run in runs}
        while pending:
            event = await sub.get()
            if isinstance(event, TestsCollected):
                progress.total += event.total
            elif isinstance(event, TestFinished):
                progress.done += 1
                progress.bad += event.outcome in BAD_OUTCOMES
                progress.update(event.nodeid)
            elif isinstance(event, RunFinished):
                pending.discard(event.run["id"])
        progress.close()
        finished = [await manager.wait(run.id) for run in runs if run.id is not None]
        report = await asyncio.to_thread(_report, store, finished)
    finally:
        sub.close()
        await manager.stop()
        store.close()
    elapsed = time.monotonic() - started
    if as_json:
        json.dump({"summary": {**report["summary"], "duration": round(elapsed, 3)},
                   "results": report["results"], "runs": report["runs"]}, out, indent=2)
        out.write("\n")
    else:
        _print_report(report, elapsed, out)
    return exit_code(report["runs"])


def unknown_plugin_hint(paths: AppPaths, plugin_id: str) -> str:
    """What to do when ``test`` does not know a plugin: this process only looks in the
    bundled, installed and user plugin dirs and on its own PLEXICHAT_DESKTOP_PLUGINS_PATH.
    When the running app knows the plugin, the hint names the folder it has it from."""
    from plexichat_desktop.core.instance import InstanceLock
    from plexichat_desktop.core.paths import PLUGINS_PATH_ENV

    where = None
    url = InstanceLock(paths.data_dir).holder().get("url")
    if url:
        import httpx

        from plexichat_desktop.server.token import load_or_create_token

        try:
            answer = httpx.get(f"{url}api/plugins/{plugin_id}", timeout=3, headers={
                "Authorization": f"Bearer {load_or_create_token(paths.token_file)}"})
            if answer.status_code == 200:
                where = answer.json().get("path")
        except (httpx.HTTPError, ValueError):
            where = None
    if where:
        return (f"hint: the running app at {url} has '{plugin_id}' from {where}; this "
                f"command does not see that folder. Run it with {PLUGINS_PATH_ENV}="
                f"{Path(where).parent} (the app's value of it), or work on the plugin with "
                f"'plexichat-desktop dev {where}', which reruns its tests on every save.")
    return (f"hint: plugins outside the bundled, installed and user plugin folders are found "
            f"through {PLUGINS_PATH_ENV} (folders holding plugin folders, "
            f"'{os.pathsep}'-separated) in this command's environment too; "
            "'plexichat-desktop dev PATH' serves one plugin folder and reruns its tests on "
            "every save.")


def exit_code(runs: list[dict[str, Any]]) -> int:
    """The process exit code for finished runs, as pytest would give it: 0 all good, 1
    tests failed or errored, pytest's own 2/3/4 (interrupted, internal error, usage error)
    when every bad run ended so, 5 when no run collected a test."""
    bad = [r for r in runs if r["status"] in ("failed", "error", "cancelled", "interrupted")]
    if bad:
        codes = {r.get("exit_code") for r in bad}
        only = codes.pop() if len(codes) == 1 else None
        return only if only in PYTEST_EXIT_CODES else 1
    if runs and all(r["status"] == "no_tests" for r in runs):
        return 5
    return 0


async def _submit(manager: TestManager, target: str | None, timeout: float | None,
                  retries: int | None, priority: str) -> list[RunRecord]:
    if target:
        plugin_id, _, test_id = target.partition("::")
        # Like pytest's own command line: an id naming a file goes straight to pytest.
        return [await manager.submit(plugin_id, [test_id] if test_id else None,
                                     priority=priority, trigger="cli", timeout=timeout,
                                     reruns=retries, precheck=False)]
    runs = []
    for rec in manager.testable():
        if manager.tests_dir(rec).is_dir():
            runs.append(await manager.submit(rec.id, priority=priority, trigger="cli",
                                             timeout=timeout, reruns=retries))
    if not runs:
        raise TestSelectionError("no plugin has a tests folder")
    return runs


def _report(store: ResultStore, runs: list[RunRecord]) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    summary: dict[str, int] = {}
    for run in runs:
        assert run.id is not None
        attempts = store.attempts_for_run(run.id)
        for key, value in run_counts(attempts).items():
            if key != "total":
                summary[key] = summary.get(key, 0) + value
        for result in results_of(attempts):
            results.append({"plugin": run.plugin_id, "nodeid": result.nodeid,
                            "outcome": result.outcome, "duration": result.duration,
                            "message": result.message, "attempts": result.attempts,
                            "flaky": result.flaky, "phase": result.phase,
                            "longrepr": result.longrepr, "reports": result.reports})
    return {"summary": summary, "results": results, "runs": [r.to_dict() for r in runs]}


def _print_report(report: dict[str, Any], elapsed: float, out: TextIO) -> None:
    for run in report["runs"]:
        counts = {k: v for k, v in run["counts"].items() if k != "total"}
        line = f"{run['plugin_id']:<28} {run['status']:<11} {_summary_words(counts)}"
        if run.get("duration") is not None:
            line += f" in {run['duration']:.2f}s"
        out.write(line + "\n")
        if run.get("error"):
            out.write(_indented(run["error"]))
    bad = [r for r in report["results"] if r["outcome"] in BAD_OUTCOMES]
    for r in bad:
        # What pytest shows under FAILURES/ERRORS: the assertion diff or the collection
        # report, so a failure can be fixed without another round trip.
        if r["longrepr"]:
            title = f" {r['plugin']} {r['nodeid']} "
            out.write(f"\n{title:_^78}\n{_indented(r['longrepr'], '')}")
    if bad:
        out.write("\n")
        for r in bad:
            shown = r["outcome"].upper()
            out.write(f"{shown} {r['plugin']} {r['nodeid']} - {r['message'][:120]}\n")
    out.write(f"==== {_summary_words(report['summary'])} in {elapsed:.2f}s ====\n")


class _DropLogger(logging.Filter):
    """Drops the records of one logger (and its children)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == self.name or record.name.startswith(self.name + "."))


@contextlib.contextmanager
def _quiet_console(logger: logging.Logger) -> Iterator[None]:
    """Keep ``logger``'s records off the terminal (the log file still gets them)."""
    consoles = [h for h in logging.getLogger().handlers
                if isinstance(h, logging.StreamHandler)
                and not isinstance(h, logging.FileHandler)]
    guard = _DropLogger(logger.name)
    for handler in consoles:
        handler.addFilter(guard)
    try:
        yield
    finally:
        for handler in consoles:
            handler.removeFilter(guard)


def _indented(text: str, prefix: str = "  ") -> str:
    lines = text.rstrip().splitlines()
    if len(lines) > LONGREPR_LINES:
        cut = len(lines) - LONGREPR_LINES
        lines = [*lines[:LONGREPR_LINES // 4], f"... [{cut} lines] ...",
                 *lines[-(LONGREPR_LINES * 3 // 4):]]
    return "".join(f"{prefix}{line}\n" for line in lines)


def show_results(paths: AppPaths, plugin_id: str | None, limit: int, as_json: bool, *,
                 failed: bool = False, failures: bool = False, slow: bool = False,
                 category: str | None = None,
                 known: Callable[[], set[str]] | None = None) -> int:
    """Recent runs and statistics from the store; with a run id, that run's results
    (``failed``: only the bad ones, with tracebacks); ``failures``: failure patterns;
    ``slow``: the duration report. ``known`` gives the installed plugins' ids, asked when
    ``plugin_id`` has no runs: a mistyped id is an error, not "no runs"."""
    if not store_path(paths).exists():
        print("No test results yet: run some tests first (plexichat-desktop test).")
        return 0
    if plugin_id is not None and plugin_id.isascii() and plugin_id.isdigit():
        if int(plugin_id) > SQLITE_INT_MAX:  # SQLite's integers end there: no such run
            print(f"error: no run {plugin_id}", file=sys.stderr)
            return 2
        return _show_run(paths, int(plugin_id), failed, limit, as_json)
    if failed:
        print("error: --failed goes with a run id (plexichat-desktop results RUN_ID --failed)",
              file=sys.stderr)
        return 2
    if failures:
        return _show_failures(paths, plugin_id, category, limit, as_json)
    if slow:
        return _show_durations(paths, plugin_id, limit, as_json)
    with ResultStore(store_path(paths)) as store:
        runs = store.list_runs(plugin_id, limit=limit)
        stats = store.statistics(plugin_id, category=category)
    if as_json:
        print(json.dumps({"runs": [r.to_dict() for r in runs], "statistics": stats},
                         indent=2, default=str))
        return 0
    if not runs:
        if plugin_id and known is not None and plugin_id not in (ids := known()):
            print(f"error: unknown plugin '{plugin_id}' (known: "
                  f"{', '.join(sorted(ids)) or 'none'})", file=sys.stderr)
            return 2
        print("No test runs recorded" + (f" for '{plugin_id}'." if plugin_id else "."))
        return 0
    print(f"{'run':>5}  {'plugin':<24} {'status':<11} {'when':<19}  results")
    for run in runs:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.queued_at))
        counts = {k: v for k, v in run.counts.items() if k != "total"}
        print(f"{run.id:>5}  {run.plugin_id:<24} {run.status:<11} {when}  "
              f"{_summary_words(counts) if run.status.finished else ''}")
    rate = stats.get("success_rate")
    # The runs above are all of them; the figures are the category's (it read as if those
    # runs' results were none).
    kind = f" (the {category} tests only)" if category else ""
    print(f"\nStatistics{' for ' + plugin_id if plugin_id else ''}{kind}: "
          f"{stats.get('total', 0)} results, "
          f"success rate {'-' if rate is None else f'{rate:.1%}'}, "
          f"mean {stats.get('mean_duration') or 0:.3f}s, "
          f"p95 {stats.get('p95_duration') or 0:.3f}s, "
          f"flaky rate {(stats.get('flaky_rate') or 0):.1%}")
    return 0


def _show_run(paths: AppPaths, run_id: int, failed: bool, limit: int, as_json: bool) -> int:
    with ResultStore(store_path(paths)) as store:
        run = store.get_run(run_id)
        attempts = store.attempts_for_run(run_id) if run is not None else []
    if run is None:
        print(f"error: no run {run_id}", file=sys.stderr)
        return 2
    shown = [r for r in results_of(attempts) if not failed or r.outcome in BAD_OUTCOMES]
    if as_json:
        print(json.dumps({"run": run.to_dict(), "results": [r.to_dict() for r in shown]},
                         indent=2, default=str))
        return 0
    counts = {k: v for k, v in run.counts.items() if k != "total"}
    print(f"Run #{run.id} of {run.plugin_id}: {run.status}, {_summary_words(counts)}")
    if run.error:
        print(_indented(run.error), end="")
    for r in shown:
        print(f"{r.outcome.upper():<10} {r.nodeid}" + (f" - {r.message[:120]}"
                                                      if r.message else ""))
        if failed and r.longrepr:
            print(_indented(r.longrepr, "    "), end="")
    if failed and not shown:
        print("No failed results in this run.")
    return 0


def _show_failures(paths: AppPaths, plugin_id: str | None, category: str | None,
                   limit: int, as_json: bool) -> int:
    with ResultStore(store_path(paths)) as store:
        patterns = store.failure_groups(plugin_id, category, limit=limit)
    if as_json:
        print(json.dumps({"patterns": [p.to_dict() for p in patterns]}, indent=2,
                         default=str))
        return 0
    if not patterns:
        print("No failures recorded" + (f" for '{plugin_id}'." if plugin_id else "."))
        return 0
    for p in patterns:
        first = time.strftime("%Y-%m-%d %H:%M", time.localtime(p.first_seen))
        last = time.strftime("%Y-%m-%d %H:%M", time.localtime(p.last_seen))
        print(f"[{p.id}] {p.count}x in {p.tests_affected} test(s), first {first} "
              f"(run #{p.first_run_id}), last {last} (run #{p.last_run_id})")
        print(f"  {p.signature}")
        for test in p.tests[:5]:
            print(f"    {test}")
        if p.tests_affected > 5:
            print(f"    ... and {p.tests_affected - 5} more")
    return 0


def _show_durations(paths: AppPaths, plugin_id: str | None, limit: int, as_json: bool
                    ) -> int:
    with ResultStore(store_path(paths)) as store:
        report = duration_report(store.duration_history(plugin_id),
                                 store.run_durations(plugin_id), limit)
    if as_json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print("Slowest tests (median of their newest results):")
    for t in report["slowest_tests"]:
        print(f"  {t['median']:8.3f}s  {t['plugin_id']}::{t['nodeid']}")
    if report["slowest_plugins"]:
        print("Slowest plugins (median whole-suite run):")
        for p in report["slowest_plugins"]:
            print(f"  {p['median_run']:8.2f}s  {p['plugin_id']} ({p['runs']} runs)")
    for title, key in (("Got slower", "slower"), ("Suggestions", "suggestions")):
        if report[key]:
            print(f"{title}:")
            for f in report[key]:
                print(f"  {f['plugin_id']}::{f['nodeid']}: {f['text']}")
    return 0
