"""The test manager with real pytest children, a real SQLite store and the real bus."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import psutil
import pytest
import pytest_asyncio

from plexichat_desktop.core.events import EventBus
from plexichat_desktop.core.settings import Settings, TestsSettings
from plexichat_desktop.plugins.manager import PluginManager
from plexichat_desktop.testing.events import (
    RunFinished,
    RunQueued,
    RunStarted,
    TestFinished,
    TestStarted,
)
from plexichat_desktop.testing.manager import (
    TestManager,
    TestSelectionError,
    default_concurrency,
)
from plexichat_desktop.testing.models import Outcome, Priority, RunRecord, RunStatus
from plexichat_desktop.testing.runner import PytestRunner
from plexichat_desktop.testing.store import ResultStore
from tests.conftest import FIXTURES, write_priority_plugin
from tests.shared_runner import MODULE_LOOP, module_runner  # noqa: F401 (a fixture)

SUITES = FIXTURES / "suites"
pytestmark = pytest.mark.asyncio


def make_manager(home, plugin_dirs, window: bool = False, **tests_settings
                 ) -> tuple[TestManager, EventBus]:
    settings = Settings(tests=TestsSettings(**tests_settings))
    bus = EventBus()
    plugins = PluginManager(paths=home, settings=settings, bus=bus, bundled_dir=None,
                            extra_dirs=list(plugin_dirs), include_installed=False)
    plugins.discover()
    store = ResultStore(home.data_dir / "tests.sqlite3")
    return TestManager(plugins, store, bus, home.cache_dir / "runs", settings.tests,
                       window=window), bus


MakeManager = Callable[..., Awaitable[tuple[TestManager, EventBus]]]


@contextlib.asynccontextmanager
async def started_managers(home, runner: PytestRunner | None = None
                           ) -> AsyncIterator[MakeManager]:
    """``make(*plugin_dirs, **tests_settings)``: a started manager of the test's own (its
    store, bus, plugins and settings), stopped at the end; with ``runner``, its tests run
    through that runner instead of one of its own."""
    made: list[TestManager] = []

    async def make(*plugin_dirs: Path, **tests_settings) -> tuple[TestManager, EventBus]:
        manager, bus = make_manager(home, plugin_dirs or [SUITES], **tests_settings)
        if runner is not None:
            manager.runner = runner
        await manager.start()
        made.append(manager)
        return manager, bus

    try:
        yield make
    finally:
        for manager in made:
            await manager.stop()
            manager.store.close()


@pytest_asyncio.fixture
async def manager_factory(home):
    async with started_managers(home) as make:
        yield make


@pytest_asyncio.fixture(loop_scope="module")
async def shared_manager_factory(home, module_runner):  # noqa: F811 (the fixture)
    """``manager_factory`` for a test on the module's loop (MODULE_LOOP), its managers'
    tests run through the module's runner (tests/shared_runner.py): one fork server for
    the module."""
    async with started_managers(home, module_runner) as make:
        yield make


def finals(manager: TestManager, run_id: int) -> dict[str, object]:
    out = {}
    for attempt in manager.store.attempts_for_run(run_id):
        out[attempt.nodeid] = attempt
    return out


def plain_pytest_outcomes(suite: Path, test_file: str) -> dict[str, str]:
    """Per-test outcomes as plain pytest reports them in verbose mode."""
    empty_ini = suite / ".." / ".." / "empty-pytest.ini"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-c",
         str(empty_ini.resolve()), f"--rootdir={suite}", test_file],
        cwd=suite, capture_output=True, text=True, timeout=120,
        env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": "/usr/bin:/bin"})
    words: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        match = re.match(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b", line)
        if match:
            words.setdefault(match[1], []).append(match[2])
    mapping = {"PASSED": "passed", "FAILED": "failed", "ERROR": "error",
               "SKIPPED": "skipped", "XFAIL": "xfailed", "XPASS": "xpassed"}
    out = {}
    for nodeid, seen in words.items():
        # A teardown error after a passing call is an error; after a failing call the
        # failure stands (pytest counts both; one outcome per test keeps the first).
        first = mapping[seen[0]]
        out[nodeid] = "error" if first == "passed" and "ERROR" in seen else first
    return out


@MODULE_LOOP
async def test_outcomes_match_plain_pytest(shared_manager_factory):
    manager, _ = await shared_manager_factory()
    run = await manager.submit("mixed_suite")
    done = await asyncio.wait_for(manager.wait(run.id), 60)
    assert done.status is RunStatus.FAILED
    ours = {n: str(a.outcome) for n, a in finals(manager, run.id).items()
            if n.startswith("tests/test_mixed.py")}
    theirs = plain_pytest_outcomes(SUITES / "mixed", "tests/test_mixed.py")
    assert len(theirs) == 17
    assert ours == theirs
    assert set(ours.values()) == {"passed", "failed", "error", "skipped", "xfailed", "xpassed"}


@MODULE_LOOP
async def test_original_plexichat_style_tests(shared_manager_factory):
    manager, _ = await shared_manager_factory()
    run = await manager.submit("mixed_suite", ["tests/test_plexichat_style.py"])
    await manager.wait(run.id)
    got = {n.split("::")[1]: a for n, a in finals(manager, run.id).items()}
    assert {k: str(v.outcome) for k, v in got.items()} == {
        "test_async_passes": "passed", "test_async_fails": "failed",
        "test_returns_success": "passed", "test_returns_failure": "failed",
        "test_sync_returns_failure": "failed"}
    assert "the API answered 503" in got["test_returns_failure"].message
    assert "no connection" in got["test_sync_returns_failure"].message


@MODULE_LOOP
async def test_details_are_kept(shared_manager_factory):
    manager, _ = await shared_manager_factory()
    run = await manager.submit("mixed_suite", ["test_fails", "TestGroup"])
    await manager.wait(run.id)
    got = finals(manager, run.id)
    assert set(got) == {"tests/test_mixed.py::test_fails",
                        "tests/test_mixed.py::TestGroup::test_in_class",
                        "tests/test_mixed.py::TestGroup::test_param_in_class[0]",
                        "tests/test_mixed.py::TestGroup::test_param_in_class[1]"}
    failing = got["tests/test_mixed.py::test_fails"]
    assert failing.message == "AssertionError: lists differ"
    assert "assert [1, 2] == [1, 3]" in failing.longrepr and failing.phase == "call"
    assert "hello from stdout" in got["tests/test_mixed.py::TestGroup::test_in_class"].stdout


@MODULE_LOOP
async def test_every_fault_is_survived_and_reported(shared_manager_factory):
    manager, _ = await shared_manager_factory()
    # 6 s: test_hangs waits it out, and test_prints_50_mb must finish within it; at 2 s it
    # timed out on a loaded machine (pytest capturing 50 MB), one restart too many.
    run = await manager.submit("fault_suite", timeout=6)
    done = await asyncio.wait_for(manager.wait(run.id), 120)
    got = {n.split("::")[1]: a for n, a in finals(manager, run.id).items()}
    outcome = {name: str(a.outcome) for name, a in got.items()}
    assert outcome == {
        "test_first_passes": "passed", "test_hangs": "timed_out",
        "test_after_hang_passes": "passed", "test_segfaults": "crashed",
        "test_after_segfault_passes": "passed", "test_exits_hard": "crashed",
        "test_after_exit_passes": "passed", "test_prints_50_mb": "failed",
        "test_forks_a_survivor": "passed", "test_infinite_recursion": "failed",
        "test_non_utf8_output": "failed", "test_last_passes": "passed"}
    assert done.status is RunStatus.FAILED
    assert "took longer than 6 s" in got["test_hangs"].message
    assert "test_hangs" in got["test_hangs"].longrepr  # the stack dump names the test
    assert "SIGSEGV" in got["test_segfaults"].message
    assert "exit code 3" in got["test_exits_hard"].message
    assert len(got["test_prints_50_mb"].stdout) < 70_000
    assert "truncated" in got["test_prints_50_mb"].stdout
    assert "RecursionError" in got["test_infinite_recursion"].message
    survivors = [p for p in psutil.process_iter(["cmdline"])
                 if "fault-survivor" in " ".join(p.info["cmdline"] or [])]
    assert survivors == []


@MODULE_LOOP
async def test_collection_errors_are_reported_per_file(shared_manager_factory):
    manager, _ = await shared_manager_factory()
    discovery = await manager.discover("broken_suite")
    assert [t.nodeid for t in discovery.items] == ["tests/test_fine.py::test_still_runs"]
    assert len(discovery.errors) == 1
    assert discovery.errors[0]["nodeid"] == "tests/test_syntax_error.py"
    assert "SyntaxError" in discovery.errors[0]["longrepr"]
    run = await manager.submit("broken_suite")
    done = await manager.wait(run.id)
    assert done.status is RunStatus.ERROR
    assert "tests/test_syntax_error.py" in done.error
    assert str(finals(manager, run.id)["tests/test_fine.py::test_still_runs"].outcome) == \
        "passed"


@MODULE_LOOP
async def test_a_conftest_that_raises(shared_manager_factory):
    manager, _ = await shared_manager_factory()
    run = await manager.submit("bad_conftest_suite")
    done = await manager.wait(run.id)
    assert done.status is RunStatus.ERROR
    assert "conftest exploded" in done.error or "conftest" in done.error


@MODULE_LOOP
async def test_bad_selections_are_clear_errors(shared_manager_factory):
    manager, _ = await shared_manager_factory()
    with pytest.raises(TestSelectionError, match="unknown plugin 'ghost'"):
        await manager.submit("ghost")
    with pytest.raises(TestSelectionError, match="no test 'nope' in plugin 'mixed_suite'"):
        await manager.submit("mixed_suite", ["nope"])
    with pytest.raises(TestSelectionError, match="has no tests folder"):
        await manager.submit("no_tests_suite")
    with pytest.raises(ValueError, match="priority must be one of"):
        await manager.submit("mixed_suite", priority="urgent")


@MODULE_LOOP
async def test_selections_are_checked_without_queuing(shared_manager_factory):
    manager, _ = await shared_manager_factory()
    assert manager.plugin_record("mixed_suite").id == "mixed_suite"
    assert await manager.check_selection("mixed_suite") is None
    assert await manager.check_selection("mixed_suite", "test_param") == [
        "tests/test_mixed.py::test_param[one]", "tests/test_mixed.py::test_param[two]",
        "tests/test_mixed.py::test_param[three]"]
    cases = [(("ghost",), "plugin", "unknown plugin 'ghost' (known: "),
             (("no_tests_suite",), "plugin", "has no tests folder"),
             (("no_tests_suite", "test_x"), "plugin", "has no tests folder"),
             (("mixed_suite", "nope"), "test", "no test 'nope' in plugin 'mixed_suite'")]
    for args, subject, message in cases:
        with pytest.raises(TestSelectionError, match=re.escape(message)) as caught:
            await manager.check_selection(*args)
        assert caught.value.subject == subject, args
    with pytest.raises(TestSelectionError) as caught:
        manager.plugin_record("ghost")
    assert caught.value.subject == "plugin"
    assert manager.queued() == [] and manager.store.count_runs() == 0


@MODULE_LOOP
async def test_discovery_is_cached_until_a_file_changes(shared_manager_factory, tmp_path):
    shutil.copytree(SUITES / "mixed", tmp_path / "suites" / "mixed")
    manager, _ = await shared_manager_factory(tmp_path / "suites")
    first = await manager.discover("mixed_suite")
    assert len(first.items) == 22
    param = next(t for t in first.items if t.name == "test_param[two]")
    assert (param.file, param.cls) == ("tests/test_mixed.py", None)
    assert param.line is not None and param.line > 1
    assert next(t for t in first.items if t.name == "test_in_class").cls == "TestGroup"
    assert await manager.discover("mixed_suite") is first
    new_test = tmp_path / "suites" / "mixed" / "tests" / "test_new.py"
    new_test.write_text("def test_added():\n    pass\n")
    second = await manager.discover("mixed_suite")
    assert second is not first and len(second.items) == 23
    assert {t.nodeid for t in manager.store.collected("mixed_suite")} == \
        {t.nodeid for t in second.items}


async def test_runs_at_once_default_to_twice_the_cores_up_to_eight(home):
    # The suites wait on what they drive much of the time (README: the bundled ones on 2
    # cores); 0 in [tests] concurrency means this default, a number means that number.
    assert [default_concurrency(n) for n in (1, 2, 3, 4, 6, 8, 16)] == [2, 4, 6, 8, 8, 8, 16]
    for setting, expected in ((0, default_concurrency()), (3, 3)):
        manager, _ = make_manager(home, [], concurrency=setting)
        manager.store.close()
        assert manager.concurrency == expected


async def test_runs_yield_the_cpu_in_every_way_a_session_starts(home, tmp_path):
    """[tests] nice with a window: forked, warm or cold, a session runs its tests below
    the app's CPU priority, and leads a scheduler group of its own (Linux autogroup)
    lowered the same, so that a run yields the CPU to the window; the app keeps its own."""
    report = tmp_path / "priority.txt"
    suites = write_priority_plugin(tmp_path / "suites", report)
    before = os.nice(0)
    manager, _ = make_manager(home, [suites], window=True, nice=7)
    runner = manager.runner
    await manager.start()
    try:
        for mode in ("fork", "warm", "cold"):
            runner.fork = mode == "fork"
            runner.warm = mode != "cold"
            if mode == "warm":
                runner._replenish()
                assert runner._warming is not None
                await runner._warming
            else:
                await runner._drop_warm()  # the one the warm run left ready
            run = await manager.wait((await manager.submit("prio")).id)
            assert run.counts.get("passed") == 1, (mode, run.counts)
    finally:
        await manager.stop()
        manager.store.close()
    rows = [line.split() for line in report.read_text().splitlines()]
    assert [row[0] for row in rows] == ["fork", "warm", "cold"]
    for how, nice, group, leads in rows:
        assert int(nice) == min(before + 7, 19), how
        assert group in ("-", "7") and leads == "True", (how, group, leads)
    assert os.nice(0) == before


async def test_only_a_window_lowers_test_runs_by_the_settings_nice(home):
    def lowered(window: bool, **tests_settings: int) -> int:
        settings = Settings(tests=TestsSettings(**tests_settings))
        store = ResultStore(home.data_dir / "nice.sqlite3")
        try:
            manager = TestManager(PluginManager(paths=home, settings=settings, bus=EventBus(),
                                                bundled_dir=None, include_installed=False),
                                  store, EventBus(), home.cache_dir / "runs", settings.tests,
                                  window=window)
            return manager.runner.nice
        finally:
            store.close()

    assert (lowered(True), lowered(False)) == (10, 0)
    assert (lowered(True, nice=3), lowered(True, nice=0), lowered(False, nice=3)) == (3, 0, 0)


async def test_a_collection_in_flight_ends_when_the_manager_stops(home, tmp_path):
    # The Tests dock and the /tests pages collect in the background: quitting meanwhile
    # must not wait for pytest (the server's stop waited out the request), and what was
    # collected before stays stored.
    from plexichat_desktop.testing.runner import RunnerClosed

    suites = tmp_path / "suites"
    shutil.copytree(SUITES / "mixed", suites / "mixed")
    manager, _ = make_manager(home, [suites])
    await manager.start()
    try:
        before = {t.nodeid for t in (await manager.discover("mixed_suite")).items}
        started = tmp_path / "collecting"
        (suites / "mixed" / "tests" / "test_slow_to_collect.py").write_text(textwrap.dedent(f"""
            import os, pathlib, time
            pathlib.Path({str(started)!r}).write_text(str(os.getpid()))
            time.sleep(120)
        """))
        collecting = asyncio.ensure_future(manager.discover("mixed_suite"))
        async with asyncio.timeout(60):
            while not (started.exists() and started.read_text()):
                await asyncio.sleep(0.02)
        child = psutil.Process(int(started.read_text()))
        async with asyncio.timeout(30):  # the collection alone would take 120 s
            await manager.stop()
            with pytest.raises(RunnerClosed, match="stopping"):
                await collecting
        assert {t.nodeid for t in manager.store.collected("mixed_suite")} == before
        # Killed at the stop; on a loaded machine the kernel may still be tearing it down.
        gone, _ = psutil.wait_procs([child], timeout=10)
        assert gone or child.status() == psutil.STATUS_ZOMBIE
        with pytest.raises(RunnerClosed):
            await manager.discover("mixed_suite", refresh=True)
    finally:
        await manager.stop()
        manager.store.close()


@MODULE_LOOP
async def test_events_carry_progress(shared_manager_factory):
    manager, bus = await shared_manager_factory()
    sub = bus.subscribe(name="test")
    run = await manager.submit("mixed_suite", ["test_param"])
    await manager.wait(run.id)
    events = []
    while not sub.queue.empty():
        events.append(sub.queue.get_nowait())
    kinds = [type(e) for e in events]
    assert kinds[0] is RunQueued and kinds[1] is RunStarted and kinds[-1] is RunFinished
    assert kinds.count(TestStarted) == 3
    finished = [e for e in events if isinstance(e, TestFinished)]
    assert [(e.completed, e.total) for e in finished] == [(1, 3), (2, 3), (3, 3)]
    assert events[-1].run["counts"]["failed"] == 1


@MODULE_LOOP
async def test_same_plugin_never_runs_twice_at_once(shared_manager_factory):
    manager, bus = await shared_manager_factory(concurrency=2)
    sub = bus.subscribe((RunStarted, RunFinished))
    first = await manager.submit("mixed_suite", ["test_passes"])
    second = await manager.submit("mixed_suite", ["test_passes"])
    await manager.wait(first.id)
    await manager.wait(second.id)
    order = []
    while not sub.queue.empty():
        event = sub.queue.get_nowait()
        order.append((type(event).__name__, event.run["id"]))
    assert order == [("RunStarted", first.id), ("RunFinished", first.id),
                     ("RunStarted", second.id), ("RunFinished", second.id)]


@MODULE_LOOP
async def test_priority_order_and_fifo_within_a_level(shared_manager_factory):
    manager, bus = await shared_manager_factory(concurrency=1)
    sub = bus.subscribe(RunStarted)
    blocker = await manager.submit("fault_suite", ["test_hangs"], timeout=60)
    await asyncio.wait_for(sub.get(), 30)  # the single worker is now busy
    low = await manager.submit("mixed_suite", ["test_passes"], priority="low")
    medium_1 = await manager.submit("broken_suite", priority=Priority.MEDIUM)
    medium_2 = await manager.submit("mixed_suite", ["test_fails"], priority="medium",
                                    allow_parallel=True)
    critical = await manager.submit("mixed_suite", ["test_raises"], priority="critical",
                                    allow_parallel=True)
    # All four are queued: free the worker now instead of waiting out a hang's timeout.
    assert await manager.cancel(blocker.id)
    for run in (blocker, low, medium_1, medium_2, critical):
        await asyncio.wait_for(manager.wait(run.id), 60)
    started = []
    while not sub.queue.empty():
        started.append(sub.queue.get_nowait().run["id"])
    assert started == [critical.id, medium_1.id, medium_2.id, low.id]


@MODULE_LOOP
async def test_cancel_queued_and_running(shared_manager_factory):
    manager, bus = await shared_manager_factory(concurrency=1)
    sub = bus.subscribe(TestStarted)
    running = await manager.submit("fault_suite", ["test_hangs"], timeout=60)
    queued = await manager.submit("mixed_suite", ["test_passes"])
    await asyncio.wait_for(sub.get(), 30)
    assert await manager.cancel(queued.id)
    assert (await manager.wait(queued.id)).status is RunStatus.CANCELLED
    assert await manager.cancel(running.id)
    done = await asyncio.wait_for(manager.wait(running.id), 15)
    assert done.status is RunStatus.CANCELLED
    assert str(finals(manager, running.id)["tests/test_faults.py::test_hangs"].outcome) == \
        "not_run"
    assert not await manager.cancel(running.id)


@MODULE_LOOP
async def test_reruns_detect_flaky_tests(shared_manager_factory, tmp_path):
    suite = tmp_path / "suites" / "flaky"
    (suite / "tests").mkdir(parents=True)
    (suite / "plugin.toml").write_text(
        'id = "flaky_suite"\nname = "Flaky"\nversion = "1.0.0"\nentry = "flaky_pkg:P"\n')
    marker = tmp_path / "first-try-done"
    (suite / "tests" / "test_flaky.py").write_text(textwrap.dedent(f"""
        from pathlib import Path

        def test_fails_once():
            marker = Path({str(marker)!r})
            if not marker.exists():
                marker.write_text("x")
                assert False, "first try fails"

        def test_always_fails():
            assert False
        """))
    manager, _ = await shared_manager_factory(tmp_path / "suites")
    run = await manager.submit("flaky_suite", reruns=2)
    done = await manager.wait(run.id)
    attempts = manager.store.attempts_for_run(run.id)
    by_test: dict[str, list[str]] = {}
    for a in attempts:
        by_test.setdefault(a.nodeid.split("::")[1], []).append(f"{a.attempt}:{a.outcome}")
    assert by_test == {"test_fails_once": ["1:failed", "2:passed"],
                       "test_always_fails": ["1:failed", "2:failed", "3:failed"]}
    assert done.counts["flaky"] == 1 and done.status is RunStatus.FAILED


def dying_suite(folder: Path) -> None:
    """A plugin ``dies_suite`` in ``folder`` whose pytest session dies while it starts
    (exit code 7): an infrastructure error, retried by the manager."""
    suite = folder / "dies"
    (suite / "tests").mkdir(parents=True)
    (suite / "plugin.toml").write_text(
        'id = "dies_suite"\nname = "Dies"\nversion = "1.0.0"\nentry = "dies_pkg:P"\n')
    (suite / "tests" / "conftest.py").write_text("import os\nos._exit(7)\n")
    (suite / "tests" / "test_x.py").write_text("def test_x():\n    pass\n")


@MODULE_LOOP
async def test_infrastructure_errors_are_retried_with_backoff(shared_manager_factory, tmp_path):
    dying_suite(tmp_path / "suites")
    manager, bus = await shared_manager_factory(tmp_path / "suites", retry_base=0.05,
                                         retry_factor=2, retry_attempts=3)
    sub = bus.subscribe(RunFinished)
    await manager.submit("dies_suite")
    runs = [(await asyncio.wait_for(sub.get(), 30)).run for _ in range(3)]
    assert [r["attempt"] for r in runs] == [1, 2, 3]
    assert all(r["status"] == "error" for r in runs)
    assert "exit code 7" in runs[0]["error"]
    assert runs[1]["parent_run_id"] == runs[0]["id"]
    assert runs[2]["trigger"] == "retry"
    await asyncio.sleep(0.3)
    assert manager.store.count_runs("dies_suite") == 3  # no fourth attempt


@MODULE_LOOP
async def test_test_failures_are_never_retried(shared_manager_factory):
    manager, _ = await shared_manager_factory(retry_base=0.01)
    run = await manager.submit("mixed_suite", ["test_fails"])
    await manager.wait(run.id)
    await asyncio.sleep(0.2)
    assert manager.store.count_runs("mixed_suite") == 1


async def test_a_run_killed_with_the_app_is_marked_interrupted(home, tmp_path):
    import os
    import signal
    import time

    env = {**os.environ, "PLEXICHAT_DESKTOP_HOME": str(home.config_dir.parent),
           "PLEXICHAT_DESKTOP_PLUGINS_PATH": str(SUITES)}
    proc = subprocess.Popen([sys.executable, "-m", "plexichat_desktop", "test",
                             "fault_suite", "--timeout", "60"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    db = home.data_dir / "tests.sqlite3"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if db.exists():
                with ResultStore(db) as store:
                    runs = store.list_runs("fault_suite")
                    if runs and runs[0].status is RunStatus.RUNNING:
                        break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # well inside test_hangs
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    # The pytest session runs in a process group of its own, so the app's death does not
    # end it, and after a crash nobody enforces its timeout: the fork server, seeing the
    # app gone, ends it (it was in test_hangs). Nothing may be left writing to the home.
    left = _writing_under(home.cache_dir)
    deadline = time.monotonic() + 30
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        left = _writing_under(home.cache_dir)
    for leftover in left:
        leftover.kill()
    assert not left, [p.info for p in left]
    manager, _ = make_manager(home, [SUITES])
    await manager.start()
    await manager.stop()
    run = manager.store.list_runs("fault_suite")[0]
    assert run.status is RunStatus.INTERRUPTED
    assert run.error
    manager.store.close()


async def test_a_run_queued_before_the_start_is_not_taken_for_an_old_one(home, caplog):
    """start() marks what a previous process left unfinished as interrupted; a run queued
    on this manager before its start (the app answers before its test manager runs) is
    this process's own: not counted, not marked, and it runs."""
    with ResultStore(home.data_dir / "tests.sqlite3") as store:  # the old process's
        old = store.create_run(RunRecord("mixed_suite", status=RunStatus.RUNNING))
    manager, _ = make_manager(home, [SUITES])
    try:
        early = await manager.submit("mixed_suite", ["test_passes"])
        with caplog.at_level(logging.WARNING, logger="plexichat_desktop.testing.manager"):
            await manager.start()
        assert "1 test run(s) were interrupted" in caplog.text, caplog.text
        ended = await manager.wait(early.id)
        assert ended.status is RunStatus.PASSED, ended
        assert manager.store.get_run(old).status is RunStatus.INTERRUPTED
    finally:
        await manager.stop()
        manager.store.close()


