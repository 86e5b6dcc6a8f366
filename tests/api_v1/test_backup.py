"""v1 backups: create -> download -> restore round trips, verified by SHA-256."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import zipfile
from io import BytesIO

import pytest

from plexichat_desktop.core.paths import AppPaths

pytestmark = pytest.mark.asyncio


async def wait_done(client, backup_id: str) -> dict:
    async with asyncio.timeout(10):
        while True:
            record = (await client.get(f"/backup/{backup_id}/status")).json()
            if record["status"] in ("completed", "failed"):
                return record
            await asyncio.sleep(0.05)


async def test_create_download_restore_round_trip(v1):
    ann = await v1.account("ann")  # the administrator
    ben = await v1.account("ben")
    await ann.client.post("/messages/send", json={"recipient_id": ben.id, "content": "kept"})
    upload = await ann.client.post("/files/upload", files={"file": ("keep.txt", b"keep me")})
    file_id = upload.json()["id"]

    r = await ann.client.post("/backup/create", json={"name": "before"})
    assert r.status_code == 202, r.text
    assert r.json()["status"] in ("pending", "running", "completed")
    record = await wait_done(ann.client, r.json()["id"])
    assert record["status"] == "completed" and record["name"] == "before"
    assert (await ann.client.get(f"/backup/{record['id']}")).json() == record
    assert record["counts"]["messages"] == 1 and record["file_count"] == 1
    assert len(record["checksum"]) == 64 and record["checksum_algorithm"] == "sha256"

    r = await ann.client.get(f"/backup/{record['id']}/download")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert hashlib.sha256(r.content).hexdigest() == record["checksum"]
    assert r.headers["x-content-sha256"] == record["checksum"]
    names = zipfile.ZipFile(BytesIO(r.content)).namelist()
    assert {"manifest.json", "plexichat.sqlite3", f"files/{file_id[:2]}/{file_id}"} <= set(
        names)

    # Changes after the backup ...
    await ann.client.post("/messages/send", json={"recipient_id": ben.id, "content": "lost"})
    await ann.client.delete(f"/files/{file_id}")
    later = await ann.client.post("/files/upload", files={"file": ("later.txt", b"later")})
    # ... are undone by the restore, which checks the expected checksum too.
    r = await ann.client.post(f"/backup/{record['id']}/restore",
                              json={"confirm": True, "checksum": record["checksum"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["checksum_verified"] and body["counts"]["messages"] == 1
    # The sessions of now go on (whoever restores is not signed out).
    assert (await ann.client.get("/auth/me")).status_code == 200
    history = (await ben.client.get(f"/messages/conversation/{ann.id}")).json()
    assert [m["content"] for m in history["messages"]] == ["kept"]
    assert (await ann.client.get(f"/files/{file_id}/download")).content == b"keep me"
    assert (await ann.client.get(f"/files/{later.json()['id']}/info")).status_code == 404
    listing = (await ann.client.get("/backup/")).json()
    assert listing["total"] == 1 and listing["backups"][0]["last_restored_at"]


async def test_restore_refuses_damaged_or_unexpected_archives(v1):
    ann = await v1.account("ann")
    record = (await ann.client.post("/backup/create", params={"wait": "true"})).json()
    assert record["status"] == "completed"
    r = await ann.client.post(f"/backup/{record['id']}/restore",
                              json={"confirm": True, "checksum": "0" * 64})
    assert r.status_code == 409 and "checksum" in r.json()["detail"]
    for loose in ("yes", 1, "on", "true"):  # nothing but JSON true confirms
        r = await ann.client.post(f"/backup/{record['id']}/restore", json={"confirm": loose})
        assert r.status_code == 422 and "confirm" in r.text, (loose, r.text)
    r = await ann.client.post(f"/backup/{record['id']}/restore", json={"confirm": False})
    assert r.status_code == 422
    r = await ann.client.post(f"/backup/{record['id']}/restore", json={"checksum": "abc"})
    assert r.status_code == 422
    # Flip one byte of the archive on disk: the recorded checksum no longer matches.
    archive = v1.api.backups.archive(record["id"])
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    r = await ann.client.post(f"/backup/{record['id']}/restore", json={"confirm": True})
    assert r.status_code == 409 and "damaged" in r.json()["detail"]
    assert (await ann.client.get("/users/me")).status_code == 200  # nothing was touched
    assert (await ann.client.post("/backup/nope/restore", json={"confirm": True})).status_code \
        == 404
    assert (await ann.client.get("/backup/nope/status")).status_code == 404
    assert (await ann.client.delete(f"/backup/{record['id']}")).status_code == 200
    assert (await ann.client.get(f"/backup/{record['id']}/download")).status_code == 404


async def test_backups_are_for_administrators(v1):
    await v1.account("ann")
    ben = await v1.account("ben")
    for call in (ben.client.post("/backup/create"), ben.client.get("/backup/"),
                 ben.client.get("/backup/x/status")):
        r = await call
        assert r.status_code == 403 and "administrator" in r.json()["detail"]


async def test_upload_a_backup_into_another_server(make_v1, tmp_path):
    source = await make_v1()
    ann = await source.account("ann")
    bob = await source.account("bob")
    await ann.client.post("/messages/send", json={"recipient_id": bob.id, "content": "moved"})
    await ann.client.post("/files/upload", files={"file": ("f.txt", b"file body")})
    record = (await ann.client.post("/backup/create", params={"wait": "true"})).json()
    archive = (await ann.client.get(f"/backup/{record['id']}/download")).content

    elsewhere = tmp_path / "elsewhere"
    target = await make_v1(home=AppPaths(elsewhere / "config", elsewhere / "data",
                                         elsewhere / "cache", elsewhere / "logs"))
    admin = await target.account("zed")
    r = await admin.client.post("/backup/upload", files={"file": ("b.zip", archive)},
                                data={"checksum": "f" * 64})
    assert r.status_code == 409 and "damaged on the way" in r.json()["detail"]
    r = await admin.client.post("/backup/upload", files={"file": ("b.zip", b"PK not a zip")},
                                data={"checksum": hashlib.sha256(b"PK not a zip").hexdigest()})
    assert r.status_code == 422
    r = await admin.client.post("/backup/upload", files={"file": ("b.zip", archive)},
                                data={"checksum": record["checksum"]})
    assert r.status_code == 201, r.text
    uploaded = r.json()
    assert uploaded["source"] == "uploaded" and uploaded["checksum"] == record["checksum"]
    r = await admin.client.post(f"/backup/{uploaded['id']}/restore", json={"confirm": True})
    assert r.status_code == 200, r.text
    # The target now holds the source's data; zed's own session is gone with its data.
    assert (await admin.client.get("/users/me")).status_code == 401
    login = await target.anon.post("/auth/login", json={"username": "bob",
                                                        "password": "Corr3ct-Horse-Battery"})
    bob_there = target.client(login.json()["access_token"])
    history = (await bob_there.get(f"/messages/conversation/{ann.id}")).json()
    assert [m["content"] for m in history["messages"]] == ["moved"]


async def test_a_restore_revives_no_session_and_no_old_password(v1):
    """A user audit: carol ended a stolen session and changed her password (ending the
    others); a restore of a backup made before brought the stolen access and refresh
    tokens back, and the old password signed in again. Sign-ins and credentials are the
    live database's now, for every account in both."""
    from tests.api_v1.conftest import PASSWORD

    admin = await v1.account("root")
    carol = await v1.account("carol")  # the session a thief holds
    made = await admin.client.post("/backup/create", json={"name": "before"})
    record = await wait_done(admin.client, made.json()["id"])
    mine = await v1.sign_in(carol)
    new_password = "An0ther-Horse-Battery!"
    r = await mine.client.post("/auth/password/change", json={
        "current_password": PASSWORD, "new_password": new_password,
        "end_other_sessions": True})
    assert r.status_code == 200, r.text
    assert (await carol.client.get("/auth/me")).status_code == 401
    r = await admin.client.post(f"/backup/{record['id']}/restore", json={"confirm": True})
    assert r.status_code == 200, r.text
    assert (await carol.client.get("/auth/me")).status_code == 401
    refreshed = await v1.anon.post("/auth/refresh",
                                   json={"refresh_token": carol.refresh_token})
    assert refreshed.status_code == 401, refreshed.text
    old = await v1.anon.post("/auth/login", json={"username": carol.username,
                                                  "password": PASSWORD})
    assert old.status_code == 401
    await v1.sign_in(carol, new_password)
    # The sessions of now go on: hers and the administrator's who restored.
    assert (await mine.client.get("/auth/me")).status_code == 200
    assert (await admin.client.get("/auth/me")).status_code == 200


