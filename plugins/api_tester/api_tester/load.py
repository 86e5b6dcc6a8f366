"""Load test: virtual users send one request in a loop for a while, within hard caps.

The target was checked once by the network guard and its address pinned; every virtual
user connects there through one pool of ``users`` connections. Requests are counted
against ``max_requests`` before they are sent, so the cap holds exactly. Latency is the
time from sending to the whole body read. Bodies are streamed and thrown away as they
come, only their bytes counted: ``users`` concurrent answers of any size cost a chunk
each, not their whole size.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from api_tester.sender import Resolved, build, no_cookie_jar
from plexichat_desktop.plugins.guards import Target
from plexichat_desktop.plugins.tls import shared_tls_context


def percentile(ordered: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list; None when empty."""
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


# Seconds an answer in flight at the end of a load test may still take.
END_GRACE = 2.0


async def load_test(resolved: Resolved, target: Target, *, users: int, duration: float,
                    max_requests: int, timeout: float = 30.0,
                    progress: Callable[[dict[str, Any]], None] | None = None
                    ) -> dict[str, Any]:
    """Run the load and return the figures (requests, rps, error rate, p50/p95/p99...)."""
    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    per_second: Counter[int] = Counter()
    budget = max_requests
    received = 0
    started = time.perf_counter()
    deadline = started + duration

    async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False,
                                 cookies=no_cookie_jar(),
                                 verify=shared_tls_context(trust_env=False)) as client:
        async def user() -> None:
            nonlocal budget, received
            while budget > 0 and time.perf_counter() < deadline:
                budget -= 1
                request = build(client, resolved, target)
                sent = time.perf_counter()
                # The whole answer within the timeout, and none past the test's end and a
                # short grace: httpx's timeout is per read, and a target dripping a byte
                # a second held a 1 s test for 100 s (past load_max_seconds too).
                limit = min(timeout, deadline + END_GRACE - sent)
                try:
                    async with asyncio.timeout(max(limit, 0.01)):
                        response = await client.send(request, stream=True)
                        try:
                            async for chunk in response.aiter_raw():
                                received += len(chunk)  # counted, not kept
                        finally:
                            await response.aclose()
                except TimeoutError:
                    errors["cut at the end of the test" if limit < timeout
                           else "no whole answer in time"] += 1
                    statuses["error"] += 1
                    continue
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    statuses["error"] += 1
                    continue
                done = time.perf_counter()
                latencies.append(done - sent)
                per_second[int(done - started)] += 1
                statuses[str(response.status_code)] += 1
                if response.status_code >= 400:
                    errors[f"HTTP {response.status_code}"] += 1

        async def reporter() -> None:
            while True:
                await asyncio.sleep(0.25)
                if progress is not None:
                    progress(_figures(latencies, statuses, errors, per_second,
                                      time.perf_counter() - started, final=False))

        ticker = asyncio.ensure_future(reporter())
        try:
            await asyncio.gather(*(user() for _ in range(users)))
        finally:
            ticker.cancel()
    result = _figures(latencies, statuses, errors, per_second, time.perf_counter() - started,
                      final=True)
    result.update({"bytes_received": received, "users": users, "duration_limit": duration,
                   "max_requests": max_requests,
                   "target": f"{target.scheme}://{target.host_header} ({target.address})"})
    return result


def _figures(latencies: list[float], statuses: Counter[str], errors: Counter[str],
             per_second: Counter[int], elapsed: float, final: bool) -> dict[str, Any]:
    total = sum(statuses.values())
    failed = sum(errors.values())
    ordered = sorted(latencies) if final else sorted(latencies[-5000:])

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    figures: dict[str, Any] = {
        "requests": total, "elapsed_s": round(elapsed, 3),
        "rps": round(total / elapsed, 1) if elapsed > 0 else 0.0,
        "errors": failed, "error_rate": round(failed / total, 4) if total else 0.0,
        "p50_ms": ms(percentile(ordered, 50)), "p95_ms": ms(percentile(ordered, 95)),
        "p99_ms": ms(percentile(ordered, 99)),
        "max_ms": ms(ordered[-1] if ordered else None),
        "statuses": dict(statuses), "error_kinds": dict(errors),
    }
    if final:
        figures["per_second"] = [per_second.get(s, 0) for s in range(int(elapsed) + 1)]
    return figures
