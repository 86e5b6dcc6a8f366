"""Slow calls that must not be sent twice (turning 2FA on, new recovery codes) against the
real server whose recovery-code digests are held back: they wait ``slow_timeout``, a
per-call ``timeout`` overrides it, and a timed-out write says the server may have done it
(it did)."""

from __future__ import annotations

import asyncio
import time

import pytest
from api_integration_layer.endpoints import ENDPOINTS
from api_integration_layer.errors import ApiUnavailable
from api_integration_layer.testing import PASSWORD

from plexichat_desktop.server.v1 import mfa

T0 = 1_900_000_005.0
# Longer than the short timeouts below (0.5 s, 0.3 s) whatever the load: a sleep only
# ever lasts longer.
HOLD = 0.8


@pytest.fixture(autouse=True)
def slow_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed TOTP clock, and HOLD s more for every set of recovery-code digests (in the
    server's worker thread, where the digests run)."""
    monkeypatch.setattr(mfa, "current_time", lambda: T0)
    real = mfa.recovery_digests

    def slow(user_id: str, codes: list[str]) -> list[str]:
        time.sleep(HOLD)
        return real(user_id, codes)
    monkeypatch.setattr(mfa, "recovery_digests", slow)


def code(secret: str, offset: int = 0) -> str:
    return mfa.code_at(secret, mfa.step_of(T0) + offset)


def test_the_code_making_calls_are_the_slow_ones():
    slow = {e.name for e in ENDPOINTS.values() if e.slow}
    assert slow == {"auth.mfa_verify_setup", "auth.mfa_backup_codes"}


async def test_slow_calls_wait_slow_timeout_not_timeout(shared_server):
    async with shared_server() as server:
        owner = await server.account()
        setup = await owner.auth.mfa_setup(PASSWORD)
        # Ordinary calls give up after 0.5 s; the slow ones wait slow_timeout (120 s).
        owner.config = owner.config.model_copy(update={"timeout": 0.5})
        assert owner.config.slow_timeout == 120.0
        codes = await owner.auth.mfa_verify_setup(code(setup.secret))
        assert len(codes.recovery_codes) == 10
        fresh = await owner.auth.mfa_backup_codes(PASSWORD, code=code(setup.secret, 1))
        assert len(fresh.recovery_codes) == 10
        assert set(fresh.recovery_codes).isdisjoint(codes.recovery_codes)


async def test_a_timed_out_write_may_be_done_and_was(shared_server):
    async with shared_server() as server:
        owner = await server.account()
        setup = await owner.auth.mfa_setup(PASSWORD)
        with pytest.raises(ApiUnavailable) as late:
            await owner.auth.mfa_verify_setup(code(setup.secret), timeout=0.3)
        assert late.value.maybe_done is True and late.value.timeout == 0.3
        assert "no answer within 0.3 s" in str(late.value) and late.value.attempts == 1
        # Not sent again (a POST), and the server carried it out after the client left.
        started = time.monotonic()
        while not (status := await owner.auth.mfa_status()).enabled:
            assert time.monotonic() - started < 30, "2FA never came on"
            await asyncio.sleep(0.2)
        assert status.recovery_codes_remaining == 10
        log = [r for r in owner.activity.recent() if r["endpoint"] == "auth.mfa_verify_setup"]
        assert len(log) == 1 and log[0]["statuses"] == [None]
