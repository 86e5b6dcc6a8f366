"""Shared set-up of the System Manager's tests.

``app`` gives the real app core (the API integration layer, this plugin and the
embedded v1 API) on a temp home and a free loopback port, with the layer logged in as the
install's administrator; everything the plugin does goes to that real v1 server.

Starting a core costs a second or more (several on a busy machine), so the suite's tests
share one unless they ask for ``app(fresh=True)`` (or for settings of their own): those
whose assertions count everything on the server (backups, history, alerts) or change it
for everyone (a restore, a maintenance window). Async tests that use ``app`` run on one
event loop for the suite (``module_loop``, here ``suite_module_loop``, see
api_integration_layer.testing), the loop the shared core lives on; they carry no asyncio
mark and take no async fixtures.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from plexichat_desktop.testing.shared_ssl import share_default_ssl_context

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_ID = "system_manager"
LAYER_ROOT = PLUGIN_ROOT.parent / "api_integration_layer"
for _folder in (PLUGIN_ROOT, LAYER_ROOT):
    if str(_folder) not in sys.path:
        # Appended, so a plugin folder's "tests" cannot shadow the project's "tests".
        sys.path.append(str(_folder))

from api_integration_layer.testing import (  # noqa: E402, F401
    pytest_pyfunc_call,
    suite_module_loop,
)


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


@pytest.fixture(scope="session")
def shared_core(module_loop: asyncio.AbstractEventLoop,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The suite's core (started by the first test that uses it), with its
    administrator registered."""
    from api_integration_layer.testing import module_server

    yield from module_server(module_loop, tmp_path_factory, PLUGIN_ROOT, LAYER_ROOT,
                             plugin_settings={PLUGIN_ID: {"scrypt_log_n": 10}})


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_core: Any
        ) -> Callable[..., Any]:
    """``async with app(login="admin", fresh=False, api=None, **settings) as a``: see
    :class:`App`; ``api``: the server's ``[api]`` settings;
    ``login=None`` leaves the layer logged out, ``login="user"`` logs it in as an
    ordinary account (the administrator is registered first either way). ``fresh`` (or
    any settings) starts a core of the test's own instead of the suite's."""
    import httpx
    from api_integration_layer.testing import (
        PASSWORD,
        embedded_server,
        plugin_folder,
        unique_name,
    )

    from plexichat_desktop.core.paths import PLUGINS_PATH_ENV

    monkeypatch.delenv(PLUGINS_PATH_ENV, raising=False)

    @contextlib.asynccontextmanager
    async def own_core(api: dict[str, Any] | None = None, **settings: Any
                       ) -> AsyncIterator[tuple[Any, Any]]:
        folder = plugin_folder(tmp_path, PLUGIN_ROOT, LAYER_ROOT)
        async with embedded_server(
                tmp_path / "apphome", plugin_dirs=[folder],
                plugin_settings={PLUGIN_ID: {"scrypt_log_n": 10, **settings}},
                **(api or {})) as server:
            yield server, await server.account("root")  # the first: the administrator

    @contextlib.asynccontextmanager
    async def shared() -> AsyncIterator[tuple[Any, Any]]:
        started = shared_core.server is not None
        server = await shared_core.get()
        if not started:
            await server.account("root")  # the first account: the administrator
        admin = server.client()
        try:
            await admin.auth.login("root", PASSWORD)
            yield server, admin
        finally:
            server.clients.remove(admin)
            await admin.aclose()

    @contextlib.asynccontextmanager
    async def start(login: str | None = "admin", *, fresh: bool = False,
                    api: dict[str, Any] | None = None, **settings: Any) -> AsyncIterator[App]:
        core = own_core(api, **settings) if fresh or api or settings else shared()
        async with core as (server, admin):
            record = server.runtime.plugins.by_id[PLUGIN_ID]
            assert str(record.state) in ("active", "degraded"), (record.reason, record.detail)
            layer = server.plugin("api_integration_layer")
            if login == "admin":
                await layer.client.auth.login("root", PASSWORD)
            elif login == "user":
                name = unique_name("someone")
                await layer.client.auth.register(name, f"{name}@example.org", PASSWORD)
                await layer.client.auth.login(name, PASSWORD)
            else:
                await layer.client.auth.logout()   # the shared core's last test logged in
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


# Each core's layer client, the tests' clients and the drills' servers load the CA bundle
# (~35 contexts a run, ~1.2 s CPU), all for plain http on loopback: one load instead.
share_default_ssl_context()
