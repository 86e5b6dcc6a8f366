"""Time to the first streamed token of an AI answer: through the v1 API vs in process.

A real app core (the embedded v1 API on 127.0.0.1, temporary home) serves
``POST /api/v1/ai/chat`` with ``stream: true``. Three ways to get the first token of the
built-in provider's answer (``builtin/plexi-echo``, a 40-word prompt), alternating in each
round so that drift hits all of them alike:

* direct (the baseline): ``BuiltinProvider.stream()`` called in this process, until its first
  piece with text; no HTTP, no auth, no SSE;
* HTTP + SSE: httpx (one kept-alive connection), from sending the request to the first
  ``data:`` line carrying text (token check, limits, model resolution, the usage row of the
  previous answer, SSE framing, uvicorn);
* client layer: ``ApiClient.ai.chat_stream()`` of the API integration layer, to its first
  delta with text (its rate limiter, token handling, parsing into models).

For reference, a whole authenticated ``GET /api/v1/users/me`` is timed too: what any
request of the API costs on this machine, of which the first token's time is mostly made.

Prints the median and p90 of each over ``--rounds`` and their ratio to the direct call
measured in the same run. The server runs in this process too (one event loop), as it does
in the desktop app.

    .venv/bin/python benchmarks/ai_first_token.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "plugins" / "api_integration_layer"))

PROMPT = " ".join(f"word{i}" for i in range(40))
MODEL = "builtin/plexi-echo"


async def direct_first_token() -> float:
    from plexichat_desktop.server.v1.ai.builtin import BuiltinProvider
    from plexichat_desktop.server.v1.ai.providers import ChatMessage, ChatParams

    provider = BuiltinProvider()
    params = ChatParams("plexi-echo", [ChatMessage("user", PROMPT)], 1024)
    started = time.perf_counter()
    pieces = provider.stream(params)
    try:
        async for delta in pieces:
            if delta.content:
                return time.perf_counter() - started
    finally:
        await pieces.aclose()  # type: ignore[attr-defined]
    raise RuntimeError("the built-in provider produced no text")


async def http_first_token(http: httpx.AsyncClient, url: str, token: str) -> float:
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
    started = time.perf_counter()
    async with http.stream("POST", url, json=body,
                           headers={"Authorization": f"Bearer {token}"}) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(f"{response.status_code} {response.text}")
        lines = response.aiter_lines()
        async for line in lines:
            if line.startswith("data: ") and '"content":"word' in line:
                elapsed = time.perf_counter() - started
                break
        else:
            raise RuntimeError("no token in the stream")
        async for _rest in lines:
            pass  # read to the end: the connection is reused by the next round
    return elapsed


async def client_first_token(client: object) -> float:
    import contextlib

    started = time.perf_counter()
    stream = client.ai.chat_stream(PROMPT, model=MODEL)  # type: ignore[attr-defined]
    async with contextlib.aclosing(stream) as deltas:
        async for delta in deltas:
            if delta.content:
                elapsed = time.perf_counter() - started
                break
        else:
            raise RuntimeError("no token from the client")
        async for _rest in deltas:
            pass
    return elapsed


async def http_round_trip(http: httpx.AsyncClient, url: str, token: str) -> float:
    """A whole authenticated GET of the v1 API: what any request costs, for reference."""
    started = time.perf_counter()
    response = await http.get(url, headers={"Authorization": f"Bearer {token}"})
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code} {response.text}")
    return elapsed


def summary(name: str, values: list[float], baseline: float | None) -> str:
    ordered = sorted(values)
    median = statistics.median(ordered)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    ratio = "" if baseline is None else f"{median / baseline:10.1f}x"
    return f"{name:34} {median * 1e3:10.3f} {p90 * 1e3:10.3f} {ratio}"


async def bench(rounds: int) -> int:
    from api_integration_layer.testing import embedded_server

    with tempfile.TemporaryDirectory() as home:
        async with embedded_server(Path(home), ai_requests_per_minute=0,
                                   requests_per_minute=0) as server:
            client = await server.account("bench")
            token = client.session.tokens.access_token  # type: ignore[union-attr]
            url = server.base_url + "/ai/chat"
            ways: dict[str, Callable[[], Awaitable[float]]] = {}
            async with httpx.AsyncClient(timeout=30) as http:
                ways = {
                    "direct (in process)": direct_first_token,
                    "HTTP + SSE (httpx)": lambda: http_first_token(http, url, token),
                    "client layer (chat_stream)": lambda: client_first_token(client),
                    "reference: GET /users/me (httpx)": lambda: http_round_trip(
                        http, server.base_url + "/users/me", token),
                }
                for way in ways.values():  # warm up: app build, imports, connections
                    for _ in range(3):
                        await way()
                times: dict[str, list[float]] = {name: [] for name in ways}
                for _ in range(rounds):
                    for name, way in ways.items():
                        times[name].append(await way())
    baseline = statistics.median(times["direct (in process)"])
    print(f"time to the first streamed token of {MODEL}, {rounds} rounds "
          f"(ms; ratio = median / direct median)")
    print(f"{'way':34} {'median':>10} {'p90':>10} {'ratio':>11}")
    for name, values in times.items():
        print(summary(name, values, None if name.startswith("direct") else baseline))
    http_ratio = statistics.median(times["HTTP + SSE (httpx)"]) / baseline
    print(f"ratio HTTP+SSE / direct: {http_ratio:.1f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="measurements per way")
    args = parser.parse_args()
    return asyncio.run(bench(max(1, args.rounds)))


if __name__ == "__main__":
    raise SystemExit(main())
