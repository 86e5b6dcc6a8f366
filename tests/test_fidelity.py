"""The manager is never greener than pytest: generated suites with every outcome kind are
run through the real manager, the real CLI and plain pytest, and compared test by test,
count by count and exit code by exit code."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from plexichat_desktop.testing import runner as runner_module
from plexichat_desktop.testing.manager import TestManager
from plexichat_desktop.testing.models import RunStatus
from plexichat_desktop.testing.results import run_counts
from plexichat_desktop.testing.runner import plugin_pytest_config
from plexichat_desktop.testing.store import ResultStore
from tests.conftest import plain_env
from tests.shared_runner import MODULE_LOOP, module_runner  # noqa: F401 (a fixture)
from tests.test_test_manager import (  # noqa: F401 (fixtures)
    SUITES,
    finals,
    manager_factory,
    shared_manager_factory,
)

pytestmark = pytest.mark.asyncio

MANIFEST = """\
id = "{id}"
name = "{id}"
version = "1.0.0"
entry = "{id}_pkg:Plugin"

[tests]
timeout = 60
"""

OUTCOMES = '''
import unittest
import warnings

import pytest


def test_passes():
    assert True


def test_fails():
    assert [1, 2] == [1, 3]


@pytest.fixture
def broken_setup():
    raise RuntimeError("setup exploded")


def test_setup_error(broken_setup):
    pass


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown exploded")


def test_teardown_error_after_pass(broken_teardown):
    pass


def test_teardown_error_after_failure(broken_teardown):
    assert 1 == 2, "the call failed first"


def test_skipped():
    pytest.skip("not here")


@pytest.mark.xfail(reason="known")
def test_xfails():
    assert False


@pytest.mark.xfail(reason="fixed already")
def test_xpasses():
    pass


@pytest.mark.xfail(reason="must fail", strict=True)
def test_strict_xpass_fails():
    pass


def test_warning_is_an_error():
    warnings.warn("suite runs with filterwarnings = error", UserWarning)


async def test_async_generator_is_refused():
    yield 1


@pytest.mark.parametrize("n", [1, 2, 3])
def test_param(n):
    assert n != 2


class TestUnittestSubtests(unittest.TestCase):
    def test_one_subtest_fails(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertNotEqual(i, 1)

    def test_all_subtests_pass(self):
        for i in range(2):
            with self.subTest(i=i):
                self.assertLess(i, 5)


def test_subtests_fixture(subtests):
    for i in range(3):
        with subtests.test(msg="check", i=i):
            assert i != 2
'''

DOCTEST = """\
>>> 1 + 1
2
>>> [1, 2][5]
"""

CONFIG = """\
[tool.pytest.ini_options]
filterwarnings = ["error"]
"""


def write_plugin(root: Path, plugin_id: str, files: dict[str, str]) -> Path:
    folder = root / plugin_id
    (folder / "tests").mkdir(parents=True)
    (folder / "plugin.toml").write_text(MANIFEST.format(id=plugin_id))
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text))
    return folder


def plain_pytest(folder: Path, *targets: str) -> tuple[dict[str, str], dict[str, int], int]:
    """Plain pytest on a plugin folder as the manager runs it: per-test verdicts, the
    summary line's counts and the exit code."""
    config = plugin_pytest_config(folder, "tests")
    cmd = [sys.executable, "-m", "pytest", "-v", "-rA", "-p", "no:cacheprovider",
           "--import-mode=importlib", f"--rootdir={folder}", "-o",
           "console_output_style=classic", "--continue-on-collection-errors"]
    if config is not None:
        cmd += ["-c", str(config)]
    env = {**plain_env(), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run([*cmd, *(targets or ["tests"])], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)
    words: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        if match := re.match(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS|"
                             r"SUBFAILED|SUBPASSED)\b", line):
            words.setdefault(match[1], []).append(match[2])
        elif (match := re.match(r"^ERROR (\S+?)(?: - .*)?$", line)) and "::" not in match[1]:
            words.setdefault(match[1], []).append("ERROR")  # a file that did not collect
    verdicts = {}
    for nodeid, seen in words.items():
        if "FAILED" in seen or "SUBFAILED" in seen:
            verdicts[nodeid] = "failed"
        elif "ERROR" in seen:
            verdicts[nodeid] = "error"
        else:
            verdicts[nodeid] = {"PASSED": "passed", "SKIPPED": "skipped", "XFAIL": "xfailed",
                                "XPASS": "xpassed"}[seen[0]]
    counts: dict[str, int] = {}
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    for n, word in re.findall(r"(\d+) ([a-z]+(?: [a-z]+)?)(?=,| in )", summary):
        counts[{"errors": "error", "warnings": "warning"}.get(word, word)] = int(n)
    return verdicts, counts, proc.returncode


def run_cli(home, plugins_dir: Path, target: str) -> tuple[int, dict]:
    env = {**os.environ, "PLEXICHAT_DESKTOP_HOME": str(home.config_dir.parent),
           "PLEXICHAT_DESKTOP_PLUGINS_PATH": str(plugins_dir)}
    proc = subprocess.run([sys.executable, "-m", "plexichat_desktop", "test", target,
                           "--json"], env=env, capture_output=True, text=True, timeout=180)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"no JSON from the CLI (rc {proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}") from None


