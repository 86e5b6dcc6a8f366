"""Alert sustain / clear / peak logic, and threshold validation."""

from __future__ import annotations

import json

import pytest
from performance_monitor.alerts import (
    AlertMonitor,
    ThresholdError,
    Thresholds,
    parse_thresholds_update,
)
from performance_monitor.config import MonitorConfig


def feed(monitor: AlertMonitor, metric: str, values: list[float], start: float = 0.0,
         step: float = 2.0) -> list[tuple[float, str, int]]:
    """Feed one metric sample by sample; returns (timestamp, kind, alert id) of changes."""
    changes = []
    for i, value in enumerate(values):
        ts = start + i * step
        changes += [(ts, c.kind, c.alert.id) for c in monitor.update({metric: value}, ts)]
    return changes


def test_single_spike_does_not_alert() -> None:
    monitor = AlertMonitor(Thresholds(cpu=80.0), sustain_samples=3)
    assert feed(monitor, "cpu", [10, 95, 10, 96, 97, 10, 99]) == []
    assert monitor.active == [] and monitor.all == []


def test_sustained_crossing_starts_an_alert_dated_from_the_first_sample_above() -> None:
    monitor = AlertMonitor(Thresholds(cpu=80.0), sustain_samples=3)
    changes = feed(monitor, "cpu", [50, 85, 90, 88])
    assert changes == [(6.0, "start", 1)]
    [alert] = monitor.active
    assert alert.metric == "cpu" and alert.threshold == 80.0
    assert alert.started_at == 2.0  # the crossing, not the moment it became certain
    assert alert.peak == 90.0 and alert.peak_at == 4.0 and alert.last_value == 88.0
    assert alert.active and alert.ended_at is None


def test_value_equal_to_threshold_is_not_above_it() -> None:
    monitor = AlertMonitor(Thresholds(memory=85.0), sustain_samples=1)
    assert feed(monitor, "memory", [85.0, 85.0]) == []
    assert feed(monitor, "memory", [85.1]) == [(0.0, "start", 1)]


def test_peak_follows_the_whole_alert_and_a_dip_does_not_end_it() -> None:
    monitor = AlertMonitor(Thresholds(cpu=80.0), sustain_samples=3)
    changes = feed(monitor, "cpu", [81, 82, 83, 99, 70, 91, 60, 60])
    assert changes == [(4.0, "start", 1)]
    [alert] = monitor.active
    assert alert.peak == 99.0 and alert.peak_at == 6.0 and alert.last_value == 60.0


def test_alert_ends_after_sustained_clear_dated_from_the_first_sample_under() -> None:
    monitor = AlertMonitor(Thresholds(disk=90.0), sustain_samples=3)
    changes = feed(monitor, "disk", [95, 96, 97, 50, 50, 50, 50])
    assert changes == [(4.0, "start", 1), (10.0, "end", 1)]
    assert monitor.active == []
    [ended] = monitor.recent
    assert ended.started_at == 0.0 and ended.ended_at == 6.0 and ended.peak == 97.0
    assert not ended.active
    assert ended.to_dict()["label"] == "Disk" and ended.to_dict()["active"] is False


def test_a_new_crossing_after_an_end_is_a_new_alert() -> None:
    monitor = AlertMonitor(Thresholds(cpu=50.0), sustain_samples=2)
    changes = feed(monitor, "cpu", [60, 60, 10, 10, 70, 75, 10, 10])
    assert [(kind, alert_id) for _, kind, alert_id in changes] == [
        ("start", 1), ("end", 1), ("start", 2), ("end", 2)]
    assert [a.id for a in monitor.recent] == [2, 1]  # newest first
    assert monitor.recent[0].peak == 75.0 and monitor.recent[1].peak == 60.0


def test_metrics_alert_independently_and_unknown_values_are_skipped() -> None:
    monitor = AlertMonitor(Thresholds(cpu=80.0, swap=80.0), sustain_samples=2)
    monitor.update({"cpu": 90.0, "swap": 90.0}, 0.0)
    monitor.update({"cpu": 90.0, "swap": None}, 1.0)  # no swap reading: no progress
    assert [a.metric for a in monitor.active] == ["cpu"]
    assert monitor.pending() == {"swap": 1}
    changes = monitor.update({"cpu": 90.0, "swap": 95.0}, 2.0)
    assert [(c.kind, c.alert.metric) for c in changes] == [("start", "swap")]
    assert [a.metric for a in monitor.active] == ["cpu", "swap"]


