"""2FA when the server is slower than the client waits: the embedded v1 server's recovery
code digests are held back (a real server, made slow in a controlled way; the API layer's
client is the real one with a short timeout).

Seen on a starved machine: turning 2FA on took longer than the layer's 10 s timeout, the
server turned it on all the same and the page said the server could not be reached,
showing no recovery codes. Now the slow calls get the layer's ``slow_timeout``, and past
it the page is told that 2FA may be on with codes nobody saw, until new ones are made.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tests.test_account_console import T0, code, ok

from plexichat_desktop.server.v1 import mfa


class DigestHold:
    """The embedded server's making of recovery codes, made slow on purpose (the wait runs
    in the server's worker thread, as the digests do).

    ``for_seconds(s)`` makes every set take ``s`` longer; ``until_released()`` holds every
    set until ``release()``, so a test that needs the server still at work when the client
    gives up does not have to guess how long that takes; ``for_seconds(0)`` is the real
    speed again. ``stored`` is set once a set has been stored (inside its transaction: a
    request after it sees the new codes)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.stored = threading.Event()
        self._released = threading.Event()
        self._seconds: float | None = 0.0
        real_digests, real_store = mfa.recovery_digests, mfa.store_recovery_codes

        def slow(user_id: str, codes: list[str]) -> list[str]:
            # Bounded: a test that fails before its release() must not hang the server.
            if self._seconds is None and not self._released.wait(HOLD_LIMIT):
                raise AssertionError("the digests were never released")
            if self._seconds:
                time.sleep(self._seconds)
            return real_digests(user_id, codes)

        def store(conn: Any, user_id: str, digests: list[str]) -> None:
            real_store(conn, user_id, digests)
            self.stored.set()

        monkeypatch.setattr(mfa, "recovery_digests", slow)
        monkeypatch.setattr(mfa, "store_recovery_codes", store)

    def for_seconds(self, seconds: float) -> None:
        self._seconds = seconds

    def until_released(self) -> None:
        self._released.clear()
        self.stored.clear()
        self._seconds = None

    def release(self) -> None:
        self._released.set()


# Seconds a held set of digests waits for release() at most.
HOLD_LIMIT = 30.0
# The layer's timeouts while a call is lost. The plugin's look at the 2FA status after the
# lost call gets it too (the page's message depends on that answer): a second, not the
# 0.5 s of the other test, so that a loaded machine still answers it in time.
LOST = 1.0


@pytest.fixture
def hold_digests(monkeypatch: pytest.MonkeyPatch) -> Iterator[DigestHold]:
    hold = DigestHold(monkeypatch)
    yield hold
    hold.release()  # a test that stopped early leaves no server thread waiting


@pytest.fixture
def layer_timeouts(plexichat_app: Any, monkeypatch: pytest.MonkeyPatch
                   ) -> Callable[..., None]:
    """``layer_timeouts(timeout=..., slow_timeout=...)``: the API layer's client with
    these settings (what ``[plugin.api_integration_layer]`` sets), until the test ends."""
    client = plexichat_app.runtime.plugins.by_id["api_integration_layer"].instance.client
    default = client.config

    def use(**timeouts: float) -> None:
        monkeypatch.setattr(client, "config", default.model_copy(update=timeouts))
    return use


def start_setup(client: httpx.Client, password: str) -> str:
    return str(ok(client.post("api/2fa/setup", json={"password": password}))["secret"])


def test_slow_code_making_gets_the_layers_slow_timeout(plexichat_app, clock, hold_digests,
                                                       layer_timeouts):
    client, user = plexichat_app.client, plexichat_app.user
    secret = start_setup(client, user.password)
    hold_digests.for_seconds(0.8)
    # Every other call still gives up after 0.5 s; these two wait slow_timeout (120 s).
    layer_timeouts(timeout=0.5)
    codes = ok(client.post("api/2fa/verify", json={"code": code(secret)}))["recovery_codes"]
    assert len(codes) == 10
    fresh = ok(client.post("api/2fa/regenerate", json={"password": user.password,
                                                       "code": codes[0]}))
    assert len(fresh["recovery_codes"]) == 10 and set(fresh["recovery_codes"]).isdisjoint(codes)
    hold_digests.for_seconds(0)
    layer_timeouts()
    status = ok(client.get("api/2fa"))
    assert status["enabled"] and status["recovery_codes_remaining"] == 10
    assert status["recovery_codes_unseen"] is False


