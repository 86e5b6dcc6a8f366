"""Every page of every bundled plugin loads in QtWebEngine without an error.

The pages come from the real server (``/api/plugins``, so a page added to a manifest or by
``ctx.add_page`` is covered without touching this file) and open as the desktop window
opens them. A page fails on any console error, Content-Security-Policy violation (a
refused eval or inline script, a foreign source), resource that failed to load, or
uncaught error, up to the moment its first requests have answered. Each page is a subtest
that names the plugin, the page and the messages. The host's own pages (home, test
dashboards) and the page of a plugin fresh from ``plugins new`` are held to the same rule.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import qasync
from PySide6.QtTest import QTest

from plexichat_desktop.core.paths import AppPaths
from plexichat_desktop.core.settings import Settings
from plexichat_desktop.plugins.scaffold import scaffold_plugin
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from tests.gui.page_console import PageBrowser, page_browser

# Pages loading at once: each has its own renderer, and on two cores more than this only
# makes each of them slower.
AT_ONCE = 4
# The plugin whose tests the /tests page is left to collect by itself (see bundled_runtime).
COLLECTED_BY_THE_PAGE = "performance_monitor"


def run_in(loop: qasync.QEventLoop, coro: Coroutine[Any, Any, Any], timeout: float = 120
           ) -> Any:
    """``arun`` for module-scoped fixtures (``arun`` and ``qtbot`` are per test)."""
    asyncio.events._set_running_loop(loop)
    try:
        task = loop.create_task(coro)
        deadline = time.monotonic() + timeout
        while not task.done():
            assert time.monotonic() < deadline, f"{coro} did not finish in {timeout} s"
            QTest.qWait(10)
        return task.result()
    finally:
        asyncio.events._set_running_loop(None)


# The module's core while it is up (see keep_the_core_served).
SERVED: list[qasync.QEventLoop] = []


@pytest.fixture(autouse=True)
def keep_the_core_served() -> Iterator[None]:
    """The module's core lives from test to test: its tasks (uvicorn's, the plugins',
    the collection) run whenever Qt runs the loop, and need it to be the running loop
    then, which ``arun`` unsets at the end of each test. Torn down after ``arun``."""
    yield
    for loop in SERVED:
        asyncio.events._set_running_loop(loop)


@dataclass
class BundledCore:
    runtime: Runtime
    collecting: asyncio.Task[None]  # every plugin's tests but one's (see bundled_core)


@pytest.fixture(scope="module")
def bundled_core(qloop: qasync.QEventLoop, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[BundledCore]:
    """The real core with the bundled plugins only, as a user's first start has them;
    one for the module (starting all of them is the slow part, and both tests only read).

    Every plugin's tests are collected in the background from the start, but one's: the
    /tests page collects what was never collected, one plugin after another (a pytest run
    of seconds each), and its first requests would take that long. It still collects
    the one left to it."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PLEXICHAT_DESKTOP_HOME", str(tmp_path_factory.mktemp("bundled") / "home"))
        env.delenv("PLEXICHAT_DESKTOP_PLUGINS_PATH", raising=False)
        settings = Settings()
        settings.server.port = 0
        rt = Runtime(AppPaths.from_env(), settings,
                     RuntimeOptions(bundled=True, include_installed=False))
        run_in(qloop, rt.start())

        async def collect() -> None:
            gate = asyncio.Semaphore(rt.tests.concurrency)

            async def one(pid: str) -> None:
                async with gate:
                    await rt.tests.discover(pid)

            await asyncio.gather(*(one(rec.id) for rec in rt.tests.testable()
                                   if rec.id != COLLECTED_BY_THE_PAGE
                                   and rt.tests.tests_dir(rec).is_dir()))

        core = BundledCore(rt, qloop.create_task(collect(), name="collect in background"))
        SERVED.append(qloop)
        try:
            yield core
        finally:
            SERVED.remove(qloop)
            core.collecting.cancel()
            run_in(qloop, rt.stop())


def all_plugins(runtime: Runtime, arun: Any) -> list[dict[str, Any]]:
    async def get() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=runtime.url, timeout=30, headers={
                "Authorization": f"Bearer {runtime.token}"}) as client:
            answer = await client.get("/api/plugins")
            answer.raise_for_status()
            body = answer.json()
        return body["plugins"] if isinstance(body, dict) else body

    plugins: list[dict[str, Any]] = arun(get())
    return plugins


def bundled_plugins(runtime: Runtime, arun: Any) -> list[dict[str, Any]]:
    return [p for p in all_plugins(runtime, arun) if p["source"] == "bundled"]


# A live page has also heard from its streams once they are open: what its first events
# do is part of loading it.
LIVE_OPEN = ("!window.plexichatLive || plexichatLive.streams().every("
             "(s) => s.readyState === 1)")