async def test_a_run_whose_plugin_folder_went_away_says_so(home, tmp_path):
    """A run queued before its plugin's folder was deleted (a dev session's folder
    swapped by a script) ended with the fork server's traceback of a missing folder as
    its error, and was retried."""
    from plexichat_desktop.plugins.scaffold import scaffold_plugin

    root = scaffold_plugin("vanishing", tmp_path / "plugins")
    manager, _ = make_manager(home, [tmp_path / "plugins"])
    await manager.start()
    try:
        run = await manager.submit("vanishing", ["tests/test_vanishing.py"], precheck=False)
        shutil.rmtree(root)
        done = await asyncio.wait_for(manager.wait(run.id), 60)
        assert done.status is RunStatus.ERROR
        assert done.error == (f"the plugin folder {root} is gone (deleted or moved since "
                              "the run was queued)")
        assert manager.store.list_runs("vanishing", status=RunStatus.QUEUED) == []
    finally:
        await manager.stop()
        manager.store.close()


async def test_the_runs_of_another_process_still_going_are_left_to_it(home, caplog):
    """``plexichat-desktop test`` beside the running app (one result store) marked the
    app's runs in flight and its queued retries "interrupted: the app stopped"; only the
    runs of a process that is gone are."""
    store_path = home.data_dir / "tests.sqlite3"
    script = textwrap.dedent(f"""
        import sys
        from plexichat_desktop.testing.models import RunRecord, RunStatus
        from plexichat_desktop.testing.store import ResultStore

        store = ResultStore({str(store_path)!r})
        print(store.create_run(RunRecord("mixed_suite", status=RunStatus.RUNNING)),
              flush=True)
        sys.stdin.read()  # alive until the test closes its stdin
    """)
    other = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None
        theirs = int(other.stdout.readline())
        manager, _ = make_manager(home, [SUITES])
        with caplog.at_level(logging.WARNING, logger="plexichat_desktop.testing.manager"):
            await manager.start()
        await manager.stop()
        assert "interrupted" not in caplog.text, caplog.text
        assert manager.store.get_run(theirs).status is RunStatus.RUNNING
        manager.store.close()
    finally:
        assert other.stdin is not None
        other.stdin.close()
        other.wait(30)
    manager, _ = make_manager(home, [SUITES])  # that process is gone now
    await manager.start()
    await manager.stop()
    assert manager.store.get_run(theirs).status is RunStatus.INTERRUPTED
    manager.store.close()


