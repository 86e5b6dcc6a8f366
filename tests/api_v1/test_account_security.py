"""v1 account security: TOTP 2FA (RFC 6238 vectors, the +-1 step window, replay),
recovery codes, the two-step login, password change and reset, sessions, the security log,
the new-device notification and the export of one's own data.

The TOTP clock is the module's ``current_time``: the tests set it, so no code depends on
where in its 30 seconds the real clock happens to be.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from plexichat_desktop.server.v1 import mfa
from plexichat_desktop.server.v1.routes.auth import mfa_limiter
from tests.api_v1.conftest import PASSWORD
from tests.api_v1.shared_server import OWN_SERVER, module_server  # noqa: F401

# Most tests share one server (``v1``) and run in the module's event loop, each with
# accounts of its own (the 2FA failure limiter counts per account, the TOTP clock is this
# module's ``clock``); those that need the administrator, or take the secret key away,
# start their own.
pytestmark = pytest.mark.asyncio(loop_scope="module")

NEW_PASSWORD = "Another-Str0ng-Passphrase"
T0 = 1_900_000_005.0  # 5 s into a step: far from both of its edges


PRODUCTION_RECOVERY_COST = mfa.RECOVERY_SCRYPT_LOG_N


@pytest.fixture(autouse=True)
def cheap_recovery_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    """A recovery code's digest is memory-hard on purpose (some 50 ms each, ten per 2FA
    set-up, more under load); these tests check what is done with the codes, not the
    cost, as scrypt_cost=4 does for passwords. The offline-search test keeps the real
    cost (``production_recovery_cost``)."""
    monkeypatch.setattr(mfa, "RECOVERY_SCRYPT_LOG_N", 4)


@pytest.fixture
def production_recovery_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mfa, "RECOVERY_SCRYPT_LOG_N", PRODUCTION_RECOVERY_COST)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """The TOTP clock, fixed at ``T0``; tests move it with ``clock["now"] = ...``."""
    state = {"now": T0}
    monkeypatch.setattr(mfa, "current_time", lambda: state["now"])
    return state


def code(secret: str, step_offset: int, at: float = T0) -> str:
    return mfa.code_at(secret, mfa.step_of(at) + step_offset)


async def enable_2fa(account: Any) -> tuple[str, list[str]]:
    """Turn 2FA on for ``account`` at ``T0``; its secret and recovery codes."""
    setup = (await account.client.post("/auth/2fa/setup", json={"password": PASSWORD})).json()
    secret = setup["secret"]
    r = await account.client.post("/auth/2fa/verify-setup", json={"code": code(secret, 0)})
    assert r.status_code == 200, r.text
    return secret, r.json()["recovery_codes"]


async def password_step(v1: Any, name: str, **extra: Any) -> dict[str, Any]:
    """The password step of the login of ``v1.account(name)``."""
    r = await v1.anon.post("/auth/login", json={"username": name + v1.suffix,
                                                "password": PASSWORD, **extra})
    assert r.status_code == 200, r.text
    return r.json()


RFC_6238 = [  # (unix time, SHA1, SHA256, SHA512) from RFC 6238, appendix B
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


async def test_totp_matches_the_rfc_6238_vectors():
    seeds = {"sha1": b"12345678901234567890",
             "sha256": b"12345678901234567890123456789012",
             "sha512": b"1234567890" * 6 + b"1234"}
    for at, *expected in RFC_6238:
        for (name, seed), want in zip(seeds.items(), expected, strict=True):
            secret = base64.b32encode(seed).decode()
            assert mfa.code_at(secret, mfa.step_of(at), digits=8, digest_name=name) == want
    # What the server checks: 6 digits, SHA-1, the same secret.
    secret = base64.b32encode(seeds["sha1"]).decode()
    assert mfa.code_at(secret, mfa.step_of(59)) == "287082"
    assert mfa.accepted_step(secret, "287082", 0, 59) == 1
    assert mfa.accepted_step(secret, "287082", 1, 59) is None  # that step was used
    assert mfa.accepted_step(secret, "28708", 0, 59) is None


async def test_setup_login_window_and_replay(v1, clock):
    ann = await v1.account("ann")
    setup = (await ann.client.post("/auth/2fa/setup", json={"password": PASSWORD})).json()
    secret = setup["secret"]
    assert setup["otpauth_uri"].startswith(
        f"otpauth://totp/PlexiChat:{ann.username}?secret=" + secret)
    assert "issuer=PlexiChat" in setup["otpauth_uri"]
    assert setup["qr_svg"].startswith("<svg") and "xmlns" in setup["qr_svg"]
    assert setup["digits"] == 6 and setup["period"] == 30
    status = (await ann.client.get("/auth/2fa/status")).json()
    assert status["enabled"] is False and status["pending_setup"] is True
    # Until confirmed, logging in is unchanged.
    assert "access_token" in await password_step(v1, "ann")

    r = await ann.client.post("/auth/2fa/verify-setup", json={"code": code(secret, 5)})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "code"]
    r = await ann.client.post("/auth/2fa/verify-setup", json={"code": code(secret, 0)})
    assert r.status_code == 200, r.text
    codes = r.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    status = (await ann.client.get("/auth/2fa/status")).json()
    assert status["enabled"] and status["recovery_codes_remaining"] == 10
    assert not status["low_recovery_codes"]
    r = await ann.client.post("/auth/2fa/setup", json={"password": PASSWORD})
    assert r.status_code == 409

    # The password alone no longer gives tokens.
    step = await password_step(v1, "ann")
    assert step["requires_mfa"] is True and "access_token" not in step
    assert step["mfa_token"].startswith("pxm_") and step["methods"] == ["totp",
                                                                        "recovery_code"]
    token = step["mfa_token"]
    # The code used to confirm the set-up is spent: a replay is refused.
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                    "code": code(secret, 0)})
    assert r.status_code == 401 and "invalid or already used" in r.json()["detail"]
    assert 'error="invalid_grant"' in r.headers["www-authenticate"]
    # Two steps ahead is outside the window; one step ahead is inside.
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                    "code": code(secret, 2)})
    assert r.status_code == 401
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                    "code": code(secret, 1)})
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["access_token"].startswith("pxa_") and tokens["requires_mfa"] is False
    assert (await v1.client(tokens["access_token"]).get("/auth/me")).status_code == 200
    # The challenge is spent with its login.
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                    "code": code(secret, 1)})
    assert r.status_code == 401 and "mfa_token" in r.json()["detail"]

    # Later: one step back is inside the window, two are not, and no code works twice.
    mfa_limiter(v1.api).reset()
    clock["now"] = T0 + 5 * mfa.PERIOD
    later = T0 + 5 * mfa.PERIOD
    token = (await password_step(v1, "ann"))["mfa_token"]
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                    "code": code(secret, -2, later)})
    assert r.status_code == 401
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                    "code": code(secret, -1, later)})
    assert r.status_code == 200, r.text
    # version B's one-step form: the code in the login body.
    r = await v1.anon.post("/auth/login", json={"username": ann.username, "password": PASSWORD,
                                                "mfa_code": code(secret, -1, later)})
    assert r.status_code == 401 and "mfa_code" in r.json()["detail"]
    r = await v1.anon.post("/auth/login", json={"username": ann.username, "password": PASSWORD,
                                                "mfa_code": code(secret, 0, later)})
    assert r.status_code == 200 and r.json()["access_token"].startswith("pxa_")

    # Exactly one of code / recovery_code.
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token})
    assert r.status_code == 422 and "code" in r.text
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": "pxm_nope", "code": "123456"})
    assert r.status_code == 401
    # Digits of other scripts are no code (and no server error).
    token = (await password_step(v1, "ann"))["mfa_token"]
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                    "code": "\uff11" * 6})  # fullwidth 1
    assert r.status_code == 401


async def test_recovery_codes_are_single_use_regenerate_and_disable(v1, clock):
    bob = await v1.account("bob")
    secret, codes = await enable_2fa(bob)
    token = (await password_step(v1, "bob"))["mfa_token"]
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                    "recovery_code": codes[0].upper()})
    assert r.status_code == 200, r.text
    assert r.json()["recovery_codes_remaining"] == 9
    token = (await password_step(v1, "bob"))["mfa_token"]
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                    "recovery_code": codes[0]})
    assert r.status_code == 401 and "recovery_code" in r.json()["detail"]
    # Spaces and dashes do not matter.
    r = await v1.anon.post("/auth/login-2fa", json={
        "mfa_token": token, "recovery_code": " ".join(codes[1].replace("-", ""))})
    assert r.status_code == 200, r.text
    for used in codes[2:8]:
        token = (await password_step(v1, "bob"))["mfa_token"]
        r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                        "recovery_code": used})
        assert r.status_code == 200
    status = (await bob.client.get("/auth/2fa/status")).json()
    assert status["recovery_codes_remaining"] == 2 and status["low_recovery_codes"] is True

    # Regenerating needs the password; a wrong one is 401 but the session lives on.
    r = await bob.client.post("/auth/2fa/backup-codes", json={"password": "wrong",
                                                              "recovery_code": codes[8]})
    assert r.status_code == 401 and 'error="invalid_grant"' in r.headers["www-authenticate"]
    assert (await bob.client.get("/auth/me")).status_code == 200
    r = await bob.client.post("/auth/2fa/backup-codes", json={"password": PASSWORD,
                                                              "recovery_code": codes[8]})
    assert r.status_code == 200
    fresh = r.json()["recovery_codes"]
    assert len(fresh) == 10 and not set(fresh) & set(codes)
    token = (await password_step(v1, "bob"))["mfa_token"]
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                    "recovery_code": codes[9]})
    assert r.status_code == 401  # an old code that was never used is gone too
    mfa_limiter(v1.api).reset()

    # Disabling needs the password and a code.
    r = await bob.client.post("/auth/2fa/disable", json={"password": PASSWORD})
    assert r.status_code == 422
    r = await bob.client.post("/auth/2fa/disable", json={"password": "wrong",
                                                         "code": code(secret, 1)})
    assert r.status_code == 401
    r = await bob.client.post("/auth/2fa/disable", json={"password": PASSWORD,
                                                         "code": "000000"})
    assert r.status_code == 401
    r = await bob.client.post("/auth/2fa/disable", json={"password": PASSWORD,
                                                         "code": code(secret, 1)})
    assert r.status_code == 200, r.text
    assert (await bob.client.get("/auth/2fa/status")).json()["enabled"] is False
    assert "access_token" in await password_step(v1, "bob")
    assert (await bob.client.post("/auth/2fa/disable", json={
        "password": PASSWORD, "code": "123456"})).status_code == 409
    # The secret and the codes are stored as the module docstring says.
    db = v1.api.store
    assert db.call(lambda c: c.execute("SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?",
                                       (bob.id,)).fetchone()[0]) == 0


async def test_2fa_verification_is_rate_limited(v1, clock):
    cid = await v1.account("cid")
    secret = (await cid.client.post("/auth/2fa/setup", json={"password": PASSWORD})
              ).json()["secret"]
    for _ in range(mfa.FAILURE_LIMIT):
        r = await cid.client.post("/auth/2fa/verify-setup", json={"code": code(secret, 9)})
        assert r.status_code == 422
    r = await cid.client.post("/auth/2fa/verify-setup", json={"code": code(secret, 0)})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    mfa_limiter(v1.api).reset()
    await cid.client.post("/auth/2fa/verify-setup", json={"code": code(secret, 0)})
    token = (await password_step(v1, "cid"))["mfa_token"]
    for _ in range(mfa.FAILURE_LIMIT):
        r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                        "code": code(secret, 7)})
        assert r.status_code == 401
    # Even the right code waits now: guessing is bounded.
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                    "code": code(secret, 1)})
    assert r.status_code == 429 and "too many failed" in r.json()["detail"]


async def test_password_change_ends_other_sessions_and_sockets(v1):
    ann = await v1.account("ann")
    other = v1.client((await password_step(v1, "ann"))["access_token"])
    other_token = other.headers["authorization"].split()[1]
    r = await ann.client.post("/auth/password/change", json={
        "current_password": "wrong", "new_password": NEW_PASSWORD})
    assert r.status_code == 401 and 'error="invalid_grant"' in r.headers["www-authenticate"]
    assert r.json()["detail"].startswith("current_password: ")  # the field it came in
    assert (await ann.client.get("/auth/me")).status_code == 200
    r = await ann.client.post("/auth/password/change", json={
        "current_password": PASSWORD, "new_password": "weakpassword"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "new_password"]
    r = await ann.client.post("/auth/password/change", json={
        "current_password": PASSWORD, "new_password": PASSWORD})
    assert r.status_code == 422 and "differ" in r.text
    policy = (await v1.anon.get("/auth/password/policy")).json()
    assert policy["min_length"] == 12 and policy["require_special"] is True

    async with connect(f"{v1.ws_url}?token={other_token}") as ws:
        json.loads(await ws.recv())  # welcome
        r = await ann.client.post("/auth/password/change", json={
            "current_password": PASSWORD, "new_password": NEW_PASSWORD,
            "end_other_sessions": True})
        assert r.status_code == 200, r.text
        assert r.json()["sessions_ended"] == 1
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()
    assert ws.close_code == 4401
    assert (await other.get("/auth/me")).status_code == 401
    assert (await ann.client.get("/auth/me")).status_code == 200  # this session stays
    r = await v1.anon.post("/auth/login", json={"username": ann.username,
                                                "password": PASSWORD})
    assert r.status_code == 401
    r = await v1.anon.post("/auth/login", json={"username": ann.username,
                                                "password": NEW_PASSWORD})
    assert r.status_code == 200
    kinds = [e["kind"] for e in (await ann.client.get("/users/me/security-log")).json()[
        "events"]]
    assert "password_changed" in kinds and "login_failed" in kinds


@OWN_SERVER
async def test_password_reset_by_admin_token_or_recovery_code(make_v1, clock):
    v1 = await make_v1()
    admin = await v1.account("admin")
    bob = await v1.account("bob")
    r = await bob.client.post("/auth/password/reset-token", json={"user_id": admin.id})
    assert r.status_code == 403
    r = await admin.client.post("/auth/password/reset-token",
                                json={"user_id": "00000000-0000-4000-8000-000000000000"})
    assert r.status_code == 404
    # Not for one's own account (a User Manager audit: a stolen administrator session
    # alone made a new password with 2FA off and signed the owner out).
    r = await admin.client.post("/auth/password/reset-token",
                                json={"user_id": admin.id, "disable_2fa": True})
    assert r.status_code == 403 and "your own account" in r.json()["detail"], r.text
    r = await admin.client.post("/auth/password/reset-token", json={"user_id": bob.id})
    assert r.status_code == 200, r.text
    reset_token = r.json()["reset_token"]
    assert reset_token.startswith("pxp_")
    notes = (await bob.client.get("/notifications/")).json()["notifications"]
    assert any(n["title"] == "Password reset issued" for n in notes)
    assert reset_token not in json.dumps(notes)

    body = {"username": "bob", "new_password": NEW_PASSWORD}
    r = await v1.anon.post("/auth/password/reset", json={**body, "reset_token": "pxp_x"})
    assert r.status_code == 401
    r = await v1.anon.post("/auth/password/reset", json={**body, "reset_token": reset_token,
                                                         "new_password": "short"})
    assert r.status_code == 422 and "new_password" in r.text
    r = await v1.anon.post("/auth/password/reset", json={
        "username": "admin", "new_password": NEW_PASSWORD, "reset_token": reset_token})
    assert r.status_code == 401  # the token is bob's only
    r = await v1.anon.post("/auth/password/reset", json={**body, "reset_token": reset_token})
    assert r.status_code == 200 and r.json()["sessions_ended"] == 1
    assert (await bob.client.get("/auth/me")).status_code == 401
    r = await v1.anon.post("/auth/password/reset", json={**body, "reset_token": reset_token})
    assert r.status_code == 401  # one time only
    r = await v1.anon.post("/auth/login", json={"username": "bob", "password": NEW_PASSWORD})
    assert r.status_code == 200

    # A recovery code resets the password of an account with 2FA.
    _, codes = await enable_2fa(admin)
    r = await v1.anon.post("/auth/password/reset", json={
        "username": "admin@example.org", "new_password": NEW_PASSWORD,
        "recovery_code": codes[3]})
    assert r.status_code == 200, r.text
    assert (await admin.client.get("/auth/me")).status_code == 401
    step = (await v1.anon.post("/auth/login", json={"username": "admin",
                                                    "password": NEW_PASSWORD})).json()
    assert step["requires_mfa"] is True  # 2FA stays on
    r = await v1.anon.post("/auth/password/reset", json={
        "username": "admin", "new_password": PASSWORD, "recovery_code": codes[3]})
    assert r.status_code == 401
    r = await v1.anon.post("/auth/password/reset", json={
        "username": "admin", "new_password": PASSWORD, "recovery_code": codes[4],
        "reset_token": "pxp_x"})
    assert r.status_code == 422


async def test_sessions_list_and_sign_out(v1):
    ann = await v1.account("ann")
    bob = await v1.account("bob")
    phone = await password_step(v1, "ann", device_info={"name": "Ann's phone",
                                                        "platform": "Android"})
    laptop = await password_step(v1, "ann", device_info={"name": "Work laptop"})
    listing = (await ann.client.get("/auth/sessions")).json()
    assert listing["total"] == 3 and listing["current_session_id"] == ann.login["session_id"]
    current = [s for s in listing["sessions"] if s["current"]]
    assert [s["id"] for s in current] == [ann.login["session_id"]]
    labels = {s["device_label"] for s in listing["sessions"]}
    assert "Ann's phone · Android" in labels and "Work laptop" in labels
    text = json.dumps(listing)
    assert "pxa_" not in text and "pxr_" not in text

    r = await bob.client.delete(f"/auth/sessions/{phone['session_id']}")
    assert r.status_code == 404  # someone else's session is invisible
    r = await ann.client.delete(f"/auth/sessions/{phone['session_id']}")
    assert r.status_code == 200 and r.json()["current"] is False
    assert (await v1.client(phone["access_token"]).get("/auth/me")).status_code == 401
    r = await ann.client.post("/auth/sessions/revoke-others")
    assert r.json()["sessions_ended"] == 1
    assert (await v1.client(laptop["access_token"]).get("/auth/me")).status_code == 401
    assert (await ann.client.get("/auth/sessions")).json()["total"] == 1
    r = await ann.client.delete(f"/auth/sessions/{ann.login['session_id']}")
    assert r.status_code == 200 and r.json()["current"] is True
    assert (await ann.client.get("/auth/me")).status_code == 401


async def test_security_log_and_new_device_notification(v1):
    ann = await v1.account("ann")
    r = await v1.anon.post("/auth/login", json={"username": ann.username, "password": "nope"})
    assert r.status_code == 401
    # The same client again is no news; another device is.
    await password_step(v1, "ann")
    assert (await ann.client.get("/notifications/")).json()["total"] == 0
    await password_step(v1, "ann", device_info={"name": "Tablet"})
    notes = (await ann.client.get("/notifications/")).json()["notifications"]
    assert len(notes) == 1 and notes[0]["title"] == "New sign-in to your account"
    assert "Tablet" in notes[0]["message"] and notes[0]["type"] == "warning"

    log = (await ann.client.get("/users/me/security-log")).json()
    kinds = [e["kind"] for e in log["events"]]
    assert kinds[:2] == ["new_device", "login"]
    assert kinds.count("login") == 3 and "login_failed" in kinds
    failed = next(e for e in log["events"] if e["kind"] == "login_failed")
    assert failed["detail"] == {"reason": "password"}
    assert "nope" not in json.dumps(log) and PASSWORD not in json.dumps(log)
    only = (await ann.client.get("/users/me/security-log?kind=new_device")).json()
    assert only["total"] == 1 and only["events"][0]["device_label"] == "Tablet"
    r = await ann.client.get("/users/me/security-log?kind=bogus")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "kind"]


async def test_export_holds_only_your_own_data_and_no_secret(v1, clock):
    ann = await v1.account("ann")
    bob = await v1.account("bob")
    cid = await v1.account("cid")
    await ann.client.post("/messages/send", json={"recipient_id": bob.id, "content": "hi bob"})
    await bob.client.post("/messages/send", json={"recipient_id": ann.id, "content": "hi ann"})
    await bob.client.post("/messages/send", json={"recipient_id": cid.id,
                                                  "content": "private to cid"})
    secret, codes = await enable_2fa(ann)
    export = (await ann.client.get("/users/me/export")).json()
    assert export["format"] == "plexichat-v1-account-export"
    assert export["profile"]["username"] == ann.username and export["profile"]["email"]
    assert sorted(m["content"] for m in export["messages"]) == ["hi ann", "hi bob"]
    assert export["security"]["two_factor"]["enabled"] is True
    assert any(e["kind"] == "2fa_enabled" for e in export["security"]["log"])
    text = json.dumps(export)
    assert "private to cid" not in text and cid.id not in text
    for secret_text in (secret, *codes, ann.token, ann.refresh_token, "scrypt$"):
        assert secret_text not in text


async def test_the_security_log_keeps_the_newest_entries_per_account(v1):
    ann = await v1.account("ann")
    bob = await v1.account("bob")

    def fill(conn):
        for n in range(mfa.LOG_KEEP + 5):
            mfa.record_event(conn, ann.id, "login_failed", detail={"n": n})

    v1.api.store.call(fill, write=True)
    log = (await ann.client.get("/users/me/security-log?limit=1")).json()
    assert log["total"] == mfa.LOG_KEEP
    assert log["events"][0]["detail"] == {"n": mfa.LOG_KEEP + 4}
    assert (await bob.client.get("/users/me/security-log")).json()["total"] == 1  # bob's


async def test_failed_resets_do_not_lock_the_owners_2fa_sign_in(v1, clock):
    dan = await v1.account("dan")
    secret, _ = await enable_2fa(dan)
    body = {"username": dan.username, "new_password": NEW_PASSWORD,
            "reset_token": "pxp_guess"}
    for _ in range(mfa.FAILURE_LIMIT):
        assert (await v1.anon.post("/auth/password/reset", json=body)).status_code == 401
    assert (await v1.anon.post("/auth/password/reset", json=body)).status_code == 429
    token = (await password_step(v1, "dan"))["mfa_token"]
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                    "code": code(secret, 1)})
    assert r.status_code == 200, r.text



async def test_lone_surrogates_are_hashed_not_refused():
    """JSON can carry lone surrogates; hashing them (token digests, recovery codes,
    passwords) must not raise UnicodeEncodeError (a 500 wherever it happens)."""
    from plexichat_desktop.server.v1.auth import digest, hash_password, verify_password

    assert len(digest("\ud800")) == 64 and mfa.recovery_digest("\udfff", "u").startswith("s1$")
    stored = hash_password("Ab1!\ud800", 4)
    assert verify_password("Ab1!\ud800", stored, 4) and not verify_password("Ab1!", stored, 4)
    assert mfa.accepted_step("JBSWY3DPEHPK3PXP", "\ud800" * 6, 0, T0) is None


async def test_concurrent_wrong_codes_cannot_outrun_the_failure_limit(v1, clock, monkeypatch):
    """Review finding: the limit was checked before the (awaited) verification and the
    failure counted after it, so a burst of concurrent guesses all passed the check. Each
    attempt is now counted before it is verified."""
    import time

    from plexichat_desktop.server.v1.routes import account_security

    eve = await v1.account("eve")
    secret, _ = await enable_2fa(eve)
    token = (await password_step(v1, "eve"))["mfa_token"]
    real = account_security._second_step

    def slow(*args: Any) -> Any:
        time.sleep(0.05)  # a verification that takes a moment, as under load
        return real(*args)

    monkeypatch.setattr(account_security, "_second_step", slow)
    wrong = [c for c in (f"{n:06d}" for n in range(100))
             if mfa.accepted_step(secret, c, 0, T0) is None][:4 * mfa.FAILURE_LIMIT]
    answers = await asyncio.gather(*[
        v1.anon.post("/auth/login-2fa", json={"mfa_token": token, "code": guess})
        for guess in wrong])
    statuses = [r.status_code for r in answers]
    assert statuses.count(401) <= mfa.FAILURE_LIMIT, statuses
    assert statuses.count(429) >= len(wrong) - mfa.FAILURE_LIMIT
    # Successes and other errors give their slot back: the owner is not locked out by them.
    mfa_limiter(v1.api).reset()
    for _ in range(mfa.FAILURE_LIMIT + 2):
        r = await eve.client.post("/auth/password/change", json={
            "current_password": PASSWORD, "new_password": "weak"})
        assert r.status_code == 422


async def test_a_pending_second_step_ends_with_a_password_change(v1, clock):
    """Review finding: an mfa_token issued for the old password still completed a login
    after the password was changed."""
    fay = await v1.account("fay")
    secret, _ = await enable_2fa(fay)
    token = (await password_step(v1, "fay"))["mfa_token"]
    r = await fay.client.post("/auth/password/change", json={
        "current_password": PASSWORD, "new_password": NEW_PASSWORD,
        "end_other_sessions": True})
    assert r.status_code == 200, r.text
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                    "code": code(secret, 1)})
    assert r.status_code == 401 and "mfa_token" in r.json()["detail"]


async def test_stored_recovery_codes_resist_an_offline_search(
        v1, clock, production_recovery_cost):
    """Review finding: recovery codes (40 bits) were stored as unsalted SHA-256, so a copy
    of the database (a backup) gave every account's codes after a GPU search of minutes,
    and a recovery code resets the password. They are scrypt digests salted with the
    account now; codes stored the old way still work once."""
    import hashlib

    gil = await v1.account("gil")
    _, codes = await enable_2fa(gil)

    def stored(conn):
        return [r[0] for r in conn.execute(
            "SELECT code_hash FROM recovery_codes WHERE user_id = ?", (gil.id,))]

    hashes = v1.api.store.call(stored)
    assert len(hashes) == len(codes)
    for one in codes:
        fast = hashlib.sha256(f"recovery:{mfa.normalise_recovery_code(one)}".encode())
        assert fast.hexdigest() not in hashes
    assert mfa.RECOVERY_SCRYPT_LOG_N == 14  # 16 MiB: what makes the search costly
    assert sorted(hashes) == sorted(mfa.recovery_digest(c, gil.id) for c in codes)
    assert mfa.recovery_digest(codes[0], gil.id) != mfa.recovery_digest(codes[0], "other")

    # A code stored by the first version (plain SHA-256) is still accepted, once.
    def legacy(conn):
        conn.execute("INSERT INTO recovery_codes (user_id, code_hash, created_at) "
                     "VALUES (?, ?, 0)", (gil.id, mfa.legacy_recovery_digest("aaaaa-bbbbb")))

    v1.api.store.call(legacy, write=True)
    for expected in (200, 401):
        token = (await password_step(v1, "gil"))["mfa_token"]
        r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                        "recovery_code": "AAAAA BBBBB"})
        assert r.status_code == expected, r.text
    # And a current code, typed loosely, works once too.
    token = (await password_step(v1, "gil"))["mfa_token"]
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                    "recovery_code": codes[1].upper()})
    assert r.status_code == 200 and r.json()["recovery_codes_remaining"] == len(codes) - 1


async def test_the_failure_limiter_forgets_quiet_keys():
    """Review finding (of the fix that counts attempts in advance): attempts must prune
    keys that went quiet like failures do, or every name ever tried stays in memory."""
    now = [0.0]
    limiter = mfa.FailureLimiter("test", clock=lambda: now[0])
    for n in range(10_050):
        with limiter.attempt(f"name:{n}") as attempt:
            attempt.fail()
    now[0] += mfa.FAILURE_WINDOW + 1
    with limiter.attempt("owner"):
        pass  # a success: its slot is given back
    assert len(limiter._failures) <= 2


async def test_no_user_can_send_a_security_alert_to_another(v1):
    """Review finding: any user could send another a notification with metadata
    kind 'security.new_device' (title 'New sign-in to your account'...), which the User
    Manager shows as the server's own security alert: a phishing channel. The 'security.'
    kinds are the server's."""
    ann = await v1.account("ann")
    bob = await v1.account("bob")
    for kind in ("security.new_device", "security.password_reset_issued", "security.x"):
        for path, target in (("/notifications/send", {"recipient_id": ann.id}),
                             ("/notifications/broadcast", {"recipient_ids": [ann.id]})):
            r = await bob.client.post(path, json={
                "title": "New sign-in to your account", "message": "Change it at evil",
                "metadata": {"kind": kind}, **target})
            assert r.status_code == 422 and "reserved" in r.text, (path, kind, r.text)
    r = await bob.client.post("/notifications/send", json={
        "recipient_id": ann.id, "title": "hi", "message": "hello",
        "metadata": {"kind": "chat.ping"}})
    assert r.status_code == 201, r.text
    # The server's own alert still arrives (a new device signs in).
    await password_step(v1, "ann", device_info={"name": "Laptop"})
    notes = (await ann.client.get("/notifications/")).json()["notifications"]
    kinds = [n["metadata"].get("kind") for n in notes]
    assert "security.new_device" in kinds and "chat.ping" in kinds


