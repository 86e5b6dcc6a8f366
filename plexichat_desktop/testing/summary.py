"""The dashboard cards, computed once for both dashboards so they always agree.

Both the native panel and the WebUI (resources/web/dashboard/cards.js, which mirrors this
module) show these numbers from the same ``ResultStore.statistics()`` dict: four cards of
pytest's own outcomes, and a note for the rarer ones.
"""

from __future__ import annotations

from typing import Any

CARD_OUTCOMES: dict[str, str] = {
    "passed": "passed", "failed": "failed", "errors": "error", "skipped": "skipped"}
OTHER_OUTCOMES = ("xfailed", "xpassed", "timed_out", "crashed", "not_run")
OUTCOME_WORDS = {"timed_out": "timed out", "not_run": "not run"}


def summary_cards(stats: dict[str, Any]) -> dict[str, Any]:
    """Cards from a statistics dict: total, passed, failed, errors, skipped, success_rate
    (0..1 or None), mean_duration (s or None), p95_duration, flaky_rate, runs, and
    ``others`` ({outcome: count} of the outcomes without a card, zeros left out)."""
    counts: dict[str, int] = stats.get("counts", {})
    cards: dict[str, Any] = {"total": int(stats.get("total", 0))}
    for card, outcome in CARD_OUTCOMES.items():
        cards[card] = int(counts.get(outcome, 0))
    cards["others"] = {o: int(counts[o]) for o in OTHER_OUTCOMES if counts.get(o)}
    for key in ("success_rate", "mean_duration", "p95_duration", "flaky_rate"):
        cards[key] = stats.get(key)
    cards["runs"] = int(stats.get("runs", 0))
    return cards


def outcome_word(outcome: str) -> str:
    return OUTCOME_WORDS.get(outcome, outcome)
