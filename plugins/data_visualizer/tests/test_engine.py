"""The query engine: escape attempts refused (by the guard and, behind it, by the engine
itself), runaway queries stopped, a failed load that changes nothing, datasets that
survive a restart, live tables."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from data_visualizer.engine import Engine, NameError_, QueryCancelled, QueryTimeout, safe_name
from data_visualizer.loaders import LoadError
from data_visualizer.sqlguard import SqlRefused

Write = Callable[[str, str | bytes], Path]


SALES = "region,amount\nnorth,10\nsouth,5\nnorth,2\n"


@pytest.fixture
def engine(tmp_path: Path, write_file: Write) -> Iterator[Engine]:
    engine = Engine(tmp_path / "workspace", reserved={"pm_samples"})
    engine.load(write_file("sales.csv", SALES), "sales.csv", "sales", "csv")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The ``engine`` fixture's engine, shared by the module's tests that only read or are
    refused: a load is a DuckDB file written and synced (~0.4 s on a busy disk), and the
    21 refusals alone made 21 of them."""
    folder = tmp_path_factory.mktemp("reader")
    (folder / "sales.csv").write_text(SALES, encoding="utf-8", newline="")
    engine = Engine(folder / "workspace", reserved={"pm_samples"})
    engine.load(folder / "sales.csv", "sales.csv", "sales", "csv")
    yield engine
    engine.close()


@pytest.mark.parametrize(("sql", "words"), [
    ("ATTACH '/tmp/other.db' AS other", "ATTACH is refused"),
    ("COPY sales TO '/tmp/out.csv'", "COPY is refused"),
    ("INSTALL httpfs", "INSTALL is refused"),
    ("LOAD httpfs", "LOAD is refused"),
    ("SET enable_external_access = true", "SET is refused"),
    ("PRAGMA enable_profiling", "PRAGMA is refused"),
    ("CREATE TABLE t AS SELECT 1", "CREATE is refused"),
    ("DETACH ds__sales", "DETACH is refused"),
    ("EXPORT DATABASE '/tmp/x'", "EXPORT is refused"),
    ("SELECT * FROM read_csv('/etc/passwd')", "read_csv() is refused"),
    ("SELECT * FROM read_text('/etc/hostname')", "read_text() is refused"),
    ("SELECT * FROM '/etc/passwd'", "looks like a file"),
    ("SELECT * FROM 'data.parquet'", "looks like a file"),
    ("SELECT * FROM glob('/home/*')", "glob() is refused"),
    ("SELECT * FROM query('SELECT 1')", "query() is refused"),
    ("SELECT * FROM sales WHERE region IN (SELECT * FROM read_json_auto('x.json'))",
     "read_json_auto() is refused"),
    ("SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))",
     "json_execute_serialized_sql() is refused"),
    ("SELECT 1; ATTACH 'x' AS y", "2 statements"),
    ("/* harmless */ SELECT 1; -- trailing\n COPY sales TO 'x'", "2 statements"),
    ("   ", "empty"),
    ("SELEC 1", "syntax error"),
])
def test_escape_attempts_and_bad_sql_are_refused_with_a_reason(reader: Engine, sql: str,
                                                                words: str) -> None:
    with pytest.raises(SqlRefused, match=r"^sql: ") as caught:
        reader.run(sql)
    assert words in str(caught.value)


def test_the_engine_itself_refuses_files_and_keeps_its_settings(reader: Engine) -> None:
    # Behind the guard: the reader cannot read files, attach, load extensions or be
    # reconfigured, even when a statement reaches it directly.
    cursor = reader.cursor()
    try:
        for sql in ("SELECT * FROM read_csv('/etc/passwd')", "ATTACH '/tmp/x.db' AS x",
                    "LOAD httpfs", "COPY (SELECT 1) TO '/tmp/never.csv'"):
            with pytest.raises(duckdb.Error):
                cursor.execute(sql)
        with pytest.raises(duckdb.Error, match=r"lock|configuration"):
            cursor.execute("SET enable_external_access = true")
        settings = dict(cursor.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ("
            "'enable_external_access', 'lock_configuration', 'autoload_known_extensions',"
            " 'autoinstall_known_extensions')").fetchall())
    finally:
        cursor.close()
    assert settings == {"enable_external_access": "false", "lock_configuration": "true",
                        "autoload_known_extensions": "false",
                        "autoinstall_known_extensions": "false"}
    assert not Path("/tmp/never.csv").exists()


def test_read_only_queries_run(reader: Engine) -> None:
    result = reader.run("WITH t AS (SELECT region, sum(amount) AS total FROM sales GROUP BY 1) "
                        "SELECT * FROM t ORDER BY total DESC")
    assert result.rows == [["north", 12], ["south", 5]]
    assert [c["kind"] for c in result.columns] == ["nominal", "quantitative"]
    assert result.tables == ["sales", "t"]
    assert "EXPLAIN" not in reader.run("EXPLAIN SELECT * FROM sales").columns[0]["name"]
    cut = reader.run("SELECT * FROM range(100)", max_rows=10)
    assert cut.truncated and len(cut.rows) == 10