async def test_no_user_can_send_the_servers_own_notification_types(v1):
    """Audit leftover: any user could send another a "system" notification (the type the
    server's own have, sender_id null) or a "group_invite" no invite backs, its action_url
    a join. Both are the server's; the server still sends them."""
    ann = await v1.account("ann")
    bob = await v1.account("bob")
    for kind in ("system", "group_invite"):
        for path, target in (("/notifications/send", {"recipient_id": ann.id}),
                             ("/notifications/broadcast", {"recipient_ids": [ann.id]})):
            r = await bob.client.post(path, json={
                "title": "Your account", "message": "Sign in again at evil", "type": kind,
                **target})
            assert r.status_code == 422, (path, kind, r.text)
            assert r.json()["detail"][0]["loc"] == ["body", "type"]
            assert "reserved" in r.json()["detail"][0]["msg"]
    assert (await ann.client.get("/notifications/")).json()["total"] == 0
    r = await ann.client.post("/notifications/test")
    assert r.status_code == 201 and r.json()["type"] == "system"
    assert r.json()["sender_id"] is None
    group = (await bob.client.post("/groups/create", json={"name": "Team"})).json()
    r = await bob.client.post(f"/groups/{group['id']}/invite", json={"user_ids": [ann.id]})
    assert r.status_code == 200, r.text
    kinds = {n["type"] for n in (await ann.client.get("/notifications/")).json()
             ["notifications"]}
    assert kinds == {"system", "group_invite"}


