"""The User Manager's page, in QtWebEngine, when a call that makes recovery codes times
out after the server may have made them: the page says that 2FA may be coming on, then
that it is on with codes nobody saw (also after a reload: the plugin remembers it), says
so again when new codes are lost the same way, and stops once new codes are shown.

The embedded v1 server is made slower than the API layer waits in a controlled way (as
plugins/user_manager/tests/test_twofa_slow_server.py does): its recovery-code digests are
held until the test lets them go, and the layer's timeouts are short meanwhile. The
server's TOTP clock stands still, moved a step for each code typed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plexichat_desktop.server.v1 import mfa
from tests.gui.page_console import page_browser
from tests.gui.test_user_manager_page import user_manager_runtime

PASSWORD = "Corr3ct-Horse-Battery"
T0 = 1_800_000_000.0  # a step's start: T0 + 30 * k is step k after it
# What the page says once the server turned 2FA on with codes never shown (app.js).
NEVER_SHOWN = "Two-factor sign-in is on, but its recovery codes were never shown"
# How long the layer waits while the digests are held. Its other calls get it too (the
# slow timeout is never below the plain one), among them the plugin's look at the 2FA
# status after a lost call: long enough for that on a loaded machine.
LATE = 2.0


class HeldDigests:
    """``release = held.hold()``: the server's next sets of recovery codes wait (in its
    worker thread, where the digests are made) until ``release()``, which also makes later
    sets fast again."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.real = mfa.recovery_digests
        self.gates: list[threading.Event] = []

    def hold(self) -> Callable[[], None]:
        gate = threading.Event()
        self.gates.append(gate)

        def held(user_id: str, codes: list[str]) -> list[str]:
            gate.wait(120)
            return self.real(user_id, codes)

        def release() -> None:
            self.monkeypatch.setattr(mfa, "recovery_digests", self.real)
            gate.set()

        self.monkeypatch.setattr(mfa, "recovery_digests", held)
        return release

    def release_all(self) -> None:
        """After a failure: no server thread may be left waiting (the server's stop
        would wait for it)."""
        for gate in self.gates:
            gate.set()


