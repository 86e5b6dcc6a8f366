"""Dashboards: panels (a query and a Vega-Lite spec each), a time range, variables and
auto-refresh; stored as JSON files, imported and exported as JSON.

Panel queries may use macros, expanded on the server before the query is checked:

* ``$__timeFilter(col)``: ``col`` within the dashboard's time range (``TRUE`` for "all");
* ``$__from`` / ``$__to``: the range's ends as ``TIMESTAMP`` literals;
* ``$name`` or ``${name}``: the dashboard variable ``name``, as a SQL literal (text
  quoted with its quotes doubled, numbers as numbers), never as raw SQL.

Time ranges are ``{"from": "now-1h", "to": "now"}`` (``now``, ``now-15m``, ``now-7d``...) or
ISO timestamps; ``{"from": "", "to": ""}`` is all time. Times are the machine's local wall
clock, as a CSV's timestamps and Vega's dates are.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from data_visualizer.charts import check_spec
from data_visualizer.engine import Dataset, field_kind
from plexichat_desktop.plugins.files import write_atomic

__all__ = ["Dashboard", "DashboardError", "DashboardStore", "Panel", "TimeRange", "Variable",
           "expand_sql", "resolve_time", "suggest_dashboard"]

MAX_PANELS = 48
_RELATIVE = re.compile(r"^now(?:-(\d+)([smhdwMy]))?$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MACRO = re.compile(r"\$__timeFilter\(\s*([^()]+?)\s*\)|\$__from\b|\$__to\b|"
                    r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class DashboardError(ValueError):
    """A dashboard (or a part of one) that is not valid; the message names the field."""


class TimeRange(BaseModel):
    """``from``/``to``: ``now``, ``now-<n><s|m|h|d|w|M|y>``, an ISO timestamp, or empty."""

    model_config = {"populate_by_name": True}
    start: str = Field("", alias="from", max_length=40)
    end: str = Field("", alias="to", max_length=40)

    @field_validator("start", "end")
    @classmethod
    def _valid(cls, value: str) -> str:
        resolve_time(value)
        return value


class Variable(BaseModel):
    """A dashboard variable: a value the panels' queries use as ``$name``; ``options``
    (shown as a list) may come from ``query`` (its first column)."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")
    label: str = Field("", max_length=80)
    value: str | float | int | None = None
    query: str = Field("", max_length=10_000)
    options: list[str | float | int] = Field(default_factory=list, max_length=1000)


class Panel(BaseModel):
    """One chart: its query, its Vega-Lite spec, the builder choices that made them (to
    edit them again), where it sits (12-column grid) and whether it streams live rows."""

    id: str = Field(default_factory=lambda: secrets.token_hex(4), pattern=r"^[A-Za-z0-9_-]{1,40}$")
    title: str = Field("", max_length=200)
    sql: str = Field(min_length=1, max_length=200_000)
    spec: dict[str, Any]
    builder: dict[str, Any] | None = None
    width: int = Field(6, ge=1, le=12)
    height: int = Field(260, ge=120, le=1200)
    live: bool = Field(False, description="Append rows streamed from the panel's live source.")
    source: str | None = Field(None, max_length=64)


class Dashboard(BaseModel):
    """A dashboard as stored, exported and imported."""

    id: str = Field(default_factory=lambda: secrets.token_hex(6), pattern=r"^[A-Za-z0-9_-]{1,40}$")
    title: str = Field("Dashboard", min_length=1, max_length=200)
    time_range: TimeRange = Field(default_factory=TimeRange)
    refresh_seconds: int = Field(0, ge=0, le=86_400, description="0 = no auto-refresh.")
    variables: list[Variable] = Field(default_factory=list, max_length=50)
    panels: list[Panel] = Field(default_factory=list, max_length=MAX_PANELS)
    made_for: str | None = Field(None, max_length=48,
                                 description="The dataset a dropped file's dashboard was made for.")
    created: float = Field(default_factory=time.time)
    updated: float = Field(default_factory=time.time)
    format: Literal["plexichat-data-visualizer/1"] = "plexichat-data-visualizer/1"