async def run_through(manager: TestManager, plugin_id: str, tests: list[str] | None = None,
                      precheck: bool = True):
    run = await manager.submit(plugin_id, tests, precheck=precheck)
    done = await asyncio.wait_for(manager.wait(run.id), 120)
    return done, finals(manager, run.id)


async def beside_plain(make: Any, root: Path, plugin_id: str) -> tuple[Any, ...]:
    """The manager's run of the plugin's suite, its results, and what plain pytest said
    of the same suite (run in a thread meanwhile): verdicts, counts, exit code."""
    plain = asyncio.create_task(asyncio.to_thread(plain_pytest, root / plugin_id))
    manager, _ = await make(root)
    done, ours = await run_through(manager, plugin_id)
    return done, ours, await plain


@pytest.fixture
def suites(tmp_path: Path) -> Path:
    root = tmp_path / "suites"
    write_plugin(root, "fidelity_all", {
        "pyproject.toml": CONFIG, "tests/test_outcomes.py": OUTCOMES,
        "tests/test_doc.txt": DOCTEST,
        "tests/test_broken.py": "def test_never(:\n    pass\n"})
    write_plugin(root, "fidelity_internal", {
        "pyproject.toml": CONFIG,
        "tests/conftest.py": """\
            import warnings


            def pytest_collection_modifyitems(items):
                warnings.warn(DeprecationWarning("this hook style is deprecated"))
            """,
        "tests/test_fine.py": "def test_fine():\n    pass\n"})
    return root


STOPPING = {
    "tests/test_nothing.py": "HELPER = 1\n",
    "tests/test_skipped_module.py": """\
        import pytest

        pytest.skip("needs a GPU", allow_module_level=True)


        def test_never():
            assert False
        """,
    "tests/test_ok.py": "def test_ok():\n    pass\n",
}
INTERRUPTING = {
    "tests/test_interrupt.py": """\
        def test_1():
            pass


        def test_2():
            raise KeyboardInterrupt


        def test_3():
            pass
        """,
    "tests/test_exit.py": """\
        import pytest


        def test_leaves():
            pytest.exit("bye")
        """,
}


EXITS_ONE = {
    "tests/conftest.py": """\
        import pytest


        def pytest_collection_finish(session):
            pytest.exit("the suite refuses to run here", returncode=1)
        """,
    "tests/test_fine.py": "def test_fine():\n    pass\n",
}

# Failed by pytest after its tests passed (a test-manager audit: both were passed runs,
# exit 0): a conftest's sessionfinish check, and an exit handler ending the process.
FAILS_AT_THE_END = {
    "tests/conftest.py": """\
        def pytest_sessionfinish(session, exitstatus):
            session.exitstatus = 1  # a leak or coverage check failed
        """,
    "tests/test_ok.py": "def test_ok():\n    pass\n",
}
EXITS_AT_EXIT = {
    "tests/test_ok.py": """\
        import atexit
        import os

        atexit.register(lambda: os._exit(3))


        def test_ok():
            pass
        """,
}
# An exit handler slower than the manager waits for a process that ended its session:
# killed by the manager, not failed by pytest (plain pytest waits and exits 0).
SLOW_AT_EXIT = {
    "tests/test_ok.py": """        import atexit
        import time

        atexit.register(lambda: time.sleep(2))


        def test_ok():
            pass
        """,
}


@pytest.fixture
def stopping(tmp_path: Path) -> Path:
    """Suites where no test runs, or where a test ends pytest's session."""
    root = tmp_path / "stopping"
    write_plugin(root, "fidelity_stopping", STOPPING)
    write_plugin(root, "fidelity_interrupting", INTERRUPTING)
    write_plugin(root, "fidelity_exits_one", EXITS_ONE)
    write_plugin(root, "fidelity_fails_at_the_end", FAILS_AT_THE_END)
    write_plugin(root, "fidelity_exits_at_exit", EXITS_AT_EXIT)
    write_plugin(root, "fidelity_slow_at_exit", SLOW_AT_EXIT)
    return root


@MODULE_LOOP
async def test_no_test_ran_is_never_green(shared_manager_factory, stopping, home):  # noqa: F811
    """A file without tests, or one whose module skips itself, was a passed run (its
    path marked "not run") and the CLI exited 0, where pytest exits 5; the skipped module
    was left out of the results, where pytest counts "1 skipped"."""
    folder = stopping / "fidelity_stopping"
    manager, _ = await shared_manager_factory(stopping)
    for target in ("tests/test_nothing.py", "tests/test_skipped_module.py"):
        plain = asyncio.create_task(asyncio.to_thread(plain_pytest, folder, target))
        # As the CLI hands a file to pytest: a check would find no test there first.
        done, ours = await run_through(manager, "fidelity_stopping", [target], precheck=False)
        _, their_counts, their_exit = await plain
        assert their_exit == 5, target
        assert done.status is RunStatus.NO_TESTS, (target, done)
        assert done.error.startswith("no test ran"), done.error
        if target.endswith("skipped_module.py"):
            assert {n: str(a.outcome) for n, a in ours.items()} == {target: "skipped"}
            assert ours[target].message == "needs a GPU" and their_counts == {"skipped": 1}
            assert "1 test module(s) skipped" in done.error
        else:
            assert ours == {}  # no result invented for the file
        exit_code, report = run_cli(home, stopping, f"fidelity_stopping::{target}")
        assert exit_code == 5 and report["runs"][0]["status"] == "no_tests", report
    # The whole suite: the skipped module counts as pytest counts it.
    plain = asyncio.create_task(asyncio.to_thread(plain_pytest, folder))
    done, ours = await run_through(manager, "fidelity_stopping")
    _, their_counts, their_exit = await plain
    assert their_exit == 0 and their_counts == {"passed": 1, "skipped": 1}
    assert done.status is RunStatus.PASSED
    assert {k: v for k, v in done.counts.items() if k != "total"} == their_counts


