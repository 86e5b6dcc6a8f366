"""Jobs owned by the host: progress, cancel, result, error, a live stream and HTTP routes,
on a real server; the work is stepped by the test (no sleeps, no timed assertions)."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import subprocess

import pytest

from plexichat_desktop.core.paths import resources_dir
from plexichat_desktop.plugins.jobs import JobManager, JobState, UnknownJob
from plexichat_desktop.plugins.scaffold import scaffold_plugin
from plexichat_desktop.plugins.sse import next_event, read_events

PLUGIN = '''
import asyncio

from plexichat_desktop.plugins.api import Plugin

EVENTS = []
GATES = {}


async def stepped(job, steps: int, fail_at: int | None = None):
    """One step per release of its gate; cleans up in finally (as a partial file would)."""
    gate = GATES[job.id] = asyncio.Event()
    try:
        for done in range(1, steps + 1):
            await gate.wait()
            gate.clear()
            if done == fail_at:
                raise ValueError(f"step {done} broke")
            job.progress(done, steps, f"step {done}")
        return {"steps": steps}
    finally:
        EVENTS.append(("cleanup", job.id))


class JobbyPlugin(Plugin):
    def setup(self, ctx):
        async def start(steps: int = 3, fail_at: int | None = None):
            job = ctx.jobs.start("stepped", stepped, steps, fail_at)
            await asyncio.sleep(0)     # let it reach its gate
            return job.to_dict()

        async def step(job_id: str):
            await asyncio.sleep(0)
            GATES[job_id].set()
            await asyncio.sleep(0)
            return ctx.jobs.get(job_id).to_dict()

        ctx.add_route("/start", start, methods=["POST"])
        ctx.add_route("/step/{job_id}", step, methods=["POST"])
'''


async def start_jobby(start_core, tmp_path, pid):
    root = scaffold_plugin(pid, tmp_path)
    cls = "".join(part.capitalize() for part in pid.split("_")) + "Plugin"
    (root / pid / "__init__.py").write_text(PLUGIN.replace("JobbyPlugin", cls))
    core = await start_core(tmp_path)
    assert (await core.client.get(f"/api/plugins/{pid}")).json()["state"] == "active"
    return core


async def wait_state(core, base, job_id, state):
    """Poll the job until it reaches ``state`` (bounded by the job's own steps)."""
    for _ in range(1000):
        job = (await core.client.get(f"{base}/_host/jobs/{job_id}")).json()
        if job["state"] == state:
            return job
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job_id} never reached {state}: {job}")