async def test_setting_up_2fa_needs_the_password(v1, clock):
    """A stolen access token alone cannot put another authenticator on the account."""
    eve = await v1.account("eve")
    for body in (None, {}, {"password": ""}):
        r = await eve.client.post("/auth/2fa/setup", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", "password"]
    r = await eve.client.post("/auth/2fa/setup", json={"password": "wrong"})
    assert r.status_code == 401 and r.json()["detail"].startswith("password:")
    assert 'error="invalid_grant"' in r.headers["www-authenticate"]
    status = (await eve.client.get("/auth/2fa/status")).json()
    assert status["pending_setup"] is False  # nothing was started
    for _ in range(mfa.FAILURE_LIMIT - 1):  # the wrong passwords count like codes
        r = await eve.client.post("/auth/2fa/setup", json={"password": "wrong"})
        assert r.status_code == 401
    r = await eve.client.post("/auth/2fa/setup", json={"password": PASSWORD})
    assert r.status_code == 429
    mfa_limiter(v1.api).reset()
    r = await eve.client.post("/auth/2fa/setup", json={"password": PASSWORD})
    assert r.status_code == 200 and r.json()["secret"]


async def test_new_recovery_codes_need_a_second_factor_too(v1, clock):
    """The password alone (phished, reused) must not renew the recovery codes: that would
    hand their holder a way around the authenticator."""
    fay = await v1.account("fay")
    secret, codes = await enable_2fa(fay)
    r = await fay.client.post("/auth/2fa/backup-codes", json={"password": PASSWORD})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "code"]
    r = await fay.client.post("/auth/2fa/backup-codes", json={
        "password": PASSWORD, "code": code(secret, 1), "recovery_code": codes[0]})
    assert r.status_code == 422  # exactly one
    r = await fay.client.post("/auth/2fa/backup-codes", json={"password": PASSWORD,
                                                              "code": "000000"})
    assert r.status_code == 401 and r.json()["detail"].startswith("code:")
    r = await fay.client.post("/auth/2fa/backup-codes", json={"password": PASSWORD,
                                                              "recovery_code": "abcde-01234"})
    assert r.status_code == 401 and r.json()["detail"].startswith("recovery_code:")
    r = await fay.client.post("/auth/2fa/backup-codes", json={"password": "wrong",
                                                              "code": code(secret, 1)})
    assert r.status_code == 401 and r.json()["detail"].startswith("password:")
    status = (await fay.client.get("/auth/2fa/status")).json()
    assert status["recovery_codes_remaining"] == 10  # nothing changed
    mfa_limiter(v1.api).reset()
    r = await fay.client.post("/auth/2fa/backup-codes", json={"password": PASSWORD,
                                                              "code": code(secret, 1)})
    assert r.status_code == 200, r.text
    fresh = r.json()["recovery_codes"]
    # The code is spent; a recovery code works too (the old set is gone after that).
    r = await fay.client.post("/auth/2fa/backup-codes", json={"password": PASSWORD,
                                                              "code": code(secret, 1)})
    assert r.status_code == 401
    r = await fay.client.post("/auth/2fa/backup-codes", json={"password": PASSWORD,
                                                              "recovery_code": codes[1]})
    assert r.status_code == 401  # an old code
    mfa_limiter(v1.api).reset()
    r = await fay.client.post("/auth/2fa/backup-codes", json={"password": PASSWORD,
                                                              "recovery_code": fresh[0]})
    assert r.status_code == 200, r.text
    log = (await fay.client.get("/users/me/security-log",
                                params={"kind": "recovery_codes_regenerated"})).json()
    assert [e["detail"]["confirmed_with"] for e in log["events"]] == ["recovery_code",
                                                                      "totp"]


