"""Test helpers: loopback listeners that act like real services, a guard that fails a
test on any connection or lookup outside loopback, and the real app with this plugin.

Every listener binds 127.0.0.1 on a free port. Async tests take no async fixtures (the
test manager runs them with its own runner), so listeners and the app start inside each
test through the async context managers here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
LAYER_ROOT = PLUGIN_ROOT.parent / "api_integration_layer"
PLUGIN_ID = "network_scanner"


class OffLoopback(AssertionError):
    """A test tried to reach something that is not loopback."""


def _is_loopback(host: Any) -> bool:
    try:
        address = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@contextlib.contextmanager
def loopback_only(monkeypatch: Any) -> Iterator[list[str]]:
    """Patch ``socket.socket.connect``/``connect_ex`` (the event loop's ``sock_connect``
    and ``create_connection`` end there) and ``socket.getaddrinfo`` so that any attempt
    to reach (or look up) something other than loopback raises :class:`OffLoopback`
    and is recorded in the yielded list."""
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(address: Any, what: str) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(address, tuple) and not _is_loopback(host):
            attempts.append(f"{what} {address!r}")
            raise OffLoopback(f"{what} to {address!r}: not loopback")

    def connect(self: socket.socket, address: Any) -> Any:
        check(address, "connect")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        check(address, "connect_ex")
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        text = host.decode() if isinstance(host, bytes) else host
        if text is not None and text not in ("localhost",) and not _is_loopback(text):
            attempts.append(f"getaddrinfo {text!r}")
            raise OffLoopback(f"lookup of {text!r}: not loopback")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts


# -- loopback listeners ---------------------------------------------------------------

@contextlib.asynccontextmanager
async def listener(handler: Any, ssl_context: ssl.SSLContext | None = None,
                   sock: socket.socket | None = None) -> AsyncIterator[int]:
    """``asyncio.start_server`` on 127.0.0.1:<free> (or on ``sock``, a bound socket from
    :func:`reserved_port`); yields the port."""
    tasks: set[asyncio.Task[Any]] = set()

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except asyncio.CancelledError:
            # Stopped with the listener: end quietly (a handler task ending cancelled
            # makes asyncio's stream callback log a traceback).
            writer.close()
        finally:
            tasks.discard(task)

    if sock is not None:
        server = await asyncio.start_server(guarded, sock=sock, ssl=ssl_context)
    else:
        server = await asyncio.start_server(guarded, "127.0.0.1", 0, ssl=ssl_context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await server.wait_closed()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1):
            await writer.wait_closed()


def greeter(text: bytes | list[bytes], reply: bytes = b"") -> Any:
    """A service that greets first (SSH, FTP, SMTP): sends ``text``, then answers each
    line with ``reply`` until the client goes. Given a list, it greets with its first
    item at each connection, so a test can "upgrade" the service on the same port."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(text[0] if isinstance(text, list) else text)
            await writer.drain()
            while await reader.readline():
                if reply:
                    writer.write(reply)
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            await _close(writer)
    return handle


