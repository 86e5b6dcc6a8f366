"""Data Visualizer on a 1,000,000-row CSV against DuckDB alone, measured in the same run.

A real app core (the Data Visualizer and the API integration layer) runs on 127.0.0.1
with a temporary home. A generated CSV of orders (1M rows, ~40 MB: timestamp, region,
product, units, price) is used by both sides:

* load: the plugin takes the file over HTTP (the upload streamed to disk, the dialect
  sniffed, DuckDB's strict load into the dataset's file, the read-only reader rebuilt),
  against DuckDB alone running ``CREATE TABLE ... AS SELECT * FROM read_csv(file)`` in
  memory, and the same into a database file (kept, as the plugin's workspace is);
* chart: ``POST /chart`` over HTTP for three charts (sum of units per region, average
  price over time with automatic buckets, a histogram of prices): the builder's SQL, the
  Vega-Lite spec checked against its schema, the query on the hardened reader and the
  rows as JSON, against DuckDB alone running the same three aggregates (a) on its loaded
  in-memory table, the engine's floor, and (b) straight on the CSV file, what a notebook
  does when the data is not loaded.

Prints medians, the ratios, and how many rows each chart sends to the page.

    .venv/bin/python benchmarks/data_visualizer_query.py [--rows 1000000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import httpx

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "plugins" / "data_visualizer"
LAYER = ROOT / "plugins" / "api_integration_layer"
for folder in (PLUGIN, LAYER):
    sys.path.append(str(folder))

CHARTS = [
    {"type": "bar", "x": "region", "y": "units", "aggregate": "sum"},
    {"type": "line", "x": "ordered_at", "y": "price", "aggregate": "avg"},
    {"type": "histogram", "x": "price", "bins": 30},
]
# The same aggregates written by hand for DuckDB alone ({src}: a table or read_csv(...)).
PLAIN = [
    "SELECT region, sum(units) FROM {src} GROUP BY ALL ORDER BY 2 DESC",
    "SELECT date_trunc('day', ordered_at) AS d, avg(price) FROM {src} GROUP BY ALL ORDER BY d",
    "SELECT floor(price / 0.5) * 0.5 AS b, count(*) FROM {src} GROUP BY ALL ORDER BY b",
]


def write_csv(path: Path, rows: int) -> None:
    rng = random.Random(1)
    start = 1_767_225_600  # 2026-01-01
    regions = ["north", "south", "east", "west", "centre"]
    products = ["tea", "coffee", "cocoa", "mate", "juice", "water"]
    with path.open("w", encoding="utf-8") as handle:
        handle.write("ordered_at,region,product,units,price\n")
        for _ in range(rows):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S",
                                  time.gmtime(start + rng.randrange(0, 180 * 86400)))
            handle.write(f"{stamp},{rng.choice(regions)},{rng.choice(products)},"
                         f"{rng.randint(1, 9)},{rng.uniform(1, 15):.2f}\n")


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


async def bench(rows: int, rounds: int) -> int:
    from api_integration_layer.testing import embedded_server, plugin_folder

    with tempfile.TemporaryDirectory(prefix="dv-bench-") as tmp:
        csv_path = Path(tmp) / "orders.csv"
        t = time.perf_counter()
        write_csv(csv_path, rows)
        size_mb = csv_path.stat().st_size / 1e6
        print(f"{rows:,} rows, {size_mb:.1f} MB CSV written in {time.perf_counter() - t:.1f} s")
        folder = plugin_folder(Path(tmp), PLUGIN, LAYER)
        settings = {"data_visualizer": {"max_upload_mb": 2048.0}}
        async with embedded_server(Path(tmp) / "home", plugin_dirs=[folder],
                                   plugin_settings=settings) as server, httpx.AsyncClient(
                base_url=server.url + "plugins/data_visualizer/api/",
                headers=server.app_headers, timeout=600) as client:
            body = csv_path.read_bytes()
            load_plugin, load_duck, load_file = [], [], []
            chart_plugin, chart_table, chart_csv = [], [], []
            sent_rows: list[int] = []
            for round_no in range(rounds):
                t = time.perf_counter()
                answer = await client.post("datasets", params={"filename": "orders.csv"},
                                           content=body)
                load_plugin.append(time.perf_counter() - t)
                answer.raise_for_status()
                assert answer.json()["dataset"]["rows"] == rows

                kept = Path(tmp) / f"kept{round_no}.duckdb"
                with duckdb.connect(str(kept), config={"threads": 2}) as disk:
                    t = time.perf_counter()
                    disk.execute(f"CREATE TABLE orders AS SELECT * FROM read_csv('{csv_path}')")
                    disk.execute("CHECKPOINT")
                    load_file.append(time.perf_counter() - t)
                kept.unlink()

                con = duckdb.connect(config={"threads": 2})
                t = time.perf_counter()
                con.execute(f"CREATE TABLE orders AS SELECT * FROM read_csv('{csv_path}')")
                load_duck.append(time.perf_counter() - t)

                t = time.perf_counter()
                sent_rows = []
                for choice in CHARTS:
                    built = await client.post("chart", json={"source": "orders", **choice})
                    built.raise_for_status()
                    sent_rows.append(len(built.json()["result"]["rows"]))
                chart_plugin.append(time.perf_counter() - t)

                t = time.perf_counter()
                for sql in PLAIN:
                    con.execute(sql.format(src="orders")).fetchall()
                chart_table.append(time.perf_counter() - t)

                t = time.perf_counter()
                for sql in PLAIN:
                    con.execute(sql.format(src=f"read_csv('{csv_path}')")).fetchall()
                chart_csv.append(time.perf_counter() - t)
                con.close()
                print(f"  round {round_no + 1}: load {load_plugin[-1]:.2f} s vs "
                      f"{load_duck[-1]:.2f} s, charts {chart_plugin[-1] * 1000:.0f} ms vs "
                      f"{chart_table[-1] * 1000:.0f} ms (table) / "
                      f"{chart_csv[-1] * 1000:.0f} ms (CSV)")

    lp, ld, lf = median_ms(load_plugin), median_ms(load_duck), median_ms(load_file)
    cp, ct, cc = median_ms(chart_plugin), median_ms(chart_table), median_ms(chart_csv)
    print(f"\nmedians of {rounds} rounds, {rows:,} rows ({size_mb:.0f} MB):")
    print(f"  load       plugin over HTTP {lp:8.0f} ms   DuckDB alone (CTAS) {ld:8.0f} ms"
          f"   ratio {lp / ld:.2f}x")
    print(f"                                      DuckDB into a file {lf:8.0f} ms"
          f"   ratio {lp / lf:.2f}x")
    print(f"  3 charts   plugin over HTTP {cp:8.0f} ms   DuckDB on its table {ct:8.0f} ms"
          f"   ratio {cp / ct:.2f}x")
    print(f"             DuckDB on the CSV file {cc:8.0f} ms: the plugin is "
          f"{cc / cp:.1f}x faster once the file is loaded")
    print(f"  rows sent to the page per chart: {sent_rows} (of {rows:,})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    return asyncio.run(bench(args.rows, args.rounds))


if __name__ == "__main__":
    raise SystemExit(main())