def parse_dashboard(data: Any) -> Dashboard:
    """A :class:`Dashboard` from JSON data, every spec checked; :class:`DashboardError`
    naming the first bad field (``panels[1].spec.mark: ...``)."""
    if not isinstance(data, dict):
        raise DashboardError(f"body: a dashboard is a JSON object, got {type(data).__name__}")
    try:
        board = Dashboard.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        raise DashboardError(f"{where.lstrip('.') or 'body'}: {first['msg']}") from None
    ids: set[str] = set()
    for i, panel in enumerate(board.panels):
        panel.spec = check_spec(panel.spec, f"panels[{i}].spec")
        if panel.id in ids:
            raise DashboardError(f"panels[{i}].id: {panel.id!r} is used twice")
        ids.add(panel.id)
    names = [v.name for v in board.variables]
    if len(set(names)) != len(names):
        raise DashboardError("variables: a variable name is used twice")
    return board


# -- time and macros -------------------------------------------------------------------
def resolve_time(text: str, now: dt.datetime | None = None) -> dt.datetime | None:
    """A time range end as a naive local datetime (None for an empty one).

    ``now-<n><unit>`` is counted on aware UTC instants and only then shown as the local
    wall clock, so ``now-1h`` is one real hour back even across a daylight-saving change
    (the naive local clock jumps or repeats an hour there). ``M`` and ``y`` step by
    calendar months on the local clock. ``now`` (for tests) may be aware, or naive local.
    """
    text = text.strip()
    if not text:
        return None
    current = dt.datetime.now(dt.UTC) if now is None else now
    match = _RELATIVE.match(text)
    if match:
        amount, unit = match.groups()
        try:
            instant = current.astimezone(dt.UTC)  # a naive ``now`` is local wall time
            if amount is None:
                return _wall(instant)
            n = int(amount)
            if unit in ("M", "y"):
                here = _wall(instant)
                month = here.month - 1 - (n if unit == "M" else 12 * n)
                year = here.year + month // 12
                month = month % 12 + 1
                # The same day of the month, or the month's last day (Mar 31 - 1M = Feb 28).
                day = min(here.day, calendar.monthrange(year, month)[1])
                return here.replace(year=year, month=month, day=day)
            return _wall(instant - dt.timedelta(seconds=n * _UNIT_SECONDS[unit]))
        except (ValueError, OverflowError, OSError, calendar.IllegalMonthError):
            raise ValueError(f"{text!r} reaches before the year 1") from None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not 'now', 'now-<n><s|m|h|d|w|M|y>' or an ISO "
                         "timestamp") from None
    if value.tzinfo is not None:
        try:
            value = value.astimezone().replace(tzinfo=None)
        except OverflowError:  # 9999-12-31T23:59-14:00 is past the year 9999 here
            raise ValueError(f"{text!r} is outside the years 1-9999 in this time "
                             "zone") from None
    return value


def _wall(instant: dt.datetime) -> dt.datetime:
    """An aware instant as the naive local wall clock (how datasets hold times)."""
    return instant.astimezone().replace(tzinfo=None)


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def expand_sql(sql: str, time_range: TimeRange | None = None,
               variables: dict[str, Any] | None = None, *, field_name: str = "sql") -> str:
    """``sql`` with the macros and ``$variables`` replaced (see the module doc);
    :class:`DashboardError` for an unknown variable or a bad time."""
    variables = variables or {}
    try:
        start = resolve_time(time_range.start) if time_range else None
        end = resolve_time(time_range.end) if time_range else None
    except ValueError as exc:
        raise DashboardError(f"time_range: {exc}") from None

    def ts(value: dt.datetime | None, fallback: str) -> str:
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'" if value else f"TIMESTAMP '{fallback}'"

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if text.startswith("$__timeFilter"):
            column = match.group(1)
            parts = []
            if start is not None:
                parts.append(f"{column} >= {ts(start, '')}")
            if end is not None:
                parts.append(f"{column} <= {ts(end, '')}")
            return "(" + " AND ".join(parts) + ")" if parts else "TRUE"
        if text == "$__from":
            return ts(start, "-infinity")
        if text == "$__to":
            return ts(end, "infinity")
        name = match.group(2) or match.group(3)
        if name not in variables:
            raise DashboardError(f"{field_name}: unknown variable ${name} (defined: "
                                 f"{', '.join('$' + v for v in variables) or 'none'})")
        return _literal(variables[name])

    return _MACRO.sub(replace, sql)


