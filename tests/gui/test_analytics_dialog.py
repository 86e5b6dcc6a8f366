"""The dock's Analytics… dialog: failure patterns, durations and categories of real runs,
the same figures as /tests/analytics."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gui.test_native_dashboard import dashboard_of, shell, trigger  # noqa: F401

SCREENSHOTS = os.environ.get("PLEXICHAT_SCREENSHOT_DIR")

SUITE = '''
import time
import uuid

import pytest


@pytest.mark.security
def test_token_check():
    assert str(uuid.uuid4()) == "expected", "unexpected token"


@pytest.mark.performance
def test_waits():
    time.sleep(0.35)
'''


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    root = tmp_path / "plugins"
    folder = root / "analysed"
    (folder / "tests").mkdir(parents=True)
    (folder / "plugin.toml").write_text('id = "analysed"\nname = "Analysed"\n'
                                        'version = "1.0.0"\nentry = "analysed_pkg:Plugin"\n')
    (folder / "tests" / "test_a.py").write_text(SUITE)
    return root


def cells(table: Any) -> list[list[str]]:
    return [[table.item(r, c).text() for c in range(table.columnCount())]
            for r in range(table.rowCount())]


def test_the_dialog_shows_patterns_durations_and_categories(shell: Any, qtbot: Any,  # noqa: F811
                                                            arun: Any) -> None:
    panel = dashboard_of(shell, qtbot)
    runtime = shell.runtime
    client = httpx.AsyncClient(base_url=runtime.url, timeout=30,
                               headers={"Authorization": f"Bearer {runtime.token}"})
    try:
        for _ in range(2):
            r = arun(client.post("/tests/run?wait=true", json={"plugin_name": "analysed"}))
            assert r.status_code == 200
        web = arun(client.get("/tests/analytics/failures")).json()["patterns"]
    finally:
        arun(client.aclose())
    trigger(panel, "Analytics…")
    dialog = next(d for d in panel.findChildren(object) if type(d).__name__ ==
                  "AnalyticsDialog")
    qtbot.waitUntil(dialog.loaded.is_set, timeout=10_000)
    patterns = cells(dialog.patterns)
    # One bug with two different tokens: one pattern of two failures, as the web says.
    assert [(row[0], row[1]) for row in patterns] == [(web[0]["signature"], "2")]
    assert patterns[0][0] == "AssertionError: unexpected token @ tests/test_a.py:test_token_check"
    findings = cells(dialog.findings)
    assert any(row[0] == "waits" and "test_waits" in row[1] and "cpu" in row[3]
               for row in findings)
    categories = {row[0]: row for row in cells(dialog.categories)}
    assert categories["security"][1:4] == ["2", "0", "2"]
    assert categories["performance"][1:] == ["2", "2", "0", "100%"]
    if SCREENSHOTS:
        dialog.tabs.setCurrentIndex(1)
        dialog.grab().save(str(Path(SCREENSHOTS) / "native-analytics.png"))
    dialog.close()
