"""The plugin's settings (``[settings]`` in plugin.toml, overridden by settings.toml)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from plexichat_desktop.plugins.settings import PluginSettings


class AnalyzerConfig(PluginSettings):
    """Validated settings; ``roots`` are the only folders a scan may read."""

    roots: list[str] = Field(default_factory=lambda: ["~"], min_length=1)
    # Files above this size are listed as skipped: generated or vendored code would
    # dominate the figures and the time.
    max_file_kb: int = Field(1024, ge=1, le=100_000)
    # 0 = one worker process per core.
    workers: int = Field(0, ge=0, le=64)
    # Folder names never entered, on top of .gitignore (environments and caches are
    # rarely ignored in small projects, and scanning them is slow and meaningless).
    exclude: list[str] = Field(default_factory=lambda: [
        ".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".tox",
        ".mypy_cache", ".ruff_cache", ".pytest_cache"])
    max_complexity: int = Field(15, ge=1, le=1000)
    min_maintainability: float = Field(20.0, ge=0, le=100)
    vulture_min_confidence: int = Field(80, ge=0, le=100)
    keep_scans: int = Field(100, ge=1, le=10_000)
    tool_timeout_seconds: float = Field(300.0, gt=0, le=3600)
    # Folders scanned on ``scan_schedule`` (the host's grammar: "daily", "every_6_hours",
    # cron...), so the trends grow without anyone pressing Scan.
    scheduled_folders: list[str] = Field(default_factory=list)
    scan_schedule: str = Field("daily", min_length=1, max_length=100)

    def root_paths(self) -> list[Path]:
        """The roots with ``~`` and variables expanded."""
        return [Path(os.path.expandvars(os.path.expanduser(r))) for r in self.roots]