# -- storage ---------------------------------------------------------------------------
class DashboardStore:
    """Dashboards as ``<id>.json`` files in one folder (written atomically)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)

    def list(self) -> list[Dashboard]:
        boards = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                boards.append(Dashboard.model_validate_json(path.read_text(encoding="utf-8")))
            except (OSError, ValidationError):
                continue  # a file that is not ours, or damaged by hand: not listed
        return sorted(boards, key=lambda b: -b.updated)

    def get(self, board_id: str) -> Dashboard:
        path = self.folder / f"{board_id}.json"
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", board_id) or not path.exists():
            raise KeyError(board_id)
        return Dashboard.model_validate_json(path.read_text(encoding="utf-8"))

    def save(self, board: Dashboard) -> Dashboard:
        board.updated = time.time()
        write_atomic(self.folder / f"{board.id}.json",
                     board.model_dump_json(by_alias=True, indent=1))
        return board

    def delete(self, board_id: str) -> None:
        self.get(board_id)
        (self.folder / f"{board_id}.json").unlink()


# -- a first dashboard for a dropped file ----------------------------------------------
def suggest_dashboard(dataset: Dataset, build: Any) -> Dashboard:
    """A dashboard for a freshly loaded dataset: a trend of its numbers over its time
    column, counts of its most useful category, the distribution of its first number, a
    scatter or boxplot. ``build(request_dict)`` returns ``{"sql", "spec"}`` (the chart
    builder, bound to the engine); a choice that fails is skipped."""
    columns = dataset.columns
    kinds: dict[str, list[str]] = {"temporal": [], "quantitative": [], "nominal": []}
    for c in columns:
        kinds[field_kind(c["type"])].append(c["name"])
    # Identifiers are numbers nobody wants charted.
    numbers = [n for n in kinds["quantitative"] if not n.lower().endswith("id")]
    numbers = numbers or kinds["quantitative"]
    wanted: list[dict[str, Any]] = []
    if kinds["temporal"] and numbers:
        wanted.append({"type": "line", "x": kinds["temporal"][0], "y": numbers[0],
                       "aggregate": "avg", "width": 12})
    if kinds["nominal"]:
        wanted.append({"type": "bar", "x": kinds["nominal"][0], "aggregate": "count",
                       "limit": 20})
    if numbers:
        wanted.append({"type": "histogram", "x": numbers[0]})
    if len(numbers) >= 2:
        wanted.append({"type": "scatter", "x": numbers[0], "y": numbers[1], "trend": True,
                       "color": kinds["nominal"][0] if kinds["nominal"] else None})
    elif numbers and kinds["nominal"]:
        wanted.append({"type": "boxplot", "x": kinds["nominal"][0], "y": numbers[0]})
    if not wanted and kinds["nominal"]:
        wanted.append({"type": "pie", "x": kinds["nominal"][0], "aggregate": "count"})
    panels = []
    for choice in wanted[:4]:
        width = choice.pop("width", 6)
        request = {"source": dataset.name, "title": _title(choice), **choice}
        try:
            built = build(request)
        except ValueError:
            continue
        panels.append(Panel(title=request["title"], sql=built["sql"], spec=built["spec"],
                            builder=request, width=width, source=dataset.name))
    # A half-width panel alone on the last row of the 12-column grid takes the whole row.
    used = 0
    for panel in panels:
        used = panel.width if used + panel.width > 12 else used + panel.width
    if panels and used == 6:
        panels[-1].width = 12
    return Dashboard(title=f"{dataset.filename}", panels=panels, made_for=dataset.name)


def _title(choice: dict[str, Any]) -> str:
    t = choice["type"]
    if t == "line":
        return f"{choice['aggregate']} {choice['y']} over {choice['x']}"
    if t == "bar":
        return f"rows per {choice['x']}"
    if t == "histogram":
        return f"distribution of {choice['x']}"
    if t == "scatter":
        return f"{choice['y']} against {choice['x']}"
    if t == "boxplot":
        return f"{choice['y']} by {choice['x']}"
    return f"share of {choice['x']}"


def export_json(board: Dashboard) -> str:
    """The dashboard as a portable JSON document."""
    return json.dumps(board.model_dump(mode="json", by_alias=True), indent=2)

