"""create_app with ``later``: /healthz, /events, the live hub and the mounts are built at
once; the app's other routes and the /tests API are built by the first request that may
need them, or by the caller's deferred work; either way the route list ends up as the
eagerly built app's, in the same order."""

import asyncio

import httpx
import pytest

from plexichat_desktop.core.paths import resources_dir
from plexichat_desktop.core.settings import Settings
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from plexichat_desktop.server.app import DeferredRoutes, create_app

pytestmark = pytest.mark.asyncio


def describe(route) -> tuple:
    inner = getattr(route, "original_router", None)  # an included router
    if inner is not None:
        return ("include", tuple(describe(r) for r in inner.routes))
    return (route.path, tuple(sorted(getattr(route, "methods", None) or ())))


def routes(app) -> list[tuple]:
    return [describe(route) for route in app.router.routes]


def paths(app) -> list[str]:
    def flat(described: tuple) -> list[str]:
        if described[0] == "include":
            return [p for inner in described[1] for p in flat(inner)]
        return [described[0]]
    return [p for described in routes(app) for p in flat(described)]


@pytest.fixture
def runtime(home):
    settings = Settings()
    settings.server.port = 0
    runtime = Runtime(home, settings, RuntimeOptions(bundled=False, include_installed=False))
    runtime.prepare()
    runtime.tests_started.set()  # not started: the routes are built, nothing runs
    yield runtime
    runtime.store.close()


def build(runtime: Runtime, later: list | None):
    asgi = create_app(runtime.plugins, runtime.bus, runtime.identity, resources_dir(),
                      runtime.stopping, runtime, runtime.event_log, later=later)
    deferred = asgi.app.app  # SecurityMiddleware > StrictJsonBodies > DeferredRoutes
    assert isinstance(deferred, DeferredRoutes)
    return asgi, deferred


async def test_deferred_work_builds_the_eager_route_list(runtime):
    later: list = []
    _, lazy = build(runtime, later)
    _, eager = build(runtime, None)
    assert eager.built and not lazy.built and len(later) == 1
    built = paths(lazy.app)
    assert "/healthz" in built and "/events" in built and "/_live/stream" in built
    assert "/login" not in built and "/api/plugins" not in built
    assert not any(path.startswith("/tests") for path in built)
    later.pop()()
    assert lazy.built and routes(lazy.app) == routes(eager.app)


@pytest.mark.parametrize("path, parts_left", [
    ("/healthz", 3), ("/plugins/nothing/", 3), ("/_app/live/client.js", 3),
    ("/api/plugins", 1),            # both parts of the app's own routes
    ("/login", 1),
    ("/tests/runs", 2),             # the /tests API alone
    ("/openapi.json", 0)])          # the document lists every route
async def test_a_request_builds_the_parts_it_may_need(runtime, path, parts_left):
    asgi, deferred = build(runtime, [])
    _, eager = build(runtime, None)
    headers = {"Authorization": f"Bearer {runtime.token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi),
                                 base_url=runtime.url, headers=headers) as client:
        answer = await client.get(path)
    assert len(deferred._parts) == parts_left
    if path in ("/healthz", "/api/plugins", "/openapi.json"):
        assert answer.status_code == 200, answer.text
    deferred.build()
    assert routes(deferred.app) == routes(eager.app)  # built in any order: the same list


async def test_tests_requests_wait_for_the_test_side_and_others_do_not(runtime):
    """Through a listener the app answers before the runtime's test manager and scheduler
    run: a /tests request (and the OpenAPI document, which lists its routes) waits for
    ``tests_ready()``; the rest of the app answers meanwhile."""
    runtime.tests_started.clear()
    asgi, _ = build(runtime, [])
    headers = {"Authorization": f"Bearer {runtime.token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi),
                                 base_url=runtime.url, headers=headers) as client:
        waiting = [asyncio.ensure_future(client.get(path))
                   for path in ("/tests/runs", "/openapi.json")]
        assert (await client.get("/api/plugins")).status_code == 200
        assert (await client.get("/healthz")).json()["ready"] is True
        done, _ = await asyncio.wait(waiting, timeout=0.3)
        assert not done
        runtime.tests_started.set()
        runs, document = await asyncio.gather(*waiting)
    assert runs.status_code == 200, runs.text
    assert runs.json()["runs"] == []
    assert "/tests/runs" in document.json()["paths"]
