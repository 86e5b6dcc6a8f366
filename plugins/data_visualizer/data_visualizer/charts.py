"""The chart builder and the spec check.

The builder turns a few choices (type, x, y, colour, aggregate) into two things: the SQL
that DuckDB runs, which does the aggregation, binning and sampling so that only the rows
a chart shows leave the engine (a million-row file becomes a few hundred rows), and a
Vega-Lite spec over that result (``data: {"name": "rows"}``; the page inserts the rows).
The SQL keeps the dashboard macros (``$__timeFilter(col)``), so the same panel follows
the dashboard's time range.

Every spec the plugin stores or renders is checked against the Vega-Lite JSON schema
shipped by the vega-lite npm package (``vega-lite-schema.json``, copied from
``web-src/node_modules/vega-lite/build/`` at the version in the page bundle) plus a few
rules of ours (no ``url`` data: a panel's data is its query).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from data_visualizer.engine import Engine, ident

__all__ = ["CHART_TYPES", "ChartError", "ChartRequest", "SpecError", "build_chart",
           "check_spec", "schema_version"]

SCHEMA_FILE = Path(__file__).with_name("vega-lite-schema.json")
VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
# The vega-lite package the schema file was copied from: the one in the page bundle
# (resources/web/vendor/charts.js names it in its banner; a test keeps them equal).
VEGA_LITE_VERSION = "6.5.0"
CHART_TYPES = ("bar", "line", "area", "scatter", "heatmap", "histogram", "boxplot", "pie")
AGGREGATES = ("count", "sum", "avg", "min", "max", "median", "none")
GRAINS = ("second", "minute", "hour", "day", "week", "month", "year")
_GRAIN_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800,
                  "month": 2_629_746, "year": 31_556_952}
MAX_SPEC_BYTES = 1_000_000


class ChartError(ValueError):
    """A builder choice that cannot make a chart; the message names the field."""


class SpecError(ValueError):
    """A Vega-Lite spec that is not valid; the message names the path in the spec."""


class ChartRequest(BaseModel):
    """What the chart builder is asked for."""

    source: str | None = Field(None, description="A dataset or live source name.")
    sql: str | None = Field(None, description="A base query instead of a source.")
    type: Literal["bar", "line", "area", "scatter", "heatmap", "histogram", "boxplot", "pie"]
    x: str | None = None
    y: str | None = None
    color: str | None = None
    aggregate: Literal["count", "sum", "avg", "min", "max", "median", "none"] = "count"
    bucket: Literal["auto", "none", "second", "minute", "hour", "day", "week", "month",
                    "year"] = "auto"
    bins: int = Field(30, ge=2, le=200)
    limit: int = Field(50, ge=1, le=1000, description="Categories kept (bar, heatmap, pie).")
    max_points: int = Field(5000, ge=10, le=100_000, description="Raw points kept.")
    trend: bool = Field(False, description="Scatter: add a least-squares trend line.")
    title: str = Field("", max_length=200)


# -- the spec check --------------------------------------------------------------------
@lru_cache(maxsize=1)
def _validator() -> Any:
    # jsonschema is imported with the first spec checked: ~45 ms of every app start
    # otherwise.
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema)


def schema_version() -> str:
    """The Vega-Lite version the shipped schema describes."""
    return VEGA_LITE_VERSION


def check_spec(spec: Any, where: str = "spec") -> dict[str, Any]:
    """``spec`` if it is a valid Vega-Lite spec for a panel, else :class:`SpecError`
    naming the path (``spec.encoding.x.type: 'quantitativ' is not valid ...``)."""
    if not isinstance(spec, dict):
        raise SpecError(f"{where}: a Vega-Lite spec is a JSON object, got "
                        f"{type(spec).__name__}")
    size = len(json.dumps(spec))
    if size > MAX_SPEC_BYTES:
        raise SpecError(f"{where}: {size} bytes; at most {MAX_SPEC_BYTES} are accepted")
    for path, node in _nodes(spec, where):
        if isinstance(node, dict) and "url" in node and path.endswith("data"):
            raise SpecError(f"{path}.url: data from a URL is not allowed; a panel's data "
                            "is its query (use data: {\"name\": \"rows\"})")
    schema = str(spec.get("$schema", ""))
    if schema and "vega-lite" not in schema:
        raise SpecError(f"{where}.$schema: {schema!r} is not a Vega-Lite schema")
    if not any(k in spec for k in ("mark", "layer", "facet", "repeat", "concat", "hconcat",
                                   "vconcat")):
        raise SpecError(f"{where}: no mark (and no layer or concat) to draw")
    if "data" not in spec:
        # A panel's data is its query's rows, inserted as the named source "rows".
        spec = {**spec, "data": {"name": "rows"}}
    validator = _validator()
    from jsonschema.exceptions import best_match

    error = best_match(validator.iter_errors(spec))
    if error is not None:
        location = "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                           for p in error.absolute_path)
        message = error.message
        if len(message) > 300:
            message = message[:300] + "..."
        raise SpecError(f"{where}{location}: {message}")
    return spec


def _nodes(value: Any, path: str) -> Any:
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _nodes(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _nodes(item, f"{path}[{i}]")


# -- the builder -----------------------------------------------------------------------
def _lit(value: float) -> str:
    return repr(float(value))


def _grain_for(span_seconds: float, points: int = 240, smallest: str = "second") -> str:
    for grain in GRAINS[GRAINS.index(smallest):]:
        if span_seconds / _GRAIN_SECONDS[grain] <= points:
            return grain
    return "year"


def _nice_step(span: float, bins: int) -> float:
    raw = span / bins if span > 0 else 1.0
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power


def build_chart(engine: Engine, request: ChartRequest, base_expanded: str,
                base_template: str) -> dict[str, Any]:
    """SQL (with the macros of ``base_template`` kept) and a Vega-Lite spec for
    ``request``; ``base_expanded`` is the same base query with macros expanded, used to
    learn the columns and ranges. Raises :class:`ChartError` naming the field."""
    columns = {c["name"]: c for c in engine.columns_of(f"SELECT * FROM ({base_expanded})")}

    def column(name: str | None, field_name: str, *kinds: str) -> dict[str, str]:
        if not name:
            raise ChartError(f"{field_name}: a {request.type} chart needs a column here")
        found = columns.get(name)
        if found is None:
            raise ChartError(f"{field_name}: no column {name!r} (columns: "
                             f"{', '.join(columns) or 'none'})")
        if kinds and found["kind"] not in kinds:
            raise ChartError(f"{field_name}: {name!r} is {found['kind']} "
                             f"({found['type']}); a {request.type} chart needs "
                             f"{' or '.join(kinds)} here")
        return found

    def scalar(sql: str) -> Any:
        result = engine.run(sql, max_rows=1, timeout=30.0)
        return result.rows[0] if result.rows else None

    src = f"({base_template}) AS src"
    t = request.type
    title = request.title or None
    encoding: dict[str, Any] = {}
    spec: dict[str, Any] = {"$schema": VEGA_LITE_SCHEMA, "data": {"name": "rows"}}
    if title:
        spec["title"] = title
    color = column(request.color, "color") if request.color else None
    color_sel = f", {ident(color['name'])}" if color else ""
    if color:
        encoding["color"] = {"field": color["name"], "type": _vl_type(color["kind"])}

    def measure() -> tuple[str, str, str]:
        """(SQL expression, output name, title) of the y measure."""
        if request.aggregate == "count" or (not request.y and request.aggregate != "none"):
            return "count(*)", "count", "count"
        y = column(request.y, "y", "quantitative")
        if request.aggregate == "none":
            return ident(y["name"]), y["name"], y["name"]
        name = f"{request.aggregate}_{y['name']}"
        label = f"{request.aggregate} of {y['name']}"
        return f"{request.aggregate}({ident(y['name'])})", name, label

    def time_filter(col: dict[str, str]) -> str:
        return f" WHERE $__timeFilter({ident(col['name'])})" if col["kind"] == "temporal" else ""

    def x_expr(col: dict[str, str]) -> tuple[str, str | None]:
        """The SELECT expression of x (bucketed when temporal) and the grain."""
        name = ident(col["name"])
        if col["kind"] != "temporal" or request.bucket == "none" or request.aggregate == "none":
            return name, None
        grain: str = request.bucket
        if grain == "auto":
            row = scalar(f"SELECT epoch(max({name})::TIMESTAMP) - epoch(min({name})::TIMESTAMP) "
                         f"FROM ({base_expanded})")
            span = float(row[0]) if row and row[0] is not None else 0.0
            # A DATE column has no time of day: a day is its finest grain.
            grain = _grain_for(span, smallest="day" if col["type"] == "DATE" else "second")
        return f"date_trunc('{grain}', {name}) AS {name}", grain

    if t in ("bar", "line", "area"):
        kinds = ("temporal", "quantitative") if t != "bar" else ()
        x = column(request.x, "x", *kinds)
        expr, out, y_title = measure()
        xsel, grain = x_expr(x)
        where = time_filter(x)
        if request.aggregate == "none":
            sql = (f"SELECT * FROM (SELECT {ident(x['name'])}, {expr}{color_sel} FROM {src}"
                   f"{where}) USING SAMPLE reservoir({request.max_points} ROWS) REPEATABLE (7) "
                   f"ORDER BY {ident(x['name'])}")
        else:
            order = (f"ORDER BY {ident(out)} DESC LIMIT {request.limit}"
                     if t == "bar" and x["kind"] == "nominal" else f"ORDER BY {ident(x['name'])}")
            sql = (f"SELECT {xsel}{color_sel}, {expr} AS {ident(out)} FROM {src}{where} "
                   f"GROUP BY ALL {order}")
        x_enc: dict[str, Any] = {"field": x["name"], "type": _vl_type(x["kind"])}
        if grain:
            x_enc["timeUnit"] = _time_unit(grain)
            x_enc["title"] = f"{x['name']} (per {grain})"
        if t == "bar" and x["kind"] == "nominal":
            x_enc["sort"] = "-y"
            # Level labels read better; Vega hides the ones that would overlap.
            x_enc["axis"] = {"labelAngle": 0, "labelOverlap": True, "labelLimit": 140}
        if t == "bar" and x["kind"] == "temporal":
            x_enc["type"] = "ordinal" if not grain else "temporal"
        encoding["x"] = x_enc
        encoding["y"] = {"field": out, "type": "quantitative", "title": y_title}
        if color and t in ("bar", "area"):
            encoding["y"]["stack"] = "zero"
        encoding["tooltip"] = _tooltip(x_enc, encoding["y"], color)
        spec["mark"] = {"type": t, "tooltip": True} if t == "bar" else {
            "type": t, "point": t == "line" and request.aggregate != "none", "tooltip": True}
        if t == "area":
            spec["mark"]["line"] = True
            spec["mark"]["opacity"] = 0.6
    elif t == "scatter":
        x = column(request.x, "x", "quantitative", "temporal")
        y = column(request.y, "y", "quantitative")
        sql = (f"SELECT * FROM (SELECT {ident(x['name'])}, {ident(y['name'])}{color_sel} "
               f"FROM {src}{time_filter(x)}) USING SAMPLE reservoir({request.max_points} ROWS) "
               "REPEATABLE (7)")
        encoding["x"] = {"field": x["name"], "type": _vl_type(x["kind"]), "scale": {"zero": False}}
        encoding["y"] = {"field": y["name"], "type": "quantitative", "scale": {"zero": False}}
        encoding["tooltip"] = _tooltip(encoding["x"], encoding["y"], color)
        points = {"mark": {"type": "point", "filled": True, "opacity": 0.6, "tooltip": True}}
        if not request.trend:
            spec["mark"] = points["mark"]
        else:
            # Least squares in the page (Vega's regression transform), over the points
            # drawn; one line per colour group.
            regression: dict[str, Any] = {"regression": y["name"], "on": x["name"]}
            if color:
                regression["groupby"] = [color["name"]]
            line_encoding = {k: v for k, v in encoding.items() if k != "tooltip"}
            spec["layer"] = [
                {**points, "encoding": encoding},
                {"transform": [regression], "mark": {"type": "line", "strokeWidth": 2},
                 "encoding": line_encoding}]
            return {"sql": sql, "spec": check_spec(spec)}
    elif t == "histogram":
        x = column(request.x, "x", "quantitative")
        name = ident(x["name"])
        row = scalar(f"SELECT min({name})::DOUBLE, max({name})::DOUBLE FROM ({base_expanded})")
        low = float(row[0]) if row and row[0] is not None else 0.0
        high = float(row[1]) if row and row[1] is not None else 1.0
        if not math.isfinite(high - low):
            raise ChartError(f"x: the values of {x['name']!r} span from {low:g} to {high:g}, "
                             "too wide a range to cut into bins")
        step = _nice_step(high - low, request.bins)
        start = math.floor(low / step) * step
        sql = (f"SELECT {_lit(start)} + floor(({name} - {_lit(start)}) / {_lit(step)}) * "
               f"{_lit(step)} AS bin_start, bin_start + {_lit(step)} AS bin_end{color_sel}, "
               f"count(*) AS count FROM {src} WHERE {name} IS NOT NULL GROUP BY ALL "
               "ORDER BY bin_start")
        encoding["x"] = {"field": "bin_start", "type": "quantitative", "title": x["name"],
                         "bin": {"binned": True, "step": step}}
        encoding["x2"] = {"field": "bin_end"}
        encoding["y"] = {"field": "count", "type": "quantitative", "title": "rows"}
        encoding["tooltip"] = [{"field": "bin_start", "title": "from"},
                               {"field": "bin_end", "title": "to"},
                               {"field": "count", "type": "quantitative"}]
        spec["mark"] = {"type": "bar", "tooltip": True}
    elif t == "heatmap":
        x = column(request.x, "x")
        y = column(request.y, "y")
        value_expr, out, value_title = "count(*)", "count", "count"
        if request.aggregate not in ("count", "none") and request.color:
            value_expr = f"{request.aggregate}({ident(color['name'])})"  # type: ignore[index]
            out = f"{request.aggregate}_{color['name']}"  # type: ignore[index]
            value_title = f"{request.aggregate} of {color['name']}"  # type: ignore[index]
        xsel, grain = x_expr(x)
        sql = (f"SELECT {xsel}, {ident(y['name'])}, {value_expr} AS {ident(out)} FROM {src}"
               f"{time_filter(x)} GROUP BY ALL ORDER BY {ident(out)} DESC "
               f"LIMIT {request.limit * request.limit}")
        x_enc = {"field": x["name"], "type": "ordinal"}
        if grain:
            x_enc["timeUnit"] = _time_unit(grain)
        encoding = {
            "x": x_enc, "y": {"field": y["name"], "type": "ordinal"},
            "color": {"field": out, "type": "quantitative", "title": value_title},
            "tooltip": [{"field": x["name"]}, {"field": y["name"]},
                        {"field": out, "type": "quantitative"}]}
        spec["mark"] = {"type": "rect", "tooltip": True}
    elif t == "boxplot":
        y = column(request.y, "y", "quantitative")
        group_col = column(request.x, "x", "nominal") if request.x else None
        group = ident(group_col["name"]) if group_col else "'all'"
        v = ident(y["name"])
        out_x = group_col["name"] if group_col else "group"
        sql = (f"WITH s AS (SELECT {group} AS g, {v} AS v FROM {src} WHERE {v} IS NOT NULL), "
               "q AS (SELECT g, quantile_cont(v, 0.25) AS q1, median(v) AS q2, "
               "quantile_cont(v, 0.75) AS q3, count(*) AS n FROM s GROUP BY g "
               f"ORDER BY n DESC LIMIT {request.limit}) "
               f"SELECT q.g AS {ident(out_x)}, q1, q2 AS median, q3, n, "
               "min(v) FILTER (WHERE v >= q1 - 1.5 * (q3 - q1)) AS lower, "
               "max(v) FILTER (WHERE v <= q3 + 1.5 * (q3 - q1)) AS upper "
               "FROM s JOIN q ON s.g IS NOT DISTINCT FROM q.g GROUP BY ALL ORDER BY median DESC")
        x_enc = {"field": out_x, "type": "nominal", "sort": None}
        spec["encoding"] = {"x": x_enc}
        spec["layer"] = [
            {"mark": {"type": "rule"}, "encoding": {
                "y": {"field": "lower", "type": "quantitative", "title": y["name"]},
                "y2": {"field": "upper"}}},
            {"mark": {"type": "bar", "size": 18, "tooltip": True}, "encoding": {
                "y": {"field": "q1", "type": "quantitative"}, "y2": {"field": "q3"},
                "tooltip": [{"field": out_x}, {"field": "lower", "type": "quantitative"},
                            {"field": "q1", "type": "quantitative"},
                            {"field": "median", "type": "quantitative"},
                            {"field": "q3", "type": "quantitative"},
                            {"field": "upper", "type": "quantitative"},
                            {"field": "n", "type": "quantitative", "title": "rows"}]}},
            {"mark": {"type": "tick", "color": "white", "size": 18}, "encoding": {
                "y": {"field": "median", "type": "quantitative"}}},
        ]
        spec["description"] = "Box: quartiles; whiskers: 1.5 IQR; outliers not drawn."
        return {"sql": sql, "spec": check_spec(spec)}
    else:  # pie
        x = column(request.x, "x")
        if request.aggregate == "none":
            raise ChartError("aggregate: a pie chart sums its slices; choose count, sum, ...")
        expr, out, y_title = measure()
        slices = min(request.limit, 12)
        keep = max(1, slices - 1)
        cat, rows = ident(x["name"]), f"(SELECT * FROM {src}{time_filter(x)}) AS s"
        # "Other" is the measure over the rows of the categories it holds, not a sum of
        # their measures: an average of 100 in each of four categories summed to 400 (and
        # looked like the largest slice). The ranking's columns have names of their own:
        # the dataset's columns stay unqualified in the measure.
        sql = (f"WITH __pie_rank AS (SELECT __pie_cat, row_number() OVER (ORDER BY "
               f"__pie_value DESC NULLS LAST) AS __pie_rn, count(*) OVER () AS __pie_n "
               f"FROM (SELECT {cat} AS __pie_cat, {expr} AS __pie_value FROM {rows} "
               f"GROUP BY ALL)) "
               f"SELECT CASE WHEN __pie_rn <= {keep} OR __pie_n <= {slices} "
               f"THEN __pie_cat::VARCHAR ELSE 'Other' END AS {cat}, {expr} AS {ident(out)} "
               f"FROM {rows} JOIN __pie_rank ON s.{cat} IS NOT DISTINCT FROM __pie_cat "
               f"GROUP BY ALL ORDER BY {ident(out)} DESC")
        encoding = {
            "theta": {"field": out, "type": "quantitative", "stack": True, "title": y_title},
            "color": {"field": x["name"], "type": "nominal", "sort": {"field": out,
                                                                        "order": "descending"}},
            "order": {"field": out, "type": "quantitative", "sort": "descending"},
            "tooltip": [{"field": x["name"]}, {"field": out, "type": "quantitative"}]}
        spec["mark"] = {"type": "arc", "innerRadius": 40, "tooltip": True}
    spec["encoding"] = encoding
    return {"sql": sql, "spec": check_spec(spec)}


def _vl_type(kind: str) -> str:
    return kind if kind in ("quantitative", "temporal") else "nominal"


def _time_unit(grain: str) -> str:
    return {"second": "yearmonthdatehoursminutesseconds", "minute": "yearmonthdatehoursminutes",
            "hour": "yearmonthdatehours", "day": "yearmonthdate", "week": "yearweek",
            "month": "yearmonth", "year": "year"}[grain]


def _tooltip(x: dict[str, Any], y: dict[str, Any], color: dict[str, str] | None
             ) -> list[dict[str, Any]]:
    tips = [{k: v for k, v in x.items() if k in ("field", "type", "timeUnit", "title")},
            {k: v for k, v in y.items() if k in ("field", "type", "title")}]
    if color:
        tips.append({"field": color["name"], "type": _vl_type(color["kind"])})
    return tips
