"""Red-team findings about hostile input, tried for real over HTTP on 127.0.0.1:
non-finite JSON numbers (3), traversal past the public prefix (4), over-limit and slow
requests (10)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from plexichat_desktop.core.settings import ApiSettings, Settings
from tests.conftest import FIXTURE_PLUGINS, RunningCore, module_core
from tests.test_server_security import raw_request

# The path and declared-size cases (16) only send requests: they share one core
# (``shared``) in the module's event loop; the other tests start their own.
pytestmark = pytest.mark.asyncio(loop_scope="module")
OWN_CORE = pytest.mark.asyncio(loop_scope="function")

NON_FINITE = ("1e400", "-1e400", "NaN", "Infinity", "-Infinity")


def v1_settings() -> Settings:
    settings = Settings()
    settings.api = ApiSettings(scrypt_cost=4, performance_interval=3600.0)
    return settings


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningCore]:
    async with module_core(tmp_path_factory.mktemp("inputs"), FIXTURE_PLUGINS,
                           settings=v1_settings()) as core:
        yield core


@OWN_CORE
async def test_non_finite_numbers_are_422_naming_the_field_never_500(start_core, caplog):
    core = await start_core(FIXTURE_PLUGINS, settings=v1_settings())
    v1 = core.url + "api/v1"
    cases = [
        # unauthenticated v1 routes, a number field and a free-form dict
        (core.anonymous, f"{v1}/auth/register", '{"username": "ann", "email": "a@b.org", '
         '"password": "x", "display_name": %s}', "display_name"),
        (core.anonymous, f"{v1}/auth/login", '{"username": "ann", "password": "p", '
         '"device_info": {"screen": [1, %s]}}', "device_info.screen.1"),
        (core.anonymous, f"{v1}/auth/refresh", '{"refresh_token": %s}', "refresh_token"),
        # the host's own API (with the app token)
        (core.client, "/tests/run", '{"plugin_name": "good_plugin", "timeout": %s}', "timeout"),
    ]
    caplog.set_level(logging.INFO)
    for client, url, template, field in cases:
        for literal in NON_FINITE:
            caplog.clear()
            r = await client.post(url, content=(template % literal).encode(),
                                  headers={"Content-Type": "application/json"})
            assert r.status_code == 422, (url, literal, r.status_code, r.text[:300])
            detail = r.json()["detail"]
            assert detail[0]["loc"] == ["body", *(int(p) if p.isdigit() else p
                                                  for p in field.split("."))]
            assert field in detail[0]["msg"] and "finite" in detail[0]["msg"]
            assert "Traceback" not in caplog.text
            server_lines = [rec for rec in caplog.records
                            if rec.name.startswith(("plexichat_desktop", "uvicorn.error"))]
            assert len(server_lines) <= 1, [rec.getMessage() for rec in server_lines]
            assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    # Deeply nested JSON and integers too long to convert: 422 as well, never 500.
    for body in (b"[" * 200_000 + b"]" * 200_000, b'{"refresh_token": ' + b"9" * 5000 + b"}"):
        r = await core.anonymous.post(f"{v1}/auth/refresh", content=body,
                                      headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text[:300]
    # A validation error whose input is itself not plain JSON still answers 422.
    r = await core.client.post("/tests/run", json={"plugin_name": "good_plugin",
                                                    "timeout": "soon"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "timeout"
    # Finite numbers still work.
    r = await core.anonymous.post(f"{v1}/auth/login", json={
        "username": "nobody", "password": "x", "device_info": {"screen": [1, 2.5e3]}})
    assert r.status_code == 401


@OWN_CORE
async def test_lone_surrogates_in_a_body_are_422_never_500(start_core):
    """JSON may spell a lone surrogate ("\\ud800"); UTF-8 cannot carry it. Whether it is a
    value or a key the model does not know, the answer is a 422 that encodes."""
    core = await start_core(FIXTURE_PLUGINS, settings=v1_settings())
    v1 = core.url + "api/v1"
    for body in (b'{"username": "\\ud800", "password": "p"}',
                 b'{"username": "ann", "password": "p", "\\udfff": 1}',
                 b'{"username": ["\\ud800x"], "password": "p"}'):
        r = await core.anonymous.post(f"{v1}/auth/login", content=body,
                                      headers={"Content-Type": "application/json"})
        assert r.status_code in (401, 422), (body, r.status_code, r.text[:300])
        if r.status_code == 422:
            assert r.json()["detail"][0]["loc"][0] == "body"
    r = await core.client.post("/tests/run", content=b'{"plugin_name": "\\ud800"}',
                               headers={"Content-Type": "application/json"})
    assert r.status_code < 500, r.text[:300]


@pytest.mark.parametrize("path", [
    "/_app/public/../index.js",
    "/_app/public/%2e%2e/index.js",
    "/_app/public/%2E%2E/index.js",
    "/_app/public/..%2findex.js",
    "/_app/public/.%2e/index.js",
    "/_app/public/x/../../index.js",
    "/_app/public/../../_app/index.js",
    "/_app/public/./../index.js",
    "/login/../_app/index.js",
    "/_app/public/../../healthz",
])
async def test_the_public_prefix_is_decided_on_the_normalised_path(shared, path):
    core = shared
    # The file behind the traversal exists and is private: with the token it is served.
    assert (await core.client.get("/_app/index.js")).status_code == 200
    status, data = await raw_request(core.port, f"GET {path} HTTP/1.1",
                                     {"Host": f"127.0.0.1:{core.port}"})
    assert status == 401, (path, status, data[:300])
    # Paths that stay inside the public folder are still public.
    status, _ = await raw_request(core.port, "GET /_app/public/x/../app.css HTTP/1.1",
                                  {"Host": f"127.0.0.1:{core.port}"})
    assert status == 200


async def read_all(reader: asyncio.StreamReader, bound: float = 20.0) -> bytes:
    """Everything until the server closes the connection (bounded, so a bug cannot hang).
    A reset closes it too: the server closing a socket with the client's bytes still
    unread sends one (seen at load ~11, a trickle's bytes arriving as it closed), and
    what came before it is kept. So does a broken pipe: a trickle's next byte written to
    the socket the server has just closed fails, and the connection's reader raises that
    (seen once from a fresh clone)."""
    chunks = []
    async with asyncio.timeout(bound):
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            while chunk := await reader.read(1 << 16):
                chunks.append(chunk)
    return b"".join(chunks)


async def read_response(reader: asyncio.StreamReader, bound: float = 10.0) -> tuple[int, bytes]:
    """One HTTP response (status, body) as soon as it is complete; bounded."""
    async with asyncio.timeout(bound):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        body = await reader.readexactly(length)
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize("path", ["/api/v1/messages/send", "/api/v1/files/upload",
                                  "/api/v1/backup/upload", "/api/v1/auth/login",
                                  "/tests/run", "/api/plugins/good_plugin/enable"])
async def test_a_declared_over_limit_body_is_413_before_any_body_is_sent(shared, path):
    core = shared
    reader, writer = await asyncio.open_connection("127.0.0.1", core.port)
    try:
        # 100 GiB declared, not one byte of it sent: the answer must not wait for it.
        writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{core.port}\r\n"
                     f"Authorization: Bearer {core.token}\r\n"
                     f"Content-Type: application/json\r\n"
                     f"Content-Length: {100 << 30}\r\n\r\n".encode())
        await writer.drain()
        status, body = await read_response(reader)
        assert status == 413 and b"too large" in body
    finally:
        writer.close()


@OWN_CORE
async def test_idle_and_slow_connections_are_closed(start_core, caplog):
    settings = v1_settings()
    settings.server.header_timeout = 0.5
    settings.server.body_timeout = 0.5
    core = await start_core(FIXTURE_PLUGINS, settings=settings)
    assert core.runtime.server is not None
    caplog.clear()  # the fixture plugins fail to start on purpose, with tracebacks
    host = f"Host: 127.0.0.1:{core.port}\r\n"
    connections = [await asyncio.open_connection("127.0.0.1", core.port) for _ in range(50)]
    stop_trickling = asyncio.Event()

    async def trickle(writer: asyncio.StreamWriter) -> None:
        # Slowloris: a header line that never ends, one byte at a time.
        writer.write(b"GET /healthz HTTP/1.1\r\n" + host.encode() + b"X-Slow: ")
        with contextlib.suppress(ConnectionError):
            while not stop_trickling.is_set():
                writer.write(b"a")
                await writer.drain()
                await asyncio.sleep(0.1)

    trickles = []
    for index, (_reader, writer) in enumerate(connections):
        kind = index % 5
        if kind in (1, 2):
            trickles.append(asyncio.create_task(trickle(writer)))
        elif kind == 3:  # a JSON body that stalls after 10 of 100 bytes
            writer.write(f"POST /api/v1/auth/login HTTP/1.1\r\n{host}Content-Type: "
                         f"application/json\r\nContent-Length: 100\r\n\r\n".encode()
                         + b'{"username"')
        elif kind == 4:  # an upload that stalls
            writer.write(f"POST /api/v1/files/upload HTTP/1.1\r\n{host}Content-Type: "
                         f"multipart/form-data; boundary=b\r\nContent-Length: 5000\r\n\r\n"
                         .encode() + b"--b\r\n")
        # kind 0: connects and says nothing at all
    try:
        for reader, _writer in connections:
            data = await read_all(reader)
            assert b"200 OK" not in data
    finally:
        stop_trickling.set()
        await asyncio.gather(*trickles)
        for _reader, writer in connections:
            writer.close()
    async with asyncio.timeout(10):
        while core.runtime.server.open_connections:
            await asyncio.sleep(0.05)
    # The server is fine and still answers.
    assert (await core.client.get("/healthz")).status_code == 200
    assert "Traceback" not in caplog.text
