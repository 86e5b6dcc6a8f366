"""API tester load loop: requests per second of the plugin's load test against a bare
httpx loop to the same local server, in the same run.

A small keep-alive HTTP server (one JSON answer) runs in a child process on 127.0.0.1 so
that it does not share this process's event loop. Then, alternating rounds:

* baseline: ``users`` tasks sharing one ``httpx.AsyncClient`` (a pool of ``users``
  connections), each looping ``await client.get(url)`` until the request budget is used;
* plugin: ``api_tester.load.load_test`` with the same users and budget (the guard-pinned
  address, a Host header, per-request bookkeeping: latency, status, per-second counts).

Each round sends at most ``--requests`` requests (and stops after ``--seconds``), so the
traffic is bounded in count and time and goes to loopback only.

    .venv/bin/python benchmarks/api_tester_load.py [--users 8] [--requests 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "plugins" / "api_tester"))

from api_tester.load import load_test  # noqa: E402
from api_tester.sender import Resolved, guard  # noqa: E402

BODY = b'{"ok": true, "items": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}'
ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
          + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


def serve(port: int) -> None:
    """A keep-alive HTTP/1.1 server that answers every GET with one write, so the figures
    measure the clients and not a server's write pattern (a head and a body written
    apart meet delayed ACKs and cap a loop at ~25 requests/s per connection)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def run() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(run())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def baseline(url: str, users: int, budget: int, seconds: float) -> float:
    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
    left = budget
    done = 0
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def user() -> None:
            nonlocal left, done
            while left > 0 and time.perf_counter() < deadline:
                left -= 1
                response = await client.get(url)
                response.raise_for_status()
                done += 1

        await asyncio.gather(*(user() for _ in range(users)))
        return done / (time.perf_counter() - start)


async def plugin(url: str, users: int, budget: int, seconds: float) -> float:
    target = await guard(url, [])
    result = await load_test(Resolved("GET", url, [], []), target, users=users,
                             duration=seconds, max_requests=budget)
    assert result["errors"] == 0, result
    return float(result["requests"]) / float(result["elapsed_s"])


async def main(args: argparse.Namespace) -> None:
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(port,),
                                                          daemon=True)
    server.start()
    url = f"http://127.0.0.1:{port}/ping"
    try:
        async with asyncio.timeout(20), httpx.AsyncClient(trust_env=False) as probe:
            while True:
                try:
                    (await probe.get(url)).raise_for_status()
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
        await baseline(url, args.users, 200, args.seconds)  # warm-up, not counted
        base_runs, plugin_runs = [], []
        for _ in range(args.rounds):
            base_runs.append(await baseline(url, args.users, args.requests, args.seconds))
            plugin_runs.append(await plugin(url, args.users, args.requests, args.seconds))
    finally:
        server.terminate()
        server.join(5)
    base = statistics.median(base_runs)
    figure = statistics.median(plugin_runs)
    print(f"users {args.users}, {args.requests} requests per round, {args.rounds} rounds "
          "(medians)")
    print(f"bare httpx loop (baseline): {base:8.0f} requests/s  "
          f"runs {[round(r) for r in base_runs]}")
    print(f"api_tester load loop:       {figure:8.0f} requests/s  "
          f"runs {[round(r) for r in plugin_runs]}")
    print(f"ratio plugin/baseline:      {figure / base:8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    asyncio.run(main(parser.parse_args()))
