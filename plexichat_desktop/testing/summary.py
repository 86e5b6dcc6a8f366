"""The dashboard cards, computed once for both dashboards so they always agree.

Both the native panel and the WebUI show these numbers from the same
``ResultStore.statistics()`` dict; this is the one place that folds pytest's outcomes into
the five cards a person reads.
"""

from __future__ import annotations

from typing import Any

CARD_OUTCOMES: dict[str, tuple[str, ...]] = {
    "passed": ("passed", "xfailed", "xpassed"),
    "failed": ("failed", "timed_out", "crashed"),
    "errors": ("error",),
    "skipped": ("skipped", "not_run"),
}


def summary_cards(stats: dict[str, Any]) -> dict[str, Any]:
    """Cards from a statistics dict: total, passed, failed, errors, skipped (these four
    add up to total), success_rate (0..1 or None), mean_duration (s or None), flaky_rate
    and runs."""
    counts: dict[str, int] = stats.get("counts", {})
    cards: dict[str, Any] = {"total": int(stats.get("total", 0))}
    for card, outcomes in CARD_OUTCOMES.items():
        cards[card] = sum(int(counts.get(o, 0)) for o in outcomes)
    cards["success_rate"] = stats.get("success_rate")
    cards["mean_duration"] = stats.get("mean_duration")
    cards["flaky_rate"] = stats.get("flaky_rate")
    cards["runs"] = int(stats.get("runs", 0))
    return cards
