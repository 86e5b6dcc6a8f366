"""The WebUI test dashboard over real HTTP: its pages, and the JSON they read
(/tests/dashboard/...), against the real server, real pytest children and a real store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from plexichat_desktop.testing.models import Outcome, RunRecord, TestAttempt
from plexichat_desktop.testing.store import ResultStore
from tests.conftest import FIXTURES, RunningCore, module_core, wait_for_run

SUITES = FIXTURES / "suites"
# The page tests that run nothing and read nothing stored share one core with the fixture
# suites (``shared``), in the module's event loop; the ones that run tests and count what
# they stored start their own.
pytestmark = pytest.mark.asyncio(loop_scope="module")
OWN_CORE = pytest.mark.asyncio(loop_scope="function")
HTML = {"Accept": "text/html,application/xhtml+xml"}


def make_plugin(root: Path, plugin_id: str, tests: str, reruns: int = 0) -> Path:
    """A plugin folder holding only a manifest and one test file (its entry module does not
    exist, so it is 'failed' as a plugin but testable, like the fixture suites)."""
    folder = root / plugin_id
    (folder / "tests").mkdir(parents=True)
    (folder / "plugin.toml").write_text(
        f'id = "{plugin_id}"\nname = "{plugin_id.replace("_", " ").title()}"\n'
        f'version = "1.0.0"\nentry = "{plugin_id}_pkg:Plugin"\n\n'
        f"[tests]\ntimeout = 30\nreruns = {reruns}\n")
    (folder / "tests" / f"test_{plugin_id}.py").write_text(tests)
    return folder


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningCore]:
    async with module_core(tmp_path_factory.mktemp("dashboard"), SUITES) as core:
        yield core


async def test_pages_render_with_the_token_only(shared):
    core = shared
    for path in ("/tests", "/tests/plugin/mixed_suite"):
        r = await core.anonymous.get(path, headers=HTML)
        assert r.status_code == 401 and "Sign in" in r.text, path
        assert (await core.anonymous.get(path)).status_code == 401
        r = await core.client.get(path, headers=HTML)
        assert r.status_code == 200, (path, r.text[:300])
        assert r.headers["content-type"].startswith("text/html")
        assert 'id="dashboard"' in r.text and 'type="module"' in r.text
        # The CSP allows no inline script, so the pages must have none.
        assert "<script>" not in r.text and " onclick=" not in r.text
    page = (await core.client.get("/tests/plugin/mixed_suite")).text
    assert 'data-plugin-id="mixed_suite"' in page and "Mixed suite" in page
    assert '<option value="mixed_suite" selected>' in page  # the schedule form's plugin
    overview = (await core.client.get("/tests")).text
    for preset in ("hourly", "daily", "weekly", "every_30_minutes", "every_6_hours"):
        assert f'data-preset="{preset}"' in overview
    assert '<option value="Europe/Berlin">' in overview
    # Scripts and styles are served (and need the token like every non-public path).
    for asset in ("overview.js", "plugin.js", "live.js", "charts.js", "dashboard.css"):
        r = await core.client.get(f"/_app/dashboard/{asset}")
        assert r.status_code == 200, asset
        assert (await core.anonymous.get(f"/_app/dashboard/{asset}")).status_code == 401
    assert (await core.client.get("/_app/dashboard/overview.js")).headers[
        "content-type"].split(";")[0] in ("text/javascript", "application/javascript")
    index = (await core.client.get("/")).text
    assert 'href="/tests"' in index


async def test_an_unknown_plugin_is_a_404_page(shared):
    core = shared
    r = await core.client.get("/tests/plugin/ghost")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "plugin_id: no testable plugin &#39;ghost&#39;" in r.text
    assert "mixed_suite" in r.text  # it lists the ones that exist
    r = await core.client.get("/tests/dashboard/plugins/ghost")
    assert r.status_code == 404 and r.json()["detail"].startswith("plugin_id: ")


async def test_the_pages_shadow_no_api_route(shared):
    core = shared
    for path in ("/tests/statistics", "/tests/schedules", "/tests/runs", "/tests/results",
                 "/tests/live-updates", "/tests/discovered",
                 "/tests/schedule/preview?expression=daily"):
        r = await core.client.get(path, headers=HTML)
        assert r.status_code == 200 and r.json()["success"], path
    schema = (await core.client.get("/openapi.json")).json()["paths"]
    assert "/tests/dashboard/overview" in schema
    assert "/tests/dashboard/plugins/{plugin_id}/test" in schema
    assert "/tests" not in schema and "/tests/plugin/{plugin_id}" not in schema
    assert "404" in schema["/tests/dashboard/plugins/{plugin_id}"]["get"]["responses"]


@OWN_CORE
async def test_overview_rows_agree_with_the_tests_api(start_core):
    core = await start_core(SUITES)
    before = (await core.client.get("/tests/dashboard/overview")).json()
    row = next(p for p in before["plugins"] if p["id"] == "mixed_suite")
    assert row["tests"] is None and row["last_run"] is None and row["sparkline"] == []
    assert next(p for p in before["plugins"] if p["id"] == "no_tests_suite")[
        "has_tests"] is False
    assert before["live"] == [] and before["recent_results"] == []

    for _ in range(2):
        r = await core.client.post("/tests/run?wait=true", json={"plugin_name": "mixed_suite"})
        assert r.status_code == 200
    body = (await core.client.get("/tests/dashboard/overview", params={"recent": 5})).json()
    live = (await core.client.get("/tests/live-updates")).json()
    assert body["last_event_id"] == live["last_event_id"]  # nothing ran in between
    row = next(p for p in body["plugins"] if p["id"] == "mixed_suite")
    stats = (await core.client.get("/tests/statistics",
                                   params={"plugin_name": "mixed_suite"})).json()["statistics"]
    assert row["success_rate"] == stats["success_rate"] and row["results"] == stats["total"]
    assert row["runs"] == stats["runs"] == 2
    assert row["tests"] == 22 and row["tests_source"] == "results"
    assert row["last_run"]["status"] == "failed" and row["failed_tests"] == 11
    assert [s["status"] for s in row["sparkline"]] == ["failed", "failed"]
    assert row["sparkline"][0]["id"] < row["sparkline"][1]["id"]  # oldest first
    assert row["sparkline"][-1]["success_rate"] == pytest.approx(9 / 20)
    assert len(body["recent_results"]) == 5
    newest = (await core.client.get("/tests/results", params={"limit": 5})).json()["results"]
    assert body["recent_results"] == newest
    await core.client.post("/tests/discover", params={"plugin_name": "mixed_suite"})
    row = next(p for p in (await core.client.get("/tests/dashboard/overview")).json()[
        "plugins"] if p["id"] == "mixed_suite")
    assert row["tests"] == 22 and row["tests_source"] == "collected"


@OWN_CORE
async def test_plugin_snapshot_has_the_tree_last_results_and_flaky_marks(start_core, tmp_path):
    marker = tmp_path / "flaky-marker"
    extra = tmp_path / "plugins"
    make_plugin(extra, "wobbly", f"""
