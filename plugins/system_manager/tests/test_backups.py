"""Backups, checks, drills, copies, retention and restores against the real embedded v1
server (the app core on a temp home, loopback only)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest


async def _encrypted_target(a: Any, folder: Path, name: str, password: str,
                            keep: int) -> Any:
    """A new encrypted off-site target in ``folder`` (made); the answer."""
    folder.mkdir()
    return await a.client.post("targets", json={
        "name": name, "path": str(folder), "keep": keep, "encrypt": True,
        "password": password})


async def _backup(a: Any, **body: Any) -> dict[str, Any]:
    job = await a.wait_job(await a.client.post("backups", json=body))
    assert job["state"] == "succeeded", job
    return job["result"]


async def test_a_backup_is_made_verified_and_drilled_and_the_counts_match(app, v1_data):
    # Its own core: the counts are of everything on the server.
    async with app(fresh=True) as a:
        await v1_data(a, users=3)
        live = (await a.admin.backup.list()).total
        result = await _backup(a, verify=True, drill=True)
        steps = {s["step"]: s for s in result["steps"]}
        assert list(steps) == ["create", "download", "archive test", "restore drill"]
        assert all(s["ok"] for s in steps.values())
        drill = steps["restore drill"]["data"]
        counts = result["backup"]["counts"]
        assert counts["users"] == 4 and counts["messages"] == 2 and counts["files"] == 1
        assert {t["table"]: t["restored"] for t in drill["tables"]} == counts
        assert all(t["manifest"] == t["reported"] == t["restored"] for t in drill["tables"])
        assert drill["files_verified"] == drill["files_checked"] == 1
        # The drill ran on a throw-away server: the live one has exactly one new backup,
        # its data is unchanged, and no drill folder is left behind.
        assert (await a.admin.backup.list()).total == live + 1
        assert (await a.admin.users.me()).username == "root"
        assert not list(a.manager.work_dir.glob(".drill-*"))
        assert not list(a.manager.work_dir.glob(".work-*"))
        catalog = a.manager.store.catalog_entry(result["backup"]["id"])
        assert catalog["origin"] == "manual" and catalog["drill"]["ok"]
        entry = (await a.client.get("history")).json()["history"][0]
        assert entry["kind"] == "backup" and entry["status"] == "succeeded"


async def test_a_corrupted_download_is_detected_and_notified(app):
    async with app() as a:
        result = await _backup(a, verify=False)
        backup_id = result["backup"]["id"]
        archive = a.server.paths.data_dir / "api_v1" / "backups" / f"{backup_id}.zip"
        raw = bytearray(archive.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        archive.write_bytes(bytes(raw))
        job = await a.wait_job(await a.client.post(f"backups/{backup_id}/verify",
                                                   json={"drill": True}))
        assert job["state"] == "succeeded" and job["result"]["ok"] is False
        download = job["result"]["steps"][0]
        assert download["step"] == "download" and not download["ok"]
        assert "SHA-256" in download["detail"]
        assert len(job["result"]["steps"]) == 1  # nothing is tested or drilled from bad bytes
        assert a.manager.store.catalog_entry(backup_id)["verify"]["ok"] is False
        note = a.manager.store.notifications(1)[0]
        assert note["level"] == "error" and "failed" in note["title"]
        assert not list(a.manager.work_dir.glob(".work-*"))


async def test_a_schedule_fires_creates_a_backup_and_a_busy_one_skips(app):
    from plexichat_desktop.plugins.schedules import PluginScheduler

    # Its own core: it replaces the scheduler and reads the whole backup history.
    async with app(fresh=True) as a:
        m = a.manager
        clock = [time.time()]
        m._scheduler_factory = lambda: PluginScheduler(  # driven by tick(), no waiting
            "system_manager", m.ctx.data_dir / "timer-test.json", m.log,
            clock=lambda: clock[0], catch_up_spread=0)
        answer = await a.client.post("schedules", json={
            "name": "hourly", "expression": "every_1_hours", "verify": True, "drill": False,
            "policy": {"last": 2, "daily": 0, "weekly": 0, "monthly": 0}})
        assert answer.status_code == 201, answer.text
        sid = answer.json()["id"]
        # The server's backup lock held: the first run cannot finish before the second
        # fire, whatever the machine's speed.
        server_lock = a.server.runtime.api_v1.backups._lock
        await server_lock.acquire()
        try:
            clock[0] = m.timer.get(f"backup {sid}").next_fire_at + 1
            assert f"backup {sid}" in await m.timer.tick()
            await m.timer.wait_idle()              # the fire started a job and returned
            job = m.running[sid]
            assert not job.state.finished
            clock[0] = m.timer.get(f"backup {sid}").next_fire_at + 1
            assert f"backup {sid}" in await m.timer.tick()   # the timer is free to fire
            await m.timer.wait_idle()
            assert m.running[sid] is job and not job.state.finished
        finally:
            server_lock.release()
        await m.ctx.jobs.wait(job.id)
        history = {h["status"]: h for h in m.store.history(10, "backup")}
        assert set(history) == {"succeeded", "skipped"}
        assert "still going" in history["skipped"]["summary"]
        assert any(n["title"] == "Backup 'hourly' skipped" for n in m.store.notifications(5))
        made = history["succeeded"]["details"]["backup"]["id"]
        assert m.store.catalog_entry(made)["source_id"] == sid
        assert (await a.admin.backup.status(made)).status == "completed"
        state = (await a.client.get("state")).json()
        assert state["schedules"][0]["last_run"]["status"] == "succeeded"
        assert state["schedules"][0]["next_fire_at"]
        assert state["schedules"][0]["skipped"] == 1


async def test_retention_previews_then_deletes_only_what_was_shown(app):
    # Its own core: retention plans over every backup on the server.
    async with app(fresh=True) as a:
        ids = []
        for _ in range(4):
            ids.append((await _backup(a, verify=False))["backup"]["id"])
        policy = {"last": 2, "daily": 0, "weekly": 0, "monthly": 0}
        preview = (await a.client.post("retention/preview", json={
            "scope": "all", "policy": policy})).json()
        assert [d["id"] for d in preview["decisions"]] == ids[::-1]
        assert preview["delete"] == [ids[1], ids[0]]
        assert preview["decisions"][0]["reasons"] == ["last 1"]
        refused = await a.client.post("retention/apply", json={"scope": "all",
                                                               "policy": policy})
        assert refused.status_code == 422 and "delete" in refused.json()["detail"]
        # Only the confirmed id goes, and an id the fresh plan keeps is left alone.
        done = (await a.client.post("retention/apply", json={
            "scope": "all", "policy": policy, "delete": [ids[0], ids[3]]})).json()
        assert done["deleted"] == [ids[0]] and done["left_alone"] == [ids[3]]
        left = {b.id for b in (await a.admin.backup.list()).backups}
        assert left == {ids[1], ids[2], ids[3]}
        newest = await a.client.delete(f"backups/{ids[3]}")
        assert newest.status_code == 409 and "newest" in newest.json()["detail"]


async def test_restore_needs_confirm_and_the_checksum_and_makes_a_safety_backup(app, v1_data):
    # Its own core: a restore puts the whole server back to the backup.
    async with app(fresh=True) as a:
        await v1_data(a)
        result = await _backup(a, verify=False)
        backup = result["backup"]
        bob = await a.server.account("latecomer")
        await bob.messages.send(a.admin.user["id"], "after the backup")
        before = (await a.admin.backup.list()).total
        no = await a.client.post("restore", json={"backup_id": backup["id"],
                                                  "checksum": backup["checksum"],
                                                  "confirm": False})
        assert no.status_code == 422 and "confirm" in no.text
        bad = await a.client.post("restore", json={"backup_id": backup["id"],
                                                   "checksum": "ab" * 32, "confirm": True})
        job = await a.wait_job(bad)
        assert job["state"] == "failed" and "checksum" in job["error"]
        assert (await a.admin.backup.list()).total == before  # refused before anything
        preflight = (await a.client.get("restore/preflight",
                                        params={"backup_id": backup["id"]})).json()
        assert preflight["backup"]["checksum"] == backup["checksum"]
        job = await a.wait_job(await a.client.post("restore", json={
            "backup_id": backup["id"], "checksum": backup["checksum"].upper(),
            "confirm": True}))
        assert job["state"] == "succeeded", job
        assert job["result"]["counts"] == backup["counts"]
        safety = job["result"]["safety_backup"]
        assert safety["counts"]["users"] == backup["counts"]["users"] + 1
        assert a.manager.store.catalog_entry(safety["id"])["origin"] == "safety"
        # Checked before the restore, as the README says (audit: only its status was).
        [made] = [s for s in job["result"]["steps"] if s["step"] == "safety backup"]
        assert made["ok"] and "integrity ok" in made["detail"], made
        assert a.manager.store.catalog_entry(safety["id"])["verify"]["ok"] is True
        layer = a.server.plugin("api_integration_layer").client
        users = await layer.users.list(limit=50)
        assert "latecomer" not in {u.username for u in users.users}


async def test_a_restore_never_deletes_the_backup_it_restores(app):
    """Audit: the server keeps its newest [api] max_backups; the safety backup a restore
    makes first deleted the oldest, the very backup chosen, and the restore then failed
    with a 404: the backup was gone and nothing restored."""
    async with app(api={"max_backups": 3}) as a:
        made = [(await _backup(a, verify=False))["backup"] for _ in range(3)]
        oldest, middle = made[0], made[1]
        preflight = (await a.client.get("restore/preflight",
                                        params={"backup_id": oldest["id"]})).json()
        assert "max_backups" in preflight["blocked"]
        refused = await a.client.post("restore", json={
            "backup_id": oldest["id"], "checksum": oldest["checksum"], "confirm": True})
        assert refused.status_code == 409 and "would delete it" in refused.text
        listing = await a.admin.backup.list()
        assert listing.max_backups == 3
        assert {b.id for b in listing.backups} == {b["id"] for b in made}  # all kept
        # One newer than the oldest can go: its safety backup deletes the oldest only.
        pre = (await a.client.get("restore/preflight",
                                  params={"backup_id": middle["id"]})).json()
        assert pre["blocked"] is None
        job = await a.wait_job(await a.client.post("restore", json={
            "backup_id": middle["id"], "checksum": middle["checksum"], "confirm": True}))
        assert job["state"] == "succeeded", job


async def test_a_restore_cancelled_once_sent_is_recorded_as_done(app, monkeypatch):
    """Audit: a Cancel while the server restored ended the job "failed", and the history
    said so, while the server finished the restore all the same."""
    import threading

    async with app(fresh=True) as a:
        backup = (await _backup(a, verify=False))["backup"]
        manager = a.server.runtime.api_v1.backups
        real = manager._restore
        asked = threading.Event()
        go_on = threading.Event()

        def held(record, expected):
            asked.set()
            go_on.wait(30)
            return real(record, expected)

        monkeypatch.setattr(manager, "_restore", held)
        started = await a.client.post("restore", json={
            "backup_id": backup["id"], "checksum": backup["checksum"], "confirm": True})
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]
        assert await asyncio.to_thread(asked.wait, 30)  # the server is restoring now
        a.manager.ctx.jobs.cancel(job_id)
        await asyncio.sleep(0.2)
        go_on.set()
        job = (await a.manager.ctx.jobs.wait(job_id)).to_dict()
        assert job["state"] == "succeeded", job
        assert job["result"]["cancel"].startswith("too late")
        entry = a.manager.store.history(1, "restore")[0]
        assert entry["status"] == "succeeded", entry


async def test_a_changed_target_password_keeps_earlier_copies_usable(app, tmp_path: Path):
    """Audit: after the password of an encrypted target changed, its earlier copies could
    not be brought back (only the new password was tried), while Verify said "ok"."""
    async with app() as a:
        usb = tmp_path / "usb"
        target = await _encrypted_target(a, usb, "usb", "HorseBattery#77", 5)
        tid = target.json()["id"]
        await _backup(a, verify=False, targets=[tid])
        changed = await a.client.put(f"targets/{tid}", json={
            "name": "usb", "path": str(usb), "keep": 5, "encrypt": True,
            "password": "NewPassword#2027"})
        assert changed.status_code == 200, changed.text
        await _backup(a, verify=False, targets=[tid])
        listing = (await a.client.get(f"targets/{tid}/copies", params={"verify": True})).json()
        assert len(listing["copies"]) == 2 and all(c["check"]["ok"] for c in listing["copies"])
        for copy in listing["copies"]:
            job = await a.wait_job(await a.client.post(f"targets/{tid}/import",
                                                       json={"file": copy["file"]}))
            assert job["state"] == "succeeded", job
            assert (job["done"], job["total"]) == (100, 100)  # it ended at 60 %
        # A copy with a password the target never had: given with the import.
        other = usb / "elsewhere"
        made = await _encrypted_target(a, other, "other", "Somebody-Elses#1", 5)
        await _backup(a, verify=False, targets=[made.json()["id"]])
        [foreign] = [p.name for p in other.iterdir() if p.name.endswith(".pxenc")]
        (other / foreign).rename(usb / foreign)
        for suffix in (".sha256",):
            (other / (foreign + suffix)).rename(usb / (foreign + suffix))
        for meta in other.glob("*.json"):
            meta.rename(usb / meta.name)
        failed = await a.wait_job(await a.client.post(f"targets/{tid}/import",
                                                      json={"file": foreign}))
        assert failed["state"] == "failed" and "none of the 2 password" in failed["error"]
        done = await a.wait_job(await a.client.post(f"targets/{tid}/import", json={
            "file": foreign, "password": "Somebody-Elses#1"}))
        assert done["state"] == "succeeded", done


async def test_off_site_copies_encrypt_keep_n_and_come_back(app, tmp_path: Path):
    async with app() as a:
        usb = tmp_path / "usb"
        target = await _encrypted_target(a, usb, "usb stick", "long enough secret", 2)
        assert target.status_code == 201, target.text
        tid = target.json()["id"]
        assert "password" not in target.json()
        for _ in range(3):
            result = await _backup(a, verify=False, targets=[tid])
            assert result["steps"][-1]["ok"], result["steps"]
        listing = (await a.client.get(f"targets/{tid}/copies",
                                      params={"verify": True})).json()
        assert listing["reachable"] and len(listing["copies"]) == 2
        assert all(c["encrypted"] and c["check"]["ok"] for c in listing["copies"])
        assert oct((a.manager.ctx.data_dir / "secrets.json").stat().st_mode & 0o777) == "0o600"
        newest = listing["copies"][0]
        # A copy on its own (the backup page's "Copy to"): done is 100 %, not 85.
        copied = await a.wait_job(await a.client.post(
            f"backups/{newest['backup']['id']}/copy", json={"target_id": tid}))
        assert copied["state"] == "succeeded", copied
        assert (copied["done"], copied["message"]) == (100, "copied"), copied
        job = await a.wait_job(await a.client.post(f"targets/{tid}/import",
                                                   json={"file": newest["file"]}))
        assert job["state"] == "succeeded", job
        imported = await a.admin.backup.status(job["result"]["backup_id"])
        assert imported.checksum == newest["backup"]["checksum"]
        assert a.manager.store.catalog_entry(imported.id)["origin"] == "imported"
        missing = await a.client.post(f"targets/{tid}/import", json={"file": "nope.zip"})
        assert missing.status_code == 404 and "file" in missing.json()["detail"]
        # Editing without a password keeps the one set; the page never gets it back.
        edited = await a.client.put(f"targets/{tid}", json={
            "name": "usb stick", "path": str(usb), "keep": 5, "encrypt": True})
        assert edited.status_code == 200, edited.text
        target = next(t for t in (await a.client.get("state")).json()["targets"]
                      if t["id"] == tid)
        assert target["keep"] == 5 and target["password_set"] and "password" not in target


async def test_two_targets_cannot_share_a_folder(app, tmp_path: Path):
    """Audit: a plain and an encrypted target on one USB folder wrote one record file
    for both copies: the plain copy vanished from every list (and was never pruned),
    the encrypted one showed as locked."""
    async with app() as a:
        shared = tmp_path / "usb"
        shared.mkdir()
        first = await a.client.post("targets", json={"name": "plain", "path": str(shared),
                                                     "keep": 3})
        assert first.status_code in (200, 201), first.text
        again = await a.client.post("targets", json={"name": "again",
                                                     "path": str(shared) + "/", "keep": 3})
        assert again.status_code == 409 and "plain" in again.json()["detail"]
        assert again.json()["detail"].startswith("path:")
        # Saving the first one again (another keep) is no clash with itself.
        tid = first.json()["id"]
        kept = await a.client.put(f"targets/{tid}", json={"name": "plain",
                                                          "path": str(shared), "keep": 5})
        assert kept.status_code == 200, kept.text
        await a.client.delete(f"targets/{tid}")


async def test_an_unwritable_target_is_recorded_and_notified(app, tmp_path: Path):
    # Its own core: the administrator's inbox must hold only this test's failure.
    async with app(fresh=True) as a:
        if os.geteuid() == 0:
            blocked = "/sys"  # root writes anywhere else; sysfs refuses new files
        else:
            (tmp_path / "ro").mkdir()
            (tmp_path / "ro").chmod(0o555)
            blocked = str(tmp_path / "ro")
        tid = (await a.client.post("targets", json={"name": "locked", "path": blocked,
                                                    "keep": 3})).json()["id"]
        job = await a.wait_job(await a.client.post("backups", json={
            "verify": False, "targets": [tid]}))
        assert job["state"] == "succeeded"          # the backup itself exists
        copy = job["result"]["steps"][-1]
        assert copy["step"] == "copy to locked" and not copy["ok"]
        assert "locked" in copy["detail"]
        entry = a.manager.store.history(1, "backup")[0]
        assert entry["status"] == "failed" and "copy to locked" in entry["summary"]
        note = a.manager.store.notifications(1)[0]
        assert note["level"] == "error" and "copy to locked" in note["message"]
        assert not note["suppressed"]
        await a.manager.flush_notifications()   # also sent to the administrator over v1
        inbox = await a.admin.notifications.list(limit=5)
        sent = [n for n in inbox.notifications if "failed" in n.title]
        assert sent and sent[0].type == "error" and "copy to locked" in sent[0].message


async def test_a_non_administrator_gets_a_clear_state(app):
    async with app(login="user") as a:
        state = (await a.client.get("state")).json()
        assert state["account"]["logged_in"] and not state["account"]["admin"]
        assert "not an administrator" in state["account"]["reason"]
        refused = await a.client.post("backups", json={})
        assert refused.status_code == 403
        assert refused.json()["detail"].startswith("administrator needed")


async def test_logged_out_says_where_to_log_in(app):
    async with app(login=None) as a:
        state = (await a.client.get("state")).json()
        assert state["account"] == {"logged_in": False, "admin": False, "user": None,
                                    "reason": state["account"]["reason"]}
        assert "Log in" in state["account"]["reason"]
        assert (await a.client.get("backups")).status_code == 403


async def test_bad_input_is_a_422_naming_the_field(app):
    async with app() as a:
        cases = [
            ("schedules", {"name": "x", "expression": "every_tuesday"}, "expression"),
            ("schedules", {"name": "x", "expression": "daily", "timezone": "Mars/X"},
             "timezone"),
            ("schedules", {"name": "x", "expression": "daily", "targets": ["nope"]},
             "targets"),
            ("schedules", {"name": "x", "expression": "daily",
                           "policy": {"last": -1}}, "last"),
            ("targets", {"name": "t", "path": "relative/path"}, "path"),
            ("targets", {"name": "t", "path": "/tmp", "encrypt": True}, "password"),
            ("windows", {"name": "w", "days": [9], "start": "01:00", "minutes": 60}, "days"),
            ("restore", {"backup_id": "x", "checksum": "zz", "confirm": True}, "checksum"),
            ("retention/preview", {"scope": "all", "timezone": "Nowhere/City"}, "timezone"),
        ]
        for path, body, field in cases:
            answer = await a.client.post(path, json=body)
            assert answer.status_code == 422, (path, body, answer.text)
            assert field in answer.text, (path, answer.text)
        assert (await a.client.delete("schedules/none")).status_code == 404
        assert (await a.client.post("retention/preview",
                                    json={"scope": "missing"})).status_code == 404
        unknown = "00000000-0000-4000-8000-000000000000"
        for method, path, body, status in (
                ("POST", f"backups/{unknown}/verify", {}, 404),
                ("POST", f"backups/{unknown}/copy", {"target_id": "nope"}, 422),
                ("DELETE", f"backups/{unknown}", None, 404),
                ("GET", f"restore/preflight?backup_id={unknown}", None, 404),
                ("GET", "restore/preflight", None, 422),
                ("POST", "restore", {"backup_id": unknown, "checksum": "a" * 64,
                                     "confirm": True}, 404),
                ("PUT", "windows/nope", {"name": "w", "days": [1], "start": "01:00",
                                         "minutes": 60}, 404),
                ("POST", "targets/nope/import", {"file": "x"}, 404),
                ("GET", "targets/nope/copies", None, 404),
                ("POST", "backups", {"targets": "usb"}, 422),
                ("POST", "backups", {"surprise": 1}, 422),
                ("POST", "retention/apply", {"scope": "all", "delete": "all"}, 422),
                ("PUT", "health/config", {"interval_minutes": 0}, 422),
                ("POST", "maintenance/run", {"tasks": ["defrag"]}, 422)):
            answer = await a.client.request(method, path, json=body)
            assert answer.status_code == status, (method, path, answer.text)
            assert answer.json()["detail"], (method, path)


async def test_a_drill_reports_counts_that_differ_from_the_manifest(app, v1_data, tmp_path):
    """An archive whose manifest promises more than its database holds restores fine on
    the server, and the drill is what catches it."""
    import json
    import zipfile

    from system_manager.archive import sha256_of
    from system_manager.drill import DrillFailed, run_drill

    async with app() as a:
        await v1_data(a)
        record = await a.admin.backup.create(wait=True)
        good = await a.admin.backup.download_to(record.id, tmp_path / "good.zip")
        bad = tmp_path / "bad.zip"
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as out:
            for info in src.infolist():
                data = src.read(info)
                if info.filename == "manifest.json":
                    manifest = json.loads(data)
                    manifest["counts"]["messages"] += 5
                    data = json.dumps(manifest).encode()
                out.writestr(info, data)
        report = await run_drill(bad, sha256_of(bad), tmp_path / "drills")
        assert report["passed"] is False
        wrong = [t for t in report["tables"] if not t["ok"]]
        assert [(t["table"], t["manifest"], t["restored"]) for t in wrong] == [
            ("messages", record.counts["messages"] + 5, record.counts["messages"])]
        with pytest.raises(DrillFailed, match="upload: HTTP 409"):
            await run_drill(good, "0" * 64, tmp_path / "drills")
        assert not list((tmp_path / "drills").iterdir())   # nothing left behind


def _rot_member(archive: Path, member: str = "plexichat.sqlite3") -> None:
    """Flip one byte in the middle of ``member``'s stored data, as bit rot would: the
    zip still opens, its directory is intact, reading the member fails its CRC-32."""
    import struct
    import zipfile

    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member)
    with archive.open("r+b") as fh:
        fh.seek(info.header_offset)
        name_len, extra_len = struct.unpack("<HH", fh.read(30)[26:30])
        fh.seek(info.header_offset + 30 + name_len + extra_len + info.compress_size // 2)
        byte = fh.read(1)[0]
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte ^ 0x5A]))


async def test_a_backup_failing_its_check_is_not_copied_and_deletes_nothing(
        app, tmp_path, monkeypatch):
    from system_manager.archive import ArchiveProblem, check_archive, sha256_of

    # Its own core: it counts every backup on the server.
    async with app(fresh=True) as a:
        usb = tmp_path / "usb"
        usb.mkdir()
        tid = (await a.client.post("targets", json={"name": "usb", "path": str(usb),
                                                    "keep": 3})).json()["id"]
        sid = (await a.client.post("schedules", json={
            "name": "strict", "expression": "daily", "drill": False, "targets": [tid],
            "policy": {"last": 1, "daily": 0, "weekly": 0, "monthly": 0}})).json()["id"]
        first = await a.wait_job(await a.client.post(f"schedules/{sid}/run"))
        assert first["state"] == "succeeded", first

        # The next archive rots on the server's disk after it was written and its
        # checksum recorded: the download matches, the archive test must catch it.
        backups = a.server.runtime.api_v1.backups
        make = backups._make_archive

        def make_then_rot(record):
            make(record)
            _rot_member(backups.archive(record["id"]))
            record.update(size=backups.archive(record["id"]).stat().st_size,
                          checksum=sha256_of(backups.archive(record["id"])))

        monkeypatch.setattr(backups, "_make_archive", make_then_rot)
        second = await a.wait_job(await a.client.post(f"schedules/{sid}/run"))
        steps = {s["step"]: s for s in second["result"]["steps"]}
        detail = steps["archive test"]["detail"]
        assert not steps["archive test"]["ok"], steps
        assert "member plexichat.sqlite3 is damaged" in detail, detail
        assert steps["copy to usb"]["skipped"] and steps["retention"]["skipped"]
        # last=1 would have deleted the first backup: it is kept, and not copied twice.
        kept = {b.id for b in (await a.admin.backup.list()).backups}
        assert first["result"]["backup"]["id"] in kept and len(kept) == 2
        [rotten] = kept - {first["result"]["backup"]["id"]}
        with pytest.raises(ArchiveProblem, match="is damaged"):   # really damaged
            check_archive(backups.archive(rotten))
        assert len(list(usb.glob("*.json"))) == 1
        history = a.manager.store.history(1, "backup")[0]
        assert history["status"] == "failed" and "archive test" in history["summary"]


async def test_cancelling_a_running_backup_records_it_and_leaves_no_work_files(app):
    # Its own core: it waits for the first entry of an empty history.
    async with app(fresh=True) as a:
        m = a.manager
        server_lock = a.server.runtime.api_v1.backups._lock
        await server_lock.acquire()        # the run waits inside "create" until released
        try:
            answer = await a.client.post("backups", json={"verify": True, "drill": True})
            job_id = answer.json()["id"]
            while not m.store.history(1, "backup"):   # the job has begun its entry
                await asyncio.sleep(0)
            cancelled = await a.client.post(f"_host/jobs/{job_id}/cancel")
            assert cancelled.status_code == 200, cancelled.text
            job = await m.ctx.jobs.wait(job_id)
        finally:
            server_lock.release()
        assert str(job.state) == "cancelled"
        entry = m.store.history(1, "backup")[0]
        assert entry["status"] == "cancelled"
        assert not list(m.work_dir.glob(".work-*")) and not list(m.work_dir.glob(".drill-*"))
        assert not [n for n in m.store.notifications(5) if n["level"] == "error"]
