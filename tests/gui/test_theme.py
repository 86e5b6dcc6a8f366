"""The theme follows the desktop's colour scheme, and the override, while the app runs."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtGui import QPalette

from plexichat_desktop.gui.dashboard.details import HistoryChart
from plexichat_desktop.gui.theme import THEME_ENV, apply_theme


def lightness(palette: QPalette, role: QPalette.ColorRole) -> int:
    return palette.color(role).lightness()


def test_dark_and_light_palettes_apply_and_charts_follow(qapp: Any, qtbot: Any,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    chart = HistoryChart()
    qtbot.addWidget(chart)
    try:
        monkeypatch.setenv(THEME_ENV, "dark")
        assert apply_theme(qapp) == "dark"
        palette = qapp.palette()
        assert lightness(palette, QPalette.ColorRole.Window) < 60
        assert lightness(palette, QPalette.ColorRole.WindowText) > 200
        assert qapp.style().name().lower() == "fusion"
        qtbot.waitUntil(lambda: chart.chart().backgroundBrush().color().lightness() < 60,
                        timeout=2_000)

        monkeypatch.setenv(THEME_ENV, "light")
        assert apply_theme(qapp) == "light"
        assert lightness(qapp.palette(), QPalette.ColorRole.Window) > 200
        qtbot.waitUntil(lambda: chart.chart().backgroundBrush().color().lightness() > 200,
                        timeout=2_000)
    finally:
        monkeypatch.delenv(THEME_ENV)
        apply_theme(qapp)


def test_an_unknown_override_follows_the_desktop(qapp: Any, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(THEME_ENV, "purple")
    try:
        assert apply_theme(qapp) in ("light", "dark")
        assert "not one of light, dark, system" in caplog.text
    finally:
        monkeypatch.delenv(THEME_ENV)
        apply_theme(qapp)