@MODULE_LOOP
async def test_a_test_that_ends_the_session_is_its_error(shared_manager_factory, stopping,  # noqa: F811
                                                        home):
    """A test raising KeyboardInterrupt, or calling pytest.exit(), was recorded as "not
    run": statistics said 100% success, "rerun failed" had nothing to pick, and the run
    was retried as if the machine had failed it."""
    folder = stopping / "fidelity_interrupting"
    manager, _ = await shared_manager_factory(stopping)
    for target, culprit in (("tests/test_interrupt.py", "tests/test_interrupt.py::test_2"),
                            ("tests/test_exit.py", "tests/test_exit.py::test_leaves")):
        plain = asyncio.create_task(asyncio.to_thread(plain_pytest, folder, target))
        done, ours = await run_through(manager, "fidelity_interrupting", [target],
                                       precheck=False)
        _, _, their_exit = await plain
        assert their_exit == 2 and done.exit_code == 2, target
        assert done.status is RunStatus.ERROR
        assert str(ours[culprit].outcome) == "error", ours
        assert "session ended inside this test" in ours[culprit].message
        if target.endswith("interrupt.py"):
            assert str(ours["tests/test_interrupt.py::test_1"].outcome) == "passed"
            assert str(ours["tests/test_interrupt.py::test_3"].outcome) == "not_run"
        # Not queued again: the test stops every session that runs it.
        assert manager.store.list_runs("fidelity_interrupting",
                                       status=RunStatus.QUEUED) == []
    exit_code, report = run_cli(home, stopping, "fidelity_interrupting::tests/test_exit.py")
    assert exit_code == 2
    assert [r["outcome"] for r in report["results"]] == ["error"]


@MODULE_LOOP
async def test_pytest_saying_failed_before_any_test_is_failed(shared_manager_factory,  # noqa: F811
                                                               stopping):
    """Review finding: a conftest ending the session with exit code 1 after collection
    (no test ran, pytest says failed) came out as "no_tests" (exit 5)."""
    done, _, (_, _, their_exit) = await beside_plain(shared_manager_factory, stopping,
                                                     "fidelity_exits_one")
    assert their_exit == 1
    assert done.status is RunStatus.FAILED, done
    assert "exit code 1" in done.error


@MODULE_LOOP
async def test_pytest_failing_the_session_after_its_tests_is_failed(shared_manager_factory,  # noqa: F811
                                                                     stopping):
    for plugin_id, exit_code in (("fidelity_fails_at_the_end", 1),
                                 ("fidelity_exits_at_exit", 3)):
        done, ours, (_, their_counts, their_exit) = await beside_plain(
            shared_manager_factory, stopping, plugin_id)
        assert their_exit == exit_code and their_counts == {"passed": 1}, plugin_id
        # The test itself passed, as pytest says; the run is failed, as pytest exits.
        assert [str(a.outcome) for a in ours.values()] == ["passed"], ours
        assert done.status is RunStatus.FAILED, (plugin_id, done)
        assert f"exit code {exit_code}" in done.error, done.error


@MODULE_LOOP
async def test_a_slow_exit_handler_killed_by_the_manager_is_not_a_failure(
        shared_manager_factory, stopping, monkeypatch, caplog):  # noqa: F811
    """Review: the exit-code check failed a run whose child the manager itself killed
    for not exiting EXIT_TIMEOUT after pytest's session ended (the kill's code is ours)."""
    monkeypatch.setattr(runner_module, "EXIT_TIMEOUT", 0.5)
    done, ours, (_, their_counts, their_exit) = await beside_plain(
        shared_manager_factory, stopping, "fidelity_slow_at_exit")
    assert their_exit == 0 and their_counts == {"passed": 1}
    assert [str(a.outcome) for a in ours.values()] == ["passed"], ours
    assert done.status is RunStatus.PASSED, done
    # Passed as pytest says, and the stop is said in the app's log.
    assert any("had not exited 0.5 s later" in r.getMessage() for r in caplog.records)


@MODULE_LOOP
async def test_every_outcome_kind_matches_plain_pytest(shared_manager_factory, suites, home):  # noqa: F811
    done, ours, (theirs, their_counts, their_exit) = await beside_plain(
        shared_manager_factory, suites, "fidelity_all")
    assert their_exit == 1
    # The suite does hold every kind the manager once got wrong.
    assert {"tests/test_broken.py", "tests/test_doc.txt::test_doc.txt",
            "tests/test_outcomes.py::test_async_generator_is_refused"} <= set(theirs)
    assert their_counts["error"] == 4 and their_counts["subtests passed"] == 6

    assert {n: str(a.outcome) for n, a in ours.items()} == theirs
    assert done.status is RunStatus.ERROR  # a file did not collect
    # The other files ran (--continue-on-collection-errors, as in the comparison above,
    # where pytest then exits 1); the exit code is plain pytest's, which stops at a file
    # that does not collect: 2 ("Interrupted: 1 error during collection").
    assert done.exit_code == 2

    counts = run_counts(list(ours.values()))
    for key in ("skipped", "xfailed", "xpassed", "subtests passed"):
        assert counts.get(key, 0) == their_counts.get(key, 0), key
    assert counts["error"] + counts["errors at teardown"] == their_counts["error"]
    # pytest counts a test whose teardown failed after a passing call as passed and
    # error, a unittest parent as passed beside its failed subtest; the manager gives each
    # test one outcome and counts the rest apart: the same reports in all.
    passed_then_teardown = sum(a.phase == "teardown" for a in ours.values())
    assert (counts["passed"] + counts["failed"] + counts["subtests failed"]
            + passed_then_teardown) == their_counts["passed"] + their_counts["failed"]

    exit_code, report = run_cli(home, suites, "fidelity_all")
    assert exit_code == 2
    assert {r["nodeid"]: r["outcome"] for r in report["results"]} == theirs