import pathlib

import pytest

MARKER = pathlib.Path({str(marker)!r})


def test_steady():
    assert True


def test_wobbles():
    # Fails on its first attempt in each run, passes on the rerun: flaky.
    if not MARKER.exists():
        MARKER.write_text("x")
        assert False, "first try"
    MARKER.unlink()


class TestBox:
    @pytest.mark.parametrize("n", [1, 2])
    def test_case(self, n):
        assert n == 1
""", reruns=1)
    core = await start_core(SUITES, extra)
    snap = (await core.client.get("/tests/dashboard/plugins/wobbly")).json()
    assert snap["plugin"]["id"] == "wobbly" and snap["plugin"]["has_tests"]
    assert snap["tests"] == [] and snap["discovered"] is False and snap["runs"] == []

    await core.client.post("/tests/discover", params={"plugin_name": "wobbly"})
    r = await core.client.post("/tests/run?wait=true", json={"plugin_name": "wobbly"})
    assert r.status_code == 200
    snap = (await core.client.get("/tests/dashboard/plugins/wobbly")).json()
    assert snap["discovered"] is True
    by_id = {t["nodeid"]: t for t in snap["tests"]}
    assert list(by_id) == [  # collection order, as pytest lists them
        "tests/test_wobbly.py::test_steady", "tests/test_wobbly.py::test_wobbles",
        "tests/test_wobbly.py::TestBox::test_case[1]",
        "tests/test_wobbly.py::TestBox::test_case[2]"]
    case = by_id["tests/test_wobbly.py::TestBox::test_case[2]"]
    assert case["cls"] == "TestBox" and case["name"] == "test_case[2]" and case["collected"]
    assert case["last"]["outcome"] == "failed" and "assert 2 == 1" in case["last"]["message"]
    assert case["flaky"] is False
    wobbles = by_id["tests/test_wobbly.py::test_wobbles"]
    assert wobbles["last"]["outcome"] == "passed" and wobbles["last"]["flaky"] is True
    assert wobbles["flaky"] is True and wobbles["last"]["message"] == ""
    assert by_id["tests/test_wobbly.py::test_steady"]["flaky"] is False
    assert [r["status"] for r in snap["runs"]] == ["failed"] and snap["live"] == []

    details = (await core.client.get("/tests/dashboard/plugins/wobbly/test", params={
        "test_name": "tests/test_wobbly.py::test_wobbles"})).json()
    assert [a["status"] for a in details["attempts"]] == ["passed", "failed"]
    assert details["attempts"][1]["message"] == "AssertionError: first try"
    assert "first try" in details["attempts"][1]["error"]
    assert details["statistics"]["flaky_rate"] == 1.0 and details["collected"] is True


@OWN_CORE
async def test_test_details_show_the_failure_and_captured_output(start_core):
    core = await start_core(SUITES)
    await core.client.post("/tests/run?wait=true", json={"plugin_name": "mixed_suite"})
    url = "/tests/dashboard/plugins/mixed_suite/test"
    body = (await core.client.get(url, params={
        "test_name": "tests/test_mixed.py::test_fails"})).json()
    attempt = body["attempts"][0]
    assert attempt["status"] == "failed" and attempt["message"] == "AssertionError: lists differ"
    assert "assert [1, 2] == [1, 3]" in attempt["error"]
    assert body["statistics"]["total"] == 1 and body["statistics"]["success_rate"] == 0
    assert body["statistics"]["flip_rate"] is None  # fewer than two results
    body = (await core.client.get(url, params={
        "test_name": "tests/test_mixed.py::TestGroup::test_in_class"})).json()
    assert "hello from stdout" in body["attempts"][0]["metadata"]["stdout"]

    cases = [
        (url, {"test_name": "tests/test_mixed.py::nope"}, 404, "test_name: "),
        (url, {}, 422, "test_name"),
        (url, {"test_name": "tests/test_mixed.py::test_fails", "attempts": 0}, 422,
         "attempts"),
        ("/tests/dashboard/plugins/ghost/test", {"test_name": "x"}, 404, "plugin_id: "),
        ("/tests/dashboard/overview", {"recent": 201}, 422, "recent"),
        ("/tests/dashboard/overview", {"recent": "lots"}, 422, "recent"),
        ("/tests/dashboard/plugins/mixed_suite", {"runs": 0}, 422, "runs"),
    ]
    for path, params, status, needle in cases:
        r = await core.client.get(path, params=params)
        assert r.status_code == status, (path, params, r.text)
        assert needle in str(r.json()["detail"]), (path, params, r.text)


@OWN_CORE
async def test_rerun_failed_queues_exactly_the_failures(start_core):
    core = await start_core(SUITES)
    url = "/tests/dashboard/plugins/mixed_suite/rerun-failed"
    r = await core.client.post(url)
    assert r.status_code == 409 and r.json()["detail"].startswith("plugin_id: ")
    await core.client.post("/tests/run?wait=true", json={"plugin_name": "mixed_suite",
                                                        "test_name": "test_param"})
    r = await core.client.post(url, json={"priority": "high"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["tests"] == ["tests/test_mixed.py::test_param[two]"]
    assert body["run"]["priority"] == "high" and body["run"]["trigger"] == "dashboard"
    done = await wait_for_run(core, body["run_id"])
    assert [res["test_name"] for res in done["results"]] == body["tests"]
    for path, kwargs, status, needle in [
        ("/tests/dashboard/plugins/ghost/rerun-failed", {}, 404, "plugin_id: "),
        (url, {"json": {"priority": "urgent"}}, 422, "priority"),
        (url, {"json": {"colour": "red"}}, 422, "colour"),
    ]:
        r = await core.client.post(path, **kwargs)
        assert r.status_code == status, (path, r.text)
        assert needle in str(r.json()["detail"])
    # A foreign page may not start runs through it (the server-wide Origin rule).
    r = await core.client.post(url, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403


@OWN_CORE
async def test_a_snapshot_taken_mid_run_has_the_live_progress(start_core, tmp_path):
    gate = tmp_path / "gate"
    extra = tmp_path / "plugins"
    make_plugin(extra, "gated", f"""
