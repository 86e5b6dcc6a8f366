"""Takes docs/data-visualizer.png: the page in QtWebEngine offscreen, as the desktop window
shows it, right after a CSV was dropped (the dashboard the plugin made for it), and
docs/data-visualizer-explore.png: the SQL editor and chart builder on the same file.

Run from the repository root (it uses the project's GUI test fixtures; set
DV_SCREENSHOT_THEME=dark for the dark variants):

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -c pyproject.toml -p tests.conftest \\
        -p tests.gui.conftest plugins/data_visualizer/docs/screenshot.py -q -n 0 \\
        -p no:cacheprovider
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import httpx

from tests.gui.plugin_screenshots import docs_app, page_shots

HERE = Path(__file__).resolve().parent


def demo_csv(path: Path, rows: int = 20_000) -> None:
    """Orders of a small shop over 120 days: a trend, regions, products, a price spread."""
    rng = random.Random(7)
    start = dt.datetime(2026, 6, 1)
    regions = {"North": 1.3, "South": 1.0, "East": 0.8, "West": 0.6}
    products = {"Tea": 4.5, "Coffee": 7.0, "Cocoa": 5.5, "Mate": 6.0}
    with path.open("w", encoding="utf-8-sig", newline="") as handle:  # Excel's BOM
        handle.write("ordered_at;region;product;units;price\n")
        for _ in range(rows):
            when = start + dt.timedelta(minutes=rng.uniform(0, 120 * 24 * 60))
            region = rng.choices(list(regions), weights=list(regions.values()))[0]
            product = rng.choice(list(products))
            growth = 1 + (when - start).days / 120
            units = max(1, int(rng.gauss(3 * growth, 1.5)))
            price = round(products[product] * rng.uniform(0.8, 1.25), 2)
            # A European export: ';' between fields, a decimal comma in the price.
            handle.write(f"{when:%Y-%m-%d %H:%M:%S};{region};{product};{units};"
                         f"{str(price).replace('.', ',')}\n")


def test_screenshot(qapp: Any, qtbot: Any, home: Any, arun: Any, tmp_path: Path) -> None:
    with docs_app(home, arun, tmp_path, api=False) as rt:
        csv_path = tmp_path / "orders.csv"
        demo_csv(csv_path)

        async def upload() -> dict[str, Any]:
            async with httpx.AsyncClient(base_url=rt.url, timeout=60, headers={
                    "Authorization": f"Bearer {rt.token}"}) as client:
                answer = await client.post(
                    "/plugins/data_visualizer/api/datasets",
                    params={"filename": "orders.csv", "dashboard": True},
                    content=csv_path.read_bytes())
                answer.raise_for_status()
                return dict(answer.json())

        async def live_board() -> str:
            async with httpx.AsyncClient(base_url=rt.url + "plugins/data_visualizer/api/",
                                         timeout=60, headers={
                                             "Authorization": f"Bearer {rt.token}"}) as client:
                panels = []
                for y, kind, title in (("cpu_percent", "line", "CPU % (live)"),
                                       ("memory_percent", "area", "Memory % (live)")):
                    choice = {"source": "pm_samples", "type": kind, "x": "ts", "y": y,
                              "aggregate": "none", "title": title}
                    built = (await client.post("chart", json={**choice, "run": False})).json()
                    panels.append({"title": title, "sql": built["sql"], "spec": built["spec"],
                                   "builder": choice, "live": True, "source": "pm_samples",
                                   "width": 6})
                answer = await client.post("dashboards", json={
                    "title": "This machine, live", "panels": panels, "refresh_seconds": 0,
                    "time_range": {"from": "now-15m", "to": "now"}})
                answer.raise_for_status()
                return str(answer.json()["id"])

        loaded = arun(upload(), timeout=60_000)
        assert loaded["dataset"]["rows"] == 20_000
        with page_shots(qapp, qtbot, rt, tmp_path, arun, HERE, "DV_SCREENSHOT_THEME") as shots:
            shots.open("/plugins/data_visualizer/", size=(1440, 1380))
            js, count = shots.js, shots.count

            panels = len(loaded["dashboard"]["panels"])
            assert panels >= 3
            qtbot.waitUntil(lambda: count("#grid .chart svg") == panels, timeout=30_000)
            shots.save("data-visualizer", settle=500)

            # Explore: a query, its grid and a chart drawn by the builder.
            js("document.getElementById('tab-explore').click() || 1")
            js("dataVisualizer.state && document.querySelector('#datasets button.link')"
               ".click() || 1")
            qtbot.waitUntil(lambda: count("#results tbody tr") > 0, timeout=30_000)
            js("(document.getElementById('chart-type').value = 'bar') && "
               "(document.getElementById('chart-x').value = 'region') && "
               "(document.getElementById('chart-y').value = 'units') && "
               "(document.getElementById('chart-color').value = 'product') && "
               "(document.getElementById('chart-aggregate').value = 'sum') && "
               "(document.getElementById('chart-title').value = 'units sold per region')"
               " && 1")
            js("dataVisualizer.drawChart() || 1")
            qtbot.waitUntil(lambda: count("#chart svg .mark-rect path") > 0, timeout=30_000)
            shots.save("data-visualizer-explore", settle=400)
            # What the SVG button downloads: Vega's own SVG of the view, with its marks.
            js("dataVisualizer.state.chartView.toSVG().then((svg) => "
               "{ window.__svg = svg; }) && 1")
            qtbot.waitUntil(lambda: bool(js("Boolean(window.__svg)")))
            svg = str(js("window.__svg"))
            assert svg.startswith("<svg") and "mark-rect" in svg and "units sold per region" in svg
            assert svg.count("<path") >= 12  # 4 regions x 4 products, stacked

            # A live dashboard of this machine: the Performance Monitor's samples stream in
            # and are appended to the panels' existing views (the SVG is never redrawn).
            board_id = arun(live_board())
            js(f"dataVisualizer.loadBoards({board_id!r}) && "
               "document.getElementById('tab-dashboard').click() || 1")
            qtbot.waitUntil(lambda: count("#grid .chart svg") == 2, timeout=30_000)
            size = ("dataVisualizer.state.views.get(dataVisualizer.state.board.panels[0].id)"
                    ".data('rows').length")
            qtbot.waitUntil(lambda: int(js(size)) > 0, timeout=30_000)
            first = int(js(size))
            js("(document.querySelector('#grid .chart svg').dataset.first = 'yes') && 1")
            qtbot.waitUntil(lambda: int(js(size)) > first, timeout=30_000)
            assert js("document.querySelector('#grid .chart svg').dataset.first") == "yes"
            shots.save("data-visualizer-live", settle=400)

            # The page's own upload (what a drop does): a good file becomes a dataset and
            # a dashboard; a malformed one shows the line (its 422 is expected here).
            def page_upload(text: str, name: str) -> None:
                js(f"dataVisualizer.upload(new File([{text!r}], {name!r}, "
                   "{type: 'text/csv'})) && 1")
                qtbot.waitUntil(lambda: not js("Boolean(document.body.dataset.uploading)"),
                                timeout=30_000)

            page_upload("city;temp\nKöln;3,5\nOslo;-2\n", "weather.csv")
            names = ("[...document.querySelectorAll('#datasets button.link')]"
                     ".map(b => b.textContent)")
            assert "weather" in js(f"{names}.join(',')")
            assert js("dataVisualizer.state.board.title") == "weather.csv"
            # Edit a panel of the dropped file's dashboard: the bar chart becomes a pie.
            orders_board = loaded["dashboard"]["id"]
            js(f"dataVisualizer.loadBoards({orders_board!r}) && "
               "document.getElementById('tab-dashboard').click() || 1")
            qtbot.waitUntil(lambda: count("#grid .chart svg") == panels, timeout=30_000)
            js("[...document.querySelectorAll('#grid article')].find((a) => "
               "a.getAttribute('aria-label') === 'rows per region')"
               ".querySelector('button[title=\"Open in Explore\"]').click() || 1")
            qtbot.waitUntil(lambda: not js("document.getElementById('chart-update').hidden"))
            assert js("document.getElementById('chart-x').value") == "region"
            js("(document.getElementById('chart-type').value = 'pie') && 1")
            js("dataVisualizer.drawChart() || 1")
            qtbot.waitUntil(lambda: count("#chart svg .mark-arc path") == 4, timeout=30_000)
            js("document.getElementById('chart-update').click() || 1")
            qtbot.waitUntil(lambda: count("#grid .chart svg .mark-arc path") == 4,
                            timeout=30_000)

            page_upload("a,b\n1,2\n3,4,5\n", "broken.csv")
            shown = str(js("document.getElementById('page-error').textContent"))
            assert "line 3" in shown and "expected 2 fields" in shown
