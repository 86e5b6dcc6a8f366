"""v1 search, notifications, system, analytics and performance."""

from __future__ import annotations

import asyncio
import csv
import io

import pytest

from tests.api_v1.shared_server import OWN_SERVER, module_server  # noqa: F401

# Most tests share one server (``v1``) and run in the module's event loop, each with
# accounts of its own; those that need the first account (the administrator), count what
# the whole server holds, or need settings of their own, start their own.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@OWN_SERVER
async def test_search_sees_only_what_the_caller_may_see(make_v1):
    v1 = await make_v1()
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    cid = await v1.account("cid")
    await ann.client.post("/messages/send", json={"recipient_id": ben.id,
                                                  "content": "the rocket launch is friday"})
    await cid.client.post("/messages/send", json={"recipient_id": ben.id,
                                                  "content": "rocket secrets for ben only"})
    await ann.client.post("/files/upload", files={"file": ("rocket-plan.txt", b"...")})
    await ann.client.post("/groups/create", json={"name": "Rocket club"})
    await ann.client.post("/groups/create", json={"name": "Rocket cabal", "type": "private"})

    r = await ann.client.post("/search/", json={"query": "rocket"})
    assert r.status_code == 200, r.text
    body = r.json()
    kinds = sorted(item["type"] for item in body["results"])
    assert kinds == ["file", "group", "group", "message"]  # not cid's message to ben
    assert body["total"] == 4 and body["query"] == "rocket" and body["type"] == "all"
    assert all(0 < item["score"] <= 1 for item in body["results"])
    assert body["results"][0]["created_at"].endswith("+00:00")

    body = (await ben.client.post("/search", json={"query": "rocket", "type": "messages",
                                                   "sort_by": "date"})).json()
    assert [i["content"] for i in body["results"]] == ["rocket secrets for ben only",
                                                       "the rocket launch is friday"]
    body = (await ben.client.post("/search/", json={"query": "rocket", "type": "groups"})).json()
    assert [i["title"] for i in body["results"]] == ["Rocket club"]
    body = (await ann.client.post("/search/", json={"query": "ci", "type": "users"})).json()
    assert [i["title"] for i in body["results"]] == ["cid"]
    body = (await ben.client.post("/search/", json={
        "query": "rocket", "type": "messages", "filters": {"user_id": cid.id}})).json()
    assert body["total"] == 1
    body = (await ann.client.post("/search/", json={"query": "rocket", "limit": 1,
                                                    "offset": 1})).json()
    assert len(body["results"]) == 1 and body["has_more"] and body["total"] == 4
    for bad in ({"query": ""}, {"query": "x", "type": "everything"},
                {"query": "x", "limit": 0}, {"query": "x", "filters": {"colour": 1}},
                {"type": "all"}):
        assert (await ann.client.post("/search/", json=bad)).status_code == 422, bad

    sugg = (await ann.client.get("/search/suggestions", params={"q": "ro"})).json()
    texts = {(s["type"], s["text"]) for s in sugg["suggestions"]}
    assert ("recent", "rocket") in texts and ("file", "rocket-plan.txt") in texts
    assert ("group", "Rocket club") in texts
    assert (await ann.client.get("/search/suggestions")).status_code == 422

    overview = (await ann.client.get("/search/analytics/overview")).json()
    assert overview["messages_sent"] == 1 and overview["files_uploaded"] == 1
    assert overview["recent_activity"]["messages_this_week"] == 1
    trends = (await ann.client.get("/search/analytics/trends", params={"days": 7})).json()
    assert len(trends["series"]["messages"]) == 7
    assert trends["series"]["messages"][-1]["count"] == 1
    assert (await ann.client.get("/search/analytics/trends?days=0")).status_code == 422
    assert (await ann.client.get("/search/status")).json()["status"] == "online"


