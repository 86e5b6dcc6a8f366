"""Start-up order: the port (and so the URL) is known before the server starts, the plugin a
page waits for starts before the others, and the others can be held back until the
window's first pages have loaded (or a deadline passes). No timings are asserted."""

import asyncio
from pathlib import Path

import pytest

from plexichat_desktop.core.paths import AppPaths
from plexichat_desktop.core.settings import Settings
from plexichat_desktop.plugins.scaffold import scaffold_plugin
from plexichat_desktop.runtime import Runtime, RuntimeOptions

pytestmark = pytest.mark.asyncio
PLUGINS = ("alpha", "beta", "gamma")  # with the test's prefix: package names are global


def make_runtime(home: AppPaths, plugins: Path, prefix: str) -> Runtime:
    for pid in PLUGINS:
        scaffold_plugin(f"{prefix}_{pid}", plugins)
    settings = Settings()
    settings.server.port = 0
    return Runtime(home, settings, RuntimeOptions(bundled=False, include_installed=False,
                                                  extra_plugin_dirs=[plugins]))


def active(runtime: Runtime) -> list[str]:
    """Active plugins in the order they started, without the test's prefix."""
    return [rec.id.rsplit("_", 1)[1] for rec in runtime.plugins.active()]


async def until(condition, timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_prepare_binds_the_port_before_the_server_starts(home, tmp_path):
    runtime = make_runtime(home, tmp_path, "so_port")
    try:
        url = runtime.prepare()
        assert runtime.port is not None and url == f"http://127.0.0.1:{runtime.port}/"
        assert sorted(rec.id for rec in runtime.plugins.records) == [
            f"so_port_{pid}" for pid in PLUGINS]
        assert runtime.prepare() == url  # idempotent
        # A request sent now waits in the socket's backlog and is answered once it serves.
        reader, writer = await asyncio.open_connection("127.0.0.1", runtime.port)
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{runtime.port}\r\n"
                     f"Authorization: Bearer {runtime.token}\r\nConnection: close\r\n\r\n"
                     .encode())
        await writer.drain()
        assert await runtime.start() == url
        answer = await asyncio.wait_for(reader.read(), 60)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        writer.close()
    finally:
        await runtime.stop()


async def test_a_held_start_begins_with_the_wanted_plugin(home, tmp_path):
    runtime = make_runtime(home, tmp_path, "so_wanted")
    pages_loaded = asyncio.Event()
    try:
        runtime.prepare()
        runtime.plugins.want("so_wanted_gamma")
        runtime.plugins.hold_others(pages_loaded, 600)
        await runtime.start(plugins_in_background=True)
        await until(lambda: "gamma" in active(runtime))
        await asyncio.sleep(0.2)
        assert active(runtime) == ["gamma"]  # the others wait for the pages
        pages_loaded.set()
        await asyncio.wait_for(runtime.plugins.started.wait(), 60)
        assert active(runtime)[0] == "gamma" and sorted(active(runtime)) == list(PLUGINS)
    finally:
        await runtime.stop()


async def test_held_plugins_start_after_the_deadline(home, tmp_path):
    runtime = make_runtime(home, tmp_path, "so_deadline")
    try:
        runtime.plugins.hold_others(asyncio.Event(), 0.05)  # never set
        await runtime.start(plugins_in_background=True)
        await asyncio.wait_for(runtime.plugins.started.wait(), 60)
        assert sorted(active(runtime)) == list(PLUGINS)
    finally:
        await runtime.stop()


async def test_a_request_starts_a_held_plugin_at_once(home, tmp_path):
    import httpx

    runtime = make_runtime(home, tmp_path, "so_request")
    try:
        runtime.plugins.hold_others(asyncio.Event(), 600)
        url = await runtime.start(plugins_in_background=True)
        async with httpx.AsyncClient(base_url=url, timeout=60, headers={
                "Authorization": f"Bearer {runtime.token}"}) as client:
            answer = await client.get("/plugins/so_request_beta/")
        assert answer.status_code == 200, answer.text[:300]
        assert active(runtime) == ["beta"]
    finally:
        await runtime.stop()  # the held start ends without starting the rest
    assert not runtime.plugins.by_id["so_request_alpha"].running


