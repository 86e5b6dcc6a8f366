"""Shared helpers: a factory of made-up samples for the pure parts of the plugin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from performance_monitor.metrics import Sample

GIB = 1024**3


def make_sample(**overrides: Any) -> Sample:
    """A plausible sample; tests override the fields they are about."""
    values: dict[str, Any] = {
        "timestamp": 1_000_000.0, "cpu_percent": 10.0, "cpu_per_core": [10.0, 10.0],
        "cpu_count": 2, "memory_percent": 50.0, "memory_used": 8 * GIB,
        "memory_total": 16 * GIB, "memory_available": 8 * GIB, "swap_percent": 0.0,
        "swap_used": 0, "swap_total": 4 * GIB, "disk_path": "/", "disk_percent": 40.0,
        "disk_used": 40 * GIB, "disk_total": 100 * GIB, "disk_free": 60 * GIB,
        "disk_read_bps": 0.0, "disk_write_bps": 0.0, "net_sent_bps": 0.0,
        "net_recv_bps": 0.0, "load_1": 0.5, "load_5": 0.5, "load_15": 0.5,
        "process_count": 100, "host_rss": 50 * 1024**2,
    }
    values.update(overrides)
    return Sample(**values)


@pytest.fixture
def sample_factory() -> Callable[..., Sample]:
    """:func:`make_sample` as a fixture."""
    return make_sample
