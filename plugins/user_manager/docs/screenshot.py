"""Takes docs/user-manager.png: the page in QtWebEngine offscreen, as the desktop window
shows it, for an administrator with three sessions, a failed sign-in in the log, a new
password being typed and the 2FA set-up open on its QR code.

Run from the repository root (it uses the project's GUI test fixtures; set
UM_SCREENSHOT_THEME=dark for docs/user-manager-dark.png):

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -p tests.conftest \\
        -p tests.gui.conftest plugins/user_manager/docs/screenshot.py -q -n 0 -p no:cacheprovider
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import httpx

from plexichat_desktop.core.settings import Settings
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from tests.gui.page_console import page_browser

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parents[1] / "api_integration_layer"))


def test_screenshot(qapp: Any, qtbot: Any, home: Any, arun: Any, tmp_path: Path) -> None:
    from api_integration_layer.testing import FAST_API, PASSWORD

    from plexichat_desktop.core.settings import ApiSettings

    settings = Settings()
    settings.server.port = 0
    settings.api = ApiSettings(**FAST_API)
    rt = Runtime(home, settings, RuntimeOptions(bundled=True, include_installed=False))
    arun(rt.start())
    try:
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
        theme = os.environ.get("UM_SCREENSHOT_THEME", "light")
        with page_browser(qapp, qtbot, rt, tmp_path, arun, theme=theme) as browser:
            view = browser.open("/plugins/user_manager/", size=(1280, 2420))
            browser.wait_idle(view)
            js = browser.js

            def count(selector: str) -> int:
                return int(js(view, f"document.querySelectorAll({selector!r}).length"))

            qtbot.waitUntil(lambda: count("#sessions-rows tr") == 3, timeout=20_000)
            qtbot.waitUntil(lambda: count("#admin-rows tr") == 3, timeout=20_000)
            js(view, "(document.getElementById('pw-current').value = 'x') && 1")
            js(view, "(document.getElementById('pw-new').value = 'Stable-Lantern-7') && 1")
            js(view, "document.getElementById('pw-new').dispatchEvent(new Event('input')) "
                     "|| 1")
            qtbot.waitUntil(lambda: bool(js(view, "document.getElementById('pw-meter')"
                                                  ".dataset.score")), timeout=20_000)
            js(view, f"(document.getElementById('mfa-password').value = {PASSWORD!r}) && 1")
            js(view, "document.getElementById('mfa-start').click() || 1")
            qtbot.waitUntil(lambda: bool(js(view, "document.getElementById('mfa-qr')"
                                                  ".complete && document.getElementById("
                                                  "'mfa-qr').naturalWidth > 0")),
                            timeout=20_000)
            js(view, "window.scrollTo(0, 0) || 1")
            browser.wait_idle(view)
            qtbot.wait(400)
            report = browser.report(view)
            assert not report.problems, report.problems
            name = "user-manager.png" if theme == "light" else f"user-manager-{theme}.png"
            view.grab().save(str(HERE / name))
    finally:
        arun(rt.stop())


def test_screenshot_two_factor(qapp: Any, qtbot: Any, home: Any, arun: Any,
                               tmp_path: Path) -> None:
    """docs/user-manager-2fa.png (dark): 2FA just turned on through the page, the recovery
    codes on show, a low-codes warning from codes spent elsewhere."""
    import time

    from api_integration_layer.testing import FAST_API, PASSWORD

    from plexichat_desktop.core.settings import ApiSettings
    from plexichat_desktop.server.v1 import mfa

    settings = Settings()
    settings.server.port = 0
    settings.api = ApiSettings(**FAST_API)
    rt = Runtime(home, settings, RuntimeOptions(bundled=True, include_installed=False))
    arun(rt.start())
    try:
        layer = rt.plugins.by_id["api_integration_layer"].instance
        arun(layer.client.auth.register("ann", "ann@example.org", PASSWORD,
                                        display_name="Ann Lindqvist"))
        arun(layer.client.auth.login("ann", PASSWORD, device_info={"app": "PlexiChat Desktop"}))
        with page_browser(qapp, qtbot, rt, tmp_path, arun, theme="dark") as browser:
            view = browser.open("/plugins/user_manager/#sec-2fa", size=(1280, 900))
            browser.wait_idle(view)
            js = browser.js

            def visible(element_id: str) -> bool:
                return bool(js(view, f"!document.getElementById({element_id!r}).hidden"))

            qtbot.waitUntil(lambda: visible("signed-in"), timeout=20_000)
            js(view, f"(document.getElementById('mfa-password').value = {PASSWORD!r}) && 1")
            js(view, "document.getElementById('mfa-start').click() || 1")
            qtbot.waitUntil(lambda: bool(js(view, "document.getElementById('mfa-key')"
                                                  ".dataset.secret || ''")), timeout=20_000)
            secret = str(js(view, "document.getElementById('mfa-key').dataset.secret"))
            code = mfa.code_at(secret, mfa.step_of(time.time()))
            js(view, f"(document.getElementById('mfa-code').value = {code!r}) && 1")
            js(view, "document.getElementById('mfa-verify').click() || 1")
            qtbot.waitUntil(lambda: visible("codes-panel"), timeout=20_000)
            codes = js(view, "[...document.querySelectorAll('#codes-list li')]"
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
            js(view, "document.getElementById('refresh').click() || 1")
            qtbot.waitUntil(lambda: visible("mfa-low"), timeout=20_000)
            js(view, "document.getElementById('sec-2fa').scrollIntoView() || 1")
            browser.wait_idle(view)
            qtbot.wait(400)
            report = browser.report(view)
            assert not report.problems, report.problems
            view.grab().save(str(HERE / "user-manager-2fa.png"))
    finally:
        arun(rt.stop())
