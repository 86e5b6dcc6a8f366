"""Shared set-up of the Analytics Dashboard's tests.

``app`` starts the real app core on loopback with this plugin, the API integration layer
and the embedded v1 API, signs the layer in (the first account is the administrator)
and yields a :class:`Running` with an httpx client on the plugin's routes. Activity in
the past is written straight into the v1 store (the API only records "now"); activity
of today goes through the real API. Async tests take no async fixtures, so the test
manager's runner and pytest-asyncio both run them.

Starting a core costs a second or more (several on a busy machine). Tests that neither
count what is on the server nor leave anything stored use ``app(shared=True)``: the suite's
core (``shared_core``), signed in or out as they ask. They run on the suite's event
loop (``module_loop``, here ``suite_module_loop``, see api_integration_layer.testing),
the loop that core lives on, and so carry no asyncio mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from plexichat_desktop.testing.shared_ssl import share_default_ssl_context

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_ID = "analytics_dashboard"
LAYER_ROOT = PLUGIN_ROOT.parent / "api_integration_layer"
for _folder in (PLUGIN_ROOT, LAYER_ROOT):
    if str(_folder) not in sys.path:
        # Appended, so a plugin folder's "tests" cannot shadow the project's "tests".
        sys.path.append(str(_folder))

from api_integration_layer.testing import (  # noqa: E402, F401
    pytest_pyfunc_call,
    suite_module_loop,
)

DAY = 86400.0


def day_start(days_ago: int) -> float:
    """UNIX time of 00:00 UTC, ``days_ago`` days before today."""
    today = dt.datetime.now(dt.UTC).date()
    return dt.datetime.combine(today - dt.timedelta(days=days_ago), dt.time(),
                               dt.UTC).timestamp()


@dataclass
class Running:
    client: Any          # httpx.AsyncClient on /plugins/analytics_dashboard/api/
    plugin: Any          # the running plugin instance
    server: Any          # api_integration_layer.testing.EmbeddedServer
    admin: Any           # the layer's client, signed in as the administrator

    async def seed(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn(conn)`` in one write transaction of the v1 store."""
        return await self.server.runtime.api_v1.store.write(fn)

    async def seed_messages(self, sender: str, recipient: str, per_day: dict[int, int]
                            ) -> None:
        """``{days_ago: count}`` messages at noon UTC of those days."""
        def write(conn: sqlite3.Connection) -> None:
            for days_ago, count in per_day.items():
                at = day_start(days_ago) + DAY / 2
                conn.executemany(
                    "INSERT INTO messages (id, sender_id, recipient_id, content, "
                    "message_type, created_at) VALUES (?, ?, ?, 'seeded', 'text', ?)",
                    [(str(uuid.uuid4()), sender, recipient, at + i) for i in range(count)])
        await self.seed(write)

    async def seed_activity(self, user_id: str | None, kind: str, per_day: dict[int, int]
                            ) -> None:
        def write(conn: sqlite3.Connection) -> None:
            for days_ago, count in per_day.items():
                at = day_start(days_ago) + DAY / 2
                conn.executemany(
                    "INSERT INTO activity (user_id, kind, created_at) VALUES (?, ?, ?)",
                    [(user_id, kind, at + i) for i in range(count)])
        await self.seed(write)


@pytest.fixture(scope="session")
def shared_core(module_loop: asyncio.AbstractEventLoop,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The suite's core with default settings, started by the first test using it."""
    from api_integration_layer.testing import module_server

    yield from module_server(module_loop, tmp_path_factory, PLUGIN_ROOT, LAYER_ROOT,
                             plugin_settings={PLUGIN_ID: {"start_delay": 0.0}})


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_core: Any
        ) -> Callable[..., Any]:
    """``async with app(**settings) as running``; ``signed_in=False`` leaves the layer
    signed out; ``shared=True`` uses the suite's core instead of a new one."""
    import httpx
    from api_integration_layer.testing import PASSWORD, embedded_server, plugin_folder

    from plexichat_desktop.core.paths import PLUGINS_PATH_ENV

    monkeypatch.delenv(PLUGINS_PATH_ENV, raising=False)

    @contextlib.asynccontextmanager
    async def own_core(**settings: Any) -> AsyncIterator[Any]:
        folder = plugin_folder(tmp_path, PLUGIN_ROOT, LAYER_ROOT)
        async with embedded_server(
                tmp_path / "apphome", plugin_dirs=[folder],
                plugin_settings={PLUGIN_ID: {"start_delay": 0.0, **settings}}) as server:
            yield server

    @contextlib.asynccontextmanager
    async def module_core() -> AsyncIterator[Any]:
        yield await shared_core.get()

    @contextlib.asynccontextmanager
    async def start(signed_in: bool = True, *, shared: bool = False, **settings: Any
                    ) -> AsyncIterator[Running]:
        assert not (shared and settings), "the shared core has the default settings"
        async with module_core() if shared else own_core(**settings) as server:
            record = server.runtime.plugins.by_id[PLUGIN_ID]
            assert str(record.state) == "active", (record.reason, record.detail)
            layer = server.plugin("api_integration_layer")
            if signed_in:
                if not getattr(server, "boss_registered", False):
                    await layer.client.auth.register("boss", "boss@example.org", PASSWORD)
                    server.boss_registered = True
                await layer.client.auth.login("boss", PASSWORD, remember_me=True)  # kept
            elif shared:
                await layer.client.auth.logout()   # an earlier test may have signed in
            async with httpx.AsyncClient(
                    base_url=f"{server.url}plugins/{PLUGIN_ID}/api/", timeout=60,
                    headers=server.app_headers) as client:
                yield Running(client, record.instance, server, layer.client)

    return start


# Dozens of httpx clients (the tests', the app's own), all to plain http on loopback:
# one CA load, not one each.
share_default_ssl_context()
