"""Result analytics: failure patterns, duration tracking with suggestions, categories;
through the store, the real /tests API and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plexichat_desktop.testing.analytics import (
    failure_signature,
    got_slower,
    mask,
    suggestions,
)
from plexichat_desktop.testing.models import Outcome, RunRecord, TestAttempt
from plexichat_desktop.testing.store import ResultStore
from tests.conftest import run_many, wait_for_run

MANIFEST = 'id = "{id}"\nname = "{id}"\nversion = "1.0.0"\nentry = "{id}_pkg:Plugin"\n'


def test_masking_keeps_the_words_and_drops_what_changes():
    assert mask("user 4711 not found at /tmp/x/y.db (id 0x7f3a, 127.0.0.1:8080)") == \
        "user <n> not found at <path> (id <hex>, <address>)"
    assert mask("token 3f2b1c4e-9a8b-4c7d-8e6f-0a1b2c3d4e5f is 'expired-99'") == \
        "token <uuid> is <str>"


def test_the_same_bug_with_other_ids_is_one_signature():
    frames = [{"path": "tests/test_api.py", "func": "test_lookup", "line": 12}]
    one = failure_signature("failed", "KeyError: 'user-17'", "tests/test_api.py::test_lookup",
                            "KeyError", frames)
    two = failure_signature("failed", "KeyError: 'user-942'", "tests/test_api.py::test_lookup",
                            "KeyError", [{**frames[0], "line": 30}])
    assert one == two == "KeyError: <str> @ tests/test_api.py:test_lookup"
    other = failure_signature("failed", "ValueError: 'user-17'",
                              "tests/test_api.py::test_lookup", "ValueError", frames)
    elsewhere = failure_signature("failed", "KeyError: 'user-17'", "tests/test_b.py::test_b",
                                  "KeyError", [{"path": "tests/test_b.py", "func": "test_b"}])
    assert len({one, other, elsewhere}) == 3
    # Read off the message when the child sent no type (a crash, an old record).
    assert failure_signature("timed_out", "timed out: the test took longer than 2 s",
                             "tests/test_x.py::test_y").startswith("timed_out: ")


def seed(store: ResultStore, plugin_id: str, failures: list[tuple[str, str, str]]) -> int:
    """One run whose attempts fail with (nodeid, exception type, message)."""
    run = RunRecord(plugin_id=plugin_id)
    store.create_run(run)
    assert run.id is not None
    store.add_attempts([TestAttempt(
        run_id=run.id, plugin_id=plugin_id, nodeid=nodeid, outcome=Outcome.FAILED,
        message=f"{kind}: {message}",
        signature=failure_signature("failed", f"{kind}: {message}", nodeid, kind,
                                    [{"path": nodeid.split("::")[0],
                                      "func": nodeid.split("::")[-1]}]))
        for nodeid, kind, message in failures])
    return run.id


def test_a_seeded_history_groups_into_patterns(tmp_path):
    with ResultStore(tmp_path / "tests.sqlite3") as store:
        first = seed(store, "alpha", [("tests/test_a.py::test_get", "KeyError", "'id-1'"),
                                      ("tests/test_a.py::test_put", "TimeoutError", "after 3 s")])
        seed(store, "alpha", [("tests/test_a.py::test_get", "KeyError", "'id-2'")])
        third = seed(store, "alpha", [("tests/test_a.py::test_get", "KeyError", "'id-77'"),
                                      ("tests/test_a.py::test_new", "ZeroDivisionError",
                                       "division by zero")])
        groups = {g.signature.split(":")[0]: g for g in store.failure_groups("alpha")}
        assert set(groups) == {"KeyError", "TimeoutError", "ZeroDivisionError"}
        key = groups["KeyError"]
        assert (key.count, key.tests_affected, key.first_run_id, key.last_run_id) == \
            (3, 1, first, third)
        assert key.tests == ["alpha::tests/test_a.py::test_get"]
        assert "id-77" in key.example["message"]
        fresh = store.failure_groups("alpha", new_since_run=third - 1)
        assert [g.signature.split(":")[0] for g in fresh] == ["ZeroDivisionError"]


def test_a_slowed_down_test_is_flagged_with_its_evidence():
    recent, before = [0.5, 0.52, 0.49, 0.51, 0.5], [0.1, 0.11, 0.1, 0.09, 0.1, 0.12, 0.1]
    history = [*recent, *before]
    evidence = got_slower(history)
    assert evidence is not None
    assert evidence["recent_median"] == 0.5 and evidence["history_median"] == 0.1
    assert evidence["ratio"] == 5.0
    # Noise within its own spread is not a slowdown, nor is too little history.
    assert got_slower([0.12, 0.1, 0.11, 0.13, 0.1, 0.1, 0.12, 0.09, 0.13, 0.1]) is None
    assert got_slower([0.5] * 5 + [0.1] * 2) is None


def test_suggestions_name_their_evidence():
    rows = [{"nodeid": "tests/test_a.py::test_sleeps", "timings":
             {"setup": 0.0, "call": 0.8, "teardown": 0.0, "cpu": 0.01}},
            *({"nodeid": f"tests/test_b.py::test_{i}", "timings":
               {"setup": 0.3, "call": 0.01, "teardown": 0.0, "cpu": 0.3}} for i in range(3))]
    found = {(f.kind, f.nodeid): f for f in suggestions("p", rows)}
    assert set(found) == {("waits", "tests/test_a.py::test_sleeps"),
                          ("shared_fixture", "tests/test_b.py")}
    assert found[("waits", "tests/test_a.py::test_sleeps")].evidence == {"call": 0.8,
                                                                         "cpu": 0.01}
    assert len(found[("shared_fixture", "tests/test_b.py")].evidence["tests"]) == 3


ANALYTICS_SUITE = '''
import time
import uuid

import pytest


@pytest.fixture
def slow_resource():
    time.sleep(0.25)
    return object()


@pytest.mark.security
def test_login_rejects_bad_token():
    token = str(uuid.uuid4())
    assert token == "expected", f"unexpected token {token}"


@pytest.mark.security
@pytest.mark.integration
def test_passes_securely():
    pass


@pytest.mark.performance
def test_waits_for_a_reply():
    time.sleep(0.4)


def test_divides():
    assert 1 / 0


def test_uses_resource_1(slow_resource):
    pass


def test_uses_resource_2(slow_resource):
    pass


def test_uses_resource_3(slow_resource):
    pass
'''


@pytest.mark.asyncio
async def test_analytics_over_the_api_and_the_cli(start_core, tmp_path, home):
    plugins = tmp_path / "plugins"
    folder = plugins / "analytics_suite"
    (folder / "tests").mkdir(parents=True)
    (folder / "plugin.toml").write_text(MANIFEST.format(id="analytics_suite"))
    (folder / "tests" / "test_a.py").write_text(textwrap.dedent(ANALYTICS_SUITE))
    core = await start_core(plugins)
    runs = []
    for _ in range(2):
        r = await core.client.post("/tests/run", json={"plugin_name": "analytics_suite"})
        assert r.status_code == 202
        runs.append((await wait_for_run(core, r.json()["run_id"]))["run"])

    body = (await core.client.get("/tests/analytics/failures",
                                  params={"plugin_name": "analytics_suite"})).json()
    patterns = {p["signature"]: p for p in body["patterns"]}
    # Two runs, two different tokens: one pattern of two failures; the division another.
    assert set(patterns) == {
        "AssertionError: unexpected token <uuid> @ tests/test_a.py:test_login_rejects_bad_token",
        "ZeroDivisionError: division by zero @ tests/test_a.py:test_divides"}
    for pattern in patterns.values():
        assert pattern["count"] == 2 and pattern["tests_affected"] == 1
        assert pattern["first_run_id"] == runs[0]["id"]
        assert pattern["last_run_id"] == runs[1]["id"]
    fresh = (await core.client.get("/tests/analytics/failures",
                                   params={"new_since_run": runs[1]["id"]})).json()
    assert fresh["patterns"] == []

    durations = (await core.client.get("/tests/analytics/durations",
                                       params={"plugin_name": "analytics_suite"})).json()
    kinds = {(s["kind"], s["nodeid"]) for s in durations["suggestions"]}
    assert ("waits", "tests/test_a.py::test_waits_for_a_reply") in kinds
    assert ("shared_fixture", "tests/test_a.py") in kinds
    assert durations["slowest_tests"][0]["nodeid"] == "tests/test_a.py::test_waits_for_a_reply"
    assert durations["slowest_plugins"][0]["plugin_id"] == "analytics_suite"

    cats = (await core.client.get("/tests/analytics/categories",
                                  params={"plugin_name": "analytics_suite"})).json()
    security = cats["categories"]["security"]
    assert security["total"] == 4 and security["counts"]["failed"] == 2
    assert security["success_rate"] == 0.5
    assert cats["categories"]["ux"]["total"] == 0
    only = (await core.client.get("/tests/results", params={
        "category": "security", "run_id": runs[1]["id"]})).json()
    assert sorted(r["test_name"] for r in only["results"]) == [
        "tests/test_a.py::test_login_rejects_bad_token", "tests/test_a.py::test_passes_securely"]
    stats = (await core.client.get("/tests/statistics", params={
        "plugin_name": "analytics_suite", "category": "performance"})).json()["statistics"]
    assert stats["total"] == 2 and stats["counts"]["passed"] == 2
    bad = await core.client.get("/tests/results", params={"category": "speed"})
    assert bad.status_code == 422 and "category" in bad.text

    env = {**os.environ, "PLEXICHAT_DESKTOP_HOME": str(home.config_dir.parent)}
    out, failed, slow_out, huge, zero, unknown, one, *timeouts = run_many([
        ["results", "--failures", "--json"], ["results", str(runs[1]["id"]), "--failed"],
        ["results", "--slow"], ["results", "9" * 23], ["results", "--limit", "0"],
        ["results", "analytics_suiet"], ["results", "analytics_suite", "--limit", "1",
                                            "--category", "security"],
        *(["test", "analytics_suite", "--timeout", t] for t in ("nan", "inf", "0")),
        ["results", "\u00b2"]], env)
    superscript = timeouts.pop()
    # "²".isdigit() is true: it was taken for a run id and int() raised a traceback.
    assert superscript.returncode == 2 and "unknown plugin" in superscript.stderr, (
        superscript.returncode, superscript.stderr)
    # Bad input is an error with exit code 2, not a traceback or an empty list (nor, for
    # --timeout nan, a run in which every test "took longer than nan s").
    assert all(t.returncode == 2 and "--timeout must be a number of seconds" in t.stderr
               for t in timeouts), [(t.returncode, t.stderr) for t in timeouts]
    assert (huge.returncode, huge.stderr.strip()) == (2, f"error: no run {'9' * 23}")
    assert zero.returncode == 2 and "--limit: must be 1 or more" in zero.stderr
    assert unknown.returncode == 2 and "unknown plugin 'analytics_suiet'" in unknown.stderr
    rows = [line for line in one.stdout.splitlines() if line.split()[1:2] == ["analytics_suite"]]
    assert one.returncode == 0 and len(rows) == 1, one.stdout
    # The figures say they are the category's (audit: they read as the runs' own).
    assert "Statistics for analytics_suite (the security tests only):" in one.stdout
    assert {p["signature"] for p in json.loads(out.stdout)["patterns"]} == set(patterns)
    text = failed.stdout
    assert "FAILED     tests/test_a.py::test_divides" in text
    assert "ZeroDivisionError" in text and "test_passes_securely" not in text
    slow = slow_out.stdout
    assert "it sleeps or waits" in slow and "module- or session-scoped fixture" in slow


def test_categories_are_registered_for_strict_markers(tmp_path):
    (tmp_path / "test_m.py").write_text(
        "import pytest\n@pytest.mark.ux\ndef test_a():\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "--strict-markers", "-p",
                           "plexichat_desktop.testing.reporter", "-p", "no:cacheprovider",
                           str(tmp_path / "test_m.py")], cwd=Path(tmp_path),
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert proc.returncode == 0, proc.stdout
