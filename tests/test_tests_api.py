"""The /tests HTTP API against the real server, real pytest children and a real store."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.conftest import FIXTURES, RunningCore, module_core, wait_for_run

SUITES = FIXTURES / "suites"
# Tests whose checks hold whatever else the core has run or stored share one core with
# the fixture suites (``shared``), in the module's event loop: a core and its pytest fork
# server (started by the first run) cost more CPU than most of these tests. The ones that
# count results or list every schedule start their own.
pytestmark = pytest.mark.asyncio(loop_scope="module")
OWN_CORE = pytest.mark.asyncio(loop_scope="function")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningCore]:
    async with module_core(tmp_path_factory.mktemp("tests-api"), SUITES) as core:
        yield core


async def test_the_seed_curl_examples_work(shared):
    core = shared
    # Five pytest collections: on a loaded machine that can take longer than the client's
    # usual 10 s, and a busy machine is no reason to fail.
    r = await core.client.post("/tests/discover", timeout=120)
    assert r.status_code == 200
    body = r.json()
    assert body["success"] and body["discovered_count"] >= 22
    assert body["plugins"]["mixed_suite"]["tests"] == 22
    assert body["plugins"]["broken_suite"]["errors"][0]["nodeid"] == "tests/test_syntax_error.py"

    r = await core.client.post("/tests/run", json={"plugin_name": "mixed_suite"})
    assert r.status_code == 202
    run_id = r.json()["run_id"]
    assert r.json()["status_url"] == f"/tests/runs/{run_id}"
    done = await wait_for_run(core, run_id)
    assert done["run"]["status"] == "failed"
    outcomes = {res["test_name"]: res["status"] for res in done["results"]}
    assert outcomes["tests/test_mixed.py::test_passes"] == "passed"
    assert outcomes["tests/test_mixed.py::test_xfails"] == "xfailed"

    r = await core.client.post("/tests/schedule", json={
        "plugin_name": "mixed_suite", "test_name": "test_passes",
        "schedule_expression": "daily", "priority": "high"})
    assert r.status_code == 201, r.text
    schedule = r.json()["schedule"]
    assert schedule["priority"] == "high" and schedule["next_run_at"] is not None


async def test_run_and_wait_returns_results(shared):
    core = shared
    r = await core.client.post("/tests/run?wait=true",
                               json={"plugin_name": "mixed_suite", "test_name": "test_param"})
    assert r.status_code == 200
    body = r.json()
    assert sorted(res["status"] for res in body["results"]) == ["failed", "passed", "passed"]
    failed = next(res for res in body["results"] if res["status"] == "failed")
    assert failed["message"] == "assert 2 != 2" and "assert value != 2" in failed["error"]


async def test_bad_input_is_4xx_naming_the_field(shared):
    core = shared
    cases = [
        ("post", "/tests/run", {"plugin_name": "ghost"}, 404, "plugin_name: "),
        ("post", "/tests/run", {"plugin_name": "mixed_suite", "test_name": "nope"}, 404,
         "test_name: "),
        ("post", "/tests/run", {"plugin_name": "mixed_suite", "priority": "urgent"}, 422,
         "priority"),
        ("post", "/tests/run", {"plugin_name": "mixed_suite", "timeout": "soon"}, 422,
         "timeout"),
        ("post", "/tests/run", {"plugin_name": "mixed_suite", "colour": 1}, 422, "colour"),
        ("post", "/tests/bulk-run", ["mixed_suite", "ghost"], 404, "plugins[1]: "),
        ("post", "/tests/bulk-run", {"plugins": []}, 422, "plugins"),
        ("post", "/tests/discover?plugin_name=ghost", None, 404, "plugin_name: "),
        ("get", "/tests/runs/999999", None, 404, "run_id: "),
        ("delete", "/tests/runs/999999", None, 404, "run_id: "),
        ("get", "/tests/results?limit=0", None, 422, "limit"),
        ("get", "/tests/results?status=great", None, 422, "status"),
        ("get", "/tests/results?plugin_name=ghost", None, 404, "plugin_name: "),
        ("get", "/tests/statistics?plugin_name=ghost", None, 404, "plugin_name: "),
        ("post", "/tests/schedule", {"plugin_name": "mixed_suite",
                                     "schedule_expression": "every_0_minutes"}, 422,
         "schedule_expression: "),
        ("post", "/tests/schedule", {"plugin_name": "mixed_suite",
                                     "schedule_expression": "daily",
                                     "timezone": "Mars/Olympus"}, 422, "timezone"),
        ("post", "/tests/schedule", {"plugin_name": "ghost", "schedule_expression": "daily"},
         404, "plugin_name: "),
        ("patch", "/tests/schedule/nope", {"enabled": False}, 404, "schedule_id: "),
        ("delete", "/tests/schedule/nope", None, 404, "schedule_id: "),
        ("get", "/tests/schedule/preview?expression=bogus", None, 422, "schedule_expression"),
        # A user-side audit: an expression holding "zone" was blamed on the timezone, JSON
        # true became a 1 s timeout or 1 retry and 0 or "yes" a boolean, and a mistyped
        # plugin listed no schedule without a word.
        ("post", "/tests/schedule", {"plugin_name": "mixed_suite",
                                     "schedule_expression": "every_5_zones"}, 422,
         "schedule_expression: "),
        ("post", "/tests/schedule", {"plugin_name": "mixed_suite",
                                     "schedule_expression": "daily", "timeout": True}, 422,
         "timeout"),
        ("post", "/tests/run", {"plugin_name": "mixed_suite", "retries": True}, 422,
         "retries"),
        ("post", "/tests/schedule", {"plugin_name": "mixed_suite",
                                     "schedule_expression": "daily", "enabled": 0}, 422,
         "enabled"),
        ("patch", "/tests/schedule/nope", {"enabled": "yes"}, 422, "enabled"),
        ("get", "/tests/schedules?plugin_name=ghost", None, 404, "plugin_name: "),
    ]
    for method, path, body, status, needle in cases:
        kwargs = {} if body is None else {"json": body}
        r = await core.client.request(method.upper(), path, **kwargs)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        assert needle in json.dumps(r.json()["detail"]), (path, r.text)


@OWN_CORE
async def test_results_filter_before_limit_and_statistics(start_core):
    core = await start_core(SUITES)
    r = await core.client.post("/tests/run?wait=true", json={"plugin_name": "mixed_suite"})
    assert r.status_code == 200
    failed = (await core.client.get("/tests/results",
                                    params={"status": "failed", "limit": 3})).json()
    assert failed["count"] == 3 and failed["total"] == 9 and failed["has_more"]
    assert all(res["status"] == "failed" for res in failed["results"])
    stats = (await core.client.get("/tests/statistics",
                                   params={"plugin_name": "mixed_suite"})).json()["statistics"]
    assert stats["total"] == 22 and stats["counts"]["failed"] == 9
    assert len(stats["daily"]) == 30


async def test_cancel_and_bulk_run(shared):
    core = shared
    # A plugin named twice runs once; thousands of names are refused (an audit's worry:
    # as many runs queued).
    r = await core.client.post("/tests/bulk-run",
                               json=["fault_suite", "mixed_suite", "fault_suite"])
    assert r.status_code == 202
    fault_run, mixed_run = r.json()["run_ids"]
    huge = await core.client.post("/tests/bulk-run", json=["mixed_suite"] * 1001)
    assert huge.status_code == 422, huge.text
    r = await core.client.delete(f"/tests/runs/{fault_run}")
    assert r.status_code == 200
    assert (await wait_for_run(core, fault_run))["run"]["status"] == "cancelled"
    assert (await wait_for_run(core, mixed_run))["run"]["status"] == "failed"
    assert (await core.client.delete(f"/tests/runs/{fault_run}")).status_code == 409


@OWN_CORE
async def test_schedules_crud_and_preview(start_core):
    core = await start_core(SUITES)
    preview = (await core.client.get("/tests/schedule/preview",
                                     params={"expression": "every_30_minutes"})).json()
    assert len(preview["next"]) == 5
    created = (await core.client.post("/tests/schedule", json={
        "plugin_name": "mixed_suite", "schedule_expression": "hourly",
        "timezone": "Europe/Berlin"})).json()["schedule"]
    listed = (await core.client.get("/tests/schedules")).json()["schedules"]
    assert [s["id"] for s in listed] == [created["id"]]
    r = await core.client.patch(f"/tests/schedule/{created['id']}",
                                json={"enabled": False})
    assert r.json()["schedule"]["enabled"] is False
    assert r.json()["schedule"]["next_run_at"] is None
    one = (await core.client.get(f"/tests/schedule/{created['id']}")).json()
    assert one["schedule"]["timezone"] == "Europe/Berlin"
    assert (await core.client.delete(f"/tests/schedule/{created['id']}")).status_code == 200
    assert (await core.client.get("/tests/schedules")).json()["schedules"] == []


async def test_events_stream_a_run_in_order_and_resume(shared):
    core = shared
    seen: list[tuple[int, str, dict]] = []

    async def read(until_finished: int) -> None:
        async with core.client.stream("GET", "/tests/events") as response:
            event_id, name = None, None
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name:
                    seen.append((event_id, name, json.loads(line[6:])))
                    if name == "tests.run_finished" and \
                            seen[-1][2]["run"]["id"] == until_finished:
                        return

    r = await core.client.post("/tests/run", json={"plugin_name": "mixed_suite",
                                                  "test_name": "test_param"})
    run_id = r.json()["run_id"]
    reader = asyncio.create_task(read(run_id))
    await asyncio.wait_for(reader, 60)
    names = [name for _, name, _ in seen]
    # Events from before the connection are not replayed without Last-Event-ID ...
    assert names[-1] == "tests.run_finished"
    ids = [event_id for event_id, _, _ in seen]
    assert ids == sorted(ids)
    # ... and a client that resumes gets exactly what it missed, in order.
    first_id = ids[0]
    async with core.client.stream("GET", "/tests/events",
                                  headers={"Last-Event-ID": str(first_id - 1)}) as response:
        replay = []
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                replay.append(int(line[4:]))
                if replay[-1] == ids[-1]:
                    break
    assert replay == ids


async def test_live_updates_fallback(shared):
    core = shared
    await core.client.post("/tests/run?wait=true", json={"plugin_name": "mixed_suite",
                                                        "test_name": "test_passes"})
    body = (await core.client.get("/tests/live-updates")).json()
    assert body["success"] and body["running_tests"] == []
    assert body["recent_results"][0]["test_name"] == "tests/test_mixed.py::test_passes"


@OWN_CORE
async def test_a_schedule_fires_on_time_and_its_results_show(start_core):
    core = await start_core(SUITES)
    # Once a minute at the second two seconds from now (the finest a test schedule goes:
    # "* * * * * */2" is refused).
    second = (math.ceil(time.time()) + 2) % 60
    assert (await core.client.post("/tests/schedule", json={
        "plugin_name": "mixed_suite", "schedule_expression": "* * * * * */2"})
            ).status_code == 422
    created = await core.client.post("/tests/schedule", json={
        "plugin_name": "mixed_suite", "test_name": "test_passes",
        "schedule_expression": f"* * * * * {second}", "timezone": "UTC"})
    assert created.status_code == 201, created.text
    schedule_id = created.json()["schedule_id"]
    again = await core.client.post("/tests/schedule", json={
        "plugin_name": "mixed_suite", "test_name": "test_passes",
        "schedule_expression": f"* * * * * {second}", "timezone": "UTC"})
    assert again.status_code == 409 and schedule_id in again.json()["detail"], again.text
    async with asyncio.timeout(30):
        while True:
            body = (await core.client.get("/tests/results",
                                          params={"plugin_name": "mixed_suite"})).json()
            if body["total"]:
                break
            await asyncio.sleep(0.1)
    result = body["results"][0]
    assert result["test_name"] == "tests/test_mixed.py::test_passes"
    run = (await core.client.get(f"/tests/runs/{result['run_id']}")).json()["run"]
    assert run["trigger"] == "schedule" and run["schedule_id"] == schedule_id
    stats = (await core.client.get("/tests/statistics",
                                   params={"plugin_name": "mixed_suite"})).json()
    assert stats["statistics"]["total"] >= 1
    await core.client.delete(f"/tests/schedule/{schedule_id}")


# -- regressions found by the schema-driven fuzz pass (tests/test_api_fuzz.py) --------------

async def test_numbers_beyond_sqlite_integers_are_422_not_500(shared):
    core = shared
    huge = 2**63  # one past SQLite's largest integer: the driver raised OverflowError
    for method, path, field in [("GET", f"/tests/runs/{huge}", "run_id"),
                                ("DELETE", f"/tests/runs/{huge}", "run_id"),
                                ("GET", f"/tests/runs?offset={huge}", "offset"),
                                ("GET", f"/tests/results?offset={10**25}", "offset")]:
        r = await core.client.request(method, path)
        assert r.status_code == 422, (path, r.status_code, r.text)
        assert r.json()["detail"][0]["loc"][-1] == field
    r = await core.client.get(f"/tests/runs/{2**63 - 1}")
    assert r.status_code == 404


async def test_bulk_run_checks_every_plugin_before_queuing_any(shared):
    core = shared
    runs = (await core.client.get("/tests/runs")).json()["total"]  # of the tests before
    r = await core.client.post("/tests/bulk-run", json=["mixed_suite", "no_tests_suite"])
    assert r.status_code == 404, r.text
    assert r.json()["detail"].startswith("plugins[1]: plugin 'no_tests_suite' has no tests")
    assert (await core.client.get("/tests/runs")).json()["total"] == runs  # none queued


async def test_a_plugin_without_tests_is_blamed_on_plugin_name(shared):
    # The field used to come from the message: "no tests folder" contains "no test".
    core = shared
    for path, body in [("/tests/schedule", {"plugin_name": "no_tests_suite",
                                            "schedule_expression": "daily"}),
                       ("/tests/run", {"plugin_name": "no_tests_suite", "test_name": "x"})]:
        r = await core.client.post(path, json=body)
        assert r.status_code == 404, r.text
        assert r.json()["detail"].startswith("plugin_name: "), r.text


async def test_patching_a_schedule_field_to_null_is_422_naming_it(shared):
    core = shared
    created = (await core.client.post("/tests/schedule", json={
        "plugin_name": "mixed_suite", "schedule_expression": "daily"})).json()["schedule"]
    for field in ("schedule_expression", "priority", "enabled"):
        r = await core.client.patch(f"/tests/schedule/{created['id']}", json={field: None})
        assert r.status_code == 422, (field, r.text)
        assert r.json()["detail"][0]["loc"] == ["body", field]
    r = await core.client.patch(f"/tests/schedule/{created['id']}", json={"timeout": None})
    assert r.status_code == 200, r.text


async def test_openapi_documents_the_error_answers(shared):
    core = shared
    doc = (await core.client.get("/openapi.json")).json()
    paths = doc["paths"]
    assert {"404", "422"} <= set(paths["/tests/runs/{run_id}"]["get"]["responses"])
    assert "409" in paths["/tests/runs/{run_id}"]["delete"]["responses"]
    assert {"200", "202", "400", "404"} <= set(paths["/tests/run"]["post"]["responses"])
    assert "404" in paths["/api/plugins/{plugin_id}"]["get"]["responses"]
    error = doc["components"]["schemas"]["ErrorBody"]["properties"]["detail"]
    assert {"string", "array"} <= {alt.get("type") for alt in error["anyOf"]}
    bulk = paths["/tests/bulk-run"]["post"]["requestBody"]["content"]["application/json"]
    array = next(alt for alt in bulk["schema"]["anyOf"] if alt.get("type") == "array")
    assert array["minItems"] == 1


async def test_odd_inputs_get_clear_answers(shared):
    core = shared
    r = await core.client.post("/tests/run", json={"plugin_name": "mixed_suite",
                                                   "test_name": "test_passes",
                                                   "timeout": 1e-320})
    assert r.status_code == 422 and "timeout" in r.text
    r = await core.client.post("/tests/schedule", json={
        "plugin_name": "mixed_suite", "schedule_expression": "daily", "timezone": "Factory"})
    assert r.status_code == 422 and "unknown time zone 'Factory'" in r.text
    r = await core.client.post("/tests/run", json={"plugin_name": "mixed_suite",
                                                   "test_name": "  "})
    assert r.status_code == 202 and r.json()["run"]["selection"] is None
    await core.client.delete(f"/tests/runs/{r.json()['run_id']}")
    await wait_for_run(core, r.json()["run_id"])  # nothing left running on the shared core


@OWN_CORE
async def test_a_discovery_cut_short_by_the_stop_is_503(start_core):
    core = await start_core(SUITES)
    # What the app's stop does first: a collection asked for now (or one in flight, see
    # test_test_manager) ends at once with a retryable answer, not a 500 or a hang.
    await core.runtime.tests.runner.close()
    r = await core.client.post("/tests/discover", params={"plugin_name": "mixed_suite"})
    assert r.status_code == 503, r.text
    assert "stopping" in r.json()["detail"] and "mixed_suite" in r.json()["detail"]
