"""The one read model of results, and the live events a run with reruns publishes."""

from __future__ import annotations

import asyncio

import pytest

from plexichat_desktop.testing.events import TestFinished, TestsCollected
from plexichat_desktop.testing.models import Outcome, TestAttempt
from plexichat_desktop.testing.results import (
    RunProgress,
    final_attempt,
    flips,
    is_flaky,
    results_of,
    run_counts,
    success_rate,
)
from tests.test_test_manager import finals, manager_factory  # noqa: F401 (a fixture)


def attempt(nodeid: str, outcome: Outcome, n: int = 1, run_id: int = 1) -> TestAttempt:
    return TestAttempt(run_id=run_id, plugin_id="p", nodeid=nodeid, outcome=outcome, attempt=n)


def test_the_final_attempt_is_the_highest_number_and_the_later_on_a_tie():
    first, rerun = attempt("t", Outcome.FAILED), attempt("t", Outcome.PASSED, 2)
    assert final_attempt([first, rerun]) is rerun
    assert final_attempt([rerun, first]) is rerun
    crashed, again = attempt("t", Outcome.CRASHED, 2), attempt("t", Outcome.PASSED, 2)
    assert final_attempt([first, crashed, again]) is again


def test_results_and_counts_of_a_run_with_reruns():
    attempts = [attempt("a", Outcome.FAILED), attempt("b", Outcome.PASSED),
                attempt("c", Outcome.FAILED), attempt("a", Outcome.PASSED, 2),
                attempt("c", Outcome.FAILED, 2), attempt("d", Outcome.SKIPPED)]
    results = {r.nodeid: r for r in results_of(attempts)}
    assert [(r.outcome, r.attempts, r.flaky) for r in results.values()] == [
        ("passed", 2, True), ("passed", 1, False), ("failed", 2, False), ("skipped", 1, False)]
    counts = run_counts(attempts)
    assert counts == {"passed": 2, "failed": 1, "skipped": 1, "flaky": 1, "total": 4}
    assert success_rate(counts) == pytest.approx(2 / 3)
    assert success_rate({"skipped": 3}) is None


def test_the_flaky_mark():
    assert flips(["passed", "failed", "skipped", "passed"]) == (2, 3)
    assert not is_flaky({"flaky": False, "recent_flaky": 0, "flips": 1})
    assert is_flaky({"flaky": False, "recent_flaky": 0, "flips": 2})
    assert is_flaky({"flaky": False, "recent_flaky": 1, "flips": 0})
    assert is_flaky({"flaky": True, "recent_flaky": 1, "flips": 0})


def test_progress_counts_tests_not_attempts():
    progress = RunProgress(total=2)
    assert progress.collected(3) and not progress.collected(1)
    for nodeid in ("a", "b", "a", "c"):
        progress.finished(nodeid)
    assert (progress.completed, progress.total) == (3, 3)


@pytest.mark.asyncio
async def test_live_events_carry_attempt_numbers_and_test_progress(manager_factory,  # noqa: F811
                                                                   tmp_path):
    suite = tmp_path / "suites" / "reruns"
    (suite / "tests").mkdir(parents=True)
    (suite / "plugin.toml").write_text(
        'id = "rerun_suite"\nname = "Reruns"\nversion = "1.0.0"\nentry = "r_pkg:P"\n')
    marker = tmp_path / "first-try-done"
    (suite / "tests" / "test_r.py").write_text(
        "from pathlib import Path\n"
        f"MARK = Path({str(marker)!r})\n"
        "def test_flaky():\n"
        "    if not MARK.exists():\n"
        "        MARK.write_text('x')\n"
        "        assert False, 'first try fails'\n"
        "def test_always_fails():\n    assert False\n"
        "def test_passes():\n    pass\n")
    manager, bus = await manager_factory(tmp_path / "suites")
    sub = bus.subscribe((TestFinished, TestsCollected))
    run = await manager.submit("rerun_suite", reruns=1)
    done = await asyncio.wait_for(manager.wait(run.id), 60)
    events = []
    while not sub.queue.empty():
        events.append(sub.queue.get_nowait())
    collected = [e for e in events if isinstance(e, TestsCollected)]
    finished = [e for e in events if isinstance(e, TestFinished)]
    assert [c.total for c in collected] == [3]
    assert [(e.nodeid.split("::")[1], e.outcome, e.attempt, e.completed, e.total)
            for e in finished] == [
        ("test_flaky", "failed", 1, 1, 3), ("test_always_fails", "failed", 1, 2, 3),
        ("test_passes", "passed", 1, 3, 3), ("test_flaky", "passed", 2, 3, 3),
        ("test_always_fails", "failed", 2, 3, 3)]
    assert done.counts == {"passed": 2, "failed": 1, "flaky": 1, "total": 3}
    stored = {r.nodeid.split("::")[1]: r for r in results_of(
        manager.store.attempts_for_run(run.id))}
    assert stored["test_flaky"].flaky and stored["test_flaky"].attempts == 2
    assert str(finals(manager, run.id)["tests/test_r.py::test_always_fails"].outcome) == \
        "failed"


@pytest.mark.asyncio
async def test_failures_are_rerun_even_when_the_last_child_crashed(manager_factory,  # noqa: F811
                                                                    tmp_path):
    suite = tmp_path / "suites" / "crashy"
    (suite / "tests").mkdir(parents=True)
    (suite / "plugin.toml").write_text(
        'id = "crashy_suite"\nname = "Crashy"\nversion = "1.0.0"\nentry = "c_pkg:P"\n')
    marker = tmp_path / "first-try-done"
    (suite / "tests" / "test_c.py").write_text(
        "import os\nfrom pathlib import Path\n"
        f"MARK = Path({str(marker)!r})\n"
        "def test_a_flaky():\n"
        "    if not MARK.exists():\n"
        "        MARK.write_text('x')\n"
        "        assert False\n"
        "def test_b_crashes():\n    os._exit(3)\n")
    manager, _ = await manager_factory(tmp_path / "suites")
    run = await manager.submit("crashy_suite", reruns=1)
    done = await asyncio.wait_for(manager.wait(run.id), 60)
    assert done.counts == {"passed": 1, "crashed": 1, "flaky": 1, "total": 2}
