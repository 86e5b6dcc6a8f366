"""One scan end to end: targets -> connect scan (or nmap) -> services -> TLS -> findings.

:func:`run_scan` returns the scan as a JSON-able dict (what the history stores, the page
shows, and :mod:`network_scanner.diff` compares). Closed ports are counted, not listed:
a 65535-port scan keeps only what is open or filtered (up to ``MAX_LISTED``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from network_scanner import findings as rules
from network_scanner.nmap import run_nmap
from network_scanner.ports import compact, parse_ports
from network_scanner.probes import detect
from network_scanner.scanner import CLOSED, OPEN, PortState, connect_scan
from network_scanner.targets import (
    Host,
    Policy,
    RateLimiter,
    Resolver,
    TargetSet,
    resolve_targets,
)
from network_scanner.tls import check_tls

MAX_LISTED = 5000
DETECT_CONCURRENCY = 16


class ScanOptions(BaseModel):
    """What a scan is asked to do (the page's form, a profile's settings)."""

    targets: str = Field("127.0.0.1", max_length=4000)
    ports: str = Field("top100", max_length=10_000)
    concurrency: int = Field(200, ge=1, le=2000)
    connect_timeout: float = Field(1.0, gt=0, le=30)
    probe_timeout: float = Field(2.0, gt=0, le=60)
    detect: bool = True
    tls: bool = True
    backend: Literal["builtin", "nmap"] = "builtin"


@dataclass
class ScanContext:
    """What a scan needs from the plugin: the policy and where its live events go."""

    policy: Policy
    limiter: RateLimiter
    resolver: Resolver
    ca_file: str | None = None
    warn_days: int = 30
    publish: Callable[[str, dict[str, Any]], None] | None = None


Progress = Callable[[float, float, str], None]


@dataclass
class Prepared:
    """A scan's input, checked: the ports and the pinned hosts."""

    options: ScanOptions
    ports: list[int]
    targets: TargetSet


async def prepare(options: ScanOptions, ctx: ScanContext) -> Prepared:
    """Check the ports and targets of ``options`` (names looked up once, here). Raises
    ``PortSpecError`` (422) or ``TargetRefused`` (403/422) before anything is sent."""
    ports = parse_ports(options.ports)
    targets = await resolve_targets(options.targets, ctx.policy, ctx.resolver)
    return Prepared(options, ports, targets)


