"""Where PlexiChat Desktop keeps its files.

Everything lives in the platformdirs locations for the user, unless the environment
variable ``PLEXICHAT_DESKTOP_HOME`` names a folder: then config, data, cache and logs all
go below it and nothing is written elsewhere (tests and side-by-side instances rely on it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "plexichat-desktop"
HOME_ENV = "PLEXICHAT_DESKTOP_HOME"
PLUGINS_PATH_ENV = "PLEXICHAT_DESKTOP_PLUGINS_PATH"

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class AppPaths:
    """The four per-user folders of one installation (or of one ``PLEXICHAT_DESKTOP_HOME``)."""

    config_dir: Path
    data_dir: Path
    cache_dir: Path
    log_dir: Path

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str] | None = None) -> AppPaths:
        env = os.environ if environ is None else environ
        home = env.get(HOME_ENV)
        if home:
            root = Path(home).expanduser().resolve()
            return cls(root / "config", root / "data", root / "cache", root / "logs")
        dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
        return cls(
            Path(dirs.user_config_dir),
            Path(dirs.user_data_dir),
            Path(dirs.user_cache_dir),
            Path(dirs.user_log_dir),
        )

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.toml"

    @property
    def token_file(self) -> Path:
        return self.config_dir / "token"

    @property
    def user_plugins_dir(self) -> Path:
        return self.data_dir / "plugins"

    @property
    def plugin_data_root(self) -> Path:
        return self.data_dir / "plugin-data"

    @property
    def plugin_states_file(self) -> Path:
        return self.data_dir / "plugin-states.json"

    @property
    def roots(self) -> tuple[Path, Path, Path, Path]:
        return (self.config_dir, self.data_dir, self.cache_dir, self.log_dir)

    def ensure(self) -> None:
        """Create the four folders, private to the user (0700), and make everything the
        process creates from now on private too (umask 077)."""
        from plexichat_desktop.core.permissions import private_dir, private_umask

        private_umask()
        for folder in self.roots:
            private_dir(folder)


def extra_plugin_dirs(environ: os._Environ[str] | dict[str, str] | None = None) -> list[Path]:
    """Folders named by ``PLEXICHAT_DESKTOP_PLUGINS_PATH`` (``os.pathsep``-separated)."""
    env = os.environ if environ is None else environ
    raw = env.get(PLUGINS_PATH_ENV, "")
    return [Path(part).expanduser().resolve() for part in raw.split(os.pathsep) if part.strip()]


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[-1]


def bundled_plugins_dir() -> Path:
    """The plugins shipped with the app: inside the package when installed, else the repo."""
    return _first_existing(_PACKAGE_DIR / "_bundled" / "plugins", _PACKAGE_DIR.parent / "plugins")


def resources_dir() -> Path:
    """Host web assets, templates and icons."""
    return _first_existing(
        _PACKAGE_DIR / "_bundled" / "resources", _PACKAGE_DIR.parent / "resources"
    )
