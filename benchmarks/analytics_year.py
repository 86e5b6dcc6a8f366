"""Analytics Dashboard over a year of seeded activity against the raw v1 calls it needs.

A real app core (the embedded v1 API, the API integration layer and the Analytics
Dashboard) runs on 127.0.0.1 with a temporary home; ``analytics_dashboard.demo`` writes a
year of activity into its v1 store (40 users; ~100k rows at ``--scale 1``). Then,
alternating in each round:

* raw v1 (the baseline): ``GET /api/v1/analytics/usage?days=365&compare=true`` and
  ``GET /api/v1/analytics/trends?days=365&metrics=<the 9 daily series>`` with httpx,
  the data the dashboard's year view is made of, with no analysis;
* dashboard, fresh: ``GET .../overview?days=365&fresh=true`` and
  ``GET .../trends?days=365&metrics=<all 9>&forecast=14&fresh=true`` (through the layer's
  client, skipping its cache): KPI cards, moving averages, anomalies with explanations,
  forecasts and the previous year beside this one (so it fetches 730 days of series; the
  seeded data has none before the year);
* dashboard, repeat view: the same without ``fresh`` (the layer's 30 s cache answers the
  v1 part, as when someone switches tabs and back).

Prints medians per way and their ratio to the raw calls measured in the same run, and
the in-process cost of the analysis alone (9 series x 365 days).

    .venv/bin/python benchmarks/analytics_year.py [--rounds 5] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "plugins" / "analytics_dashboard"
LAYER = ROOT / "plugins" / "api_integration_layer"
for folder in (PLUGIN, LAYER):
    sys.path.append(str(folder))

SERIES = ["active_users", "new_users", "messages", "files", "logins", "failed_logins",
          "searches", "webhook_failed", "notifications"]


async def bench(rounds: int, scale: float) -> int:
    from analytics_dashboard import analysis
    from analytics_dashboard.demo import seed_year
    from analytics_dashboard.metrics import METRICS
    from api_integration_layer.testing import PASSWORD, embedded_server, plugin_folder

    with tempfile.TemporaryDirectory(prefix="analytics-bench-") as tmp:
        folder = plugin_folder(Path(tmp), PLUGIN, LAYER)
        async with embedded_server(Path(tmp) / "home", plugin_dirs=[folder]) as server:
            layer = server.plugin("api_integration_layer")
            await layer.client.auth.register("admin", "admin@example.org", PASSWORD)
            await layer.client.auth.login("admin", PASSWORD)
            assert server.runtime is not None and server.runtime.api_v1 is not None
            started = time.perf_counter()
            owner = layer.client.user["id"]
            counts = await server.runtime.api_v1.store.write(
                lambda conn: seed_year(conn, owner, scale=scale))
            print(f"seeded a year in {time.perf_counter() - started:.1f} s: "
                  + ", ".join(f"{v:,} {k}" for k, v in counts.items()))

            v1 = httpx.AsyncClient(base_url=server.base_url, timeout=120)
            login = await v1.post("/auth/login", json={"username": "admin",
                                                       "password": PASSWORD})
            v1.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
            plugin = httpx.AsyncClient(base_url=f"{server.url}plugins/analytics_dashboard/api/",
                                       headers=server.app_headers, timeout=120)
            raw_metrics = ",".join(METRICS[k].series or "" for k in SERIES)
            keys = ",".join(SERIES)

            async def raw() -> None:
                for r in (await v1.get("/analytics/usage", params={"days": 365,
                                                                   "compare": "true"}),
                          await v1.get("/analytics/trends", params={
                              "days": 365, "metrics": raw_metrics})):
                    r.raise_for_status()

            async def dashboard(fresh: bool) -> None:
                extra = {"fresh": "true"} if fresh else {}
                for r in (await plugin.get("overview", params={"days": 365, **extra}),
                          await plugin.get("trends", params={
                              "days": 365, "metrics": keys, "forecast": 14, **extra})):
                    r.raise_for_status()

            ways = {"raw v1 calls": raw,
                    "dashboard, fresh": lambda: dashboard(True),
                    "dashboard, repeat view": lambda: dashboard(False)}
            for way in ways.values():  # warm-up: routes built, caches filled
                await way()
            times: dict[str, list[float]] = {name: [] for name in ways}
            for _ in range(rounds):
                for name, way in ways.items():
                    t0 = time.perf_counter()
                    await way()
                    times[name].append(time.perf_counter() - t0)

            # the analysis alone, on data already fetched
            series = (await v1.get("/analytics/trends", params={
                "days": 365, "metrics": raw_metrics})).json()["series"]
            t0 = time.perf_counter()
            for key in SERIES:
                analysis.analyse(key, series[METRICS[key].series or ""], 365, window=7,
                                 threshold=3.5, forecast_days=14)
            analyse_ms = (time.perf_counter() - t0) * 1000
            await v1.aclose()
            await plugin.aclose()

    base = statistics.median(times["raw v1 calls"])
    print(f"\nyear view (365 days, KPI cards + 9 series), median of {rounds} rounds")
    print(f"  {'way':24} {'median ms':>10} {'min ms':>8} {'vs raw v1':>10}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {name:24} {median * 1000:10.1f} {min(samples) * 1000:8.1f} "
              f"{median / base:9.2f}x")
    print(f"  analysis alone (moving averages, anomalies, forecasts of 9 x 365 days): "
          f"{analyse_ms:.1f} ms")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies the seeded daily activity")
    args = parser.parse_args()
    return asyncio.run(bench(args.rounds, args.scale))


if __name__ == "__main__":
    raise SystemExit(main())