@pytest.mark.asyncio
async def test_progress_result_and_the_live_stream(start_core, tmp_path):
    core = await start_jobby(start_core, tmp_path, "jobby")
    base = "/plugins/jobby/api"
    async with core.client.stream("GET", f"{base}/_host/jobs/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_events(response)
        assert await next_event(events, "jobs") == []
        job = (await core.client.post(f"{base}/start?steps=2")).json()
        assert job["state"] in ("queued", "running") and job["name"] == "stepped"
        first = await next_event(events, "job", lambda j: j["state"] == "running")
        assert first["id"] == job["id"] and first["fraction"] is None
        await core.client.post(f"{base}/step/{job['id']}")
        half = await next_event(events, "job", lambda j: j["done"] == 1)
        assert (half["fraction"], half["message"], half["total"]) == (0.5, "step 1", 2)
        await core.client.post(f"{base}/step/{job['id']}")
        done = await next_event(events, "job", lambda j: j["state"] == "succeeded")
        assert done["result"] == {"steps": 2} and done["fraction"] == 1.0
        assert done["error"] is None and done["finished_at"] >= done["started_at"]
    listed = (await core.client.get(f"{base}/_host/jobs")).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    import jobby

    assert [("cleanup", job["id"])] == jobby.EVENTS


@pytest.mark.asyncio
async def test_cancel_failure_unknown_ids_and_teardown(start_core, tmp_path):
    core = await start_jobby(start_core, tmp_path, "jobber")
    base = "/plugins/jobber/api"
    import jobber

    # Cancel: the work's finally runs, the state says so, a second cancel is refused.
    job = (await core.client.post(f"{base}/start?steps=5")).json()
    await core.client.post(f"{base}/step/{job['id']}")
    r = await core.client.post(f"{base}/_host/jobs/{job['id']}/cancel")
    assert r.status_code == 200 and r.json()["cancel_requested"] is True
    cancelled = await wait_state(core, base, job["id"], "cancelled")
    assert cancelled["done"] == 1 and cancelled["result"] is None
    assert ("cleanup", job["id"]) in jobber.EVENTS
    r = await core.client.post(f"{base}/_host/jobs/{job['id']}/cancel")
    assert r.status_code == 409 and "already cancelled" in r.json()["detail"]

    # Failure: the error names the exception; the plugin keeps running.
    bad = (await core.client.post(f"{base}/start?steps=3&fail_at=2")).json()
    await core.client.post(f"{base}/step/{bad['id']}")
    await core.client.post(f"{base}/step/{bad['id']}")
    failed = await wait_state(core, base, bad["id"], "failed")
    assert failed["error"] == "ValueError: step 2 broke" and failed["result"] is None

    # Unknown ids are 404s naming the plugin and the id.
    r = await core.client.get(f"{base}/_host/jobs/nope")
    assert r.status_code == 404 and r.json()["detail"] == "plugin 'jobber' has no job 'nope'"
    assert (await core.client.post(f"{base}/_host/jobs/nope/cancel")).status_code == 404

    # Teardown cancels what still runs, and the work cleans up before the plugin is gone.
    last = (await core.client.post(f"{base}/start?steps=3")).json()
    await core.runtime.plugins.disable("jobber")
    assert ("cleanup", last["id"]) in jobber.EVENTS
    assert (await core.client.get(f"{base}/_host/jobs")).status_code == 503


@pytest.mark.asyncio
async def test_plugin_routes_may_not_take_the_host_prefix(start_core, tmp_path):
    root = scaffold_plugin("squatter", tmp_path)
    (root / "squatter" / "__init__.py").write_text(
        "from plexichat_desktop.plugins.api import Plugin\n\n\n"
        "class SquatterPlugin(Plugin):\n"
        "    def setup(self, ctx):\n"
        "        ctx.add_route('/_host/jobs', lambda: {})\n")
    core = await start_core(tmp_path)
    rec = (await core.client.get("/api/plugins/squatter")).json()
    assert rec["state"] == "failed" and "reserves for its own routes" in rec["reason"]


# -- the manager on its own -------------------------------------------------------------

@pytest.mark.asyncio
async def test_slots_queue_jobs_and_old_finished_ones_are_forgotten():
    manager = JobManager("demo", logging.getLogger("test"), max_running=1, keep_finished=2)
    gates = [asyncio.Event() for _ in range(4)]

    async def work(job, index):
        await gates[index].wait()
        return index

    jobs = [manager.start(f"job{i}", work, i) for i in range(4)]
    await asyncio.sleep(0)
    assert [j.state for j in jobs] == [JobState.RUNNING] + [JobState.QUEUED] * 3
    manager.cancel(jobs[2].id)                       # cancelled while queued
    for index in (0, 1, 3):
        gates[index].set()
        await manager.wait(jobs[index].id)
    assert [j.state for j in jobs] == [JobState.SUCCEEDED, JobState.SUCCEEDED,
                                       JobState.CANCELLED, JobState.SUCCEEDED]
    assert [j.result for j in manager.list()] == [3, None]  # newest first; 2 kept
    with pytest.raises(UnknownJob, match="plugin 'demo' has no job"):
        manager.get(jobs[0].id)
    await manager.close()
    with pytest.raises(RuntimeError, match="stopping"):
        manager.start("late", work, 0)


@pytest.mark.asyncio
async def test_progress_events_are_sent_only_when_they_show():
    manager = JobManager("demo", logging.getLogger("test"))
    queue = manager.hub.subscribe()
    release = asyncio.Event()

    async def work(job):
        for done in range(1, 100_001):
            job.progress(done, 100_000)
        await release.wait()
        with pytest.raises(ValueError, match="finite"):
            job.progress(float("nan"))

    job = manager.start("busy", work)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    progress = [data for _, data in _drain(queue) if data["state"] == "running"]
    # One per 0.1 % step (and the start), not one per call; the bounded queue kept the
    # newest and counted the rest.
    assert 1000 <= len(progress) + manager.hub.dropped <= 1003
    assert progress[-1]["fraction"] == 1.0
    release.set()
    await manager.wait(job.id)
    assert job.state is JobState.SUCCEEDED


@pytest.mark.asyncio
async def test_results_become_json_or_fail_the_job_naming_it():
    from dataclasses import dataclass
    from pathlib import Path

    @dataclass
    class Report:
        path: Path
        lines: int

    manager = JobManager("demo", logging.getLogger("test"))

    async def good(job):
        return Report(Path("/tmp/report.txt"), 3)

    async def bad(job):
        return {"handle": object()}

    ok = await manager.wait(manager.start("good", good).id)
    assert ok.state is JobState.SUCCEEDED
    assert ok.result == {"path": "/tmp/report.txt", "lines": 3}
    broken = await manager.wait(manager.start("bad", bad).id)
    assert broken.state is JobState.FAILED and broken.result is None
    assert broken.error.startswith("TypeError: job 'bad' returned a dict, which is not "
                                   "JSON-serialisable")


@pytest.mark.asyncio
async def test_a_refusal_fails_the_job_in_words_without_a_traceback(caplog):
    """A malformed upload or a wrong checksum is the user's to act on: it was logged as
    an ERROR with a traceback, like a crash."""
    from plexichat_desktop.plugins.api import PluginProblem

    manager = JobManager("demo", logging.getLogger("test.refusal"))

    async def refused(job):
        raise PluginProblem(422, "file", "sales.csv: line 4 has 3 fields, the header 2")

    async def crashed(job):
        raise KeyError("oops")

    with caplog.at_level(logging.INFO, logger="test.refusal"):
        job = await manager.wait(manager.start("load", refused).id)
        crash = await manager.wait(manager.start("load", crashed).id)
    assert job.state is JobState.FAILED
    assert job.error == "file: sales.csv: line 4 has 3 fields, the header 2"
    assert crash.error == "KeyError: 'oops'"
    levels = {r.getMessage().split(":")[0]: (r.levelno, r.exc_info is not None)
              for r in caplog.records}
    assert levels[f"job load ({job.id}) refused"] == (logging.INFO, False)
    assert levels[f"job load ({crash.id}) failed"] == (logging.ERROR, True)


def test_start_outside_the_loop_says_where_to_call_it():
    manager = JobManager("demo", logging.getLogger("test"))

    async def work(job):
        return None

    with pytest.raises(RuntimeError, match="from the app's event loop"):
        manager.start("threaded", work)


def _drain(queue):
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


# -- the page component -----------------------------------------------------------------

@pytest.mark.asyncio
async def test_the_page_component_is_served_and_csp_safe(start_core, tmp_path):
    core = await start_jobby(start_core, tmp_path, "jobpage")
    js = await core.client.get("/_app/plugins/jobs.js")
    css = await core.client.get("/_app/plugins/jobs.css")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    source = js.text
    # script-src 'self' without unsafe-eval: none of these may appear; no HTML strings.
    for banned in (r"\beval\(", r"new Function", r"\.innerHTML", r"setTimeout\(\s*[\"'`]",
                   r"https?://"):
        assert not re.search(banned, source), banned
    assert "/api/_host/jobs" in source and "plexichatLive" in source
    node = shutil.which("node")
    if node is not None:
        path = resources_dir() / "web" / "plugins" / "jobs.js"
        subprocess.run([node, "--check", str(path)], check=True, timeout=60)
