"""Takes docs/endpoints.png, deliveries.png, inspector.png and templates.png: the page in
QtWebEngine offscreen, as the desktop window shows it, with a signed-in user, three
endpoints (one healthy to the inspector, one failing and switched off, one unreachable),
real deliveries and a forged request the inspector failed.

Run from the repository root (it uses the project's GUI test fixtures; set
WM_SCREENSHOT_THEME=dark for the dark theme, written as endpoints-dark.png and so on):

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -p tests.conftest \\
        -p tests.gui.conftest plugins/webhook_manager/docs/screenshot.py -q -n 0 -p no:cacheprovider
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from plexichat_desktop.core.settings import ApiSettings, Settings
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from tests.gui.page_console import page_browser

HERE = Path(__file__).resolve().parent
PLUGINS = HERE.parents[1]
sys.path.append(str(PLUGINS / "api_integration_layer"))


def test_screenshot(qapp: Any, qtbot: Any, home: Any, arun: Any, tmp_path: Path) -> None:
    from api_integration_layer.testing import FAST_API, PASSWORD

    holder = tmp_path / "plugins"
    holder.mkdir()
    for name in ("api_integration_layer", "webhook_manager"):
        (holder / name).symlink_to(PLUGINS / name, target_is_directory=True)
    settings = Settings()
    settings.server.port = 0
    settings.api = ApiSettings(**{**FAST_API, "webhook_allow_private": False,
                                  "webhook_retry_base": 0.05, "webhook_max_attempts": 2})
    rt = Runtime(home, settings, RuntimeOptions(bundled=False, include_installed=False,
                                                extra_plugin_dirs=[holder]))
    arun(rt.start())
    try:
        layer = rt.plugins.by_id["api_integration_layer"].instance
        arun(layer.client.auth.register("ann", "ann@example.org", PASSWORD))
        arun(layer.client.auth.login("ann", PASSWORD))
        base = f"{rt.url}plugins/webhook_manager/api/"
        headers = {"Authorization": f"Bearer {rt.token}"}

        async def call(method: str, path: str, body: Any = None) -> Any:
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as c:
                answer = await c.request(method, path, json=body)
                assert answer.status_code < 400, answer.text
                return answer.json()

        async def forge(url: str) -> None:
            async with httpx.AsyncClient(timeout=10) as c:
                await c.post(url, content=b'{"event": "message.sent", "data": {}}', headers={
                    "X-PlexiChat-Timestamp": str(int(time.time()) - 900),
                    "X-PlexiChat-Signature": "sha256=" + "0" * 64})

        async def scene() -> None:
            ok_box = await call("POST", "inboxes", {"name": "Staging receiver"})
            bad_box = await call("POST", "inboxes", {"name": "Billing (answers 500)",
                                                     "respond_status": 500})
            await call("POST", f"inboxes/{ok_box['id']}/webhook", {
                "events": ["*"], "description": "Staging receiver"})
            failing = await call("POST", f"inboxes/{bad_box['id']}/webhook", {
                "events": ["message.sent", "file.uploaded"], "description": "Billing service",
                "disable_after": 2})
            await call("POST", "endpoints", {
                "url": "https://hooks.example.invalid/plexichat", "events": ["user.login"],
                "description": "Partner CRM", "disable_after": 0})
            hooks = (await call("GET", "endpoints"))["endpoints"]
            staging = next(h for h in hooks if h["description"] == "Staging receiver")
            for _ in range(3):
                await call("POST", f"endpoints/{staging['id']}/test")
            for _ in range(2):
                await call("POST", f"endpoints/{failing['id']}/test")
            crm = next(h for h in hooks if h["description"] == "Partner CRM")
            await call("POST", f"endpoints/{crm['id']}/test")
            await forge(ok_box["url"])

        arun(scene(), timeout=60_000)
        theme = os.environ.get("WM_SCREENSHOT_THEME", "light")
        suffix = "" if theme == "light" else f"-{theme}"
        with page_browser(qapp, qtbot, rt, tmp_path, arun, theme=theme) as browser:
            view = browser.open("/plugins/webhook_manager/", size=(1440, 1180))
            browser.wait_idle(view)
            js = browser.js

            def count(selector: str) -> int:
                return int(js(view, f"document.querySelectorAll({selector!r}).length"))

            qtbot.waitUntil(lambda: count("#endpoint-list li") == 3, timeout=20_000)
            js(view, "document.querySelectorAll('#endpoint-list button')[1].click() || 1")
            qtbot.waitUntil(lambda: bool(js(view, "document.getElementById('snippet')"
                                                  ".textContent.length > 100")))
            browser.wait_idle(view)
            qtbot.wait(300)
            view.grab().save(str(HERE / f"endpoints{suffix}.png"))

            js(view, "document.getElementById('tab-deliveries').click() || 1")
            qtbot.waitUntil(lambda: count("#log-rows tr") >= 6, timeout=20_000)
            js(view, "[...document.querySelectorAll('#log-rows tr')].find(r => r.textContent"
                     ".includes('500')).click() || 1")
            js(view, "document.querySelector('#d-attempts details').open = true")
            browser.wait_idle(view)
            qtbot.wait(300)
            view.grab().save(str(HERE / f"deliveries{suffix}.png"))

            js(view, "document.getElementById('tab-inspector').click() || 1")
            js(view, "[...document.querySelectorAll('#inbox-list button')].find(b => b"
                     ".textContent.includes('Staging')).click() || 1")
            qtbot.waitUntil(lambda: count("#cap-rows tr") >= 4, timeout=20_000)
            js(view, "[...document.querySelectorAll('#cap-rows tr')].find(r => r.textContent"
                     ".includes('fail')).click() || 1")
            qtbot.waitUntil(lambda: not js(view, "document.getElementById('cap-detail')"
                                                 ".hidden"))
            browser.wait_idle(view)
            qtbot.wait(300)
            view.grab().save(str(HERE / f"inspector{suffix}.png"))

            js(view, "document.getElementById('tab-templates').click() || 1")
            js(view, "(document.getElementById('tpl-preset').value = 'teams') && 1")
            js(view, "document.getElementById('tpl-preset').dispatchEvent(new Event('change'))"
                     " || 1")
            qtbot.waitUntil(lambda: "AdaptiveCard" in str(js(
                view, "document.getElementById('tpl-output').textContent")))
            browser.wait_idle(view)
            qtbot.wait(300)
            view.grab().save(str(HERE / f"templates{suffix}.png"))

            # The form path a person takes: a bad URL is refused with the field named, a
            # good one shows the secret once in the dialog.
            js(view, "document.getElementById('tab-endpoints').click() || 1")
            js(view, "(document.getElementById('new-url').value = 'ftp://example.org/x') && 1")
            js(view, "document.querySelector('#new-endpoint button[type=submit]').click() || 1")
            qtbot.waitUntil(lambda: str(js(view, "document.getElementById("
                                                 "'new-endpoint-error').textContent"))
                            .startswith("url:"))
            js(view, "(document.getElementById('new-url').value = 'https://example.org/x') && 1")
            js(view, "document.querySelector('#new-endpoint button[type=submit]').click() || 1")
            qtbot.waitUntil(lambda: bool(js(view, "document.getElementById('secret-dialog')"
                                                  ".open")))
            assert len(str(js(view, "document.getElementById('secret-value').textContent"))) \
                == 64
            js(view, "document.getElementById('secret-close').click() || 1")
            qtbot.waitUntil(lambda: count("#endpoint-list li") == 4)
            assert js(view, "document.getElementById('secret-value').textContent") == ""
            report = browser.report(view)
            assert not report.problems, report.problems
    finally:
        arun(rt.stop())
