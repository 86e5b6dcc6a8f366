"""The plugin's settings (``[settings]`` in plugin.toml, overridden by settings.toml).

Validated by the host before ``setup`` (``settings_model`` on the plugin class), so a bad
value fails the plugin with the key named; the result is ``ctx.config``.
"""

from __future__ import annotations

from pydantic import Field

from performance_monitor.alerts import Thresholds
from plexichat_desktop.plugins.settings import PluginSettings


class MonitorConfig(PluginSettings):
    """Validated settings; the host has already checked the types against the defaults."""

    interval_seconds: float = Field(2.0, ge=0.1, le=300)
    sustain_samples: int = Field(3, ge=1, le=1000)
    cpu_threshold: float = Field(80.0, gt=0, le=100)
    memory_threshold: float = Field(85.0, gt=0, le=100)
    disk_threshold: float = Field(90.0, gt=0, le=100)
    swap_threshold: float = Field(80.0, gt=0, le=100)

    @property
    def thresholds(self) -> Thresholds:
        """The start-up thresholds (the PUT route changes them at run time)."""
        return Thresholds(cpu=self.cpu_threshold, memory=self.memory_threshold,
                          disk=self.disk_threshold, swap=self.swap_threshold)
