"""Service and version detection on open ports: banners first, then probes.

For each open port, each probe on a fresh connection and within ``timeout`` (2-4 run at
once when the service stays silent after connecting):

1. *null probe*: wait for what the service says on its own (SSH, FTP, SMTP, POP3, IMAP,
   MySQL, VNC and telnet greet first);
2. *TLS*: a handshake (any certificate); on success HTTP is tried inside it;
3. *Redis*: ``PING``; ``+PONG`` means Redis answering without a password (then
   ``INFO server`` gives the version), ``-NOAUTH`` means Redis with one;
4. *HTTP*: ``GET /`` with a Host header; the status, the ``Server`` header, the title and
   whether the body is a directory listing are kept.

The texts are matched against ``signatures.yaml``. What a probe saw is kept as
``facts`` (evidence for the findings: ``redis_auth``, ``dir_listing`` ...), so a
finding can say "confirmed" only when a probe really showed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

MAX_READ = 65536
BANNER_CHARS = 300


@dataclass
class Signature:
    probe: str
    service: str
    pattern: re.Pattern[str]
    product: str | None = None


@cache
def signatures() -> tuple[Signature, ...]:
    """The shipped signatures (validated: a bad regex fails loudly at first use)."""
    data = yaml.safe_load(Path(__file__).with_name("signatures.yaml").read_text("utf-8"))
    out: list[Signature] = []
    for index, item in enumerate(data["signatures"]):
        try:
            out.append(Signature(item["probe"], item["service"], re.compile(item["match"], re.S),
                                 item.get("product")))
        except (KeyError, re.error) as exc:
            raise ValueError(f"signatures.yaml entry {index}: {exc}") from None
    return tuple(out)


@dataclass
class Service:
    """What runs on one open port."""

    name: str | None = None
    product: str | None = None
    version: str | None = None
    extra: str | None = None
    banner: str = ""
    tls: bool = False
    method: str = "none"
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def label(self) -> str:
        parts = [p for p in (self.product, self.version) if p]
        return " ".join(parts)


def printable(data: bytes, limit: int = BANNER_CHARS) -> str:
    """Bytes as text a page can show: Latin-1, control characters escaped."""
    text = data[:limit * 2].decode("latin-1")
    shown = "".join(c if 32 <= ord(c) < 127 or c in "\r\n\t" else f"\\x{ord(c):02x}"
                    for c in text)
    return shown.strip()[:limit]


def match(probe: str, text: str, service: Service) -> bool:
    """Fill ``service`` from the first signature of kind ``probe`` matching ``text``."""
    for sig in signatures():
        if sig.probe != probe:
            continue
        found = sig.pattern.search(text)
        if not found:
            continue
        groups = found.groupdict()
        service.name = "https" if sig.service == "http" and service.tls else sig.service
        service.product = groups.get("product") or sig.product
        service.version = groups.get("version")
        service.extra = (groups.get("extra") or "").strip() or None
        return True
    return False


def client_context() -> ssl.SSLContext:
    """A client context that completes a handshake with anything (old protocols and
    ciphers included): detection must see what is there, not judge it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with contextlib.suppress(ssl.SSLError):  # an OpenSSL without security levels
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