async def test_stopping_ends_a_held_start(home, tmp_path):
    runtime = make_runtime(home, tmp_path, "so_stop")
    runtime.plugins.hold_others(asyncio.Event(), 600)
    await runtime.start(plugins_in_background=True)
    runtime.begin_stop()
    await asyncio.wait_for(runtime.stop(), 60)
    assert runtime.plugins.started.is_set() and active(runtime) == []


# serve listens before it imports and builds the core (runtime.Listener): /healthz answers
# at once with ready: false; everything else waits for the app instead of a wrong answer.

def listener_settings() -> Settings:
    settings = Settings()
    settings.server.port = 0
    return settings


def listening_runtime(home: AppPaths, plugins: Path):
    """A listener and the runtime made on it, as ``serve`` and the window make them, with
    the plugins of the folder ``plugins``."""
    from plexichat_desktop.runtime import Listener

    settings = listener_settings()
    listener = Listener(home, settings)
    return listener, Runtime(home, settings, RuntimeOptions(
        bundled=False, include_installed=False, extra_plugin_dirs=[plugins]),
        listener=listener)


async def stop_serving(listener, runtime) -> None:
    """The runtime made on ``listener`` owns it once made; else the listener alone."""
    if runtime is not None:
        await runtime.stop()
    else:
        await listener.stop()


async def test_the_listener_answers_healthz_and_holds_the_rest_until_the_app(home, tmp_path):
    import httpx

    from plexichat_desktop.runtime import Listener

    settings = listener_settings()
    listener = Listener(home, settings)
    runtime = None
    try:
        url = await listener.start()
        auth = {"Authorization": f"Bearer {listener.token}"}
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            early = await client.get("/healthz", headers=auth)
            assert early.status_code == 200, early.text
            body = early.json()
            assert body["status"] == "ok" and body["ready"] is False
            assert body["plugins_started"] is False and body["plugins"] == {}
            assert early.headers["content-security-policy"]  # the app's security headers
            # Sent before the app exists: each waits for it and gets the app's own answer.
            waiting = [asyncio.ensure_future(client.request(method, path, headers=headers))
                       for method, path, headers in (
                           ("GET", "/api/plugins", auth),           # a route: 200, not 404
                           ("GET", "/healthz", {}),                 # no token: 401
                           ("GET", "/healthz", {**auth, "Host": "evil.example:80"}),  # 403
                           ("GET", "/plugins/so_gate_alpha/", auth),  # a plugin's page: 200
                           ("HEAD", "/healthz", auth))]            # as the app: 405
            await until(lambda: listener.gate.waiting == len(waiting))
            assert not any(task.done() for task in waiting)
            for pid in PLUGINS:
                scaffold_plugin(f"so_gate_{pid}", tmp_path)
            runtime = Runtime(home, settings, RuntimeOptions(
                bundled=False, include_installed=False, extra_plugin_dirs=[tmp_path]),
                listener=listener)
            assert runtime.prepare() == url  # the listener's port, nothing bound again
            states = (await client.get("/healthz", headers=auth)).json()
            assert states["ready"] is False and states["plugins"] == {"validated": 3}
            assert await runtime.start(plugins_in_background=True) == url
            plugins, no_token, bad_host, page, head = await asyncio.wait_for(
                asyncio.gather(*waiting), 60)
            assert head.status_code == 405
            assert plugins.status_code == 200
            assert sorted(p["id"] for p in plugins.json()["plugins"]) == [
                f"so_gate_{pid}" for pid in PLUGINS]
            assert no_token.status_code == 401 and bad_host.status_code == 403
            assert page.status_code == 200, page.text[:300]
            await asyncio.wait_for(runtime.plugins.started.wait(), 60)
            ready = (await client.get("/healthz", headers=auth)).json()
            assert ready["ready"] is True and ready["plugins_started"] is True
            assert ready["plugins"] == {"active": 3}
    finally:
        await stop_serving(listener, runtime)


