"""The plugin authors' harness (plexichat_desktop.testing.harness) in real pytest runs: the
same rules under plain pytest as under the test manager, the plexichat_app fixture with a
real app over HTTP, and a v1 user for a plugin that declares api_scopes."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from plexichat_desktop.core.events import EventBus
from plexichat_desktop.core.settings import Settings
from plexichat_desktop.plugins.manager import PluginManager
from plexichat_desktop.plugins.scaffold import scaffold_plugin
from plexichat_desktop.testing.manager import TestManager
from plexichat_desktop.testing.store import ResultStore
from tests.conftest import fresh_home, plain_env

RULES = '''
import asyncio
import time


async def test_unmarked_async_runs() -> None:
    await asyncio.sleep(0)


def test_returned_failure_dict_fails():
    return {"success": False, "message": "the old way of failing"}


def test_returned_success_dict_passes():
    return {"success": True}


def test_hanging_test_is_stopped() -> None:
    time.sleep(600)


async def test_hanging_async_test_is_stopped() -> None:
    await asyncio.sleep(600)


def test_after_the_hangs_still_runs() -> None:
    assert True
'''
EXPECTED = {
    "test_unmarked_async_runs": "passed",
    "test_returned_failure_dict_fails": "failed",
    "test_returned_success_dict_passes": "passed",
    "test_hanging_test_is_stopped": "failed",
    "test_hanging_async_test_is_stopped": "failed",
    "test_after_the_hangs_still_runs": "passed",
}


def _rules_plugin(tmp_path: Path) -> Path:
    root = scaffold_plugin("rules_demo", tmp_path / "plugins")
    manifest = root / "plugin.toml"
    # One second: each of the two hangs waits out the whole timeout.
    manifest.write_text(manifest.read_text().replace("timeout = 60", "timeout = 1"))
    (root / "tests" / "test_rules.py").write_text(RULES)
    return root


def test_plain_pytest_applies_the_managers_rules_and_the_manifest_timeout(tmp_path: Path):
    root = _rules_plugin(tmp_path)
    junit = tmp_path / "junit.xml"
    # From the repository root, naming one file, as an IDE does: the plugin's pytest.ini
    # is found from the file and loads the harness.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--junitxml={junit}", str(root / "tests" / "test_rules.py")],
        cwd=Path(__file__).resolve().parent.parent, env=plain_env(), capture_output=True,
        text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    outcomes = {}
    messages = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        failure = case.find("failure")
        outcomes[case.get("name")] = "failed" if failure is not None else (
            "error" if case.find("error") is not None else "passed")
        if failure is not None:
            messages[case.get("name")] = failure.get("message", "")
    assert outcomes == EXPECTED, result.stdout
    assert "the old way of failing" in messages["test_returned_failure_dict_fails"]
    for hung in ("test_hanging_test_is_stopped", "test_hanging_async_test_is_stopped"):
        assert "ran longer than its timeout of 1 s" in messages[hung], messages[hung]


CONSUMER_MANIFEST = '''id = "api_consumer"
name = "API Consumer"
version = "0.1.0"
entry = "api_consumer:ApiConsumer"

[requires]
api_integration_layer = ">=1.0"

[permissions]
api_scopes = ["users:read"]
'''
CONSUMER = '''from plexichat_desktop.plugins.api import Plugin, PluginContext


class ApiConsumer(Plugin):
    def setup(self, ctx: PluginContext) -> None:
        async def me() -> dict:
            return (await ctx.api.users.me()).model_dump(mode="json")

        ctx.add_route("/me", me)
'''
CONSUMER_TEST = '''from plexichat_desktop.core.events import PluginStateChanged


def test_the_app_with_a_v1_user(plexichat_app):
    app = plexichat_app
    assert app.user is not None
    # ctx.api acts as the harness's user, and the user's own client works too.
    me = app.client.get("api/me")
    assert me.status_code == 200, me.text
    assert me.json()["username"] == app.user.username
    assert app.user.client.get("users/me").json()["username"] == app.user.username
    plugins = {p["id"]: p["state"] for p in app.host.get("/api/plugins").json()["plugins"]}
    assert plugins == {"api_consumer": "active", "api_integration_layer": "active"}
    assert app.client.get("api/me", headers={"Authorization": ""}).status_code == 401

    events = app.events(PluginStateChanged)
    assert app.reload() == "active"
    events.wait_for(lambda e: e.plugin_id == "api_consumer" and e.state == "active")
    events.close()
    assert app.call(lambda: app.plugin.ctx.plugin_id) == "api_consumer"


async def test_async_tests_use_the_async_client(plexichat_app):
    async with plexichat_app.async_client() as client:
        assert (await client.get("api/me")).status_code == 200
'''


def test_plexichat_app_starts_the_plugin_with_what_it_needs(tmp_path: Path):
    root = tmp_path / "plugins" / "api_consumer"
    (root / "api_consumer").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "plugin.toml").write_text(CONSUMER_MANIFEST)
    (root / "api_consumer" / "__init__.py").write_text(CONSUMER)
    (root / "tests" / "test_consumer.py").write_text(CONSUMER_TEST)
    from plexichat_desktop.plugins.scaffold import PYTEST_INI

    (root / "pytest.ini").write_text(PYTEST_INI)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio"],
        cwd=root, env={**plain_env(), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_a_plugin_that_does_not_start_fails_the_test_with_its_reason(tmp_path: Path):
    root = scaffold_plugin("broken_start", tmp_path / "plugins")
    module = root / "broken_start" / "__init__.py"
    module.write_text(module.read_text().replace(
        'ctx.logger.info("broken_start is set up")', 'raise RuntimeError("no database")'))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "in_the_app"],
        cwd=root, env={**plain_env(), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert ("plugin broken_start did not start in the test app (failed: setup() raised "
            "RuntimeError: no database)") in result.stdout, result.stdout


SHARED_TESTS = '''import asyncio
import contextlib

import pytest

from plexichat_desktop.testing.harness import SharedCore

RESETS = []
STARTS = []


@pytest.fixture
def plexichat_reset():
    return RESETS.append


def test_the_module_app_is_set_up_once(plexichat_shared_app):
    app = plexichat_shared_app
    app.call(lambda: setattr(app.plugin, "left_by", "the first test"))
    assert RESETS == [app]
    assert app.client.get("").status_code == 200


def test_the_next_test_finds_it_as_it_was_left_after_its_reset(plexichat_shared_app,
                                                               plexichat_module_app):
    app = plexichat_shared_app
    assert app is plexichat_module_app
    assert app.call(lambda: app.plugin.left_by) == "the first test"
    assert len(RESETS) == 2 and RESETS[0] is RESETS[1] is app


@contextlib.asynccontextmanager
async def loop_bound():
    STARTS.append(asyncio.get_running_loop())
    yield asyncio.get_running_loop()


@pytest.fixture(scope="module")
def shared(module_loop):
    core = SharedCore(loop_bound)
    yield core
    module_loop.run_until_complete(core.close())


async def test_an_async_test_runs_on_the_module_loop(shared, module_loop):
    assert asyncio.get_running_loop() is module_loop
    assert await shared.get() is module_loop


async def test_and_the_next_one_shares_what_it_started(shared, module_loop):
    assert await shared.get() is module_loop
    assert STARTS == [module_loop]
'''


@dataclass
class Managed:
    """The module's test manager and the plugin folders it knows (see ``managed``)."""

    manager: TestManager
    store: ResultStore
    rules: Path
    shared: Path

    async def outcomes(self, plugin_id: str, targets: list[str]) -> dict[str, str]:
        """Each test's outcome (by name) when the test manager runs ``targets`` of the
        plugin ``plugin_id``."""
        run = await self.manager.submit(plugin_id, targets, precheck=False)
        await self.manager.wait(run.id)
        return {a.nodeid.split("::")[-1]: a.outcome
                for a in self.store.attempts_for_run(run.id)}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def managed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Managed]:
    """One test manager, and so one pytest fork server, for the module's two plugins
    (rules_demo and shared_demo): each run still gets a pytest child of its own, forked
    from the pristine server, but the server's start (Python, pytest and the app's
    imports, over a second of CPU) is paid once. Its home is set up as the ``home``
    fixture's: fresh, and no plugin path from the caller's environment."""
    root = tmp_path_factory.mktemp("harness-manager")
    rules = _rules_plugin(root)
    shared = scaffold_plugin("shared_demo", root / "plugins")
    (shared / "tests" / "test_shared.py").write_text(SHARED_TESTS)
    with pytest.MonkeyPatch.context() as env:
        home = fresh_home(env, root / "home")
        settings = Settings()
        bus = EventBus()
        plugins = PluginManager(paths=home, settings=settings, bus=bus, bundled_dir=None,
                                extra_dirs=[root / "plugins"], include_installed=False)
        plugins.discover()
        store = ResultStore(home.data_dir / "tests.sqlite3")
        manager = TestManager(plugins, store, bus, home.cache_dir / "runs", settings.tests)
        await manager.start()
        try:
            yield Managed(manager, store, rules, shared)
        finally:
            await manager.stop()
            store.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_the_manager_gives_the_same_verdicts(managed: Managed):
    got = await managed.outcomes("rules_demo", ["tests/test_rules.py"])
    # The manager names a hang "timed_out" (and keeps its stacks); plain pytest fails it.
    assert got == {name: ("timed_out" if "hanging" in name else outcome)
                   for name, outcome in EXPECTED.items()}


