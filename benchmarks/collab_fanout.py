"""Collaboration fan-out latency: one editor's update until every other client has it,
against a bare WebSocket relay measured in the same run.

Starts ``plexichat-desktop serve`` in a child process on a loopback port (its own temporary
home), registers ``--clients`` users, makes one collaboration session they all join, and
connects each user's pycrdt document to the session's socket (y-websocket protocol, after
a ticket). Then, round after round, client 0 types a few characters; the latency of a
round is the time from sending that update until the *last* of the other clients has
applied it (its text shows the round's marker). Rounds are sequential.

The baseline is the same clients, the same updates and the same client-side work (each
receiver applies the update to its own pycrdt document) through a bare relay: a
``websockets`` server in another child process that sends every message to every other
socket (``websockets.broadcast``), with no auth, no CRDT, no storage. The ratio is what the
embedded server adds: FastAPI/uvicorn's WebSocket stack, applying the update to the
session's document, the viewer/size/rate checks and the SQLite write that comes before
the relay (an update is stored before anyone sees it).

    .venv/bin/python benchmarks/collab_fanout.py [--clients 10] [--rounds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection, connect

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.api_v1_server import PASSWORD, start_server, stop_server  # noqa: E402
from plexichat_desktop.server.v1.collab import (  # noqa: E402
    MSG_SYNC,
    SYNC_STEP1,
    SYNC_STEP2,
    SYNC_UPDATE,
    Reader,
    sync_message,
)

RELAY = """
import asyncio
from websockets.asyncio.server import broadcast, serve

peers = set()

async def handler(ws):
    peers.add(ws)
    try:
        async for message in ws:
            broadcast([p for p in peers if p is not ws], message)
    finally:
        peers.discard(ws)

async def main():
    async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


class Client:
    """One pycrdt document on one socket; records when a marker first shows up."""

    def __init__(self, ws: ClientConnection):
        self.ws = ws
        self.doc: Doc[Any] = Doc()
        self.text = self.doc.get("content", type=Text)
        self.synced = asyncio.Event()
        self.wanted: str | None = None
        self.arrived: asyncio.Future[float] | None = None
        self.reader = asyncio.create_task(self._read())

    def expect(self, marker: str) -> asyncio.Future[float]:
        self.wanted = marker
        self.arrived = asyncio.get_running_loop().create_future()
        return self.arrived

    async def _read(self) -> None:
        async for message in self.ws:
            if not isinstance(message, bytes) or message[:1] != bytes([MSG_SYNC]):
                continue  # awareness: not part of this measurement
            reader = Reader(message[1:])
            step, payload = reader.uint(), reader.bytes()
            if step == SYNC_STEP1:
                await self.ws.send(sync_message(SYNC_STEP2, self.doc.get_update(payload)))
                continue
            self.doc.apply_update(payload)
            if step == SYNC_STEP2:
                self.synced.set()
            if (self.wanted is not None and self.arrived is not None
                    and not self.arrived.done() and self.wanted in str(self.text)):
                self.arrived.set_result(time.perf_counter())

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


async def measure(clients: list[Client], rounds: int, warmup: int) -> list[float]:
    """Latency of each round: client 0's update until all the others have applied it."""
    editor, others = clients[0], clients[1:]
    latencies = []
    for n in range(warmup + rounds):
        marker = f"<{n}>"
        before = editor.doc.get_state()
        editor.text.insert(len(str(editor.text)), marker)
        update = editor.doc.get_update(before)
        waits = [c.expect(marker) for c in others]
        started = time.perf_counter()
        await editor.ws.send(sync_message(SYNC_UPDATE, update))
        async with asyncio.timeout(30):
            arrived = await asyncio.gather(*waits)
        if n >= warmup:
            latencies.append(max(arrived) - started)
    return latencies


