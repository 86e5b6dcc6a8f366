"""The plugin in the running app, over HTTP: drop a file and get a dashboard, clear 4xx
answers for bad input, exports, dashboards in and out, live sources from the embedded v1
server and the Performance Monitor, and the live stream a panel appends from."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
CSV = ("\ufeffday;region;amount\n2026-01-01;north;1,5\n2026-01-02;south;2\n"
       "2026-01-03;north;\"3,25\"\n2026-01-04;east;4\n")


@pytest.fixture(scope="module")
def plexichat_settings() -> dict[str, Any]:
    return {"plugin": {"data_visualizer": {"max_upload_mb": 1.0, "query_timeout_seconds": 2.0,
                                           "max_rows": 1000, "live_interval_seconds": 0.2}},
            "api": {"performance_interval": 0.2}}


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory: pytest.TempPathFactory, plexichat_settings: dict[str, Any]
               ) -> Iterator[Any]:
    # Starting the app is most of a test's time here (seconds on a busy machine); the
    # tests share one and each starts from an empty workspace (see plexichat_app).
    from plexichat_desktop.testing.harness import start_app

    with start_app(PLUGIN_ROOT, tmp_path_factory.mktemp("plexichat-home"),
                   plexichat_settings) as app:
        yield app


@pytest.fixture
def plexichat_app(shared_app: Any) -> Any:
    """The module's app with no datasets, dashboards or uploads left by earlier tests,
    which is all a test here can see of another (the live tables refill on refresh)."""
    client = shared_app.client
    for dataset in client.get("api/datasets").json()["datasets"]:
        assert client.delete(f"api/datasets/{dataset['name']}").status_code == 200
    for board in client.get("api/dashboards").json()["dashboards"]:
        assert client.delete(f"api/dashboards/{board['id']}").status_code == 200
    assert client.get("api/datasets").json()["datasets"] == []
    assert client.get("api/dashboards").json()["dashboards"] == []
    uploads = shared_app.paths.plugin_data_root / "data_visualizer" / "uploads"
    assert not uploads.is_dir() or list(uploads.iterdir()) == []
    return shared_app


def upload(client: httpx.Client, filename: str, content: str | bytes, **params: Any
           ) -> httpx.Response:
    body = content.encode() if isinstance(content, str) else content
    return client.post("api/datasets", params={"filename": filename, **params}, content=body)


def test_drop_a_csv_and_get_a_dashboard_whose_panels_run(plexichat_app: Any) -> None:
    client = plexichat_app.client
    answer = upload(client, "Sales 2026.csv", CSV, dashboard=True)
    assert answer.status_code == 201, answer.text
    dataset = answer.json()["dataset"]
    assert dataset["name"] == "sales_2026" and dataset["rows"] == 4
    assert [(c["name"], c["kind"]) for c in dataset["columns"]] == [
        ("day", "temporal"), ("region", "nominal"), ("amount", "quantitative")]
    board = answer.json()["dashboard"]
    assert [p["builder"]["type"] for p in board["panels"]] == ["line", "bar", "histogram",
                                                               "boxplot"]
    listed = client.get("api/dashboards").json()["dashboards"]
    assert [b["id"] for b in listed] == [board["id"]]
    for panel in board["panels"]:
        result = client.post("api/query", json={"sql": panel["sql"],
                                                "time_range": board["time_range"]})
        assert result.status_code == 200, result.text
        assert result.json()["rows"]
    totals = client.post("api/query", json={
        "sql": "SELECT region, sum(amount) FROM sales_2026 GROUP BY 1 ORDER BY 1"}).json()
    assert totals["rows"] == [["east", 4.0], ["north", 4.75], ["south", 2.0]]
    # A fresh export of the same file keeps its dashboard; the panels read the new rows.
    again = upload(client, "Sales 2026.csv", CSV + "2026-01-05;west;5\n", dashboard=True)
    assert again.json()["dashboard"]["id"] == board["id"]
    assert again.json()["dataset"]["rows"] == 5
    assert len(client.get("api/dashboards").json()["dashboards"]) == 1
    preview = client.get("api/datasets/sales_2026").json()
    assert len(preview["rows"]) == 5 and preview["summary"][2]["column_name"] == "amount"
    assert client.get("").status_code == 200  # the page


def test_a_malformed_csv_is_a_422_naming_the_line_and_changes_nothing(
        plexichat_app: Any) -> None:
    client = plexichat_app.client
    assert upload(client, "data.csv", "a,b\n1,2\n").status_code == 201
    answer = upload(client, "data.csv", "a,b\n1,2\n3,4\n5,6,7\n8,9\n")
    assert answer.status_code == 422
    assert answer.json()["line"] == 4
    assert answer.json()["detail"].startswith("file data.csv: line 4: expected 2 fields")
    assert client.post("api/query", json={"sql": "SELECT * FROM data"}).json()["rows"] == [[1, 2]]
    assert upload(client, "x.csv", "a\n1\n", format="xls").status_code == 422
    bad_name = upload(client, "x.csv", "a\n1\n", name="Bad Name")
    assert bad_name.status_code == 422 and bad_name.json()["detail"].startswith("name: ")
    assert upload(client, "empty.csv", b"").status_code == 422


def test_an_over_size_upload_is_a_413_and_leaves_nothing(plexichat_app: Any) -> None:
    client = plexichat_app.client
    big = b"a,b\n" + b"1,2\n" * 300_000  # 1.2 MB > 1 MB
    answer = upload(client, "big.csv", big)
    assert answer.status_code == 413 and "max_upload_mb" in answer.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        for _ in range(300):
            yield b"1,2\n" * 1000

    answer = client.post("api/datasets", params={"filename": "stream.csv"}, content=chunks())
    assert answer.status_code == 413
    assert client.get("api/datasets").json()["datasets"] == []
    uploads = plexichat_app.paths.plugin_data_root / "data_visualizer" / "uploads"
    assert list(uploads.iterdir()) == []


def test_queries_refuse_escapes_stop_runaways_and_cancel(plexichat_app: Any) -> None:
    client = plexichat_app.client
    for sql, words in (("ATTACH '/tmp/x.db' AS x", "ATTACH is refused"),
                       ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY is refused"),
                       ("INSTALL httpfs", "INSTALL is refused"),
                       ("SELECT * FROM read_csv('/etc/passwd')", "read_csv() is refused"),
                       ("SELECT * FROM nope", "nope")):
        answer = client.post("api/query", json={"sql": sql})
        assert answer.status_code == 422 and words in answer.json()["detail"], answer.text
    endless = "SELECT count(*) FROM range(1000000000000) a"
    answer = client.post("api/query", json={"sql": endless})
    assert answer.status_code == 408 and "limit of 2 s" in answer.json()["detail"]

    outcome: queue.Queue[httpx.Response] = queue.Queue()
    worker = threading.Thread(target=lambda: outcome.put(client.post(
        "api/query", json={"sql": endless, "query_id": "long-one"})))
    worker.start()
    while client.post("api/queries/long-one/cancel").status_code == 404:
        worker.join(0.02)  # not started yet
    assert outcome.get(timeout=30).status_code == 409
    assert client.post("api/queries/gone/cancel").status_code == 404

    # The export's query has the same limit (it had 600 s of its own)...
    answer = client.get("api/export.csv", params={"sql": endless})
    assert answer.status_code == 408 and "limit of 2 s" in answer.json()["detail"]
    # ...and a client that gives up stops it (it ran on, a core busy, to its end; here
    # the limit is raised out of the way, so only the client's leaving can stop it).
    plugin = plexichat_app.plugin
    config = plugin.config
    plugin.config = config.model_copy(update={"query_timeout_seconds": 3600.0})
    try:
        with pytest.raises(httpx.ReadTimeout):
            client.get("api/export.csv", params={"sql": endless}, timeout=0.5)
        deadline = time.monotonic() + 60
        while plugin.engine._running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not plugin.engine._running
    finally:
        plugin.config = config


def test_the_chart_builder_checks_its_base_query_before_describing_it(
        plexichat_app: Any) -> None:
    # Review finding: the builder ran DESCRIBE on the unchecked base query, and DuckDB
    # runs every statement of a text, so a closing parenthesis let a CREATE through.
    client = plexichat_app.client
    assert upload(client, "s.csv", "a,b\n1,2\n").status_code == 201
    stacked = ("SELECT 1 AS a) AS t; CREATE OR REPLACE VIEW s AS SELECT 666 AS a, 0 AS b; "
               "SELECT * FROM (SELECT 1 AS a")
    answer = client.post("api/chart", json={"sql": stacked, "type": "bar", "x": "a",
                                            "run": False})
    assert answer.status_code == 422 and "statements" in answer.json()["detail"], answer.text
    rows = client.post("api/query", json={"sql": "SELECT * FROM s"}).json()["rows"]
    assert rows == [[1, 2]]


def test_out_of_range_times_and_values_are_422_not_500(plexichat_app: Any) -> None:
    client = plexichat_app.client
    for end in ("now-99999999999y", "now-99999999999999999s", "now-99999999999M",
                "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"):
        answer = client.post("api/query", json={"sql": "SELECT 1", "time_range": {
            "from": end, "to": "now"}})
        assert answer.status_code == 422 and "year" in answer.text, answer.text
    answer = client.post("api/chart", json={
        "type": "histogram", "x": "a", "run": False,
        "sql": "SELECT 1e308 AS a UNION ALL SELECT -1e308"})
    assert answer.status_code == 422 and answer.json()["detail"].startswith("x: "), answer.text


def test_charts_specs_and_dashboards_in_and_out(plexichat_app: Any) -> None:
    client = plexichat_app.client
    upload(client, "sales.csv", CSV)
    bad = client.post("api/chart", json={"source": "sales", "type": "bar", "x": "nope"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("x: no column 'nope'")
    chart = client.post("api/chart", json={"source": "sales", "type": "bar", "x": "region",
                                           "y": "amount", "aggregate": "sum"})
    assert chart.status_code == 200
    assert chart.json()["result"]["rows"] == [["north", 4.75], ["east", 4.0], ["south", 2.0]]
    spec = chart.json()["spec"]
    assert client.post("api/spec/check", json={"spec": spec}).json() == {"ok": True}
    invalid = client.post("api/spec/check", json={"spec": {**spec, "mark": "bars"}})
    assert invalid.status_code == 422 and invalid.json()["detail"].startswith("spec.mark")

    board = {"title": "Sales", "panels": [{"title": "By region", "sql": chart.json()["sql"],
                                           "spec": spec}],
             "variables": [{"name": "region", "value": "north"}]}
    created = client.post("api/dashboards", json=board)
    assert created.status_code == 201
    board_id = created.json()["id"]
    exported = client.get(f"api/dashboards/{board_id}/export")
    assert "attachment" in exported.headers["content-disposition"]
    imported = client.post("api/dashboards", content=exported.content)
    assert imported.status_code == 201 and imported.json()["id"] != board_id
    assert imported.json()["panels"][0]["spec"] == spec
    broken = json.loads(exported.content)
    broken["panels"][0]["spec"]["encoding"]["x"]["type"] = "nominl"
    answer = client.put(f"api/dashboards/{board_id}", json=broken)
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("panels[0].spec.encoding.x.type")
    assert client.post("api/dashboards", content=b"{nope").status_code == 422
    assert client.post("api/dashboards", content=b" " * (6 * 1024 * 1024)).status_code == 413
    with_variable = client.post("api/query", json={
        "sql": "SELECT count(*) FROM sales WHERE region = $region",
        "variables": {"region": "north"}})
    assert with_variable.json()["rows"] == [[2]]
    unknown = client.post("api/query", json={"sql": "SELECT $nope"})
    assert unknown.status_code == 422 and "unknown variable $nope" in unknown.json()["detail"]
    assert client.delete(f"api/dashboards/{board_id}").status_code == 200
    assert client.get(f"api/dashboards/{board_id}").status_code == 404


def test_csv_export_defuses_spreadsheet_formulas(plexichat_app: Any) -> None:
    client = plexichat_app.client
    sql = ("SELECT '=HYPERLINK(\"http://x\",\"y\")' AS \"=head\", '+1+1' AS plus, "
           "'-2+3' AS minus, '@SUM(A1)' AS at, chr(9) || '=1' AS tab, chr(13) || '=1' AS cr, "
           "'plain' AS ok, -5 AS negative, 2.5 AS number")
    exported = client.get("api/export.csv", params={"sql": sql})
    assert exported.status_code == 200, exported.text
    import csv as csv_module
    import io

    header, row = list(csv_module.reader(io.StringIO(exported.text)))
    assert header[0] == "'=head" and header[1:] == ["plus", "minus", "at", "tab", "cr", "ok",
                                                    "negative", "number"]
    assert row == ["'=HYPERLINK(\"http://x\",\"y\")", "'+1+1", "'-2+3", "'@SUM(A1)",
                   "'\t=1", "'\r=1", "plain", "-5", "2.5"]


def test_downloads_keep_names_in_any_script(plexichat_app: Any) -> None:
    """A dashboard titled in Japanese could not be exported (the name went raw into the
    header: a 500); the download now keeps the name, in UTF-8 (RFC 6266)."""
    from urllib.parse import unquote

    client = plexichat_app.client
    created = client.post("api/dashboards", json={"title": "売上 ダッシュボード", "panels": []})
    assert created.status_code == 201, created.text
    exported = client.get(f"api/dashboards/{created.json()['id']}/export")
    assert exported.status_code == 200, exported.text
    header = exported.headers["content-disposition"]
    assert unquote(header.split("filename*=UTF-8''")[1]) == "売上 ダッシュボード.json"
    assert json.loads(exported.content)["title"] == "売上 ダッシュボード"
    csv_answer = client.get("api/export.csv", params={"sql": "SELECT 1 AS n",
                                                      "filename": "Ventes été"})
    assert csv_answer.status_code == 200, csv_answer.text
    assert unquote(csv_answer.headers["content-disposition"].split("''")[1]) == \
        "Ventes été.csv"
    assert client.delete(f"api/dashboards/{created.json()['id']}").status_code == 200


def test_csv_export_has_every_row_past_the_grid_limit(plexichat_app: Any) -> None:
    client = plexichat_app.client
    upload(client, "n.csv", "n\n" + "".join(f"{i}\n" for i in range(2500)))
    grid = client.post("api/query", json={"sql": "SELECT * FROM n"}).json()
    assert grid["truncated"] and len(grid["rows"]) == 1000
    exported = client.get("api/export.csv", params={"sql": "SELECT n, n * 2 AS d FROM n"})
    assert exported.status_code == 200 and "attachment" in exported.headers[
        "content-disposition"]
    lines = exported.text.splitlines()
    assert lines[0] == "n,d" and len(lines) == 2501 and lines[-1] == "2499,4998"
    refused = client.get("api/export.csv", params={"sql": "COPY n TO 'x.csv'"})
    assert refused.status_code == 422


def read_events(client: httpx.Client, found: queue.Queue[tuple[str, Any]],
                stop: threading.Event) -> None:
    with client.stream("GET", "api/stream", timeout=30) as answer:
        event = ""
        for line in answer.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                found.put((event, json.loads(line[5:])))
            if stop.is_set():
                return


def next_event(found: queue.Queue[tuple[str, Any]], name: str, source: str | None = None
               ) -> Any:
    while True:
        event, data = found.get(timeout=30)
        if event == name and (source is None or data.get("source") == source):
            return data


def test_live_sources_from_the_v1_api_stream_their_rows(plexichat_app: Any) -> None:
    client = plexichat_app.client
    found: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()
    reader = threading.Thread(target=read_events, args=(client, found, stop), daemon=True)
    reader.start()
    hello = next_event(found, "hello")
    assert {s["name"] for s in hello["live"]} == {"pm_samples", "v1_performance",
                                                  "v1_analytics"}
    answer = client.post("api/live/v1_analytics/refresh")
    assert answer.status_code == 200, answer.text
    sent = next_event(found, "rows", "v1_analytics")
    assert sent["replace"] and len(sent["rows"]) == answer.json()["new_rows"] > 0
    assert set(sent["rows"][0]) == {"day", "metric", "count"}
    counted = client.post("api/query", json={"sql": "SELECT count(*) FROM v1_analytics"})
    assert counted.json()["rows"] == [[len(sent["rows"])]]

    # The v1 server samples every 0.2 s here: the first refresh fills the table, later
    # ones (the stream's own, while this page listens) append only what is new.
    first = client.post("api/live/v1_performance/refresh").json()
    while client.post("api/query", json={"sql": "SELECT count(*) FROM v1_performance"}
                      ).json()["rows"][0][0] <= first["new_rows"]:
        time.sleep(0.1)
    appended = next_event(found, "rows", "v1_performance")
    while appended["replace"] or not appended["rows"]:
        appended = next_event(found, "rows", "v1_performance")
    assert appended["rows"][0]["cpu_percent"] is not None
    stamps = client.post("api/query", json={
        "sql": "SELECT count(*) = count(DISTINCT ts) FROM v1_performance"}).json()
    assert stamps["rows"] == [[True]]  # nothing appended twice
    stop.set()


def test_performance_monitor_samples_need_the_plugin(plexichat_app: Any) -> None:
    # In this app the Performance Monitor does not run: a clear 503, not a 500.
    client = plexichat_app.client
    answer = client.post("api/live/pm_samples/refresh")
    assert answer.status_code == 503
    assert "Performance Monitor plugin is not running" in answer.json()["detail"]
    for answer in (client.post("api/query", json={"sql": "SELECT * FROM pm_samples"}),
                   client.post("api/chart", json={"source": "pm_samples", "type": "line",
                                                  "x": "ts", "y": "cpu_percent"})):
        assert answer.status_code == 503
        assert answer.json()["detail"].startswith("pm_samples: the Performance Monitor")


async def test_performance_monitor_samples_arrive_from_the_running_plugin(
        tmp_path: Path) -> None:
    import asyncio

    from api_integration_layer.testing import embedded_server, plugin_folder

    plugins = PLUGIN_ROOT.parent
    folder = plugin_folder(tmp_path, PLUGIN_ROOT, plugins / "performance_monitor",
                           plugins / "api_integration_layer")
    settings = {"performance_monitor": {"interval_seconds": 0.2}}
    async with embedded_server(tmp_path / "home", plugin_dirs=[folder],
                               plugin_settings=settings) as server:
        visualizer = server.plugin("data_visualizer")
        rows: list[dict[str, Any]] = []
        while not rows:
            rows = await visualizer.live.refresh("pm_samples")
            await asyncio.sleep(0.1)
        assert rows[0]["cpu_percent"] is not None and rows[0]["ts"]
        async with httpx.AsyncClient(base_url=server.url, headers=server.app_headers) as web:
            answer = await web.post("/plugins/data_visualizer/api/query", json={
                "sql": "SELECT count(*), max(ts) IS NOT NULL FROM pm_samples"})
        assert answer.json()["rows"][0][0] >= len(rows) and answer.json()["rows"][0][1]
