"""The client and account security against the real server: the MFA login step (exception,
callback, one step), wrong input that keeps the session, password change ending other
sessions, sessions and the security log, and the new scopes."""

from __future__ import annotations

import pytest
from api_integration_layer.errors import (
    ApiHTTPError,
    ApiPermissionError,
    InvalidCredentials,
    MfaRequired,
    NotAuthenticated,
)
from api_integration_layer.scoped import ScopedApi
from api_integration_layer.testing import PASSWORD, unique_name

from plexichat_desktop.server.v1 import mfa

T0 = 1_900_000_005.0  # 5 s into a TOTP step
NEW_PASSWORD = "Another-Str0ng-Passphrase"


CLOCK = {"now": T0}


@pytest.fixture(autouse=True)
def fixed_totp_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's TOTP clock stands still (at ``T0`` until a test moves it): codes do
    not depend on timing."""
    CLOCK["now"] = T0
    monkeypatch.setattr(mfa, "current_time", lambda: CLOCK["now"])


def code(secret: str, offset: int = 0) -> str:
    return mfa.code_at(secret, mfa.step_of(T0) + offset)


async def test_login_with_2fa_raises_mfa_required_answered_by_login_2fa(shared_server):
    async with shared_server() as server:
        name = unique_name("mfa")
        owner = await server.account(name)
        setup = await owner.auth.mfa_setup(PASSWORD)
        assert setup.qr_svg.startswith("<svg") and setup.secret in setup.otpauth_uri
        enabled = await owner.auth.mfa_verify_setup(code(setup.secret))
        assert len(enabled.recovery_codes) == 10
        status = await owner.auth.mfa_status()
        assert status.enabled and status.recovery_codes_remaining == 10

        client = server.client()
        with pytest.raises(MfaRequired) as info:
            await client.auth.login(name, PASSWORD)
        challenge = info.value
        assert challenge.mfa_token.startswith("pxm_") and challenge.username == name
        assert "recovery_code" in challenge.methods
        assert not client.session.logged_in  # nothing is kept before the second step
        with pytest.raises(NotAuthenticated) as wrong:
            await client.auth.login_2fa(challenge.mfa_token, code=code(setup.secret, 3))
        assert "invalid or already used" in str(wrong.value.detail)
        tokens = await client.auth.login_2fa(challenge.mfa_token, code=code(setup.secret, 1))
        assert tokens.access_token.startswith("pxa_") and client.session.logged_in
        assert (await client.users.me()).username == name

        # A callback answers the step instead: a TOTP code or a recovery code.
        asked: list[str] = []

        async def prompt(step: MfaRequired) -> str:
            asked.append(step.username)
            return enabled.recovery_codes[0]

        other = server.client()
        await other.auth.login(name, PASSWORD, on_mfa=prompt)
        assert asked == [name] and (await other.users.me()).username == name
        assert (await other.auth.mfa_status()).recovery_codes_remaining == 9
        # The recovery code was spent: the same answer no longer works.
        with pytest.raises(NotAuthenticated):
            await server.client().auth.login(name, PASSWORD, on_mfa=prompt)

        # One step: the code goes with the password (version B's mfa_code). Steps 0
        # and +1 are spent, so this happens five steps later.
        CLOCK["now"] = T0 + 5 * mfa.PERIOD
        third = server.client()
        await third.auth.login(name, PASSWORD, mfa_code=code(setup.secret, 5))
        assert third.session.logged_in

        # Disabling needs the password and a code; afterwards the password is enough.
        with pytest.raises(InvalidCredentials):
            await owner.auth.mfa_disable("wrong", code=code(setup.secret, 6))
        await owner.auth.mfa_disable(PASSWORD, code=code(setup.secret, 6))
        fourth = server.client()
        await fourth.auth.login(name, PASSWORD)
        assert fourth.session.logged_in


async def test_wrong_current_password_keeps_the_session(shared_server):
    async with shared_server() as server:
        name = unique_name("pw")
        client = await server.account(name)
        second = server.client()
        await second.auth.login(name, PASSWORD)
        with pytest.raises(InvalidCredentials) as info:
            await client.auth.change_password("not-my-password", NEW_PASSWORD)
        assert info.value.status == 401
        assert client.session.logged_in and (await client.users.me()).username == name
        with pytest.raises(ApiHTTPError) as weak:
            await client.auth.change_password(PASSWORD, "weak")
        assert weak.value.status == 422 and "new_password" in str(weak.value)
        policy = await client.auth.password_policy()
        assert policy.min_length == 12

        sessions = await client.auth.sessions()
        assert sessions.total == 2 and sum(s.current for s in sessions.sessions) == 1
        result = await client.auth.change_password(PASSWORD, NEW_PASSWORD,
                                                   end_other_sessions=True)
        assert result.sessions_ended == 1
        with pytest.raises(NotAuthenticated):
            await second.users.me()
        assert not second.session.logged_in
        log = await client.users.security_log()
        assert {"password_changed", "login"} <= {e.kind for e in log.events}
        export = await client.users.export()
        assert export["profile"]["username"] == name


async def test_sign_out_one_session_and_the_new_scopes(shared_server):
    async with shared_server() as server:
        name = unique_name("ses")
        client = await server.account(name)
        other = server.client()
        await other.auth.login(name, PASSWORD, device_info={"name": "Second laptop"})
        listed = await client.auth.sessions()
        second = next(s for s in listed.sessions if not s.current)
        assert second.device_label == "Second laptop"
        await client.auth.revoke_session(second.id)
        with pytest.raises(NotAuthenticated):
            await other.users.me()
        # Signing out this very session ends the client's session as well.
        current = next(s for s in listed.sessions if s.current)
        await client.auth.revoke_session(current.id)
        assert not client.session.logged_in

        await client.auth.login(name, PASSWORD)
        narrow = ScopedApi(client, "some_plugin", ["auth:read"])
        with pytest.raises(ApiPermissionError) as denied:
            await narrow.auth.mfa_status()
        assert "auth:mfa" in str(denied.value)
        with pytest.raises(ApiPermissionError):
            await narrow.users.security_log()
        with pytest.raises(ApiPermissionError):
            await narrow.users.export()
        wide = ScopedApi(client, "user_manager",
                         ["auth:mfa", "auth:sessions", "auth:password", "users:export"])
        assert (await wide.auth.mfa_status()).enabled is False
        assert (await wide.users.security_log()).total >= 2
        assert (await wide.auth.password_policy()).require_digit is True


def test_the_pages_login_asks_for_the_code(plexichat_app):
    """The layer's own page: the password answers requires_mfa, /login-2fa completes it
    with a code (or a recovery code typed in the same field)."""
    import httpx

    v1 = httpx.Client(base_url=plexichat_app.url.rstrip("/") + "/api/v1", timeout=30)
    try:
        name = unique_name("page")
        assert v1.post("/auth/register", json={"username": name, "password": PASSWORD,
                                               "email": f"{name}@example.org"}
                       ).status_code == 201
        token = v1.post("/auth/login", json={"username": name, "password": PASSWORD}
                        ).json()["access_token"]
        me = {"Authorization": f"Bearer {token}"}
        secret = v1.post("/auth/2fa/setup", headers=me, json={"password": PASSWORD}
                         ).json()["secret"]
        codes = v1.post("/auth/2fa/verify-setup", headers=me, json={"code": code(secret)}
                        ).json()["recovery_codes"]
    finally:
        v1.close()
    page = plexichat_app.client
    step = page.post("api/login", json={"username": name, "password": PASSWORD}).json()
    assert step["requires_mfa"] is True and step["username"] == name
    assert page.get("api/status").json()["user"] is None  # not signed in yet
    wrong = page.post("api/login-2fa", json={"mfa_token": step["mfa_token"],
                                             "code": code(secret, 3)})
    assert wrong.status_code == 401 and "invalid or already used" in wrong.text
    status = page.post("api/login-2fa", json={"mfa_token": step["mfa_token"],
                                              "code": codes[0]}).json()
    assert status["user"]["username"] == name


async def test_a_2fa_lockout_holds_back_only_that_accounts_checks(shared_server):
    """Audit: five wrong codes on 'turn 2FA off' (the server's per-account failure
    limit, 429 for ~5 min) paused the whole client: every call of the account and every
    sign-in through it, of any account, was refused locally for the five minutes."""
    async with shared_server() as server:
        name = unique_name("mfa")
        owner = await server.account(name, max_retry_after=0.0)
        setup = await owner.auth.mfa_setup(PASSWORD)
        await owner.auth.mfa_verify_setup(code(setup.secret))
        wrong = "000000" if code(setup.secret) != "000000" else "111111"
        with pytest.raises(ApiHTTPError) as locked:
            for _ in range(10):
                with pytest.raises((InvalidCredentials, NotAuthenticated)):
                    await owner.auth.mfa_disable(PASSWORD, code=wrong)
        assert locked.value.status == 429
        # The route that was limited is held back locally (no request sent)...
        sent = len(owner.activity.records)
        with pytest.raises(ApiHTTPError, match="held back"):
            await owner.auth.mfa_disable(PASSWORD, code=wrong)
        assert owner.activity.records[-1].statuses == []
        assert len(owner.activity.records) == sent + 1
        # ...and nothing else: the account's other calls, and another account signing in
        # through the same client.
        assert (await owner.users.me()).username == name
        assert (await owner.auth.mfa_status()).enabled
        other = unique_name()
        await server.client().auth.register(other, f"{other}@example.org", PASSWORD)
        await owner.auth.login(other, PASSWORD)
        assert (await owner.users.me()).username == other