async def test_notifications(v1):
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    r = await ann.client.post("/notifications/send", json={
        "title": "Hi", "message": "Lunch?", "recipient_id": ben.id, "type": "message",
        "priority": "high", "metadata": {"place": "canteen"}})
    assert r.status_code == 201, r.text
    note = r.json()
    assert note["user_id"] == ben.id and note["sender_id"] == ann.id and not note["read"]
    r = await ann.client.post("/notifications/broadcast", json={
        "title": "All", "message": "Meeting", "recipient_ids": [ben.id, ann.id]})
    assert r.status_code == 201 and r.json()["sent_count"] == 2
    r = await ann.client.post("/notifications/broadcast", json={
        "title": "All", "message": "x",
        "recipient_ids": [ben.id, "00000000-0000-4000-8000-000000000000"]})
    assert r.status_code == 404 and "recipient_ids" in r.json()["detail"]
    assert (await ben.client.get("/notifications/")).json()["total"] == 2  # all or none

    listing = (await ben.client.get("/notifications/")).json()
    assert listing["total"] == 2 and listing["unread_count"] == 2
    assert listing["notifications"][0]["title"] == "All"
    assert (await ben.client.get("/notifications/unread/count")).json() == {
        "unread_count": 2, "user_id": ben.id}
    only = (await ben.client.get("/notifications", params={"type": "message"})).json()
    assert only["total"] == 1

    # Another user's notification does not exist for ann.
    for call in (ann.client.get(f"/notifications/{note['id']}"),
                 ann.client.put(f"/notifications/{note['id']}", json={"read": True}),
                 ann.client.delete(f"/notifications/{note['id']}")):
        assert (await call).status_code == 404
    assert (await ben.client.get(f"/notifications/{note['id']}")).json()["title"] == "Hi"
    r = await ben.client.put(f"/notifications/{note['id']}", json={"read": True})
    assert r.status_code == 200 and r.json()["read"] is True and r.json()["read_at"]
    r = await ben.client.put(f"/notifications/{note['id']}", json={"archived": True})
    assert r.json()["archived"] is True
    assert (await ben.client.get("/notifications/")).json()["total"] == 1
    assert (await ben.client.get("/notifications/?include_archived=true")).json()["total"] == 2
    r = await ben.client.post("/notifications/mark-all-read")
    assert r.json()["updated_count"] == 1
    assert (await ben.client.get("/notifications/unread/count")).json()["unread_count"] == 0

    # /settings is not shadowed by /{notification_id} (the origin's route-order bug).
    defaults = (await ben.client.get("/notifications/settings")).json()
    assert defaults["sound_enabled"] is True and defaults["notification_types"]["messages"]
    r = await ben.client.put("/notifications/settings", json={
        "sound_enabled": False, "notification_types": {"messages": False},
        "quiet_hours": {"start": "22:00", "end": "07:00"}})
    assert r.status_code == 200, r.text
    saved = (await ben.client.get("/notifications/settings")).json()
    assert saved["sound_enabled"] is False and saved["notification_types"]["messages"] is False
    assert saved["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    r = await ben.client.put("/notifications/settings", json={"quiet_hours": {"start": "25:00",
                                                                             "end": "07:00"}})
    assert r.status_code == 422

    stats = (await ben.client.get("/notifications/stats")).json()
    assert stats["total"] == 2 and stats["archived"] == 1 and stats["by_priority"]["high"] == 1
    assert (await ben.client.get("/notifications/system/status")).json()["status"] == "online"
    r = await ben.client.post("/notifications/test")
    assert r.status_code == 201 and r.json()["type"] == "system"
    assert (await ben.client.delete(f"/notifications/{note['id']}")).status_code == 200
    for bad in ({"title": "x", "message": "y"},
                {"title": "", "message": "y", "recipient_id": ben.id},
                {"title": "x", "message": "y", "recipient_id": ben.id, "type": "spam"},
                {"title": "x", "message": "y", "recipient_id": ben.id, "metadata": "str"}):
        assert (await ann.client.post("/notifications/send", json=bad)).status_code == 422
    r = await ann.client.post("/notifications/send", json={
        "title": "x", "message": "y", "recipient_id": "00000000-0000-4000-8000-000000000000"})
    assert r.status_code == 404


async def test_system_endpoints_need_no_token(v1):
    expectations = {
        "/system/health": "status", "/system/info": "python_version",
        "/system/metrics": "cpu_percent", "/system/status": "counts",
        "/system/version": "api_version", "/system/ping": "message",
        "/system/time": "timestamp", "/system/capabilities": "files",
        "/system/stats/summary": "users", "/realtime/status": "total_connections",
        "/auth/status": "total_users",
    }
    for path, key in expectations.items():
        r = await v1.anon.get(path)
        assert r.status_code == 200, (path, r.text)
        assert key in r.json(), path
    assert (await v1.anon.get("/system/ping")).json()["message"] == "pong"
    caps = (await v1.anon.get("/system/capabilities")).json()
    assert caps["files"]["max_upload_bytes"] == 10 << 20 and caps["auth"]["refresh_rotation"]
    assert (await v1.anon.get("/system/nope")).status_code == 404
    assert (await v1.anon.get("/nope")).json()["detail"] == "Not Found"


