"""Red-team findings against the v1 API, each attack tried for real and refused: realtime
rooms after leaving a group (6), a restore that plants a trigger or unpacks too much (7),
an old refresh token replayed (8), malformed WebSocket frames (11), script action URLs."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import zipfile
from io import BytesIO
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.client import connect

from tests.api_v1.conftest import PASSWORD
from tests.api_v1.shared_server import OWN_SERVER, module_server  # noqa: F401
from tests.api_v1.test_realtime import next_frame, send
from tests.api_v1.test_webhooks import Receiver

# Most tests share one server (``v1``) and run in the module's event loop, each with
# accounts (and groups) of its own; those that need the administrator, a setting of their
# own or a restore start their own.
pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_leaving_or_deleting_a_group_takes_you_out_of_its_room_at_once(v1):
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    cid = await v1.account("cid")
    group = (await ann.client.post("/groups/create", json={"name": "g"})).json()
    for member in (ben, cid):
        assert (await member.client.post(f"/groups/{group['id']}/join")).status_code == 200
    async with connect(f"{v1.ws_url}?token={ann.token}") as a, \
            connect(f"{v1.ws_url}?token={ben.token}") as b, \
            connect(f"{v1.ws_url}?token={cid.token}") as c:
        for ws in (a, b, c):
            await send(ws, type="join_room", room_id=group["id"])
            await next_frame(ws, "room_joined")
        # Ben leaves the group: the hub drops his socket from the room there and then.
        assert (await ben.client.post(f"/groups/{group['id']}/leave")).status_code == 200
        left = await next_frame(b, "room_left")
        assert left["data"]["room_id"] == group["id"]
        r = await ann.client.post("/realtime/broadcast", json={
            "type": "secret", "room_id": group["id"], "data": {"plan": "after ben left"}})
        assert r.json()["delivered"] == 2  # ann and cid, not ben
        assert (await next_frame(c, "broadcast"))["data"]["payload"]["plan"] == "after ben left"
        # Typing in the room is refused for him now.
        await send(b, type="typing", room_id=group["id"])
        assert (await next_frame(b, "error"))["data"]["code"] == "not_in_room"
        # Deleting the group empties its room for everyone.
        assert (await ann.client.delete(f"/groups/{group['id']}")).status_code == 200
        for ws in (a, c):
            assert (await next_frame(ws, "room_left"))["data"]["room_id"] == group["id"]
        assert group["id"] not in v1.api.hub.rooms
        status = (await cid.client.get("/realtime/connections")).json()
        assert status["rooms"] == []


async def test_a_group_owner_deleting_the_account_empties_the_room(v1):
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    group = (await ann.client.post("/groups/create", json={"name": "g"})).json()
    await ben.client.post(f"/groups/{group['id']}/join")
    async with connect(f"{v1.ws_url}?token={ben.token}") as b:
        await send(b, type="join_room", room_id=group["id"])
        await next_frame(b, "room_joined")
        assert (await ann.client.request("DELETE", "/users/me", json={"password": PASSWORD})
                ).status_code == 200
        assert (await next_frame(b, "room_left"))["data"]["room_id"] == group["id"]
    assert group["id"] not in v1.api.hub.rooms


async def test_any_rotated_out_refresh_token_revokes_the_session(v1):
    gina = await v1.account("gina")
    first = gina.refresh_token
    tokens = gina.login
    for _ in range(3):
        r = await v1.anon.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 200
        tokens = r.json()
    current = v1.client(tokens["access_token"])
    assert (await current.get("/users/me")).status_code == 200
    # The first token of the family (three rotations ago) is replayed: session revoked.
    r = await v1.anon.post("/auth/refresh", json={"refresh_token": first})
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert (await current.get("/users/me")).status_code == 401
    r = await v1.anon.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401


async def test_malformed_websocket_frames_get_invalid_json_not_a_traceback(v1, caplog):
    ann = await v1.account("ann")
    caplog.set_level(logging.WARNING)
    async with connect(f"{v1.ws_url}?token={ann.token}") as ws:
        for bad in ("[" * 30_000 + "]" * 30_000, b"\x00\x01binary", b'{"type": "ping"}',
                    '{"type": "presence", "status": NaN}', '{"type": "ping", "n": 1e400}'):
            await ws.send(bad)
            error = await next_frame(ws, "error")
            assert error["data"]["code"] == "invalid_json", (bad[:20], error)
        # The socket is still fine.
        await send(ws, type="ping")
        await next_frame(ws, "pong")
    # Without a token in the URL, a binary or too-deep first frame closes with 4401.
    for bad_first in (b"\x00binary", "[" * 30_000):
        async with connect(v1.ws_url) as ws:
            await ws.send(bad_first)
            async with asyncio.timeout(5):
                with pytest.raises(Exception):  # noqa: B017 - any close ends the iteration
                    while True:
                        await ws.recv()
        assert ws.close_code == 4401
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text
    assert "KeyError" not in caplog.text


@pytest.mark.parametrize("url", [
    "javascript:alert(document.cookie)", "JavaScript:alert(1)", " javascript:alert(1)",
    "java\tscript:alert(1)", "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)", "file:///etc/passwd", "//evil.example/x", "/\\evil.example",
    "jav&#x61;script:alert(1)", "http:alert(1)", "settings",
])
async def test_notifications_refuse_script_and_foreign_scheme_action_urls(v1, url):
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    r = await ann.client.post("/notifications/send", json={
        "recipient_id": ben.id, "title": "t", "message": "m", "action_url": url})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][-1] == "action_url"
    listed = (await ben.client.get("/notifications/")).json()
    assert listed["total"] == 0


async def test_notifications_keep_http_and_local_action_urls(v1):
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    for url in ("https://example.org/x?y=1", "http://127.0.0.1:8000/plugins/p/", "/groups/1"):
        r = await ann.client.post("/notifications/send", json={
            "recipient_id": ben.id, "title": "t", "message": "m", "action_url": url})
        assert r.status_code == 201 and r.json()["action_url"] == url


def _plant_trigger(archive: bytes) -> bytes:
    """The backup, with an administrator-making trigger, a view and an extra table added to
    its database (what the red team did)."""
    out = BytesIO()
    with zipfile.ZipFile(BytesIO(archive)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "plexichat.sqlite3":
                data = _with_trigger(data)
            dst.writestr(info.filename, data)
    return out.getvalue()


def _with_trigger(db_bytes: bytes) -> bytes:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "db.sqlite3"
        path.write_bytes(db_bytes)
        conn = sqlite3.connect(path)
        conn.executescript("""
            CREATE TRIGGER everyone_admin AFTER INSERT ON users
            BEGIN UPDATE users SET is_admin = 1 WHERE id = NEW.id; END;
            CREATE VIEW all_hashes AS SELECT username, password_hash FROM users;
            CREATE TABLE planted (x TEXT);
            INSERT INTO planted VALUES ('hello');
        """)
        conn.commit()
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.close()
        return path.read_bytes()


async def upload(client: Any, archive: bytes) -> Any:
    checksum = hashlib.sha256(archive).hexdigest()
    return await client.post("/backup/upload", files={"file": ("b.zip", archive)},
                             data={"checksum": checksum})


@OWN_SERVER
async def test_a_restored_backup_brings_no_triggers_views_or_extra_tables(make_v1):
    v1 = await make_v1()
    ann = await v1.account("ann")  # the administrator
    ben = await v1.account("ben")
    await ann.client.post("/messages/send", json={"recipient_id": ben.id, "content": "kept"})
    record = (await ann.client.post("/backup/create", params={"wait": "true"})).json()
    archive = (await ann.client.get(f"/backup/{record['id']}/download")).content
    r = await upload(ann.client, _plant_trigger(archive))
    assert r.status_code == 201, r.text
    r = await ann.client.post(f"/backup/{r.json()['id']}/restore", json={"confirm": True})
    assert r.status_code == 200, r.text
    assert r.json()["counts"]["users"] == 2 and r.json()["counts"]["messages"] == 1
    # A registration after the restore is an ordinary account.
    newcomer = await v1.anon.post("/auth/register", json={
        "username": "mallory", "email": "mallory@example.org",
        "password": "Corr3ct-Horse-Battery"})
    assert newcomer.status_code == 201 and newcomer.json()["user"]["is_admin"] is False
    # The live database has our schema objects only.
    conn = sqlite3.connect(f"file:{v1.api.store.path}?mode=ro", uri=True)
    try:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        admins = conn.execute("SELECT username FROM users WHERE is_admin = 1").fetchall()
    finally:
        conn.close()
    assert not {"everyone_admin", "all_hashes", "planted"} & names
    assert admins == [("ann",)]
    # The restored data itself is there.
    ben_again = await v1.anon.post("/auth/login", json={"username": "ben",
                                                        "password": "Corr3ct-Horse-Battery"})
    token = ben_again.json()["access_token"]
    inbox = (await v1.client(token).get(f"/messages/conversation/{ann.id}")).json()
    assert [m["content"] for m in inbox["messages"]] == ["kept"]


@OWN_SERVER
async def test_archives_that_unpack_too_large_are_refused_before_unpacking(make_v1):
    v1 = await make_v1(max_restore_mb=0.5)
    ann = await v1.account("ann")
    record = (await ann.client.post("/backup/create", params={"wait": "true"})).json()
    archive = (await ann.client.get(f"/backup/{record['id']}/download")).content
    # A zip bomb in miniature: 4 MiB of zeros compress to a few KiB.
    out = BytesIO()
    with zipfile.ZipFile(BytesIO(archive)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        dst.writestr("files/ab/abcdef01-2345-6789-abcd-ef0123456789", b"\0" * (4 << 20))
    bomb = out.getvalue()
    assert len(bomb) < 256 * 1024
    r = await upload(ann.client, bomb)
    assert r.status_code == 422 and "unpacks to" in r.json()["detail"]
    assert "max_restore_mb" in r.json()["detail"]
    # A backup that was accepted earlier is refused at restore time once over the cap.
    v1.api.settings.max_restore_mb = 1.0
    accepted = await upload(ann.client, bomb)
    assert accepted.status_code == 422  # still over 1 MiB
    v1.api.settings.max_restore_mb = 8.0
    accepted = await upload(ann.client, bomb)
    assert accepted.status_code == 201, accepted.text
    v1.api.settings.max_restore_mb = 0.5
    staged = list(v1.api.backups.dir.glob(".restore-*"))
    r = await ann.client.post(f"/backup/{accepted.json()['id']}/restore", json={"confirm": True})
    assert r.status_code == 422 and "unpacks to" in r.json()["detail"]
    assert list(v1.api.backups.dir.glob(".restore-*")) == staged == []
    assert not (v1.api.files_dir / "ab").exists()


# -- webhooks: server-side request forgery (5) -------------------------------------------
# No test here sends anything to a non-loopback address: refused targets are refused while
# validating, before any connection, and the receiver is on 127.0.0.1.

REFUSED_TARGETS = [
    "http://10.0.0.1/hook", "http://172.16.5.4/", "http://192.168.1.1:8080/x",
    "http://169.254.169.254/latest/meta-data/", "http://0.0.0.0:8000/", "http://0/",
    "http://127.0.0.1:1/", "http://127.9.9.9/", "http://localhost:1/",
    "http://[::1]:1/", "http://[::]/", "http://[::ffff:127.0.0.1]:1/",
    "http://[::ffff:a9fe:a9fe]/", "http://[fe80::1]/", "http://[fd00::1]/",
    "http://2130706433/", "http://0177.0.0.1/", "http://0x7f.0.0.1/", "http://127.1/",
    "http://017700000001/", "http://0xa9fea9fe/", "https://100.64.0.1/",
    "http://[2002:7f00:1::]/",  # 6to4 around 127.0.0.1
]


@OWN_SERVER
async def test_webhooks_to_private_addresses_are_refused_without_connecting(make_v1):
    target = Receiver()
    await target.start()
    try:
        v1 = await make_v1(webhook_allow_private=False)
        ann = await v1.account("ann")
        for url in [*REFUSED_TARGETS, target.url]:
            r = await ann.client.post("/webhooks/register", json={"url": url,
                                                                  "events": ["*"]})
            assert r.status_code == 422, (url, r.text)
            item = r.json()["detail"][0]
            assert item["loc"] == ["body", "url"] and "webhook_allow_private" in item["msg"]
        assert (await ann.client.get("/webhooks/")).json()["total"] == 0
        # Changing a webhook's URL is checked the same way.
        v1.api.settings.webhook_allow_private = True
        hook = (await ann.client.post("/webhooks/register", json={
            "url": target.url, "events": ["*"]})).json()
        v1.api.settings.webhook_allow_private = False
        r = await ann.client.put(f"/webhooks/{hook['id']}", json={
            "url": "http://169.254.169.254/latest/meta-data/"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "url"]
        # At delivery time the target is checked again (the address a name resolves to can
        # change after registration): nothing reaches the target.
        r = await ann.client.post(f"/webhooks/{hook['id']}/test", params={"wait": "true"})
        attempt = r.json()["attempts"][0]
        assert attempt["status_code"] is None and "refused" in attempt["error"]
        assert "loopback" in attempt["error"]
        assert target.requests == []
    finally:
        await target.stop()


@pytest_asyncio.fixture
async def receiver():
    rec = Receiver()
    await rec.start()
    yield rec
    await rec.stop()


@OWN_SERVER
async def test_deliveries_go_to_the_checked_address_and_only_admins_read_answers(make_v1,
                                                                                receiver):
    v1 = await make_v1()
    ann = await v1.account("ann")  # the administrator
    ben = await v1.account("ben")
    port = receiver.url.split(":")[2].split("/")[0]
    # A name: resolved, checked, and the request sent to that address with the name kept
    # in the Host header.
    named = f"http://localhost:{port}/hook"
    hooks = {}
    for who in (ann, ben):
        r = await who.client.post("/webhooks/register", json={"url": named, "events": ["*"]})
        assert r.status_code == 201, r.text
        hooks[who.username] = r.json()["id"]
    for who in (ann, ben):
        r = await who.client.post(f"/webhooks/{hooks[who.username]}/test",
                                  params={"wait": "true"})
        assert r.json()["status"] == "delivered", r.text
    received = await receiver.wait_for(2)
    assert {req.headers["host"] for req in received} == {f"localhost:{port}"}
    # The receiver's answer is in the log for the administrator only.
    for who, sees in ((ann, True), (ben, False)):
        log = (await who.client.get(f"/webhooks/{hooks[who.username]}/deliveries")).json()
        attempt = log["deliveries"][0]["attempts"][0]
        assert attempt["status_code"] == 200 and "duration_ms" in attempt
        assert ("response" in attempt) is sees
        one = (await who.client.get(
            f"/webhooks/deliveries/{log['deliveries'][0]['id']}")).json()
        assert ("response" in one["attempts"][0]) is sees


# -- login rate limit (9) ----------------------------------------------------------------

@OWN_SERVER
async def test_a_stranger_cannot_lock_the_owner_out_of_an_account(make_v1):
    v1 = await make_v1(login_rate_limit=3, rate_limit_window=600)
    await v1.account("kate")  # kate logged in from this client before: she has a device
    earlier = await v1.anon.post("/auth/login", json={"username": "kate",
                                                      "password": PASSWORD})
    device = earlier.json()["device_token"]
    assert device.startswith("pxd_")
    # Mallory, another local process, hammers kate's account under both of its names.
    statuses = []
    for name in ("kate", "KATE", "kate@example.org", "Kate@Example.org", "kate"):
        r = await v1.anon.post("/auth/login", json={"username": name, "password": "Guess-1!x"})
        statuses.append(r.status_code)
    # One bucket whatever name: two logins of kate and one guess fill the three places.
    assert statuses == [401, 429, 429, 429, 429]
    assert int(r.headers["retry-after"]) >= 1
    # Mallory cannot even try the right password now ...
    r = await v1.anon.post("/auth/login", json={"username": "kate", "password": PASSWORD})
    assert r.status_code == 429
    # ... nor borrow a device token: it must be kate's own.
    other = await v1.account("otto")
    r = await v1.anon.post("/auth/login", json={
        "username": "kate", "password": PASSWORD, "device_token": other.login["device_token"]})
    assert r.status_code == 429
    # Kate, on her device, gets in at once.
    r = await v1.anon.post("/auth/login", json={"username": "kate", "password": PASSWORD,
                                                "device_token": device})
    assert r.status_code == 200 and r.json()["device_token"] == device
    # So does the install's owner (the app token), in a bucket of its own.
    r = await v1.anon.post("/auth/login", json={"username": "kate", "password": PASSWORD},
                           headers={"X-PlexiChat-App-Token": v1.core.token})
    assert r.status_code == 200
    # Guessing through the device bucket is limited as well.
    for _ in range(3):
        r = await v1.anon.post("/auth/login", json={"username": "kate", "password": "x",
                                                    "device_token": device})
    assert r.status_code == 429
