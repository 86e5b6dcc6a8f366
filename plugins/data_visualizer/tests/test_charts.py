"""The chart builder (SQL that DuckDB runs, a Vega-Lite spec that passes the schema) and the
spec check; dashboards' macros, validation and storage."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from data_visualizer.charts import (
    SCHEMA_FILE,
    ChartError,
    ChartRequest,
    SpecError,
    build_chart,
    check_spec,
    schema_version,
)
from data_visualizer.dashboards import (
    DashboardError,
    DashboardStore,
    TimeRange,
    expand_sql,
    parse_dashboard,
    resolve_time,
    suggest_dashboard,
)
from data_visualizer.engine import Engine

Write = Callable[[str, str | bytes], Path]
ROWS = 2000
PLUGIN_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    folder = tmp_path_factory.mktemp("charts")
    lines = ["ts,region,units,price"]
    start = dt.datetime(2026, 1, 1)
    for i in range(ROWS):
        region = ("north", "south", "east")[i % 3]
        lines.append(f"{start + dt.timedelta(hours=i):%Y-%m-%d %H:%M:%S},{region},"
                     f"{i % 10},{(i % 7) * 1.5}")
    (folder / "orders.csv").write_text("\n".join(lines) + "\n")
    engine = Engine(folder / "ws")
    engine.load(folder / "orders.csv", "orders.csv", "orders", "csv")
    yield engine
    engine.close()


def build(engine: Engine, **choice: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    request = ChartRequest.model_validate({"source": "orders", **choice})
    base = "SELECT * FROM orders"
    built = build_chart(engine, request, base, base)
    result = engine.run(expand_sql(built["sql"]))
    names = [c["name"] for c in result.columns]
    return built, [dict(zip(names, row, strict=True)) for row in result.rows]


def test_bar_sums_per_category_in_duckdb(engine: Engine) -> None:
    built, rows = build(engine, type="bar", x="region", y="units", aggregate="sum")
    expected = {r: sum(i % 10 for i in range(ROWS) if ("north", "south", "east")[i % 3] == r)
                for r in ("north", "south", "east")}
    assert {r["region"]: r["sum_units"] for r in rows} == expected
    assert built["spec"]["mark"]["type"] == "bar"
    assert built["spec"]["encoding"]["y"]["field"] == "sum_units"


def test_line_over_time_is_bucketed_to_a_readable_number_of_points(engine: Engine) -> None:
    built, rows = build(engine, type="line", x="ts", y="price", aggregate="avg")
    assert "date_trunc('day'" in built["sql"]  # 2000 hours -> days, not 2000 points
    assert len(rows) == (ROWS + 23) // 24
    assert "$__timeFilter(\"ts\")" in built["sql"]  # follows a dashboard's time range
    assert built["spec"]["encoding"]["x"]["type"] == "temporal"


def test_a_pies_other_slice_is_the_measure_of_its_rows(engine: Engine) -> None:
    """Audit: "Other" summed the measures of the categories it holds: with avg, four
    categories of ~100 each made an "Other" of ~400, the largest slice."""
    units = {u: [(i % 7) * 1.5 for i in range(ROWS) if i % 10 == u] for u in range(10)}
    avg = {u: sum(v) / len(v) for u, v in units.items()}
    ranked = sorted(avg, key=lambda u: -avg[u])
    top, rest = ranked[:3], ranked[3:]
    _, rows = build(engine, type="pie", x="units", y="price", aggregate="avg", limit=4)
    got = {r["units"]: r["avg_price"] for r in rows}
    others = [p for u in rest for p in units[u]]
    assert set(got) == {*(str(u) for u in top), "Other"}
    assert got["Other"] == pytest.approx(sum(others) / len(others))
    for u in top:
        assert got[str(u)] == pytest.approx(avg[u])
    # Counts and sums still add up; as many categories as slices: no "Other" at all.
    _, rows = build(engine, type="pie", x="units", aggregate="count", limit=4)
    assert sum(r["count"] for r in rows) == ROWS
    _, rows = build(engine, type="pie", x="region", y="units", aggregate="max", limit=3)
    assert {r["region"] for r in rows} == {"north", "south", "east"}


def test_histogram_bins_count_every_row(engine: Engine) -> None:
    _, rows = build(engine, type="histogram", x="price", bins=10)
    assert sum(r["count"] for r in rows) == ROWS
    assert all(r["bin_end"] > r["bin_start"] for r in rows)


def test_scatter_is_sampled_and_other_types_build(engine: Engine) -> None:
    _, rows = build(engine, type="scatter", x="units", y="price", max_points=100)
    assert len(rows) == 100
    built, _ = build(engine, type="scatter", x="units", y="price", color="region", trend=True)
    regression = built["spec"]["layer"][1]["transform"][0]
    assert regression == {"regression": "price", "on": "units", "groupby": ["region"]}
    _, rows = build(engine, type="heatmap", x="region", y="units")
    assert sum(r["count"] for r in rows) == ROWS
    _, rows = build(engine, type="boxplot", x="region", y="price")
    assert {r["region"] for r in rows} == {"north", "south", "east"}
    assert all(r["lower"] <= r["q1"] <= r["median"] <= r["q3"] <= r["upper"] for r in rows)
    _, rows = build(engine, type="pie", x="region", aggregate="count")
    assert sum(r["count"] for r in rows) == ROWS
    built, rows = build(engine, type="area", x="ts", y="units", aggregate="sum",
                        color="region", bucket="month")
    assert built["spec"]["mark"]["type"] == "area" and len(rows) == 3 * 3


@pytest.mark.parametrize(("choice", "words"), [
    ({"type": "bar", "x": "nope"}, "x: no column 'nope'"),
    ({"type": "histogram", "x": "region"}, "x: 'region' is nominal"),
    ({"type": "scatter", "x": "units"}, "y: a scatter chart needs a column"),
    ({"type": "pie", "x": "region", "aggregate": "none"}, "aggregate:"),
])
def test_impossible_choices_name_the_field(engine: Engine, choice: dict[str, Any],
                                           words: str) -> None:
    with pytest.raises(ChartError, match=words):
        build(engine, **choice)


def test_the_schema_is_the_one_of_the_vega_lite_in_the_page_bundle() -> None:
    repo = PLUGIN_ROOT.parents[1]
    bundle = repo / "resources" / "web" / "vendor" / "charts.js"
    if not bundle.exists():
        pytest.skip("the app's vendored chart bundle is not next to this plugin")
    with bundle.open(encoding="utf-8") as handle:
        banner = handle.readline()
    assert f"vega-lite {schema_version()}," in banner
    source = repo / "web-src" / "node_modules" / "vega-lite" / "build" / "vega-lite-schema.json"
    if source.exists():  # only where the bundle's npm packages are installed
        assert source.read_bytes() == SCHEMA_FILE.read_bytes()


def test_the_spec_check_uses_the_vega_lite_schema() -> None:
    assert json.loads(SCHEMA_FILE.read_text())["$schema"].startswith("http://json-schema.org")
    good = {"data": {"name": "rows"}, "mark": "bar",
            "encoding": {"x": {"field": "a", "type": "nominal"}}}
    assert check_spec(good) is good
    with pytest.raises(SpecError, match=r"^spec\.encoding\.x\.type: 'quantitativ'"):
        check_spec({"mark": "bar", "encoding": {"x": {"field": "a", "type": "quantitativ"}}})
    with pytest.raises(SpecError, match=r"^spec: a Vega-Lite spec is a JSON object"):
        check_spec([1, 2])
    with pytest.raises(SpecError, match="no mark"):
        check_spec({"data": {"name": "rows"}})
    with pytest.raises(SpecError, match=r"spec\.data\.url: data from a URL is not allowed"):
        check_spec({"data": {"url": "https://example.org/x.csv"}, "mark": "bar"})
    with pytest.raises(SpecError, match=r"\$schema"):
        check_spec({"$schema": "https://vega.github.io/schema/vega/v6.json", "marks": []})


# -- dashboards ------------------------------------------------------------------------
def test_relative_times_count_real_hours_across_daylight_saving(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    if not hasattr(time, "tzset"):
        pytest.skip("needs time.tzset to switch the zone")
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        # 29 March 2026: clocks go from 02:00 CET to 03:00 CEST (01:00 UTC).
        after = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)       # 03:30 CEST
        assert resolve_time("now", after) == dt.datetime(2026, 3, 29, 3, 30)
        assert resolve_time("now-1h", after) == dt.datetime(2026, 3, 29, 1, 30)   # CET
        assert resolve_time("now-90m", after) == dt.datetime(2026, 3, 29, 1, 0)
        assert resolve_time("now-1h", dt.datetime(2026, 3, 29, 3, 30)) == dt.datetime(
            2026, 3, 29, 1, 30)                                      # a naive local now
        # 25 October 2026: 03:00 CEST back to 02:00 CET (01:00 UTC).
        later = dt.datetime(2026, 10, 25, 1, 30, tzinfo=dt.UTC)      # 02:30 CET
        assert resolve_time("now-1h", later) == dt.datetime(2026, 10, 25, 2, 30)  # CEST
        assert resolve_time("now-1d", later) == dt.datetime(2026, 10, 24, 3, 30)
        # without a ``now``: the current instant, shown on the local clock
        expected = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).astimezone()
        got = resolve_time("now-1h")
        assert got is not None and abs(
            (expected.replace(tzinfo=None) - got).total_seconds()) < 5
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_macros_and_variables_expand_as_literals() -> None:
    now = dt.datetime(2026, 3, 1, 12, 0, 0)
    assert resolve_time("now-1h", now) == dt.datetime(2026, 3, 1, 11, 0, 0)
    assert resolve_time("now-7d", now) == dt.datetime(2026, 2, 22, 12, 0, 0)
    assert resolve_time("", now) is None
    # Months and years keep the day of the month, or the month's last day.
    assert resolve_time("now-1y", dt.datetime(2026, 12, 30)) == dt.datetime(2025, 12, 30)
    assert resolve_time("now-1M", dt.datetime(2026, 3, 31)) == dt.datetime(2026, 2, 28)
    assert resolve_time("now-1M", dt.datetime(2026, 1, 30)) == dt.datetime(2025, 12, 30)
    assert resolve_time("now-1y", dt.datetime(2028, 2, 29)) == dt.datetime(2027, 2, 28)
    sql = expand_sql("SELECT * FROM t WHERE $__timeFilter(ts) AND region = $region "
                     "AND n > ${min}", TimeRange(**{"from": "2026-01-01T00:00:00", "to": ""}),
                     {"region": "x' OR '1'='1", "min": 3})
    assert sql == ("SELECT * FROM t WHERE (ts >= TIMESTAMP '2026-01-01 00:00:00') AND "
                   "region = 'x'' OR ''1''=''1' AND n > 3")
    assert expand_sql("SELECT $__timeFilter(ts)") == "SELECT TRUE"
    with pytest.raises(DashboardError, match=r"unknown variable \$nope"):
        expand_sql("SELECT $nope")
    with pytest.raises(ValueError, match="not 'now'"):
        TimeRange(**{"from": "yesterday"})


def test_an_injected_variable_stays_a_value(engine: Engine) -> None:
    sql = expand_sql("SELECT count(*) FROM orders WHERE region = $r",
                     variables={"r": "north' OR '1'='1"})
    assert engine.run(sql).rows == [[0]]


def test_dashboards_validate_name_the_field_and_round_trip(tmp_path: Path,
                                                           engine: Engine) -> None:
    spec = {"mark": "bar", "encoding": {"x": {"field": "a", "type": "nominal"}}}
    board = parse_dashboard({"title": "Ops", "panels": [{"sql": "SELECT 1 AS a", "spec": spec}],
                             "time_range": {"from": "now-1h", "to": "now"},
                             "variables": [{"name": "region", "value": "north"}]})
    store = DashboardStore(tmp_path / "boards")
    store.save(board)
    again = store.get(board.id)
    # A spec without data gets the panel's named source, which the page fills.
    assert again.panels[0].spec == {**spec, "data": {"name": "rows"}}
    assert again.time_range.start == "now-1h"
    exported = json.loads(again.model_dump_json(by_alias=True))
    assert parse_dashboard(exported).title == "Ops"
    bad_spec = {"panels": [{"sql": "SELECT 1", "spec": spec},
                           {"sql": "SELECT 1", "spec": {"mark": "barz"}}]}
    with pytest.raises(SpecError, match=r"^panels\[1\]\.spec"):
        parse_dashboard(bad_spec)
    with pytest.raises(DashboardError, match=r"^panels\[0\]\.width: Input should be less"):
        parse_dashboard({"panels": [{"sql": "SELECT 1", "spec": spec, "width": 40}]})
    with pytest.raises(DashboardError, match=r"^body: a dashboard is a JSON object"):
        parse_dashboard([])


def test_a_dropped_file_gets_a_dashboard_of_charts_that_render(engine: Engine) -> None:
    def builder(choice: dict[str, Any]) -> dict[str, Any]:
        base = "SELECT * FROM orders"
        return build_chart(engine, ChartRequest.model_validate(choice), base, base)

    board = suggest_dashboard(engine.datasets["orders"], builder)
    kinds = [p.builder["type"] for p in board.panels if p.builder]
    assert kinds == ["line", "bar", "histogram", "scatter"]
    for panel in board.panels:
        check_spec(panel.spec)
        assert engine.run(expand_sql(panel.sql)).rows