async def _exchange(address: str, port: int, send: bytes | None, timeout: float,
                    tls: ssl.SSLContext | None = None, server_name: str | None = None,
                    read_all: bool = False) -> bytes:
    """Connect, optionally send, read what comes within ``timeout``; b"" on silence.
    Raises OSError/ssl.SSLError/TimeoutError when the connection (or handshake) fails."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(
            address, port, ssl=tls, server_hostname=(server_name or address) if tls else None,
            ssl_handshake_timeout=timeout if tls else None)
    try:
        if send:
            writer.write(send)
            await writer.drain()
        data = b""
        try:
            async with asyncio.timeout(timeout):
                while len(data) < MAX_READ:
                    chunk = await reader.read(MAX_READ - len(data))
                    if not chunk:
                        break
                    data += chunk
                    if not read_all:
                        # A greeting is one line or one packet; wait briefly for the rest.
                        try:
                            async with asyncio.timeout(min(0.15, timeout)):
                                more = await reader.read(MAX_READ - len(data))
                        except TimeoutError:
                            break
                        if not more:
                            break
                        data += more
                        break
        except TimeoutError:
            pass
        except (ConnectionError, ssl.SSLError):
            pass
        return data
    finally:
        writer.close()
        try:
            async with asyncio.timeout(1):
                await writer.wait_closed()
        except (TimeoutError, OSError, ssl.SSLError):
            pass


def _http_request(host: str) -> bytes:
    return (f"GET / HTTP/1.0\r\nHost: {host}\r\nUser-Agent: PlexiChat-Network-Scanner/1.0\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n").encode()


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
_LISTING = re.compile(r"<title>\s*(Index of /|Directory listing for /)", re.I)


def read_http(data: bytes, service: Service) -> bool:
    """Fill ``service`` from an HTTP answer; False when ``data`` is not HTTP."""
    if not data.startswith(b"HTTP/"):
        return False
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    service.name = "https" if service.tls else "http"
    service.facts["http_status"] = int(status[1]) if len(status) > 1 and status[1].isdigit() \
        else None
    text = body[:MAX_READ].decode("utf-8", "replace")
    title = _TITLE.search(text)
    if title:
        service.facts["http_title"] = " ".join(title.group(1).split())[:200]
    service.facts["dir_listing"] = bool(_LISTING.search(text))
    server = headers.get("server")
    if server:
        service.facts["http_server"] = server[:200]
        service.banner = service.banner or f"Server: {server}"[:BANNER_CHARS]
        match("http-server", server, service)
        service.name = "https" if service.tls else "http"
    service.method = "probe:https" if service.tls else "probe:http"
    return True


async def detect(address: str, port: int, *, timeout: float = 2.0,
                 server_name: str | None = None) -> Service:
    """Detect the service on one open port (see the module docstring)."""
    service = Service()
    host = server_name or (f"[{address}]" if ":" in address else address)

    async def attempt(send: bytes | None, tls: ssl.SSLContext | None = None,
                      read_all: bool = False) -> bytes | None:
        try:
            return await _exchange(address, port, send, timeout, tls, server_name, read_all)
        except (OSError, ssl.SSLError, TimeoutError, EOFError):
            return None

    # 1. the service speaks first
    banner = await attempt(None)
    if banner:
        service.banner = printable(banner)
        service.method = "banner"
        text = banner.decode("latin-1")
        if not match("banner", text, service) and read_http(banner, service):
            return service
        if service.name == "ssh" and text.startswith("SSH-1."):
            service.facts["ssh_protocol_1"] = True
        if service.name is None:
            service.name = "unknown"
        return service

    # 2-4 at once, each on its own connection: a silent port then costs one timeout, not
    # three; the answers are read in the order TLS, Redis, HTTP.
    hello, pong, answer = await asyncio.gather(
        attempt(_http_request(host), client_context(), read_all=True),
        attempt(b"PING\r\n"),
        attempt(_http_request(host), read_all=True))

    # 2. TLS
    if hello is not None:
        service.tls = True
        service.method = "probe:tls"
        service.name = "tls"
        if hello:
            service.banner = printable(hello.split(b"\r\n\r\n", 1)[0])
            read_http(hello, service)
        return service

    # 3. Redis
    if pong and (pong.startswith(b"+PONG") or pong.startswith(b"-NOAUTH")
                 or pong.startswith(b"-DENIED")):
        service.name, service.product, service.method = "redis", "Redis", "probe:redis"
        service.banner = printable(pong)
        service.facts["redis_auth"] = not pong.startswith(b"+PONG")
        if not service.facts["redis_auth"]:
            info = await attempt(b"INFO server\r\n")
            if info:
                match("redis-info", info.decode("latin-1"), service)
                service.name, service.product = "redis", "Redis"
        return service

    # 4. HTTP
    if answer and read_http(answer, service):
        return service
    if pong and read_http(pong, service):  # answered PING with an HTTP error
        return service
    reply = answer or pong
    if reply:
        service.banner = printable(reply)
        service.method = "probe"
    service.name = "unknown"
    return service
