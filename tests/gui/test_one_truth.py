"""One truth for results: a run with reruns, a flaky test, a crash and a timeout, read back
from every surface (CLI JSON, /tests/runs, /tests/results, /tests/statistics, the web
plugin page's tree in Chromium, the native tree, the live events as they arrived), which
must all say the same, test by test."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from plexichat_desktop.gui.app import DesktopShell
from plexichat_desktop.testing.events import TestFinished
from tests.gui.test_web_dashboard import (  # noqa: F401 (fixtures)
    api,
    browser,
    gate,
    runtime,
    wait_js,
)

SUITE = '''
import os
import pathlib
import time

MARK = pathlib.Path(__file__).parent / "first-try-done"


def test_a_passes():
    pass


def test_b_flaky():
    if not MARK.exists():
        MARK.write_text("x")
        assert False, "fails the first time only"


def test_c_fails():
    assert 1 == 2


def test_d_crashes():
    os._exit(7)


def test_e_hangs():
    time.sleep(60)
'''

EXPECTED = {"test_a_passes": ("passed", False), "test_b_flaky": ("passed", True),
            "test_c_fails": ("failed", False), "test_d_crashes": ("crashed", False),
            "test_e_hangs": ("timed_out", False)}


@pytest.fixture
def plugin_dirs(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "plugins" / "truth"
    (folder / "tests").mkdir(parents=True)
    (folder / "plugin.toml").write_text(
        'id = "truth"\nname = "Truth"\nversion = "1.0.0"\nentry = "truth_pkg:Plugin"\n\n'
        '[tests]\ntimeout = 3\nreruns = 1\n')
    (folder / "tests" / "test_truth.py").write_text(SUITE)
    return [tmp_path / "plugins"]


def short(nodeid: str) -> str:
    return nodeid.split("::")[-1]


def test_every_surface_says_the_same(runtime: Any, api: Any, browser: Any, qapp: Any,  # noqa: F811
                                     home: Any, arun: Any, qtbot: Any, js: Any) -> None:
    shell = DesktopShell(qapp, runtime, home, asyncio.Event(), "not needed by this test")
    shell.show()
    panel = shell.window.dashboard
    try:
        qtbot.waitUntil(panel._loaded.is_set, timeout=10_000)
        events = runtime.bus.subscribe(TestFinished, name="one truth test")
        run_id = api("POST", "/tests/run", json={"plugin_name": "truth"}).json()["run_id"]
        qtbot.waitUntil(lambda: api("GET", f"/tests/runs/{run_id}").json()["run"]["status"]
                        not in ("queued", "running"), timeout=90_000)
        payload = api("GET", f"/tests/runs/{run_id}").json()
        assert payload["run"]["status"] == "failed"

        surfaces: dict[str, dict[str, tuple[str, bool]]] = {}
        surfaces["/tests/runs"] = {short(r["test_name"]): (r["status"], r["metadata"]["flaky"])
                                   for r in payload["results"]}
        stored = api("GET", "/tests/results", params={"run_id": run_id}).json()["results"]
        # /tests/results lists final results; its flaky mark is the store's, per run.
        surfaces["/tests/results"] = {
            short(r["test_name"]): (r["status"], r["metadata"]["attempts"] > 1
                                    and r["status"] == "passed") for r in stored}

        env = {**os.environ, "PLEXICHAT_DESKTOP_HOME": str(home.config_dir.parent)}
        cli = subprocess.run([sys.executable, "-m", "plexichat_desktop", "results",
                              str(run_id), "--json"], env=env, capture_output=True, text=True,
                             timeout=60)
        surfaces["CLI"] = {short(r["nodeid"]): (r["outcome"], r["flaky"])
                           for r in json.loads(cli.stdout)["results"]}

        arrived: dict[str, tuple[str, bool]] = {}
        while not events.queue.empty():
            event = events.queue.get_nowait()
            if event.run_id == run_id:
                arrived[short(event.nodeid)] = (event.outcome,
                                                event.attempt > 1 and event.outcome == "passed")
        events.close()
        surfaces["live events"] = arrived

        view = browser("/tests/plugin/truth")
        wait_js(qtbot, js, view, "document.querySelectorAll('#tree li.test').length === 5 && "
                                 "[...document.querySelectorAll('#tree li.test')]"
                                 ".every(li => li.dataset.outcome !== 'none')")
        web = js(view, "[...document.querySelectorAll('#tree li.test')].map(li => "
                       "[li.dataset.nodeid, li.dataset.outcome, li.dataset.flaky])")
        surfaces["web tree"] = {short(n): (o, f == "true") for n, o, f in web}

        qtbot.waitUntil(lambda: len(panel.model.tests("truth")) == 5
                        and all(t.outcome for t in panel.model.tests("truth"))
                        and any(t.flaky for t in panel.model.tests("truth")), timeout=20_000)
        surfaces["native tree"] = {short(t.key): (t.outcome, t.flaky)
                                   for t in panel.model.tests("truth")}

        for name, seen in surfaces.items():
            assert seen == EXPECTED, name
        stats = api("GET", "/tests/statistics", params={"plugin_name": "truth"}).json()
        counts = stats["statistics"]["counts"]
        assert (counts["passed"], counts["failed"], counts["crashed"], counts["timed_out"]) == \
            (2, 1, 1, 1)
        assert payload["run"]["counts"] == {"passed": 2, "failed": 1, "crashed": 1,
                                            "timed_out": 1, "flaky": 1, "total": 5}
    finally:
        arun(shell.shutdown())
