"""The Security Toolkit's page in QtWebEngine, driven through its own forms: create a
vault (a mismatched repeat refused), add entries in the editor, run the health report and
fix every finding in one click, import a TOTP URI and see its code, lock, a wrong master
password shown, unlock again — with no console error and no failed request besides the
refused password."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from plexichat_desktop.core.settings import Settings
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from tests.gui.page_console import page_browser
from tests.gui.shell_helpers import bundled_only

MASTER = "Tr0ub4dor&3-horse"


def test_vault_health_fix_totp_and_lock_through_the_page(
        qapp: Any, qtbot: Any, home: Any, arun: Any, tmp_path: Path) -> None:
    settings = Settings()
    settings.server.port = 0
    settings.plugin = {"security_toolkit": {"kdf_memory_kib": 64, "kdf_time_cost": 1,
                                            "kdf_parallelism": 1}}
    # The plugin and the API layer it needs: starting every bundled plugin only costs.
    rt = Runtime(home, settings, RuntimeOptions(
        bundled=False, include_installed=False,
        extra_plugin_dirs=[bundled_only(tmp_path / "plugins", "api_integration_layer",
                                        "security_toolkit")]))
    arun(rt.start())
    try:
        with page_browser(qapp, qtbot, rt, tmp_path, arun) as browser:
            view = browser.open("/plugins/security_toolkit/", size=(1280, 1000))
            browser.wait_idle(view)
            js = browser.js

            def visible(element_id: str) -> bool:
                return bool(js(view, f"!document.getElementById({element_id!r}).hidden"))

            def text(element_id: str) -> str:
                return str(js(view, f"document.getElementById({element_id!r}).textContent"))

            def type_in(element_id: str, value: str) -> None:
                js(view, f"(document.getElementById({element_id!r}).value = {value!r}) && 1")

            def submit(form_id: str) -> None:
                js(view, f"document.getElementById({form_id!r}).requestSubmit() || 1")

            def count(selector: str) -> int:
                return int(js(view, f"document.querySelectorAll({selector!r}).length"))

            # -- a new vault, through the create form
            qtbot.waitUntil(lambda: visible("create-form"))
            type_in("create-password", MASTER)
            type_in("create-confirm", MASTER + "x")
            submit("create-form")
            qtbot.waitUntil(lambda: "differ" in text("gate-error"))
            type_in("create-confirm", MASTER)
            submit("create-form")
            qtbot.waitUntil(lambda: visible("unlocked"), timeout=20_000)

            # -- two entries sharing a weak password, through the editor
            for title in ("Mail", "Forum"):
                js(view, "document.getElementById('new-entry').click() || 1")
                type_in("e-title", title)
                type_in("e-password", "hunter22")
                submit("entry-form")
                qtbot.waitUntil(lambda t=title: text("editor-title") == t, timeout=20_000)
            qtbot.waitUntil(lambda: count("#entry-list li button") == 2)

            # -- the health report, then one click fixes both
            js(view, "securityToolkit.showTab('health') || 1")
            submit("health-form")
            qtbot.waitUntil(lambda: count("#health-rows tr") == 2, timeout=20_000)
            assert "reused #1" in text("health-rows") and "weak" in text("health-rows")
            js(view, "document.getElementById('health-all').click() || 1")
            js(view, "document.getElementById('fix-selected').click() || 1")
            qtbot.waitUntil(lambda: visible("fixed-box"), timeout=20_000)
            assert count("#fixed-list li") == 2 and count("#health-rows tr") == 0
            assert "Nothing to fix" in text("health-summary")

            # -- TOTP: import a URI, a six-digit code with its countdown
            js(view, "securityToolkit.showTab('totp') || 1")
            type_in("totp-uri", "otpauth://totp/ACME:ann?secret=JBSWY3DPEHPK3PXP&issuer=ACME")
            submit("totp-form")
            qtbot.waitUntil(lambda: count("#totp-list .totp") == 1, timeout=20_000)
            code = js(view, "document.querySelector('#totp-list .code').textContent")
            assert re.fullmatch(r"\d{3} \d{3}", code), code
            assert re.search(r"\d+ s", text("totp-list"))

            # -- lock, a wrong password, the right one
            js(view, "document.getElementById('lock-now').click() || 1")
            qtbot.waitUntil(lambda: visible("unlock-form"))
            type_in("unlock-password", "not the password")
            submit("unlock-form")
            qtbot.waitUntil(lambda: "wrong master password" in text("gate-error"),
                            timeout=20_000)
            type_in("unlock-password", MASTER)
            submit("unlock-form")
            qtbot.waitUntil(lambda: visible("unlocked"), timeout=20_000)
            js(view, "securityToolkit.showTab('vault') || 1")
            qtbot.waitUntil(lambda: count("#entry-list li button") == 3, timeout=20_000)
            browser.wait_idle(view)

            report = browser.report(view)
            # The one refused unlock is the only request that failed.
            assert [p for p in report.problems if "vault/unlock: 422" not in p] == []
            assert len([f for f in report.failed if "vault/unlock: 422" in f]) == 1
    finally:
        arun(rt.stop())