async def run_scan(prepared: Prepared, ctx: ScanContext, progress: Progress, *,
                   scan_id: str | None = None, profile_id: str | None = None,
                   name: str = "") -> dict[str, Any]:
    """Scan what :func:`prepare` checked, reporting ``progress(done, total, message)``;
    cancel it by cancelling the task."""
    options, ports, targets = prepared.options, prepared.ports, prepared.targets
    scan_id = scan_id or secrets.token_hex(6)
    started = time.time()
    hosts = targets.hosts
    total = len(hosts) * len(ports)
    publish = ctx.publish or (lambda _n, _d: None)
    publish("scan", {"id": scan_id, "state": "running", "hosts": [h.to_dict() for h in hosts],
                     "ports": ports if len(ports) <= 4096 else None,
                     "port_count": len(ports), "name": name, "profile_id": profile_id,
                     "started": started})
    counts = {"open": 0, "closed": 0, "filtered": 0}
    listed: list[dict[str, Any]] = []

    if options.backend == "nmap":
        def nmap_progress(percent: float, task: str) -> None:
            progress(percent * total / 100, total, f"nmap: {task} {percent:.0f}%")

        report = await run_nmap([h.address for h in hosts], compact(ports),
                                timeout=options.connect_timeout, progress=nmap_progress)
        for item in report["ports"]:
            if item["state"] in counts:
                counts[item["state"]] += 1
            if item["state"] != CLOSED:
                listed.append(item)
        counts["closed"] = max(counts["closed"], total - counts["open"] - counts["filtered"])
        batch = [[p["address"], p["port"], p["state"]] for p in report["ports"]]
        publish("ports", {"id": scan_id, "items": batch})
    else:
        done = 0
        pending: list[list[Any]] = []
        last_flush = time.monotonic()

        def flush() -> None:
            nonlocal last_flush
            if pending:
                publish("ports", {"id": scan_id, "items": list(pending)})
                pending.clear()
            last_flush = time.monotonic()

        def on_result(item: PortState) -> None:
            nonlocal done
            done += 1
            counts[item.state] += 1
            pending.append([item.address, item.port, item.state])
            if item.state != CLOSED and len(listed) < MAX_LISTED:
                listed.append({"address": item.address, "port": item.port,
                               "state": item.state, "reason": item.reason,
                               "rtt_ms": item.rtt_ms, "service": None, "tls": None})
            # Batched: one event per 0.1 s (or 500 ports) keeps a 65535-port scan light.
            if len(pending) >= 500 or time.monotonic() - last_flush > 0.1:
                flush()
                progress(done, total, f"connect scan: {done}/{total} ports, "
                                      f"{counts['open']} open")

        progress(0, total, f"connect scan of {len(hosts)} host(s), {len(ports)} ports")
        await connect_scan(hosts, ports, concurrency=options.concurrency,
                           timeout=options.connect_timeout, limiter=ctx.limiter,
                           on_result=on_result)
        flush()
    order = {host.address: index for index, host in enumerate(hosts)}
    listed.sort(key=lambda p: (order.get(p["address"], len(order)), p["port"]))

    open_ports = [p for p in listed if p["state"] == OPEN]
    names = {h.address: h.name for h in hosts}
    if options.detect or options.tls:
        steps = len(open_ports)
        finished_steps = 0
        limit = asyncio.Semaphore(DETECT_CONCURRENCY)
        progress(total, total + steps, f"services: 0/{steps} open ports")

        async def examine(item: dict[str, Any]) -> None:
            nonlocal finished_steps
            async with limit:
                name = names.get(item["address"])
                if options.detect and (options.backend == "builtin" or item["service"] is None):
                    if item["address"] not in _loopbacks(hosts):
                        await ctx.limiter.acquire()
                    item["service"] = (await detect(item["address"], item["port"],
                                                    timeout=options.probe_timeout,
                                                    server_name=name)).to_dict()
                service = item["service"] or {}
                if options.tls and service.get("tls"):
                    if item["address"] not in _loopbacks(hosts):
                        await ctx.limiter.acquire()  # a dozen handshakes follow
                    item["tls"] = (await check_tls(
                        item["address"], item["port"], server_name=name,
                        timeout=options.probe_timeout, warn_days=ctx.warn_days,
                        ca_file=ctx.ca_file)).to_dict()
                finished_steps += 1
                publish("service", {"id": scan_id, "port": item})
                progress(total + finished_steps, total + steps,
                         f"services: {finished_steps}/{steps} open ports")

        async with asyncio.TaskGroup() as group:
            for item in open_ports:
                group.create_task(examine(item))

    found: list[dict[str, Any]] = []
    for item in listed:
        found.extend(f.to_dict() for f in rules.evaluate(item))
    found.sort(key=lambda f: (rules.SEVERITY_ORDER.get(f["severity"], 9), -(f["score"] or 0)))
    finished = time.time()
    return {
        "id": scan_id, "profile_id": profile_id, "name": name, "status": "done",
        "backend": options.backend, "started": started, "finished": finished,
        "duration": round(finished - started, 3),
        "options": options.model_dump(), "targets": options.targets,
        "ports_spec": options.ports, "scanned_ports": compact(ports),
        "port_count": len(ports), "hosts": [h.to_dict() for h in hosts],
        "resolved": targets.resolved, "counts": counts, "ports": listed,
        "truncated": counts["open"] + counts["filtered"] > len(listed),
        "findings": found, "severity": rules.summarize(found),
    }


def _loopbacks(hosts: list[Host]) -> set[str]:
    return {h.address for h in hosts if h.loopback}
