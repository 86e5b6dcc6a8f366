"""Health watch, maintenance windows and maintenance runs in the running app."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

DISK = "Free space on the data disk"


def _window_around_now(minutes: int = 180) -> dict[str, Any]:
    start = datetime.now().astimezone() - timedelta(minutes=30)
    return {"name": "now", "days": list(range(7)), "start": start.strftime("%H:%M"),
            "minutes": minutes, "timezone": None}


async def _watch(a: Any, **config: Any) -> None:
    body = {"enabled": True, "interval_minutes": 60, "check_performance": False, **config}
    answer = await a.client.put("health/config", json=body)
    assert answer.status_code == 200, answer.text


async def test_an_alert_notifies_and_its_recovery_too(app):
    async with app(fresh=True) as a:
        await _watch(a, disk_min_free_percent=100.0, backup_max_age_hours=0)
        checks = (await a.client.post("health/check")).json()["checks"]
        disk = next(c for c in checks if c["key"] == "disk")
        assert not disk["ok"] and "GiB free" in disk["message"]
        assert next(c for c in checks if c["key"] == "v1")["ok"]
        note = a.manager.store.notifications(1)[0]
        assert note["title"] == f"Alert: {DISK}" and not note["suppressed"]
        # Still failing: no second notification for the same alert.
        await a.client.post("health/check")
        assert len([n for n in a.manager.store.notifications(20)
                    if n["title"] == f"Alert: {DISK}"]) == 1
        await _watch(a, disk_min_free_percent=0.0, disk_min_free_gb=0.0,
                     backup_max_age_hours=0)
        await a.client.post("health/check")
        assert a.manager.store.notifications(1)[0]["title"] == f"Recovered: {DISK}"
        state = (await a.client.get("state")).json()
        assert {x["key"]: x["state"] for x in state["alerts"]}["disk"] == "ok"


async def test_a_maintenance_window_suppresses_the_alert(app):
    async with app(fresh=True) as a:
        created = await a.client.post("windows", json=_window_around_now())
        assert created.status_code == 201, created.text
        await _watch(a, disk_min_free_percent=100.0, backup_max_age_hours=0)
        health = (await a.client.post("health/check")).json()
        assert health["window"]["name"] == "now"
        note = a.manager.store.notifications(1)[0]
        assert note["title"] == f"Alert: {DISK}" and note["suppressed"] and note["read"]
        state = (await a.client.get("state")).json()
        assert state["unread"] == 0 and state["window_now"]["name"] == "now"
        assert state["alerts"][0]["state"] == "firing"   # recorded all the same


async def test_backup_age_is_watched_once_a_schedule_exists(app):
    async with app(fresh=True) as a:
        await a.client.post("schedules", json={"name": "nightly", "expression": "daily",
                                               "verify": False, "drill": False})
        await _watch(a, backup_max_age_hours=1.0)
        checks = {c["key"]: c for c in (await a.client.post("health/check")).json()["checks"]}
        assert not checks["backup_age"]["ok"]
        assert checks["backup_age"]["message"] == "no completed backup"
        await a.admin.backup.create(wait=True)
        checks = {c["key"]: c for c in (await a.client.post("health/check")).json()["checks"]}
        assert checks["backup_age"]["ok"]


async def test_maintenance_previews_then_checks_vacuums_and_cleans(app):
    async with app() as a:
        m = a.manager
        other = m.dirs.plugin_data / "notes_plugin"
        other.mkdir(parents=True, exist_ok=True)
        db = other / "notes.sqlite3"
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 400,)] * 1000)
        conn.commit()
        conn.execute("DELETE FROM t")
        conn.commit()
        conn.close()
        leftover = m.work_dir / ".drill-stale"
        leftover.mkdir()
        import os
        import time
        old = time.time() - 3 * 86400
        os.utime(leftover, (old, old))
        preview = (await a.client.post("maintenance/preview")).json()
        assert any(e["path"] == str(leftover) for e in preview["cleanup"])
        names = {d["name"]: d for d in preview["databases"]}
        assert names["notes.sqlite3"]["vacuum"] is True
        assert names["system_manager.sqlite3"]["owner"] == "system_manager"
        assert names["plexichat.sqlite3"]["vacuum"] is False   # the live v1 store
        job = await a.wait_job(await a.client.post("maintenance/run", json={
            "tasks": ["sqlite", "vacuum", "cleanup", "test_results"]}))
        assert job["state"] == "succeeded", job
        steps = {s["step"]: s for s in job["result"]["steps"]}
        assert steps["sqlite"]["ok"]
        notes = next(r for r in steps["sqlite"]["data"] if r["path"] == str(db))
        assert notes["vacuumed"] and notes["bytes_after"] < notes["bytes_before"]
        assert not leftover.exists()
        usage = (await a.client.get("maintenance/usage")).json()
        assert "notes_plugin" in {p["plugin"] for p in usage["plugins"]}
        history = a.manager.store.history(1, "maintenance")[0]
        assert history["status"] == "succeeded"


async def test_a_scheduled_maintenance_outside_every_window_is_skipped(app):
    async with app(fresh=True) as a:
        plan = {"enabled": True, "expression": "weekly", "only_in_window": True,
                "tasks": ["sqlite"]}
        assert (await a.client.put("maintenance", json=plan)).status_code == 200
        assert "maintenance" in a.manager.timer_entries()
        await a.manager._fire_maintenance()
        entry = a.manager.store.history(1, "maintenance")[0]
        assert entry["status"] == "skipped" and "outside" in entry["summary"]
        await a.client.post("windows", json=_window_around_now())
        await a.manager._fire_maintenance()
        await a.manager.ctx.jobs.wait(a.manager.running["maintenance"].id)
        entry = a.manager.store.history(1, "maintenance")[0]
        assert entry["status"] == "succeeded"
        bad = await a.client.put("maintenance", json={**plan, "tasks": ["defrag"]})
        assert bad.status_code == 422 and "tasks" in bad.text
