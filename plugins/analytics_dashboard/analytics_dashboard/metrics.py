"""The metrics the dashboard knows: where each comes from in the v1 API and how its KPI
card reads.

Each metric has a value over a period (from ``GET /analytics/usage``, whose
``compare=true`` gives the previous period too) and, except the delivery rate, a daily
series (``GET /analytics/trends``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from analytics_dashboard.stats import percent_change

PERIODS = (7, 30, 90, 365)


@dataclass(frozen=True)
class Metric:
    key: str
    label: str                 # card title
    unit: str                  # "messages" in sentences ("412 messages")
    usage_path: tuple[str, str] | None   # (section, field) in /usage; None: computed
    series: str | None         # the /trends metric; None: no daily series
    higher_is_better: bool | None = True   # None: neither (e.g. searches)
    help: str = ""
    # Whether days add up: distinct users of each day do not (4 people active all week
    # are 28 "user-days", not 28 users); such a trend is compared by its daily average.
    summable: bool = True


METRICS: dict[str, Metric] = {m.key: m for m in (
    Metric("active_users", "Active users", "active users", ("users", "active"),
           "active_users", help="users who sent a message, uploaded a file or signed in",
           summable=False),
    Metric("new_users", "New users", "new users", ("users", "new"), "users",
           help="accounts created"),
    Metric("messages", "Messages", "messages", ("messages", "in_period"), "messages",
           help="direct messages sent (deleted ones not counted)"),
    Metric("files", "Files", "files", ("files", "in_period"), "files",
           help="files uploaded"),
    Metric("logins", "Logins", "logins", ("logins", "successful"), "logins",
           help="successful sign-ins"),
    Metric("failed_logins", "Failed logins", "failed logins", ("logins", "failed"),
           "failed_logins", higher_is_better=False,
           help="sign-ins refused (wrong password or unknown user)"),
    Metric("searches", "Searches", "searches", ("searches", "in_period"), "searches",
           higher_is_better=None, help="searches run"),
    Metric("webhook_delivery_rate", "Webhook delivery rate", "webhook delivery rate (%)",
           None, None,
           help="delivered ÷ (delivered + failed) of the period's webhook deliveries; "
                "pending ones are left out"),
    Metric("webhook_failed", "Failed webhook deliveries", "failed deliveries",
           ("webhooks", "failed"), "webhook_failed", higher_is_better=False,
           help="deliveries that gave up after every retry"),
    Metric("notifications", "Notifications", "notifications",
           ("notifications", "in_period"), "notifications", higher_is_better=None,
           help="notifications sent"),
)}
#: The cards of the top row, in order.
KPI_KEYS = ("active_users", "new_users", "messages", "files", "logins", "failed_logins",
            "searches", "webhook_delivery_rate")
#: Metrics with a daily series (trends, anomaly rules).
SERIES_KEYS = tuple(k for k, m in METRICS.items() if m.series)


def delivery_rate(block: Mapping[str, Any]) -> float | None:
    """Percent of settled deliveries that were delivered; None when none settled."""
    delivered = int(block.get("delivered") or 0)
    failed = int(block.get("failed") or 0)
    settled = delivered + failed
    return None if settled == 0 else round(100.0 * delivered / settled, 1)


def value_of(key: str, figures: Mapping[str, Any]) -> float | None:
    """The metric's value in a ``/usage`` answer or its ``previous`` block."""
    metric = METRICS[key]
    if metric.usage_path is None:
        return delivery_rate(figures.get("webhooks") or {})
    section, field = metric.usage_path
    value = (figures.get(section) or {}).get(field)
    return None if value is None else float(value)


def _number(value: float | None, key: str) -> str:
    if value is None:
        return "n/a"
    if key == "webhook_delivery_rate":
        return f"{value:.1f} %"
    return f"{value:,.0f}"


def card(key: str, usage: Mapping[str, Any]) -> dict[str, Any]:
    """One KPI card from a ``/usage?compare=true`` answer: the value, the previous
    period's, the change (a fraction, or percentage points for the rate) and words."""
    metric = METRICS[key]
    current = value_of(key, usage)
    previous_block = usage.get("previous")
    previous = value_of(key, previous_block) if previous_block else None
    if key == "webhook_delivery_rate":
        change = None if current is None or previous is None else round(current - previous, 1)
        change_text = "n/a" if change is None else f"{change:+.1f} pp"
        if current is None:
            why = "no webhook delivery settled in this period"
        elif previous is None:
            why = "no webhook delivery settled in the previous period"
        else:
            why = f"previous period {previous:.1f} %"
    else:
        fraction = percent_change(current, previous)
        change = None if fraction is None else round(fraction, 4)
        if change is None:
            change_text = "n/a"
            why = ("nothing in the previous period to compare with"
                   if previous == 0 else "the previous period is unknown")
        else:
            change_text = (f"{change * 100:+.0f} %" if abs(change) < 10
                           else f"{change + 1:.0f} times")
            why = f"previous period {_number(previous, key)}"
    trend = None if change is None else ("flat" if change == 0 else
                                         "up" if change > 0 else "down")
    good = None
    if trend in ("up", "down") and metric.higher_is_better is not None:
        good = (trend == "up") == metric.higher_is_better
    return {"key": key, "label": metric.label, "help": metric.help, "value": current,
            "value_text": _number(current, key), "previous": previous,
            "previous_text": _number(previous, key), "change": change,
            "change_text": change_text, "trend": trend, "good": good, "why": why}
