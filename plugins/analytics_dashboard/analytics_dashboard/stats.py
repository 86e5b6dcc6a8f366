"""Statistics of daily series, in plain Python (a year is 365 points: no numpy needed).

* :func:`percent_change` — the change against a base, ``None`` when the base is 0;
* :func:`moving_average` — trailing mean over ``window`` days;
* :func:`slope` — least-squares change per day;
* :func:`anomalies` — robust z-scores (median and MAD of the days before) with a sentence
  saying why each flagged day stands out;
* :func:`holt_forecast` — Holt's linear exponential smoothing with a 95 % band.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import median
from typing import Any, Literal

#: 1.4826 * MAD estimates the standard deviation of normally distributed data.
MAD_SCALE = 1.4826
#: The usual cut-off for robust z-scores (Iglewicz and Hoaglin).
DEFAULT_THRESHOLD = 3.5
#: The previous days a day is compared with.
BASELINE_DAYS = 28
#: Days of history needed before a day can be judged at all.
MIN_HISTORY = 7
#: Weeks of the same weekday a day is also compared with, and how many are needed.
WEEKS = 8
MIN_SAME_WEEKDAYS = 3
#: The smallest spread used: counts that hardly move (MAD 0) would otherwise make a
#: one-unit wiggle infinitely unusual.
MIN_SCALE = 1.0

Direction = Literal["up", "down", "both"]


def percent_change(current: float | None, previous: float | None) -> float | None:
    """``(current - previous) / previous`` as a fraction (0.25 = +25 %); None when there
    is no base (previous is 0 or unknown), which the page shows as "n/a"."""
    if current is None or previous is None or previous == 0:
        return None
    return (current - previous) / previous


def moving_average(values: Sequence[float], window: int) -> list[float | None]:
    """Trailing mean of the last ``window`` values; None until a full window exists."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    out: list[float | None] = []
    total = 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / window if i >= window - 1 else None)
    return out


def slope(values: Sequence[float]) -> float:
    """Least-squares slope (change per step); 0 for fewer than two values."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x = (n - 1) / 2
    mean_y = sum(values) / n
    sxx = sum((i - mean_x) ** 2 for i in range(n))
    sxy = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    return sxy / sxx


@dataclass(frozen=True)
class Anomaly:
    """A day that stands out from the days before it."""

    date: str
    value: float
    baseline: float          # median of the previous days
    spread: float            # the scale used: max(1.4826 * MAD, MIN_SCALE)
    z: float                 # robust z-score, signed
    direction: Literal["up", "down"]
    history_days: int
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value - round(value)) < 1e-9 else f"{value:,.1f}"


def amount(value: float, unit: str) -> str:
    """``value`` and its plural ``unit``, singular for exactly one ("1 file")."""
    if value != 1:
        return f"{_fmt(value)} {unit}"
    if unit.endswith("ies"):
        unit = unit[:-3] + "y"
    elif unit.endswith(("ches", "shes", "sses")):
        unit = unit[:-2]
    elif unit.endswith("s"):
        unit = unit[:-1]
    return f"1 {unit}"


def _weekday(date: str) -> str:
    try:
        return dt.date.fromisoformat(date).strftime("%a %d %b %Y")
    except ValueError:
        return date


def explain(date: str, value: float, baseline: float, z: float, history: int,
            label: str, threshold: float) -> str:
    """One sentence saying why the day was flagged, for people, not statisticians."""
    if baseline > 0:
        ratio = value / baseline
        if value >= baseline:
            size = (f"{ratio:.1f} times the usual {_fmt(baseline)}" if ratio >= 1.95 else
                    f"{(ratio - 1) * 100:.0f} % above the usual {_fmt(baseline)}")
        else:
            size = f"{(1 - ratio) * 100:.0f} % below the usual {_fmt(baseline)}"
    else:
        size = f"against a usual {_fmt(baseline)}"
    strength = "far outside" if abs(z) >= 2 * threshold else "outside"
    return (f"{_weekday(date)}: {amount(value, label)}, {size} (the median of the "
            f"previous {history} days). That is {abs(z):.1f} robust standard deviations "
            f"{'above' if z > 0 else 'below'} it, {strength} the ±{threshold:g} that counts "
            "as normal.")


def robust_z(value: float, history: Sequence[float]) -> tuple[float, float, float]:
    """``(z, median, spread)`` of ``value`` against ``history``."""
    mid = median(history)
    mad = median(abs(h - mid) for h in history)
    spread = max(MAD_SCALE * mad, MIN_SCALE)
    return (value - mid) / spread, mid, spread


def anomalies(dates: Sequence[str], values: Sequence[float], *, label: str = "events",
              threshold: float = DEFAULT_THRESHOLD, baseline_days: int = BASELINE_DAYS,
              min_history: int = MIN_HISTORY, direction: Direction = "both",
              start: int = 0, weekly: bool = True) -> list[Anomaly]:
    """The days from index ``start`` on whose robust z-score against the (up to)
    ``baseline_days`` days before them is beyond ``threshold`` in ``direction``.

    A day needs ``min_history`` days before it to be judged. The median and the MAD
    ignore one-off spikes in the history, so one bad day does not hide the next one and a
    flat series is never flagged (its spread is at least :data:`MIN_SCALE`).

    ``weekly``: once a day has :data:`MIN_SAME_WEEKDAYS` or more of the same weekday
    before it, it must also stand out against those (up to :data:`WEEKS` of them): a
    quiet Sunday on a server that is always quiet on Sundays is no anomaly.

    The zeros before the first non-zero day are no history: they are the days before
    anything happened (a new community's first two weeks were all flagged as spikes
    against a "usual 0")."""
    if len(dates) != len(values):
        raise ValueError("dates and values differ in length")
    found: list[Anomaly] = []
    first = next((i for i, v in enumerate(values) if v), len(values))
    for i in range(max(start, first + min_history), len(values)):
        history = values[max(first, i - baseline_days):i]
        z, mid, spread = robust_z(values[i], history)
        if abs(z) < threshold:
            continue
        side: Literal["up", "down"] = "up" if z > 0 else "down"
        if direction != "both" and direction != side:
            continue
        same_day = [values[j] for j in range(i - 7, max(-1, i - 7 * WEEKS - 1), -7)
                    if j >= first]
        note = ""
        if weekly and len(same_day) >= MIN_SAME_WEEKDAYS:
            z_week, mid_week, _ = robust_z(values[i], same_day)
            if abs(z_week) < threshold or (z_week > 0) != (z > 0):
                continue
            note = (f" The previous {len(same_day)} {_weekday_name(dates[i])}s agree: "
                    f"usually {_fmt(mid_week)}.")
        found.append(Anomaly(
            date=dates[i], value=values[i], baseline=mid, spread=round(spread, 3),
            z=round(z, 2), direction=side, history_days=len(history),
            explanation=explain(dates[i], values[i], mid, z, len(history), label,
                                threshold) + note))
    return found


def _weekday_name(date: str) -> str:
    try:
        return dt.date.fromisoformat(date).strftime("%A")
    except ValueError:
        return "same weekday"


@dataclass(frozen=True)
class Forecast:
    """Holt's forecast: a point and a 95 % band per future day."""

    values: list[float]
    lower: list[float]
    upper: list[float]
    alpha: float
    beta: float
    sigma: float