async def test_deleting_the_account_needs_the_password_and_the_second_factor(v1, clock):
    """A stolen access token alone cannot delete the account; with 2FA on, the password
    alone cannot either."""
    gus = await v1.account("gus")

    async def delete(body: Any) -> Any:
        return await gus.client.request("DELETE", "/users/me", json=body)

    for body in (None, {}, {"code": "123456"}):
        r = await delete(body)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "password"]
    r = await delete({"password": "wrong"})
    assert r.status_code == 401 and r.json()["detail"].startswith("password:")
    assert 'error="invalid_grant"' in r.headers["www-authenticate"]
    secret, codes = await enable_2fa(gus)
    r = await delete({"password": PASSWORD})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "code"]
    r = await delete({"password": PASSWORD, "code": "000000"})
    assert r.status_code == 401 and r.json()["detail"].startswith("code:")
    r = await delete({"password": PASSWORD, "recovery_code": "abcde-01234"})
    assert r.status_code == 401 and r.json()["detail"].startswith("recovery_code:")
    assert (await gus.client.get("/users/me")).status_code == 200  # still there
    mfa_limiter(v1.api).reset()
    r = await delete({"password": PASSWORD, "code": code(secret, 1)})
    assert r.status_code == 200 and r.json()["user_id"] == gus.id
    assert (await gus.client.get("/users/me")).status_code == 401

    # A recovery code does it too; without 2FA the password is enough.
    hal = await v1.account("hal")
    _, codes = await enable_2fa(hal)
    r = await hal.client.request("DELETE", "/users/me", json={"password": PASSWORD,
                                                              "recovery_code": codes[3]})
    assert r.status_code == 200, r.text
    ida = await v1.account("ida")
    r = await ida.client.request("DELETE", "/users/me", json={"password": PASSWORD})
    assert r.status_code == 200, r.text


