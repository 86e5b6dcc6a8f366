"""Shared fixtures: an isolated home per test, the fixture plugins, a running core."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import ssl
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from plexichat_desktop.core.paths import AppPaths
from plexichat_desktop.core.settings import Settings
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from plexichat_desktop.testing.shared_ssl import share_default_ssl_context

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_PLUGINS = FIXTURES / "plugins"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppPaths:
    """A fresh PLEXICHAT_DESKTOP_HOME; no plugin path from the caller's environment."""
    return fresh_home(monkeypatch, tmp_path / "home")


def fresh_home(env: pytest.MonkeyPatch, folder: Path) -> AppPaths:
    """``folder`` as PLEXICHAT_DESKTOP_HOME, with no plugin path and no settings from the
    caller's environment (for fixtures longer-lived than ``home``: pass them a
    ``MonkeyPatch.context()``)."""
    env.setenv("PLEXICHAT_DESKTOP_HOME", str(folder))
    env.delenv("PLEXICHAT_DESKTOP_PLUGINS_PATH", raising=False)
    for name in list(os.environ):
        if name.startswith("PLEXICHAT_DESKTOP_") and "__" in name:
            env.delenv(name)
    return AppPaths.from_env()


def plain_env() -> dict[str, str]:
    """This environment as an IDE's pytest gets it: whatever plugins the environment
    autoloads, none of this session's PYTEST_ variables, no test manager's channel."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PYTEST_", "PLEXICHAT_REPORT"))}


def write_priority_plugin(folder: Path, report: Path) -> Path:
    """Plugin ``prio`` in ``folder``/prio: its one test appends to ``report`` how its
    session started (fork, warm, cold), its nice value, its scheduler group's ("-" without
    Linux autogroup) and whether it leads its own session, space-separated. The folder."""
    plugin = folder / "prio"
    (plugin / "tests").mkdir(parents=True)
    (plugin / "plugin.toml").write_text(
        'id = "prio"\nname = "Priority"\nversion = "1.0.0"\nentry = "prio_pkg:P"\n')
    (plugin / "prio_pkg.py").write_text("class P:\n    pass\n")
    (plugin / "tests" / "test_prio.py").write_text(textwrap.dedent(f"""
        import os, pathlib, sys

        def test_priority():
            group = pathlib.Path("/proc/self/autogroup")
            # "/autogroup-123 nice 7": the group's nice value is the last word.
            lowered = group.read_text().split()[-1] if group.exists() else "-"
            how = "fork" if "--pytest-fork-server" in sys.orig_argv else (
                "cold" if "pytest" in sys.orig_argv else "warm")
            with open({str(report)!r}, "a") as out:
                print(how, os.nice(0), lowered, os.getsid(0) == os.getpid(), file=out)
    """))
    return folder


def switch_off_bundled(paths: AppPaths, keep: tuple[str, ...] = ()) -> None:
    """Switch the bundled plugins off in ``paths`` as a user would (the plugin states file),
    but ``keep``: for tests of the app that start it in a subprocess and need none of them.
    Each bundled plugin's pages and suite are tested in test_bundled_plugins.py and
    gui/test_plugin_pages.py; starting all of them in every such subprocess only costs."""
    from plexichat_desktop.core.events import EventBus
    from plexichat_desktop.core.paths import bundled_plugins_dir
    from plexichat_desktop.plugins.discovery import Source, scan_folder
    from plexichat_desktop.plugins.manager import PluginManager

    manager = PluginManager(paths=paths, settings=Settings(), bus=EventBus(), bundled_dir=None,
                            include_installed=False)
    for candidate in scan_folder(bundled_plugins_dir(), Source.BUNDLED):
        if candidate.root.name not in keep:
            manager.remember_enabled(candidate.root.name, False)


# One certificate store for every test client: httpx loads the CA bundle for each new
# client (~0.06 s of CPU, twice per started core), and the servers here are plain HTTP on
# 127.0.0.1.
SSL: ssl.SSLContext = httpx.create_ssl_context()
# The same for the clients the app and its plugins make in these tests (the API
# integration layer's, the CLI's, each core's): ~230 CA-bundle loads, ~6 s of the suite's
# CPU. A client asking for other verification still gets a context of its own; the plugins'
# suites opt in the same way from their conftests.
share_default_ssl_context()


# The commands' main(), one after the other in one fresh interpreter: the interpreter's
# start and the CLI's imports (most of a command's second or so) are paid once. Each
# command still gets its own argv, exit code, stdout and stderr, and reads and writes the
# home's files as a process of its own would (nothing is kept in memory between them).
BATCH = """
import contextlib, io, json, sys
from plexichat_desktop.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # --help, --version and usage errors exit from argparse
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    results.append([code, out.getvalue(), err.getvalue()])
sys.__stdout__.write(json.dumps(results))
"""


def run_many(commands: list[list[str]], env: dict[str, str]
             ) -> list[subprocess.CompletedProcess[str]]:
    """``plexichat-desktop ARGS`` for each ARGS of ``commands``, all in one subprocess (see
    BATCH): what ``subprocess.run`` gives for each."""
    done = subprocess.run([sys.executable, "-c", BATCH, json.dumps(commands)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [subprocess.CompletedProcess(["plexichat-desktop", *args], code, out, err)
            for args, (code, out, err) in zip(commands, json.loads(done.stdout), strict=True)]


class RunningCore:
    def __init__(self, runtime: Runtime, url: str):
        self.runtime = runtime
        self.url = url
        self.token = runtime.token
        # Generous: a loaded machine must slow the tests down, not fail them.
        self.client = httpx.AsyncClient(base_url=url, timeout=60, verify=SSL,
                                        headers={"Authorization": f"Bearer {runtime.token}"})
        self.anonymous = httpx.AsyncClient(base_url=url, timeout=60, verify=SSL)

    @property
    def port(self) -> int:
        assert self.runtime.server is not None
        return self.runtime.server.port


@contextlib.asynccontextmanager
async def module_core(root: Path, *plugin_dirs: Path, settings: Settings | None = None
                      ) -> AsyncIterator[RunningCore]:
    """What ``start_core`` starts, on a home under ``root``: for a module-scoped fixture
    whose tests share one core (they run in the module's event loop then). Starting a core
    (its plugins imported and set up) costs more CPU than most tests that only read."""
    cfg = settings or Settings()
    cfg.server.port = 0
    with pytest.MonkeyPatch.context() as env:  # as the ``home`` fixture: no caller's plugins
        env.delenv("PLEXICHAT_DESKTOP_PLUGINS_PATH", raising=False)
        runtime = Runtime(AppPaths(root / "config", root / "data", root / "cache",
                                   root / "logs"), cfg,
                          RuntimeOptions(bundled=False, include_installed=False,
                                         extra_plugin_dirs=list(plugin_dirs)))
        core = RunningCore(runtime, await runtime.start())
    try:
        yield core
    finally:
        await core.client.aclose()
        await core.anonymous.aclose()
        await runtime.stop()


async def wait_for_run(core: RunningCore, run_id: int, timeout: float = 60) -> dict[str, Any]:
    """``GET /tests/runs/<run_id>`` once the run has ended (neither queued nor running)."""
    async with asyncio.timeout(timeout):
        while True:
            body: dict[str, Any] = (await core.client.get(f"/tests/runs/{run_id}")).json()
            if body["run"]["status"] not in ("queued", "running"):
                return body
            await asyncio.sleep(0.05)


@pytest_asyncio.fixture
async def start_core(home: AppPaths) -> AsyncIterator[Callable[..., object]]:
    """Start the real core (server on a free port) with the given plugin folders."""
    started: list[RunningCore] = []

    async def start(*plugin_dirs: Path, settings: Settings | None = None,
                    safe_mode: bool = False) -> RunningCore:
        cfg = settings or Settings()
        cfg.server.port = 0
        runtime = Runtime(home, cfg, RuntimeOptions(
            safe_mode=safe_mode, bundled=False, include_installed=False,
            extra_plugin_dirs=list(plugin_dirs)))
        url = await runtime.start()
        core = RunningCore(runtime, url)
        started.append(core)
        return core

    yield start
    for core in started:
        await core.client.aclose()
        await core.anonymous.aclose()
        await core.runtime.stop()


GUI_TESTS = Path(__file__).parent / "gui"
# The GUI modules of the second GUI group, about half of the GUI tests' time (measured
# per file, --durations): one worker for all of them was the suite's longest by far.
GUI2 = frozenset({"test_plugin_pages.py", "test_advanced_client_notes.py",
                  "test_web_dashboard.py", "test_one_truth.py", "test_analytics_page.py",
                  "test_user_manager_page.py", "test_security_toolkit_page.py",
                  "test_vendor_bundles.py"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``-n``), the GUI tests run in two groups, each in one worker
    (``gui`` and ``gui2``, see GUI2): the tests of a process share one QApplication and
    one qasync loop, and QtWebEngine's helpers are the heaviest processes of the suite.
    Two workers each with a QtWebEngine of its own is fine: they are separate processes."""
    for item in items:
        path = Path(str(item.path))
        if GUI_TESTS in path.parents:
            group = "gui2" if path.name in GUI2 else "gui"
            item.add_marker(pytest.mark.xdist_group(group))
            _group_suffix(config, item, group)
        elif path.name not in SPREAD and _uses_a_module_fixture(item):
            # --dist loadgroup hands out every test without a group on its own, to
            # whichever worker is free next: a module's tests went to all four workers,
            # and each started the module's shared core, fork server or wheel again.
            group = str(path.relative_to(REPO)) if REPO in path.parents else str(path)
            item.add_marker(pytest.mark.xdist_group(group))
            _group_suffix(config, item, group)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection made (the app's modules, the test modules, the items: ~0.3-0.45
    million objects in a worker) lives until the worker ends; the collector's full passes
    walked all of it again and again (~1.2 s of CPU per worker over a run). Frozen, they
    are left out of those passes; what the tests make is collected as ever."""
    gc.freeze()


# Modules whose module fixture is cheap beside their tests, which are better spread over
# the workers: each bundled plugin's suite runs for seconds to tens of seconds, and all of
# them in one worker would be the suite's longest stretch by far (each worker starts its
# own fork server for them instead).
SPREAD = frozenset({"test_bundled_plugins.py"})


def _uses_a_module_fixture(item: pytest.Item) -> bool:
    """Whether ``item`` asks (directly or through other fixtures) for a fixture that lives
    for its module or class: what its module's tests share when one worker runs them."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(defs and defs[-1].scope in ("module", "class")
               for defs in info.name2fixturedefs.values())


def _group_suffix(config: pytest.Config, item: pytest.Item, group: str) -> None:
    """Give the node id the ``@group`` suffix xdist's loadgroup scheduler reads.

    pytest-xdist (3.8) adds it by setting ``item._nodeid``, which pytest 9.2 no longer
    reads (node ids became structured, in ``item._id``): the GUI tests were seen spread
    over both workers, two QtWebEngines at once. Until xdist follows, the suffix is set
    here, where pytest 9.2 keeps it; a suffix already there is left alone."""
    if (not getattr(config.option, "loadgroup", False) or "@" in item.nodeid
            or not hasattr(item, "_id")):
        return
    try:
        from _pytest.nodeid import coerce_node_id
    except ImportError:  # an older pytest: xdist's own suffix works there
        return
    item._id = coerce_node_id(f"{item.nodeid}@{group}")
