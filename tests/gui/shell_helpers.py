"""Building the desktop shell in GUI tests (the fixtures using these are in conftest.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from plexichat_desktop.core.paths import bundled_plugins_dir
from plexichat_desktop.gui.app import DesktopShell


def make_shell(qapp: Any, runtime: Any, home: Any, webengine_missing: str | None = None
               ) -> DesktopShell:
    shell = DesktopShell(qapp, runtime, home, asyncio.Event(), webengine_missing)
    shell.show()
    return shell


def wait_loaded(qtbot: Any, js: Any, pane: Any, expression: str, timeout: int = 15_000
                ) -> None:
    """Until ``expression`` is truthy in the pane's page."""
    qtbot.waitUntil(lambda: bool(js(pane.view, expression)), timeout=timeout)


# The bundled plugins the window tests open. Every page of every bundled plugin is covered
# by test_plugin_pages.py and tests/test_bundled_plugins.py instead.
WINDOW_PLUGINS = ("performance_monitor", "api_integration_layer")


def bundled_only(folder: Path, *plugins: str) -> Path:
    """A plugin folder holding only these bundled plugins (linked), for a runtime made
    with ``bundled=False``. Switching the others off (:func:`keep_bundled`) is not
    enough for a window test: a switched-off plugin's tests can still be run, so the
    test dock and the /tests page collect each of them once (a pytest run of seconds,
    fifteen of them in the background of every window test)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in plugins:
        link = folder / name
        if not link.exists():
            link.symlink_to(bundled_plugins_dir() / name, target_is_directory=True)
    return folder


def keep_bundled(runtime: Any, *keep: str) -> None:
    """Disable every bundled plugin of ``runtime`` but ``keep``, before it starts."""
    from plexichat_desktop.plugins.discovery import Source, scan_folder

    for candidate in scan_folder(bundled_plugins_dir(), Source.BUNDLED):
        if candidate.root.name not in keep:
            runtime.plugins.remember_enabled(candidate.root.name, False)


RESTORED_TAB = "/plugins/performance_monitor/index.html"


def restore_tabs(home: Any, *tabs: tuple[str, str]) -> Any:
    """``home``'s window will restore these (path, title) tabs; the settings of a core on
    any free port."""
    import json

    from PySide6.QtCore import QSettings

    from plexichat_desktop.core.settings import Settings

    home.config_dir.mkdir(parents=True, exist_ok=True)
    gui = QSettings(str(home.config_dir / "gui.ini"), QSettings.Format.IniFormat)
    gui.setValue("main/tabs", json.dumps([{"path": p, "title": t} for p, t in tabs]))
    gui.sync()
    settings = Settings()
    settings.server.port = 0
    return settings


def restored_tab_runtime(home: Any) -> Any:
    """A prepared, not started core whose window will restore one tab (``RESTORED_TAB``)
    with only ``WINDOW_PLUGINS`` enabled: the desktop start as gui/app.py does it."""
    from plexichat_desktop.runtime import Runtime, RuntimeOptions

    settings = restore_tabs(home, (RESTORED_TAB, "Performance"))
    runtime = Runtime(home, settings, RuntimeOptions(include_installed=False))
    keep_bundled(runtime, *WINDOW_PLUGINS)
    runtime.prepare()
    return runtime