# The visible text-only elements that say they are loading.
STILL_LOADING = ("[...document.querySelectorAll('body *')].filter((e) => e.offsetParent !== null"
                 " && e.children.length === 0 && /Loading/.test(e.textContent))"
                 ".map((e) => e.textContent)")


def check_page(browser: PageBrowser, view: Any, what: str) -> None:
    browser.wait_loaded(view)
    browser.wait_idle(view)
    browser.qtbot.waitUntil(lambda: bool(browser.js(view, LIVE_OPEN)), timeout=30_000)
    browser.wait_idle(view)
    report = browser.report(view)
    if report.warnings:  # shown with the test's output; not a failure
        print(f"{what}: console warnings:", *report.warnings, sep="\n  ")
    problems = "\n  ".join(report.problems)
    assert not report.problems, f"{what} ({report.url}):\n  {problems}"
    # Idle, its first requests answered: nothing it shows may still say it is loading
    # (a signed-out page once said "Loading…" beside "Not signed in" for good).
    loading = browser.js(view, STILL_LOADING)
    assert not loading, f"{what} ({report.url}) still says: {loading}"


def check_pages(browser: PageBrowser, subtests: pytest.Subtests,
                pages: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Each (path, what, subtest labels) is a subtest; a few pages load at once, each in
    its own view, closed once checked."""
    for first in range(0, len(pages), AT_ONCE):
        batch = pages[first:first + AT_ONCE]
        views = [browser.start(path) for path, _, _ in batch]
        for view, (_, what, labels) in zip(views, batch, strict=True):
            with subtests.test(**labels):
                check_page(browser, view, what)
        for view in views:
            browser.close(view)


def test_every_bundled_plugin_page_loads_without_errors(
        qapp: Any, qtbot: Any, bundled_core: BundledCore, arun: Any, tmp_path: Path,
        subtests: pytest.Subtests) -> None:
    bundled_runtime = bundled_core.runtime
    plugins = bundled_plugins(bundled_runtime, arun)
    assert plugins, "no bundled plugin was found"
    pages = [(plugin, page) for plugin in plugins for page in plugin["pages"]]
    assert pages, "no bundled plugin declares a page"
    with page_browser(qapp, qtbot, bundled_runtime, tmp_path, arun) as browser:
        for plugin in plugins:
            with subtests.test(msg="running", plugin=plugin["id"]):
                # A plugin that did not start shows a host error page instead of its own;
                # a degraded one (an optional requirement missing here) runs.
                assert plugin["running"], \
                    f"plugin {plugin['id']} is {plugin['state']}: {plugin['reason']}"
        check_pages(browser, subtests, [
            (page["url"], f"plugin {plugin['id']}, page {page['title']!r}",
             {"msg": "page", "plugin": plugin["id"], "page": page["url"]})
            for plugin, page in pages])


def test_host_pages_load_without_errors(qapp: Any, qtbot: Any, bundled_core: BundledCore,
                                        arun: Any, tmp_path: Path,
                                        subtests: pytest.Subtests) -> None:
    """The home page and the test dashboards, which link to the plugin pages."""
    bundled_runtime = bundled_core.runtime
    plugins = bundled_plugins(bundled_runtime, arun)
    qtbot.waitUntil(bundled_core.collecting.done, timeout=300_000)
    bundled_core.collecting.result()
    paths = ["/", "/tests", *(f"/tests/plugin/{p['id']}" for p in plugins)]
    with page_browser(qapp, qtbot, bundled_runtime, tmp_path, arun) as browser:
        check_pages(browser, subtests, [(path, f"host page {path}",
                                         {"msg": "host page", "page": path})
                                        for path in paths])


def test_a_new_plugins_pages_load_without_errors(qapp: Any, qtbot: Any, home: Any,
                                                 arun: Any, tmp_path: Path,
                                                 subtests: pytest.Subtests) -> None:
    """What ``plugins new`` writes is where every plugin author starts from."""
    scaffold_plugin("fresh_start", tmp_path / "authored")
    settings = Settings()
    settings.server.port = 0
    runtime = Runtime(home, settings, RuntimeOptions(
        bundled=False, include_installed=False, extra_plugin_dirs=[tmp_path / "authored"]))
    arun(runtime.start())
    try:
        (plugin,) = all_plugins(runtime, arun)
        assert plugin["running"], plugin["reason"]
        assert plugin["pages"], "plugins new made no page"
        with page_browser(qapp, qtbot, runtime, tmp_path, arun) as browser:
            check_pages(browser, subtests, [
                (page["url"], f"new plugin, page {page['title']!r}",
                 {"msg": "page", "page": page["url"]}) for page in plugin["pages"]])
    finally:
        arun(runtime.stop())