@OWN_SERVER
async def test_analytics(make_v1):
    v1 = await make_v1()
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    for text in ("one", "two", "three"):
        await ann.client.post("/messages/send", json={"recipient_id": ben.id, "content": text})
    await ben.client.post("/files/upload", files={"file": ("a.csv", b"1,2\n")})
    await v1.anon.post("/auth/login", json={"username": "ann", "password": "Wrong-pass-1"})

    usage = (await ben.client.get("/analytics/usage", params={"days": 7})).json()
    assert usage["period_days"] == 7
    assert usage["users"] == {"total": 2, "new": 2, "active": 2}
    assert usage["messages"]["in_period"] == 3 and usage["messages"]["average_length"] == 3.7
    assert usage["files"]["total"] == 1 and usage["logins"] == {"successful": 2, "failed": 1}
    assert usage["me"] == {"messages_sent": 0, "messages_received": 3, "files_uploaded": 1}

    trends = (await ben.client.get("/analytics/trends", params={
        "days": 3, "metrics": "messages,failed_logins"})).json()
    assert [p["count"] for p in trends["series"]["messages"]] == [0, 0, 3]
    assert trends["summary"]["failed_logins"]["total"] == 1
    r = await ben.client.get("/analytics/trends", params={"metrics": "messages,bogus"})
    assert r.status_code == 422 and "bogus" in r.text

    listing = (await ben.client.get("/analytics/reports")).json()
    assert {r["type"] for r in listing["reports"]} == {"activity", "files", "messaging",
                                                      "top_users"}
    activity = (await ben.client.get("/analytics/reports/activity",
                                     params={"days": 2})).json()
    assert activity["columns"][0] == "date" and len(activity["rows"]) == 2
    assert activity["rows"][-1][1:3] == [3, 1] and activity["summary"]["messages"] == 3
    messaging = (await ben.client.get("/analytics/reports/messaging")).json()
    assert messaging["summary"]["messages"] == 3 and len(messaging["rows"]) == 24
    r = await ben.client.get("/analytics/reports/files", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(r.text)))
    assert table[0] == ["file_type", "count", "total_size_bytes", "downloads"]
    assert table[1][:2] == ["csv", "1"]
    assert (await ben.client.get("/analytics/reports/top_users")).status_code == 403
    top = (await ann.client.get("/analytics/reports/top_users")).json()
    assert top["rows"][0] == ["ann", 3, 0]
    assert (await ann.client.get("/analytics/reports/nothing")).status_code == 404
    assert (await ann.client.get("/analytics/usage?days=366")).status_code == 422


@OWN_SERVER
async def test_performance_metrics_history_and_alerts(make_v1):
    # Thresholds of 0 make every sample an alert: memory use is never 0 %.
    v1 = await make_v1(performance_interval=0.1, memory_alert_percent=0.0,
                       latency_alert_ms=100_000)
    ann = await v1.account("ann")
    current = (await ann.client.get("/performance/metrics")).json()
    assert 0 < current["memory_percent"] <= 100 and current["memory_total"] > 0
    assert current["process"]["memory_rss"] > 0
    assert current["api"]["total_requests"] >= 2
    # At least three samples (has_more past two), however slowly a loaded machine takes
    # them: no fixed sleep that is too long when idle and too short under load.
    async with asyncio.timeout(30):
        while (history := (await ann.client.get("/performance/history",
                                                params={"limit": 2})).json())["total"] < 3:
            await asyncio.sleep(0.05)
    assert history["total"] >= 2 and len(history["samples"]) == 2 and history["has_more"]
    assert history["samples"][0]["timestamp"] >= history["samples"][1]["timestamp"]
    alerts = (await ann.client.get("/performance/alerts", params={"active_only": True})).json()
    assert alerts["active_count"] >= 1
    memory = next(a for a in alerts["alerts"] if a["metric"] == "memory_percent")
    assert memory["active"] and memory["threshold"] == 0.0 and memory["severity"] in (
        "warning", "critical")
    summary = (await ann.client.get("/performance/summary")).json()
    assert summary["samples"] >= 2 and summary["memory_percent"]["peak"] > 0
    assert (await ann.client.get("/performance/history?minutes=0")).status_code == 422
    assert (await v1.anon.get("/performance/metrics")).status_code == 401