def test_a_runaway_query_is_interrupted_by_its_time_limit_or_on_request(
        engine: Engine) -> None:
    endless = "SELECT count(*) FROM range(1000000000000) a"
    with pytest.raises(QueryTimeout, match=r"limit of 0\.3 s"):
        engine.run(endless, timeout=0.3)
    started = threading.Event()
    outcome: list[BaseException] = []

    def run() -> None:
        started.set()
        try:
            engine.run(endless, query_id="q1", timeout=600)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    started.wait()
    while not engine.interrupt("q1"):  # until the query is registered as running
        worker.join(0.01)
    worker.join(60)
    assert isinstance(outcome[0], QueryCancelled)
    assert engine.run("SELECT 1 AS still_works").rows == [[1]]  # the reader is fine


def test_an_export_is_stopped_like_a_query_and_can_be_dropped_unread(
        engine: Engine) -> None:
    """Audit: an export's query ran for up to 600 s whatever the query limit, and neither
    a cancel nor the plugin stopping could interrupt it (its cursor was not registered)."""
    endless = "SELECT count(*) FROM range(1000000000000) a"
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match=r"limit of 0\.3 s"):
        engine.open_export(endless, timeout=0.3)
    assert time.monotonic() - started < 20
    outcome: list[BaseException] = []
    worker = threading.Thread(target=lambda: _capture(
        outcome, lambda: engine.open_export(endless, timeout=600, query_id="exp")))
    worker.start()
    while not engine.interrupt("exp"):
        worker.join(0.01)
    worker.join(60)
    assert isinstance(outcome[0], QueryCancelled)
    # Stopped while its rows stream: the iterator raises (the download fails, not ends).
    header, rows, _ = engine.open_export("SELECT * FROM range(100000) t(n)", timeout=30,
                                         query_id="rows")
    assert header == ["n"] and next(rows) == [0]
    assert engine.interrupt("rows")
    with pytest.raises(QueryCancelled):
        list(rows)
    # Opened and not wanted any more: closed without a row read.
    header, rows, close = engine.open_export("SELECT 1 AS one", timeout=30, query_id="x")
    close()
    close()  # twice is fine
    assert not engine.interrupt("x")  # nothing runs under it any more


def _capture(outcome: list[BaseException], work: Any) -> None:
    try:
        work()
    except BaseException as exc:
        outcome.append(exc)


def test_a_summary_that_runs_too_long_is_stopped_like_a_query(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import data_visualizer.engine as module

    assert {c["column_name"] for c in engine.summarize("sales", timeout=30)} == {
        "region", "amount"}
    # A summary that never ends (SUMMARIZE of an endless range), as of a huge dataset.
    monkeypatch.setattr(module, "ident", lambda name: "range(1000000000000) a")
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match=r"limit of 0\.3 s"):
        engine.summarize("sales", timeout=0.3)
    assert time.monotonic() - started < 20
    monkeypatch.undo()
    assert engine.run("SELECT 1 AS still_works").rows == [[1]]


def test_a_failed_load_keeps_the_previous_dataset(engine: Engine, write_file: Write) -> None:
    bad = write_file("sales2.csv", "region,amount\nnorth,1\nsouth,2,3\n")
    with pytest.raises(LoadError, match="line 3"):
        engine.load(bad, "sales2.csv", "sales", "csv")
    assert engine.run("SELECT count(*) FROM sales").rows == [[3]]
    files = sorted(p.name for p in engine.folder.iterdir())
    assert len([f for f in files if f.endswith(".duckdb")]) == 1


def test_replacing_and_dropping_and_the_workspace_survives_a_restart(
        engine: Engine, write_file: Write, tmp_path: Path) -> None:
    engine.load(write_file("s.csv", "region,amount\neast,7\n"), "s.csv", "sales", "csv")
    assert engine.run("SELECT * FROM sales").rows == [["east", 7]]
    engine.load(write_file("o.csv", "x\n1\n"), "o.csv", "other", "csv")
    engine.drop("other")
    engine.close()
    again = Engine(tmp_path / "workspace")
    try:
        assert sorted(again.datasets) == ["sales"]
        assert again.run("SELECT * FROM sales").rows == [["east", 7]]
        duckdb_files = [p for p in again.folder.iterdir() if p.suffix == ".duckdb"]
        assert len(duckdb_files) == 1  # the replaced and dropped files are gone
    finally:
        again.close()


