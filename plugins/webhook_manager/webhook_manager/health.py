"""Endpoint health from a webhook's recent deliveries: success rate, p95 response time,
the run of failures and when it last worked."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

# "degraded" below this success rate, once at least DEGRADED_AFTER deliveries finished.
DEGRADED_BELOW = 0.9
DEGRADED_AFTER = 5


def percentile(values: list[float], share: float) -> float | None:
    """The ``share`` (0-1) percentile by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def health(webhook: dict[str, Any], deliveries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Figures over ``deliveries`` (newest first, as the API lists them).

    ``success_rate`` counts finished deliveries only (delivered / delivered + failed; a
    failed one that a redelivery delivered is left out);
    ``p95_ms`` covers every attempt that got an answer; ``consecutive_failures`` is the
    server's count (it drives auto-disable). ``state``: ``disabled``; ``retrying`` (the
    newest delivery is still being retried after a failed attempt: "idle" said nothing of
    it); ``failing`` (the last finished delivery failed); ``degraded`` (the last one was
    delivered but fewer than :data:`DEGRADED_BELOW` of at least :data:`DEGRADED_AFTER`
    finished ones were: "healthy" at 54 % misled); ``healthy``; or ``idle`` (nothing
    finished yet).
    """
    finished = 0
    delivered = 0
    durations: list[float] = []
    attempts = 0
    last_success = None
    last_outcome = None
    newest_retrying = None
    deliveries = list(deliveries)
    # A failed delivery sent again successfully (resend, recovery) counts through its
    # redelivery: counted as a failure too, a recovered endpoint looked half broken.
    recovered = {d.get("redelivery_of") for d in deliveries
                 if d.get("redelivery_of") and d.get("status") == "delivered"}
    for delivery in deliveries:
        status = delivery.get("status")
        for attempt in delivery.get("attempts") or []:  # timings: every answered attempt
            attempts += 1
            if attempt.get("status_code") is not None and attempt.get("duration_ms") is not None:
                durations.append(float(attempt["duration_ms"]))
        if status == "failed" and delivery.get("id") in recovered:
            continue
        if newest_retrying is None:  # the newest delivery decides
            newest_retrying = status == "retrying" or (
                status == "pending" and bool(delivery.get("attempts")))
        if status in ("delivered", "failed"):
            finished += 1
            if last_outcome is None:
                last_outcome = status
            if status == "delivered":
                delivered += 1
                if last_success is None:
                    last_success = delivery.get("updated_at")
    p95 = percentile(durations, 0.95)
    rate = delivered / finished if finished else None
    if not webhook.get("active", True):
        state = "disabled"
    elif newest_retrying:
        state = "retrying"
    elif last_outcome == "failed":
        state = "failing"
    elif last_outcome == "delivered":
        state = ("degraded" if rate is not None and finished >= DEGRADED_AFTER
                 and rate < DEGRADED_BELOW else "healthy")
    else:
        state = "idle"
    return {
        "state": state,
        "success_rate": round(rate, 4) if rate is not None else None,
        "finished": finished,
        "attempts": attempts,
        "p95_ms": round(p95, 1) if p95 is not None else None,
        "consecutive_failures": webhook.get("consecutive_failures", 0),
        "disable_after": webhook.get("disable_after", 0),
        "last_success_at": last_success,
    }