def test_recovery_codes_lost_to_a_timeout_are_told_until_new_ones_are_shown(
        qapp: Any, qtbot: Any, home: Any, arun: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = {"now": T0}
    monkeypatch.setattr(mfa, "current_time", lambda: clock["now"])
    rt = user_manager_runtime(home, tmp_path, monkeypatch)
    held = HeldDigests(monkeypatch)
    arun(rt.start())
    try:
        client = rt.plugins.by_id["api_integration_layer"].instance.client
        arun(client.auth.register("una", "una@example.org", PASSWORD))
        arun(client.auth.login("una", PASSWORD))
        normal = client.config

        def impatient_layer(on: bool) -> None:
            # What [plugin.api_integration_layer] timeout/slow_timeout set: the layer
            # gives up on the held call long before the server is done with it.
            client.config = (normal.model_copy(update={"timeout": LATE, "slow_timeout": LATE})
                             if on else normal)

        def regenerated() -> int:
            async def count() -> int:
                with client.bypass_cache():
                    log = await client.users.security_log(kind="recovery_codes_regenerated")
                return len(log.events)
            return int(arun(count()))

        with page_browser(qapp, qtbot, rt, tmp_path, arun) as browser:
            view = browser.open("/plugins/user_manager/", size=(1280, 1800))
            browser.wait_idle(view)

            def js(expression: str) -> Any:
                return browser.js(view, expression)

            def visible(element_id: str) -> bool:
                return bool(js(f"!document.getElementById({element_id!r}).hidden"))

            def text(element_id: str) -> str:
                return str(js(f"document.getElementById({element_id!r}).textContent"))

            def type_in(element_id: str, value: str) -> None:
                js(f"(document.getElementById({element_id!r}).value = {value!r}) && 1")

            def click(element_id: str) -> None:
                js(f"document.getElementById({element_id!r}).click() || 1")

            problems: list[str] = []
            qtbot.waitUntil(lambda: visible("signed-in"), timeout=20_000)
            assert not visible("mfa-unseen")
            type_in("mfa-password", PASSWORD)
            click("mfa-start")
            qtbot.waitUntil(lambda: bool(js("document.getElementById('mfa-key')"
                                            ".dataset.secret || ''")), timeout=20_000)
            secret = str(js("document.getElementById('mfa-key').dataset.secret"))
            step = mfa.step_of(T0)

            # Turning 2FA on: the layer gives up while the server still makes the codes.
            release = held.hold()
            impatient_layer(True)
            type_in("mfa-code", mfa.code_at(secret, step))
            click("mfa-verify")
            qtbot.waitUntil(lambda: visible("mfa-unseen"), timeout=20_000)
            impatient_layer(False)  # before the page looks again on its own
            assert f"did not answer within {LATE:g} s" in text("mfa-unseen")
            assert "may still be turning two-factor sign-in on" in text("mfa-unseen")
            assert not visible("mfa-wizard") and not visible("codes-panel")
            assert text("mfa-badge") == "Off"

            # The server carries on and turns 2FA on: the page, looking again on its
            # own, says the codes were never shown, and offers new ones.
            release()
            qtbot.waitUntil(lambda: text("mfa-badge") == "On", timeout=30_000)
            assert visible("mfa-unseen") and NEVER_SHOWN in text("mfa-unseen")
            assert "Make new ones now" in text("mfa-unseen")
            assert visible("mfa-on-actions") and visible("regen-form")
            assert not visible("codes-panel")

            # A reload still says so: the plugin remembers it for the account.
            problems += browser.report(view).problems
            browser.close(view)
            view = browser.open("/plugins/user_manager/", size=(1280, 1800))
            browser.wait_idle(view)
            qtbot.waitUntil(lambda: text("mfa-badge") == "On", timeout=20_000)
            assert visible("mfa-unseen") and NEVER_SHOWN in text("mfa-unseen")

            # New codes lost the same way: 2FA is on, so the answer says so at once, and
            # the password field of the new-codes form is where to go.
            clock["now"] = T0 + 30
            release = held.hold()
            impatient_layer(True)
            type_in("regen-password", PASSWORD)
            type_in("regen-code", mfa.code_at(secret, step + 1))
            click("regen-submit")
            qtbot.waitUntil(lambda: text("mfa-unseen").startswith(
                f"Two-factor sign-in is on, but the server did not answer within {LATE:g} s"),
                timeout=20_000)
            impatient_layer(False)
            assert visible("mfa-unseen") and "Make new ones now" in text("mfa-unseen")
            assert js("document.activeElement && document.activeElement.id") \
                == "regen-password"
            assert not visible("codes-panel") and not visible("regen-error")
            release()
            # The lost set is in place before new ones are asked for (else it could
            # replace the codes the page is about to show).
            deadline = time.monotonic() + 30
            while regenerated() < 1:
                assert time.monotonic() < deadline, "the held codes were never stored"
                qtbot.wait(100)

            # New codes shown: the warning goes, also after a reload.
            clock["now"] = T0 + 60
            type_in("regen-password", PASSWORD)
            type_in("regen-code", mfa.code_at(secret, step + 2))
            click("regen-submit")
            qtbot.waitUntil(lambda: visible("codes-panel"), timeout=20_000)
            codes = js("[...document.querySelectorAll('#codes-list li')]"
                       ".map(li => li.textContent)")
            assert len(codes) == 10
            qtbot.waitUntil(lambda: not visible("mfa-unseen"), timeout=20_000)
            assert not visible("regen-error")
            assert regenerated() == 2
            problems += browser.report(view).problems
            browser.close(view)
            view = browser.open("/plugins/user_manager/", size=(1280, 1800))
            browser.wait_idle(view)
            qtbot.waitUntil(lambda: text("mfa-badge") == "On", timeout=20_000)
            assert not visible("mfa-unseen")
            assert "10 of 10 recovery codes left" in text("mfa-summary")
            problems += browser.report(view).problems
            # The two answers the layer gave up on, and nothing else.
            assert [p.rsplit("/plugins/user_manager/", 1)[-1] for p in problems] == [
                "api/2fa/verify: 504", "api/2fa/regenerate: 504"], problems
    finally:
        held.release_all()
        arun(rt.stop())
