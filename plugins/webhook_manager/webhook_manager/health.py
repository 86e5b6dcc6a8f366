"""Endpoint health from a webhook's recent deliveries: success rate, p95 response time,
the run of failures and when it last worked."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def percentile(values: list[float], share: float) -> float | None:
    """The ``share`` (0-1) percentile by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def health(webhook: dict[str, Any], deliveries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Figures over ``deliveries`` (newest first, as the API lists them).

    ``success_rate`` counts finished deliveries only (delivered / delivered + failed);
    ``p95_ms`` covers every attempt that got an answer; ``consecutive_failures`` is the
    server's count (it drives auto-disable). ``state``: ``disabled``, ``failing`` (the last
    finished delivery failed), ``healthy``, or ``idle`` (nothing finished yet).
    """
    finished = 0
    delivered = 0
    durations: list[float] = []
    attempts = 0
    last_success = None
    last_outcome = None
    for delivery in deliveries:
        status = delivery.get("status")
        if status in ("delivered", "failed"):
            finished += 1
            if last_outcome is None:
                last_outcome = status
            if status == "delivered":
                delivered += 1
                if last_success is None:
                    last_success = delivery.get("updated_at")
        for attempt in delivery.get("attempts") or []:
            attempts += 1
            if attempt.get("status_code") is not None and attempt.get("duration_ms") is not None:
                durations.append(float(attempt["duration_ms"]))
    p95 = percentile(durations, 0.95)
    if not webhook.get("active", True):
        state = "disabled"
    elif last_outcome == "failed":
        state = "failing"
    elif last_outcome == "delivered":
        state = "healthy"
    else:
        state = "idle"
    return {
        "state": state,
        "success_rate": round(delivered / finished, 4) if finished else None,
        "finished": finished,
        "attempts": attempts,
        "p95_ms": round(p95, 1) if p95 is not None else None,
        "consecutive_failures": webhook.get("consecutive_failures", 0),
        "disable_after": webhook.get("disable_after", 0),
        "last_success_at": last_success,
    }
