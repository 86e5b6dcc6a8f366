"""The analytics page (/tests/analytics) in real Chromium: failure patterns, slow tests
with suggestions and categories, and a refresh when a run finishes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.gui.test_web_dashboard import (  # noqa: F401 (fixtures)
    api,
    browser,
    gate,
    plugin_dirs,
    runtime,
    wait_js,
)

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


def test_fine():
    pass
'''


@pytest.fixture
def plugin_dirs(tmp_path: Path) -> list[Path]:  # noqa: F811
    folder = tmp_path / "plugins" / "analysed"
    (folder / "tests").mkdir(parents=True)
    (folder / "plugin.toml").write_text('id = "analysed"\nname = "Analysed"\n'
                                        'version = "1.0.0"\nentry = "analysed_pkg:Plugin"\n')
    (folder / "tests" / "test_a.py").write_text(SUITE)
    return [tmp_path / "plugins"]


def finished(api: Any, qtbot: Any, run_id: int) -> None:  # noqa: F811
    qtbot.waitUntil(lambda: api("GET", f"/tests/runs/{run_id}").json()["run"]["status"]
                    not in ("queued", "running"), timeout=60_000)


def test_the_analytics_page_groups_failures_and_follows_runs(
        browser: Any, api: Any, qtbot: Any, js: Any) -> None:  # noqa: F811
    first = api("POST", "/tests/run", json={"plugin_name": "analysed"}).json()["run_id"]
    finished(api, qtbot, first)
    view = browser("/tests/analytics")
    wait_js(qtbot, js, view, "document.querySelectorAll('#patterns tr').length === 1")
    assert js(view, "document.querySelector('#patterns code.signature').textContent") == (
        "AssertionError: unexpected token @ tests/test_a.py:test_token_check")
    assert js(view, "document.querySelector('#patterns td.num').textContent") == "1"
    # The suggestion names its evidence; the categories table counts the marked tests.
    wait_js(qtbot, js, view, "document.querySelector('#hints li[data-kind=\"waits\"]') !== null")
    assert "cpu" in js(view, "document.querySelector('#hints li[data-kind=\"waits\"]')"
                             ".textContent")
    assert js(view, "document.querySelector('#cats tr[data-category=\"security\"] td')"
                    ".textContent") == "1"
    if SCREENSHOTS:
        view.grab().save(str(Path(SCREENSHOTS) / "web-analytics.png"))

    # A second run of the same bug (another uuid) lands in the same pattern, live.
    second = api("POST", "/tests/run", json={"plugin_name": "analysed"}).json()["run_id"]
    finished(api, qtbot, second)
    wait_js(qtbot, js, view, "document.querySelector('#patterns td.num').textContent === '2'")
    # "New since" the second run: nothing new.
    js(view, f"(() => {{ const el = document.getElementById('f-since'); el.value = '{second}';"
             "el.dispatchEvent(new Event('change')); return 1; })()")
    wait_js(qtbot, js, view, "!document.getElementById('patterns-empty').hidden")
