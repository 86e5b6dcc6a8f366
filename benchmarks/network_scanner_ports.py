"""Network Scanner: 1,000 loopback ports, against nmap -sT (or a bare asyncio loop).

Everything happens on 127.0.0.1: the script opens a few listeners of its own inside the
scanned range (an SSH-like greeter, an HTTP server, a Redis-like responder, a silent
acceptor), then, alternating in each round:

* the scanner's connect scan alone (``network_scanner.scanner.connect_scan``, 200 in
  flight, 1 s timeout);
* a whole scan through the engine without service detection (live events batched, the
  result as the history keeps it);
* a whole scan with service detection and TLS checks of the open ports;
* the baseline: ``nmap -sT -n -Pn -p <ports> 127.0.0.1`` when nmap is installed (and
  ``-sV`` for the detection run), else a bare ``asyncio.open_connection`` loop with the
  same 200 in flight (no bookkeeping at all).

Every way must find the same open ports (checked). Prints the medians, ports per second
and the ratio of each way to the baseline measured in the same run.

    .venv/bin/python benchmarks/network_scanner_ports.py [--rounds 5]

Ports 1-1000 are scanned when this process may bind them (root) and nothing else of
ours needs them; otherwise 1,000 ports around the listeners' own.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT / "plugins" / "network_scanner"))

CONCURRENCY = 200
TIMEOUT = 1.0


def free_low_ports(count: int) -> list[int]:
    """Ports in 1-1000 nobody listens on and we may bind (needs root); [] otherwise."""
    found: list[int] = []
    for port in range(900, 1001):
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            sock.close()
        found.append(port)
        if len(found) == count:
            return found
    return []


async def bare_loop(ports: list[int]) -> set[int]:
    """The baseline without nmap: open_connection with a semaphore, nothing else."""
    limit = asyncio.Semaphore(CONCURRENCY)
    found: set[int] = set()

    async def one(port: int) -> None:
        async with limit:
            try:
                async with asyncio.timeout(TIMEOUT):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
            except (OSError, TimeoutError):
                return
            found.add(port)
            writer.close()

    await asyncio.gather(*(one(p) for p in ports))
    return found


def nmap_scan(ports: str, version: bool) -> set[int]:
    args = ["nmap", "-sT", "-n", "-Pn", "-oX", "-", "-p", ports, "127.0.0.1"]
    if version:
        args.insert(2, "-sV")
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=600).stdout
    from network_scanner.nmap import parse_xml

    return {p["port"] for p in parse_xml(out)["ports"] if p["state"] == "open"}


async def bench(rounds: int) -> int:
    from network_scanner.engine import ScanContext, ScanOptions, prepare, run_scan
    from network_scanner.ports import compact
    from network_scanner.scanner import OPEN, connect_scan
    from network_scanner.targets import Host, Policy, RateLimiter, system_resolver
    from network_scanner.testing import greeter, http_server, listener, redis_server, silent

    low = free_low_ports(4)
    async with AsyncExitStack() as stack:
        socks = []
        for port in low:
            sock = socket.socket()
            sock.bind(("127.0.0.1", port))
            socks.append(sock)
        handlers = [greeter(b"SSH-2.0-OpenSSH_9.6p1\r\n"), http_server("nginx/1.25.3"),
                    redis_server(), silent()]
        opened = [await stack.enter_async_context(listener(h, sock=s if low else None))
                  for h, s in zip(handlers, socks or [None] * 4, strict=True)]
        if low:
            ports = list(range(1, 1001))
        else:
            base = max(1025, min(opened) - 500)
            ports = sorted(set(range(base, base + 1000 - len(opened))) | set(opened))[:1000]
        spec = compact(ports)
        host = Host("127.0.0.1", None, "loopback")
        ctx = ScanContext(Policy.from_entries([]), RateLimiter(0), system_resolver)
        nmap = shutil.which("nmap")
        baseline_name = "nmap -sT" if nmap else "bare asyncio loop"
        print(f"{len(ports)} loopback ports ({spec[:40]}{'...' if len(spec) > 40 else ''}), "
              f"{len(opened)} open listeners of ours, {CONCURRENCY} in flight, "
              f"baseline: {baseline_name}; {rounds} rounds")

        times: dict[str, list[float]] = {"connect scan": [], "engine, no detection": [],
                                         "engine, detection + TLS": [], "baseline": [],
                                         "baseline, -sV": []}
        expected = set(opened)
        for _ in range(rounds):
            t = time.perf_counter()
            results = await connect_scan([host], ports, concurrency=CONCURRENCY,
                                         timeout=TIMEOUT)
            times["connect scan"].append(time.perf_counter() - t)
            got = {r.port for r in results if r.state == OPEN}
            assert expected <= got, (expected, got)
            expected = got  # anything else open on this machine counts for all ways

            for detect, label in ((False, "engine, no detection"),
                                  (True, "engine, detection + TLS")):
                options = ScanOptions(ports=spec, concurrency=CONCURRENCY,
                                      connect_timeout=TIMEOUT, probe_timeout=0.5,
                                      detect=detect, tls=detect)
                t = time.perf_counter()
                scan = await run_scan(await prepare(options, ctx), ctx, lambda *_: None)
                times[label].append(time.perf_counter() - t)
                assert {p["port"] for p in scan["ports"] if p["state"] == OPEN} == got

            t = time.perf_counter()
            base = (await asyncio.to_thread(nmap_scan, spec, False)) if nmap \
                else await bare_loop(ports)
            times["baseline"].append(time.perf_counter() - t)
            assert base == got, (base, got)
            if nmap and not times["baseline, -sV"]:
                # Once: nmap waits out its service probes on the silent listener (several
                # seconds each), so more rounds only lengthen the run.
                t = time.perf_counter()
                await asyncio.to_thread(nmap_scan, spec, True)
                times["baseline, -sV"].append(time.perf_counter() - t)
        # The listeners own (and close) the bound sockets.

    base_median = statistics.median(times["baseline"])
    print(f"{'way':<28}{'median':>10}{'ports/s':>12}{'x baseline':>12}")
    for label, values in times.items():
        if not values:
            continue
        median = statistics.median(values)
        reference = statistics.median(times["baseline, -sV"]) if (
            label.startswith("engine, detection") and times["baseline, -sV"]) else base_median
        name = baseline_name + (", -sV" if label == "baseline, -sV" else "") \
            if label.startswith("baseline") else label
        print(f"{name:<28}{median * 1000:>8.1f}ms{len(ports) / median:>12.0f}"
              f"{median / reference:>11.2f}x")
    if not nmap:
        print("(nmap is not installed: the baseline is a bare asyncio loop, which does no "
              "bookkeeping, sends no live events and detects nothing)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    return asyncio.run(bench(max(1, args.rounds)))


if __name__ == "__main__":
    raise SystemExit(main())