def _writing_under(folder: Path) -> list[psutil.Process]:
    """Live processes with a file under ``folder`` open (a forked pytest session has the
    fork server's command line, so that does not tell)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            if process.status() != psutil.STATUS_ZOMBIE and any(
                    f.path.startswith(str(folder)) for f in process.open_files()):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@MODULE_LOOP
async def test_results_survive_in_the_store(shared_manager_factory):
    manager, _ = await shared_manager_factory()
    run = await manager.submit("mixed_suite", ["test_param"])
    await manager.wait(run.id)
    stored = manager.store.get_run(run.id)
    assert stored.status is RunStatus.FAILED and stored.counts["passed"] == 2
    stats = manager.store.statistics("mixed_suite")
    assert stats["total"] == 3 and stats["counts"][Outcome.FAILED.value] == 1


async def test_the_next_run_starts_in_the_warm_child(manager_factory, tmp_path):
    plugin = tmp_path / "plugins" / "warm"
    (plugin / "tests").mkdir(parents=True)
    (plugin / "plugin.toml").write_text(
        'id = "warm_suite"\nname = "Warm"\nversion = "1.0.0"\nentry = "warm_pkg:P"\n')
    pids = tmp_path / "pids.txt"
    (plugin / "tests" / "test_pid.py").write_text(textwrap.dedent(f"""
        import os

        def test_records_its_process():
            with open({str(pids)!r}, "a") as out:
                out.write(f"{{os.getpid()}} {{os.getcwd()}}\\n")

        def test_fails():
            assert 1 == 2
        """))
    manager, _ = await manager_factory(tmp_path / "plugins")
    runner = manager.runner
    runner.fork = False  # the fallback where fork is missing: one warm child at a time

    async def run_once() -> dict[str, str]:
        run = await manager.submit("warm_suite")
        done = await manager.wait(run.id)
        assert done.counts == {"passed": 1, "failed": 1, "total": 2}
        return {a.nodeid.split("::")[1]: str(a.outcome)
                for a in manager.store.attempts_for_run(run.id)}

    first = await run_once()  # cold: nothing was warm yet
    async with asyncio.timeout(30):
        while runner._warm is None:
            await asyncio.sleep(0.02)
    warm_pid = runner._warm.proc.pid
    assert await run_once() == first
    pid, cwd = pids.read_text().splitlines()[-1].split()
    assert int(pid) == warm_pid and Path(cwd) == plugin  # ran in the warm child, in place

    # A warm child that died meanwhile: the run starts cold instead, same results.
    async with asyncio.timeout(30):
        while runner._warm is None:
            await asyncio.sleep(0.02)
    runner._warm.proc.kill()
    await runner._warm.proc.wait()
    assert await run_once() == first

    await manager.stop()
    assert runner._warm is None  # no child left behind


async def test_runs_are_forked_from_the_fork_server(manager_factory, tmp_path):
    plugin = tmp_path / "plugins" / "forked"
    (plugin / "tests").mkdir(parents=True)
    (plugin / "plugin.toml").write_text(
        'id = "forked_suite"\nname = "Forked"\nversion = "1.0.0"\nentry = "forked_pkg:P"\n')
    pids = tmp_path / "pids.txt"
    (plugin / "tests" / "test_pid.py").write_text(textwrap.dedent(f"""
        import os
        import sys

        def test_a_sees_a_pristine_process():
            # The second run's fork must not see what the first run's test left behind.
            assert "leaked_by_a_test" not in sys.modules

        def test_b_records_its_process_and_leaks():
            with open({str(pids)!r}, "a") as out:
                out.write(f"{{os.getpid()}} {{os.getppid()}} {{os.getpgid(0)}} {{os.getcwd()}}\\n")
            sys.modules["leaked_by_a_test"] = sys
        """))
    manager, _ = await manager_factory(tmp_path / "plugins")
    runner = manager.runner
    assert runner.fork

    async def run_once() -> tuple[int, int, int, Path]:
        run = await manager.wait((await manager.submit("forked_suite")).id)
        assert run.status is RunStatus.PASSED, run.error
        pid, ppid, pgid, cwd = pids.read_text().splitlines()[-1].split()
        return int(pid), int(ppid), int(pgid), Path(cwd)

    first, second = await run_once(), await run_once()
    server = runner._fork_server
    assert server is not None and server.alive
    for pid, ppid, pgid, cwd in (first, second):
        # A fork of the server, in a process group of its own, in the plugin folder.
        assert ppid == server.proc.pid and pgid == pid and cwd == plugin
    assert first[0] != second[0]
    # A fork server that died: the next run starts another one, same results.
    server.proc.kill()
    await server.proc.wait()
    third = await run_once()
    assert runner._fork_server is not None and third[1] == runner._fork_server.proc.pid
    await manager.stop()
    assert not psutil.pid_exists(third[1])  # nothing left behind


@pytest.mark.parametrize("fork", [True, False], ids=["fork-server", "warm-child"])
async def test_warm_runs_of_a_plugin_that_turns_warnings_into_errors(manager_factory, tmp_path,
                                                                     fork):
    plugin = tmp_path / "plugins" / "strict"
    (plugin / "tests").mkdir(parents=True)
    (plugin / "plugin.toml").write_text(
        'id = "strict_suite"\nname = "Strict"\nversion = "1.0.0"\nentry = "strict_pkg:P"\n')
    (plugin / "pytest.ini").write_text("[pytest]\nfilterwarnings =\n    error\n")
    (plugin / "tests" / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    manager, _ = await manager_factory(tmp_path / "plugins")
    manager.runner.fork = fork
    for attempt in range(3):  # the first cold, the others in the warm child
        if attempt and not fork:
            async with asyncio.timeout(30):
                while manager.runner._warm is None:
                    await asyncio.sleep(0.02)
        run = await manager.wait((await manager.submit("strict_suite")).id)
        assert run.status == RunStatus.PASSED, (attempt, run.error)


@MODULE_LOOP
async def test_a_timeout_is_charged_to_the_test_that_ran_too_long(shared_manager_factory, tmp_path):
    plugin = tmp_path / "plugins" / "late"
    (plugin / "tests").mkdir(parents=True)
    (plugin / "plugin.toml").write_text(
        'id = "late_suite"\nname = "Late"\nversion = "1.0.0"\nentry = "late_pkg:P"\n')
    (plugin / "tests" / "test_late.py").write_text(textwrap.dedent("""
        import time

        def test_a_slow():
            time.sleep(1.15)  # past the 1 s timeout, done within the stack-dump grace

        def test_b_fast():
            pass
        """))
    manager, _ = await shared_manager_factory(tmp_path / "plugins")
    run = await manager.wait((await manager.submit("late_suite", timeout=1.0)).id)
    outcomes = {a.nodeid.split("::")[1]: str(a.outcome)
                for a in manager.store.attempts_for_run(run.id)}
    assert outcomes == {"test_a_slow": "timed_out", "test_b_fast": "passed"}




async def test_a_stop_in_the_turn_that_wakes_idle_workers_ends_them(home, tmp_path):
    """Workers idle until a retry is due, woken (here by a submit) in the same turn of
    the loop as the stop cancels them: the stop still ends them. With asyncio.wait_for
    on Python 3.11 a cancel that met a finished wait was dropped, the worker went back
    to waiting for ever, and the app's stop hung (seen in a CI run)."""
    dying_suite(tmp_path / "suites")
    manager, _ = make_manager(home, [SUITES, tmp_path / "suites"], concurrency=2,
                              retry_base=600)
    await manager.start()
    try:
        await manager.wait((await manager.submit("dies_suite")).id)
        async with asyncio.timeout(30):  # the retry is queued after the run's end
            while not any(run.trigger == "retry" for run in manager.queued()):
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # both workers now wait for the retry's time, 600 s away
        await manager.submit("mixed_suite", ["tests/test_mixed.py::test_passes"],
                             precheck=False)
        await asyncio.wait_for(manager.stop(), 30)
    finally:
        manager.store.close()
