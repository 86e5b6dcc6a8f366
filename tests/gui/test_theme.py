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


DARK_BG = "rgb(21, 24, 30)"     # app.css's dark --bg, #15181e
LIGHT_BG = "rgb(246, 247, 249)"  # and its light one, #f6f7f9
BODY_BG = "getComputedStyle(document.body).backgroundColor"


def test_web_pages_follow_the_apps_theme(shell: Any, qapp: Any, qtbot: Any, js: Any,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.gui.shell_helpers import wait_loaded

    try:
        monkeypatch.setenv(THEME_ENV, "dark")
        apply_theme(qapp)
        home = shell.window.open_page("/", "Plugins")
        wait_loaded(qtbot, js, home, "document.querySelectorAll('.plugin').length > 0")
        qtbot.waitUntil(lambda: js(home.view, BODY_BG) == DARK_BG, timeout=5_000)
        # A page opened now starts dark (no script of its own needed: the profile's).
        perf = shell.window.open_page("/plugins/performance_monitor/index.html")
        wait_loaded(qtbot, js, perf, "location.pathname.endsWith('index.html') && "
                                     "document.readyState === 'complete'")
        assert js(perf.view, BODY_BG) == DARK_BG
        assert js(perf.view, "document.documentElement.dataset.theme") == "dark"

        # Switching while the pages are open: they follow without a reload.
        js(home.view, "(window.__stayed = true)")
        monkeypatch.setenv(THEME_ENV, "light")
        apply_theme(qapp)
        qtbot.waitUntil(lambda: js(home.view, BODY_BG) == LIGHT_BG, timeout=5_000)
        qtbot.waitUntil(lambda: js(perf.view, BODY_BG) == LIGHT_BG, timeout=5_000)
        assert js(home.view, "window.__stayed") is True
    finally:
        monkeypatch.delenv(THEME_ENV, raising=False)
        apply_theme(qapp)


def test_the_history_chart_draws_a_single_day(qtbot: Any) -> None:
    chart = HistoryChart()
    qtbot.addWidget(chart)
    chart.set_trend([{"day": "2026-12-06", "success_rate": 0.75, "mean_duration": 0.4}],
                    "Pass rate and mean duration per day")
    assert chart.x_axis.min() < chart.x_axis.max()
    assert chart.pass_rate.count() == 1 and chart.pass_rate.pointsVisible()
    assert chart.minimumHeight() >= 120
