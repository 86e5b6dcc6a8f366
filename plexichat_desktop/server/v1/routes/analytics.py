"""``/analytics``: usage, trends and reports computed from the stored data.

Figures are server-wide aggregates (counts and sizes, never content); the ``me`` part of
``/usage`` is the caller's own. Days are UTC days. The per-user ``top_users`` report is for
administrators.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import sqlite3
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from plexichat_desktop.server.v1.common import invalid, iso, not_found, now
from plexichat_desktop.server.v1.deps import Api, User
from plexichat_desktop.server.v1.routes.search import daily_series
from plexichat_desktop.server.v1.store import scalar

router = APIRouter(prefix="/analytics", tags=["analytics"])

Days = Annotated[int, Query(ge=1, le=365, description="Days back from now, today included.")]
# Trends reach two years back: a year beside the year before it, and a year whose first
# days still have days before them to be compared with.
TrendDays = Annotated[int, Query(ge=1, le=730,
                                 description="Days back from now, today included.")]
METRIC_SQL = {
    "messages": "SELECT created_at FROM messages WHERE deleted_at IS NULL",
    "files": "SELECT created_at FROM files",
    "users": "SELECT created_at FROM users",
    "logins": "SELECT created_at FROM activity WHERE kind = 'login'",
    "failed_logins": "SELECT created_at FROM activity WHERE kind = 'login_failed'",
    "searches": "SELECT created_at FROM searches",
    "notifications": "SELECT created_at FROM notifications",
    "groups": "SELECT created_at FROM groups",
    "webhook_deliveries": "SELECT created_at FROM webhook_deliveries",
    "webhook_delivered": "SELECT created_at FROM webhook_deliveries WHERE status = 'delivered'",
    "webhook_failed": "SELECT created_at FROM webhook_deliveries WHERE status = 'failed'",
    # One row per user and UTC day with any activity (a message, an upload, a login), dated
    # inside that day, so the per-day count is the day's distinct active users. Each ? is
    # the period's start (see _metric_args): the outer filter cannot reach past GROUP BY.
    "active_users": """SELECT MIN(created_at) AS created_at FROM (
        SELECT sender_id AS uid, created_at FROM messages WHERE created_at >= ?
        UNION ALL SELECT owner_id, created_at FROM files WHERE created_at >= ?
        UNION ALL SELECT user_id, created_at FROM activity
                  WHERE created_at >= ? AND kind = 'login' AND user_id IS NOT NULL)
        GROUP BY uid, CAST(created_at / 86400 AS INTEGER)""",
}


def _metric_args(metric: str, days: int) -> tuple[float, ...]:
    """The arguments of ``METRIC_SQL[metric]``: the period's start for each ``?``."""
    return (_start_of(days),) * METRIC_SQL[metric].count("?")
REPORTS = {
    "activity": "Activity per day: messages, files, logins, new users, searches",
    "files": "Files by type: count, total size and downloads",
    "messaging": "Messages by hour of the day (UTC) and by type, with average length",
    "top_users": "The most active users by messages sent and files uploaded (admins only)",
}


def _usage(conn: sqlite3.Connection, me: str, since: float) -> dict[str, Any]:
    def count(sql: str, *args: Any) -> int:
        return int(scalar(conn, sql, args) or 0)

    messages = conn.execute(
        "SELECT COUNT(*), COALESCE(AVG(LENGTH(content)), 0) FROM messages WHERE "
        "deleted_at IS NULL AND created_at >= ?", (since,)).fetchone()
    files = conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0), "
                         "COALESCE(SUM(download_count), 0) FROM files").fetchone()
    active = count("""SELECT COUNT(DISTINCT uid) FROM (
        SELECT sender_id AS uid FROM messages WHERE created_at >= ?
        UNION SELECT owner_id FROM files WHERE created_at >= ?
        UNION SELECT user_id FROM activity WHERE created_at >= ? AND user_id IS NOT NULL
              AND kind = 'login')""", since, since, since)
    deliveries = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(status = 'delivered'), 0), "
        "COALESCE(SUM(status = 'failed'), 0) FROM webhook_deliveries WHERE created_at >= ?",
        (since,)).fetchone()
    return {
        "users": {"total": count("SELECT COUNT(*) FROM users WHERE is_active = 1"),
                  "new": count("SELECT COUNT(*) FROM users WHERE created_at >= ?", since),
                  "active": active},
        "messages": {"total": count("SELECT COUNT(*) FROM messages WHERE deleted_at IS NULL"),
                     "in_period": messages[0], "average_length": round(messages[1], 1)},
        "files": {"total": files[0], "total_size_bytes": files[1], "downloads": files[2],
                  "in_period": count("SELECT COUNT(*) FROM files WHERE created_at >= ?",
                                     since)},
        "groups": {"total": count("SELECT COUNT(*) FROM groups"),
                   "in_period": count("SELECT COUNT(*) FROM groups WHERE created_at >= ?",
                                      since)},
        "notifications": {"in_period": count("SELECT COUNT(*) FROM notifications WHERE "
                                             "created_at >= ?", since)},
        "logins": {"successful": count("SELECT COUNT(*) FROM activity WHERE kind = 'login' "
                                       "AND created_at >= ?", since),
                   "failed": count("SELECT COUNT(*) FROM activity WHERE kind = "
                                   "'login_failed' AND created_at >= ?", since)},
        "searches": {"in_period": count("SELECT COUNT(*) FROM searches WHERE created_at >= ?",
                                        since)},
        "webhooks": {"registered": count("SELECT COUNT(*) FROM webhooks"),
                     "deliveries": deliveries[0], "delivered": deliveries[1],
                     "failed": deliveries[2]},
        "me": {
            "messages_sent": count("SELECT COUNT(*) FROM messages WHERE sender_id = ? AND "
                                   "deleted_at IS NULL AND created_at >= ?", me, since),
            "messages_received": count("SELECT COUNT(*) FROM messages WHERE recipient_id = ? "
                                       "AND deleted_at IS NULL AND created_at >= ?", me,
                                       since),
            "files_uploaded": count("SELECT COUNT(*) FROM files WHERE owner_id = ? AND "
                                    "created_at >= ?", me, since),
        },
    }


