"""The plugin's settings (``[settings]`` in plugin.toml, overridden by settings.toml)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from performance_monitor.alerts import Thresholds


class MonitorConfig(BaseModel):
    """Validated settings; the host has already checked the types against the defaults."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    interval_seconds: float = Field(2.0, ge=0.1, le=300)
    sustain_samples: int = Field(3, ge=1, le=1000)
    cpu_threshold: float = Field(80.0, gt=0, le=100)
    memory_threshold: float = Field(85.0, gt=0, le=100)
    disk_threshold: float = Field(90.0, gt=0, le=100)
    swap_threshold: float = Field(80.0, gt=0, le=100)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> MonitorConfig:
        """Validate ``ctx.settings``; a ``ValueError`` names each bad key and its range."""
        try:
            return cls.model_validate(dict(settings))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']} "
                f"(got {err.get('input')!r})" for err in exc.errors())
            raise ValueError(f"settings [plugin.performance_monitor]: {problems}") from None

    @property
    def thresholds(self) -> Thresholds:
        """The start-up thresholds (the PUT route changes them at run time)."""
        return Thresholds(cpu=self.cpu_threshold, memory=self.memory_threshold,
                          disk=self.disk_threshold, swap=self.swap_threshold)