def test_2fa_turned_on_after_the_client_gave_up_is_told_until_new_codes(
        plexichat_app, clock, hold_digests, layer_timeouts):
    client, user = plexichat_app.client, plexichat_app.user
    secret = start_setup(client, user.password)
    hold_digests.until_released()  # the server is still at it when the client gives up
    layer_timeouts(slow_timeout=LOST, timeout=LOST)
    lost = client.post("api/2fa/verify", json={"code": code(secret)})
    # Not "the server cannot be reached": what may have happened, and what to do.
    assert lost.status_code == 504, lost.text
    body = lost.json()
    assert body["recovery_codes_unseen"] is True
    assert "within 1 s" in body["detail"] and "cannot be reached" not in body["detail"]
    assert "recovery codes" in body["detail"] and "new" in body["detail"]
    assert "recovery_codes" not in body

    # The server carries on and turns 2FA on; from then on the page's status says the
    # codes were never seen (so does the overview, and it outlives a reload).
    hold_digests.release()
    if not hold_digests.stored.wait(HOLD_LIMIT):
        raise AssertionError("the server never stored the codes")
    status = ok(client.get("api/2fa"))
    assert status["enabled"] and status["recovery_codes_remaining"] == 10
    assert status["recovery_codes_unseen"] is True
    assert ok(client.get("api/overview"))["mfa"]["recovery_codes_unseen"] is True

    # New codes with the password and a current code clear it.
    hold_digests.for_seconds(0)
    layer_timeouts()
    fresh = ok(client.post("api/2fa/regenerate", json={"password": user.password,
                                                       "code": code(secret, 1)}))
    assert len(fresh["recovery_codes"]) == 10
    status = ok(client.get("api/2fa"))
    assert status["enabled"] and status["recovery_codes_unseen"] is False
    assert ok(client.get("api/overview"))["mfa"]["recovery_codes_unseen"] is False


def test_new_codes_lost_to_a_timeout_are_told_too(plexichat_app, clock, hold_digests,
                                                  layer_timeouts):
    """New codes replace the old ones: lost to a timeout, the account has none the user
    knows (2FA is on, so the answer says so at once)."""
    client, user = plexichat_app.client, plexichat_app.user
    secret = start_setup(client, user.password)
    first = ok(client.post("api/2fa/verify", json={"code": code(secret)}))["recovery_codes"]
    hold_digests.until_released()
    layer_timeouts(slow_timeout=LOST, timeout=LOST)  # slow_timeout is never below timeout
    lost = client.post("api/2fa/regenerate", json={"password": user.password,
                                                   "code": code(secret, 1)})
    assert lost.status_code == 504, lost.text
    body = lost.json()
    assert body["recovery_codes_unseen"] is True and body["mfa"]["enabled"] is True
    assert body["detail"].startswith("Two-factor sign-in is on, but the server did not "
                                     "answer within 1 s")
    # The server carries on and replaces them: the old codes are gone.
    hold_digests.release()
    if not hold_digests.stored.wait(HOLD_LIMIT):
        raise AssertionError("the server never stored the codes")
    refused = client.post("api/2fa/disable", json={"password": user.password,
                                                   "code": first[0]})
    assert refused.status_code == 403, refused.text
    assert ok(client.get("api/2fa"))["recovery_codes_unseen"] is True
    # Turning 2FA off also ends the warning (there are no codes to see).
    hold_digests.for_seconds(0)
    layer_timeouts()
    clock["now"] = T0 + 30  # the next step: both codes so far are used
    ok(client.post("api/2fa/disable", json={"password": user.password,
                                            "code": code(secret, 2)}))
    status = ok(client.get("api/2fa"))
    assert not status["enabled"] and status["recovery_codes_unseen"] is False