import pathlib
import time

GATE = pathlib.Path({str(gate)!r})


def test_a_passes():
    assert True


def test_b_fails():
    assert 1 == 2


def test_c_waits_for_the_gate():
    deadline = time.monotonic() + 30
    while not GATE.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert GATE.exists()
""")
    core = await start_core(extra)
    run_id = (await core.client.post("/tests/run", json={"plugin_name": "gated"})).json()[
        "run_id"]
    try:
        async with asyncio.timeout(30):
            while True:
                body = (await core.client.get("/tests/dashboard/overview")).json()
                live = body["live"]
                if live and live[0]["completed"] == 2 and live[0]["current"]:
                    break
                await asyncio.sleep(0.05)
        entry = live[0]
        assert entry["run"]["id"] == run_id and entry["run"]["status"] == "running"
        assert entry["total"] == 3
        assert {k: v["outcome"] for k, v in entry["results"].items()} == {
            "tests/test_gated.py::test_a_passes": "passed",
            "tests/test_gated.py::test_b_fails": "failed"}
        assert entry["current"] == "tests/test_gated.py::test_c_waits_for_the_gate"
        snap = (await core.client.get("/tests/dashboard/plugins/gated")).json()
        assert snap["live"][0]["results"] == entry["results"]
        # Every event the snapshot includes is at or below its last_event_id.
        assert snap["last_event_id"] >= body["last_event_id"]
    finally:
        gate.write_text("open")
    done = await wait_for_run(core, run_id)
    assert done["run"]["status"] == "failed"
    assert (await core.client.get("/tests/dashboard/overview")).json()["live"] == []


async def test_test_summaries_counts_flaky_results_and_flips(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "tests.sqlite3")
    now = time.time()
    history = {  # per run, oldest first: (outcome, flaky retry first?)
        "a": ["passed", "failed", "passed", "skipped", "failed"],
        "b": ["passed", "passed", "passed", "passed", "passed"],
    }
    try:
        for index in range(5):
            run = RecordingRun(store, now + index)
            for nodeid, outcomes in history.items():
                run.result(nodeid, outcomes[index], flaky=(nodeid == "b" and index == 3))
        summaries = store.test_summaries("p", window=30)
        a, b = summaries["a"], summaries["b"]
        assert a["outcome"] == "failed" and a["message"] == "boom a"
        assert a["decided"] == 4 and a["flips"] == 3 and a["recent_flaky"] == 0
        assert b["outcome"] == "passed" and b["flaky"] is False and b["recent_flaky"] == 1
        assert b["flips"] == 0 and b["message"] == ""
        narrow = store.test_summaries("p", window=2)
        assert narrow["a"]["decided"] == 1 and narrow["a"]["flips"] == 0
        assert narrow["b"]["recent_flaky"] == 1
        assert store.test_summaries("other") == {}
    finally:
        store.close()


class RecordingRun:
    """One stored run of plugin 'p' finishing at ``at``."""

    def __init__(self, store: ResultStore, at: float):
        self.store = store
        self.at = at
        self.run = RunRecord(plugin_id="p", status="passed", queued_at=at)  # type: ignore[arg-type]
        store.create_run(self.run)

    def result(self, nodeid: str, outcome: str, flaky: bool = False) -> None:
        assert self.run.id is not None
        attempts = []
        if flaky:
            attempts.append(TestAttempt(run_id=self.run.id, plugin_id="p", nodeid=nodeid,
                                        outcome=Outcome.FAILED, attempt=1,
                                        started_at=self.at, finished_at=self.at))
        attempts.append(TestAttempt(
            run_id=self.run.id, plugin_id="p", nodeid=nodeid, outcome=Outcome(outcome),
            attempt=len(attempts) + 1, message=f"boom {nodeid}" if outcome == "failed" else "",
            started_at=self.at, finished_at=self.at + 0.5))
        self.store.add_attempts(attempts)
