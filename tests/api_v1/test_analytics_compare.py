"""v1 analytics: ``/usage?compare=true`` (the previous period) and the trend metrics
``active_users``, ``webhook_delivered`` and ``webhook_failed``.

Rows dated in the past are written straight into the store (the API only records "now").
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import sqlite3
import uuid

import pytest

from tests.api_v1.shared_server import OWN_SERVER, module_server  # noqa: F401

# Most tests share one server (``v1``) and run in the module's event loop, each with
# accounts of its own; those that need the first account (the administrator), count what
# the whole server holds, or need settings of their own, start their own.
pytestmark = pytest.mark.asyncio(loop_scope="module")
DAY = 86400.0


def _day_start(days_ago: int) -> float:
    today = dt.datetime.now(dt.UTC).date()
    return dt.datetime.combine(today - dt.timedelta(days=days_ago), dt.time(),
                               dt.UTC).timestamp()


@OWN_SERVER
async def test_usage_compare_gives_the_previous_period(make_v1):
    v1 = await make_v1()
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    await ann.client.post("/messages/send", json={"recipient_id": ben.id, "content": "now"})
    noon_10_days_ago = _day_start(10) + DAY / 2

    def seed(conn: sqlite3.Connection) -> None:
        for i in range(4):  # 4 messages by ben, 10 days ago: in the previous 7-day period
            conn.execute(
                "INSERT INTO messages (id, sender_id, recipient_id, content, message_type, "
                "created_at) VALUES (?, ?, ?, 'older', 'text', ?)",
                (str(uuid.uuid4()), ben.id, ann.id, noon_10_days_ago + i))
        for kind in ("login_failed", "login_failed", "login"):
            conn.execute("INSERT INTO activity (user_id, kind, created_at) VALUES (?, ?, ?)",
                         (ann.id, kind, noon_10_days_ago))
        # 20 days ago: outside both 7-day periods
        conn.execute("INSERT INTO activity (user_id, kind, created_at) VALUES (?, ?, ?)",
                     (ann.id, "login_failed", _day_start(20)))

    await v1.api.store.write(seed)

    plain = (await ann.client.get("/analytics/usage", params={"days": 7})).json()
    assert "previous" not in plain  # unchanged without compare

    usage = (await ann.client.get("/analytics/usage",
                                  params={"days": 7, "compare": "true"})).json()
    assert usage["messages"]["in_period"] == 1
    previous = usage["previous"]
    assert previous["messages"] == {"in_period": 4, "average_length": 5.0}
    assert previous["logins"] == {"successful": 1, "failed": 2}
    assert previous["users"] == {"new": 0, "active": 2}
    assert previous["until"] == usage["since"]
    since = dt.datetime.fromisoformat(previous["since"].replace("Z", "+00:00"))
    assert since.timestamp() == _day_start(13)
    assert previous["webhooks"] == {"deliveries": 0, "delivered": 0, "failed": 0}


@OWN_SERVER
async def test_trend_metrics_for_active_users_and_webhook_outcomes(make_v1):
    v1 = await make_v1()
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    hook = await ann.client.post("/webhooks/register", json={
        "url": "http://127.0.0.1:9/hook", "events": ["message.received"]})
    assert hook.status_code == 201, hook.text
    hook_id = hook.json()["id"]
    yesterday = _day_start(1) + 3600

    def seed(conn: sqlite3.Connection) -> None:
        # ben is active yesterday twice (a message and a login): one active user
        conn.execute("INSERT INTO messages (id, sender_id, recipient_id, content, "
                     "message_type, created_at) VALUES (?, ?, ?, 'x', 'text', ?)",
                     (str(uuid.uuid4()), ben.id, ann.id, yesterday))
        conn.execute("INSERT INTO activity (user_id, kind, created_at) VALUES (?, 'login', ?)",
                     (ben.id, yesterday + 60))
        for status in ("delivered", "delivered", "failed", "pending"):
            conn.execute(
                "INSERT INTO webhook_deliveries (id, webhook_id, event, payload, status, "
                "created_at, updated_at) VALUES (?, ?, 'message.received', '{}', ?, ?, ?)",
                (str(uuid.uuid4()), hook_id, status, yesterday, yesterday))

    await v1.api.store.write(seed)
    trends = (await ann.client.get("/analytics/trends", params={
        "days": 3, "metrics": "active_users,webhook_delivered,webhook_failed"})).json()
    series = {name: [p["count"] for p in points] for name, points in trends["series"].items()}
    assert series["active_users"] == [0, 1, 2]  # today: ann and ben logged in
    assert series["webhook_delivered"] == [0, 2, 0]
    assert series["webhook_failed"] == [0, 1, 0]


async def test_compare_keeps_the_days_bounds(v1):
    ann = await v1.account("ann")
    r = await ann.client.get("/analytics/usage", params={"days": 366, "compare": "true"})
    assert r.status_code == 422 and "days" in r.text
    r = await ann.client.get("/analytics/usage", params={"days": 365, "compare": "true"})
    assert r.status_code == 200 and "previous" in r.json()


async def test_trends_reach_two_years_back(v1):
    ann = await v1.account("ann")
    r = await ann.client.get("/analytics/trends", params={"days": 730, "metrics": "messages"})
    assert r.status_code == 200 and len(r.json()["series"]["messages"]) == 730
    r = await ann.client.get("/analytics/trends", params={"days": 731})
    assert r.status_code == 422 and "days" in r.text
    # the other routes keep their year
    assert (await ann.client.get("/analytics/usage", params={"days": 366})).status_code == 422


@OWN_SERVER
async def test_report_csv_cannot_run_as_a_spreadsheet_formula(make_v1):
    v1 = await make_v1()
    admin = await v1.account("admin")
    sneaky = await v1.account("-cmd")
    await sneaky.client.post("/messages/send", json={"recipient_id": admin.id, "content": "x"})
    r = await admin.client.get("/analytics/reports/top_users", params={"format": "csv"})
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["username", "messages_sent", "files_uploaded"]
    assert ["'-cmd", "1", "0"] in rows and ["admin", "0", "0"] in rows
