"""The plugin host end to end: the fixture plugins on a real server over real HTTP."""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from plexichat_desktop.core.settings import Settings
from plexichat_desktop.plugins.scaffold import scaffold_plugin
from tests.conftest import FIXTURE_PLUGINS, RunningCore, module_core

# The tests that only read share one core with the fixture plugins and default settings
# (``shared``), in the module's event loop; the ones that change a plugin's state, or need
# settings, plugins or a home of their own, start their own.
pytestmark = pytest.mark.asyncio(loop_scope="module")
OWN_CORE = pytest.mark.asyncio(loop_scope="function")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningCore]:
    async with module_core(tmp_path_factory.mktemp("host"), FIXTURE_PLUGINS) as core:
        yield core


async def test_every_fixture_plugin_gets_the_right_state(shared):
    core = shared
    body = (await core.client.get("/api/plugins")).json()
    by_folder = {p["path"].rsplit("/", 1)[1]: p for p in body["plugins"]}
    assert "not_a_plugin" not in by_folder

    def state(folder):
        return by_folder[folder]["state"], by_folder[folder]["reason"] or ""

    assert state("good") == ("active", "")
    assert state("depends_on_good")[0] == "active"
    assert state("unknown_fields")[0] == "active"
    assert any("colour" in w for w in by_folder["unknown_fields"]["warnings"])

    st, reason = state("malformed_toml")
    assert st == "failed" and "invalid manifest" in reason and "plugin.toml" in reason
    st, reason = state("wrong_types")
    assert st == "failed" and "tests.timeout" in reason
    st, reason = state("bad_entry")
    assert st == "failed"
    assert "import of 'bad_entry_pkg' failed: ModuleNotFoundError" in reason
    assert "module_that_does_not_exist_anywhere" in by_folder["bad_entry"]["detail"]
    st, reason = state("setup_raises")
    assert st == "failed" and "setup() raised RuntimeError: setup exploded on purpose" in reason
    st, reason = state("incompatible")
    assert st == "incompatible" and "99.0" in reason
    st, reason = state("needs_missing")
    assert st == "failed" and reason == "requires plugin 'nothing_here', which is not installed"
    st, reason = state("version_conflict")
    assert st == "failed" and "'good_plugin' >=2" in reason and "1.2.0" in reason
    for folder in ("cycle_a", "cycle_b"):
        st, reason = state(folder)
        assert st == "failed" and reason.startswith("dependency cycle: ")
    states = sorted((state("dup_one")[0], state("dup_two")[0]))
    assert states == ["active", "failed"]
    dup_reason = state("dup_two")[1]
    assert "duplicate plugin id 'dup'" in dup_reason and "dup_one" in dup_reason

    health = (await core.client.get("/healthz")).json()
    assert health["status"] == "ok"
    assert health["plugins"]["active"] == 4  # good, depends_on_good, unknown_fields, dup


@OWN_CORE
async def test_plugin_routes_settings_and_validation(start_core):
    settings = Settings(plugin={"good_plugin": {"greeting": "hej", "ratio": 2}})
    core = await start_core(FIXTURE_PLUGINS, settings=settings)
    r = await core.client.get("/plugins/good_plugin/api/hello")
    assert r.json() == {"greeting": "hej", "ratio": 2.0}
    r = await core.client.post("/plugins/good_plugin/api/echo", json={"text": "ab", "times": 2})
    assert r.status_code == 200 and r.json() == {"echo": "abab"}
    r = await core.client.post("/plugins/good_plugin/api/echo", json={"times": "x"})
    assert r.status_code == 422
    fields = {tuple(e["loc"]) for e in r.json()["detail"]}
    assert ("body", "text") in fields and ("body", "times") in fields


async def test_a_route_that_raises_is_a_500_naming_the_plugin(shared, caplog):
    core = shared
    with caplog.at_level(logging.ERROR):
        r = await core.client.get("/plugins/good_plugin/api/boom")
    assert r.status_code == 500
    body = r.json()
    assert body["plugin"] == "good_plugin"
    assert "ValueError: kaboom from a route" in body["detail"]
    record = next(rec for rec in caplog.records if "raised ValueError" in rec.getMessage())
    assert record.name == "plexichat.plugin.good_plugin"
    # The app and the plugin keep answering.
    assert (await core.client.get("/plugins/good_plugin/api/hello")).status_code == 200
    assert (await core.client.get("/healthz")).status_code == 200


