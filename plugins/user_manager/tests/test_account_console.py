"""The User Manager in the running app against the real embedded v1 server: the page, the
profile and meter, the 2FA wizard with the MFA sign-in, password change ending other
sessions, sessions, the security log, the export, account deletion and administration.

``plexichat_app.user`` is a v1 account the API layer (so ``ctx.api``) is signed in as.
The server's TOTP clock is fixed in these tests, so a code never depends on timing.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx

from plexichat_desktop.server.v1 import mfa

T0 = 1_900_000_005.0
STRONG = "Stable-Lantern-Orbit-42"


def code(secret: str, offset: int = 0) -> str:
    return mfa.code_at(secret, mfa.step_of(T0) + offset)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def test_the_page_and_its_script_are_served(plexichat_app):
    page = plexichat_app.client.get("")
    assert page.status_code == 200 and "<title>Account</title>" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'src="app.js"' in page.text and "<script>" not in page.text
    assert not re.search(r"\son[a-z]+=", page.text)  # no inline handlers (the CSP)
    script = plexichat_app.client.get("app.js")
    assert script.status_code == 200
    for text in (page.text, script.text):  # no CDN: everything is served by the app
        assert not re.search(r"(src|href)=\"https?://", text)
        assert "eval(" not in text and "new Function" not in text


def test_overview_profile_and_the_meter(plexichat_app):
    client, user = plexichat_app.client, plexichat_app.user
    overview = ok(client.get("api/overview"))
    assert overview["signed_in"] and overview["user"]["username"] == user.username
    assert overview["mfa"]["enabled"] is False and overview["server"]["embedded"]
    assert overview["policy"]["min_length"] == 12 and overview["min_score"] == 2

    profile = ok(client.put("api/profile", json={"display_name": "Harness Person",
                                                  "first_name": "Harness"}))
    assert profile["display_name"] == "Harness Person" and profile["first_name"] == "Harness"
    bad = client.put("api/profile", json={"email": "not-an-email"})
    assert bad.status_code == 422 and "email" in bad.text

    weak = ok(client.post("api/password/strength", json={"password": "Password1234!"}))
    assert weak["policy_ok"] and not weak["acceptable"] and weak["score"] <= 1
    strong = ok(client.post("api/password/strength", json={"password": STRONG}))
    assert strong["acceptable"] and strong["score"] >= 3
    # The account's own names are known words: built from them, a password scores lower.
    mine = ok(client.post("api/password/strength",
                          json={"password": f"{user.username}-Harness1!"}))
    other = ok(client.post("api/password/strength", json={"password": "Qzvbrt7x-Harness1!"}))
    assert mine["guesses_log10"] < other["guesses_log10"]


def test_the_2fa_wizard_and_signing_in_with_a_code(plexichat_app, clock):
    client, user = plexichat_app.client, plexichat_app.user
    # Setting up needs the password: a wrong one is 403 here (the session stays).
    assert client.post("api/2fa/setup", json={"password": "wrong"}).status_code == 403
    assert client.post("api/2fa/setup", json={}).status_code == 422
    setup = ok(client.post("api/2fa/setup", json={"password": user.password}))
    assert setup["qr_svg"].startswith("<svg") and setup["otpauth_uri"].startswith(
        "otpauth://totp/PlexiChat:")
    wrong = client.post("api/2fa/verify", json={"code": code(setup["secret"], 4)})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"][-1] == "code"
    codes = ok(client.post("api/2fa/verify", json={"code": code(setup["secret"])}))[
        "recovery_codes"]
    assert len(codes) == 10
    assert ok(client.get("api/2fa"))["enabled"] is True

    # Sign out, then in again: the password alone asks for the code.
    assert ok(client.post("api/logout")) == {"signed_in": False}
    assert ok(client.get("api/overview"))["signed_in"] is False
    step = ok(client.post("api/login", json={"username": user.username,
                                             "password": user.password}))
    assert step["requires_mfa"] is True and step["mfa_token"].startswith("pxm_")
    refused = client.post("api/login-2fa", json={"mfa_token": step["mfa_token"],
                                                 "code": code(setup["secret"])})
    assert refused.status_code == 403  # the set-up's code, replayed
    assert "invalid or already used" in refused.text
    signed = ok(client.post("api/login-2fa", json={"mfa_token": step["mfa_token"],
                                                   "code": code(setup["secret"], 1)}))
    assert signed["signed_in"] is True
    # A recovery code works once, typed with spaces.
    client.post("api/logout")
    step = ok(client.post("api/login", json={"username": user.username,
                                             "password": user.password}))
    signed = ok(client.post("api/login-2fa", json={"mfa_token": step["mfa_token"],
                                                   "code": " ".join(codes[0].split("-"))}))
    assert signed["recovery_codes_remaining"] == 9

    wrong = client.post("api/2fa/regenerate", json={"password": "not it",
                                                    "code": codes[1]})
    assert wrong.status_code == 403 and "wrong password" in wrong.text
    # The password alone is not enough: a code (or a recovery code) goes with it.
    assert client.post("api/2fa/regenerate",
                       json={"password": user.password}).status_code == 422
    fresh = ok(client.post("api/2fa/regenerate", json={"password": user.password,
                                                       "code": codes[1]}))
    assert len(fresh["recovery_codes"]) == 10 and codes[1] not in fresh["recovery_codes"]
    assert ok(client.post("api/2fa/disable", json={"password": user.password,
                                                   "code": fresh["recovery_codes"][0]}))
    assert ok(client.get("api/overview"))["mfa"]["enabled"] is False
    kinds = {e["kind"] for e in ok(client.get("api/security-log"))["events"]}
    assert {"2fa_enabled", "recovery_code_used", "recovery_codes_regenerated",
            "2fa_disabled", "login_failed"} <= kinds


def test_password_change_ends_other_sessions(plexichat_app):
    client, user = plexichat_app.client, plexichat_app.user
    assert user.client.get("auth/me").status_code == 200  # the harness's own session
    sessions = ok(client.get("api/sessions"))
    assert sessions["total"] == 2 and sum(s["current"] for s in sessions["sessions"]) == 1

    easy = client.post("api/password/change", json={"current_password": user.password,
                                                     "new_password": "Password1234!"})
    assert easy.status_code == 422 and "too easy to guess" in easy.text
    assert easy.json()["detail"][0]["loc"] == ["body", "new_password"]
    wrong = client.post("api/password/change", json={"current_password": "nope",
                                                      "new_password": STRONG})
    assert wrong.status_code == 403
    assert ok(client.get("api/overview"))["signed_in"] is True  # a typo signs nobody out
    done = ok(client.post("api/password/change", json={
        "current_password": user.password, "new_password": STRONG,
        "end_other_sessions": True}))
    assert done["sessions_ended"] == 1
    assert user.client.get("auth/me").status_code == 401
    assert ok(client.get("api/sessions"))["total"] == 1
    log = ok(client.get("api/security-log?kind=password_changed"))
    assert log["total"] == 1 and log["events"][0]["detail"]["sessions_ended"] == 1


def test_a_session_ended_elsewhere_shows_the_sign_in(plexichat_app):
    client, user = plexichat_app.client, plexichat_app.user
    assert ok(client.get("api/overview"))["signed_in"] is True
    # The harness's own client signs every session out (as another device would).
    assert user.client.post("auth/logout?all_sessions=true").status_code == 200
    overview = ok(client.get("api/overview"))
    assert overview["signed_in"] is False and "log in again" in overview["ended"]


def test_sign_out_one_session_and_the_others(plexichat_app):
    client, user = plexichat_app.client, plexichat_app.user
    base = f"{plexichat_app.url}api/v1/"
    for device in ("Phone", "Tablet"):
        ok(httpx.post(base + "auth/login", json={
            "username": user.username, "password": user.password,
            "device_info": {"name": device}}))
    listed = ok(client.get("api/sessions"))["sessions"]
    assert len(listed) == 4
    phone = next(s for s in listed if s["device_label"] == "Phone")
    assert ok(client.post(f"api/sessions/{phone['id']}/revoke"))["success"]
    assert client.post("api/sessions/not-a-session/revoke").status_code == 404
    assert ok(client.post("api/sessions/revoke-others"))["sessions_ended"] == 2
    assert ok(client.get("api/sessions"))["total"] == 1
    overview = ok(client.get("api/overview"))
    labels = [e["device_label"] for e in overview["recent_new_devices"]]
    assert "Tablet" in labels and "Phone" in labels


def test_export_holds_your_data_and_deletion_needs_the_username(plexichat_app):
    client, user = plexichat_app.client, plexichat_app.user
    exported = client.get("api/export")
    assert exported.status_code == 200
    assert exported.headers["content-disposition"].startswith(
        f'attachment; filename="plexichat-account-{user.username}-')
    data = json.loads(exported.text)
    assert data["profile"]["username"] == user.username and data["security"]["log"]
    for secret in (user.password, user.access_token, "scrypt$", "pxr_"):
        assert secret not in exported.text

    refused = client.post("api/delete-account", json={"confirm": user.username.upper()})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][-1] == "confirm"
    assert user.client.get("auth/me").status_code == 200
    # The password confirms it (the username typed is not enough).
    refused = client.post("api/delete-account", json={"confirm": user.username})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][-1] == "password"
    refused = client.post("api/delete-account", json={"confirm": user.username,
                                                      "password": "not it"})
    assert refused.status_code == 403 and "wrong password" in refused.text
    assert user.client.get("auth/me").status_code == 200
    ok(client.post("api/delete-account", json={"confirm": user.username,
                                               "password": user.password}))
    assert ok(client.get("api/overview"))["signed_in"] is False
    gone = httpx.post(f"{plexichat_app.url}api/v1/auth/login",
                      json={"username": user.username, "password": user.password})
    assert gone.status_code == 401


def test_administrators_list_users_and_issue_reset_tokens(plexichat_app):
    client, user = plexichat_app.client, plexichat_app.user
    assert client.get("api/admin/users").status_code == 403  # not an administrator
    base = f"{plexichat_app.url}api/v1/"
    admin = {"username": "boss", "email": "boss@example.org", "password": STRONG}
    made = httpx.post(base + "auth/register", json=admin,
                      headers={"X-PlexiChat-App-Token": plexichat_app.token})
    assert made.status_code == 201 and made.json()["user"]["is_admin"] is True
    ok(client.post("api/login", json={"username": "boss", "password": STRONG}))
    listed = ok(client.get("api/admin/users"))
    assert {u["username"] for u in listed["users"]} >= {"boss", user.username}
    found = ok(client.get("api/admin/users", params={"query": user.username[:6]}))
    assert [u["username"] for u in found["users"]] == [user.username]

    token = ok(client.post("api/admin/reset-token", json={"user_id": user.user_id,
                                                           "disable_2fa": True}))
    assert token["reset_token"].startswith("pxp_") and token["username"] == user.username
    assert token["disable_2fa"] is True
    # The user, signed out, sets a new password with it (no e-mail involved).
    client.post("api/logout")
    both = client.post("api/forgot", json={"username": user.username, "new_password": STRONG,
                                           "reset_token": token["reset_token"],
                                           "recovery_code": "abcde-fghij"})
    assert both.status_code == 422
    easy = client.post("api/forgot", json={"username": user.username,
                                           "new_password": "Password1234!",
                                           "reset_token": token["reset_token"]})
    assert easy.status_code == 422 and "new_password" in easy.text
    done = ok(client.post("api/forgot", json={"username": user.username,
                                              "new_password": STRONG,
                                              "reset_token": token["reset_token"]}))
    assert done["success"] is True and done["two_factor_disabled"] is False  # it was off
    assert user.client.get("auth/me").status_code == 401  # every session ended
    again = client.post("api/forgot", json={"username": user.username,
                                            "new_password": STRONG + "x",
                                            "reset_token": token["reset_token"]})
    assert again.status_code == 403  # the token worked once
    assert ok(client.post("api/login", json={"username": user.username,
                                             "password": STRONG}))["signed_in"]

    # The administrator deleting the account while others exist is told what follows
    # (audit: it went without a word, and nobody could reset a password any more).
    ok(client.post("api/login", json={"username": "boss", "password": STRONG}))
    refused = client.post("api/delete-account", json={"confirm": "boss", "password": STRONG})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"][-1] == "confirm_admin"
    assert "next account registered from this app" in refused.text
    ok(client.post("api/delete-account", json={"confirm": "boss", "password": STRONG,
                                               "confirm_admin": True}))
    again = httpx.post(base + "auth/register", json={**admin, "username": "boss2",
                                                     "email": "boss2@example.org"},
                       headers={"X-PlexiChat-App-Token": plexichat_app.token})
    assert again.status_code == 201 and again.json()["user"]["is_admin"] is True


async def test_a_new_device_and_the_session_ending_reach_the_page_live(plexichat_app):
    from plexichat_desktop.plugins.sse import next_event, read_events

    user = plexichat_app.user
    v1 = f"{plexichat_app.url}api/v1"
    async with plexichat_app.async_client(timeout=30) as page, httpx.AsyncClient(
            base_url=v1, timeout=30) as other, asyncio.timeout(60), page.stream(
            "GET", "api/events") as stream:
        events = read_events(stream)
        assert (await next_event(events, "following"))["signed_in"] is True
        await next_event(events, "live")  # the account's socket is open
        login = await other.post("/auth/login", json={
            "username": user.username, "password": user.password,
            "device_info": {"name": "Stranger's laptop"}})
        assert login.status_code == 200
        alert = await next_event(events, "security")
        assert alert["kind"] == "security.new_device"
        assert "Stranger's laptop" in alert["message"]

        # That new session signs this one out: the page hears it at once.
        mine = next(s for s in (await page.get("api/sessions")).json()["sessions"]
                    if s["current"])
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        ended = await other.delete(f"/auth/sessions/{mine['id']}", headers=headers)
        assert ended.status_code == 200
        assert "4401" in (await next_event(events, "signed_out"))["reason"]
        overview = (await page.get("api/overview")).json()
        assert overview["signed_in"] is False

        # Signing in (and out and in) through the page follows each new session.
        for _ in range(2):
            again = await page.post("api/login", json={"username": user.username,
                                                       "password": user.password})
            assert again.json()["signed_in"] is True
            await next_event(events, "live")
            assert (await page.post("api/logout")).status_code == 200
        await events.aclose()