async def test_failed_backups_never_push_out_completed_ones(make_v1, monkeypatch):
    """A System Manager audit: failed runs counted toward max_backups, so a few backups
    failing on a full disk deleted every good backup."""
    v1 = await make_v1(max_backups=2)
    ann = await v1.account("ann")
    good = []
    for name in ("good1", "good2"):
        record = (await ann.client.post("/backup/create", json={"name": name})).json()
        good.append((await wait_done(ann.client, record["id"]))["id"])
    manager = v1.api.backups

    def full(_target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(manager.store, "snapshot_to", full)
    for n in range(3):
        record = (await ann.client.post("/backup/create", json={"name": f"bad{n}"})).json()
        assert (await wait_done(ann.client, record["id"]))["status"] == "failed"
    listing = (await ann.client.get("/backup/")).json()["backups"]
    completed = [b["id"] for b in listing if b["status"] == "completed"]
    assert sorted(completed) == sorted(good)
    assert [b["name"] for b in listing if b["status"] == "failed"] == ["bad2", "bad1"]
    for backup_id in good:
        assert (await ann.client.get(f"/backup/{backup_id}/download")).status_code == 200


async def test_an_account_only_the_backup_holds_comes_back_with_its_2fa(v1, monkeypatch):
    """A System Manager audit: a restore brought back an account deleted since, without
    its 2FA (the backup's rows were dropped for every account): its password alone
    signed in."""
    from plexichat_desktop.server.v1 import mfa
    from tests.api_v1.conftest import PASSWORD
    from tests.api_v1.test_account_security import T0, code, enable_2fa

    monkeypatch.setattr(mfa, "RECOVERY_SCRYPT_LOG_N", 4)  # the test cost, as there
    monkeypatch.setattr(mfa, "current_time", lambda: T0)
    admin = await v1.account("root")
    carol = await v1.account("carol")
    secret, _codes = await enable_2fa(carol)
    made = await admin.client.post("/backup/create", json={"name": "with carol"})
    record = await wait_done(admin.client, made.json()["id"])
    gone = await carol.client.request("DELETE", "/users/me", json={
        "password": PASSWORD, "code": code(secret, 1)})
    assert gone.status_code == 200, gone.text
    r = await admin.client.post(f"/backup/{record['id']}/restore", json={"confirm": True})
    assert r.status_code == 200, r.text
    step = await v1.anon.post("/auth/login", json={"username": carol.username,
                                                   "password": PASSWORD})
    assert step.status_code == 200 and step.json().get("requires_mfa") is True, step.text


async def test_a_restore_that_fails_midway_changes_nothing(v1, monkeypatch):
    """A System Manager audit: with the backups folder on another disk the files' swap
    failed after the database had been replaced, and the answer was a bare 500: the
    messages were the backup's, the files today's. The files are staged beside files/
    now, and a step that fails puts back what was there."""
    ann = await v1.account("ann")
    first = (await ann.client.post("/files/upload", files={"file": ("x.txt", b"x")})).json()
    made = await ann.client.post("/backup/create", json={"name": "x only"})
    record = await wait_done(ann.client, made.json()["id"])
    second = (await ann.client.post("/files/upload", files={"file": ("y.txt", b"y")})).json()
    manager = v1.api.backups
    works = manager.store.replace_from
    calls = []

    def broken(source):
        # The copy is made, then a step after it fails (a migration, the 2FA key file):
        # the database must be put back, not only the files (review).
        calls.append(source)
        works(source)
        if len(calls) == 1:
            raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(manager.store, "replace_from", broken)
    r = await ann.client.post(f"/backup/{record['id']}/restore", json={"confirm": True})
    assert r.status_code == 500 and "nothing was changed" in r.json()["detail"], r.text
    assert "disk I/O error" in r.json()["detail"]
    assert len(calls) == 2  # replaced, then put back
    for made_file, content in ((first, b"x"), (second, b"y")):
        got = await ann.client.get(f"/files/{made_file['id']}/download")
        assert got.status_code == 200 and got.content == content
    leftovers = [p.name for p in manager.files_dir.parent.iterdir()
                 if p.name.startswith(".restore")]
    assert leftovers == []
    monkeypatch.setattr(manager.store, "replace_from", works)
    r = await ann.client.post(f"/backup/{record['id']}/restore", json={"confirm": True})
    assert r.status_code == 200, r.text
    assert (await ann.client.get(f"/files/{second['id']}/info")).status_code == 404
    assert (await ann.client.get(f"/files/{first['id']}/download")).content == b"x"
