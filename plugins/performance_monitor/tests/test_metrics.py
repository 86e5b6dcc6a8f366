"""Sampling real figures, rates from counter deltas, and the history window."""

from __future__ import annotations

import time
from collections.abc import Callable

import psutil
from performance_monitor.metrics import (
    History,
    Sample,
    Sampler,
    counter_rate,
    cpu_busy_percent,
    history_size,
    summed_rate,
)


def test_real_sample_has_sane_figures() -> None:
    sampler = Sampler()
    time.sleep(0.2)
    sample = sampler.sample()
    for name in ("cpu_percent", "memory_percent", "swap_percent", "disk_percent"):
        assert 0.0 <= getattr(sample, name) <= 100.0, name
    assert sample.cpu_count == len(sample.cpu_per_core) == psutil.cpu_count()
    assert all(0.0 <= core <= 100.0 for core in sample.cpu_per_core)
    assert sample.memory_total > 0 and 0 < sample.memory_used <= sample.memory_total
    assert sample.memory_available <= sample.memory_total
    assert sample.disk_total > 0 and 0 < sample.disk_used <= sample.disk_total
    assert sample.disk_free <= sample.disk_total
    assert sample.swap_used <= sample.swap_total or sample.swap_total == 0
    assert sample.process_count > 1
    assert sample.host_rss > 1024**2  # this Python process, psutil loaded
    assert abs(sample.timestamp - time.time()) < 5
    for rate in (sample.disk_read_bps, sample.disk_write_bps, sample.net_sent_bps,
                 sample.net_recv_bps):
        assert rate is None or rate >= 0
    if hasattr(psutil, "getloadavg"):
        assert sample.load_1 is not None and sample.load_1 >= 0


def test_successive_samples_have_rates_when_the_system_has_counters() -> None:
    sampler = Sampler()
    time.sleep(0.1)
    first = sampler.sample()
    time.sleep(0.1)
    second = sampler.sample()
    assert second.timestamp > first.timestamp
    if psutil.disk_io_counters() is not None:
        assert second.disk_read_bps is not None and second.disk_read_bps >= 0
        assert second.disk_write_bps is not None and second.disk_write_bps >= 0


def test_sample_serialises_to_plain_json_types(sample_factory: Callable[..., Sample]) -> None:
    sample = sample_factory(cpu_percent=33.3)
    data = sample.to_dict()
    assert data["cpu_percent"] == 33.3 and data["cpu_per_core"] == [10.0, 10.0]
    point = sample.point()
    assert "cpu_per_core" not in point and point["memory_percent"] == 50.0
    assert sample_factory(swap_total=0).metric_values()["swap"] is None
    assert sample.metric_values() == {"cpu": 33.3, "memory": 50.0, "disk": 40.0, "swap": 0.0}


def test_cpu_percent_comes_from_time_deltas() -> None:
    prev = {"user": 100.0, "system": 50.0, "idle": 800.0, "iowait": 50.0}
    # 10 s passed: 3 s user, 1 s system, 5 s idle, 1 s iowait -> 40 % busy.
    cur = {"user": 103.0, "system": 51.0, "idle": 805.0, "iowait": 51.0}
    assert cpu_busy_percent(prev, cur) == 40.0
    assert cpu_busy_percent(prev, prev) == 0.0


def test_cpu_percent_does_not_count_guest_time_twice() -> None:
    prev = {"user": 0.0, "idle": 0.0, "guest": 0.0}
    # Linux counts 2 s of guest time inside user as well: 2 s busy of 4 s.
    cur = {"user": 2.0, "idle": 2.0, "guest": 2.0}
    assert cpu_busy_percent(prev, cur) == 50.0


def test_counter_rate_is_delta_over_time_and_unknown_when_it_cannot_be() -> None:
    assert counter_rate(1_000, 3_000, 2.0) == 1_000.0
    assert counter_rate(5, 5, 1.0) == 0.0
    assert counter_rate(None, 3_000, 2.0) is None
    assert counter_rate(1_000, None, 2.0) is None
    assert counter_rate(1_000, 3_000, 0.0) is None
    assert counter_rate(3_000, 1_000, 1.0) is None  # counter reset


def test_summed_rate_ignores_devices_that_came_or_went_or_reset() -> None:
    prev = {"eth0": 1_000, "wlan0": 500, "gone0": 9_000, "reset0": 8_000}
    cur = {"eth0": 3_000, "wlan0": 1_500, "new0": 7_000, "reset0": 10}
    assert summed_rate(prev, cur, 2.0) == (2_000 + 1_000) / 2.0
    assert summed_rate({}, cur, 2.0) is None
    assert summed_rate({"a": 10}, {"a": 5}, 1.0) is None


def test_history_is_sized_from_the_interval() -> None:
    assert history_size(2.0) == 1801
    assert History(2.0).maxlen == 1801
    assert History(0.2).maxlen == 18_001
    assert History(7200.0).maxlen == 2


def test_history_drops_samples_beyond_its_size(sample_factory: Callable[..., Sample]) -> None:
    history = History(interval_seconds=60.0)  # 61 samples cover the hour
    history.extend(sample_factory(timestamp=1_000.0 + 60 * i) for i in range(100))
    assert len(history) == history.maxlen == 61
    kept = [s.timestamp for s in history]
    assert kept[0] == 1_000.0 + 60 * 39 and kept[-1] == 1_000.0 + 60 * 99
    assert history.latest is not None and history.latest.timestamp == kept[-1]


def test_history_drops_samples_older_than_an_hour(sample_factory: Callable[..., Sample]
                                                  ) -> None:
    history = History(interval_seconds=2.0)
    history.extend(sample_factory(timestamp=t) for t in (0.0, 100.0, 200.0))
    # The sampler was suspended for two hours: everything before is stale.
    history.append(sample_factory(timestamp=7_400.0))
    assert [s.timestamp for s in history] == [7_400.0]


def test_history_window_returns_the_last_minutes(sample_factory: Callable[..., Sample]
                                                 ) -> None:
    history = History(interval_seconds=30.0)
    now = 10_000.0
    history.extend(sample_factory(timestamp=now - 30 * i) for i in reversed(range(120)))
    assert len(history) == 120  # all within the hour, 121 slots
    five = history.window(5, now=now)
    assert [s.timestamp for s in five] == [now - 30 * i for i in reversed(range(11))]
    assert len(history.window(60, now=now)) == 120
    assert history.window(1, now=now + 3_600) == []
