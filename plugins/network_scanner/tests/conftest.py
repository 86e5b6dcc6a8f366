"""Shared set-up of the Network Scanner's tests.

NETWORK SAFETY: every test here reaches only 127.0.0.0/8. The autouse ``no_escape``
fixture patches ``socket.connect`` and ``getaddrinfo`` so that an attempt to connect
to, or look up, anything else fails the test (and is listed) instead of being sent.
Async tests take no async fixtures (the test manager's runner and pytest-asyncio both
run them); listeners start inside each test. The app starts inside a test that needs
settings of its own; the others share one per module (``shared_app``), on the module's
event loop (``module_loop``, see api_integration_layer.testing): they carry no asyncio
mark, wait for the scans they start and assert on what they made, not on totals.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from plexichat_desktop.testing.shared_ssl import share_default_ssl_context

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
LAYER_ROOT = PLUGIN_ROOT.parent / "api_integration_layer"
for _folder in (PLUGIN_ROOT, LAYER_ROOT):
    if str(_folder) not in sys.path:
        # Appended, so a plugin folder's "tests" cannot shadow the project's "tests".
        sys.path.append(str(_folder))

import asyncio  # noqa: E402
import contextlib  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from typing import Any  # noqa: E402

from api_integration_layer.testing import module_loop, pytest_pyfunc_call  # noqa: E402, F401
from network_scanner.testing import loopback_only  # noqa: E402


@pytest.fixture(autouse=True)
def no_escape(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every test: anything but loopback fails; the attempts are checked afterwards too
    (an attempt swallowed by code under test still fails the test)."""
    with loopback_only(monkeypatch) as attempts:
        yield attempts
    assert not attempts, f"tried to leave loopback: {attempts}"


@pytest.fixture(scope="module")
def shared_core(module_loop: asyncio.AbstractEventLoop,  # noqa: F811 (the fixture)
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The module's core with default settings, started by the first test using it."""
    from api_integration_layer.testing import module_server
    from network_scanner.testing import LAYER_ROOT, PLUGIN_ROOT

    yield from module_server(module_loop, tmp_path_factory, PLUGIN_ROOT, LAYER_ROOT)


@pytest.fixture
def shared_app(shared_core: Any) -> Any:
    """``async with shared_app() as (client, plugin, server)``: ``running_app`` (default
    settings) on the module's core."""
    import httpx

    @contextlib.asynccontextmanager
    async def use() -> AsyncIterator[Any]:
        server = await shared_core.get()
        record = server.runtime.plugins.by_id["network_scanner"]
        assert str(record.state) in ("active", "degraded"), (record.reason, record.detail)
        assert record.instance.running == {}, "a scan of an earlier test is still running"
        async with httpx.AsyncClient(base_url=f"{server.url}plugins/network_scanner/api/",
                                     timeout=30, headers=server.app_headers,
                                     trust_env=False) as client:
            yield client, record.instance, server

    return use


# The cores' clients and the tests' own, all to plain http on loopback: one CA load, not
# ~20.
share_default_ssl_context()
