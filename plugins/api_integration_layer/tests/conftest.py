"""Shared set-up of the API integration layer's tests.

The test manager runs this suite with the plugin folder on ``PYTHONPATH``; run directly
(``pytest plugins/api_integration_layer/tests``) it is put there here. Async tests carry
``pytest.mark.asyncio`` and take no async fixtures, so they run both under pytest-asyncio
and under the test manager's own runner; servers are started inside each test with
``api_integration_layer.testing.embedded_server``.

Starting a core costs a second or more (several on a busy machine). Tests that need a
server with the default settings, make their own accounts and count nothing beyond them
use ``async with shared_server() as server`` instead: the suite's core, whose first
account is an administrator no test signs in as but test_ai (so no test's own account is
one). ``short_token_server`` (one-second access tokens) and ``limited_server`` (tight
rate limits) are a module's core. They all live on one event loop for the suite
(``module_loop``, here ``suite_module_loop``, see api_integration_layer.testing), so these
tests carry no asyncio mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
if str(PLUGIN_ROOT) not in sys.path:
    # Appended: first on the path, the plugin folder would make its "tests" folder shadow
    # the project's "tests" package when both suites run in one pytest session.
    sys.path.append(str(PLUGIN_ROOT))

from api_integration_layer.testing import (  # noqa: E402, F401
    pytest_pyfunc_call,
    suite_module_loop,
)

from plexichat_desktop.server.v1 import mfa  # noqa: E402
from plexichat_desktop.testing.shared_ssl import share_default_ssl_context  # noqa: E402

# Dozens of httpx clients (the tests', the servers' own), all to plain http on loopback:
# one CA load, not one each.
share_default_ssl_context()


@pytest.fixture(autouse=True)
def cheap_recovery_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recovery-code digests at the test cost. They are memory-hard on purpose (some 50 ms
    each, more under load, and 2FA set-up and regeneration make ten at a time); these tests
    check what the client does with the codes, not the cost, which
    tests/api_v1/test_account_security.py asserts at its production value."""
    monkeypatch.setattr(mfa, "RECOVERY_SCRYPT_LOG_N", 4)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A folder for one test's server homes."""
    return tmp_path / "home"


# access_token_minutes of the short-token core: tokens that expire within a second.
ONE_SECOND = 1 / 60


def _module_core(loop: asyncio.AbstractEventLoop, tmp_path_factory: pytest.TempPathFactory,
                 **api: Any) -> Iterator[Any]:
    from api_integration_layer.testing import SharedServer

    shared = SharedServer(tmp_path_factory.mktemp("shared-core") / "home", **api)
    try:
        yield shared
    finally:
        loop.run_until_complete(shared.close())


async def _with_administrator(server: Any) -> None:
    """Register the core's first account (its administrator) once, before any test's."""
    from api_integration_layer.testing import unique_name

    if not hasattr(server, "admin_name"):
        server.admin_name = unique_name("admin")
        client = await server.account(server.admin_name)
        server.clients.remove(client)
        await client.aclose()


def _user_of(core: Any, administrator: bool = False) -> Callable[[], Any]:
    @contextlib.asynccontextmanager
    async def use() -> AsyncIterator[Any]:
        server = await core.get()
        if administrator:
            await _with_administrator(server)
        before = len(server.clients)
        try:
            yield server
        finally:
            mine = server.clients[before:]
            del server.clients[before:]
            for client in mine:
                await client.aclose()

    return use


@pytest.fixture(scope="session")
def shared_core(module_loop: asyncio.AbstractEventLoop,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The suite's core with the default test settings, started by its first user."""
    yield from _module_core(module_loop, tmp_path_factory)


@pytest.fixture
def shared_server(shared_core: Any) -> Callable[[], Any]:
    """``async with shared_server() as server``: the suite's running core (its
    administrator's name is ``server.admin_name``); the clients the test made on it are
    closed afterwards."""
    return _user_of(shared_core, administrator=True)


@pytest.fixture(scope="module")
def short_token_core(module_loop: asyncio.AbstractEventLoop,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The module's core whose access tokens live one second, started by its first
    user."""
    yield from _module_core(module_loop, tmp_path_factory, access_token_minutes=ONE_SECOND)


@pytest.fixture
def short_token_server(short_token_core: Any) -> Callable[[], Any]:
    """``async with short_token_server() as server``: like ``shared_server``, on the
    module's core with one-second access tokens (expiry and refresh tests, each with
    accounts of its own)."""
    return _user_of(short_token_core)


@pytest.fixture(scope="module")
def limited_core(module_loop: asyncio.AbstractEventLoop,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The module's core with tight limits (two logins a second per address and name,
    three authenticated requests a minute per user), started by its first user."""
    yield from _module_core(module_loop, tmp_path_factory, login_rate_limit=2,
                            rate_limit_window=1.0, requests_per_minute=3)


@pytest.fixture
def limited_server(limited_core: Any) -> Callable[[], Any]:
    """``async with limited_server() as server``: like ``shared_server``, on the module's
    core with tight rate limits (each test's limits are counted per user of its own)."""
    return _user_of(limited_core)