@MODULE_LOOP
async def test_internal_error_is_an_error_run_with_pytests_report(shared_manager_factory, suites,  # noqa: F811
                                                                   home):
    plain = asyncio.create_task(asyncio.to_thread(plain_pytest, suites / "fidelity_internal"))
    manager, _ = await shared_manager_factory(suites, retry_attempts=1)
    done, ours = await run_through(manager, "fidelity_internal")
    _, _, their_exit = await plain
    assert their_exit == 3
    assert done.status is RunStatus.ERROR
    assert "internal error" in done.error
    assert "DeprecationWarning: this hook style is deprecated" in done.error
    assert {str(a.outcome) for a in ours.values()} <= {"not_run"}

    exit_code, report = run_cli(home, suites, "fidelity_internal")
    assert exit_code == their_exit
    assert report["runs"][0]["status"] == "error"
    assert "this hook style is deprecated" in report["runs"][0]["error"]


@MODULE_LOOP
async def test_a_failing_subtest_fails_its_test_with_each_message(shared_manager_factory, suites):  # noqa: F811
    manager, _ = await shared_manager_factory(suites)
    _, ours = await run_through(manager, "fidelity_all", [
        "tests/test_outcomes.py::TestUnittestSubtests", "test_subtests_fixture"])
    failing = ours["tests/test_outcomes.py::TestUnittestSubtests::test_one_subtest_fails"]
    assert str(failing.outcome) == "failed"
    assert failing.message.startswith("subtest (i=1) failed: AssertionError")
    assert "--- subtest (i=1) ---" in failing.longrepr
    assert [(r["label"], r["outcome"]) for r in failing.reports if "count" not in r] == \
        [("(i=1)", "failed")]
    assert str(ours["tests/test_outcomes.py::TestUnittestSubtests::test_all_subtests_pass"]
               .outcome) == "passed"
    fixture = ours["tests/test_outcomes.py::test_subtests_fixture"]
    assert str(fixture.outcome) == "failed" and "[check] (i=2)" in fixture.message
    # Stored and read back with its reports.
    stored = manager.store.attempts_for_run(failing.run_id)
    assert any(a.reports == failing.reports for a in stored)


@MODULE_LOOP
async def test_a_teardown_error_after_a_failure_is_kept(shared_manager_factory, suites):  # noqa: F811
    manager, _ = await shared_manager_factory(suites)
    done, ours = await run_through(manager, "fidelity_all",
                                   ["tests/test_outcomes.py::test_teardown_error_after_failure"])
    attempt = ours["tests/test_outcomes.py::test_teardown_error_after_failure"]
    assert str(attempt.outcome) == "failed" and "the call failed first" in attempt.message
    assert [r["kind"] for r in attempt.reports] == ["teardown"]
    assert "teardown exploded" in attempt.longrepr
    # pytest's "1 failed, 1 error"
    assert done.counts["failed"] == 1 and done.counts["errors at teardown"] == 1


@MODULE_LOOP
async def test_collection_errors_are_results_with_pytests_report(shared_manager_factory, suites):  # noqa: F811
    manager, _ = await shared_manager_factory(suites)
    done, ours = await run_through(manager, "fidelity_all", ["tests/test_outcomes.py::test_passes",
                                                              "tests/test_broken.py"])
    broken = ours["tests/test_broken.py"]
    assert str(broken.outcome) == "error" and broken.phase == "collect"
    assert "SyntaxError" in broken.longrepr
    assert done.status is RunStatus.ERROR and "SyntaxError" in done.error
    assert done.counts["error"] == 1 and done.counts["passed"] == 1


@MODULE_LOOP
async def test_the_plugin_folder_is_the_config_boundary(shared_manager_factory, tmp_path, home):  # noqa: F811
    # A parent project whose pytest.ini would leave nothing to collect, and a plugin whose
    # pyproject.toml has no pytest section: pytest alone climbs to the parent's ini. The
    # parent's conftest.py fails every test it reaches: a plugin without a config of its
    # own is bounded by its folder for conftests too (pytest cut them at the folder of the
    # config the runner wrote, which let those above the plugin in).
    outer = tmp_path / "outer"
    outer.mkdir()
    (outer / "pytest.ini").write_text("[pytest]\npython_files = nothing_*.py\n")
    (outer / "conftest.py").write_text(
        "import pytest\n\n\n@pytest.fixture(autouse=True)\ndef outside_the_plugin():\n"
        "    raise RuntimeError('a conftest.py above the plugin folder was loaded')\n")
    folder = write_plugin(outer / "plugins", "isolated_suite", {
        "pyproject.toml": "[project]\nname = 'isolated'\n",
        "tests/test_a.py": "def test_a():\n    pass\n"})
    assert plugin_pytest_config(folder, "tests") is None
    manager, _ = await shared_manager_factory(outer / "plugins")
    done, ours = await run_through(manager, "isolated_suite")
    assert done.status is RunStatus.PASSED
    assert list(ours) == ["tests/test_a.py::test_a"]


