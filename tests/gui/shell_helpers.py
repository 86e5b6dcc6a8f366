"""Building the desktop shell in GUI tests (the fixtures using these are in conftest.py)."""

from __future__ import annotations

import asyncio
from typing import Any

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
