"""Light and dark themes that follow the desktop's colour scheme.

Fusion everywhere, so the app looks the same on every desktop and its own colours (the
dashboard's outcome dots, the charts) are tested against one style. The palette follows
``QStyleHints.colorScheme`` and changes with it while the app runs;
``PLEXICHAT_DESKTOP_THEME=light|dark`` overrides the desktop (e.g. for screenshots).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)

THEME_ENV = "PLEXICHAT_DESKTOP_THEME"
ACCENT = "#3563e9"

LIGHT = {
    "window": "#f5f6f8", "window_text": "#1d2433", "base": "#ffffff", "alt_base": "#f0f2f6",
    "text": "#1d2433", "button": "#eceff4", "button_text": "#1d2433", "mid": "#c9cfd9",
    "dark": "#9aa3b2", "tooltip_base": "#1d2433", "tooltip_text": "#ffffff",
    "placeholder": "#7b8494", "disabled": "#8f97a6", "link": "#2451c7",
    "highlight": ACCENT, "highlighted_text": "#ffffff",
}
DARK = {
    "window": "#1e2128", "window_text": "#e3e6ec", "base": "#16181d", "alt_base": "#1b1e24",
    "text": "#e3e6ec", "button": "#2a2e37", "button_text": "#e3e6ec", "mid": "#3a404c",
    "dark": "#0f1115", "tooltip_base": "#e3e6ec", "tooltip_text": "#16181d",
    "placeholder": "#8a93a3", "disabled": "#6c7482", "link": "#8fb0ff",
    "highlight": "#4a74f0", "highlighted_text": "#ffffff",
}


_listeners: list[Callable[[str], None]] = []


def on_scheme_applied(listener: Callable[[str], None]) -> Callable[[], None]:
    """Call ``listener("light"|"dark")`` whenever a scheme is applied (the web views use it
    to carry the theme into their pages); returns the function that unregisters it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def current_scheme(app: QGuiApplication) -> str:
    scheme = app.property("plexichatScheme")
    return scheme if scheme in ("light", "dark") else wanted_scheme(app)


def wanted_scheme(app: QGuiApplication) -> str:
    """"dark" or "light": the override if set, else what the desktop says."""
    override = os.environ.get(THEME_ENV, "").strip().lower()
    if override in ("light", "dark"):
        return override
    if override and override != "system":
        log.warning("%s=%r is not one of light, dark, system; following the desktop",
                    THEME_ENV, override)
    scheme = app.styleHints().colorScheme()
    return "dark" if scheme == Qt.ColorScheme.Dark else "light"


def palette_for(scheme: str) -> QPalette:
    colours = DARK if scheme == "dark" else LIGHT
    role = QPalette.ColorRole
    palette = QPalette()
    for name, colour_role in (
        ("window", role.Window), ("window_text", role.WindowText), ("base", role.Base),
        ("alt_base", role.AlternateBase), ("text", role.Text), ("button", role.Button),
        ("button_text", role.ButtonText), ("mid", role.Mid), ("dark", role.Dark),
        ("tooltip_base", role.ToolTipBase), ("tooltip_text", role.ToolTipText),
        ("placeholder", role.PlaceholderText), ("link", role.Link),
        ("highlight", role.Highlight), ("highlighted_text", role.HighlightedText),
    ):
        palette.setColor(colour_role, QColor(colours[name]))
    palette.setColor(role.BrightText, QColor("#ffffff"))
    palette.setColor(role.Light, QColor(colours["button"]).lighter(130))
    palette.setColor(role.Midlight, QColor(colours["button"]).lighter(115))
    palette.setColor(role.Shadow, QColor("#000000"))
    disabled = QPalette.ColorGroup.Disabled
    for colour_role in (role.WindowText, role.Text, role.ButtonText):
        palette.setColor(disabled, colour_role, QColor(colours["disabled"]))
    return palette


def apply_theme(app: QApplication) -> str:
    """Style the app now and whenever the desktop switches scheme; the scheme applied."""
    app.setStyle("Fusion")

    def apply() -> str:
        scheme = wanted_scheme(app)
        override = os.environ.get(THEME_ENV, "").strip().lower()
        hints = app.styleHints()
        # Where the platform can, it learns the override too, and with it Chromium's
        # prefers-color-scheme (for plugin pages that know no data-theme). Elsewhere a no-op.
        if override in ("light", "dark"):
            hints.setColorScheme(Qt.ColorScheme.Dark if override == "dark"
                                 else Qt.ColorScheme.Light)
            app.setProperty("plexichatSchemeSet", True)
        elif app.property("plexichatSchemeSet"):
            app.setProperty("plexichatSchemeSet", False)
            hints.unsetColorScheme()
        app.setPalette(palette_for(scheme))
        app.setProperty("plexichatScheme", scheme)
        for listener in list(_listeners):
            listener(scheme)
        return scheme

    if not app.property("plexichatThemeHooked"):
        app.styleHints().colorSchemeChanged.connect(lambda _scheme: apply())
        app.setProperty("plexichatThemeHooked", True)
    scheme = apply()
    log.debug("theme: %s", scheme)
    return scheme