def _period(conn: sqlite3.Connection, since: float, until: float) -> dict[str, Any]:
    """The period figures of ``/usage`` for ``since <= created_at < until``: the
    ``previous`` block of ``compare=true``, so a client compares like with like."""
    span = (since, until)

    def count(sql: str, repeat: int = 1) -> int:
        return int(scalar(conn, sql, span * repeat) or 0)

    within = "created_at >= ? AND created_at < ?"
    messages = conn.execute(
        "SELECT COUNT(*), COALESCE(AVG(LENGTH(content)), 0) FROM messages WHERE "
        f"deleted_at IS NULL AND {within}", span).fetchone()
    deliveries = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(status = 'delivered'), 0), "
        f"COALESCE(SUM(status = 'failed'), 0) FROM webhook_deliveries WHERE {within}",
        span).fetchone()
    return {
        "since": iso(since), "until": iso(until),
        "users": {"new": count(f"SELECT COUNT(*) FROM users WHERE {within}"),
                  "active": count(f"""SELECT COUNT(DISTINCT uid) FROM (
            SELECT sender_id AS uid FROM messages WHERE {within}
            UNION SELECT owner_id FROM files WHERE {within}
            UNION SELECT user_id FROM activity WHERE {within} AND user_id IS NOT NULL
                  AND kind = 'login')""", 3)},
        "messages": {"in_period": messages[0], "average_length": round(messages[1], 1)},
        "files": {"in_period": count(f"SELECT COUNT(*) FROM files WHERE {within}")},
        "groups": {"in_period": count(f"SELECT COUNT(*) FROM groups WHERE {within}")},
        "notifications": {"in_period": count(
            f"SELECT COUNT(*) FROM notifications WHERE {within}")},
        "logins": {"successful": count(
                       f"SELECT COUNT(*) FROM activity WHERE kind = 'login' AND {within}"),
                   "failed": count(f"SELECT COUNT(*) FROM activity WHERE kind = "
                                   f"'login_failed' AND {within}")},
        "searches": {"in_period": count(f"SELECT COUNT(*) FROM searches WHERE {within}")},
        "webhooks": {"deliveries": deliveries[0], "delivered": deliveries[1],
                     "failed": deliveries[2]},
    }


def _start_of(days: int) -> float:
    first = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days - 1)
    return dt.datetime.combine(first, dt.time(), dt.UTC).timestamp()


@router.get("/usage")
async def usage(
    user: User, api: Api, days: Days = 30,
    compare: Annotated[bool, Query(description="Add `previous`: the same figures for the "
                                               "`days` UTC days before the period.")] = False,
) -> dict[str, Any]:
    """Counts over the whole server for the last ``days`` UTC days (and all time); with
    ``compare``, also for the period of the same length just before."""
    figures = await api.store.read(_usage, user.id, _start_of(days))
    if compare:
        figures["previous"] = await api.store.read(_period, _start_of(2 * days),
                                                   _start_of(days))
    return {"period_days": days, "since": iso(_start_of(days)), "generated_at": iso(now()),
            **figures}


