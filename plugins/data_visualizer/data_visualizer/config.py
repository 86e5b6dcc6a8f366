"""The Data Visualizer's settings (``[plugin.data_visualizer]`` in settings.toml)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from plexichat_desktop.plugins.settings import PluginSettings


class VisualizerConfig(PluginSettings):
    """Limits of uploads, queries and live sources."""

    max_upload_mb: float = Field(512.0, gt=0, le=16_384)
    max_rows: int = Field(10_000, ge=10, le=1_000_000)
    query_timeout_seconds: float = Field(30.0, gt=0, le=3600)
    live_interval_seconds: float = Field(2.0, ge=0.2, le=3600)
    threads: int = Field(2, ge=1, le=64)
    memory_limit: str = "1GB"

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, value: str) -> str:
        if not re.fullmatch(r"\s*\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*", value, re.I):
            raise ValueError("a size such as '512MB' or '2GB'")
        return value.strip()