@pytest.mark.asyncio(loop_scope="module")
async def test_a_module_shares_one_app_and_one_loop(managed: Managed):
    root = managed.shared
    target = "tests/test_shared.py"
    plain = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio",
         target], cwd=root, env={**plain_env(), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "4 passed" in plain.stdout

    got = await managed.outcomes("shared_demo", [target])
    assert set(got.values()) == {"passed"} and len(got) == 4, got


def test_the_test_app_gets_what_the_needed_plugins_need_too(tmp_path: Path):
    """Only the plugin's own ``requires`` were loaded: a plugin needing one that needs
    another (top -> mid -> base, or a plugin on the Analytics Dashboard, which needs the
    API layer) did not start in its tests, while the same folder served fine."""
    from plexichat_desktop.core.paths import bundled_plugins_dir
    from plexichat_desktop.testing.harness import _manifest, _needed_plugins

    folder = tmp_path / "plugins"
    for name, needs in (("base_p", None), ("mid_p", "base_p"), ("top_p", "mid_p"),
                        ("on_analytics", "analytics_dashboard")):
        root = scaffold_plugin(name, folder)
        if needs:
            manifest = root / "plugin.toml"
            manifest.write_text(manifest.read_text() + f'\n[requires]\n{needs} = ">=0.1"\n')
    top = folder / "top_p"
    assert _needed_plugins(top, _manifest(top)) == [
        top, (folder / "mid_p").resolve(), (folder / "base_p").resolve()]
    other = folder / "on_analytics"
    bundled = bundled_plugins_dir()
    assert _needed_plugins(other, _manifest(other)) == [
        other, (bundled / "analytics_dashboard").resolve(),
        (bundled / "api_integration_layer").resolve()]


def test_a_needed_plugin_is_found_where_the_app_finds_it(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch):
    """Audit: only the plugin's own parent folder and the bundled ones were searched: a
    needed plugin in the user's plugins folder or on PLEXICHAT_DESKTOP_PLUGINS_PATH (the
    app found it) "is not installed" in the test app."""
    from plexichat_desktop.core.paths import PLUGINS_PATH_ENV, AppPaths
    from plexichat_desktop.testing.harness import _manifest, _needed_plugins

    monkeypatch.setenv("PLEXICHAT_DESKTOP_HOME", str(tmp_path / "home"))
    user = AppPaths.from_env().user_plugins_dir
    lib = scaffold_plugin("user_lib", user)
    lib.rename(user / "user-lib-1.0")  # a folder named otherwise than the id
    extra = scaffold_plugin("path_lib", tmp_path / "elsewhere")
    monkeypatch.setenv(PLUGINS_PATH_ENV, str(extra.parent))
    consumer = scaffold_plugin("consumer_p", tmp_path / "work")
    manifest = consumer / "plugin.toml"
    manifest.write_text(manifest.read_text()
                        + '\n[requires]\nuser_lib = ">=0.1"\npath_lib = ">=0.1"\n')
    assert _needed_plugins(consumer, _manifest(consumer)) == [
        consumer, (user / "user-lib-1.0").resolve(), extra.resolve()]
