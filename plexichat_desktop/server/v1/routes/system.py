"""``/system``: health, host information and metrics (no auth, as in version B)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sqlite3
import time
from typing import Any

import psutil
from fastapi import APIRouter

from plexichat_desktop import __version__
from plexichat_desktop.server.v1.common import iso, now
from plexichat_desktop.server.v1.deps import Api
from plexichat_desktop.server.v1.store import SCHEMA_VERSION, scalar
from plexichat_desktop.server.v1.webhooks import EVENTS

router = APIRouter(prefix="/system", tags=["system"])

FEATURES = ["auth", "users", "messages", "files", "groups", "search", "notifications",
            "realtime", "webhooks", "analytics", "backup", "performance"]


def _db_ok(conn: sqlite3.Connection) -> bool:
    return scalar(conn, "SELECT 1") == 1


@router.get("/health")
async def health(api: Api) -> dict[str, Any]:
    """``healthy`` when the database answers."""
    try:
        db_ok = await api.store.read(_db_ok)
    except Exception:
        db_ok = False
    return {"status": "healthy" if db_ok else "degraded", "timestamp": iso(now()),
            "uptime": round(time.time() - api.started_at, 3), "version": __version__,
            "checks": {"database": "ok" if db_ok else "failing"}}


@router.get("/info")
async def info(api: Api) -> dict[str, Any]:
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(api.root))
    return {"platform": platform.platform(), "system": platform.system(),
            "python_version": platform.python_version(), "cpu_count": os.cpu_count() or 1,
            "memory_total": memory.total, "disk_total": disk.total, "version": __version__,
            "hostname": platform.node()}


@router.get("/metrics")
async def metrics(api: Api) -> dict[str, Any]:
    """Host figures (psutil); ``/performance/metrics`` has more, for signed-in users."""
    sample = api.perf.sample()
    return {key: sample[key] for key in ("timestamp", "cpu_percent", "memory_percent",
                                         "disk_percent", "network_sent", "network_recv")}


def _summary(conn: sqlite3.Connection, at: float) -> dict[str, Any]:
    files = conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM files").fetchone()
    return {"users": scalar(conn, "SELECT COUNT(*) FROM users WHERE is_active = 1"),
            "sessions": scalar(conn, "SELECT COUNT(*) FROM sessions WHERE "
                                     "refresh_expires > ?", (at,)),
            "messages": scalar(conn, "SELECT COUNT(*) FROM messages WHERE deleted_at IS NULL"),
            "files": files[0], "total_file_size": files[1],
            "groups": scalar(conn, "SELECT COUNT(*) FROM groups")}


@router.get("/status")
async def status(api: Api) -> dict[str, Any]:
    counts = await api.store.read(_summary, now())
    return {"status": "online", "service": "plexichat-v1", "version": __version__,
            "uptime": round(time.time() - api.started_at, 3), "timestamp": iso(now()),
            "database": {"schema_version": SCHEMA_VERSION, "path": api.store.path.name},
            "realtime_connections": len(api.hub.connections), "counts": counts}


@router.get("/version")
async def version() -> dict[str, Any]:
    return {"version": __version__, "api_version": "v1", "build_date": None,
            "environment": "embedded", "features": FEATURES}


@router.get("/ping")
async def ping() -> dict[str, Any]:
    return {"message": "pong", "timestamp": iso(now()), "status": "ok"}


@router.get("/time")
async def server_time() -> dict[str, Any]:
    current = now()
    local = dt.datetime.now().astimezone()
    return {"timestamp": iso(current), "unix": current, "timezone": str(local.tzinfo),
            "utc_offset_seconds": int(local.utcoffset().total_seconds())  # type: ignore[union-attr]
            if local.utcoffset() is not None else 0}


@router.get("/capabilities")
async def capabilities(api: Api) -> dict[str, Any]:
    """What this server supports and its limits, for clients to adapt to."""
    s = api.settings
    return {
        "features": FEATURES,
        "auth": {"scheme": "bearer", "refresh": True, "refresh_rotation": True, "mfa": False,
                 "access_token_ttl": round(s.access_token_minutes * 60),
                 "password_min_length": s.password_min_length},
        "files": {"max_upload_bytes": int(s.max_upload_mb * (1 << 20)),
                  "allowed_types": sorted(api.upload_types)},
        "messages": {"max_length": 10_000, "types": ["text", "markdown", "code"],
                     "client_message_id": True},
        "pagination": {"style": "limit-offset", "fields": ["total", "limit", "offset",
                                                           "has_more"]},
        # What the limiters enforce (0 = off), read from them rather than from the
        # settings: those are what a client runs into.
        "rate_limits": {"login": api.login_limiter.limit,
                        "register": api.register_limiter.limit,
                        "window_seconds": s.rate_limit_window,
                        "requests_per_minute": api.request_limiter.limit,
                        "reactions_per_minute": api.reaction_limiter.limit,
                        "ai_requests_per_minute": s.ai_requests_per_minute,
                        "ai_models_requests_per_minute": s.ai_models_requests_per_minute},
        "ai": {"models_cache_seconds": s.ai_models_cache_seconds,
               "max_tokens": s.ai_max_tokens, "default_model": s.ai_default_model},
        "webhooks": {"events": list(EVENTS), "signature": "hmac-sha256",
                     "max_attempts": s.webhook_max_attempts},
        "realtime": {"websocket": "/api/v1/realtime/ws",
                     "auth": ["query token", "authorization header", "first message"]},
    }


@router.get("/stats/summary")
async def stats_summary(api: Api) -> dict[str, Any]:
    counts = await api.store.read(_summary, now())
    return {**counts, "uptime": round(time.time() - api.started_at, 3),
            "timestamp": iso(now())}
