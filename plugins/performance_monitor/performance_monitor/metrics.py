"""Sampling system figures with psutil, and the in-memory history of samples.

Nothing here knows about HTTP or the host: :class:`Sampler` is a plain blocking object
(run it in a worker thread) and :class:`History` a plain container, so tests use both
directly.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import psutil

HISTORY_SECONDS = 3600.0

# The metrics that have thresholds and can alert, with the names shown to people.
METRIC_LABELS: dict[str, str] = {"cpu": "CPU", "memory": "Memory", "disk": "Disk",
                                 "swap": "Swap"}


def root_filesystem() -> str:
    """The path whose filesystem counts as "the disk": ``/``, or the system drive on Windows."""
    if sys.platform == "win32":
        return os.environ.get("SYSTEMDRIVE", "C:") + "\\"
    return "/"


def cpu_busy_percent(prev: Mapping[str, float], cur: Mapping[str, float]) -> float:
    """Percent of time the CPU was busy between two ``psutil.cpu_times()`` readings.

    Computed here from the raw times instead of ``psutil.cpu_percent()`` because that
    function keeps its previous reading in module-level state shared by the whole process:
    another plugin calling it would shorten our measuring window.
    """
    busy0, total0 = _busy_and_total(prev)
    busy1, total1 = _busy_and_total(cur)
    elapsed = total1 - total0
    if elapsed <= 0:
        return 0.0
    return min(100.0, max(0.0, (busy1 - busy0) / elapsed * 100.0))


def _busy_and_total(times: Mapping[str, float]) -> tuple[float, float]:
    total = sum(times.values())
    # Linux also counts guest time inside user/nice; psutil subtracts it the same way.
    total -= times.get("guest", 0.0) + times.get("guest_nice", 0.0)
    idle = times.get("idle", 0.0) + times.get("iowait", 0.0)
    return total - idle, total


def counter_rate(prev: int | None, cur: int | None, seconds: float) -> float | None:
    """Per-second rate of a monotonically growing counter; ``None`` when unknown.

    A counter that went down (a device was reset or replaced) gives ``None`` rather than a
    negative or absurd rate.
    """
    if prev is None or cur is None or seconds <= 0 or cur < prev:
        return None
    return (cur - prev) / seconds


def summed_rate(prev: Mapping[str, int], cur: Mapping[str, int],
                seconds: float) -> float | None:
    """Sum of per-device counter rates over the devices present in both readings.

    Summing per device (not the grand totals) keeps a device that appears or disappears
    between two readings from producing a jump or a negative rate.
    """
    rates = [counter_rate(prev[name], value, seconds)
             for name, value in cur.items() if name in prev]
    known = [rate for rate in rates if rate is not None]
    return sum(known) if known else None


def _is_loopback(name: str, stats: Mapping[str, Any]) -> bool:
    flags = getattr(stats.get(name), "flags", "") or ""
    if "loopback" in flags.split(","):
        return True
    # Windows reports no flags; its loopback is "Loopback Pseudo-Interface 1".
    return name == "lo" or name.lower().startswith("loopback")


def _network_counters() -> tuple[dict[str, int], dict[str, int]]:
    """(bytes sent, bytes received) per network interface, loopback left out.

    Loopback is left out because it is not network traffic: it includes, among others,
    this very dashboard's own event stream.
    """
    try:
        per_nic = psutil.net_io_counters(pernic=True)
        stats = psutil.net_if_stats()
    except (OSError, RuntimeError):
        return {}, {}
    sent, recv = {}, {}
    for name, counters in per_nic.items():
        if _is_loopback(name, stats):
            continue
        sent[name], recv[name] = counters.bytes_sent, counters.bytes_recv
    return sent, recv


def _disk_counters() -> tuple[int | None, int | None]:
    try:
        io = psutil.disk_io_counters(perdisk=False)
    except (OSError, RuntimeError):
        io = None
    # None when the system exposes no disk statistics (some containers, Windows with
    # disk performance counters switched off).
    if io is None:
        return None, None
    return io.read_bytes, io.write_bytes


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of every figure. Percentages are 0..100, sizes bytes, rates bytes/s.

    A rate is ``None`` when it cannot be known (first reading, counter reset, no
    statistics on this system); ``load_*`` are ``None`` where there is no load average.
    """

    timestamp: float
    cpu_percent: float
    cpu_per_core: list[float]
    cpu_count: int
    memory_percent: float
    memory_used: int
    memory_total: int
    memory_available: int
    swap_percent: float
    swap_used: int
    swap_total: int
    disk_path: str
    disk_percent: float
    disk_used: int
    disk_total: int
    disk_free: int
    disk_read_bps: float | None
    disk_write_bps: float | None
    net_sent_bps: float | None
    net_recv_bps: float | None
    load_1: float | None
    load_5: float | None
    load_15: float | None
    process_count: int
    host_rss: int

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        return dataclasses.asdict(self)

    def point(self) -> dict[str, Any]:
        """The compact form kept for charts: no per-core list, no totals."""
        return {key: getattr(self, key) for key in POINT_FIELDS}

    def metric_values(self) -> dict[str, float | None]:
        """The values compared with the thresholds, by metric name."""
        return {
            "cpu": self.cpu_percent,
            "memory": self.memory_percent,
            "disk": self.disk_percent,
            # Without swap there is nothing to watch (psutil reports 0 %).
            "swap": self.swap_percent if self.swap_total > 0 else None,
        }


