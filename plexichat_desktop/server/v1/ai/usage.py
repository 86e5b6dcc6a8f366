"""AI usage: one row per chat request, and the summaries ``GET /ai/usage`` answers.

A row is written when a request ends, whatever the end: ``ok``, ``error`` (the provider
failed; the tokens are those streamed before the failure) or ``cancelled`` (the client went
away). Token counts are the provider's own when it reports them; otherwise estimated
(``estimated`` = 1, ~4 characters per token) and counted as such in the summary.
"""

from __future__ import annotations

import sqlite3
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from plexichat_desktop.server.v1.common import new_id, now
from plexichat_desktop.server.v1.store import rows

STATUSES = ("ok", "error", "cancelled")


@dataclass
class UsageRecord:
    """One finished request, as it is stored."""

    user_id: str
    provider: str
    model: str
    status: str
    stream: bool
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    latency_ms: float
    first_token_ms: float | None = None
    error: str | None = None
    id: str = ""


def record(conn: sqlite3.Connection, item: UsageRecord) -> str:
    """Insert ``item``; returns its id."""
    item.id = item.id or new_id()
    conn.execute(
        "INSERT INTO ai_usage (id, user_id, provider, model, status, stream, prompt_tokens, "
        "completion_tokens, estimated, latency_ms, first_token_ms, error, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (item.id, item.user_id, item.provider, item.model, item.status, int(item.stream),
         item.prompt_tokens, item.completion_tokens, int(item.estimated),
         round(item.latency_ms, 3), None if item.first_token_ms is None
         else round(item.first_token_ms, 3), (item.error or "")[:500] or None, now()))
    return item.id


def _percentile(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 2)


def _totals(items: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = sorted(r["latency_ms"] for r in items if r["status"] == "ok")
    prompt = sum(r["prompt_tokens"] for r in items)
    completion = sum(r["completion_tokens"] for r in items)
    return {"requests": len(items),
            "ok": sum(r["status"] == "ok" for r in items),
            "errors": sum(r["status"] == "error" for r in items),
            "cancelled": sum(r["status"] == "cancelled" for r in items),
            "prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "estimated_requests": sum(bool(r["estimated"]) for r in items),
            "latency_p50_ms": _percentile(latencies, 50),
            "latency_p95_ms": _percentile(latencies, 95)}


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


def summary(conn: sqlite3.Connection, since: float, user_id: str | None) -> dict[str, Any]:
    """Usage since ``since`` for one user (or everyone with ``user_id`` None): totals, per
    user and model, and per UTC day."""
    where = "a.created_at >= ?"
    params: list[Any] = [since]
    if user_id is not None:
        where += " AND a.user_id = ?"
        params.append(user_id)
    found = rows(conn.execute(
        "SELECT a.*, u.username FROM ai_usage a LEFT JOIN users u ON u.id = a.user_id "
        f"WHERE {where} ORDER BY a.seq", params))
    users: dict[str, list[dict[str, Any]]] = {}
    for row in found:
        users.setdefault(row["user_id"] or "", []).append(row)
    per_user = []
    for uid, items in users.items():
        models: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in items:
            models.setdefault((row["provider"], row["model"]), []).append(row)
        per_user.append({
            "user_id": uid or None, "username": items[0]["username"],
            "totals": _totals(items),
            "models": [{"model": f"{provider}/{model}", "provider": provider,
                        **_totals(group)}
                       for (provider, model), group in sorted(models.items())]})
    per_user.sort(key=lambda u: (-u["totals"]["total_tokens"], u["username"] or ""))
    days: dict[str, list[dict[str, Any]]] = {}
    for row in found:
        days.setdefault(_day(row["created_at"]), []).append(row)
    daily = [{"date": day, **{k: v for k, v in _totals(items).items()
                              if not k.startswith("latency")}}
             for day, items in sorted(days.items())]
    return {"totals": _totals(found), "users": per_user, "daily": daily}
