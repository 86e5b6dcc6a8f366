"""API integration layer client benchmark: its cache-hit path and its full path against a
plain httpx call to the same endpoint, in the same run.

Starts ``plexichat-desktop serve`` in a child process on a loopback port (its own temporary
home), registers and logs in one user, then times sequential calls from this process:

* baseline: ``httpx.AsyncClient.get`` + ``response.json()`` with the Bearer header;
* client, uncached: ``ApiClient`` with the cache bypassed: the whole pipeline (limiter off,
  token check, request, retry bookkeeping, request log, pydantic model);
* client, cache hit: the same call answered from the client's cache (a typed model built
  from the cached JSON, and a request-log record).

for two endpoints: ``GET /users/me`` (a small object) and ``GET /users/?limit=100`` (a list
of 100 users). Rounds alternate the three ways so drift (CPU frequency, other load) hits
them alike. Figures are per call; ratios are against the baseline of the same endpoint.

    .venv/bin/python benchmarks/api_v1_client.py [--calls 300] [--rounds 5] [--users 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "plugins" / "api_integration_layer"))

from api_integration_layer.client import ApiClient  # noqa: E402
from api_integration_layer.config import ClientConfig  # noqa: E402

from benchmarks.api_v1_server import PASSWORD, start_server, stop_server  # noqa: E402


class Timing:
    def __init__(self, name: str):
        self.name = name
        self.samples: list[float] = []

    @property
    def p50(self) -> float:
        return statistics.median(self.samples) * 1e6

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples) * 1e6

    def pct(self, fraction: float) -> float:
        ordered = sorted(self.samples)
        index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
        return ordered[index] * 1e6


async def timed(timing: Timing, calls: int, call: Callable[[], Awaitable[object]]) -> None:
    for _ in range(calls):
        began = time.perf_counter()
        await call()
        timing.samples.append(time.perf_counter() - began)


async def bench(url: str, calls: int, rounds: int, users: int) -> list[tuple[str, list[Timing]]]:
    base = url.rstrip("/") + "/api/v1"
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as plain:
        for i in range(users):
            r = await plain.post("/auth/register", json={
                "username": f"bench{i:03d}", "email": f"bench{i:03d}@bench.example",
                "password": PASSWORD})
            r.raise_for_status()
        r = await plain.post("/auth/login", json={"username": "bench000", "password": PASSWORD})
        r.raise_for_status()
        plain.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

        # The client-side rate limiter is off: with it, the uncached figures would measure
        # the token bucket's pacing rather than the client's own cost.
        config = ClientConfig(rate_limit_per_second=0, cache_ttl=3600, log_size=100)
        client = ApiClient(base, config,  # one connection too, like the baseline
                           http_client=httpx.AsyncClient(timeout=30, limits=limits))
        try:
            await client.auth.login("bench000", PASSWORD)
            cases = [
                ("GET /users/me", lambda: plain.get("/users/me"), client.users.me),
                ("GET /users/?limit=100", lambda: plain.get("/users/", params={"limit": 100}),
                 lambda: client.users.list(limit=100)),
            ]
            results = []
            for name, plain_call, client_call in cases:
                baseline, uncached, hit = (Timing("plain httpx"), Timing("client, uncached"),
                                           Timing("client, cache hit"))

                async def plain_json(call: Callable[[], Awaitable[httpx.Response]] = plain_call
                                     ) -> object:
                    response = await call()
                    response.raise_for_status()
                    return response.json()

                async def bypass(call: Callable[[], Awaitable[object]] = client_call) -> object:
                    with client.bypass_cache():
                        return await call()

                for _ in range(20):  # warm-up: connections, imports, caches
                    await plain_json()
                    await bypass()
                await client_call()  # primes the cache for the hit path
                for _ in range(rounds):
                    await timed(baseline, calls, plain_json)
                    await timed(uncached, calls, bypass)
                    await timed(hit, calls, client_call)
                results.append((name, [baseline, uncached, hit]))
            assert client.cache.hits >= rounds * calls * len(cases)
            return results
        finally:
            await client.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per way and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--users", type=int, default=100, help="accounts (the list's size)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="plexichat-bench-") as tmp:
        env = {**os.environ, "PLEXICHAT_DESKTOP_HOME": tmp,
               "PLEXICHAT_DESKTOP_API__REGISTER_RATE_LIMIT": "0",
               "PLEXICHAT_DESKTOP_API__LOGIN_RATE_LIMIT": "0",
               "PLEXICHAT_DESKTOP_API__REQUESTS_PER_MINUTE": "0",
               # Password hashing is not what is measured here.
               "PLEXICHAT_DESKTOP_API__SCRYPT_COST": "4"}
        env.pop("PLEXICHAT_DESKTOP_PLUGINS_PATH", None)
        proc, url = start_server(env)
        try:
            results = asyncio.run(bench(url, args.calls, args.rounds, args.users))
        finally:
            stop_server(proc)
    print(f"sequential calls, one connection, {args.rounds} rounds x {args.calls} calls per "
          f"way; server in a child process; {os.cpu_count()} cores")
    for name, timings in results:
        baseline = timings[0]
        print(f"\n{name}")
        print(f"  {'way':22} {'p50 us':>9} {'mean us':>9} {'p99 us':>9} {'p50 vs plain':>13}")
        for t in timings:
            print(f"  {t.name:22} {t.p50:9.1f} {t.mean:9.1f} {t.pct(0.99):9.1f} "
                  f"{t.p50 / baseline.p50:12.3f}x")
        uncached, hit = timings[1], timings[2]
        print(f"  client pipeline overhead (uncached - plain, p50): "
              f"{uncached.p50 - baseline.p50:+.1f} us; cache hit is "
              f"{baseline.p50 / hit.p50:.1f}x faster than the plain call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