@OWN_CORE
async def test_bad_plugin_settings_fail_only_that_plugin(start_core):
    settings = Settings(plugin={"good_plugin": {"ratio": "high", "nope": 1}})
    core = await start_core(FIXTURE_PLUGINS, settings=settings)
    good = (await core.client.get("/api/plugins/good_plugin")).json()
    assert good["state"] == "failed"
    assert good["reason"] == "settings [plugin.good_plugin].ratio: expected float, got str 'high'"
    assert (await core.client.get("/api/plugins/unknown_fields")).json()["state"] == "active"


async def test_failed_plugin_pages_explain_why(shared):
    core = shared
    r = await core.client.get("/plugins/setup_raises/")
    assert r.status_code == 503
    assert "setup_raises" in r.json()["detail"] and "setup exploded" in r.json()["detail"]
    r = await core.client.get("/plugins/setup_raises/", headers={"Accept": "text/html"})
    assert r.status_code == 503 and "text/html" in r.headers["content-type"]
    assert "Plugin not running" in r.text and "setup exploded on purpose" in r.text
    r = await core.client.get("/plugins/no_such_plugin/")
    assert r.status_code == 404 and "no_such_plugin" in r.json()["detail"]


@OWN_CORE
async def test_disable_and_enable_at_run_time_and_across_restarts(start_core, home):
    core = await start_core(FIXTURE_PLUGINS)
    r = await core.client.post("/api/plugins/good_plugin/disable")
    assert r.json()["state"] == "disabled"
    dependent = (await core.client.get("/api/plugins/depends_on_good")).json()
    assert dependent["state"] == "failed"
    assert dependent["reason"] == "requires 'good_plugin', which is disabled"
    assert (await core.client.get("/plugins/good_plugin/api/hello")).status_code == 503
    assert json.loads(home.plugin_states_file.read_text()) == {"disabled": ["good_plugin"]}

    await core.runtime.stop()
    core = await start_core(FIXTURE_PLUGINS)
    assert (await core.client.get("/api/plugins/good_plugin")).json()["state"] == "disabled"
    r = await core.client.post("/api/plugins/good_plugin/enable")
    assert r.status_code == 200 and r.json()["state"] == "active"
    assert (await core.client.get("/api/plugins/depends_on_good")).json()["state"] == "active"
    assert (await core.client.get("/plugins/good_plugin/api/hello")).status_code == 200
    r = await core.client.post("/api/plugins/setup_raises/enable")
    assert r.status_code == 409 and r.json()["state"] == "failed"
    assert (await core.client.post("/api/plugins/ghost/enable")).status_code == 404


@OWN_CORE
async def test_safe_mode_loads_only_essential_bundled_plugins(start_core):
    core = await start_core(FIXTURE_PLUGINS, safe_mode=True)
    plugins = (await core.client.get("/api/plugins")).json()["plugins"]
    assert not [p for p in plugins if p["state"] == "active"]
    assert {p["reason"] for p in plugins if p["state"] == "disabled"} == {"safe mode"}


@OWN_CORE
async def test_setup_that_hangs_times_out(start_core, tmp_path):
    root = scaffold_plugin("slow_starter", tmp_path)
    (root / "slow_starter" / "__init__.py").write_text(
        "import asyncio\nfrom plexichat_desktop.plugins.api import Plugin\n\n\n"
        "class SlowStarterPlugin(Plugin):\n"
        "    async def setup(self, ctx):\n        await asyncio.sleep(60)\n")
    settings = Settings()
    settings.plugins.setup_timeout = 0.2
    core = await start_core(tmp_path, settings=settings)
    rec = (await core.client.get("/api/plugins/slow_starter")).json()
    assert rec["state"] == "failed" and "did not finish within 0.2 s" in rec["reason"]


EXITING = """\
import sys

from fastapi.sse import EventSourceResponse
from starlette.responses import StreamingResponse

from plexichat_desktop.plugins.api import Plugin

{at_import}


async def leave(job):
    sys.exit(4)


class {cls}(Plugin):
    def setup(self, ctx):
        {in_setup}

        async def route():
            sys.exit(2)

        async def start():
            return ctx.jobs.start("leave", leave).to_dict()

        async def chunks():
            yield b"first "
            sys.exit(5)

        async def stream():
            return StreamingResponse(chunks(), media_type="text/plain")

        async def leave_later():
            sys.exit(6)

        async def source():
            yield ("hello", 1)
            sys.exit(7)

        async def events():
            return ctx.event_stream(source())

        async def produced():
            yield {{"n": 1}}
            sys.exit(8)

        ctx.add_route("/exit", route)
        ctx.add_route("/job", start, methods=["POST"])
        ctx.add_route("/stream", stream)
        ctx.add_route("/events", events)
        ctx.add_route("/produced", produced, response_class=EventSourceResponse)
        ctx.create_task(leave_later(), name="leaves")
"""


