"""The plugin test manager: discovery, a priority queue, a bounded pool of pytest
children, retries, the result store and live events on the bus.

Queue order is priority (critical > high > medium > low), then first come first served.
A plugin's suite never runs twice at once unless the caller asks for it; the next
waiting run of another plugin goes first instead.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from plexichat_desktop.core.events import EventBus
from plexichat_desktop.core.settings import TestsSettings
from plexichat_desktop.core.waiting import wait_set
from plexichat_desktop.plugins.manager import PluginManager, PluginRecord
from plexichat_desktop.testing.events import (
    RunFinished,
    RunQueued,
    RunStarted,
    TestFinished,
    TestsCollected,
    TestStarted,
)
from plexichat_desktop.testing.models import (
    BAD_OUTCOMES,
    CollectedTest,
    Outcome,
    Priority,
    RunRecord,
    RunStatus,
    TestAttempt,
)
from plexichat_desktop.testing.results import RunProgress, final_attempt, group_attempts, run_counts
from plexichat_desktop.testing.runner import CollectResult, PytestRunner, RunLimits, RunResult
from plexichat_desktop.testing.store import ResultStore

log = logging.getLogger(__name__)


SelectionSubject = Literal["plugin", "test", "run"]
RETENTION_INTERVAL = 24 * 3600.0
# pytest.ExitCode's INTERRUPTED and USAGE_ERROR, without importing pytest into the app
INTERRUPTED, USAGE_ERROR = 2, 4


class TestSelectionError(ValueError):
    """An unknown plugin or test id, or a plugin without tests.

    ``subject`` says what the caller got wrong: ``"plugin"`` (unknown, or without a tests
    folder), ``"test"`` (nothing collected matches the test id) or ``"run"`` (unknown run
    id), so an API can name the field without parsing the message.
    """

    __test__ = False

    def __init__(self, message: str, *, subject: SelectionSubject = "plugin"):
        super().__init__(message)
        self.subject: SelectionSubject = subject


@dataclass
class Discovery:
    """What pytest collects for one plugin, and when it was computed."""

    plugin_id: str
    items: list[CollectedTest]
    errors: list[dict[str, Any]]
    fingerprint: tuple[tuple[str, int, int], ...]
    collected_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"plugin_id": self.plugin_id, "tests": [t.to_dict() for t in self.items],
                "errors": self.errors, "collected_at": self.collected_at}


@dataclass
class _Job:
    run: RunRecord
    limits: RunLimits
    allow_parallel: bool
    not_before: float = 0.0
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Future[RunRecord] | None = None


def _fingerprint(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Every Python file and pytest config under ``folder``, by size and mtime."""
    entries = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith((".", "__pycache__"))]
        for name in files:
            if name.endswith((".py", ".ini", ".cfg", ".toml")):
                path = Path(root, name)
                try:
                    stat = path.stat()
                except OSError:
                    continue
                entries.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