def _holt_sse(values: Sequence[float], alpha: float, beta: float) -> tuple[float, float, float]:
    level, trend = values[0], values[1] - values[0]
    sse = 0.0
    for value in values[1:]:
        predicted = level + trend
        error = value - predicted
        sse += error * error
        new_level = alpha * value + (1 - alpha) * predicted
        trend = beta * (new_level - level) + (1 - beta) * trend
        level = new_level
    return sse, level, trend


def holt_forecast(values: Sequence[float], horizon: int, *, floor: float | None = 0.0
                  ) -> Forecast:
    """Forecast ``horizon`` steps with Holt's linear method.

    The smoothing constants are picked on a grid by the smallest one-step-ahead squared
    error; the band is +-1.96 sigma sqrt(1 + sum_j (alpha (1 + j beta))^2), the
    ETS(A,A,N) prediction interval. ``floor`` clips the forecast (counts are never
    negative). Needs at least 4 values (``ValueError`` otherwise)."""
    if len(values) < 4:
        raise ValueError(f"a forecast needs at least 4 days, got {len(values)}")
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")
    best: tuple[float, float, float, float, float] | None = None
    for alpha in (0.1, 0.2, 0.3, 0.5, 0.7, 0.9):
        for beta in (0.01, 0.05, 0.1, 0.2, 0.4):
            sse, level, trend = _holt_sse(values, alpha, beta)
            if best is None or sse < best[0]:
                best = (sse, alpha, beta, level, trend)
    assert best is not None
    sse, alpha, beta, level, trend = best
    sigma = math.sqrt(sse / max(1, len(values) - 3))

    def clip(x: float) -> float:
        return x if floor is None else max(floor, x)

    points, lower, upper = [], [], []
    spread_sum = 1.0
    for h in range(1, horizon + 1):
        if h > 1:
            spread_sum += (alpha * (1 + (h - 1) * beta)) ** 2
        centre = level + h * trend
        half = 1.96 * sigma * math.sqrt(spread_sum)
        points.append(round(clip(centre), 3))
        lower.append(round(clip(centre - half), 3))
        upper.append(round(clip(centre + half), 3))
    return Forecast(points, lower, upper, alpha, beta, round(sigma, 3))
