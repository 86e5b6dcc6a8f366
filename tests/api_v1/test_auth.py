"""v1 auth: register, login, refresh rotation, expiry, logout, rate limits, discovery,
and how the host's security layer treats /api/v1."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from tests.api_v1.conftest import PASSWORD
from tests.api_v1.shared_server import OWN_SERVER, module_server  # noqa: F401
from tests.test_server_security import raw_request

# Most tests share one server (``v1``) and run in the module's event loop; those
# that count users or need the first account (the administrator), or settings of their
# own, start their own.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@OWN_SERVER
async def test_register_login_me_and_status(make_v1):
    v1 = await make_v1()
    r = await v1.register("alice", first_name="Alice")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["success"] and body["username"] == "alice"
    assert body["user"]["is_admin"] is True  # the first account administers the server
    alice_id = body["user_id"]
    assert len(alice_id) == 36 and alice_id.count("-") == 4

    r = await v1.anon.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["token_type"] == "bearer" and tokens["user_id"] == alice_id
    assert tokens["access_token"].startswith("pxa_") and len(tokens["access_token"]) > 40
    assert tokens["refresh_token"].startswith("pxr_")
    assert tokens["expires_in"] == 3600 and tokens["permissions"] == ["user", "admin"]
    assert tokens["requires_mfa"] is False and tokens["session_id"]
    assert tokens["expires_at"].endswith("+00:00")

    alice = v1.client(tokens["access_token"])
    me = (await alice.get("/auth/me")).json()
    assert me["username"] == "alice" and me["email"] == "alice@example.org"
    assert me["first_name"] == "Alice" and me["last_login"] is not None

    # Login by email works too; a second account is not an administrator.
    bob = await v1.account("bob")
    assert bob.login["permissions"] == ["user"]
    r = await v1.anon.post("/auth/login", json={"username": "BOB@example.org",
                                                "password": PASSWORD})
    assert r.status_code == 200

    status = (await v1.anon.get("/auth/status")).json()
    assert status["service"] == "authentication" and status["total_users"] == 2
    assert status["active_sessions"] == 3

    # Only digests of tokens and salted scrypt hashes are stored.
    db = sqlite3.connect(v1.api.store.path)
    stored = db.execute("SELECT access_hash, refresh_hash FROM sessions").fetchall()
    hashes = [row[0] for row in db.execute("SELECT password_hash FROM users")]
    db.close()
    assert all(tokens["access_token"] not in row for row in stored)
    assert all(h.startswith("scrypt$4$8$1$") for h in hashes) and len(set(hashes)) == 2


async def test_register_bad_input_and_conflicts(v1):
    assert (await v1.register("carol")).status_code == 201
    cases = [
        ({"username": "ab"}, 422, "username"),
        ({"username": "bad name!"}, 422, "username"),
        ({"email": "not-an-email"}, 422, "email"),
        ({"password": "short1A!"}, 422, "at least 12 characters"),
        ({"password": "alllowercase-but-long1"}, 422, "upper-case"),
        ({"password": "NoDigitsHere-at-all"}, 422, "digit"),
        ({"password": "NoSpecials12345678"}, 422, "special"),
        ({"terms_accepted": False}, 422, "terms"),
        ({"colour": "red"}, 422, "colour"),
        ({"username": 12345}, 422, "username"),
    ]
    for extra, status, needle in cases:
        body = {"username": "dave", "email": "dave@example.org", "password": PASSWORD,
                **extra}
        r = await v1.anon.post("/auth/register", json=body)
        assert r.status_code == status, (extra, r.text)
        assert needle in r.text, (extra, r.text)
    for missing in ("username", "email", "password"):
        body = {"username": "dave", "email": "dave@example.org", "password": PASSWORD}
        del body[missing]
        r = await v1.anon.post("/auth/register", json=body)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", missing]
    r = await v1.anon.post("/auth/register", content=b"{not json",
                           headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    r = await v1.register("CAROL")
    assert r.status_code == 409 and f"username 'CAROL{v1.suffix}' already exists" in r.json()[
        "detail"]
    r = await v1.register("carol2", email=f"Carol{v1.suffix}@Example.org")
    assert r.status_code == 409 and "email" in r.json()["detail"]


async def test_bad_credentials_are_401(v1):
    erin = await v1.account("erin")
    for body in ({"username": erin.username, "password": "Wrong-password-1"},
                 {"username": "nobody", "password": PASSWORD}):
        r = await v1.anon.post("/auth/login", json=body)
        assert r.status_code == 401 and r.json()["detail"] == "invalid credentials"
        assert r.headers["www-authenticate"].startswith("Bearer")
    r = await v1.anon.post("/auth/login", json={"username": erin.username})
    assert r.status_code == 422


async def test_protected_routes_need_a_valid_token(v1):
    await v1.account()
    for path in ("/auth/me", "/users/me", "/messages/conversations", "/files/",
                 "/groups/", "/notifications/", "/webhooks/", "/analytics/usage",
                 "/performance/metrics", "/backup/"):
        r = await v1.anon.get(path)
        assert r.status_code == 401, path
        assert "not authenticated" in r.json()["detail"]
        assert r.headers["www-authenticate"].startswith("Bearer")
    r = await v1.client("pxa_made-up-token").get("/users/me")
    assert r.status_code == 401 and "invalid access token" in r.json()["detail"]
    # The app's own token is not a v1 token.
    r = await v1.client(v1.core.token).get("/users/me")
    assert r.status_code == 401


@OWN_SERVER
async def test_access_tokens_expire(make_v1):
    v1 = await make_v1(access_token_minutes=1 / 60)  # one second
    frank = await v1.account("frank")
    assert frank.login["expires_in"] == 1
    assert (await frank.client.get("/users/me")).status_code == 200
    await asyncio.sleep(1.2)
    r = await frank.client.get("/users/me")
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    # The refresh token still works and gives a fresh access token.
    r = await v1.anon.post("/auth/refresh", json={"refresh_token": frank.refresh_token})
    assert r.status_code == 200
    assert (await v1.client(r.json()["access_token"]).get("/users/me")).status_code == 200


async def test_refresh_rotates_and_detects_reuse(v1):
    gina = await v1.account("gina")
    r = await v1.anon.post("/auth/refresh", json={"refresh_token": gina.refresh_token})
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["session_id"] == gina.login["session_id"]
    assert rotated["refresh_token"] != gina.refresh_token
    assert rotated["access_token"] != gina.token
    # The old access token is replaced; the new one works.
    assert (await gina.client.get("/users/me")).status_code == 401
    new_client = v1.client(rotated["access_token"])
    assert (await new_client.get("/users/me")).status_code == 200
    # Reusing the rotated-out refresh token is refused and revokes the whole session.
    r = await v1.anon.post("/auth/refresh", json={"refresh_token": gina.refresh_token})
    assert r.status_code == 401 and "already used" in r.json()["detail"]
    assert (await new_client.get("/users/me")).status_code == 401
    r = await v1.anon.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert r.status_code == 401
    r = await v1.anon.post("/auth/refresh", json={"refresh_token": "pxr_nonsense"})
    assert r.status_code == 401 and r.json()["detail"] == "invalid refresh token"
    r = await v1.anon.post("/auth/refresh", json={})
    assert r.status_code == 422


async def test_remember_me_sets_the_refresh_lifetime(v1):
    short = await v1.account("hank")
    assert short.login["refresh_expires_in"] == 86_400
    long = await v1.account("ivy", remember_me=True)
    assert long.login["refresh_expires_in"] == 30 * 86_400


async def test_logout_ends_this_session_or_all(v1):
    jack = await v1.account("jack")
    r = await v1.anon.post("/auth/login", json={"username": jack.username,
                                                "password": PASSWORD})
    second = v1.client(r.json()["access_token"])
    r = await jack.client.post("/auth/logout")
    assert r.status_code == 200 and r.json() == {
        "success": True, "message": "Logged out successfully", "sessions_ended": 1}
    assert (await jack.client.get("/users/me")).status_code == 401
    assert (await second.get("/users/me")).status_code == 200
    r = await v1.anon.post("/auth/login", json={"username": jack.username,
                                                "password": PASSWORD})
    third = v1.client(r.json()["access_token"])
    r = await second.post("/auth/logout", params={"all_sessions": "true"})
    assert r.json()["sessions_ended"] == 2
    assert (await third.get("/users/me")).status_code == 401


def stranger(name: str) -> dict[str, str]:
    """A registration without the app token: anyone's, not the install owner's."""
    return {"username": name, "email": f"{name}@example.org", "password": PASSWORD,
            "display_name": name.title(), "terms_accepted": True}


@OWN_SERVER
async def test_login_and_register_are_rate_limited(make_v1):
    v1 = await make_v1(login_rate_limit=3, register_rate_limit=2, rate_limit_window=2)
    assert (await v1.anon.post("/auth/register", json=stranger("kate"))).status_code == 201
    assert (await v1.anon.post("/auth/register", json=stranger("kyle"))).status_code == 201
    r = await v1.anon.post("/auth/register", json=stranger("kurt"))
    assert r.status_code == 429
    assert 1 <= int(r.headers["retry-after"]) <= 2 and "retry in" in r.json()["detail"]
    # The install's owner (the app token) is not limited: a local process using up the
    # budget (with refused requests too) locked the owner out of registering.
    assert (await v1.register("kurt")).status_code == 201
    for _ in range(3):
        r = await v1.anon.post("/auth/login", json={"username": "kate", "password": "Wrong-1!"})
        assert r.status_code == 401
    r = await v1.anon.post("/auth/login", json={"username": "kate", "password": PASSWORD})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    # The same account by its email address: the same bucket.
    r = await v1.anon.post("/auth/login", json={"username": "kate@example.org",
                                                "password": PASSWORD})
    assert r.status_code == 429
    # Another account has its own budget.
    r = await v1.anon.post("/auth/login", json={"username": "kyle", "password": PASSWORD})
    assert r.status_code == 200
    await asyncio.sleep(float(r.headers.get("retry-after", 0)) or 2.05)
    r = await v1.anon.post("/auth/login", json={"username": "kate", "password": PASSWORD})
    assert r.status_code == 200


@OWN_SERVER
async def test_a_forwarded_for_header_is_no_other_address(make_v1):
    # The server is reached on loopback only, never through a proxy: a local client that
    # names another address in X-Forwarded-For (or Forwarded) is still the same peer, and
    # gets no fresh budget of the per-address limits.
    v1 = await make_v1(register_rate_limit=1, rate_limit_window=60)
    assert (await v1.anon.post("/auth/register", json=stranger("otto"))).status_code == 201
    body = stranger("oona")
    for header in ({"X-Forwarded-For": "203.0.113.7"}, {"Forwarded": "for=203.0.113.8"},
                   {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}):
        r = await v1.anon.post("/auth/register", json=body, headers=header)
        assert r.status_code == 429, (header, r.status_code, r.text)


@OWN_SERVER
async def test_per_user_request_limit(make_v1):
    v1 = await make_v1(requests_per_minute=5)
    liam = await v1.account("liam")
    statuses = [(await liam.client.get("/users/me")).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    r = await liam.client.get("/users/me")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


async def test_discovery_lists_every_route(v1):
    r = await v1.anon.get("/")
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "PlexiChat" and body["api_version"] == "v1"
    assert body["status"] == "online" and body["base_path"] == "/api/v1"
    assert body["endpoints"]["auth"] == "/api/v1/auth"
    assert set(body["endpoints"]) >= {"auth", "users", "messages", "files", "groups",
                                      "search", "notifications", "system", "realtime",
                                      "webhooks", "analytics", "backup", "performance"}
    routes = {(x["method"], x["path"]): x for x in body["routes"]}
    assert routes[("POST", "/api/v1/auth/login")]["auth"] is False
    assert routes[("POST", "/api/v1/messages/send")]["auth"] is True
    assert routes[("WEBSOCKET", "/api/v1/realtime/ws")]["auth"] is True
    assert (await v1.anon.get("/info")).json()["routes"] == body["routes"]
    # Without the trailing slash the client is redirected to it.
    r = await v1.anon.get(v1.base)
    assert r.status_code in (200, 307)
    openapi = (await v1.anon.get("/openapi.json")).json()
    assert "/auth/login" in openapi["paths"]


async def test_host_security_applies_but_not_the_app_token(v1):
    core = v1.core
    # No app token needed under /api/v1 ...
    r = await core.anonymous.get("/api/v1/system/health")
    assert r.status_code == 200 and r.json()["status"] == "healthy"
    assert "content-security-policy" in r.headers  # the security headers still apply
    # ... but everything else still needs it.
    assert (await core.anonymous.get("/tests/results")).status_code == 401
    assert (await core.anonymous.get("/api/plugins")).status_code == 401
    assert (await core.anonymous.get("/api/v1x")).status_code == 401
    # The Host check still applies to /api/v1.
    r = await core.anonymous.get("/api/v1/system/health", headers={"Host": "evil.example"})
    assert r.status_code == 403 and "Host header" in r.json()["detail"]
    # So does the Origin check on state-changing requests.
    r = await core.anonymous.post("/api/v1/auth/login", headers={
        "Origin": "http://evil.example"}, json={"username": "x", "password": "y"})
    assert r.status_code == 403 and "Origin" in r.json()["detail"]
    # A path that climbs out of /api/v1 is judged where it lands: it needs the app token.
    status, data = await raw_request(core.port, "GET /api/v1/../tests/results HTTP/1.1",
                                     {"Host": f"127.0.0.1:{core.port}"})
    assert status == 401, data[:300]


@OWN_SERVER
async def test_only_the_installs_owner_creates_the_administrator(make_v1):
    """The server listens on loopback, which other local users reach too: whoever
    registers first without the app token gets an ordinary account."""
    v1 = await make_v1()
    body = {"password": "Corr3ct-Horse-Battery", "terms_accepted": True}
    stranger = await v1.anon.post("/auth/register", json={
        **body, "username": "mallory", "email": "mallory@example.org"})
    assert stranger.status_code == 201 and stranger.json()["user"]["is_admin"] is False
    wrong = await v1.anon.post("/auth/register", headers={"X-PlexiChat-App-Token": "nope"},
                               json={**body, "username": "eve", "email": "eve@example.org"})
    assert wrong.json()["user"]["is_admin"] is False
    # The old cookie that carried the token itself proves nothing any more ...
    legacy = f"plexichat_token_{v1.core.port}={v1.core.token}"
    old = await v1.anon.post("/auth/register", headers={"Cookie": legacy}, json={
        **body, "username": "otto", "email": "otto@example.org"})
    assert old.json()["user"]["is_admin"] is False
    # ... a browser session of the owner (signed in with the token) does, as the header does.
    identity = v1.core.runtime.identity
    install = f"{identity.install_host}:{v1.core.port}"
    session = f"plexichat_session_{v1.core.port}={identity.sessions.create()}"
    owner = await v1.anon.post("/auth/register", headers={"Cookie": session, "Host": install},
                               json={**body, "username": "olivia",
                                     "email": "olivia@example.org"})
    assert owner.json()["user"]["is_admin"] is True
    # One administrator only.
    again = await v1.anon.post(
        "/auth/register", headers={"X-PlexiChat-App-Token": v1.core.token},
        json={**body, "username": "oscar", "email": "oscar@example.org"})
    assert again.json()["user"]["is_admin"] is False


async def test_an_email_is_one_account_whatever_its_case_beyond_ascii(v1):
    """The column's NOCASE folds ASCII only: 'Ü@EXÄMPLE.ORG' registered beside
    'ü@exämple.org' (a second account), another user could take it by a profile change,
    and signing in with one spelling reached another account (a user audit's finding)."""
    alice = await v1.account("alice")
    mail = f"ü{v1.suffix}@exämple.org"
    assert (await alice.client.put("/users/me", json={"email": mail})).status_code == 200
    twin = await v1.anon.post("/auth/register", json=stranger(f"ucase{v1.suffix}") | {
        "email": mail.upper()})
    assert twin.status_code == 409, twin.text
    frank = await v1.account("frank")
    taken = await frank.client.put("/users/me", json={"email": mail.capitalize()})
    assert taken.status_code == 409, taken.text
    # The same letters composed another way (a User Manager audit: "a" plus a combining
    # mark was another address than the composed "ä").
    import unicodedata

    decomposed = unicodedata.normalize("NFD", mail)
    assert decomposed != mail
    twin = await v1.anon.post("/auth/register", json=stranger(f"nfd{v1.suffix}") | {
        "email": decomposed})
    assert twin.status_code == 409, twin.text
    for spelling in (mail, mail.upper(), mail.capitalize(), decomposed):
        r = await v1.anon.post("/auth/login", json={"username": spelling,
                                                    "password": PASSWORD})
        assert r.status_code == 200 and r.json()["user_id"] == alice.id, (spelling, r.text)


async def test_two_accounts_from_before_folding_each_sign_in_by_their_own_spelling(tmp_path):
    """Review: two addresses that differ only in how "ä" is composed, both registered
    before emails were folded as NFC, matched each other's folded form: the login took
    whichever row came first, so one owner reached the other's account."""
    import time
    import unicodedata

    from plexichat_desktop.server.v1.accounts import find_login
    from plexichat_desktop.server.v1.store import ApiStore

    composed = "jä@example.org"
    decomposed = unicodedata.normalize("NFD", composed)
    store = ApiStore(tmp_path / "plexichat.sqlite3")
    try:
        def add(conn, user_id, name, email):
            conn.execute("INSERT INTO users (id, username, email, password_hash, "
                         "created_at, updated_at) VALUES (?, ?, ?, 'x', ?, ?)",
                         (user_id, name, email, time.time(), time.time()))
        # Each order of insertion: the first row found must not decide.
        store.call(add, "u-nfd", "nfd", decomposed, write=True)
        store.call(add, "u-nfc", "nfc", composed, write=True)
        for spelling, owner in ((composed, "u-nfc"), (decomposed, "u-nfd"),
                                ("nfd", "u-nfd"), ("NFC", "u-nfc")):
            assert store.call(find_login, spelling)["id"] == owner, spelling
    finally:
        store.close()