@MODULE_LOOP
async def test_strict_markers_and_config_know_what_async_plugins_the_manager_runs_without(
        shared_manager_factory, tmp_path):  # noqa: F811
    # Under the manager, pytest-asyncio is not autoloaded and its compatibility rules run
    # an asyncio-marked test; the marker must still be a known one, or --strict-markers
    # fails the file that plain pytest (pytest-asyncio loaded) passes. Its settings too:
    # unknown, --strict-config refused the suite's pytest.ini (a usage error, nothing run)
    # and, without it, every session warned of an unknown option.
    folder = write_plugin(tmp_path / "plugins", "strict_markers_suite", {
        "pytest.ini": "[pytest]\naddopts = -p plexichat_desktop.testing.harness "
                      "--strict-markers --strict-config\n"
                      "asyncio_default_fixture_loop_scope = function\n",
        "tests/test_marked.py": """\
            import asyncio

            import pytest


            @pytest.mark.asyncio
            async def test_marked_for_pytest_asyncio():
                await asyncio.sleep(0)


            def test_plain():
                pass
            """})
    users = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=folder, env=plain_env(), capture_output=True, text=True, timeout=120)
    assert users.returncode == 0 and "2 passed" in users.stdout, users.stdout
    theirs, _, code = await asyncio.to_thread(plain_pytest, folder)  # autoload off
    assert code == 0 and set(theirs.values()) == {"passed"}, theirs
    manager, _ = await shared_manager_factory(tmp_path / "plugins")
    done, ours = await run_through(manager, "strict_markers_suite")
    assert {n: str(a.outcome) for n, a in ours.items()} == theirs
    assert done.status is RunStatus.PASSED, done.error


ASYNC_FIXTURE_TEST = """\
    import asyncio

    import pytest
    import pytest_asyncio


    @pytest_asyncio.fixture
    async def value():
        await asyncio.sleep(0)
        return 41


    @pytest.mark.asyncio
    async def test_async_fixture(value):
        assert value + 1 == 42
    """


@MODULE_LOOP
async def test_an_async_fixture_without_its_plugin_says_how_to_load_it(shared_manager_factory,  # noqa: F811
                                                                       tmp_path):
    # pytest-asyncio's fixtures need the plugin, which plain pytest autoloads and the
    # manager does not: pytest's error then says what to write, and what it says works.
    plugins = tmp_path / "plugins"
    unnamed = write_plugin(plugins, "async_fixture_unnamed", {
        "pytest.ini": "[pytest]\naddopts = -p plexichat_desktop.testing.harness\n",
        "tests/test_fixture.py": ASYNC_FIXTURE_TEST})
    named = write_plugin(plugins, "async_fixture_named", {
        "pytest.ini": "[pytest]\naddopts = -p asyncio -p plexichat_desktop.testing.harness\n",
        "tests/test_fixture.py": ASYNC_FIXTURE_TEST})
    # Named by its module, the plugin is registered under that name: still seen as
    # loaded, so its settings keep their own types and defaults (an empty loop scope
    # stopped the session with a usage error once).
    by_module = write_plugin(plugins, "async_fixture_by_module", {
        "pytest.ini": "[pytest]\naddopts = -p pytest_asyncio.plugin "
                      "-p plexichat_desktop.testing.harness --strict-config\n"
                      "asyncio_default_fixture_loop_scope = function\n",
        "tests/test_fixture.py": ASYNC_FIXTURE_TEST})
    theirs, _, _ = await asyncio.to_thread(plain_pytest, unnamed)  # autoload off
    assert theirs == {"tests/test_fixture.py::test_async_fixture": "error"}
    manager, _ = await shared_manager_factory(plugins)
    done, ours = await run_through(manager, "async_fixture_unnamed")
    assert {n: str(a.outcome) for n, a in ours.items()} == theirs
    attempt = ours["tests/test_fixture.py::test_async_fixture"]
    assert "requested an async fixture 'value'" in attempt.longrepr
    assert "addopts = -p asyncio" in attempt.longrepr

    for folder in (named, by_module):
        theirs, _, code = await asyncio.to_thread(plain_pytest, folder)
        assert code == 0 and theirs == {"tests/test_fixture.py::test_async_fixture": "passed"}
        done, ours = await run_through(manager, folder.name)
        assert {n: str(a.outcome) for n, a in ours.items()} == theirs
        assert done.status is RunStatus.PASSED, done.error


@MODULE_LOOP
async def test_no_tests_collected_from_test_files_is_an_error(shared_manager_factory, tmp_path):  # noqa: F811
    folder = write_plugin(tmp_path / "plugins", "misconfigured_suite", {
        "pytest.ini": "[pytest]\npython_files = check_*.py\n",
        "tests/test_a.py": "def test_a():\n    pass\n"})
    assert plugin_pytest_config(folder, "tests") == folder / "pytest.ini"
    manager, _ = await shared_manager_factory(tmp_path / "plugins")
    done, _ = await run_through(manager, "misconfigured_suite")
    assert done.status is RunStatus.ERROR
    assert "no tests were collected although 1 test file(s) exist" in done.error