async def test_requests_waiting_for_an_app_that_never_comes_get_503(home, tmp_path):
    import httpx

    from plexichat_desktop.runtime import Listener
    from plexichat_desktop.server.listening import EarlyFiles

    listener = Listener(home, listener_settings())
    listener.gate.early = EarlyFiles({}, {"/_app/": tmp_path})
    url = await listener.start()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60, headers={
                "Authorization": f"Bearer {listener.token}"}) as client:
            waiting = asyncio.ensure_future(client.get("/api/plugins"))
            await until(lambda: listener.gate.waiting == 1)
            assert not waiting.done()
            stopping = asyncio.ensure_future(listener.stop())
            answer = await asyncio.wait_for(waiting, 60)
            assert answer.status_code == 503 and "stopping" in answer.json()["detail"]
            # Nothing is answered from files any more either (a start that failed).
            assert listener.gate.early is None
            await stopping
    finally:
        await listener.stop()


async def test_a_taken_port_fails_the_listener_before_anything_serves(home):
    import socket

    from plexichat_desktop.runtime import Listener
    from plexichat_desktop.server.listening import PortInUseError

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    settings = listener_settings()
    settings.server.port = blocker.getsockname()[1]
    try:
        with pytest.raises(PortInUseError):
            Listener(home, settings)
    finally:
        blocker.close()


async def test_through_the_listener_tests_requests_wait_for_the_test_side(home, tmp_path):
    """serve and the window answer before the test manager exists: a /tests request sent
    meanwhile is answered once the manager runs, after it marked the runs a previous
    process left unfinished as interrupted, and a run it queues is never taken for one."""
    import httpx

    from plexichat_desktop.testing.models import RunRecord, RunStatus
    from plexichat_desktop.testing.store import ResultStore

    with ResultStore(home.data_dir / "tests.sqlite3") as store:
        left = store.create_run(RunRecord("so_side_alpha", status=RunStatus.RUNNING))
    scaffold_plugin("so_side_alpha", tmp_path)
    listener, runtime = listening_runtime(home, tmp_path)
    try:
        url = await listener.start()
        async with httpx.AsyncClient(base_url=url, timeout=60, headers={
                "Authorization": f"Bearer {listener.token}"}) as client:
            queued = asyncio.ensure_future(client.post("/tests/run", json={
                "plugin_name": "so_side_alpha"}))
            listed = asyncio.ensure_future(client.get("/tests/runs"))
            await until(lambda: listener.gate.waiting == 2)
            await runtime.start(plugins_in_background=True)
            queued_answer, listed_answer = await asyncio.wait_for(
                asyncio.gather(queued, listed), 60)
            assert queued_answer.status_code == 202, queued_answer.text
            new = queued_answer.json()["run_id"]
            statuses = {run["id"]: run["status"] for run in listed_answer.json()["runs"]}
            assert statuses[left] == "interrupted"
            ended = await runtime.tests.wait(new)
            assert ended.status is RunStatus.PASSED, ended
    finally:
        await runtime.stop()


async def test_a_held_test_side_starts_when_a_tests_request_needs_it(home, tmp_path):
    """The window holds the test side back until its first pages have loaded; a /tests
    request meanwhile does not wait for that: it starts the test side at once."""
    import httpx


    scaffold_plugin("so_held_alpha", tmp_path)
    listener, runtime = listening_runtime(home, tmp_path)
    first_pages = asyncio.Event()  # never set: no window here
    runtime.hold_tests(first_pages, 600)
    try:
        url = await runtime.start(plugins_in_background=True)
        await asyncio.wait_for(runtime.plugins.started.wait(), 60)
        assert not runtime.tests_started.is_set()  # still held
        async with httpx.AsyncClient(base_url=url, timeout=60, headers={
                "Authorization": f"Bearer {listener.token}"}) as client:
            answer = await client.get("/tests/runs")
        assert answer.status_code == 200, answer.text
        assert runtime.tests_started.is_set() and not first_pages.is_set()
    finally:
        await runtime.stop()


async def test_a_test_side_still_held_at_the_stop_is_never_made(home, tmp_path):
    """A window closed before its first pages loaded: the stop does not start the test
    manager only to stop it."""
    _, runtime = listening_runtime(home, tmp_path)
    runtime.hold_tests(asyncio.Event(), 600)
    try:
        await runtime.start(plugins_in_background=True)
    finally:
        await runtime.stop()
    assert runtime._tests is None  # neither made nor started
    assert runtime.tests_started.is_set()  # nothing is left waiting for it


