"""Shared set-up of the File Manager's tests.

Every test works in its own temp folders: the roots, and the trash (XDG_DATA_HOME is set
before send2trash is imported, which reads it once), so the real home is never touched.
Async tests carry ``pytest.mark.asyncio`` and take no async fixtures (the test manager's
runner and pytest-asyncio both run them); the app is started inside a test with the
``app`` fixture's async context manager.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from plexichat_desktop.testing.shared_ssl import share_default_ssl_context

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_ID = "file_manager"
LAYER_ROOT = PLUGIN_ROOT.parent / "api_integration_layer"
for _folder in (PLUGIN_ROOT, LAYER_ROOT):
    if str(_folder) not in sys.path:
        # Appended, so a plugin folder's "tests" cannot shadow the project's "tests".
        sys.path.append(str(_folder))

_TRASH_HOME = tempfile.mkdtemp(prefix="fm-test-xdg-")
atexit.register(shutil.rmtree, _TRASH_HOME, True)
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


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``async with app(roots=[...], **settings) as (client, plugin, server)``: the real
    app core (with the API integration layer, which sync needs) running only these two
    plugins; ``client`` is an httpx client on this plugin's API with the app token,
    ``server`` the layer's ``EmbeddedServer`` (``server.account(...)``). The embedded v1
    API is served only when ``api`` (its settings) is given: only sync talks to it, and
    it is a good part of a core's start."""
    import httpx
    from api_integration_layer.testing import embedded_server, plugin_folder

    from plexichat_desktop.core.paths import PLUGINS_PATH_ENV

    monkeypatch.delenv(PLUGINS_PATH_ENV, raising=False)

    @contextlib.asynccontextmanager
    async def start(roots: list[Path], api: dict[str, Any] | None = None,
                    **settings: Any) -> AsyncIterator[Any]:
        folder = plugin_folder(tmp_path, PLUGIN_ROOT, LAYER_ROOT)
        async with embedded_server(
                tmp_path / "apphome", plugin_dirs=[folder], plugin_settings={
                    PLUGIN_ID: {"roots": [str(r) for r in roots], **settings}},
                **(api if api is not None else {"enabled": False})) as server:
            record = server.runtime.plugins.by_id[PLUGIN_ID]
            assert str(record.state) in ("active", "degraded"), (record.reason, record.detail)
            async with httpx.AsyncClient(
                    base_url=f"{server.url}plugins/{PLUGIN_ID}/api/", timeout=30,
                    headers=server.app_headers) as client:
                yield client, record.instance, server

    return start


# Dozens of httpx clients, all to plain http on loopback: one CA load, not one each.
share_default_ssl_context()
