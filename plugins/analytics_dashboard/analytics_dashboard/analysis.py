"""What the dashboard computes from the v1 analytics API: KPI cards, trends with moving
average, anomalies and forecast, and reports ready for a table and a chart.

Everything goes through ``ctx.api`` (the API integration layer's client, acting as the
signed-in user). The functions take that client so tests and the benchmark can call them
with any client of the same shape.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from analytics_dashboard import stats
from analytics_dashboard.metrics import KPI_KEYS, METRICS, SERIES_KEYS, card, value_of

#: Extra days fetched before a trend's period so its first days have a baseline too, and
#: all the same weekdays the weekly check looks at (with 28, a day of the 7-day view was
#: judged against 4 earlier Sundays and the same day in the 30-day view against 8).
LEAD_DAYS = max(stats.BASELINE_DAYS, 7 * stats.WEEKS)
#: The longest series the v1 API gives (two years; servers from before that change: one).
MAX_SERIES_DAYS = 730
OLD_MAX_SERIES_DAYS = 365
REPORT_CHARTS = {
    # report type: (x column, y columns, mark)
    "activity": ("date", ["messages", "files", "logins", "new_users", "searches"], "line"),
    "files": ("file_type", ["count"], "bar"),
    "messaging": ("hour_utc", ["messages"], "bar"),
    "top_users": ("username", ["messages_sent", "files_uploaded"], "bar"),
}


def default_window(days: int) -> int:
    """The moving average's window: a week, or 3 days for periods under three weeks."""
    return 7 if days >= 21 else 3


async def overview(api: Any, days: int) -> dict[str, Any]:
    """KPI cards for the last ``days`` UTC days, each against the ``days`` before."""
    usage = (await api.analytics.usage(days=days, compare=True)).model_dump(mode="json")
    previous = usage.get("previous") or {}
    return {
        "days": days, "since": usage.get("since"), "previous_since": previous.get("since"),
        "generated_at": usage.get("generated_at"),
        "kpis": [card(key, usage) for key in KPI_KEYS],
        "totals": {"users": (usage.get("users") or {}).get("total"),
                   "messages": (usage.get("messages") or {}).get("total"),
                   "files": (usage.get("files") or {}).get("total"),
                   "file_bytes": (usage.get("files") or {}).get("total_size_bytes"),
                   "webhooks": (usage.get("webhooks") or {}).get("registered")},
    }


async def daily_series(api: Any, keys: Sequence[str], days: int
                       ) -> dict[str, list[dict[str, Any]]]:
    """``{metric key: [{date, count}]}`` over the last ``days`` UTC days (one v1 call)."""
    names = [METRICS[k].series for k in keys]
    # The plain JSON (a raw, scope-checked call): 9 x 365 points through the typed model
    # and back cost more than the analysis itself.
    answer = await api.call("analytics.trends", params={
        "days": days, "metrics": ",".join(n for n in names if n)})
    series = answer["series"]
    return {key: series[METRICS[key].series] for key in keys}


