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

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from plexichat_desktop.core.settings import Settings
from plexichat_desktop.plugins.scaffold import scaffold_plugin
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from tests.gui.page_console import PageBrowser, page_browser


@pytest.fixture
def bundled_runtime(home: Any, arun: Any) -> Iterator[Runtime]:
    """The real core with the bundled plugins only, as a user's first start has them."""
    settings = Settings()
    settings.server.port = 0
    rt = Runtime(home, settings, RuntimeOptions(bundled=True, include_installed=False))
    arun(rt.start())
    yield rt
    arun(rt.stop())


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


def check_page(browser: PageBrowser, path: str, what: str) -> None:
    view = browser.open(path)
    browser.wait_idle(view)
    browser.qtbot.waitUntil(lambda: bool(browser.js(view, LIVE_OPEN)), timeout=30_000)
    browser.wait_idle(view)
    report = browser.report(view)
    if report.warnings:  # shown with the test's output; not a failure
        print(f"{what}: console warnings:", *report.warnings, sep="\n  ")
    problems = "\n  ".join(report.problems)
    assert not report.problems, f"{what} ({report.url}):\n  {problems}"


def test_every_bundled_plugin_page_loads_without_errors(
        qapp: Any, qtbot: Any, bundled_runtime: Runtime, arun: Any, tmp_path: Path,
        subtests: pytest.Subtests) -> None:
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
        for plugin, page in pages:
            with subtests.test(msg="page", plugin=plugin["id"], page=page["url"]):
                check_page(browser, page["url"],
                           f"plugin {plugin['id']}, page {page['title']!r}")


def test_host_pages_load_without_errors(qapp: Any, qtbot: Any, bundled_runtime: Runtime,
                                        arun: Any, tmp_path: Path,
                                        subtests: pytest.Subtests) -> None:
    """The home page and the test dashboards, which link to the plugin pages."""
    plugins = bundled_plugins(bundled_runtime, arun)
    paths = ["/", "/tests", *(f"/tests/plugin/{p['id']}" for p in plugins)]
    with page_browser(qapp, qtbot, bundled_runtime, tmp_path, arun) as browser:
        for path in paths:
            with subtests.test(msg="host page", page=path):
                check_page(browser, path, f"host page {path}")


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
            for page in plugin["pages"]:
                with subtests.test(msg="page", page=page["url"]):
                    check_page(browser, page["url"], f"new plugin, page {page['title']!r}")
    finally:
        arun(runtime.stop())