@OWN_CORE
async def test_a_plugin_calling_sys_exit_fails_alone(start_core, tmp_path, caplog):
    """sys.exit() in a plugin's import or setup ended the whole app (exit code 0 for
    SystemExit(0), nothing logged); in a route it was a bare text 500, in a job, a
    background task, a streaming answer's body, an event stream's source or a generator
    endpoint it too ended the app. Now each is that plugin's failure, said with its
    reason."""
    for name, at_import, in_setup in (("leaves_on_import", "sys.exit(3)", "pass"),
                                      ("leaves_in_setup", "", "raise SystemExit(0)"),
                                      ("leaves_later", "", "pass")):
        root = scaffold_plugin(name, tmp_path)
        cls = "".join(part.title() for part in name.split("_")) + "Plugin"
        (root / name / "__init__.py").write_text(EXITING.format(
            at_import=at_import, cls=cls, in_setup=in_setup))
    core = await start_core(tmp_path)
    state = {p["id"]: (p["state"], p["reason"] or "")
             for p in (await core.client.get("/api/plugins")).json()["plugins"]}
    assert state["leaves_on_import"] == (
        "failed", "import of 'leaves_on_import' failed: SystemExit: 3")
    assert state["leaves_in_setup"] == ("failed", "setup() raised SystemExit: 0")
    assert state["leaves_later"][0] == "active"
    answer = await core.client.get("/plugins/leaves_later/api/exit")
    assert answer.status_code == 500 and answer.json()["plugin"] == "leaves_later"
    assert "SystemExit: 2" in answer.json()["detail"]
    job = (await core.client.post("/plugins/leaves_later/api/job")).json()
    jobs = core.runtime.plugins.by_id["leaves_later"].context.jobs
    for _ in range(200):
        if jobs.get(job["id"]).state.value == "failed":
            break
        await asyncio.sleep(0.02)
    assert jobs.get(job["id"]).error == "SystemExit: 4"
    for stream in ("stream", "events", "produced"):  # each cut: how is the client's
        with contextlib.suppress(httpx.HTTPError):
            async with core.client.stream("GET", f"/plugins/leaves_later/api/{stream}") as r:
                async for _ in r.aiter_bytes():
                    pass
    await asyncio.sleep(0.1)  # the background task has run by now
    said = " ".join(r.getMessage() + str(r.exc_info and r.exc_info[1])
                    for r in caplog.records if r.name == "plexichat.plugin.leaves_later")
    assert "the task called sys.exit(6)" in said, said
    assert (await core.client.get("/healthz")).status_code == 200  # the app goes on


@OWN_CORE
async def test_a_synchronous_setup_past_the_timeout_fails_and_a_slow_one_is_warned(
        start_core, tmp_path, caplog, monkeypatch):
    """The timeout only stopped async setups: a blocking one held the app (no page, no
    request) and became active however long it took. It cannot be stopped, but it is
    judged when it returns, and one that holds the app a while is warned of."""
    from plexichat_desktop.plugins import manager as manager_module

    monkeypatch.setattr(manager_module, "BLOCKING_WARN", 0.1)  # 1 s in the app
    for name, seconds in (("blocks_too_long", 0.7), ("blocks_a_while", 0.2)):
        root = scaffold_plugin(name, tmp_path)
        cls = "".join(part.title() for part in name.split("_")) + "Plugin"
        (root / name / "__init__.py").write_text(
            "import pathlib, time\nfrom plexichat_desktop.plugins.api import Plugin\n\n\n"
            f"class {cls}(Plugin):\n"
            f"    def setup(self, ctx):\n        time.sleep({seconds})\n"
            "    def teardown(self):\n"
            f"        pathlib.Path({str(tmp_path / (name + '.torn'))!r}).touch()\n")
    settings = Settings()
    settings.plugins.setup_timeout = 0.5
    with caplog.at_level(logging.WARNING):
        core = await start_core(tmp_path, settings=settings)
    too_long = (await core.client.get("/api/plugins/blocks_too_long")).json()
    assert too_long["state"] == "failed"
    assert "did not finish within 0.5 s (it held the app for 0." in too_long["reason"]
    assert "a synchronous setup cannot be stopped: make it async" in too_long["reason"]
    # It did return: its teardown undoes what it started outside the context.
    assert (tmp_path / "blocks_too_long.torn").exists()
    assert (await core.client.get("/api/plugins/blocks_a_while")).json()["state"] == "active"
    warned = [r for r in caplog.records if r.name == "plexichat.plugin.blocks_a_while"]
    assert any("setup() held the app for 0.2 s" in r.getMessage() for r in warned), warned


