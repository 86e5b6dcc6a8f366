"""Takes docs/endpoints.png, deliveries.png, inspector.png and templates.png: the page in
QtWebEngine offscreen, as the desktop window shows it, with a signed-in user, three
endpoints (one healthy to the inspector, one failing and switched off, one unreachable),
real deliveries and a forged request the inspector failed.

Run from the repository root (it uses the project's GUI test fixtures; set
WM_SCREENSHOT_THEME=dark for the dark theme, written as endpoints-dark.png and so on):

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -c pyproject.toml -p tests.conftest \\
        -p tests.gui.conftest plugins/webhook_manager/docs/screenshot.py -q -n 0 -p no:cacheprovider
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.gui.plugin_screenshots import docs_app, page_shots, sign_in

HERE = Path(__file__).resolve().parent


def test_screenshot(qapp: Any, qtbot: Any, home: Any, arun: Any, tmp_path: Path) -> None:
    with docs_app(home, arun, tmp_path, plugins=("webhook_manager",), api={
            "webhook_allow_private": False, "webhook_retry_base": 0.05,
            "webhook_max_attempts": 2}) as rt:
        sign_in(rt, arun)
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
        with page_shots(qapp, qtbot, rt, tmp_path, arun, HERE, "WM_SCREENSHOT_THEME") as shots:
            shots.open("/plugins/webhook_manager/", size=(1440, 1180))
            js, count = shots.js, shots.count

            qtbot.waitUntil(lambda: count("#endpoint-list li") == 3, timeout=20_000)
            js("document.querySelectorAll('#endpoint-list button')[1].click() || 1")
            qtbot.waitUntil(lambda: bool(js("document.getElementById('snippet')"
                                            ".textContent.length > 100")))
            shots.save("endpoints")

            shots.click("tab-deliveries")
            qtbot.waitUntil(lambda: count("#log-rows tr") >= 6, timeout=20_000)
            js("[...document.querySelectorAll('#log-rows tr')].find(r => r.textContent"
               ".includes('500')).click() || 1")
            js("document.querySelector('#d-attempts details').open = true")
            shots.save("deliveries")

            shots.click("tab-inspector")
            js("[...document.querySelectorAll('#inbox-list button')].find(b => b"
               ".textContent.includes('Staging')).click() || 1")
            qtbot.waitUntil(lambda: count("#cap-rows tr") >= 4, timeout=20_000)
            js("[...document.querySelectorAll('#cap-rows tr')].find(r => r.textContent"
               ".includes('fail')).click() || 1")
            qtbot.waitUntil(lambda: not js("document.getElementById('cap-detail').hidden"))
            shots.save("inspector")

            shots.click("tab-templates")
            shots.set_value("tpl-preset", "teams")
            js("document.getElementById('tpl-preset').dispatchEvent(new Event('change')) || 1")
            qtbot.waitUntil(lambda: "AdaptiveCard" in shots.text("tpl-output"))
            shots.save("templates")

            # The form path a person takes: a bad URL is refused with the field named, a
            # good one shows the secret once in the dialog.
            shots.click("tab-endpoints")
            shots.set_value("new-url", "ftp://example.org/x")
            js("document.querySelector('#new-endpoint button[type=submit]').click() || 1")
            qtbot.waitUntil(lambda: shots.text("new-endpoint-error").startswith("url:"))
            shots.set_value("new-url", "https://example.org/x")
            js("document.querySelector('#new-endpoint button[type=submit]').click() || 1")
            qtbot.waitUntil(lambda: bool(js("document.getElementById('secret-dialog').open")))
            assert len(shots.text("secret-value")) == 64
            shots.click("secret-close")
            qtbot.waitUntil(lambda: count("#endpoint-list li") == 4)
            assert shots.text("secret-value") == ""
            shots.check()