async def test_the_listener_answers_first_pages_from_their_files_and_leaves_the_rest(
        home, tmp_path):
    """The desktop window's start: a plugin's page files and the app's assets are answered
    by the listener before the app exists, as the app answers them; everything the app
    would answer otherwise (a refusal, a plugin's route, a file outside the folder, a
    plugin turned off, a range) waits for the app and gets the app's own answer."""
    import json

    import httpx

    from plexichat_desktop.core.paths import resources_dir
    from plexichat_desktop.runtime import Listener, early_files
    from plexichat_desktop.server.listening import EARLY_FILE_LIMIT

    plugins = tmp_path / "plugins"
    for pid in ("so_early_alpha", "so_early_beta"):
        scaffold_plugin(pid, plugins)
    web = plugins / "so_early_alpha" / "web"
    (web / "api").mkdir()
    (web / "api" / "status.txt").write_text("a file where the plugin's routes are")
    (tmp_path / "secret.txt").write_text("outside the web folder")
    (web / "secret.txt").symlink_to(tmp_path / "secret.txt")
    big = b"x" * (EARLY_FILE_LIMIT + 1)  # read whole on the window's thread: the app streams it
    (web / "model.bin").write_bytes(big)
    home.plugin_states_file.parent.mkdir(parents=True, exist_ok=True)
    home.plugin_states_file.write_text(json.dumps({"disabled": ["so_early_beta"]}))
    settings = listener_settings()
    options = RuntimeOptions(bundled=False, include_installed=False,
                             extra_plugin_dirs=[plugins])
    listener = Listener(home, settings)
    listener.gate.early = early_files(home, settings, options)
    runtime = None
    try:
        url = await listener.start()
        auth = {"Authorization": f"Bearer {listener.token}"}
        async with httpx.AsyncClient(base_url=url, timeout=60, headers=auth) as client:
            page = await client.get("/plugins/so_early_alpha/")
            assert page.status_code == 200
            assert page.text == (web / "index.html").read_text()
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert page.headers["content-security-policy"]  # the app's security headers
            script = await client.get("/plugins/so_early_alpha/app.js")
            assert script.status_code == 200
            assert script.headers["content-type"] == "text/javascript; charset=utf-8"
            head = await client.head("/plugins/so_early_alpha/style.css")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str((web / "style.css").stat().st_size)
            asset = await client.get("/_app/index.js")
            assert asset.status_code == 200
            assert asset.content == (resources_dir() / "web" / "index.js").read_bytes()
            assert listener.gate.app is None  # all of it before the app
            waiting = [asyncio.ensure_future(client.request(method, path, headers=headers))
                       for method, path, headers in (
                           ("GET", "/plugins/so_early_alpha/", {"Authorization": ""}),
                           ("GET", "/plugins/so_early_alpha/", {"Host": "evil.example:80"}),
                           ("GET", "/plugins/so_early_alpha/api/status.txt", {}),
                           ("GET", "/plugins/so_early_alpha/secret.txt", {}),
                           ("GET", "/plugins/so_early_alpha/missing.js", {}),
                           ("GET", "/plugins/so_early_beta/", {}),
                           ("GET", "/plugins/so_early_alpha", {}),
                           ("GET", "/_app/", {}),
                           ("GET", "/plugins/so_early_alpha/app.js", {"Range": "bytes=0-9"}),
                           ("POST", "/plugins/so_early_alpha/index.html", {}),
                           ("GET", "/plugins/so_early_alpha/model.bin", {}))]
            await until(lambda: listener.gate.waiting == len(waiting))
            assert not any(task.done() for task in waiting)
            runtime = Runtime(home, settings, options, listener=listener)
            await runtime.start(plugins_in_background=True)
            answers = await asyncio.wait_for(asyncio.gather(*waiting), 60)
            statuses = [answer.status_code for answer in answers]
            assert statuses == [401, 403, 404, 404, 404, 503, 307, 404, 206, 405, 200], [
                (answer.request.url.path, answer.status_code, answer.text[:200])
                for answer in answers]
            assert "disabled" in answers[5].json()["detail"]
            assert answers[10].content == big
            # The app answers the early files with the same bytes and types.
            for path, early in (("/plugins/so_early_alpha/", page),
                                ("/plugins/so_early_alpha/app.js", script),
                                ("/_app/index.js", asset)):
                late = await client.get(path)
                assert late.status_code == 200
                assert late.content == early.content, path
                assert late.headers["content-type"] == early.headers["content-type"], path
    finally:
        await stop_serving(listener, runtime)


