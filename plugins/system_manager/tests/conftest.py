"""Shared set-up of the System Manager's tests.

``app`` starts the real app core (the API integration layer, this plugin and the
embedded v1 API) on a temp home and a free loopback port, with the layer logged in as the
install's administrator; everything the plugin does goes to that real v1 server. Async
tests carry ``pytest.mark.asyncio`` and take no async fixtures (the test manager's runner
and pytest-asyncio both run them).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_ID = "system_manager"
LAYER_ROOT = PLUGIN_ROOT.parent / "api_integration_layer"
for _folder in (PLUGIN_ROOT, LAYER_ROOT):
    if str(_folder) not in sys.path:
        # Appended, so a plugin folder's "tests" cannot shadow the project's "tests".
        sys.path.append(str(_folder))


class App:
    """What a test gets: ``client`` (this plugin's API with the app token), ``plugin``,
    ``manager``, ``server`` (the layer's EmbeddedServer) and ``admin`` (the v1 client the
    layer is logged in with)."""

    def __init__(self, client: Any, plugin: Any, server: Any, admin: Any):
        self.client = client
        self.plugin = plugin
        self.manager = plugin.manager
        self.server = server
        self.admin = admin

    async def wait_job(self, answer: Any) -> dict[str, Any]:
        """Wait for the job a 202 answer started; its final dict."""
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        job = await self.manager.ctx.jobs.wait(job_id)
        return dict(job.to_dict())


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``async with app(login="admin", **settings) as a``: see :class:`App`;
    ``login=None`` leaves the layer logged out, ``login="user"`` logs it in as an
    ordinary account (the administrator is registered first either way)."""
    import httpx
    from api_integration_layer.testing import PASSWORD, embedded_server, plugin_folder

    from plexichat_desktop.core.paths import PLUGINS_PATH_ENV

    monkeypatch.delenv(PLUGINS_PATH_ENV, raising=False)

    @contextlib.asynccontextmanager
    async def start(login: str | None = "admin", **settings: Any) -> AsyncIterator[App]:
        folder = plugin_folder(tmp_path, PLUGIN_ROOT, LAYER_ROOT)
        async with embedded_server(
                tmp_path / "apphome", plugin_dirs=[folder],
                plugin_settings={PLUGIN_ID: {"scrypt_log_n": 10, **settings}}) as server:
            record = server.runtime.plugins.by_id[PLUGIN_ID]
            assert str(record.state) in ("active", "degraded"), (record.reason, record.detail)
            layer = server.plugin("api_integration_layer")
            admin = await server.account("root")  # the first account: the administrator
            if login == "admin":
                await layer.client.auth.login("root", PASSWORD)
            elif login == "user":
                await layer.client.auth.register("someone", "someone@example.org", PASSWORD)
                await layer.client.auth.login("someone", PASSWORD)
            async with httpx.AsyncClient(
                    base_url=f"{server.url}plugins/{PLUGIN_ID}/api/", timeout=60,
                    headers=server.app_headers) as client:
                yield App(client, record.instance, server, admin)

    return start


@pytest.fixture
def v1_data(tmp_path: Path) -> Callable[..., Any]:
    """``await v1_data(a)`` fills the live v1 server with users, messages and a file."""
    async def fill(app: App, users: int = 2) -> dict[str, Any]:
        bob = await app.server.account()
        await app.admin.messages.send(bob.user["id"], "hello from the admin")
        await bob.messages.send(app.admin.user["id"], "hi back")
        note = tmp_path / "notes.txt"
        note.write_text("content that must survive a restore\n" * 50)
        info = await bob.files.upload(note, description="a file")
        for _ in range(users - 1):
            await app.server.account()
        return {"file_id": info.id, "bob": bob}
    return fill