def test_threshold_of_100_never_alerts() -> None:
    monitor = AlertMonitor(Thresholds(cpu=100.0), sustain_samples=1)
    assert feed(monitor, "cpu", [100.0] * 5) == []


def test_raising_the_threshold_at_run_time_ends_an_active_alert() -> None:
    monitor = AlertMonitor(Thresholds(memory=50.0), sustain_samples=2)
    assert feed(monitor, "memory", [60, 60]) == [(2.0, "start", 1)]
    monitor.thresholds = Thresholds(memory=70.0)
    # Until it ends it is judged by the new threshold and keeps the one it crossed
    # (audit: rewriting it gave "Memory > 100 %, peak 10.5 %" in the recent list).
    [alert] = monitor.active
    assert (alert.threshold, alert.ends_under) == (50.0, 70.0)
    assert alert.to_dict()["judged_by"] == 70.0 and alert.to_dict()["threshold"] == 50.0
    assert feed(monitor, "memory", [60, 60], start=10.0) == [(12.0, "end", 1)]
    assert monitor.recent[0].threshold == 50.0


def test_only_the_last_alerts_are_kept() -> None:
    monitor = AlertMonitor(Thresholds(cpu=50.0), sustain_samples=1, keep=100)
    for i in range(130):
        monitor.update({"cpu": 90.0}, 2.0 * i)
        monitor.update({"cpu": 10.0}, 2.0 * i + 1)
    kept = monitor.all
    assert len(kept) == 100
    assert kept[0].id == 130 and kept[-1].id == 31


def test_sustain_must_be_positive() -> None:
    with pytest.raises(ValueError, match="sustain_samples"):
        AlertMonitor(sustain_samples=0)


def test_thresholds_update_changes_only_the_given_fields() -> None:
    current = Thresholds()
    updated = parse_thresholds_update(json.dumps({"cpu": 75, "swap": 100}), current)
    assert updated == Thresholds(cpu=75.0, memory=85.0, disk=90.0, swap=100.0)
    assert parse_thresholds_update({"memory": 0.5}, current).memory == 0.5
    with pytest.raises(ThresholdError) as caught:  # audit: null was silently ignored
        parse_thresholds_update(json.dumps({"cpu": None, "memory": 50}), current)
    assert set(caught.value.errors) == {"cpu"}


@pytest.mark.parametrize(("body", "field"), [
    ({"cpu": 0}, "cpu"),
    ({"memory": -5}, "memory"),
    ({"disk": 100.5}, "disk"),
    ({"swap": "80"}, "swap"),
    ({"cpu": True}, "cpu"),
    ({"cpu": None, "disk": 101}, "disk"),
    ({"gpu": 50}, "gpu"),
])
def test_bad_thresholds_are_refused_naming_the_field(body: dict, field: str) -> None:
    with pytest.raises(ThresholdError) as info:
        parse_thresholds_update(json.dumps(body), Thresholds())
    assert list(info.value.errors) == [field]
    assert info.value.errors[field].startswith(f"{field} ")
    assert str(info.value) == info.value.errors[field]


@pytest.mark.parametrize("body", [b"", b"not json", b"[80]", b"{}", b"80"])
def test_bodies_that_are_not_an_update_are_refused(body: bytes) -> None:
    with pytest.raises(ThresholdError) as info:
        parse_thresholds_update(body, Thresholds())
    assert list(info.value.errors) == ["body"]
    assert str(info.value).startswith("body ")


def test_nan_and_infinity_are_refused() -> None:
    for raw in (b'{"cpu": NaN}', b'{"cpu": Infinity}'):
        with pytest.raises(ThresholdError):
            parse_thresholds_update(raw, Thresholds())


def test_settings_are_validated_with_the_key_named() -> None:
    config = MonitorConfig.from_settings({"interval_seconds": 0.5, "cpu_threshold": 70.0})
    assert config.interval_seconds == 0.5 and config.thresholds.cpu == 70.0
    assert config.thresholds.memory == 85.0 and config.sustain_samples == 3
    with pytest.raises(ValueError, match="memory_threshold"):
        MonitorConfig.from_settings({"memory_threshold": 150.0})
    with pytest.raises(ValueError, match="interval_seconds"):
        MonitorConfig.from_settings({"interval_seconds": 0.0})
    with pytest.raises(ValueError, match="sustain_samples"):
        MonitorConfig.from_settings({"sustain_samples": 0})
