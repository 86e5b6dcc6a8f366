"""Live sources: tables the plugin fills from the running app, queried like any dataset.

* ``pm_samples``: the Performance Monitor plugin's samples (CPU, memory, disk, network),
  read from its own route on the app's server; new samples are appended.
* ``v1_performance``: the v1 API's performance history (system, process and API
  figures) through ``ctx.api``; new samples are appended.
* ``v1_analytics``: the v1 API's daily trends (messages, files, users...) through
  ``ctx.api``; replaced on each refresh.

A source is refreshed when a query reads it and its data is older than the live
interval, when the page asks, and, while a page follows the stream, every interval for
appended sources: the new rows go to the page as ``rows`` events, which a live panel
appends to its chart (Vega's changeset API) without drawing it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from data_visualizer.engine import Engine, json_value
from plexichat_desktop.plugins.hub import EventHub
from plexichat_desktop.plugins.tls import shared_tls_context

__all__ = ["LIVE_SOURCES", "LiveSource", "LiveSources", "SourceUnavailable"]


class SourceUnavailable(RuntimeError):
    """The live source cannot be read now (its plugin is off, nobody is signed in...)."""


@dataclass(frozen=True)
class LiveSource:
    """A live table: its columns (name, DuckDB type), time column and whether new rows are
    appended (True) or the table replaced (False)."""

    name: str
    title: str
    columns: tuple[tuple[str, str], ...]
    time_column: str
    append: bool


LIVE_SOURCES: dict[str, LiveSource] = {s.name: s for s in (
    LiveSource("pm_samples", "Performance Monitor samples", (
        ("ts", "TIMESTAMP"), ("cpu_percent", "DOUBLE"), ("memory_percent", "DOUBLE"),
        ("swap_percent", "DOUBLE"), ("disk_percent", "DOUBLE"), ("disk_read_bps", "DOUBLE"),
        ("disk_write_bps", "DOUBLE"), ("net_sent_bps", "DOUBLE"), ("net_recv_bps", "DOUBLE"),
        ("load_1", "DOUBLE")), "ts", True),
    LiveSource("v1_performance", "v1 API performance", (
        ("ts", "TIMESTAMP"), ("cpu_percent", "DOUBLE"), ("memory_percent", "DOUBLE"),
        ("disk_percent", "DOUBLE"), ("process_cpu_percent", "DOUBLE"),
        ("process_rss", "BIGINT"), ("requests", "BIGINT"), ("requests_per_second", "DOUBLE"),
        ("error_rate", "DOUBLE"), ("latency_ms_p50", "DOUBLE"), ("latency_ms_p95", "DOUBLE")),
        "ts", True),
    LiveSource("v1_analytics", "v1 API daily trends", (
        ("day", "DATE"), ("metric", "VARCHAR"), ("count", "BIGINT")), "day", False),
)}


def _local(value: Any) -> dt.datetime | None:
    """A sample's time as a naive local datetime (epoch seconds or ISO text), with its
    ``fold`` set in the hour a clock change repeats, so :func:`_instant` tells the two
    apart."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(float(value))
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = dt.datetime.fromtimestamp(parsed.timestamp())
    return parsed


