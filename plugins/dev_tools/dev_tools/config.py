"""The plugin's settings (``[settings]`` in plugin.toml, overridden by settings.toml)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from plexichat_desktop.plugins.settings import PluginSettings


class DevToolsConfig(PluginSettings):
    """Validated settings; ``ctx.config``."""

    # Folders a workspace may be opened in; empty means the user's home folder.
    roots: list[str] = Field(default_factory=list, max_length=50)
    # Bytes of output kept per task, hook or test run (head and tail; the middle counted).
    max_output_bytes: int = Field(1_000_000, ge=4096, le=50_000_000)
    # Finished task runs remembered per app (newest kept).
    history_size: int = Field(50, ge=1, le=1000)
    # A preview works on a copy of the workspace; bigger ones are refused, not copied.
    max_copy_files: int = Field(20_000, ge=10, le=1_000_000)
    max_copy_bytes: int = Field(300_000_000, ge=1_000_000, le=10_000_000_000)
    # Seconds one hook, lint or format run may take before it is stopped.
    tool_timeout: float = Field(300.0, gt=0, le=3600)

    @field_validator("roots")
    @classmethod
    def _absolute(cls, roots: list[str]) -> list[str]:
        for root in roots:
            if not Path(root).expanduser().is_absolute():
                raise ValueError(f"{root!r} is not an absolute path")
        return roots

    def root_paths(self) -> list[Path]:
        """The roots as resolved existing folders (home when none is configured)."""
        raw = self.roots or [str(Path.home())]
        paths = []
        for root in raw:
            path = Path(root).expanduser().resolve()
            if path.is_dir() and path not in paths:
                paths.append(path)
        return paths