@OWN_SERVER
async def test_an_administrators_reset_token_can_switch_2fa_off(make_v1, clock):
    """A user who lost the authenticator (and the recovery codes): the administrator's
    reset token with disable_2fa switches 2FA off when it is used, logged for the user."""
    v1 = await make_v1()
    admin = await v1.account("admin")
    joe = await v1.account("joe")
    await enable_2fa(joe)
    r = await admin.client.post("/auth/password/reset-token",
                                json={"user_id": joe.id, "disable_2fa": True})
    assert r.status_code == 200, r.text
    issued = r.json()
    assert issued["disable_2fa"] is True and issued["two_factor_enabled"] is True
    # Nothing changes before the token is used: 2FA still guards the account.
    assert (await password_step(v1, "joe"))["requires_mfa"] is True
    r = await v1.anon.post("/auth/password/reset", json={
        "username": "joe", "new_password": NEW_PASSWORD, "reset_token": issued["reset_token"]})
    assert r.status_code == 200, r.text
    assert r.json()["two_factor_disabled"] is True
    login = await v1.anon.post("/auth/login", json={"username": "joe",
                                                     "password": NEW_PASSWORD})
    assert login.status_code == 200 and "access_token" in login.json()
    jo_client = v1.client(login.json()["access_token"])
    assert (await jo_client.get("/auth/2fa/status")).json()["enabled"] is False
    log = (await jo_client.get("/users/me/security-log")).json()["events"]
    off = [e for e in log if e["kind"] == "2fa_disabled"]
    assert off and off[0]["detail"] == {"confirmed_with": "reset_token",
                                        "by_administrator": "admin"}
    issue = next(e for e in log if e["kind"] == "password_reset_issued")
    assert issue["detail"]["disable_2fa"] is True
    notes = (await jo_client.get("/notifications/")).json()["notifications"]
    assert any("two-factor sign-in off" in n["message"] for n in notes)
    count = v1.api.store.call(lambda c: c.execute(
        "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?", (joe.id,)).fetchone()[0])
    assert count == 0

    # Without the flag a reset token leaves 2FA as it was.
    kim = await v1.account("kim")
    await enable_2fa(kim)
    token = (await admin.client.post("/auth/password/reset-token",
                                     json={"user_id": kim.id})).json()["reset_token"]
    r = await v1.anon.post("/auth/password/reset", json={
        "username": "kim", "new_password": NEW_PASSWORD, "reset_token": token})
    assert r.status_code == 200 and r.json()["two_factor_disabled"] is False
    step = (await v1.anon.post("/auth/login", json={"username": "kim",
                                                    "password": NEW_PASSWORD})).json()
    assert step["requires_mfa"] is True


