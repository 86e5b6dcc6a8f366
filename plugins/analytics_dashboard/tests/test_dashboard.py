"""The dashboard's routes against the real embedded v1 API: KPIs equal the seeded data,
bad input is a 422 naming the field, trends flag a seeded spike, reports export as CSV
and PDF, and a non-administrator gets "administrator needed"."""

from __future__ import annotations

import csv
import io

import pytest
from api_integration_layer.errors import ApiHTTPError


async def _signed_in_user(running, name):
    """A second account (not the administrator) with its own v1 client."""
    client = running.server.client()
    from api_integration_layer.testing import PASSWORD
    await client.auth.register(name, f"{name}@example.org", PASSWORD)
    await client.auth.login(name, PASSWORD)
    return client


async def test_kpis_equal_the_seeded_data(app):
    async with app() as running:
        boss_id = running.admin.user["id"]
        ann = await _signed_in_user(running, "ann")
        ann_id = ann.user["id"]
        for text in ("hello", "how are you", "bye"):   # today, through the real API
            await ann.messages.send(boss_id, text)
        await ann.files.upload(b"a,b\n1,2\n", "numbers.csv")
        bad = running.server.client()
        for _ in range(2):
            with pytest.raises(ApiHTTPError):
                await bad.auth.login("ann", "Wrong-password-1")
        await ann.search.search("hello")
        # the previous 7 days (7-13 days ago): 6 messages by boss, 1 failed login
        await running.seed_messages(boss_id, ann_id, {9: 4, 12: 2})
        await running.seed_activity(ann_id, "login_failed", {10: 1})

        overview = (await running.client.get("overview", params={"days": 7})).json()
        cards = {c["key"]: c for c in overview["kpis"]}
        assert overview["days"] == 7
        assert (cards["messages"]["value"], cards["messages"]["previous"]) == (3, 6)
        assert cards["messages"]["change"] == -0.5
        assert cards["messages"]["change_text"] == "-50 %"
        assert cards["files"]["value"] == 1
        assert cards["files"]["change"] is None and cards["files"]["change_text"] == "n/a"
        assert (cards["failed_logins"]["value"], cards["failed_logins"]["previous"]) == (2, 1)
        assert cards["failed_logins"]["good"] is False
        assert cards["logins"]["value"] == 2                   # boss and ann
        assert cards["new_users"]["value"] == 2 and cards["new_users"]["change_text"] == "n/a"
        assert cards["active_users"]["value"] == 2
        # before: only boss was active (a failed login is no activity)
        assert cards["active_users"]["previous"] == 1 and cards["active_users"]["good"]
        assert cards["searches"]["value"] == 1
        # The trend agrees with the card: distinct users of each day are not summed
        # (audit: "total" added them up, 4 active users became "total 11").
        active = (await running.client.get("trends", params={
            "days": 7, "metrics": "active_users"})).json()["metrics"]["active_users"]
        summary = active["summary"]
        assert summary["summable"] is False and summary["total"] is None
        assert summary["previous_total"] is None
        days = [p["count"] for p in active["points"]]
        assert summary["mean_per_day"] == round(sum(days) / 7, 2)
        assert cards["webhook_delivery_rate"]["value"] is None
        assert cards["webhook_delivery_rate"]["value_text"] == "n/a"
        assert overview["totals"]["messages"] == 9


