"""Performance figures of the host and of the v1 API itself, sampled on a timer.

A sample holds system figures from psutil (CPU, memory, the data dir's disk, network
counters), this process's CPU and memory, and the API's own request rate, error rate and
latency percentiles since the previous sample. Samples are kept in memory only (a bounded
ring); an alert opens when a figure crosses its threshold and resolves when it drops back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plexichat_desktop.core.settings import ApiSettings
from plexichat_desktop.core.waiting import cancel_and_wait
from plexichat_desktop.server.v1.common import iso, new_id, now

if TYPE_CHECKING:
    import psutil

log = logging.getLogger(__name__)

MAX_ALERTS = 500
MAX_REQUEST_LOG = 20_000


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an ascending list; None when empty."""
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


class PerformanceMonitor:
    """Samples figures every ``performance_interval`` seconds; keeps history and alerts."""

    def __init__(self, settings: ApiSettings, disk_path: Path,
                 on_alert: Callable[[dict[str, Any]], None] | None = None):
        self.settings = settings
        self.disk_path = disk_path
        self.on_alert = on_alert
        self.history: deque[dict[str, Any]] = deque(maxlen=settings.performance_history)
        self.alerts: deque[dict[str, Any]] = deque(maxlen=MAX_ALERTS)
        self.active: dict[str, dict[str, Any]] = {}
        # (monotonic finish time, seconds, status); bounded so a flood cannot grow it.
        self._requests: deque[tuple[float, float, int]] = deque(maxlen=MAX_REQUEST_LOG)
        self._total_requests = 0
        self._total_errors = 0
        self._process: psutil.Process | None = None  # see _prime
        self._task: asyncio.Task[None] | None = None

    @property
    def thresholds(self) -> dict[str, float]:
        s = self.settings
        return {"cpu_percent": s.cpu_alert_percent, "memory_percent": s.memory_alert_percent,
                "disk_percent": s.disk_alert_percent, "latency_ms_p95": s.latency_alert_ms}

    def record_request(self, seconds: float, status: int) -> None:
        """Called for every HTTP request the API answered."""
        self._total_requests += 1
        if status >= 500:
            self._total_errors += 1
        self._requests.append((time.monotonic(), seconds, status))

    def api_figures(self, window: float) -> dict[str, Any]:
        """Request rate, error rate and latency over the last ``window`` seconds."""
        since = time.monotonic() - window
        recent = [r for r in self._requests if r[0] >= since]
        latencies = sorted(r[1] * 1000 for r in recent)
        errors = sum(1 for r in recent if r[2] >= 500)
        p50, p95, p99 = (percentile(latencies, f) for f in (0.5, 0.95, 0.99))
        return {
            "requests": len(recent),
            "requests_per_second": round(len(recent) / window, 3) if window else None,
            "error_rate": round(errors / len(recent), 4) if recent else 0.0,
            "latency_ms_p50": None if p50 is None else round(p50, 3),
            "latency_ms_p95": None if p95 is None else round(p95, 3),
            "latency_ms_p99": None if p99 is None else round(p99, 3),
            "total_requests": self._total_requests,
            "total_server_errors": self._total_errors,
        }

    def _prime(self) -> psutil.Process:
        # psutil (~8 ms of imports) is loaded when the sampler starts, after the server
        # answers, instead of with the runtime, before it.
        import psutil

        if self._process is None:
            process = psutil.Process()
            # The first cpu_percent(None) call only sets the reference point.
            psutil.cpu_percent(None)
            process.cpu_percent(None)
            self._process = process
        return self._process

    def sample(self) -> dict[str, Any]:
        """Current figures (system, process, API over the last interval)."""
        import psutil

        process_handle = self._prime()
        memory = psutil.virtual_memory()
        try:
            disk = psutil.disk_usage(str(self.disk_path))
            disk_figures: dict[str, Any] = {"disk_percent": disk.percent,
                                            "disk_used": disk.used, "disk_total": disk.total}
        except OSError:
            disk_figures = {"disk_percent": None, "disk_used": None, "disk_total": None}
        net = psutil.net_io_counters()
        with process_handle.oneshot():
            process = {"cpu_percent": process_handle.cpu_percent(None),
                       "memory_rss": process_handle.memory_info().rss,
                       "threads": process_handle.num_threads()}
        api = self.api_figures(self.settings.performance_interval)
        return {
            "timestamp": iso(now()),
            "cpu_percent": psutil.cpu_percent(None),
            "cpu_count": psutil.cpu_count() or 1,
            "memory_percent": memory.percent,
            "memory_used": memory.total - memory.available,
            "memory_total": memory.total,
            **disk_figures,
            "network_sent": net.bytes_sent if net else 0,
            "network_recv": net.bytes_recv if net else 0,
            "process": process,
            "api": api,
        }

    def evaluate(self, sample: dict[str, Any]) -> list[dict[str, Any]]:
        """Open or resolve alerts for ``sample``; returns the alerts opened now."""
        opened: list[dict[str, Any]] = []
        values = {"cpu_percent": sample["cpu_percent"],
                  "memory_percent": sample["memory_percent"],
                  "disk_percent": sample["disk_percent"],
                  "latency_ms_p95": sample["api"]["latency_ms_p95"]}
        for metric, threshold in self.thresholds.items():
            value = values[metric]
            current = self.active.get(metric)
            if value is not None and value > threshold:
                if current is None:
                    alert = {
                        "id": new_id(), "metric": metric, "value": value,
                        "threshold": threshold,
                        "severity": "critical" if value >= min(100.0, threshold * 1.1)
                        else "warning",
                        "message": f"{metric} is {value:g}, above the threshold {threshold:g}",
                        "started_at": sample["timestamp"], "resolved_at": None,
                        "active": True, "peak": value,
                    }
                    self.active[metric] = alert
                    self.alerts.append(alert)
                    opened.append(alert)
                else:
                    current["value"] = value
                    current["peak"] = max(current["peak"], value)
            elif current is not None:
                current["active"] = False
                current["resolved_at"] = sample["timestamp"]
                current["value"] = value
                del self.active[metric]
        return opened

    def tick(self) -> dict[str, Any]:
        """Take one sample, keep it and evaluate the alerts (what the timer does)."""
        sample = self.sample()
        self.history.append(sample)
        for alert in self.evaluate(sample):
            log.warning("v1 performance alert: %s", alert["message"])
            if self.on_alert is not None:
                self.on_alert(alert)
        return sample

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(),
                                                            name="v1 performance sampler")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        await asyncio.to_thread(self._prime)  # the import off the loop
        while True:
            await asyncio.sleep(self.settings.performance_interval)
            try:
                self.tick()
            except Exception:
                log.exception("v1 performance sample failed")