@router.get("/trends")
async def trends(
    user: User, api: Api, days: TrendDays = 30,
    metrics: Annotated[str, Query(max_length=300, description="Comma-separated names.")] =
    "messages,files,users,logins",
) -> dict[str, Any]:
    """Per-UTC-day counts, zero-filled, oldest first, with each series' total and trend
    (the change between the first and second half of the period)."""
    wanted = [m.strip() for m in metrics.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in METRIC_SQL]
    if unknown or not wanted:
        raise invalid("metrics", f"unknown metric(s) {', '.join(unknown) or '(none)'}; "
                                 f"known: {', '.join(METRIC_SQL)}", metrics, where="query")

    def query(conn: sqlite3.Connection) -> dict[str, list[dict[str, Any]]]:
        return {m: daily_series(conn, METRIC_SQL[m], _metric_args(m, days), days)
                for m in wanted}

    series = await api.store.read(query)
    summary = {}
    for name, points in series.items():
        half = len(points) // 2
        before = sum(p["count"] for p in points[:half])
        after = sum(p["count"] for p in points[half:])
        summary[name] = {"total": before + after, "first_half": before, "second_half": after,
                         "change": None if before == 0 else round((after - before) / before, 3)}
    return {"days": days, "metrics": wanted, "series": series, "summary": summary,
            "generated_at": iso(now())}


@router.get("/reports")
async def reports(user: User) -> dict[str, Any]:
    """The reports ``/analytics/reports/{report_type}`` can compute."""
    return {"reports": [{"type": key, "description": text, "admin_only": key == "top_users",
                         "formats": ["json", "csv"]} for key, text in REPORTS.items()]}


def _report(conn: sqlite3.Connection, kind: str, since: float, days: int
            ) -> tuple[list[str], list[list[Any]], dict[str, Any]]:
    if kind == "activity":
        names = ("messages", "files", "logins", "users", "searches")
        series = {m: daily_series(conn, METRIC_SQL[m], (), days) for m in names}
        table = [[series["messages"][i]["date"], *(series[m][i]["count"] for m in names)]
                 for i in range(days)]
        totals = {m: sum(p["count"] for p in series[m]) for m in names}
        return ["date", "messages", "files", "logins", "new_users", "searches"], table, totals
    if kind == "files":
        table = [[r[0].lstrip(".") or "(none)", r[1], r[2], r[3]] for r in conn.execute(
            "SELECT extension, COUNT(*), SUM(size), SUM(download_count) FROM files WHERE "
            "created_at >= ? GROUP BY extension ORDER BY 2 DESC, 1", (since,))]
        return (["file_type", "count", "total_size_bytes", "downloads"], table,
                {"files": sum(r[1] for r in table), "bytes": sum(r[2] for r in table)})
    if kind == "messaging":
        hours = {int(r[0]): r[1] for r in conn.execute(
            "SELECT strftime('%H', created_at, 'unixepoch'), COUNT(*) FROM messages WHERE "
            "deleted_at IS NULL AND created_at >= ? GROUP BY 1", (since,))}
        table = [[f"{h:02d}:00", hours.get(h, 0)] for h in range(24)]
        by_type = {r[0]: r[1] for r in conn.execute(
            "SELECT message_type, COUNT(*) FROM messages WHERE deleted_at IS NULL AND "
            "created_at >= ? GROUP BY 1", (since,))}
        avg = scalar(conn, "SELECT AVG(LENGTH(content)) FROM messages WHERE deleted_at IS "
                           "NULL AND created_at >= ?", (since,))
        busiest = max(table, key=lambda r: r[1])[0] if any(r[1] for r in table) else None
        return (["hour_utc", "messages"], table,
                {"by_type": by_type, "average_length": round(avg or 0, 1),
                 "busiest_hour_utc": busiest, "messages": sum(r[1] for r in table)})
    table = [list(r) for r in conn.execute("""
        SELECT u.username,
               (SELECT COUNT(*) FROM messages m WHERE m.sender_id = u.id
                    AND m.deleted_at IS NULL AND m.created_at >= :since) AS sent,
               (SELECT COUNT(*) FROM files f WHERE f.owner_id = u.id
                    AND f.created_at >= :since) AS uploads
        FROM users u WHERE u.is_active = 1 ORDER BY sent DESC, uploads DESC, u.username
        LIMIT 10""", {"since": since})]
    return ["username", "messages_sent", "files_uploaded"], table, {"users": len(table)}


def _csv_cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR
    first: a username like ``-cmd``) gets a leading ``'`` (CSV injection, CWE-1236)."""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


@router.get("/reports/{report_type}", response_model=None)
async def report(report_type: str, user: User, api: Api, days: Days = 30,
                 format: Literal["json", "csv"] = "json") -> dict[str, Any] | Response:
    """Compute a report over the last ``days`` UTC days, as JSON or CSV."""
    if report_type not in REPORTS:
        raise not_found("report", report_type)
    if report_type == "top_users" and not user.is_admin:
        raise HTTPException(403, "the top_users report is for administrators")
    columns, table, summary = await api.store.read(_report, report_type, _start_of(days),
                                                   days)
    if format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows([[_csv_cell(cell) for cell in row] for row in table])
        return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{report_type}-{days}d.csv"'})
    return {"type": report_type, "title": REPORTS[report_type], "period_days": days,
            "since": iso(_start_of(days)), "generated_at": iso(now()), "columns": columns,
            "rows": table, "summary": summary}
