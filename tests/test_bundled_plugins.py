"""The plugins shipped with the app: they start, serve their pages, and their own test
suites pass when the test manager runs them (in real pytest children)."""

import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from plexichat_desktop.core.events import EventBus
from plexichat_desktop.core.paths import bundled_plugins_dir
from plexichat_desktop.core.settings import Settings
from plexichat_desktop.plugins.discovery import Source, scan_folder
from plexichat_desktop.plugins.manager import PluginManager
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from plexichat_desktop.testing.manager import TestManager
from plexichat_desktop.testing.models import RunStatus
from plexichat_desktop.testing.runner import plugin_pytest_config
from plexichat_desktop.testing.store import ResultStore
from tests.conftest import fresh_home, plain_env

BUNDLED = sorted(c.root.name for c in scan_folder(bundled_plugins_dir(), Source.BUNDLED))


def test_there_are_bundled_plugins():
    assert "performance_monitor" in BUNDLED


def test_pytest_in_a_bundled_plugins_folder_runs_it_as_the_manager_does():
    """``pytest`` in a plugin's folder, an author's first try, stops at the plugin's own
    config: with it only under tests/, pytest climbed to this repository's pyproject.toml,
    left the harness out and failed four suites that the manager passes."""
    # The config the manager passes is the one pytest finds from the folder: beside
    # plugin.toml, none under tests/ to shadow it.
    elsewhere = {pid: plugin_pytest_config(bundled_plugins_dir() / pid, "tests")
                 for pid in BUNDLED}
    assert all(config == bundled_plugins_dir() / pid / "pytest.ini"
               for pid, config in elsewhere.items()), elsewhere
    # A bare `pytest` in the folder, narrowed with -k to one test that needs the harness
    # (an unmarked async test): it failed when pytest took the repository's config.
    folder = bundled_plugins_dir() / "api_integration_layer"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         "-k", "test_a_session_ended_elsewhere_means_log_in_again"],
        cwd=folder, env=plain_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout, result.stdout
    assert f"rootdir: {folder}" in result.stdout, result.stdout


@pytest.mark.asyncio
async def test_every_bundled_plugin_starts_and_serves_its_pages(home):
    settings = Settings()
    settings.server.port = 0
    runtime = Runtime(home, settings, RuntimeOptions(include_installed=False))
    await runtime.start()
    try:
        import httpx

        async with httpx.AsyncClient(base_url=runtime.url, headers={
                "Authorization": f"Bearer {runtime.token}"}) as client:
            plugins = {p["id"]: p for p in (await client.get("/api/plugins")).json()["plugins"]}
            for plugin_id in BUNDLED:
                assert plugins[plugin_id]["state"] == "active", plugins[plugin_id]["reason"]
                for page in plugins[plugin_id]["pages"]:
                    response = await client.get(page["url"])
                    assert response.status_code == 200, page
                    assert "text/html" in response.headers["content-type"]
    finally:
        await runtime.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def suite_manager(tmp_path_factory: pytest.TempPathFactory
                        ) -> AsyncIterator[tuple[TestManager, ResultStore]]:
    """One test manager, and so one pytest fork server, for the module's bundled suites
    (per xdist worker): each suite still runs in a pytest child of its own, forked from
    the pristine server, but the server's start (Python, pytest and the app's imports,
    ~1-2 s of CPU) is paid once instead of once per plugin. Its home is set up as the
    ``home`` fixture's: fresh, and no plugin path from the caller's environment."""
    root = tmp_path_factory.mktemp("bundled-suites")
    with pytest.MonkeyPatch.context() as env:
        home = fresh_home(env, root / "home")
        settings = Settings()
        bus = EventBus()
        plugins = PluginManager(paths=home, settings=settings, bus=bus,
                                bundled_dir=bundled_plugins_dir(), include_installed=False)
        plugins.discover()
        store = ResultStore(home.data_dir / "tests.sqlite3")
        manager = TestManager(plugins, store, bus, home.cache_dir / "runs", settings.tests)
        await manager.start()
        # Whichever suite a worker runs first, the server imports the app's stack for
        # the suites that start the app (all but one).
        manager.runner.prepare([rec.root for rec in plugins.by_id.values()])
        try:
            yield manager, store
        finally:
            await manager.stop()
            store.close()


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("plugin_id", BUNDLED)
async def test_bundled_plugin_suite_passes_in_the_test_manager(suite_manager, plugin_id):
    manager, store = suite_manager
    run = await manager.submit(plugin_id)
    done = await manager.wait(run.id)
    failures = [f"{a.nodeid}: {a.outcome} {a.message}" for a in
                store.attempts_for_run(run.id) if a.outcome not in ("passed", "skipped")]
    assert done.status is RunStatus.PASSED, failures
    assert done.counts["total"] > 0