async def test_days_out_of_range_and_unknown_names_are_422_or_404(app):
    async with app(shared=True) as running:
        for route in ("overview", "trends", "reports/activity", "reports/files/export"):
            for days in (0, 366, "x"):
                r = await running.client.get(route, params={"days": days})
                assert r.status_code == 422, (route, days, r.text)
                assert r.json()["detail"][0]["loc"] == ["query", "days"]
        r = await running.client.get("trends", params={"metrics": "messages,bogus"})
        assert r.status_code == 422 and "metrics: unknown bogus" in r.json()["detail"]
        r = await running.client.get("reports/nothing")
        assert r.status_code == 404 and "report_type" in r.json()["detail"]
        r = await running.client.get("reports/files/export", params={"format": "xlsx"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "format"]
        r = await running.client.post("rules", json={"name": "x", "metric": "messages"})
        assert r.status_code == 422 and "value: a threshold rule" in r.text
        r = await running.client.post("subscriptions", json={
            "name": "x", "report": "activity", "schedule": "sometimes"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "schedule"]


async def test_empty_data_works(app):
    async with app() as running:
        overview = (await running.client.get("overview", params={"days": 30})).json()
        cards = {c["key"]: c for c in overview["kpis"]}
        assert cards["messages"]["value"] == 0 and cards["messages"]["change_text"] == "n/a"
        trends = (await running.client.get("trends", params={
            "days": 30, "metrics": "messages", "forecast": 7})).json()
        series = trends["metrics"]["messages"]
        assert len(series["points"]) == 30 and series["anomalies"] == []
        assert series["summary"]["words"] == "No messages in this period."
        report = (await running.client.get("reports/files")).json()
        assert report["rows"] == []


async def test_signed_out_is_explained_not_broken(app):
    async with app(signed_in=False, shared=True) as running:
        r = await running.client.get("overview")
        assert r.status_code == 401 and r.json()["sign_in_needed"] is True
        status = (await running.client.get("status")).json()
        assert status["signed_in"] is False and "API Integration" in status["sign_in_hint"]


async def test_trends_flag_a_seeded_spike_with_words_and_forecast(app):
    async with app() as running:
        boss_id = running.admin.user["id"]
        ann = await _signed_in_user(running, "ann")
        normal = {d: 10 + (d % 3) for d in range(1, 60)}   # none yet today
        normal[5] = 70                                    # the spike, 5 days ago
        await running.seed_messages(boss_id, ann.user["id"], normal)
        r = await running.client.get("trends", params={
            "days": 30, "metrics": "messages,failed_logins", "forecast": 10})
        body = r.json()
        messages = body["metrics"]["messages"]
        assert len(messages["points"]) == 30 and body["window"] == 7
        flagged = messages["anomalies"]
        # the spike only: today's 0 so far is no drop (the day is not over)
        assert [a["date"] for a in flagged] == [messages["points"][-6]["date"]]
        assert flagged[0]["value"] == 70 and flagged[0]["direction"] == "up"
        assert "70 messages" in flagged[0]["explanation"]
        assert "times the usual 11" in flagged[0]["explanation"]
        assert messages["points"][-6]["anomaly"] == "up"
        assert messages["points"][-1]["average"] is not None
        # the previous 30 days beside them, day by day: today faces 30 days ago
        assert messages["points"][-1]["previous"] == 10 + 30 % 3
        assert messages["points"][0]["previous"] == 10 + 59 % 3
        week_before = [10 + d % 3 for d in range(30, 37)]       # 30-36 days ago
        assert messages["points"][-1]["previous_average"] == round(sum(week_before) / 7, 2)
        before = sum(10 + d % 3 for d in range(30, 60))
        assert messages["summary"]["previous_total"] == before
        now = messages["summary"]["total"]
        assert messages["summary"]["change_vs_previous"] == round((now - before) / before, 4)
        assert len(messages["forecast"]) == 10
        first = messages["forecast"][0]
        assert first["date"] == messages["points"][-1]["date"]   # from today, still going
        assert 9 <= first["value"] <= 13                          # the level of whole days
        assert first["lower"] <= first["value"] <= first["upper"]
        assert body["metrics"]["failed_logins"]["anomalies"] == []


async def test_reports_as_tables_csv_and_pdf(app):
    async with app() as running:
        boss_id = running.admin.user["id"]
        sneaky = await _signed_in_user(running, "-cmd")   # a name a spreadsheet would run
        await sneaky.messages.send(boss_id, "hi")
        report = (await running.client.get("reports/activity", params={"days": 7})).json()
        assert report["columns"][:2] == ["date", "messages"] and len(report["rows"]) == 7
        assert report["rows"][-1][1] == 1 and report["chart"]["x"] == "date"
        assert "new_users" in report["summary"] and "users" not in report["summary"]
        top = (await running.client.get("reports/top_users")).json()
        assert top["rows"][0][:2] == ["-cmd", 1]
        r = await running.client.get("reports/top_users/export", params={"format": "csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(r.text)))
        assert rows[0] == ["username", "messages_sent", "files_uploaded"]
        assert rows[1] == ["'-cmd", "1", "0"]
        r = await running.client.get("reports/messaging/export", params={"format": "pdf"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
        assert r.content.startswith(b"%PDF-")

        # Refresh (fresh=true) and an export show a message sent since, not the cached
        # report (audit: both stayed up to 30 s behind).
        await sneaky.messages.send(boss_id, "again")
        fresh = (await running.client.get("reports/activity", params={
            "days": 7, "fresh": "true"})).json()
        assert fresh["rows"][-1][1] == 2
        r = await running.client.get("reports/activity/export", params={"days": 7})
        assert list(csv.reader(io.StringIO(r.text)))[-1][1] == "2"


async def test_a_non_administrator_sees_administrator_needed(app):
    # The shared core: an account of its own, and nothing stored or counted.
    async with app(shared=True) as running:
        layer = running.server.plugin("api_integration_layer")
        from api_integration_layer.testing import PASSWORD, unique_name
        await layer.client.auth.logout()
        ann = unique_name("ann")
        await layer.client.auth.register(ann, f"{ann}@example.org", PASSWORD)
        await layer.client.auth.login(ann, PASSWORD)
        status = (await running.client.get("status")).json()
        assert status["signed_in"] is True and status["is_admin"] is False
        r = await running.client.get("reports/top_users")
        assert r.status_code == 403
        assert r.json()["admin_needed"] is True
        assert r.json()["detail"].startswith("administrator needed")
        r = await running.client.get("reports/top_users/export", params={"format": "pdf"})
        assert r.status_code == 403 and r.json()["admin_needed"] is True
        # everything else still works for them
        assert (await running.client.get("reports/activity")).status_code == 200
        assert (await running.client.get("overview", params={"days": 90})).status_code == 200


async def test_status_lists_metrics_periods_and_reports(app):
    async with app(shared=True) as running:
        status = (await running.client.get("status")).json()
        assert status["is_admin"] is True and status["periods"] == [7, 30, 90, 365]
        assert "webhook_delivery_rate" in status["kpis"]
        assert {r["type"] for r in status["reports"]} == {"activity", "files", "messaging",
                                                         "top_users"}