async def test_early_pages_are_those_of_the_plugins_discovery_would_use(home, tmp_path):
    """Keyed by the id each manifest declares, as the host keys plugins (a folder's name
    may differ): never an id two folders declare (the host fails the second), never a
    plugin turned off, in safe mode only the bundled plugins it keeps, never a manifest
    without a plugin id."""
    import json

    from plexichat_desktop.runtime import early_files

    def plugin(folder: Path, name: str, manifest_id: str | None) -> None:
        (folder / name / "web").mkdir(parents=True)
        (folder / name / "plugin.toml").write_text(
            "this is not TOML [" if manifest_id is None else
            f"id = {json.dumps(manifest_id)}\nname = \"X\"\nversion = \"1.0.0\"\n"
            f"entry = \"{name}_pkg:Plugin\"\n")

    user, extra = home.user_plugins_dir, tmp_path / "extra"
    plugin(user, "renamed_copy", "so_ep_real")   # the host uses this one for so_ep_real
    plugin(extra, "so_ep_real", "so_ep_real")    # ... and fails this one as a duplicate
    plugin(user, "folder_name", "so_ep_off")     # turned off by its manifest's id
    plugin(user, "so_ep_kept", "so_ep_kept")
    plugin(user, "so_ep_broken", None)           # the host fails it under its folder's name
    plugin(extra, "other_folder", "so_ep_broken")
    plugin(extra, "so_ep_newline", "so_ep_newline\n")
    home.plugin_states_file.parent.mkdir(parents=True, exist_ok=True)
    home.plugin_states_file.write_text(json.dumps({"disabled": ["so_ep_off"]}))
    settings = Settings()
    options = RuntimeOptions(bundled=False, include_installed=False,
                             extra_plugin_dirs=[extra])
    early = early_files(home, settings, options)
    assert sorted(early.pages) == ["/plugins/so_ep_kept/"]
    assert early.file_for("/plugins/so_ep_kept/index.html") is None  # no page file made
    # What the host decides, for the record: the early choice never differs from it.
    runtime = Runtime(home, settings, options)
    runtime.prepare()
    try:
        by_id = runtime.plugins.by_id
        assert by_id["so_ep_real"].root.name == "renamed_copy"
        assert by_id["so_ep_off"].state == "disabled"
        assert by_id["so_ep_broken"].state == "failed"
    finally:
        await runtime.stop()
    settings.plugins.safe_mode = True
    assert early_files(home, settings, options).pages == {}  # none of them is bundled


async def test_the_windows_start_serves_without_early_files_when_finding_them_failed(
        home, caplog):
    """gui.app._start_core: a failure to find the early files is logged and the listener
    serves all the same (every page then waits for the app); a window closed before the
    server's module is imported ends the start before anything serves."""
    import threading
    from concurrent.futures import Future

    import httpx

    from plexichat_desktop.gui.app import _Imports, _start_core
    from plexichat_desktop.runtime import Listener

    closed = asyncio.Event()
    listener = Listener(home, listener_settings())
    never: Future = Future()
    closed.set()
    assert await _start_core(home, listener_settings(), RuntimeOptions(), listener, None,
                             None, _Imports(never, never, threading.Event()), closed) is None
    assert not listener.serving
    closed.clear()
    failed: Future = Future()
    failed.set_exception(OSError("plugin folders unreadable"))
    importing: Future = Future()
    importing.set_exception(ImportError("the core is broken"))
    try:
        with pytest.raises(ImportError, match="the core is broken"):
            await _start_core(home, listener_settings(), RuntimeOptions(), listener, None,
                              None, _Imports(failed, importing, threading.Event()), closed)
        assert listener.serving and listener.gate.early is None
        assert "finding their files failed" in caplog.text
        async with httpx.AsyncClient(base_url=listener.url, timeout=60) as client:
            health = await client.get("/healthz", headers={
                "Authorization": f"Bearer {listener.token}"})
            assert health.json()["ready"] is False
    finally:
        await listener.stop()