def _stored_secret(v1: Any, user_id: str) -> str:
    return v1.api.store.call(lambda c: c.execute(
        "SELECT secret FROM mfa WHERE user_id = ?", (user_id,)).fetchone()[0])


async def test_totp_secrets_are_encrypted_at_rest_with_a_key_beside_the_database(
        v1, clock, tmp_path):
    import os
    import stat

    kai = await v1.account("kai")
    secret, _ = await enable_2fa(kai)
    stored = _stored_secret(v1, kai.id)
    assert stored.startswith("aesgcm1:") and secret not in stored
    key_file = v1.api.root / mfa.SECRET_KEY_FILE
    assert key_file.parent == v1.api.store.path.parent
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    # A backup (the database's snapshot) carries no usable secret, nor the key.
    copy = tmp_path / "copy.sqlite3"
    v1.api.store.snapshot_to(copy)
    assert secret.encode() not in copy.read_bytes()
    key = key_file.read_text().strip()
    assert key.encode() not in copy.read_bytes()
    # The key is bound to the account: a secret moved to another row does not open.
    with pytest.raises(mfa.SecretUnavailable):
        v1.api.store.call(mfa.open_secret, "someone-else", stored)
    token = (await password_step(v1, "kai"))["mfa_token"]
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                    "code": code(secret, 1)})
    assert r.status_code == 200, r.text
    assert (await kai.client.get("/auth/2fa/status")).json()["secret_readable"] is True