POINT_FIELDS = ("timestamp", "cpu_percent", "memory_percent", "swap_percent", "disk_percent",
                "disk_read_bps", "disk_write_bps", "net_sent_bps", "net_recv_bps", "load_1")


class Sampler:
    """Takes :class:`Sample` readings; rates cover the time since the previous reading.

    All calls block briefly (they read ``/proc`` or the OS equivalents, and the disk usage
    call can hang on a stalled filesystem), so the plugin calls them in a worker thread.
    The constructor takes the first reference reading.
    """

    def __init__(self, disk_path: str | None = None):
        self.disk_path = disk_path or root_filesystem()
        self._process = psutil.Process()
        self._prev_time = time.monotonic()
        self._prev_cpu = psutil.cpu_times()._asdict()
        self._prev_cores = [t._asdict() for t in psutil.cpu_times(percpu=True)]
        self._prev_disk = _disk_counters()
        self._prev_sent, self._prev_recv = _network_counters()

    def sample(self) -> Sample:
        """Read every figure now."""
        now = time.monotonic()
        elapsed = now - self._prev_time
        cpu = psutil.cpu_times()._asdict()
        cores = [t._asdict() for t in psutil.cpu_times(percpu=True)]
        disk_io = _disk_counters()
        sent, recv = _network_counters()
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        disk = psutil.disk_usage(self.disk_path)
        try:
            load: tuple[float | None, ...] = tuple(psutil.getloadavg())
        except (AttributeError, OSError):
            load = (None, None, None)
        try:
            rss = self._process.memory_info().rss
        except psutil.Error:
            rss = 0
        sample = Sample(
            timestamp=time.time(),
            cpu_percent=round(cpu_busy_percent(self._prev_cpu, cpu), 1),
            cpu_per_core=[round(cpu_busy_percent(p, c), 1)
                          for p, c in zip(self._prev_cores, cores, strict=False)],
            cpu_count=len(cores),
            memory_percent=round(memory.percent, 1),
            # total - available, not psutil's "used": that is what the percentage is based
            # on, and psutil's "used" means different things on different systems.
            memory_used=memory.total - memory.available,
            memory_total=memory.total,
            memory_available=memory.available,
            swap_percent=round(swap.percent, 1),
            swap_used=swap.used,
            swap_total=swap.total,
            disk_path=self.disk_path,
            disk_percent=round(disk.percent, 1),
            disk_used=disk.used,
            disk_total=disk.total,
            disk_free=disk.free,
            disk_read_bps=_round(counter_rate(self._prev_disk[0], disk_io[0], elapsed)),
            disk_write_bps=_round(counter_rate(self._prev_disk[1], disk_io[1], elapsed)),
            net_sent_bps=_round(summed_rate(self._prev_sent, sent, elapsed)),
            net_recv_bps=_round(summed_rate(self._prev_recv, recv, elapsed)),
            load_1=_round(load[0], 2),
            load_5=_round(load[1], 2),
            load_15=_round(load[2], 2),
            process_count=len(psutil.pids()),
            host_rss=rss,
        )
        self._prev_time, self._prev_cpu, self._prev_cores = now, cpu, cores
        self._prev_disk, self._prev_sent, self._prev_recv = disk_io, sent, recv
        return sample


def history_size(interval_seconds: float, seconds: float = HISTORY_SECONDS) -> int:
    """How many samples cover ``seconds`` at one sample per ``interval_seconds``."""
    return max(1, math.ceil(seconds / interval_seconds)) + 1


class History:
    """The samples of the last hour, oldest first.

    Bounded twice: by count (sized from the interval, so memory use is fixed) and by age
    (so a sampler that fell behind or a machine that slept keeps no stale figures).
    """

    def __init__(self, interval_seconds: float, seconds: float = HISTORY_SECONDS):
        self.seconds = seconds
        self._samples: deque[Sample] = deque(maxlen=history_size(interval_seconds, seconds))

    @property
    def maxlen(self) -> int:
        """The most samples kept."""
        return self._samples.maxlen or 0

    def append(self, sample: Sample) -> None:
        """Add the newest sample and forget those older than the window."""
        self._samples.append(sample)
        cutoff = sample.timestamp - self.seconds
        while self._samples and self._samples[0].timestamp < cutoff:
            self._samples.popleft()

    def extend(self, samples: Iterable[Sample]) -> None:
        """Append several samples, oldest first."""
        for sample in samples:
            self.append(sample)

    def window(self, minutes: float, now: float | None = None) -> list[Sample]:
        """The samples of the last ``minutes`` minutes before ``now`` (default: the clock)."""
        cutoff = (time.time() if now is None else now) - minutes * 60.0
        return [s for s in self._samples if s.timestamp >= cutoff]

    @property
    def latest(self) -> Sample | None:
        """The newest sample, if any."""
        return self._samples[-1] if self._samples else None

    def __len__(self) -> int:
        return len(self._samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(list(self._samples))