@MODULE_LOOP
async def test_every_node_id_prefix_pytest_accepts_selects(shared_manager_factory, suites):  # noqa: F811
    manager, _ = await shared_manager_factory(suites)
    check = manager.check_selection
    assert await check("fidelity_all", "tests/test_outcomes.py::test_param") == [
        f"tests/test_outcomes.py::test_param[{n}]" for n in (1, 2, 3)]
    assert await check("fidelity_all", "tests/test_outcomes.py::TestUnittestSubtests::"
                                       "test_all_subtests_pass") == [
        "tests/test_outcomes.py::TestUnittestSubtests::test_all_subtests_pass"]
    assert len(await check("fidelity_all", "./tests/test_outcomes.py::TestUnittestSubtests")) == 2
    assert len(await check("fidelity_all", "tests/")) == len(await check("fidelity_all",
                                                                          "tests"))
    run = await manager.submit("fidelity_all", ["tests/test_outcomes.py::test_param"])
    done = await manager.wait(run.id)
    assert done.counts == {"passed": 2, "failed": 1, "total": 3}


@MODULE_LOOP
async def test_an_exact_id_collects_only_its_file(shared_manager_factory, suites):  # noqa: F811
    manager, _ = await shared_manager_factory(suites)
    assert await manager.check_selection("fidelity_all", "tests/test_outcomes.py::test_passes")
    # Only that file was collected: no discovery of the whole suite was cached or stored.
    assert "fidelity_all" not in manager._discoveries
    assert manager.store.collected("fidelity_all") == []
    # A typo is still a clear error, found in that file.
    with pytest.raises(ValueError, match=r"no test 'tests/test_outcomes\.py::test_pases'"):
        await manager.check_selection("fidelity_all", "tests/test_outcomes.py::test_pases")


async def test_the_cli_hands_an_exact_id_to_pytest_as_pytest_would(suites, home):
    exit_code, report = run_cli(home, suites, "fidelity_all::tests/test_outcomes.py::test_param")
    assert exit_code == 1
    assert {r["nodeid"]: r["outcome"] for r in report["results"]} == {
        "tests/test_outcomes.py::test_param[1]": "passed",
        "tests/test_outcomes.py::test_param[2]": "failed",
        "tests/test_outcomes.py::test_param[3]": "passed"}
    # Nothing but that file was collected: the suite's discovery was never stored.
    with ResultStore(home.data_dir / "tests.sqlite3") as store:
        assert store.collected("fidelity_all") == []
    # A typo ends as pytest ends it: usage error, exit code 4, pytest's own words.
    exit_code, report = run_cli(home, suites, "fidelity_all::tests/test_outcomes.py::test_pases")
    assert exit_code == 4
    assert report["runs"][0]["status"] == "error"
    assert "not found" in report["runs"][0]["error"]


