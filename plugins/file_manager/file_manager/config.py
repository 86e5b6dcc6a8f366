"""The plugin's settings (``[settings]`` in plugin.toml, overridden by settings.toml).

Validated by the host before ``setup``; the result is ``ctx.config``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from plexichat_desktop.plugins.settings import PluginSettings

GIB = 1024**3


class FileManagerConfig(PluginSettings):
    """Roots the browser may show, and the caps that keep archives and searches bounded."""

    # Folders the plugin may touch; empty means the user's home. "~" is expanded.
    roots: list[str] = Field(default_factory=list, max_length=64)
    # Extraction stops (refused, naming the member) past this many bytes in total.
    max_extract_bytes: int = Field(4 * GIB, ge=1, le=1024 * GIB)
    # A member (or the whole archive) expanding more than this many times is a bomb.
    max_ratio: float = Field(200.0, ge=1, le=100_000)
    # An archive with more members than this is refused (naming the count) before its
    # listing is held in memory: a header can claim millions of tiny members.
    max_members: int = Field(100_000, ge=1, le=10_000_000)
    # Content search reads files up to this size only.
    search_max_file_bytes: int = Field(10 * 1024**2, ge=1, le=GIB)
    # A regex matching one file's lines (or one name) longer than this skips that file,
    # counted as regex_timeout: a backtracking pattern cannot stall the search.
    search_regex_seconds: float = Field(2.0, gt=0, le=600)
    # A search stops after this many matches.
    search_max_results: int = Field(2000, ge=1, le=100_000)
    # One listing shows at most this many entries (the rest is counted, not sent).
    list_max_entries: int = Field(20_000, ge=10, le=1_000_000)

    # A sync that would delete more files than this (on both sides together) is refused.
    sync_max_delete: int = Field(20, ge=0, le=1_000_000)

    @field_validator("roots")
    @classmethod
    def _roots_are_folders(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not entry or "\x00" in entry:
                raise ValueError(f"a root must be a folder path, got {entry!r}")
        return value

    def root_paths(self) -> list[Path]:
        """The configured roots, resolved; the home folder when none is configured."""
        if not self.roots:
            return [Path.home().resolve()]
        return [Path(entry).expanduser().resolve() for entry in self.roots]