def analyse(key: str, points: Sequence[dict[str, Any]], days: int, *, window: int,
            threshold: float, forecast_days: int, partial_last: bool = True
            ) -> dict[str, Any]:
    """One metric's trend: the last ``days`` of ``points`` (which may start earlier, to
    give the first days a baseline) with moving average, anomalies and forecast; when
    ``points`` hold twice ``days``, each day also carries the value of the same day of
    the previous period (``previous``), and the summary the change against it.
    ``partial_last``: the last point is today, still going, so only a spike counts."""
    metric = METRICS[key]
    dates = [p["date"] for p in points]
    values = [float(p["count"]) for p in points]
    lead = max(0, len(points) - days)
    averages = stats.moving_average(values, window)
    flagged = stats.anomalies(dates, values, label=metric.unit, threshold=threshold,
                              start=lead)
    if partial_last and flagged and flagged[-1].date == dates[-1] \
            and flagged[-1].direction == "down":
        flagged.pop()  # today is not over: being low so far is no drop yet
    by_date = {a.date: a for a in flagged}
    shown = values[lead:]
    before = values[lead - days:lead] if lead >= days else None
    rows = []
    for i in range(lead, len(points)):
        anomaly = by_date.get(dates[i])
        avg = averages[i]
        rows.append({"date": dates[i], "count": values[i],
                     "average": None if avg is None else round(avg, 2),
                     "previous": None if before is None else before[i - lead],
                     "previous_average": None if before is None or averages[i - days] is None
                     else round(averages[i - days] or 0.0, 2),
                     "anomaly": None if anomaly is None else anomaly.direction})
    half = len(shown) // 2
    first, second = sum(shown[:half]), sum(shown[half:])
    per_day = stats.slope(shown)
    mean = sum(shown) / len(shown) if shown else 0.0
    previous_mean = sum(before) / len(before) if before else None
    # A metric whose days do not add up (distinct users) is compared by its average day:
    # its "total" contradicted the card (4 active users, "total 11").
    now, then = ((sum(shown), None if before is None else sum(before)) if metric.summable
                 else (mean, previous_mean))
    result: dict[str, Any] = {
        "key": key, "label": metric.label, "unit": metric.unit, "window": window,
        "points": rows,
        "summary": {
            "summable": metric.summable,
            "total": sum(shown) if metric.summable else None,
            "mean_per_day": round(mean, 2),
            "slope_per_day": round(per_day, 3),
            "first_half": first, "second_half": second,
            "change": None if first == 0 else round((second - first) / first, 4),
            "words": _trend_words(metric.unit, per_day, mean, first, second, len(shown)),
            "previous_total": None if before is None or not metric.summable else sum(before),
            "previous_mean": None if previous_mean is None else round(previous_mean, 2),
            "change_vs_previous": None if then is None else _rounded(
                stats.percent_change(now, then)),
        },
        "anomalies": [a.to_dict() for a in flagged],
        "forecast": [],
    }
    if forecast_days:
        # Today is not over: its count so far would drag the forecast down, so the fit
        # stops at yesterday and the forecast starts with today.
        # Flagged days are replaced by their usual level first: one spike would
        # otherwise bend the level and the trend of every day forecast after it.
        cleaned = [by_date[d].baseline if d in by_date else v
                   for d, v in zip(dates[lead:], shown, strict=True)]
        complete = cleaned[:-1] if partial_last else cleaned
        if len(complete) >= 14:
            predicted = stats.holt_forecast(complete, forecast_days)
            last = dt.date.fromisoformat(dates[-2] if partial_last else dates[-1])
            result["forecast"] = [
                {"date": (last + dt.timedelta(days=h + 1)).isoformat(),
                 "value": predicted.values[h], "lower": predicted.lower[h],
                 "upper": predicted.upper[h]} for h in range(forecast_days)]
            result["forecast_note"] = (
                f"Holt's linear smoothing (alpha {predicted.alpha:g}, beta {predicted.beta:g}) "
                "of the whole days, unusual days counted at their usual level; the band "
                "holds 95 % of days if the recent pattern goes on.")
        else:
            result["forecast_note"] = "A forecast needs at least 14 days: pick a longer period."
    return result


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _trend_words(unit: str, per_day: float, mean: float, first: float, second: float,
                 days: int) -> str:
    if days < 2 or (first == 0 and second == 0):
        return f"No {unit} in this period."
    if first == 0:
        return (f"{stats.amount(second, unit)} in the second half of the period, none in "
                "the first.")
    change = (second - first) / first
    if abs(change) < 0.05:
        return f"Steady: {mean:,.1f} {unit} a day on average."
    direction = "up" if change > 0 else "down"
    return (f"{direction.capitalize()} {abs(change) * 100:.0f} % from the first half of the "
            f"period to the second; the fitted line moves {per_day:+,.2f} {unit} a day.")


async def trends(api: Any, keys: Sequence[str], days: int, *, window: int | None = None,
                 threshold: float = stats.DEFAULT_THRESHOLD, forecast_days: int = 0,
                 compare: bool = True) -> dict[str, Any]:
    """Trends of ``keys`` over ``days`` days. The series fetched reach further back: at
    least :data:`LEAD_DAYS` (a baseline for the first days) and, with ``compare``, the
    whole previous period (day-by-day comparison)."""
    from api_integration_layer.errors import ApiHTTPError

    span = min(MAX_SERIES_DAYS, max(days + LEAD_DAYS, 2 * days if compare else 0))
    try:
        series = await daily_series(api, keys, span)
    except ApiHTTPError as exc:
        if exc.status != 422 or span <= OLD_MAX_SERIES_DAYS:
            raise
        # A server from before trends reached two years: one year is what it gives.
        series = await daily_series(api, keys, OLD_MAX_SERIES_DAYS)
    use = window or default_window(days)
    return {"days": days, "window": use, "threshold": threshold,
            "metrics": {key: analyse(key, series[key], days, window=use,
                                     threshold=threshold, forecast_days=forecast_days)
                        for key in keys}}


async def report(api: Any, report_type: str, days: int) -> dict[str, Any]:
    """A v1 report as columns, rows, summary and what to chart."""
    answer = (await api.analytics.report(report_type, days=days)).model_dump(mode="json")
    x, ys, mark = REPORT_CHARTS.get(report_type, (None, [], "bar"))
    columns = answer.get("columns") or []
    summary = dict(answer.get("summary") or {})
    if report_type == "activity" and "users" in summary:
        # v1 counts new accounts there; the page said "users: 4", the PDF "new users".
        summary["new_users"] = summary.pop("users")
    return {"type": report_type, "title": answer.get("title") or report_type,
            "period_days": answer.get("period_days", days),
            "since": answer.get("since"), "generated_at": answer.get("generated_at"),
            "columns": columns, "rows": answer.get("rows") or [],
            "summary": summary,
            "chart": {"x": x, "y": [c for c in ys if c in columns], "mark": mark}}


async def metric_values(api: Any, keys: Sequence[str], window: int) -> dict[str, float | None]:
    """Each metric's value over the last ``window`` UTC days (today included)."""
    usage = (await api.analytics.usage(days=window)).model_dump(mode="json")
    return {key: value_of(key, usage) for key in keys}


async def gather_series(api: Any, keys: Sequence[str], days: int
                        ) -> dict[str, list[dict[str, Any]]]:
    """:func:`daily_series` for metrics that have one (others are left out)."""
    wanted = [k for k in keys if k in SERIES_KEYS]
    if not wanted:
        return {}
    return await daily_series(api, wanted, days)


__all__ = ["analyse", "daily_series", "default_window", "gather_series",
           "metric_values", "overview", "report", "trends"]
