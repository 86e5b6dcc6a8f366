"""Takes docs/analytics-dashboard.png (and -reports, -alerts): the page in QtWebEngine
offscreen, as the desktop window shows it, over a year of seeded activity
(``analytics_dashboard.demo``) with an alert rule firing and a subscription run.

Run from the repository root (it uses the project's GUI test fixtures; set
AD_SCREENSHOT_THEME=dark for the dark variants):

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -c pyproject.toml -p tests.conftest \\
        -p tests.gui.conftest plugins/analytics_dashboard/docs/screenshot.py -q -n 0 \\
        -p no:cacheprovider
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from tests.gui.plugin_screenshots import docs_app, page_shots, shots_folder, sign_in

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))  # analytics_dashboard.demo, .automation


def test_screenshot(qapp: Any, qtbot: Any, home: Any, arun: Any, tmp_path: Path) -> None:
    from analytics_dashboard.demo import seed_year
    from api_integration_layer.testing import PASSWORD

    with docs_app(home, arun, tmp_path, plugins=("analytics_dashboard",)) as rt:
        layer = sign_in(rt, arun, "maria")
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
            document.render(0, QSize(794, 1123)).save(str(shots_folder(HERE) / "report-pdf.png"))
        with page_shots(qapp, qtbot, rt, tmp_path, arun, HERE, "AD_SCREENSHOT_THEME") as shots:
            shots.open("/plugins/analytics_dashboard/#overview", size=(1360, 1180))
            js, count = shots.js, shots.count

            js("localStorage.setItem('analytics.days', '90') || 1")
            js("document.querySelector('.seg[data-days=\"90\"]').click() || 1")
            qtbot.waitUntil(lambda: count("#kpis .kpi") == 8, timeout=30_000)
            js("document.getElementById('trend-forecast').click() || 1")
            qtbot.waitUntil(lambda: count("#trend-chart svg") == 1 and
                            "forecast" in str(js("document.getElementById("
                                                 "'trend-legend').textContent")),
                            timeout=30_000)
            shots.save("analytics-dashboard", settle=500)

            js("document.getElementById('tab-reports').click() || 1")
            qtbot.waitUntil(lambda: count("#report-table tbody tr") > 5, timeout=30_000)
            qtbot.waitUntil(lambda: count("#report-chart svg") == 1, timeout=30_000)
            shots.save("analytics-dashboard-reports", settle=400)
            # Every other report draws its chart and table too (kept in /tmp to look at).
            def title() -> str:
                return str(js("document.getElementById('report-title').textContent"))

            for kind in ("files", "messaging", "top_users"):
                before = title()
                js(f"(document.getElementById('report-type').value = {kind!r}) && "
                   "document.getElementById('report-type')"
                   ".dispatchEvent(new Event('change')) || 1")
                qtbot.waitUntil(lambda before=before: title() != before, timeout=30_000)
                qtbot.waitUntil(lambda: count("#report-chart svg") == 1 and
                                count("#report-table tbody tr") >= 1, timeout=30_000)
                shots.save(f"report-{kind}", folder=tmp_path)
            print("report views in", tmp_path)

            js("document.getElementById('tab-alerts').click() || 1")
            qtbot.waitUntil(lambda: count("#rules li") == 3, timeout=30_000)
            qtbot.waitUntil(lambda: count("#files li a") == 1, timeout=30_000)
            shots.save("analytics-dashboard-alerts", settle=400)

            # Edit a rule through the form: the list shows the new condition.
            js("[...document.querySelectorAll('#rules button')]"
               ".find(b => b.textContent === 'Edit').click() || 1")
            js("(document.getElementById('rule-value').value = '400') && 1")
            js("document.querySelector('#rule-form button[type=submit]').click() || 1")
            qtbot.waitUntil(lambda: "> 400" in shots.text("rules"), timeout=30_000)
            shots.check()

            # A non-administrator asking for top users: a notice, not a broken panel.
            arun(layer.client.auth.logout())
            arun(layer.client.auth.register("sam", "sam@example.org", PASSWORD))
            arun(layer.client.auth.login("sam", PASSWORD))
            js("localStorage.setItem('analytics.report', 'top_users') || 1")
            shots.open("/plugins/analytics_dashboard/#reports", size=(1360, 700))
            qtbot.waitUntil(lambda: "Administrator needed" in str(js(
                "(document.getElementById('report-note') || {}).textContent")),
                timeout=30_000)
            assert "signed in as sam" in shots.text("report-note")
            assert js("document.getElementById('export-csv').hasAttribute('href')") is False
            shots.save("analytics-dashboard-non-admin")
