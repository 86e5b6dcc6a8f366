"""Stopping while the plugins still start in the background (what quitting right after
the window's first page does): stopping does not wait for an import in progress, and
does not set up a plugin only to tear it down."""

import asyncio
from pathlib import Path

import pytest

from plexichat_desktop.core.paths import AppPaths
from plexichat_desktop.core.settings import Settings
from plexichat_desktop.plugins.manager import PluginState
from plexichat_desktop.plugins.scaffold import scaffold_plugin
from plexichat_desktop.runtime import Runtime, RuntimeOptions

pytestmark = pytest.mark.asyncio

# Put at the top of a scaffolded plugin's module: its import says it began, then blocks until
# the test lets it go (an import that takes long, as a big one does under load).
BLOCKING_IMPORT = '''\
import pathlib as _pathlib
import time as _time

_here = _pathlib.Path(__file__).resolve().parent.parent
(_here / "importing").touch()
_deadline = _time.monotonic() + 120
while not (_here / "release").exists() and _time.monotonic() < _deadline:
    _time.sleep(0.02)
'''


def blocking_plugin(name: str, folder: Path) -> Path:
    root = scaffold_plugin(name, folder)
    module = root / name / "__init__.py"
    head, future, rest = module.read_text(encoding="utf-8").partition(
        "from __future__ import annotations\n")
    assert future, "the scaffold's module changed: put the blocking code after its imports"
    module.write_text(head + future + BLOCKING_IMPORT + rest, encoding="utf-8")
    return root


async def until(condition, timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_stopping_does_not_wait_for_a_plugin_import(home: AppPaths, tmp_path: Path):
    scaffold_plugin("sd_import_quick", tmp_path)
    slow = blocking_plugin("sd_import_slow", tmp_path)
    settings = Settings()
    settings.server.port = 0
    runtime = Runtime(home, settings, RuntimeOptions(bundled=False, include_installed=False,
                                                     extra_plugin_dirs=[tmp_path]))
    try:
        runtime.prepare()
        runtime.plugins.want("sd_import_quick")  # it starts first, then the slow one
        await runtime.start(plugins_in_background=True)
        await until(lambda: (slow / "importing").exists())
        quick = runtime.plugins.by_id["sd_import_quick"]
        assert quick.running
        runtime.begin_stop()
        # Before the fix this waited for the import (here: until released, 120 s).
        await asyncio.wait_for(runtime.stop(), 20)
        assert not quick.running and quick.state is not PluginState.FAILED
        slow_rec = runtime.plugins.by_id["sd_import_slow"]
        assert slow_rec.instance is None and slow_rec.context is None
        assert slow_rec.state is not PluginState.FAILED
        # The deferred routes are not built for a server that stopped.
        assert runtime._later
    finally:
        (slow / "release").touch()  # the abandoned import thread ends
        if runtime.server is not None:
            await runtime.stop()

