"""Fixtures of the v1 API tests: the real core on a free port, accounts, clients.

Everything goes over real HTTP (and WebSocket) on 127.0.0.1. scrypt runs at a tiny cost
here (``scrypt_cost=4``) so that registering and logging in stay fast.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio

from plexichat_desktop.core.paths import AppPaths
from plexichat_desktop.core.settings import ApiSettings, Settings
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from tests.conftest import SSL, RunningCore

PASSWORD = "Corr3ct-Horse-Battery"
FAST = {"scrypt_cost": 4, "performance_interval": 3600.0, "register_rate_limit": 1000,
        "login_rate_limit": 1000, "webhook_allow_private": True}
_names = itertools.count(1)
_SSL = SSL  # see tests.conftest
# Generous, as RunningCore's: the first request to a server builds its v1 app (and, first
# in a process, imports every route module), which took over 10 s at a load of 14 on two
# cores. A loaded machine must slow the tests down, not fail them.
TIMEOUT = 60


@dataclass
class Account:
    """A registered, logged-in user with a client that sends their access token."""

    id: str
    username: str
    email: str
    login: dict[str, Any]
    client: httpx.AsyncClient

    @property
    def token(self) -> str:
        return self.login["access_token"]

    @property
    def refresh_token(self) -> str:
        return self.login["refresh_token"]


@dataclass
class V1:
    """One running core with its v1 API, plus helpers."""

    core: Any
    base: str
    anon: httpx.AsyncClient
    clients: list[httpx.AsyncClient] = field(default_factory=list)
    # On a server shared by a module's tests (``shared_v1``), every name a test gives gets
    # this test's own ending: each test has accounts of its own, as on a fresh server.
    suffix: str = ""

    @property
    def api(self) -> Any:
        return self.core.runtime.api_v1

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/realtime/ws"

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.AsyncClient(base_url=self.base, timeout=TIMEOUT, headers=headers,
                                   verify=_SSL)
        self.clients.append(client)
        return client

    async def register(self, name: str | None = None, suffixed: bool = False,
                       **extra: Any) -> httpx.Response:
        if not suffixed:
            name = name + self.suffix if name else f"user{next(_names)}"
        body = {"username": name, "email": f"{name}@example.org", "password": PASSWORD,
                "display_name": name.title(), **extra}
        # As the install's owner (the app token), so the first account is the administrator.
        return await self.anon.post("/auth/register", json=body,
                                    headers={"X-PlexiChat-App-Token": self.core.token})

    async def sign_in(self, account: Account, password: str = PASSWORD) -> Account:
        """``account`` signed in again (a restore ends every session)."""
        r = await self.anon.post("/auth/login", json={"username": account.username,
                                                      "password": password})
        assert r.status_code == 200, r.text
        return Account(account.id, account.username, account.email, r.json(),
                       self.client(r.json()["access_token"]))

    async def account(self, name: str | None = None, remember_me: bool = False) -> Account:
        """Register and log in a new user."""
        name = name + self.suffix if name else f"user{next(_names)}"
        r = await self.register(name, suffixed=True)
        assert r.status_code == 201, r.text
        r = await self.anon.post("/auth/login", json={"username": name, "password": PASSWORD,
                                                      "remember_me": remember_me})
        assert r.status_code == 200, r.text
        body = r.json()
        return Account(body["user_id"], name, f"{name}@example.org", body,
                       self.client(body["access_token"]))


def v1_settings(**api: Any) -> Settings:
    settings = Settings()
    settings.api = ApiSettings(**{**FAST, **api})
    return settings


@pytest_asyncio.fixture
async def make_v1(start_core: Callable[..., Awaitable[Any]]
                  ) -> AsyncIterator[Callable[..., Awaitable[V1]]]:
    """Start the core with ``[api]`` settings given as keyword arguments; ``home=AppPaths``
    starts one more core on a home of its own (a second, independent server)."""
    made: list[V1] = []
    own: list[RunningCore] = []

    async def make(home: AppPaths | None = None, **api: Any) -> V1:
        if home is None:
            core = await start_core(settings=v1_settings(**api))
        else:
            settings = v1_settings(**api)
            settings.server.port = 0
            runtime = Runtime(home, settings, RuntimeOptions(bundled=False,
                                                             include_installed=False))
            core = RunningCore(runtime, await runtime.start())
            own.append(core)
        base = core.url.rstrip("/") + "/api/v1"
        v1 = V1(core, base, httpx.AsyncClient(base_url=base, timeout=TIMEOUT, verify=_SSL))
        made.append(v1)
        return v1

    yield make
    for v1 in made:
        await v1.anon.aclose()
        for client in v1.clients:
            await client.aclose()
    for core in own:
        await core.client.aclose()
        await core.anonymous.aclose()
        await core.runtime.stop()


@pytest_asyncio.fixture
async def v1(make_v1: Callable[..., Awaitable[V1]]) -> V1:
    """The core with the default test settings."""
    return await make_v1()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_core(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningCore]:
    """One core with the default test settings for every test of a module that asks for
    ``shared_v1`` (its tests run in the module's event loop: ``pytestmark =
    pytest.mark.asyncio(loop_scope="module")``; ``shared_server.py`` makes it a module's
    ``v1``). Starting a core and building its v1 app costs some 0.6 s of CPU, more than
    most of these tests themselves."""
    root = tmp_path_factory.mktemp("shared-v1")
    settings = v1_settings()
    settings.server.port = 0
    with pytest.MonkeyPatch.context() as env:  # as the ``home`` fixture: no caller's plugins
        env.delenv("PLEXICHAT_DESKTOP_PLUGINS_PATH", raising=False)
        runtime = Runtime(AppPaths(root / "config", root / "data", root / "cache",
                                   root / "logs"),
                          settings, RuntimeOptions(bundled=False, include_installed=False))
        core = RunningCore(runtime, await runtime.start())
    # The administrator is the first account: made here, so that no test's is.
    admin = await _view(core, "")
    assert (await admin.account("shared_admin")).username == "shared_admin"
    await _close(admin)
    yield core
    await core.client.aclose()
    await core.anonymous.aclose()
    await runtime.stop()


_tests = itertools.count(1)


async def _view(core: RunningCore, suffix: str) -> V1:
    base = core.url.rstrip("/") + "/api/v1"
    return V1(core, base, httpx.AsyncClient(base_url=base, timeout=TIMEOUT, verify=_SSL),
              suffix=suffix)


async def _close(v1: V1) -> None:
    await v1.anon.aclose()
    for client in v1.clients:
        await client.aclose()


@pytest_asyncio.fixture(loop_scope="module")
async def shared_v1(shared_core: RunningCore) -> AsyncIterator[V1]:
    """The module's shared core (``shared_core``) for one test: clients of its own, and
    account names with an ending of its own (``account("ann")`` is ``ann_t7``; use
    ``Account.username`` wherever the name is compared)."""
    v1 = await _view(shared_core, f"_t{next(_tests)}")
    yield v1
    await _close(v1)
