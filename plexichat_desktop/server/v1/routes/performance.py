"""``/performance``: current figures, their history and alerts (signed-in users)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query

from plexichat_desktop.server.v1.common import Offset, iso, limit_query, now, page
from plexichat_desktop.server.v1.deps import Api, User

router = APIRouter(prefix="/performance", tags=["performance"])


@router.get("/metrics")
async def metrics(user: User, api: Api) -> dict[str, Any]:
    """Figures now: system, this process, and the API over the last sampling interval."""
    return api.perf.sample()


@router.get("/history")
async def history(
    user: User, api: Api,
    minutes: Annotated[float, Query(gt=0, le=100_000)] = 60,
    limit: Annotated[int, limit_query(100, 1000)] = 100, offset: Offset = 0,
) -> dict[str, Any]:
    """Samples of the last ``minutes``, newest first (kept in memory, not across restarts)."""
    cutoff = iso(now() - minutes * 60) or ""
    samples = [s for s in reversed(api.perf.history) if s["timestamp"] >= cutoff]
    return page("samples", samples[offset: offset + limit], len(samples), limit, offset,
                interval_seconds=api.settings.performance_interval)


@router.get("/alerts")
async def alerts(user: User, api: Api, active_only: bool = False,
                 limit: Annotated[int, limit_query(50, 500)] = 50,
                 offset: Offset = 0) -> dict[str, Any]:
    """Alerts, newest first: a figure above its threshold opens one, dropping back
    resolves it."""
    found = [a for a in reversed(api.perf.alerts) if a["active"] or not active_only]
    return page("alerts", found[offset: offset + limit], len(found), limit, offset,
                active_count=len(api.perf.active), thresholds=api.perf.thresholds)


@router.get("/summary")
async def summary(user: User, api: Api) -> dict[str, Any]:
    """Averages and peaks over the kept history, and the API's figures since start."""
    samples = list(api.perf.history)

    def stats(key: str) -> dict[str, Any]:
        values = [s[key] for s in samples if s.get(key) is not None]
        if not values:
            return {"average": None, "peak": None}
        return {"average": round(sum(values) / len(values), 2), "peak": max(values)}

    return {"samples": len(samples), "interval_seconds": api.settings.performance_interval,
            "cpu_percent": stats("cpu_percent"), "memory_percent": stats("memory_percent"),
            "disk_percent": stats("disk_percent"),
            "api": api.perf.api_figures(max(1.0, time.time() - api.started_at)),
            "active_alerts": len(api.perf.active), "thresholds": api.perf.thresholds,
            "generated_at": iso(now())}