async def test_plain_secrets_of_older_versions_are_encrypted_by_the_migration(
        clock, tmp_path):
    from plexichat_desktop.core.sqlite import SqliteDatabase
    from plexichat_desktop.server.v1.store import MIGRATIONS, ApiStore

    path = tmp_path / "api_v1" / "plexichat.sqlite3"
    old = SqliteDatabase(path, MIGRATIONS[:9])  # the schema before the change
    secret = mfa.new_secret()
    with old.transaction(write=True) as conn:
        conn.execute("INSERT INTO users (id, username, email, password_hash, created_at, "
                     "updated_at) VALUES ('u1', 'lea', 'lea@example.org', 'x', 0, 0)")
        conn.execute("INSERT INTO mfa (user_id, secret, enabled, created_at, last_step) "
                     "VALUES ('u1', ?, 1, 0, 0)", (secret,))
    old.close()
    assert not (path.parent / mfa.SECRET_KEY_FILE).exists()
    store = ApiStore(path)
    try:
        stored = store.call(lambda c: c.execute("SELECT secret FROM mfa").fetchone()[0])
        assert stored.startswith("aesgcm1:") and secret not in stored
        assert (path.parent / mfa.SECRET_KEY_FILE).exists()
        assert store.call(mfa.verify_totp, "u1", code(secret, 0), write=True)
    finally:
        store.close()
    # A new database with no secret makes no key (a restore's scratch copy, say).
    ApiStore(tmp_path / "empty" / "plexichat.sqlite3").close()
    assert not (tmp_path / "empty" / mfa.SECRET_KEY_FILE).exists()


