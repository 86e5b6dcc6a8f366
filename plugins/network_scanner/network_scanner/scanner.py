"""The asynchronous TCP connect scan (nmap ``-sT``): no root, no raw sockets.

Each (address, port) gets one non-blocking ``connect``: accepted is *open*, refused
(RST) is *closed*, no answer within the timeout or an ICMP unreachable is *filtered*
(nmap's meanings). An open connection is closed at once; service detection opens its
own connections later, only to open ports. A fixed pool of ``concurrency`` workers
pulls from one iterator, so memory stays flat for 65535 ports and the cap holds exactly.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass

from network_scanner.targets import Host, RateLimiter

OPEN, CLOSED, FILTERED = "open", "closed", "filtered"
# Sockets a scan may hold at once, as a share of the process's file descriptor limit
# (soft RLIMIT_NOFILE: often 1024 on Linux desktops, 256 on macOS). ``concurrency`` goes
# up to 2000; past the limit socket() fails with EMFILE, the scan dies with it, and the
# rest of the app (its server accepting the page's requests) cannot open files meanwhile.
FD_SHARE = 4
UNLIMITED_FDS = 1 << 20
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM}


@dataclass
class PortState:
    """The connect result of one port."""

    address: str
    port: int
    state: str
    reason: str
    rtt_ms: float | None = None


Connector = Callable[[str, int, float], Awaitable[tuple[str, str, float | None]]]


async def tcp_connect(address: str, port: int, timeout: float) -> tuple[str, str, float | None]:
    """One connect attempt: ``(state, reason, rtt_ms)``."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (address, port))
        return OPEN, "connected", (time.perf_counter() - started) * 1000
    except ConnectionRefusedError:
        return CLOSED, "refused", (time.perf_counter() - started) * 1000
    except TimeoutError:
        return FILTERED, "no answer", None
    except OSError as exc:
        if exc.errno in _UNREACHABLE:
            return FILTERED, f"unreachable ({errno.errorcode.get(exc.errno or 0, exc.errno)})", \
                None
        return FILTERED, f"error ({exc.strerror or exc})", None
    finally:
        sock.close()


def socket_budget() -> int:
    """How many sockets a scan may keep open at once (a quarter of the soft descriptor
    limit, at least 8)."""
    try:
        import resource
    except ImportError:  # Windows: no descriptor limit of this kind
        return UNLIMITED_FDS
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return UNLIMITED_FDS
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return UNLIMITED_FDS
    return max(8, soft // FD_SHARE)


async def connect_scan(
    hosts: Iterable[Host], ports: list[int], *, concurrency: int = 200,
    timeout: float = 1.0, limiter: RateLimiter | None = None,
    on_result: Callable[[PortState], None] | None = None,
    connector: Connector = tcp_connect,
) -> list[PortState]:
    """Scan every port of every host with at most ``concurrency`` connects in flight
    (and never more than :func:`socket_budget` allows).

    ``on_result`` is called for each port as it is decided (live progress); a caller
    that streams the results so gets an empty list back: keeping them all would hold
    every closed port of a 256-host, 65535-port scan (16.7 million states, gigabytes).
    Without ``on_result`` the sorted results are returned. ``limiter`` paces connects to
    hosts that are not loopback. Cancelling the calling task stops every worker (their
    sockets are closed by ``tcp_connect``'s finally).
    """
    host_list = list(hosts)
    work: Iterator[tuple[Host, int]] = ((h, p) for h in host_list for p in ports)
    results: list[PortState] = []

    async def worker() -> None:
        for host, port in work:  # a shared iterator: each item goes to one worker
            if limiter is not None and not host.loopback:
                await limiter.acquire()
            state, reason, rtt = await connector(host.address, port, timeout)
            item = PortState(host.address, port, state, reason,
                             None if rtt is None else round(rtt, 3))
            if on_result is not None:
                on_result(item)
            else:
                results.append(item)

    total = len(host_list) * len(ports)
    count = max(1, min(concurrency, total, socket_budget()))
    async with asyncio.TaskGroup() as group:
        for _ in range(count):
            group.create_task(worker())
    order = {host.address: index for index, host in enumerate(host_list)}
    results.sort(key=lambda r: (order.get(r.address, len(order)), r.port))
    return results
