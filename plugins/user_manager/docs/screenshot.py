"""Takes docs/user-manager.png: the page in QtWebEngine offscreen, as the desktop window
shows it, for an administrator with three sessions, a failed sign-in in the log, a new
password being typed and the 2FA set-up open on its QR code.

Run from the repository root (it uses the project's GUI test fixtures; set
UM_SCREENSHOT_THEME=dark for docs/user-manager-dark.png):

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -c pyproject.toml -p tests.conftest \\
        -p tests.gui.conftest plugins/user_manager/docs/screenshot.py -q -n 0 -p no:cacheprovider
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.gui.plugin_screenshots import docs_app, page_shots

HERE = Path(__file__).resolve().parent


def test_screenshot(qapp: Any, qtbot: Any, home: Any, arun: Any, tmp_path: Path) -> None:
    from api_integration_layer.testing import PASSWORD

    with docs_app(home, arun, tmp_path) as rt:
        layer = rt.plugins.by_id["api_integration_layer"].instance
        arun(layer.client.auth.register("ann", "ann@example.org", PASSWORD,
                                        display_name="Ann Lindqvist", first_name="Ann",
                                        last_name="Lindqvist"))
        arun(layer.client.auth.register("bob", "bob@example.org", PASSWORD,
                                        display_name="Bob Okafor"))
        arun(layer.client.auth.register("carol", "carol@example.org", PASSWORD))
        base = f"{rt.url.rstrip('/')}/api/v1/"

        async def other_clients() -> None:
            # The server runs on this loop: requests to it are made from it too.
            async with httpx.AsyncClient(base_url=base, timeout=30) as v1:
                await v1.post("auth/login", json={"username": "ann", "password": "typo"})
                for device in ({"name": "Pixel 8", "platform": "Android"},
                               {"name": "Work laptop"}):
                    await v1.post("auth/login", json={"username": "ann", "password": PASSWORD,
                                                      "device_info": device})

        arun(other_clients())
        arun(layer.client.auth.login("ann", PASSWORD, device_info={"app": "PlexiChat Desktop"}))
        with page_shots(qapp, qtbot, rt, tmp_path, arun, HERE, "UM_SCREENSHOT_THEME") as shots:
            shots.open("/plugins/user_manager/", size=(1280, 2420))
            js, count = shots.js, shots.count

            qtbot.waitUntil(lambda: count("#sessions-rows tr") == 3, timeout=20_000)
            qtbot.waitUntil(lambda: count("#admin-rows tr") == 3, timeout=20_000)
            shots.set_value("pw-current", "x")
            shots.set_value("pw-new", "Stable-Lantern-7")
            js("document.getElementById('pw-new').dispatchEvent(new Event('input')) || 1")
            qtbot.waitUntil(lambda: bool(js("document.getElementById('pw-meter')"
                                            ".dataset.score")), timeout=20_000)
            shots.set_value("mfa-password", PASSWORD)
            shots.click("mfa-start")
            qtbot.waitUntil(lambda: bool(js("document.getElementById('mfa-qr').complete && "
                                            "document.getElementById('mfa-qr')"
                                            ".naturalWidth > 0")), timeout=20_000)
            js("window.scrollTo(0, 0) || 1")
            shots.save("user-manager", settle=400)


def test_screenshot_two_factor(qapp: Any, qtbot: Any, home: Any, arun: Any,
                               tmp_path: Path) -> None:
    """docs/user-manager-2fa.png (dark): 2FA just turned on through the page, the recovery
    codes on show, a low-codes warning from codes spent elsewhere."""
    from api_integration_layer.testing import PASSWORD

    from plexichat_desktop.server.v1 import mfa

    with docs_app(home, arun, tmp_path) as rt:
        layer = rt.plugins.by_id["api_integration_layer"].instance
        arun(layer.client.auth.register("ann", "ann@example.org", PASSWORD,
                                        display_name="Ann Lindqvist"))
        arun(layer.client.auth.login("ann", PASSWORD, device_info={"app": "PlexiChat Desktop"}))
        with page_shots(qapp, qtbot, rt, tmp_path, arun, HERE, theme="dark") as shots:
            shots.open("/plugins/user_manager/#sec-2fa", size=(1280, 900))
            js = shots.js

            def visible(element_id: str) -> bool:
                return bool(js(f"!document.getElementById({element_id!r}).hidden"))

            qtbot.waitUntil(lambda: visible("signed-in"), timeout=20_000)
            shots.set_value("mfa-password", PASSWORD)
            shots.click("mfa-start")
            qtbot.waitUntil(lambda: bool(js("document.getElementById('mfa-key')"
                                            ".dataset.secret || ''")), timeout=20_000)
            secret = str(js("document.getElementById('mfa-key').dataset.secret"))
            shots.set_value("mfa-code", mfa.code_at(secret, mfa.step_of(time.time())))
            shots.click("mfa-verify")
            qtbot.waitUntil(lambda: visible("codes-panel"), timeout=20_000)
            codes = js("[...document.querySelectorAll('#codes-list li')]"
                       ".map(li => li.textContent)")

            async def spend() -> None:
                async with httpx.AsyncClient(base_url=rt.url.rstrip("/") + "/api/v1",
                                             timeout=30) as v1:
                    for recovery in codes[:7]:
                        step = (await v1.post("/auth/login", json={
                            "username": "ann", "password": PASSWORD})).json()
                        await v1.post("/auth/login-2fa", json={
                            "mfa_token": step["mfa_token"], "recovery_code": recovery})

            arun(spend())
            shots.click("refresh")
            qtbot.waitUntil(lambda: visible("mfa-low"), timeout=20_000)
            js("document.getElementById('sec-2fa').scrollIntoView() || 1")
            shots.save("user-manager-2fa", settle=400)