NEW_DATABASE = """
import pathlib, sys, tempfile
from plexichat_desktop.server.v1.store import ApiStore
ApiStore(pathlib.Path(tempfile.mkdtemp()) / "plexichat.sqlite3").close()
print("plexichat_desktop.server.v1.mfa" in sys.modules)
"""


async def test_a_new_database_is_made_without_the_2fa_module():
    # Sealing plain secrets (the migration above) needs mfa, whose imports (pyotp, segno,
    # AES) cost ~30 ms of every first start; a database with no 2FA has nothing to seal.
    import subprocess
    import sys

    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", NEW_DATABASE],
                                   capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@OWN_SERVER
async def test_a_database_without_its_key_fails_2fa_clearly(make_v1, clock):
    """Restored on another computer (the key file stays behind): TOTP codes fail with a
    409 that says why and what to do; recovery codes and an administrator's reset work."""
    v1 = await make_v1()
    admin = await v1.account("admin")
    max_ = await v1.account("max")
    secret, codes = await enable_2fa(max_)
    key_file = v1.api.root / mfa.SECRET_KEY_FILE
    key_file.unlink()
    status = (await max_.client.get("/auth/2fa/status")).json()
    assert status["enabled"] is True and status["secret_readable"] is False
    token = (await password_step(v1, "max"))["mfa_token"]
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                    "code": code(secret, 1)})
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert mfa.SECRET_KEY_FILE in detail and "recovery code" in detail
    assert "disable_2fa" in detail
    r = await v1.anon.post("/auth/login", json={"username": "max", "password": PASSWORD,
                                                "mfa_code": code(secret, 1)})
    assert r.status_code == 409
    # Another key (not just a missing one) is as clear.
    key_file.write_text("A" * 43 + "=\n")
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                    "code": code(secret, 1)})
    assert r.status_code == 409 and "another key" in r.json()["detail"]
    # The challenge was not spent and nothing counted as a failure: a recovery code works.
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                    "recovery_code": codes[0]})
    assert r.status_code == 200, r.text
    # The administrator's way out: a reset token that switches 2FA off.
    reset = (await admin.client.post("/auth/password/reset-token", json={
        "user_id": max_.id, "disable_2fa": True})).json()
    r = await v1.anon.post("/auth/password/reset", json={
        "username": "max", "new_password": NEW_PASSWORD, "reset_token": reset["reset_token"]})
    assert r.status_code == 200 and r.json()["two_factor_disabled"] is True


async def test_a_plain_secret_is_encrypted_on_its_next_use(v1, clock):
    """A restored archive from before the change brings plain secrets: they are sealed
    after the restore, and any left over when first used."""
    ned = await v1.account("ned")
    secret, _ = await enable_2fa(ned)
    v1.api.store.call(lambda c: c.execute("UPDATE mfa SET secret = ? WHERE user_id = ?",
                                          (secret, ned.id)), write=True)
    token = (await password_step(v1, "ned"))["mfa_token"]
    r = await v1.anon.post("/auth/login-2fa", json={"mfa_token": token,
                                                    "code": code(secret, 1)})
    assert r.status_code == 200, r.text
    assert _stored_secret(v1, ned.id).startswith("aesgcm1:")