def http_server(server: str = "nginx/1.18.0", body: bytes = b"<title>Hello</title>hi"
                ) -> Any:
    """An HTTP/1.0 server answering every request with 200 and this Server header."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                while await reader.readline() not in (b"\r\n", b"\n", b""):
                    pass
            writer.write(b"HTTP/1.0 200 OK\r\nServer: " + server.encode() +
                         b"\r\nContent-Type: text/html\r\nContent-Length: " +
                         str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()
        except (ConnectionError, OSError, TimeoutError, ssl.SSLError):
            pass
        finally:
            await _close(writer)
    return handle


def redis_server(password: str | None = None, version: str = "7.2.4") -> Any:
    """A Redis-like responder: PING -> +PONG (or -NOAUTH), INFO server -> a bulk string."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                command = line.strip().upper()
                if password is not None:
                    writer.write(b"-NOAUTH Authentication required.\r\n")
                elif command == b"PING":
                    writer.write(b"+PONG\r\n")
                elif command.startswith(b"INFO"):
                    info = f"# Server\r\nredis_version:{version}\r\nredis_mode:standalone\r\n"
                    writer.write(f"${len(info)}\r\n{info}\r\n".encode())
                else:
                    writer.write(b"-ERR unknown command\r\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            await _close(writer)
    return handle


def silent() -> Any:
    """Accepts and never says anything (service unknown after every probe)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                await reader.read()
        except (ConnectionError, OSError, TimeoutError):
            pass
        finally:
            await _close(writer)
    return handle


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A listening port whose accept queue is full: further SYNs are dropped by the
    kernel, so a connect gets no answer (nmap's "filtered"), all on loopback."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            sock = socket.socket()
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect(("127.0.0.1", port))
            fillers.append(sock)
        yield port
    finally:
        for sock in fillers:
            sock.close()
        server.close()


def reserved_port() -> socket.socket:
    """A socket bound to 127.0.0.1:<free> but not listening: the port answers connects
    with a reset (closed) until :func:`listener` is started on it (open), so a test can
    open a service on a port a scan already saw closed."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def tls_context(ca: Any, *, expired: bool = False, self_signed: bool = False,
                names: tuple[str, ...] = ("localhost", "127.0.0.1"),
                ciphers: str | None = None, rsa: bool = False) -> ssl.SSLContext:
    """A server context with a trustme certificate: issued by ``ca`` for ``names``,
    expired (valid until yesterday), or the CA's own self-signed certificate; ``rsa``
    gives the leaf an RSA key (static-RSA suites need one), ``ciphers`` limits the server
    to those suites and TLS 1.2."""
    import trustme

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if self_signed:
        ctx.load_cert_chain(*_write_pair(ca.cert_pem.bytes(), ca.private_key_pem.bytes()))
    else:
        kwargs: dict[str, Any] = {"key_type": trustme.KeyType.RSA if rsa
                                  else trustme.KeyType.ECDSA}
        if expired:
            now = dt.datetime.now(dt.UTC)
            kwargs.update(not_before=now - dt.timedelta(days=400),
                          not_after=now - dt.timedelta(days=1))
        cert = ca.issue_cert(*names, **kwargs)
        cert.configure_cert(ctx)
    if ciphers:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(ciphers)
    return ctx


def _write_pair(cert: bytes, key: bytes) -> tuple[str, str]:
    import tempfile
    folder = Path(tempfile.mkdtemp(prefix="ns-tls-"))
    (folder / "cert.pem").write_bytes(cert)
    (folder / "key.pem").write_bytes(key)
    return str(folder / "cert.pem"), str(folder / "key.pem")


# -- the real app ----------------------------------------------------------------------

@contextlib.asynccontextmanager
async def running_app(tmp_path: Path, **settings: Any) -> AsyncIterator[Any]:
    """The real core (with the API integration layer and the v1 API) running only this
    plugin and the layer; yields ``(client, plugin, server)``: an httpx client on this
    plugin's API, the plugin instance and the layer's ``EmbeddedServer``."""
    from api_integration_layer.testing import embedded_server, plugin_folder

    folder = plugin_folder(tmp_path, PLUGIN_ROOT, LAYER_ROOT)
    async with embedded_server(tmp_path / "apphome", plugin_dirs=[folder],
                               plugin_settings={PLUGIN_ID: settings}) as server:
        record = server.runtime.plugins.by_id[PLUGIN_ID]
        assert str(record.state) in ("active", "degraded"), (record.reason, record.detail)
        async with httpx.AsyncClient(base_url=f"{server.url}plugins/{PLUGIN_ID}/api/",
                                     timeout=30, headers=server.app_headers,
                                     trust_env=False) as client:
            yield client, record.instance, server


async def wait_job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """Poll a job of the plugin until it has finished (60 s at most)."""
    async with asyncio.timeout(60):
        while True:
            job: dict[str, Any] = (await client.get(f"_host/jobs/{job_id}")).json()
            if job["state"] in ("succeeded", "failed", "cancelled"):
                return job
            await asyncio.sleep(0.05)
