"""Every v1 app of a process serves the same, once-analysed route objects (a core start
no longer rebuilds them), while what belongs to an app stays its own: its service (data,
users) and its dependency overrides."""

from __future__ import annotations

import pytest

from plexichat_desktop.core.paths import AppPaths
from plexichat_desktop.server.v1 import deps
from plexichat_desktop.server.v1.app import ROUTERS

pytestmark = pytest.mark.asyncio


async def test_two_cores_share_routes_but_not_their_data_or_overrides(make_v1, tmp_path):
    first = await make_v1()
    second = await make_v1(home=AppPaths(*(tmp_path / n for n in (
        "config", "data", "cache", "logs"))))
    ann = await first.account("ann")
    # The second core's app is built on its first request.
    assert (await second.anon.get("/")).status_code == 200
    await first.api.ready()
    await second.api.ready()
    app_one = first.api._asgi.app
    app_two = second.api._asgi.app
    assert app_one is not app_two and app_one.state.api is not app_two.state.api
    shared = [r for r in app_one.router.routes if r in app_two.router.routes]
    assert len(shared) == len(ROUTERS)

    # ann exists on the first core only: each app reaches its own service and store.
    assert (await ann.client.get("/users/me")).status_code == 200
    assert (await second.client(ann.token).get("/users/me")).status_code == 401
    login = await second.anon.post("/auth/login", json={"username": ann.username,
                                                        "password": "Corr3ct-Horse-Battery"})
    assert login.status_code == 401

    # An override on one app changes that app's requests, not the other's.
    async def nobody() -> deps.CurrentUser:
        raise deps.unauthorized("overridden on the second app only")

    app_two.dependency_overrides[deps.current_user] = nobody
    try:
        bob = await second.account("bob")
        refused = await bob.client.get("/users/me")
        assert refused.status_code == 401
        assert "overridden on the second app only" in refused.text
        assert (await ann.client.get("/users/me")).status_code == 200
    finally:
        app_two.dependency_overrides.clear()
    assert (await bob.client.get("/users/me")).status_code == 200