def _test_files(folder: Path) -> list[str]:
    """Files pytest would look at by its default ``python_files`` patterns."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith((".", "__pycache__"))]
        found += [str(Path(root, name).relative_to(folder)) for name in files
                  if name.endswith(".py") and (name.startswith("test_")
                                               or name.endswith("_test.py"))]
    return sorted(found)


def _file_part(wanted: str) -> str:
    return wanted.strip().removeprefix("./").split("::", 1)[0]


def _selects(nodeid: str, wanted: str) -> bool:
    wanted = wanted.strip().removeprefix("./")
    if nodeid == wanted or nodeid.startswith((wanted + "::", wanted + "[")):
        return True
    file, *parts = nodeid.split("::")
    if "::" not in wanted and file.startswith(wanted.rstrip("/") + "/"):
        return True  # a folder of the plugin
    return wanted == file or wanted in parts or wanted in (p.split("[", 1)[0] for p in parts)


def default_concurrency(cores: int | None = None) -> int:
    """Runs at once when ``[tests] concurrency`` is 0: twice the CPU cores, at most 8, never
    fewer than the cores. A plugin's suite spends much of its time waiting on what it
    drives (its app, servers, sockets, subprocesses): on a 2-core machine the 15 bundled
    suites took 54-60 s two at a time, 49 s three, 33-39 s four and 41 s six."""
    cores = cores or os.cpu_count() or 2
    return max(cores, min(2 * cores, 8))


class TestManager:
    """Discovers, queues, runs and records plugin tests; publishes live events."""

    __test__ = False

    def __init__(self, plugins: PluginManager, store: ResultStore, bus: EventBus,
                 work_dir: Path, settings: TestsSettings, window: bool = False):
        """``window``: a desktop window is open, so the runs yield the CPU to it by
        ``settings.nice`` (see testing/priority.py); without one they run as the app."""
        self.plugins = plugins
        self.store = store
        self.bus = bus
        self.settings = settings
        self.runner = PytestRunner(work_dir)
        self.runner.nice = settings.nice if window else 0
        # Runs up to this id are a previous process's: start() marks those left unfinished
        # as interrupted, never a run queued here before start() (a save in dev mode, a
        # caller that did not wait for the start).
        self._inherited_up_to = store.last_run_id()
        self.concurrency = settings.concurrency or default_concurrency()
        self._discoveries: dict[str, Discovery] = {}
        self._queue: list[tuple[int, int, int]] = []   # (-priority, seq, run id)
        self._jobs: dict[int, _Job] = {}
        self._running: dict[int, str] = {}               # run id -> plugin id
        self._in_flight: dict[int, str] = {}             # run id -> node id running now
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._housekeeping: asyncio.Task[None] | None = None

    # -- life cycle -----------------------------------------------------------------------
    async def start(self) -> None:
        interrupted = await asyncio.to_thread(self.store.mark_interrupted,
                                              up_to=self._inherited_up_to)
        if interrupted:
            log.warning("%d test run(s) were interrupted when the app last stopped",
                        interrupted)
        self._workers = [asyncio.get_running_loop().create_task(self._worker(i),
                                                                 name=f"test-worker-{i}")
                         for i in range(self.concurrency)]
        self._housekeeping = asyncio.get_running_loop().create_task(self._retention(),
                                                                     name="test-retention")

    async def stop(self) -> None:
        """Cancel what is queued and running; the store keeps every finished result."""
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        for job in list(self._jobs.values()):
            job.cancel.set()
        for worker in self._workers:
            worker.cancel()
        housekeeping = [self._housekeeping] if self._housekeeping is not None else []
        await asyncio.gather(*self._workers, *housekeeping, return_exceptions=True)
        for job in list(self._jobs.values()):
            if not job.run.status.finished:
                await self._finish(job, RunStatus.INTERRUPTED, "the app stopped")
        self._workers = []
        await self.runner.close()

    async def _retention(self) -> None:
        """Old runs go at start and then once a day (an app left open for weeks would
        otherwise keep everything); a failure is logged and tried again the next day."""
        while True:
            try:
                deleted = await asyncio.to_thread(self.store.enforce_retention,
                                                  self.settings.retention_days,
                                                  self.settings.retention_runs)
            except Exception:
                log.exception("enforcing the test result retention failed; next try in %s s",
                              RETENTION_INTERVAL)
            else:
                if deleted:
                    log.info("deleted %d old test run(s)", deleted)
            await asyncio.sleep(RETENTION_INTERVAL)

    # -- plugins and discovery ------------------------------------------------------------
    def testable(self) -> list[PluginRecord]:
        """Plugins whose manifest is valid (whatever their state: a failed plugin's tests
        are exactly the ones worth running)."""
        return [rec for rec in self.plugins.by_id.values() if rec.manifest is not None]

    def plugin_record(self, plugin_id: str) -> PluginRecord:
        """The record of a plugin whose tests can be discovered and run (see
        :meth:`testable`); cheap, no pytest involved.

        Raises TestSelectionError (subject ``"plugin"``) for an unknown id or a plugin whose
        manifest is invalid; the message lists the testable plugins.
        """
        rec = self.plugins.by_id.get(plugin_id)
        if rec is None or rec.manifest is None:
            known = ", ".join(sorted(r.id for r in self.testable())) or "none"
            raise TestSelectionError(f"unknown plugin '{plugin_id}' (known: {known})")
        return rec

    async def check_selection(self, plugin_id: str, test_id: str | None = None
                              ) -> list[str] | None:
        """Check a selection the way :meth:`submit` does, without queuing anything.

        ``test_id`` is anything ``submit`` accepts as a test: a node id, a file, a class,
        a test name (all its parametrised cases) or one case; None means the whole suite.
        Returns the node ids it stands for (None for the whole suite). Naming a test runs
        discovery (a pytest child, cached until a file of the plugin changes).

        Raises TestSelectionError: subject ``"plugin"`` for an unknown plugin or one
        without a tests folder, ``"test"`` when nothing collected matches ``test_id``.
        """
        return await self._selection(self.plugin_record(plugin_id),
                                     [test_id] if test_id is not None else None)

    async def _selection(self, rec: PluginRecord, tests: list[str] | None) -> list[str] | None:
        if tests:
            items, broken = await self._items_for(rec, tests)
            return self._resolve_selection(rec.id, tests, items, broken)
        if not self.tests_dir(rec).is_dir():
            raise TestSelectionError(f"plugin '{rec.id}' has no tests folder "
                                     f"({self.tests_dir(rec)})")
        return None

    def tests_dir(self, rec: PluginRecord) -> Path:
        assert rec.manifest is not None
        return rec.root / rec.manifest.tests.path

    async def discover(self, plugin_id: str, refresh: bool = False) -> Discovery:
        """What pytest collects for the plugin; cached until a file under it changes."""
        rec = self.plugin_record(plugin_id)
        tests = self.tests_dir(rec)
        if not tests.is_dir():
            raise TestSelectionError(f"plugin '{plugin_id}' has no tests folder ({tests})")
        fingerprint = await asyncio.to_thread(_fingerprint, rec.root)
        cached = self._discoveries.get(plugin_id)
        if cached is not None and cached.fingerprint == fingerprint and not refresh:
            return cached
        result: CollectResult = await self.runner.collect(
            plugin_id, rec.root, str(tests.relative_to(rec.root)))
        discovery = Discovery(plugin_id, result.items, result.errors, fingerprint)
        self._discoveries[plugin_id] = discovery
        await asyncio.to_thread(self.store.replace_collected, plugin_id, result.items)
        return discovery

    async def discover_all(self, refresh: bool = False) -> dict[str, Discovery]:
        """Discovery of every testable plugin with a tests folder, as many collections at
        once as the pool has workers."""
        gate = asyncio.Semaphore(self.concurrency)

        async def one(plugin_id: str) -> tuple[str, Discovery]:
            async with gate:
                return plugin_id, await self.discover(plugin_id, refresh)

        found = await asyncio.gather(*(one(rec.id) for rec in self.testable()
                                       if self.tests_dir(rec).is_dir()))
        return dict(found)

    # -- submitting -------------------------------------------------------------------------
    async def submit(self, plugin_id: str, tests: list[str] | None = None, *,
                     priority: Priority | str = Priority.MEDIUM, trigger: str = "manual",
                     timeout: float | None = None, reruns: int | None = None,
                     allow_parallel: bool = False, schedule_id: str | None = None,
                     precheck: bool = True) -> RunRecord:
        """Queue a run of a plugin's tests (all, or the given node ids / files).

        Test ids are checked against discovery, so a typo is a clear error, not an empty
        run. With ``precheck=False``, ids that name a file of the plugin
        (``tests/test_x.py[::...]``) go to pytest unchecked, as on pytest's own command
        line: no collection before the run, and a typo ends the run as an error with
        pytest's "not found". Returns the queued run; ``wait(run.id)`` waits for its end.
        """
        rec = self.plugin_record(plugin_id)
        assert rec.manifest is not None
        files = {_file_part(t) for t in tests or []}
        if not precheck and tests and all(f.endswith(".py") and (rec.root / f).is_file()
                                          for f in files):
            selection: list[str] | None = [t.strip().removeprefix("./") for t in tests]
        else:
            selection = await self._selection(rec, tests)
        limits = RunLimits(test_timeout=timeout or rec.manifest.tests.timeout,
                           run_timeout=self.settings.run_timeout,
                           reruns=reruns if reruns is not None
                           else rec.manifest.tests.reruns or self.settings.reruns)
        run = RunRecord(plugin_id=plugin_id, selection=selection, trigger=trigger,
                        priority=Priority.parse(priority), schedule_id=schedule_id)
        return await self._enqueue(run, limits, allow_parallel)

    async def _items_for(self, rec: PluginRecord, tests: list[str]
                         ) -> tuple[list[CollectedTest], list[str]]:
        """The collected tests that a selection is checked against, and the node ids of
        files that failed to collect (selecting one runs it, and pytest reports the error).

        Ids that name files of the plugin (``tests/test_x.py`` or ``tests/test_x.py::...``)
        need only those files collected: on a suite of thousands of tests that is the
        difference between a one-test run starting at once or after a full collection.
        Anything else (a bare test or class name) needs the whole suite's discovery.
        """
        files = sorted({_file_part(t) for t in tests})
        cached = self._discoveries.get(rec.id)
        fingerprint = await asyncio.to_thread(_fingerprint, rec.root)
        if cached is None or cached.fingerprint != fingerprint:
            if all(f.endswith(".py") and (rec.root / f).is_file() for f in files):
                result = await self.runner.collect(
                    rec.id, rec.root, str(self.tests_dir(rec).relative_to(rec.root)),
                    targets=files)
                return result.items, [e["nodeid"] for e in result.errors if e.get("nodeid")]
            cached = await self.discover(rec.id)
        return cached.items, [e["nodeid"] for e in cached.errors if e.get("nodeid")]

    @staticmethod
    def _resolve_selection(plugin_id: str, tests: list[str], items: list[CollectedTest],
                           broken: Sequence[str] = ()) -> list[str]:
        """Node ids for what the user named: every node-id prefix pytest accepts (a folder,
        a file, a class, a function with all its parametrised cases, one case), or a bare
        test or class name. Files that failed to collect are kept as they are named."""
        known = [t.nodeid for t in items] + [b for b in broken if b]
        chosen: list[str] = []
        for wanted in (t.strip() for t in tests):
            matches = [n for n in known if _selects(n, wanted)]
            if not matches:
                raise TestSelectionError(
                    f"no test '{wanted}' in plugin '{plugin_id}'; known ids look like "
                    f"{known[0] if known else '(none collected)'}", subject="test")
            chosen += [m for m in matches if m not in chosen]
        return chosen

    async def _enqueue(self, run: RunRecord, limits: RunLimits, allow_parallel: bool,
                       not_before: float = 0.0) -> RunRecord:
        run.status, run.queued_at = RunStatus.QUEUED, time.time()
        await asyncio.to_thread(self.store.create_run, run)
        assert run.id is not None
        job = _Job(run, limits, allow_parallel, not_before,
                   done=asyncio.get_running_loop().create_future())
        self._jobs[run.id] = job
        heapq.heappush(self._queue, (-int(run.priority), next(self._seq), run.id))
        self.bus.publish(RunQueued(run=run.to_dict()))
        self._wakeup.set()
        return run

    async def wait(self, run_id: int) -> RunRecord:
        """Wait for a queued or running run to finish; finished runs come from the store."""
        job = self._jobs.get(run_id)
        if job is not None and job.done is not None:
            return await asyncio.shield(job.done)
        run = await asyncio.to_thread(self.store.get_run, run_id)
        if run is None:
            raise TestSelectionError(f"no run with id {run_id}", subject="run")
        return run

    async def cancel(self, run_id: int) -> bool:
        """Cancel a queued or running run. False when it is unknown or already over."""
        job = self._jobs.get(run_id)
        if job is None or job.run.status.finished:
            return False
        job.cancel.set()
        if job.run.status is RunStatus.QUEUED:
            await self._finish(job, RunStatus.CANCELLED, "cancelled before it started")
        return True

    def queued(self) -> list[RunRecord]:
        return [self._jobs[rid].run for _, _, rid in sorted(self._queue)
                if rid in self._jobs]

    def in_flight(self) -> list[dict[str, Any]]:
        """The tests executing right now, one per running run."""
        return [{"run_id": rid, "plugin_name": self._running.get(rid), "test_name": nodeid}
                for rid, nodeid in self._in_flight.items()]

    def running(self) -> list[RunRecord]:
        return [self._jobs[rid].run for rid in self._running if rid in self._jobs]

    # -- the pool -----------------------------------------------------------------------------
    def _take(self) -> _Job | None:
        """The best queued job that may start now, or None."""
        busy = set(self._running.values())
        now = time.time()
        skipped = []
        chosen = None
        while self._queue:
            entry = heapq.heappop(self._queue)
            job = self._jobs.get(entry[2])
            if job is None or job.run.status is not RunStatus.QUEUED:
                continue
            if job.not_before > now or (job.run.plugin_id in busy and not job.allow_parallel):
                skipped.append(entry)
                continue
            chosen = job
            break
        for entry in skipped:
            heapq.heappush(self._queue, entry)
        return chosen

    async def _worker(self, index: int) -> None:
        while True:
            job = self._take()
            if job is None:
                self._wakeup.clear()
                # Retries wait for their time in the queue: sleep until the earliest one.
                waits = [j.not_before - time.time() for j in self._jobs.values()
                         if j.run.status is RunStatus.QUEUED and j.not_before]
                # wait_set, not wait_for: another worker's end can wake this one in the
                # turn that stop() cancels both (see core.waiting).
                await wait_set(self._wakeup, max(0.0, min(waits)) if waits else None)
                continue
            assert job.run.id is not None
            self._running[job.run.id] = job.run.plugin_id
            try:
                await self._execute(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug of ours must not kill the pool
                log.exception("test run %s failed inside the manager", job.run.id)
                await self._finish(job, RunStatus.ERROR, f"internal error: {exc}")
            finally:
                self._running.pop(job.run.id, None)
                self._in_flight.pop(job.run.id, None)
                self._wakeup.set()

    async def _execute(self, job: _Job) -> None:
        run = job.run
        assert run.id is not None
        run_id = run.id  # the closures below see it as an int
        rec = self.plugin_record(run.plugin_id)
        if not rec.root.is_dir():
            # Deleted or moved while the run waited (a dev session's folder swapped): said
            # so, not as pytest's traceback of a missing folder, and not retried.
            await self._finish(job, RunStatus.ERROR, f"the plugin folder {rec.root} is gone "
                                                     "(deleted or moved since the run was queued)")
            return
        run.status, run.started_at = RunStatus.RUNNING, time.time()
        await asyncio.to_thread(self.store.update_run, run)
        self.bus.publish(RunStarted(run=run.to_dict()))
        progress = RunProgress(len(run.selection or []))

        def emit(event: dict[str, Any]) -> None:
            kind = event["event"]
            if kind == "collected" and progress.collected(len(event.get("items", []))):
                self.bus.publish(TestsCollected(run_id=run_id, plugin_id=run.plugin_id,
                                                total=progress.total))
            elif kind == "test_start":
                self._in_flight[run_id] = event["nodeid"]
                self.bus.publish(TestStarted(run_id=run_id, plugin_id=run.plugin_id,
                                             nodeid=event["nodeid"]))
            elif kind == "test_end":
                self._in_flight.pop(run_id, None)

        def on_record(attempt: TestAttempt) -> None:
            progress.finished(attempt.nodeid)
            self.bus.publish(TestFinished(
                run_id=run_id, plugin_id=run.plugin_id, nodeid=attempt.nodeid,
                outcome=str(attempt.outcome), attempt=attempt.attempt,
                duration=attempt.duration, message=attempt.message,
                completed=progress.completed, total=progress.total))

        result: RunResult = await self.runner.run(
            run_id=run.id, plugin_id=run.plugin_id, plugin_root=rec.root,
            tests_path=str(self.tests_dir(rec).relative_to(rec.root)),
            selection=run.selection, limits=job.limits, emit=emit, cancel=job.cancel,
            on_record=on_record)
        pending = result.attempts
        await asyncio.to_thread(self.store.add_attempts, pending)
        # --continue-on-collection-errors runs the other files and pytest exits 1; plain
        # pytest stops at the errors with 2, which the run keeps, as pytest's own would.
        run.exit_code = (INTERRUPTED if result.collect_errors and result.exit_code == 1
                         else result.exit_code)
        status, error = self._status(result)
        no_test_ran = status is RunStatus.NO_TESTS
        if no_test_ran:
            status, error = await self._why_no_test_ran(rec, run, result)
        await self._finish(job, status, error, result)
        # Not retried: a test that ends the session, or files that yield no test, do so
        # again.
        if (status is RunStatus.ERROR and not result.cancelled and not no_test_ran
                and result.stopped_in_test is None):
            await self._maybe_retry(job, result)

    async def _why_no_test_ran(self, rec: PluginRecord, run: RunRecord, result: RunResult
                               ) -> tuple[RunStatus, str]:
        """The status and words of a run in which no test ran: what pytest exits 5 for."""
        skipped = [a for a in result.attempts
                   if a.phase == "collect" and a.outcome is Outcome.SKIPPED]
        if skipped:
            return RunStatus.NO_TESTS, (
                f"no test ran: {len(skipped)} test module(s) skipped while collected, "
                f"e.g. {skipped[0].nodeid}: {skipped[0].message}")
        if result.collected:
            return RunStatus.NO_TESTS, (
                f"no test ran although {len(result.collected)} were collected; check the "
                "plugin's pytest configuration (its addopts, e.g. --collect-only)")
        if run.selection:
            return RunStatus.NO_TESTS, (
                f"no test ran: {', '.join(run.selection[:3])} holds no test pytest collects")
        files = await asyncio.to_thread(_test_files, self.tests_dir(rec))
        if files:
            # A plugin whose test files yield nothing is broken (a config that points
            # elsewhere, a python_files typo), never green.
            return RunStatus.ERROR, (
                f"no tests were collected although {len(files)} test file(s) exist, e.g. "
                f"{files[0]}; check the plugin's pytest configuration")
        return RunStatus.NO_TESTS, "no tests were collected"

    @staticmethod
    def _status(result: RunResult) -> tuple[RunStatus, str | None]:
        finals = {nodeid: final_attempt(tries)
                  for (_, nodeid), tries in group_attempts(result.attempts).items()}
        if result.cancelled:
            return RunStatus.CANCELLED, "cancelled"
        if result.timed_out:
            return RunStatus.ERROR, "the run took longer than its timeout and was stopped"
        if result.infrastructure_error:
            return RunStatus.ERROR, result.infrastructure_error
        if result.collect_errors:
            first = result.collect_errors[0]
            files = ", ".join(sorted({e.get("file") or e.get("nodeid") or "?"
                                      for e in result.collect_errors}))
            return RunStatus.ERROR, (f"collection errors in {files}: "
                                     f"{first.get('message') or 'see the results'}")
        if result.unexplained_failure and not any(a.outcome in BAD_OUTCOMES
                                                  for a in finals.values()):
            # pytest said tests failed (e.g. pytest.exit(returncode=1) in a hook) while
            # none ran that shows it: failed, as pytest's exit code says, not "no tests".
            return RunStatus.FAILED, result.unexplained_failure
        if not finals:
            return RunStatus.NO_TESTS, "no tests were collected"
        if all(a.phase == "collect" or a.outcome is Outcome.NOT_RUN for a in finals.values()):
            # Modules that skipped themselves, tests collected but never run (addopts with
            # --collect-only): pytest exits 5 or says nothing ran; never green.
            return RunStatus.NO_TESTS, "no test ran"
        if any(a.outcome in BAD_OUTCOMES for a in finals.values()):
            return RunStatus.FAILED, None
        if result.unexplained_failure:
            return RunStatus.FAILED, result.unexplained_failure
        return RunStatus.PASSED, None

    async def _finish(self, job: _Job, status: RunStatus, error: str | None,
                      result: RunResult | None = None) -> None:
        run = job.run
        run.status, run.error, run.finished_at = status, error, time.time()
        if result is not None:
            run.counts = self._counts(result.attempts)
        await asyncio.to_thread(self.store.update_run, run)
        self._jobs.pop(run.id or -1, None)
        self.bus.publish(RunFinished(run=run.to_dict()))
        if job.done is not None and not job.done.done():
            job.done.set_result(run)

    _counts = staticmethod(run_counts)

    async def _maybe_retry(self, job: _Job, result: RunResult) -> None:
        """Infrastructure failures get another run after an exponential, jittered delay;
        a test failure or a collection error never does (that would hide regressions)."""
        run = job.run
        if (run.attempt >= self.settings.retry_attempts or result.collect_errors
                or run.exit_code == USAGE_ERROR):
            return  # a usage error (a test id pytest cannot find) fails the same way again
        redo = sorted({a.nodeid for a in result.attempts
                       if a.outcome in (Outcome.CRASHED, Outcome.TIMED_OUT, Outcome.NOT_RUN)})
        delay = min(self.settings.retry_cap,
                    self.settings.retry_base * self.settings.retry_factor ** (run.attempt - 1))
        delay *= random.uniform(0.8, 1.2)
        retry = RunRecord(plugin_id=run.plugin_id, selection=redo or run.selection,
                          trigger="retry", priority=run.priority, attempt=run.attempt + 1,
                          parent_run_id=run.id, schedule_id=run.schedule_id)
        log.warning("run %s of %s ended with an infrastructure error (%s); retry %d in %.1f s",
                    run.id, run.plugin_id, run.error, retry.attempt, delay)
        await self._enqueue(retry, job.limits, job.allow_parallel, time.time() + delay)