async def embedded(base: str, n: int, rounds: int, warmup: int) -> list[float]:
    async with httpx.AsyncClient(base_url=base + "/api/v1", timeout=60) as http:
        tokens = []
        for i in range(n):
            name = f"collab{i:02d}"
            r = await http.post("/auth/register", json={
                "username": name, "email": f"{name}@bench.example", "password": PASSWORD})
            r.raise_for_status()
            r = await http.post("/auth/login", json={"username": name, "password": PASSWORD})
            r.raise_for_status()
            tokens.append({"Authorization": f"Bearer {r.json()['access_token']}"})
        r = await http.post("/collaboration/sessions", headers=tokens[0], json={
            "title": "fan-out", "initial_content": "start", "max_users": n})
        r.raise_for_status()
        sid = r.json()["session_id"]
        clients = []
        for i, headers in enumerate(tokens):
            if i:
                (await http.post(f"/collaboration/sessions/{sid}/join", headers=headers,
                                 json={})).raise_for_status()
            ticket = (await http.post(f"/collaboration/sessions/{sid}/ticket",
                                      headers=headers)).json()
            ws = await connect(base.replace("http://", "ws://") + ticket["ws_path"],
                               max_size=None)
            client = Client(ws)
            await ws.send(sync_message(SYNC_STEP1, client.doc.get_state()))
            await asyncio.wait_for(client.synced.wait(), 30)
            clients.append(client)
        try:
            return await measure(clients, rounds, warmup)
        finally:
            for client in clients:
                await client.close()


async def relay(port: int, n: int, rounds: int, warmup: int) -> list[float]:
    clients = [Client(await connect(f"ws://127.0.0.1:{port}/", max_size=None))
               for _ in range(n)]
    try:
        return await measure(clients, rounds, warmup)
    finally:
        for client in clients:
            await client.close()


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return statistics.median(ordered) * 1000, p95 * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    relay_proc = subprocess.Popen([sys.executable, "-c", RELAY], stdout=subprocess.PIPE,
                                  text=True)
    assert relay_proc.stdout is not None
    relay_port = int(relay_proc.stdout.readline())
    with tempfile.TemporaryDirectory(prefix="plexichat-bench-") as tmp:
        env = {**os.environ, "PLEXICHAT_DESKTOP_HOME": tmp,
               "PLEXICHAT_DESKTOP_API__LOGIN_RATE_LIMIT": "0",
               "PLEXICHAT_DESKTOP_API__REGISTER_RATE_LIMIT": "0",
               "PLEXICHAT_DESKTOP_API__REQUESTS_PER_MINUTE": "0",
               "PLEXICHAT_DESKTOP_API__SCRYPT_COST": "4"}
        env.pop("PLEXICHAT_DESKTOP_PLUGINS_PATH", None)
        proc, url = start_server(env)
        try:
            # Baseline first and last, embedded in between: drift hits both alike.
            base_a = asyncio.run(relay(relay_port, args.clients, args.rounds // 2,
                                       args.warmup))
            ours = asyncio.run(embedded(url.rstrip("/"), args.clients, args.rounds,
                                        args.warmup))
            base_b = asyncio.run(relay(relay_port, args.clients, args.rounds - args.rounds // 2,
                                       args.warmup))
        finally:
            stop_server(proc)
            relay_proc.terminate()
            relay_proc.wait(10)
    baseline = base_a + base_b
    b50, b95 = summary(baseline)
    o50, o95 = summary(ours)
    print(f"clients: {args.clients} (1 editor, {args.clients - 1} receivers), "
          f"{args.rounds} rounds after {args.warmup} warm-up, {os.cpu_count()} cores shared "
          f"by clients and servers; latency = editor's send until the last receiver applied")
    print(f"{'path':44} {'median ms':>10} {'p95 ms':>8}")
    print(f"{'baseline: bare websockets relay':44} {b50:10.3f} {b95:8.3f}")
    print(f"{'/api/v1/collaboration/ws (pycrdt + SQLite)':44} {o50:10.3f} {o95:8.3f}")
    print(f"ratio embedded/baseline: median {o50 / b50:.2f}x, p95 {o95 / b95:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
