"""The server's security layers and static files, over real HTTP and raw sockets."""

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from plexichat_desktop.plugins.scaffold import scaffold_plugin
from tests.conftest import FIXTURE_PLUGINS, RunningCore, module_core

# The tests that only read share one core with the fixture plugins (``shared``), in the
# module's event loop: starting one (its plugins imported and set up) costs more than
# most of these tests. One that changes a plugin's state, or needs other plugins, starts
# its own.
pytestmark = pytest.mark.asyncio(loop_scope="module")
OWN_CORE = pytest.mark.asyncio(loop_scope="function")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningCore]:
    async with module_core(tmp_path_factory.mktemp("security"), FIXTURE_PLUGINS) as core:
        yield core


async def raw_request(port: int, request_line: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """Send bytes exactly as written (no client-side path normalisation)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [request_line, *(f"{k}: {v}" for k, v in headers.items()), "Connection: close"]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    status = int(data.split(b" ", 2)[1])
    return status, data


async def test_requests_without_or_with_a_wrong_token_are_401(shared):
    core = shared
    for path in ("/", "/healthz", "/api/plugins", "/plugins/good_plugin/", "/events", "/nope"):
        r = await core.anonymous.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"].startswith("Bearer")
    r = await core.anonymous.get("/healthz", headers={"Authorization": "Bearer wrong-token"})
    assert r.status_code == 401 and "token" in r.json()["detail"]
    r = await core.anonymous.post("/api/plugins/good_plugin/disable")
    assert r.status_code == 401
    assert (await core.client.get("/api/plugins/good_plugin")).json()["state"] == "active"


async def test_a_browser_without_token_gets_the_login_page(shared):
    core = shared
    r = await core.anonymous.get("/plugins/good_plugin/", headers={"Accept": "text/html"})
    assert r.status_code == 401 and "text/html" in r.headers["content-type"]
    assert 'action="/login"' in r.text and 'value="/plugins/good_plugin/"' in r.text
    # The login page's assets are public.
    assert (await core.anonymous.get("/_app/public/app.css")).status_code == 200
    assert (await core.anonymous.get("/login")).status_code == 200
    assert (await core.anonymous.get("/_app/index.js")).status_code == 401


async def test_login_sets_a_session_cookie_that_authenticates(shared):
    core = shared
    identity = core.runtime.identity
    install = f"{identity.install_host}:{core.port}"
    r = await core.anonymous.get("/login", params={"token": "nope"})
    assert r.status_code == 401 and "not right" in r.text
    assert r.headers["cache-control"] == "no-store"
    # On 127.0.0.1 no cookie is set: the browser moves to the install host with a code.
    r = await core.anonymous.get("/login", params={"token": core.token,
                                                  "next": "/plugins/good_plugin/"})
    assert r.status_code == 303 and r.headers["cache-control"] == "no-store"
    location = r.headers["location"]
    assert location.startswith(f"http://{install}/login?code=")
    assert core.token not in location
    assert "plexichat_session" not in r.headers.get("set-cookie", "")
    path = location.split(install, 1)[1]
    r = await core.anonymous.get(path, headers={"Host": install})
    assert r.status_code == 303 and r.headers["location"] == "/plugins/good_plugin/"
    cookie = next(c for c in r.headers.get_list("set-cookie")
              if c.startswith(f"plexichat_session_{core.port}="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Domain" not in cookie
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    assert value and core.token not in cookie
    jar = {"Cookie": f"plexichat_session_{core.port}={value}"}
    r = await core.anonymous.get("/healthz", headers={"Host": install, **jar})
    assert r.status_code == 200
    # The code was used up.
    r = await core.anonymous.get(path, headers={"Host": install})
    assert r.status_code == 401 and "used already" in r.text
    # An open redirect is refused: next must be a local path.
    r = await core.anonymous.get("/login", params={"token": core.token,
                                                  "next": "//evil.example/"},
                                 headers={"Host": install})
    assert r.headers["location"] == "/"


async def test_wrong_host_header_is_403(shared):
    core = shared
    for host in ("evil.example", f"evil.example:{core.port}", "127.0.0.1:1", "localhost",
                 f"127.0.0.1:{core.port}.evil.example"):
        r = await core.client.get("/healthz", headers={"Host": host})
        assert r.status_code == 403, host
        assert "Host header" in r.json()["detail"]
    r = await core.client.get("/healthz", headers={"Host": f"localhost:{core.port}"})
    assert r.status_code == 200


@OWN_CORE
async def test_foreign_origin_may_not_change_state(start_core):
    core = await start_core(FIXTURE_PLUGINS)
    r = await core.client.post("/api/plugins/good_plugin/disable",
                               headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "Origin" in r.json()["detail"]
    r = await core.client.post("/api/plugins/good_plugin/disable", headers={"Origin": "null"})
    assert r.status_code == 403
    assert (await core.client.get("/api/plugins/good_plugin")).json()["state"] == "active"
    r = await core.client.get("/healthz", headers={"Origin": "http://evil.example"})
    assert r.status_code == 200  # reading is guarded by the token and CORS
    r = await core.client.post("/api/plugins/good_plugin/disable",
                               headers={"Origin": f"http://127.0.0.1:{core.port}"})
    assert r.status_code == 200 and r.json()["state"] == "disabled"


async def test_every_response_has_a_csp(shared):
    core = shared
    for response in (await core.client.get("/"), await core.anonymous.get("/healthz"),
                     await core.client.get("/plugins/good_plugin/index.html")):
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_static_files_types_and_caching(shared):
    core = shared
    r = await core.client.get("/plugins/good_plugin", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/plugins/good_plugin/"
    r = await core.client.get("/plugins/good_plugin/")
    assert r.status_code == 200 and "Good page" in r.text
    expected = {"index.html": "text/html", "app.js": "text/javascript",
                "style.css": "text/css", "data.json": "application/json",
                "img/icon.svg": "image/svg+xml"}
    for name, ctype in expected.items():
        r = await core.client.get(f"/plugins/good_plugin/{name}")
        assert r.status_code == 200, name
        assert r.headers["content-type"].startswith(ctype), (name, r.headers["content-type"])
        assert r.headers["cache-control"] == "no-cache"
        etag = r.headers["etag"]
        again = await core.client.get(f"/plugins/good_plugin/{name}",
                                      headers={"If-None-Match": etag})
        assert again.status_code == 304
    assert (await core.client.get("/plugins/good_plugin/missing.js")).status_code == 404


@pytest.mark.parametrize("path", [
    "/plugins/good_plugin/../../../../etc/passwd",
    "/plugins/good_plugin/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/plugins/good_plugin/%2E%2E%2F%2E%2E%2Fplugin.toml",
    "/plugins/good_plugin/..%2fplugin.toml",
    "/plugins/good_plugin/..%5cplugin.toml",
    "/plugins/good_plugin/img/..%2f..%2fplugin.toml",
    "/plugins/good_plugin/%00index.html",
    "/plugins/good_plugin//etc/passwd",
])
async def test_static_files_never_leave_web(shared, path):
    core = shared
    status, data = await raw_request(core.port, f"GET {path} HTTP/1.1", {
        "Host": f"127.0.0.1:{core.port}", "Authorization": f"Bearer {core.token}"})
    assert status in (400, 404), (path, status)
    assert b"root:" not in data and b"entry =" not in data


@OWN_CORE
async def test_symlinks_out_of_web_are_refused(start_core, tmp_path):
    root = scaffold_plugin("linky", tmp_path / "plugins")
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    os.symlink(secret, root / "web" / "leak.txt")
    os.symlink(tmp_path, root / "web" / "outside")
    core = await start_core(tmp_path / "plugins")
    assert (await core.client.get("/plugins/linky/index.html")).status_code == 200
    for path in ("/plugins/linky/leak.txt", "/plugins/linky/outside/secret.txt"):
        r = await core.client.get(path)
        assert r.status_code == 404, path
        assert "top secret" not in r.text


async def test_openapi_document_is_served(shared):
    core = shared
    doc = (await core.client.get("/openapi.json")).json()
    assert "/api/plugins" in doc["paths"] and "/healthz" in doc["paths"]
    assert (await core.client.get("/docs")).status_code == 404  # would need a CDN


async def test_index_page_lists_plugins_with_states_and_pages(shared):
    core = shared
    r = await core.client.get("/")
    assert r.status_code == 200
    assert 'data-plugin="good_plugin"' in r.text
    assert 'href="/plugins/good_plugin/index.html"' in r.text
    assert "setup exploded on purpose" in r.text
    assert "state-incompatible" in r.text
