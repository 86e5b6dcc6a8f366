"""Performance Monitor: live CPU, memory, disk, swap and network figures with alerts.

The plugin class lives here; the work is in modules layered so tests can use each on its
own: ``metrics`` samples with psutil and keeps the history, ``alerts`` turns values into
alerts, ``suggestions`` computes advice; the host's ``EventHub`` fans events out to the page's
event streams and its settings validator checks ``config.MonitorConfig``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import JSONResponse

from performance_monitor.alerts import Alert, AlertMonitor, ThresholdError, parse_thresholds_update
from performance_monitor.config import MonitorConfig
from performance_monitor.metrics import METRIC_LABELS, History, Sample, Sampler
from performance_monitor.suggestions import compute_suggestions
from plexichat_desktop.plugins.api import Plugin, PluginContext
from plexichat_desktop.plugins.hub import EventHub

# Suggestions name processes, which come and go; redo them this often while an alert lasts.
SUGGESTION_REFRESH_SECONDS = 15.0
# A disk alert's advice walks folders (up to 1.5 s of CPU): looked at again after this
# long or once the disk figure moved by a point. Every 15 s a disk sitting over its
# threshold for days cost the app 13 times its idle CPU.
DISK_REFRESH_SECONDS = 300.0
DISK_REFRESH_POINTS = 1.0
# The first reading waits this long at most, so the page has figures soon after start-up.
FIRST_SAMPLE_DELAY = 1.0


class PerformanceMonitorPlugin(Plugin):
    """Samples the system, keeps an hour of history, raises alerts, serves the dashboard."""

    settings_model = MonitorConfig

    def setup(self, ctx: PluginContext) -> None:
        """Register the routes and start the sampler (the host validated the settings)."""
        self.ctx = ctx
        self.config: MonitorConfig = ctx.config
        self.history = History(self.config.interval_seconds)
        self.monitor = AlertMonitor(self.config.thresholds, self.config.sustain_samples)
        self.hub = EventHub(maxsize=64)
        self._ready = asyncio.Event()
        self._starting: dict[int, asyncio.Task[None]] = {}  # alerts whose advice is due

        ctx.add_route("/current", self.current)
        ctx.add_route("/history", self.history_points)
        ctx.add_route("/alerts", self.alerts)
        ctx.add_route("/thresholds", self.get_thresholds)
        ctx.add_route("/thresholds", self.put_thresholds, methods=["PUT"])
        ctx.add_route("/stream", self.stream)
        ctx.create_task(self._sample_loop(), name="performance_monitor sampler")
        ctx.create_task(self._refresh_loop(), name="performance_monitor suggestions")
        ctx.logger.info("sampling every %g s; thresholds %s", self.config.interval_seconds,
                        self.monitor.thresholds.model_dump())

    # -- routes ------------------------------------------------------------------------
    async def current(self) -> Any:
        """The latest sample (waits for the first one right after start-up)."""
        wait = max(5.0, 2 * self.config.interval_seconds + FIRST_SAMPLE_DELAY)
        # Stop waiting when the plugin stops, or the app's shutdown waits for this request.
        ready = asyncio.ensure_future(self._ready.wait())
        stopping = asyncio.ensure_future(self.ctx.stopping.wait())
        try:
            await asyncio.wait({ready, stopping}, timeout=wait,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            stopping.cancel()
        latest = self.history.latest
        if latest is None:
            return JSONResponse({"detail": f"no sample could be taken within {wait:g} s; "
                                           "see the log for the sampler's error"},
                                status_code=503)
        return latest.to_dict()

    async def history_points(
        self, minutes: Annotated[int, Query(ge=1, le=60, description="How far back.")] = 60,
    ) -> dict[str, Any]:
        """Compact samples of the last ``minutes`` minutes, oldest first."""
        return {
            "minutes": minutes,
            "interval_seconds": self.config.interval_seconds,
            "samples": [s.point() for s in self.history.window(minutes)],
        }

    async def alerts(self) -> dict[str, Any]:
        """Active alerts (with suggestions), recently ended ones, and pending crossings."""
        return {
            "active": [a.to_dict() for a in self.monitor.active],
            "recent": [a.to_dict() for a in self.monitor.recent],
            "pending": self.monitor.pending(),
            "sustain_samples": self.monitor.sustain,
            "interval_seconds": self.config.interval_seconds,
        }

    async def get_thresholds(self) -> dict[str, float]:
        """The thresholds in force, in percent."""
        return self.monitor.thresholds.model_dump()

    async def put_thresholds(self, request: Request) -> Any:
        """Change some or all thresholds: a JSON object such as ``{"cpu": 75}``.

        Every value must be a number with 0 < value <= 100; otherwise 422 with ``detail``
        naming each bad field and ``errors`` mapping field -> message (for forms).
        The change lasts until the plugin restarts; settings.toml holds the defaults.
        """
        try:
            updated = parse_thresholds_update(await request.body(), self.monitor.thresholds)
        except ThresholdError as exc:
            return JSONResponse({"detail": str(exc), "errors": exc.errors}, status_code=422)
        self.monitor.thresholds = updated
        data = updated.model_dump()
        self.hub.publish("thresholds", data)
        self.ctx.logger.info("thresholds changed to %s", data)
        return data

    async def stream(self) -> Any:
        """Server-Sent Events: ``thresholds`` and the latest ``sample`` at once, then a
        ``sample`` every interval and an ``alert`` whenever one starts, ends or its
        suggestions change."""
        first: list[tuple[str, Any]] = [("thresholds", self.monitor.thresholds.model_dump())]
        if self.history.latest is not None:
            first.append(("sample", self.history.latest.to_dict()))
        return self.ctx.event_stream(self.hub.events(first))

    # -- background work ---------------------------------------------------------------
    async def _sample_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.interval_seconds
        sampler = await asyncio.to_thread(Sampler)
        await asyncio.sleep(min(interval, FIRST_SAMPLE_DELAY))
        next_at = loop.time()
        while True:
            try:
                sample = await asyncio.to_thread(sampler.sample)
            except Exception:
                # One failed reading (a vanished mount, a transient OS error) must not end
                # the monitor; the next tick tries again.
                self.ctx.logger.exception("taking a sample failed")
            else:
                await self._ingest(sample)
            next_at += interval
            delay = next_at - loop.time()
            if delay < 0:
                # Fell behind (the machine slept, or a slow call): skip the missed ticks
                # instead of sampling in a burst.
                next_at, delay = loop.time(), 0.0
            await asyncio.sleep(delay)

    async def _ingest(self, sample: Sample) -> None:
        self.history.append(sample)
        self._ready.set()
        self.hub.publish("sample", sample.to_dict())
        for change in self.monitor.update(sample.metric_values(), sample.timestamp):
            alert = change.alert
            label = METRIC_LABELS[alert.metric]
            if change.kind == "start":
                self.ctx.logger.warning("%s above %g%% since %s (peak %.1f%%)", label,
                                        alert.threshold, _clock(alert.started_at), alert.peak)
                # The advice takes up to 1.5 s (a folder walk): worked out beside the
                # sampler, which waited for it and skipped samples meanwhile.
                self._starting[alert.id] = self.ctx.create_task(
                    self._start_with_advice(alert, sample),
                    name=f"performance_monitor advice {alert.metric}")
            else:
                self.ctx.logger.info("%s back under %g%% (peak was %.1f%%)", label,
                                     alert.ends_under, alert.peak)
                starting = self._starting.pop(alert.id, None)
                if starting is not None:
                    await asyncio.wait({starting})  # its start is announced first
                self._announce("end", alert)

    async def _start_with_advice(self, alert: Alert, sample: Sample) -> None:
        alert.suggestions = await self._suggest(alert.metric, sample)
        self._starting.pop(alert.id, None)
        self._announce("start", alert)

    async def _suggest(self, metric: str, sample: Sample) -> list[str]:
        try:
            return await asyncio.to_thread(compute_suggestions, metric, sample)
        except Exception:
            self.ctx.logger.exception("computing suggestions for %s failed", metric)
            return []

    def _announce(self, kind: str, alert: Alert) -> None:
        data = {"kind": kind, "alert": alert.to_dict()}
        self.hub.publish("alert", data)
        if kind in ("start", "end"):
            self.ctx.publish("alert", data)

    async def _refresh_loop(self) -> None:
        disk_seen: tuple[float, float] | None = None  # (when, disk percent) last walked
        while True:
            await asyncio.sleep(SUGGESTION_REFRESH_SECONDS)
            latest = self.history.latest
            for alert in self.monitor.active:
                if latest is None or time.time() - alert.started_at < SUGGESTION_REFRESH_SECONDS:
                    continue
                if alert.metric == "disk":
                    now, percent = time.monotonic(), latest.disk_percent or 0.0
                    if disk_seen is not None and now - disk_seen[0] < DISK_REFRESH_SECONDS \
                            and abs(percent - disk_seen[1]) < DISK_REFRESH_POINTS:
                        continue
                    disk_seen = (now, percent)
                suggestions = await self._suggest(alert.metric, latest)
                if alert.active and suggestions and suggestions != alert.suggestions:
                    alert.suggestions = suggestions
                    self._announce("update", alert)


def _clock(timestamp: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(timestamp))


__all__ = ["PerformanceMonitorPlugin"]