def test_names(reader: Engine) -> None:
    assert safe_name("Sales Report 2024.csv") == "sales_report_2024"
    assert safe_name("2024.csv") == "t_2024"
    for bad in ("Sales", "1abc", "a-b", "x" * 49, "pm_samples"):
        with pytest.raises(NameError_, match=r"^name: "):
            reader.check_name(bad)


def test_live_tables_append_keep_the_newest_rows_and_survive_a_load(
        tmp_path: Path, write_file: Write) -> None:
    engine = Engine(tmp_path / "live", live_keep=5)
    try:
        columns = [("n", "BIGINT"), ("label", "VARCHAR")]
        engine.set_live("feed", columns, [(i, f"r{i}") for i in range(3)])
        engine.set_live("feed", columns, [(i, f"r{i}") for i in range(3, 8)], append=True)
        assert engine.run("SELECT min(n), max(n), count(*) FROM feed").rows == [[3, 7, 5]]
        engine.load(write_file("x.csv", "a\n1\n"), "x.csv", "x", "csv")  # rebuilds the reader
        assert engine.run("SELECT count(*) FROM feed").rows == [[5]]
        with pytest.raises(SqlRefused, match="INSERT is refused"):
            engine.run("INSERT INTO feed VALUES (99, 'x')")
    finally:
        engine.close()


def test_a_damaged_dataset_file_does_not_take_the_others_down(
        tmp_path: Path, write_file: Write) -> None:
    engine = Engine(tmp_path / "ws")
    engine.load(write_file("a.csv", "x\n1\n"), "a.csv", "good", "csv")
    engine.load(write_file("b.csv", "y\n2\n"), "b.csv", "damaged", "csv")
    damaged = engine.folder / engine.datasets["damaged"].file
    engine.close()
    damaged.write_bytes(b"this is not a DuckDB file" * 100)
    again = Engine(tmp_path / "ws")
    try:
        assert sorted(again.datasets) == ["good"] and "damaged" in again.broken
        assert again.run("SELECT * FROM good").rows == [[1]]
        again.load(write_file("c.csv", "y\n3\n"), "c.csv", "damaged", "csv")  # replaced
        assert again.run("SELECT * FROM damaged").rows == [[3]] and not again.broken
    finally:
        again.close()


def test_a_result_of_huge_values_is_cut_by_size_not_only_by_rows(reader: Engine) -> None:
    # Review finding: only rows were counted, so 10 000 rows of 1 MB texts were a 10 GB
    # answer (and as much memory in the app).
    wide = "SELECT i, repeat('x', 20000) AS s FROM range(200) t(i)"
    result = reader.run(wide, max_rows=10_000, max_bytes=1_000_000)
    assert result.truncated and 40 <= len(result.rows) <= 50
    assert [r[0] for r in result.rows] == list(range(len(result.rows)))
    # One row larger than the budget still comes back (the page shows it).
    single = reader.run("SELECT repeat('y', 2000000) AS s", max_bytes=1_000_000)
    assert len(single.rows) == 1 and not single.truncated
    narrow = reader.run("SELECT * FROM range(5000)", max_rows=10_000)
    assert len(narrow.rows) == 5000 and not narrow.truncated


def test_live_rows_of_the_hour_the_clocks_go_back_are_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit: live samples were compared by naive local time, which repeats in the hour
    the clocks go back: that hour's rows were dropped as "not newer" (12 of 18 samples
    kept across 2026-11-01 in New York). Samples come from a loopback stand-in for the
    Performance Monitor's history route, every 10 minutes, one more each refresh."""
    import asyncio
    import datetime as dt
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from data_visualizer.live import LIVE_SOURCES, LiveSources

    from plexichat_desktop.plugins.hub import EventHub

    samples: list[dict[str, Any]] = []
    names = [n for n, _ in LIVE_SOURCES["pm_samples"].columns[1:]]

    class History(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"samples": samples}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), History)
    worker = threading.Thread(target=server.serve_forever, daemon=True)
    worker.start()
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    engine = Engine(tmp_path / "ws", reserved=LIVE_SOURCES)
    try:
        live = LiveSources(engine, EventHub(), server_url=f"http://127.0.0.1:"
                           f"{server.server_address[1]}/", app_token="t",
                           api=lambda: None, interval=60)
        start = dt.datetime(2026, 11, 1, 4, 30, tzinfo=dt.UTC).timestamp()

        async def follow() -> None:
            for i in range(18):  # 00:30 EDT to 02:20 EST: 01:00-02:00 comes twice
                samples.append({"timestamp": start + 600 * i, **dict.fromkeys(names, 1.0)})
                await live.refresh("pm_samples")

        asyncio.run(follow())
        assert engine.run("SELECT count(*) FROM pm_samples").rows == [[18]]
    finally:
        engine.close()
        server.shutdown()
        monkeypatch.undo()
        time.tzset()
