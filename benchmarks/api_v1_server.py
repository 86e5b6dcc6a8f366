"""Embedded PlexiChat v1 server benchmark: login, send message and list conversation.

Starts ``plexichat-desktop serve`` in a child process on a loopback port (its own temporary
home, production password hashing: scrypt N=2**14), registers one account per client, then
drives each operation from ``--clients`` concurrent httpx clients (one connection each) and
prints requests per second and p50/p99 latency. The baseline, measured in the same run on the
same server and the same clients, is ``GET /healthz`` (the host's own health check: routing,
security middleware and uvicorn, no v1 code); ``GET /api/v1/system/ping`` is shown too, the
cheapest v1 route. Ratios compare each operation with the baseline.

The client runs in this process and the server in another: on a 2-core machine both share
the CPU, so figures are a floor for the server alone.

    .venv/bin/python benchmarks/api_v1_server.py [--clients 50] [--requests 40] [--logins 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from plexichat_desktop.core.paths import AppPaths  # noqa: E402
from plexichat_desktop.server.token import load_or_create_token  # noqa: E402

URL_RE = re.compile(r"serving at (http://127\.0\.0\.1:\d+/)")
PASSWORD = "Bench-Password-123"
START_TIMEOUT = 60.0


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "plexichat_desktop", "serve", "--port", "0", "--safe-mode",
           "--log-level", "WARNING"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    for line in proc.stdout:
        if match := URL_RE.search(line):
            return proc, match.group(1)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError(f"the server did not print its URL (exit code {proc.wait()})")


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Result:
    def __init__(self, name: str, latencies: list[float], elapsed: float, errors: int):
        self.name = name
        self.latencies = sorted(latencies)
        self.elapsed = elapsed
        self.errors = errors

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed

    def pct(self, fraction: float) -> float:
        index = min(len(self.latencies) - 1, max(0, round(fraction * len(self.latencies)) - 1))
        return self.latencies[index] * 1000

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) * 1000


async def drive(name: str, clients: list[httpx.AsyncClient], per_client: int,
                call: Callable[[int, httpx.AsyncClient, int], Awaitable[httpx.Response]],
                ok: tuple[int, ...] = (200,)) -> Result:
    """Run ``per_client`` calls on every client at once; latency of each call."""
    latencies: list[float] = []
    errors = 0
    start_gate = asyncio.Event()

    async def worker(index: int, client: httpx.AsyncClient) -> None:
        nonlocal errors
        await start_gate.wait()
        for n in range(per_client):
            began = time.perf_counter()
            response = await call(index, client, n)
            latencies.append(time.perf_counter() - began)
            if response.status_code not in ok:
                errors += 1

    tasks = [asyncio.create_task(worker(i, c)) for i, c in enumerate(clients)]
    await asyncio.sleep(0)
    began = time.perf_counter()
    start_gate.set()
    await asyncio.gather(*tasks)
    return Result(name, latencies, time.perf_counter() - began, errors)


async def bench(base_url: str, app_token: str, n_clients: int, per_client: int,
                logins: int) -> list[Result]:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits)
               for _ in range(n_clients)]
    try:
        names = [f"bench{i:03d}" for i in range(n_clients)]
        # Accounts, one per client, registered and logged in before anything is timed.
        for client, name in zip(clients, names, strict=True):
            r = await client.post("/api/v1/auth/register", json={
                "username": name, "email": f"{name}@bench.example", "password": PASSWORD})
            r.raise_for_status()
        ids: list[str] = []
        for client, name in zip(clients, names, strict=True):
            r = await client.post("/api/v1/auth/login", json={"username": name,
                                                              "password": PASSWORD})
            r.raise_for_status()
            client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            ids.append(r.json()["user_id"])
        # Clients pair up: 0 <-> 1, 2 <-> 3, ... (the last one talks to 0 when odd).
        partner = [ids[i ^ 1] if (i ^ 1) < n_clients else ids[0] for i in range(n_clients)]
        health = {"Authorization": f"Bearer {app_token}"}

        async def healthz(i: int, c: httpx.AsyncClient, n: int) -> httpx.Response:
            return await c.get("/healthz", headers=health)

        async def ping(i: int, c: httpx.AsyncClient, n: int) -> httpx.Response:
            return await c.get("/api/v1/system/ping")

        async def login(i: int, c: httpx.AsyncClient, n: int) -> httpx.Response:
            return await c.post("/api/v1/auth/login", json={"username": names[i],
                                                            "password": PASSWORD})

        async def send(i: int, c: httpx.AsyncClient, n: int) -> httpx.Response:
            return await c.post("/api/v1/messages/send", json={
                "recipient_id": partner[i], "content": f"benchmark message {n} from {i}"})

        async def conversation(i: int, c: httpx.AsyncClient, n: int) -> httpx.Response:
            return await c.get(f"/api/v1/messages/conversation/{partner[i]}",
                               params={"limit": 50})

        await drive("warm-up", clients, 5, healthz)
        results = [await drive("baseline GET /healthz", clients, per_client, healthz)]
        results.append(await drive("GET /api/v1/system/ping", clients, per_client, ping))
        results.append(await drive("POST /api/v1/auth/login", clients, logins, login))
        results.append(await drive("POST /api/v1/messages/send", clients, per_client, send,
                                   ok=(201,)))
        results.append(await drive("GET /api/v1/messages/conversation/{id}", clients,
                                   per_client, conversation))
        return results
    finally:
        for client in clients:
            await client.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=40,
                        help="requests per client for each operation but login")
    parser.add_argument("--logins", type=int, default=4, help="logins per client")
    parser.add_argument("--scrypt-cost", type=int, default=14,
                        help="log2 of scrypt's N for password hashes (the default is the "
                             "production setting)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="plexichat-bench-") as tmp:
        env = {**os.environ, "PLEXICHAT_DESKTOP_HOME": tmp,
               # No rate limits: the benchmark logs in far more often than a person would.
               "PLEXICHAT_DESKTOP_API__LOGIN_RATE_LIMIT": "0",
               "PLEXICHAT_DESKTOP_API__REGISTER_RATE_LIMIT": "0",
               "PLEXICHAT_DESKTOP_API__REQUESTS_PER_MINUTE": "0",
               "PLEXICHAT_DESKTOP_API__SCRYPT_COST": str(args.scrypt_cost)}
        env.pop("PLEXICHAT_DESKTOP_PLUGINS_PATH", None)
        token = load_or_create_token(AppPaths.from_env(env).token_file)
        proc, url = start_server(env)
        try:
            results = asyncio.run(bench(url.rstrip("/"), token, args.clients, args.requests,
                                        args.logins))
        finally:
            stop_server(proc)
    baseline = results[0]
    print(f"clients: {args.clients} concurrent (one connection each), {os.cpu_count()} "
          f"cores shared by client and server; scrypt N=2**{args.scrypt_cost}")
    print(f"{'operation':40} {'requests':>8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'errors':>6} {'req/s vs baseline':>18} {'p50 vs baseline':>16}")
    for r in results:
        print(f"{r.name:40} {len(r.latencies):8d} {r.rps:9.1f} {r.p50:8.2f} {r.pct(0.99):8.2f} "
              f"{r.errors:6d} {r.rps / baseline.rps:17.2f}x {r.p50 / baseline.p50:15.2f}x")
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
