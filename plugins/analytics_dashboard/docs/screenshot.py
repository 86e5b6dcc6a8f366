"""Takes docs/analytics-dashboard.png (and -reports, -alerts): the page in QtWebEngine
offscreen, as the desktop window shows it, over a year of seeded activity
(``analytics_dashboard.demo``) with an alert rule firing and a subscription run.

Run from the repository root (it uses the project's GUI test fixtures; set
AD_SCREENSHOT_THEME=dark for the dark variants):

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -p tests.conftest \\
        -p tests.gui.conftest plugins/analytics_dashboard/docs/screenshot.py -q -n 0 \\
        -p no:cacheprovider
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from plexichat_desktop.core.settings import Settings
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from tests.gui.page_console import page_browser

HERE = Path(__file__).resolve().parent
PLUGIN = HERE.parent
LAYER = PLUGIN.parent / "api_integration_layer"
for folder in (PLUGIN, LAYER):
    sys.path.append(str(folder))


def test_screenshot(qapp: Any, qtbot: Any, home: Any, arun: Any, tmp_path: Path) -> None:
    from analytics_dashboard.demo import seed_year
    from api_integration_layer.testing import FAST_API, PASSWORD, plugin_folder

    from plexichat_desktop.core.settings import ApiSettings

    settings = Settings()
    settings.server.port = 0
    settings.api = ApiSettings(**FAST_API)
    folder = plugin_folder(tmp_path, PLUGIN, LAYER)
    rt = Runtime(home, settings, RuntimeOptions(bundled=False, include_installed=False,
                                                extra_plugin_dirs=[folder]))
    arun(rt.start())
    try:
        layer = rt.plugins.by_id["api_integration_layer"].instance
        arun(layer.client.auth.register("maria", "maria@example.org", PASSWORD))
        arun(layer.client.auth.login("maria", PASSWORD))
        assert rt.api_v1 is not None
        arun(rt.api_v1.store.write(seed_year, layer.client.user["id"]))
        plugin = rt.plugins.by_id["analytics_dashboard"].instance
        from analytics_dashboard.automation import RuleIn, SubscriptionIn
        for rule in (RuleIn(name="Password guessing", metric="failed_logins", value=40,
                            window_days=7),
                     RuleIn(name="Message spike", metric="messages", kind="anomaly"),
                     RuleIn(name="Webhooks failing", metric="webhook_delivery_rate",
                            operator="<", value=90, window_days=7)):
            plugin.store.add_rule(rule)
        sub = plugin.store.add_subscription(SubscriptionIn(
            name="Monday activity", report="activity", days=7, format="pdf",
            schedule="0 8 * * 1"), time.time())
        arun(plugin.check_rules())
        ran = arun(plugin.run_subscription(sub["id"], scheduled=False))
        assert ran["last_status"] == "ok", ran["last_error"]
        if os.environ.get("AD_SCREENSHOT_THEME", "light") == "light":
            # The first page of the PDF the subscription made, as the README shows it.
            from PySide6.QtCore import QSize
            from PySide6.QtPdf import QPdfDocument
            document = QPdfDocument()
            document.load(str(plugin.reports_dir / ran["last_file"]))
            assert document.pageCount() >= 1
            document.render(0, QSize(794, 1123)).save(str(HERE / "report-pdf.png"))
        theme = os.environ.get("AD_SCREENSHOT_THEME", "light")
        suffix = "" if theme == "light" else f"-{theme}"
        with page_browser(qapp, qtbot, rt, tmp_path, arun, theme=theme) as browser:
            view = browser.open("/plugins/analytics_dashboard/#overview", size=(1360, 1180))
            js = browser.js

            def count(selector: str) -> int:
                return int(js(view, f"document.querySelectorAll({selector!r}).length"))

            js(view, "localStorage.setItem('analytics.days', '90') || 1")
            js(view, "document.querySelector('.seg[data-days=\"90\"]').click() || 1")
            qtbot.waitUntil(lambda: count("#kpis .kpi") == 8, timeout=30_000)
            js(view, "document.getElementById('trend-forecast').click() || 1")
            qtbot.waitUntil(lambda: count("#trend-chart svg") == 1 and
                            "forecast" in str(js(view, "document.getElementById("
                                                       "'trend-legend').textContent")),
                            timeout=30_000)
            browser.wait_idle(view)
            qtbot.wait(500)
            view.grab().save(str(HERE / f"analytics-dashboard{suffix}.png"))

            js(view, "document.getElementById('tab-reports').click() || 1")
            qtbot.waitUntil(lambda: count("#report-table tbody tr") > 5, timeout=30_000)
            qtbot.waitUntil(lambda: count("#report-chart svg") == 1, timeout=30_000)
            qtbot.wait(400)
            view.grab().save(str(HERE / f"analytics-dashboard-reports{suffix}.png"))
            # Every other report draws its chart and table too (kept in /tmp to look at).
            def title() -> str:
                return str(js(view, "document.getElementById('report-title').textContent"))

            for kind in ("files", "messaging", "top_users"):
                before = title()
                js(view, f"(document.getElementById('report-type').value = {kind!r}) && "
                         "document.getElementById('report-type')"
                         ".dispatchEvent(new Event('change')) || 1")
                qtbot.waitUntil(lambda before=before: title() != before, timeout=30_000)
                qtbot.waitUntil(lambda: count("#report-chart svg") == 1 and
                                count("#report-table tbody tr") >= 1, timeout=30_000)
                qtbot.wait(300)
                view.grab().save(str(tmp_path / f"report-{kind}.png"))
            print("report views in", tmp_path)

            js(view, "document.getElementById('tab-alerts').click() || 1")
            qtbot.waitUntil(lambda: count("#rules li") == 3, timeout=30_000)
            qtbot.waitUntil(lambda: count("#files li a") == 1, timeout=30_000)
            qtbot.wait(400)
            view.grab().save(str(HERE / f"analytics-dashboard-alerts{suffix}.png"))

            # Edit a rule through the form: the list shows the new condition.
            js(view, "[...document.querySelectorAll('#rules button')]"
                     ".find(b => b.textContent === 'Edit').click() || 1")
            js(view, "(document.getElementById('rule-value').value = '400') && 1")
            js(view, "document.querySelector('#rule-form button[type=submit]').click() || 1")
            qtbot.waitUntil(lambda: "> 400" in str(js(
                view, "document.getElementById('rules').textContent")), timeout=30_000)
            report = browser.report(view)
            assert not report.problems, report.problems

            # A non-administrator asking for top users: a notice, not a broken panel.
            arun(layer.client.auth.logout())
            arun(layer.client.auth.register("sam", "sam@example.org", PASSWORD))
            arun(layer.client.auth.login("sam", PASSWORD))
            js(view, "localStorage.setItem('analytics.report', 'top_users') || 1")
            other = browser.open("/plugins/analytics_dashboard/#reports", size=(1360, 700))
            qtbot.waitUntil(lambda: "Administrator needed" in str(js(
                other, "(document.getElementById('report-note') || {}).textContent")),
                timeout=30_000)
            assert "signed in as sam" in str(js(
                other, "document.getElementById('report-note').textContent"))
            assert js(other, "document.getElementById('export-csv').hasAttribute('href')") \
                is False
            qtbot.wait(300)
            other.grab().save(str(HERE / f"analytics-dashboard-non-admin{suffix}.png"))
            report = browser.report(other)
            assert not report.problems, report.problems
    finally:
        arun(rt.stop())