def _instant(value: dt.datetime) -> float:
    # Compared as instants: naive local times repeat in the hour the clocks go back,
    # and the rows of that hour were dropped as "not newer" than the hour before.
    return value.timestamp()


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class LiveSources:
    """Fetches the live sources into the engine and streams appended rows to the hub."""

    def __init__(self, engine: Engine, hub: EventHub, *, server_url: str | None,
                 app_token: str | None, api: Callable[[], Any], interval: float):
        self.engine = engine
        self.hub = hub
        self.server_url = server_url
        self.app_token = app_token
        self._api = api
        self.interval = interval
        self.last_time: dict[str, dt.datetime] = {}
        self.errors: dict[str, str] = {}
        self.followed: set[str] = set()
        self._locks = {name: asyncio.Lock() for name in LIVE_SOURCES}

    def info(self) -> list[dict[str, Any]]:
        """Every live source: title, columns, rows held, last update or last error."""
        out = []
        for source in LIVE_SOURCES.values():
            held = self.engine.live_info(source.name)
            out.append({
                "name": source.name, "title": source.title, "append": source.append,
                "time_column": source.time_column,
                "columns": held["columns"] if held else [
                    {"name": n, "type": t} for n, t in source.columns],
                "rows": held["rows"] if held else 0,
                "updated": held["updated"] if held else None,
                "error": self.errors.get(source.name)})
        return out

    async def refresh(self, name: str) -> list[dict[str, Any]]:
        """Fetch source ``name``; returns the rows that are new (as JSON objects) and
        publishes them as a ``rows`` event. Raises :class:`SourceUnavailable`."""
        source = LIVE_SOURCES[name]
        async with self._locks[name]:
            try:
                rows = await self._fetch(source)
            except SourceUnavailable as exc:
                self.errors[name] = str(exc)
                raise
            self.errors.pop(name, None)
            since = self.last_time.get(name) if source.append else None
            time_index = [c[0] for c in source.columns].index(source.time_column)
            if since is not None:
                rows = [r for r in rows if r[time_index] is not None
                        and _instant(r[time_index]) > _instant(since)]
            rows.sort(key=lambda r: (r[time_index] is None,
                                     _instant(r[time_index]) if isinstance(
                                         r[time_index], dt.datetime) else r[time_index]))
            if rows and isinstance(rows[-1][time_index], dt.datetime):
                self.last_time[name] = rows[-1][time_index]
            append = source.append and since is not None
            await asyncio.to_thread(self.engine.set_live, name, source.columns, rows,
                                    append=append)
            self.followed.add(name)
        names = [c[0] for c in source.columns]
        objects = [{n: json_value(v) for n, v in zip(names, r, strict=True)} for r in rows]
        self.hub.publish("rows", {"source": name, "replace": not append, "rows": objects,
                                  "time": time.time()})
        return objects

    async def refresh_if_stale(self, names: set[str]) -> None:
        """Refresh the live sources among ``names`` whose data is older than the interval
        (a query is about to read them); a source that fails keeps its last rows."""
        now = time.time()
        for name in names & set(LIVE_SOURCES):
            if now - self.engine.live_updated(name) >= self.interval:
                with contextlib.suppress(SourceUnavailable):
                    await self.refresh(name)

    async def run(self) -> None:
        """While a page follows the stream, append new rows of the followed sources."""
        while True:
            await asyncio.sleep(self.interval)
            if not self.hub.subscriber_count:
                continue
            for name in sorted(self.followed):
                if LIVE_SOURCES[name].append:
                    try:
                        await self.refresh(name)
                    except SourceUnavailable:
                        continue

    # -- fetching ------------------------------------------------------------------------
    async def _fetch(self, source: LiveSource) -> list[tuple[Any, ...]]:
        if source.name == "pm_samples":
            return await self._performance_monitor()
        api = self._client()
        if source.name == "v1_performance":
            page = await self._call(api.performance.history(minutes=60, limit=1000))
            rows: list[tuple[Any, ...]] = []
            for s in page.samples:
                process = s.get("process") or {}
                figures = s.get("api") or {}
                rows.append((_local(s.get("timestamp")), _num(s.get("cpu_percent")),
                             _num(s.get("memory_percent")), _num(s.get("disk_percent")),
                             _num(process.get("cpu_percent")),
                             _int(process.get("memory_rss")), _int(figures.get("requests")),
                             _num(figures.get("requests_per_second")),
                             _num(figures.get("error_rate")),
                             _num(figures.get("latency_ms_p50")),
                             _num(figures.get("latency_ms_p95"))))
            return rows
        trends = await self._call(api.analytics.trends(days=30))
        daily: list[tuple[Any, ...]] = []
        for metric, points in trends.series.items():
            for point in points:
                day = dt.date.fromisoformat(point.date[:10])
                daily.append((day, metric, int(point.count)))
        return daily

    def _client(self) -> Any:
        try:
            api = self._api()
        except Exception as exc:  # the layer is missing or refuses this plugin
            raise SourceUnavailable(f"the v1 API client is not available: {exc}") from None
        if getattr(api, "user", None) is None:
            raise SourceUnavailable("nobody is signed in to the v1 API: sign in on the API "
                                    "Integration Layer page")
        return api

    @staticmethod
    async def _call(awaitable: Any) -> Any:
        try:
            return await awaitable
        except PermissionError:
            raise
        except Exception as exc:
            raise SourceUnavailable(f"the v1 API did not answer: {exc}") from None

    async def _performance_monitor(self) -> list[tuple[Any, ...]]:
        if not self.server_url or not self.app_token:
            raise SourceUnavailable("the app's server is not running")
        url = self.server_url.rstrip("/") + "/plugins/performance_monitor/api/history"
        try:
            async with httpx.AsyncClient(timeout=10.0, trust_env=False,
                                         verify=shared_tls_context(trust_env=False)) as client:
                answer = await client.get(url, params={"minutes": 60}, headers={
                    "Authorization": f"Bearer {self.app_token}"})
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"the Performance Monitor did not answer: {exc}") from None
        if answer.status_code == 404:
            raise SourceUnavailable("the Performance Monitor plugin is not running (enable "
                                    "it in the plugin list)")
        if answer.status_code != 200:
            raise SourceUnavailable(f"the Performance Monitor answered {answer.status_code}")
        rows = []
        for s in answer.json().get("samples", []):
            rows.append((_local(s.get("timestamp")), *(_num(s.get(n)) for n, _ in
                                                        LIVE_SOURCES["pm_samples"].columns[1:])))
        return rows


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
