"""Shared set-up of the File Manager's tests.

Every test works in its own temp folders: the roots, and the trash (XDG_DATA_HOME is set
before send2trash is imported, which reads it once), so the real home is never touched.
Async tests carry ``pytest.mark.asyncio`` and take no async fixtures (the test manager's
runner and pytest-asyncio both run them); the app is started inside a test with the
``app`` fixture's async context manager.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_ID = "file_manager"
if str(PLUGIN_ROOT) not in sys.path:
    # Appended, so the plugin folder's "tests" cannot shadow the project's "tests".
    sys.path.append(str(PLUGIN_ROOT))

_TRASH_HOME = tempfile.mkdtemp(prefix="fm-test-xdg-")
os.environ["XDG_DATA_HOME"] = _TRASH_HOME
if "send2trash.plat_other" in sys.modules:  # imported earlier in this process: repoint it
    _po = sys.modules["send2trash.plat_other"]
    _po.XDG_DATA_HOME = _TRASH_HOME.encode()  # type: ignore[attr-defined]
    _po.HOMETRASH_B = os.path.join(_TRASH_HOME.encode(), b"Trash")  # type: ignore[attr-defined]
    _po.HOMETRASH = os.fsdecode(_po.HOMETRASH_B)  # type: ignore[attr-defined]


@pytest.fixture
def trash_home() -> Path:
    return Path(_TRASH_HOME)


@pytest.fixture
def ctl() -> Any:
    """A worker control with no job behind it, for calling the blocking parts directly."""
    from file_manager.worker import Ctl
    return Ctl(None, None)


def _plugins_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    link = folder / PLUGIN_ID
    if not link.exists():
        link.symlink_to(PLUGIN_ROOT, target_is_directory=True)
    return folder


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``async with app(roots=[...], **settings) as (client, plugin, runtime)``: the real
    host with only this plugin, an httpx client on its API with the app token."""
    import httpx

    from plexichat_desktop.core.paths import PLUGINS_PATH_ENV, AppPaths
    from plexichat_desktop.core.settings import Settings
    from plexichat_desktop.runtime import Runtime, RuntimeOptions

    monkeypatch.delenv(PLUGINS_PATH_ENV, raising=False)

    @contextlib.asynccontextmanager
    async def start(roots: list[Path], **settings: Any) -> AsyncIterator[Any]:
        home = tmp_path / "apphome"
        paths = AppPaths(home / "config", home / "data", home / "cache", home / "logs")
        config = Settings(server={"port": 0}, plugin={
            PLUGIN_ID: {"roots": [str(r) for r in roots], **settings}})
        runtime = Runtime(paths, config, RuntimeOptions(
            bundled=False, include_installed=False,
            extra_plugin_dirs=[_plugins_folder(tmp_path)]))
        url = await runtime.start()
        try:
            record = runtime.plugins.by_id[PLUGIN_ID]
            assert str(record.state) in ("active", "degraded"), (record.reason, record.detail)
            async with httpx.AsyncClient(
                    base_url=f"{url}plugins/{PLUGIN_ID}/api/", timeout=30,
                    headers={"Authorization": f"Bearer {runtime.token}"}) as client:
                yield client, record.instance, runtime
        finally:
            await runtime.stop()

    return start