async def test_testing_one_plugin_does_not_print_the_others_problems(home):
    env = {**os.environ, "PLEXICHAT_DESKTOP_HOME": str(home.config_dir.parent),
           "PLEXICHAT_DESKTOP_PLUGINS_PATH": str(SUITES)}
    proc = subprocess.run([sys.executable, "-m", "plexichat_desktop", "test",
                           "mixed_suite::tests/test_mixed.py::test_passes"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # The fixture folder holds broken plugins: their problems go to the log file only.
    assert "fault_suite" not in proc.stderr and "broken_suite" not in proc.stderr
    log_text = "".join(p.read_text() for p in home.log_dir.glob("*.log"))
    assert "broken_suite" in log_text


async def test_testing_a_plugin_whose_id_two_folders_have_says_which_runs(home, tmp_path):
    """Audit: a backup copy of a plugin's folder beside it (same id, first by name) ran
    in place of the edited one, silently: the duplicate was muted with the others'."""
    import shutil

    from plexichat_desktop.plugins.scaffold import scaffold_plugin

    folder = tmp_path / "work"
    edited = scaffold_plugin("dup_x", folder)
    shutil.copytree(edited, folder / "aaa_old")
    env = {**os.environ, "PLEXICHAT_DESKTOP_HOME": str(home.config_dir.parent),
           "PLEXICHAT_DESKTOP_PLUGINS_PATH": str(folder)}
    proc = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "plexichat_desktop", "test", "dup_x"], env=env,
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "warning: duplicate plugin id 'dup_x'" in proc.stderr, proc.stderr
    assert f"testing {(folder / 'aaa_old').resolve()}" in proc.stderr, proc.stderr


# -- what the fork server imports ahead of the sessions ------------------------------------
async def test_sessions_of_the_fork_server_find_the_app_stack_imported(manager_factory,  # noqa: F811
                                                                         tmp_path):
    write_plugin(tmp_path / "plugins", "preloaded_suite", {"tests/test_stack.py": """\
        import sys

        AT_COLLECTION = sorted(m for m in ("plexichat_desktop.runtime", "fastapi", "httpx",
                                           "plexichat_desktop.server.v1.app")
                               if m in sys.modules)


        def test_the_core_needs_no_import():
            assert AT_COLLECTION == ["fastapi", "httpx", "plexichat_desktop.runtime",
                                     "plexichat_desktop.server.v1.app"]
        """})
    manager, _ = await manager_factory(tmp_path / "plugins")
    assert manager.runner.fork
    done, ours = await run_through(manager, "preloaded_suite")
    assert done.status is RunStatus.PASSED
    assert {n: str(a.outcome) for n, a in ours.items()} == {
        "tests/test_stack.py::test_the_core_needs_no_import": "passed"}


def _preloadable(lib: Path, name: str, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``name`` in ``lib``, which the fork server (started after this) preloads alone."""
    lib.mkdir(exist_ok=True)
    (lib / f"{name}.py").write_text(textwrap.dedent(text))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(lib), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("PLEXICHAT_FORK_SERVER_PRELOAD", name)


async def test_a_warning_at_import_stays_in_the_session(manager_factory, tmp_path,  # noqa: F811
                                                        monkeypatch):
    # A module that warns when imported, imported by a test under filterwarnings = error:
    # pytest fails the test. Had the fork server imported it (quietly, before any
    # session), the test would pass; the server notices the warning and starts again
    # without it.
    lib = tmp_path / "lib"
    folder = write_plugin(tmp_path / "plugins", "import_warning", {
        "pyproject.toml": CONFIG, "tests/test_import.py": f"""\
            import sys

            sys.path.insert(0, {str(lib)!r})


            def test_imports_a_deprecated_module():
                import fidelity_warns

                assert fidelity_warns.VALUE == 1
            """})
    _preloadable(lib, "fidelity_warns", """\
        import warnings

        warnings.warn(DeprecationWarning("fidelity_warns is deprecated"), stacklevel=2)
        VALUE = 1
        """, monkeypatch)
    theirs, _, their_exit = await asyncio.to_thread(plain_pytest, folder)
    assert theirs == {"tests/test_import.py::test_imports_a_deprecated_module": "failed"}
    manager, _ = await manager_factory(tmp_path / "plugins")
    done, ours = await run_through(manager, "import_warning")
    assert {n: str(a.outcome) for n, a in ours.items()} == theirs
    assert "fidelity_warns is deprecated" in next(iter(ours.values())).message
    assert done.exit_code == their_exit
    # The server started again in the same process (exec), and it serves the runs.
    server = manager.runner._fork_server
    assert server is not None and server.alive


async def test_a_plugin_module_named_like_a_preloaded_one_is_the_plugins(manager_factory,  # noqa: F811
                                                                          tmp_path,
                                                                          monkeypatch):
    # The plugin folder comes first on a session's path: pytest imports its module, not
    # the one of the same name the fork server preloaded from elsewhere.
    folder = write_plugin(tmp_path / "plugins", "shadowing", {
        "fidelity_shadowed.py": 'WHO = "plugin"\n', "tests/test_shadow.py": """\
            import fidelity_shadowed


            def test_the_plugins_own_module():
                assert fidelity_shadowed.WHO == "plugin"
            """})
    _preloadable(tmp_path / "lib", "fidelity_shadowed", 'WHO = "elsewhere"\n', monkeypatch)
    theirs, _, _ = await asyncio.to_thread(plain_pytest, folder)
    assert theirs == {"tests/test_shadow.py::test_the_plugins_own_module": "passed"}
    manager, _ = await manager_factory(tmp_path / "plugins")
    assert manager.runner.fork
    done, ours = await run_through(manager, "shadowing")
    assert {n: str(a.outcome) for n, a in ours.items()} == theirs
    assert done.status is RunStatus.PASSED


# -- what the fork server parses ahead of the sessions ---------------------------------------
async def test_every_builtin_fixture_and_one_added_to_pytests_modules(manager_factory,  # noqa: F811
                                                                        tmp_path):
    # The fork server parses pytest's plugin modules for fixtures once: the sessions skip
    # those it found none in and parse only the fixtures of the others. A fixture put on
    # one of either kind since (here by a conftest, before sessionstart) must be found as
    # plain pytest finds it.
    folder = write_plugin(tmp_path / "plugins", "fixture_parsing", {
        "fidelity_smuggle.py": """\
            import pytest


            def smuggled_fixture():
                @pytest.fixture
                def smuggled():
                    return 42

                return smuggled
            """,
        "tests/conftest.py": """\
            import _pytest.monkeypatch
            import _pytest.skipping

            from fidelity_smuggle import smuggled_fixture

            _pytest.skipping.smuggled = smuggled_fixture()
            _pytest.monkeypatch.smuggled_too = smuggled_fixture()
            """,
        "tests/test_fixtures.py": """\
            import logging
            import warnings


            def test_builtin_fixtures(capsys, monkeypatch, tmp_path, tmp_path_factory, tmpdir,
                                      request, pytestconfig, caplog, recwarn,
                                      doctest_namespace, record_property):
                print("out")
                assert capsys.readouterr().out == "out\\n"
                monkeypatch.setenv("FIDELITY_FIXTURE", "1")
                assert tmp_path.is_dir() and tmpdir.check(dir=1)
                assert tmp_path_factory.getbasetemp().is_dir()
                assert request.node.name == "test_builtin_fixtures"
                assert pytestconfig is request.config
                logging.getLogger("fidelity").warning("logged")
                assert "logged" in caplog.text
                warnings.warn(UserWarning("recorded"))
                assert len(recwarn) == 1
                assert isinstance(doctest_namespace, dict)
                record_property("key", "value")


            def test_smuggled(smuggled, smuggled_too, monkeypatch):
                assert smuggled == smuggled_too == 42
            """})
    theirs, _, their_exit = await asyncio.to_thread(plain_pytest, folder)
    assert theirs == {"tests/test_fixtures.py::test_builtin_fixtures": "passed",
                      "tests/test_fixtures.py::test_smuggled": "passed"}
    manager, _ = await manager_factory(tmp_path / "plugins")
    assert manager.runner.fork
    done, ours = await run_through(manager, "fixture_parsing")
    assert {n: str(a.outcome) for n, a in ours.items()} == theirs
    assert done.exit_code == their_exit == 0


def _entry_point_plugin(where: Path, dist: str, module: str, fixture: str) -> None:
    """An installed distribution in ``where`` whose pytest11 entry point ``dist`` is
    ``module``, a plugin with the fixture ``fixture`` (answering ``dist``)."""
    info = where / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[pytest11]\n{dist} = {module}\n")
    (where / f"{module}.py").write_text(
        f"import pytest\n\n\n@pytest.fixture\ndef {fixture}():\n    return {dist!r}\n")


async def test_a_p_option_finds_entry_points_where_pytest_would(manager_factory,  # noqa: F811
                                                                tmp_path, monkeypatch):
    # "-p NAME" loads the pytest11 entry point NAME if a distribution on the import path
    # has one. The fork server remembers the entry points it found; a session must still
    # find one in its plugin folder, and one installed after the server started.
    lib, kept = tmp_path / "lib", tmp_path / "kept"
    lib.mkdir()
    # A distribution the server reads at its start, without the entry point yet.
    _entry_point_plugin(kept, "fidelity_ep_kept", "fidelity_ep_edited_impl", "from_edited")
    points = kept / "fidelity_ep_kept-1.0.dist-info" / "entry_points.txt"
    points.write_text("[pytest11]\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(lib), str(kept), *filter(None, [os.environ.get("PYTHONPATH")])]))
    plugins = tmp_path / "plugins"
    test = "def test_entry_point({0}):\n    assert {0} == {1!r}\n"
    edited = write_plugin(plugins, "ep_edited_in_place", {
        "pytest.ini": "[pytest]\naddopts = -p fidelity_ep_edited\n",
        "tests/test_ep.py": test.format("from_edited", "fidelity_ep_kept")})
    in_folder = write_plugin(plugins, "ep_in_folder", {
        "pytest.ini": "[pytest]\naddopts = -p fidelity_ep_here\n",
        "tests/test_ep.py": test.format("from_here", "fidelity_ep_here")})
    _entry_point_plugin(in_folder, "fidelity_ep_here", "fidelity_ep_here_impl", "from_here")
    late = write_plugin(plugins, "ep_installed_late", {
        "pytest.ini": "[pytest]\naddopts = -p fidelity_ep_late\n",
        "tests/test_ep.py": test.format("from_late", "fidelity_ep_late")})

    manager, _ = await manager_factory(plugins)
    assert manager.runner.fork
    theirs, _, _ = await asyncio.to_thread(plain_pytest, in_folder)
    assert theirs == {"tests/test_ep.py::test_entry_point": "passed"}
    done, ours = await run_through(manager, "ep_in_folder")
    assert {n: str(a.outcome) for n, a in ours.items()} == theirs
    assert done.status is RunStatus.PASSED

    # The server is up (it ran the suite above); now the distribution is installed.
    server = manager.runner._fork_server
    assert server is not None and server.alive
    _entry_point_plugin(lib, "fidelity_ep_late", "fidelity_ep_late_impl", "from_late")
    theirs, _, _ = await asyncio.to_thread(plain_pytest, late)
    assert theirs == {"tests/test_ep.py::test_entry_point": "passed"}
    done, ours = await run_through(manager, "ep_installed_late")
    assert {n: str(a.outcome) for n, a in ours.items()} == theirs
    assert done.status is RunStatus.PASSED
    assert manager.runner._fork_server is server  # the same server ran both

    # An entry point added to a distribution the server read, its entry_points.txt
    # rewritten in place (setup.py develop, egg_info): no folder's mtime changes.
    with points.open("a") as more:
        more.write("fidelity_ep_edited = fidelity_ep_edited_impl\n")
    theirs, _, _ = await asyncio.to_thread(plain_pytest, edited)
    assert theirs == {"tests/test_ep.py::test_entry_point": "passed"}
    done, ours = await run_through(manager, "ep_edited_in_place")
    assert {n: str(a.outcome) for n, a in ours.items()} == theirs
    assert manager.runner._fork_server is server


async def test_a_session_whose_end_was_read_with_its_start_is_waited_for():
    """The fork server can report a session's exit in the same read as its start (a quick
    collection on a busy machine): the session is then made with its exit known, and
    waiting for it gives that exit at once (it failed with an AssertionError in the GUI
    tests' collection once: the code was set by a callback one turn later)."""
    import signal

    from plexichat_desktop.testing.runner import _ForkedProcess

    loop = asyncio.get_running_loop()
    ended = loop.create_future()
    ended.set_result(3)
    assert await _ForkedProcess(4242, ended).wait() == 3
    gone = loop.create_future()
    gone.cancel()  # the server went away: the session counts as killed
    assert await _ForkedProcess(4243, gone).wait() == -signal.SIGKILL
    running = loop.create_future()
    waiting = asyncio.ensure_future(_ForkedProcess(4244, running).wait())
    await asyncio.sleep(0)
    waiting.cancel()  # the caller's cancel is the caller's, the session runs on
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not running.done()