@OWN_CORE
async def test_a_setup_raising_its_own_timeout_or_failing_after_a_task_is_said_so(
        start_core, tmp_path, recwarn):
    """Review findings: a TimeoutError of the plugin's own (socket.timeout, at once) was
    reported as "did not finish within 15 s"; and a task a setup started just before it
    failed was cancelled before its first step, leaving "coroutine ... was never
    awaited"."""
    import gc

    for name, body in (("own_timeout", "raise TimeoutError('timed out')"),
                       ("task_then_fails",
                        "ctx.create_task(poll())\n        raise RuntimeError('no config')")):
        root = scaffold_plugin(name, tmp_path)
        cls = "".join(part.title() for part in name.split("_")) + "Plugin"
        (root / name / "__init__.py").write_text(
            "import asyncio\nfrom plexichat_desktop.plugins.api import Plugin\n\n\n"
            "async def poll():\n    await asyncio.sleep(3600)\n\n\n"
            f"class {cls}(Plugin):\n    def setup(self, ctx):\n        {body}\n")
    core = await start_core(tmp_path)
    own = (await core.client.get("/api/plugins/own_timeout")).json()
    assert own["reason"] == "setup() raised TimeoutError: timed out"
    failed = (await core.client.get("/api/plugins/task_then_fails")).json()
    assert failed["reason"] == "setup() raised RuntimeError: no config"
    gc.collect()
    assert not [w for w in recwarn if "never awaited" in str(w.message)], list(recwarn)


@OWN_CORE
async def test_teardown_runs_and_plugin_tasks_are_cancelled(start_core, tmp_path):
    root = scaffold_plugin("tasker", tmp_path)
    (root / "tasker" / "__init__.py").write_text(
        "import asyncio\nfrom plexichat_desktop.plugins.api import Plugin\n\n"
        "EVENTS = []\n\n\n"
        "class TaskerPlugin(Plugin):\n"
        "    def setup(self, ctx):\n"
        "        async def forever():\n"
        "            try:\n                await asyncio.sleep(3600)\n"
        "            except asyncio.CancelledError:\n"
        "                EVENTS.append('task cancelled')\n                raise\n"
        "        ctx.create_task(forever())\n"
        "        ctx.on_teardown(lambda: EVENTS.append('callback'))\n"
        "    async def teardown(self):\n        EVENTS.append('teardown')\n")
    core = await start_core(tmp_path)
    import tasker  # the plugin's own package, importable once the host loaded it

    assert (await core.client.get("/api/plugins/tasker")).json()["state"] == "active"
    await core.runtime.plugins.disable("tasker")
    assert tasker.EVENTS == ["teardown", "callback", "task cancelled"]


@OWN_CORE
async def test_events_stream_pushes_plugin_state_changes(start_core):
    core = await start_core(FIXTURE_PLUGINS)
    lines: list[str] = []

    async def read_until_state() -> None:
        async with core.client.stream("GET", "/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                lines.append(line)
                if line.startswith("data:") and '"state": "disabled"' in line:
                    return

    before = core.runtime.bus.subscriber_count
    reader = asyncio.create_task(read_until_state())
    while core.runtime.bus.subscriber_count == before:
        await asyncio.sleep(0.01)
    await core.client.post("/api/plugins/unknown_fields/disable")
    await asyncio.wait_for(reader, 5)
    assert "event: plugin.state" in lines
    payload = json.loads(lines[-1].removeprefix("data: "))
    assert payload["plugin_id"] == "unknown_fields"


@OWN_CORE
async def test_plugin_log_records_carry_the_plugin_id(start_core, home, caplog):
    from plexichat_desktop.core.logs import LOG_FILE_NAME, setup_logging

    log_file = setup_logging(home.log_dir, console=False)
    try:
        await start_core(FIXTURE_PLUGINS)
        text = (home.log_dir / LOG_FILE_NAME).read_text()
    finally:
        root = logging.getLogger()
        from plexichat_desktop.core import logs

        for handler in logs._installed:
            root.removeHandler(handler)
        logs._installed.clear()
    assert log_file.name == LOG_FILE_NAME
    line = next(ln for ln in text.splitlines() if "good plugin set up" in ln)
    assert "[good_plugin] plexichat.plugin.good_plugin" in line
    bad = next(ln for ln in text.splitlines() if "setup exploded on purpose" in ln)
    assert "[setup_raises]" in bad
    host = next(ln for ln in text.splitlines() if "serving http://127.0.0.1" in ln)
    assert "[-]" in host
