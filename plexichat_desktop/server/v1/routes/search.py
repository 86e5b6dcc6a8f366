"""``/search``: one search over messages, users, files and groups the caller may see,
suggestions, and the caller's own activity analytics (version B's ``/search/analytics``)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from plexichat_desktop.server.v1.common import (
    Body,
    iso,
    like_pattern,
    limit_query,
    now,
    page,
)
from plexichat_desktop.server.v1.deps import Api, User
from plexichat_desktop.server.v1.routes.files import VISIBLE_SQL as FILE_VISIBLE
from plexichat_desktop.server.v1.routes.groups import VISIBLE_SQL as GROUP_VISIBLE
from plexichat_desktop.server.v1.store import scalar

router = APIRouter(prefix="/search", tags=["search"])

SearchType = Literal["all", "messages", "users", "files", "groups"]
# Each source is searched for at most this many candidates before ranking: the total is
# then exact up to this many per source, and a query never scans without bound.
CANDIDATES = 500


class Filters(Body):
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    user_id: str | None = Field(None, max_length=64,
                                description="Messages: only those exchanged with this user.")
    file_type: str | None = Field(None, max_length=20)


class SearchBody(Body):
    query: str = Field(min_length=1, max_length=200)
    type: SearchType = "all"
    filters: Filters = Field(default_factory=Filters)
    sort_by: Literal["relevance", "date"] = "relevance"
    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=10_000)


def score(text: str | None, query: str) -> float:
    """Exact match 1.0, prefix 0.8, whole word 0.6, anywhere 0.4, plus repeats."""
    if not text:
        return 0.0
    low, q = text.lower(), query.lower()
    if low == q:
        return 1.0
    if low.startswith(q):
        base = 0.8
    elif f" {q}" in f" {low}":
        base = 0.6
    elif q in low:
        base = 0.4
    else:
        return 0.0
    return round(min(0.99, base + 0.02 * (low.count(q) - 1)), 3)


def _utc(value: dt.datetime) -> float:
    # A time without a zone is read as UTC, like every time this API sends.
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()


def _window(filters: Filters) -> tuple[float, float]:
    since = _utc(filters.since) if filters.since else 0.0
    until = _utc(filters.until) if filters.until else 1e18
    return since, until


def _search(conn: sqlite3.Connection, me: str, body: SearchBody) -> list[dict[str, Any]]:
    pattern = like_pattern(body.query)
    since, until = _window(body.filters)
    args: dict[str, Any] = {"me": me, "p": pattern, "since": since, "until": until,
                            "n": CANDIDATES}
    out: list[dict[str, Any]] = []
    if body.type in ("all", "messages"):
        extra = ""
        if body.filters.user_id:
            extra = " AND (m.sender_id = :other OR m.recipient_id = :other)"
            args["other"] = body.filters.user_id
        for r in conn.execute(
            "SELECT m.id, m.content, m.created_at, m.sender_id, m.recipient_id, u.username "
            "FROM messages m JOIN users u ON u.id = m.sender_id WHERE m.deleted_at IS NULL "
            "AND (m.sender_id = :me OR m.recipient_id = :me) AND m.content LIKE :p "
            f"ESCAPE '\\' AND m.created_at BETWEEN :since AND :until{extra} "
            "ORDER BY m.seq DESC LIMIT :n", args):
            out.append({"id": r["id"], "type": "message",
                        "title": f"Message from {r['username']}", "content": r["content"][:200],
                        "score": score(r["content"], body.query),
                        "metadata": {"sender_id": r["sender_id"],
                                     "recipient_id": r["recipient_id"]},
                        "created_at": r["created_at"]})
    if body.type in ("all", "users"):
        for r in conn.execute(
            "SELECT id, username, display_name, created_at FROM users WHERE is_active = 1 AND "
            "(username LIKE :p ESCAPE '\\' OR display_name LIKE :p ESCAPE '\\') AND "
            "created_at BETWEEN :since AND :until LIMIT :n", args):
            out.append({"id": r["id"], "type": "user", "title": r["username"],
                        "content": r["display_name"] or r["username"],
                        "score": max(score(r["username"], body.query),
                                     score(r["display_name"], body.query)),
                        "metadata": {"username": r["username"]},
                        "created_at": r["created_at"]})
    if body.type in ("all", "files"):
        extra = ""
        if body.filters.file_type:
            extra = " AND f.extension = :ext"
            args["ext"] = "." + body.filters.file_type.lower().lstrip(".")
        for r in conn.execute(
            f"SELECT f.* FROM files f WHERE {FILE_VISIBLE} AND (f.filename LIKE :p ESCAPE '\\' "
            "OR f.description LIKE :p ESCAPE '\\') AND f.created_at BETWEEN :since AND :until"
            f"{extra} ORDER BY f.seq DESC LIMIT :n", args):
            out.append({"id": r["id"], "type": "file", "title": r["filename"],
                        "content": r["description"] or "",
                        "score": max(score(r["filename"], body.query),
                                     score(r["description"], body.query) * 0.9),
                        "metadata": {"size": r["size"], "content_type": r["content_type"],
                                     "owner_id": r["owner_id"]},
                        "created_at": r["created_at"]})
    if body.type in ("all", "groups"):
        for r in conn.execute(
            f"SELECT g.* FROM groups g WHERE {GROUP_VISIBLE} AND (g.name LIKE :p ESCAPE '\\' "
            "OR g.description LIKE :p ESCAPE '\\') AND g.created_at BETWEEN :since AND :until "
            "LIMIT :n", args):
            out.append({"id": r["id"], "type": "group", "title": r["name"],
                        "content": r["description"] or "",
                        "score": max(score(r["name"], body.query),
                                     score(r["description"], body.query) * 0.9),
                        "metadata": {"group_type": r["type"], "is_public": bool(r["is_public"])},
                        "created_at": r["created_at"]})
    if body.sort_by == "date":
        out.sort(key=lambda item: item["created_at"], reverse=True)
    else:
        out.sort(key=lambda item: (item["score"], item["created_at"]), reverse=True)
    conn.execute("INSERT INTO searches (user_id, query, type, results, created_at) "
                 "VALUES (?, ?, ?, ?, ?)", (me, body.query, body.type, len(out), now()))
    return out


@router.post("/")
@router.post("", include_in_schema=False)
async def search(body: SearchBody, user: User, api: Api) -> dict[str, Any]:
    """Search what the caller may see; ranked by relevance (or date)."""
    found = await api.store.write(_search, user.id, body)
    chunk = found[body.offset: body.offset + body.limit]
    for item in chunk:
        item["created_at"] = iso(item["created_at"])
    return page("results", chunk, len(found), body.limit, body.offset, query=body.query,
                type=body.type)


def _suggest(conn: sqlite3.Connection, me: str, q: str, kind: str, limit: int
             ) -> list[dict[str, Any]]:
    prefix = like_pattern(q)[1:]
    args = {"me": me, "p": prefix, "n": limit}
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()

    def add(kind_: str, text: str, description: str | None) -> None:
        if (kind_, text.lower()) not in seen:
            seen.add((kind_, text.lower()))
            out.append({"type": kind_, "text": text, "description": description})

    for r in conn.execute("SELECT query, MAX(seq) FROM searches WHERE user_id = :me AND "
                          "query LIKE :p ESCAPE '\\' GROUP BY query ORDER BY 2 DESC LIMIT :n",
                          args):
        add("recent", r[0], "a recent search")
    if kind in ("all", "users"):
        for r in conn.execute("SELECT username, display_name FROM users WHERE is_active = 1 "
                              "AND username LIKE :p ESCAPE '\\' ORDER BY username LIMIT :n",
                              args):
            add("user", r[0], r[1])
    if kind in ("all", "files"):
        for r in conn.execute(f"SELECT f.filename FROM files f WHERE {FILE_VISIBLE} AND "
                              "f.filename LIKE :p ESCAPE '\\' ORDER BY f.seq DESC LIMIT :n",
                              args):
            add("file", r[0], None)
    if kind in ("all", "groups"):
        for r in conn.execute(f"SELECT g.name FROM groups g WHERE {GROUP_VISIBLE} AND "
                              "g.name LIKE :p ESCAPE '\\' LIMIT :n", args):
            add("group", r[0], None)
    return out[:limit]


@router.get("/suggestions")
async def suggestions(user: User, api: Api,
                      q: Annotated[str, Query(min_length=1, max_length=100)],
                      type: SearchType = "all",
                      limit: Annotated[int, limit_query(10, 20)] = 10) -> dict[str, Any]:
    """Completions for ``q``: the caller's recent searches, usernames, file and group names."""
    found = await api.store.read(_suggest, user.id, q, type, limit)
    return {"suggestions": found, "query": q}


def _overview(conn: sqlite3.Connection, me: str, week_ago: float) -> dict[str, Any]:
    sent = scalar(conn, "SELECT COUNT(*) FROM messages WHERE sender_id = ? AND "
                        "deleted_at IS NULL", (me,))
    files = conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM files WHERE "
                         "owner_id = ?", (me,)).fetchone()
    week_messages = scalar(conn, "SELECT COUNT(*) FROM messages WHERE sender_id = ? AND "
                                 "deleted_at IS NULL AND created_at >= ?", (me, week_ago))
    week_files = scalar(conn, "SELECT COUNT(*) FROM files WHERE owner_id = ? AND "
                              "created_at >= ?", (me, week_ago))
    searches = scalar(conn, "SELECT COUNT(*) FROM searches WHERE user_id = ?", (me,))
    return {"messages_sent": sent, "files_uploaded": files[0], "total_file_size": files[1],
            "searches": searches,
            "recent_activity": {"messages_this_week": week_messages,
                                "files_this_week": week_files}}


@router.get("/analytics/overview")
async def analytics_overview(user: User, api: Api) -> dict[str, Any]:
    """The caller's own activity (version B's contract; it answered 500 in the origin)."""
    figures = await api.store.read(_overview, user.id, now() - 7 * 86_400)
    return {"user_id": user.id, **figures, "generated_at": iso(now())}


def daily_series(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...], days: int
                 ) -> list[dict[str, Any]]:
    """Per-UTC-day counts of ``sql`` (which selects ``created_at``), zero-filled, oldest
    first, over the last ``days`` days including today."""
    today = dt.datetime.now(dt.UTC).date()
    first = today - dt.timedelta(days=days - 1)
    start = dt.datetime.combine(first, dt.time(), dt.UTC).timestamp()
    counts = {r[0]: r[1] for r in conn.execute(
        f"SELECT date(created_at, 'unixepoch') AS day, COUNT(*) FROM ({sql}) "
        f"WHERE created_at >= ? GROUP BY day", (*args, start))}
    return [{"date": (first + dt.timedelta(days=i)).isoformat(),
             "count": counts.get((first + dt.timedelta(days=i)).isoformat(), 0)}
            for i in range(days)]


@router.get("/analytics/trends")
async def analytics_trends(user: User, api: Api,
                           days: Annotated[int, Query(ge=1, le=365)] = 30) -> dict[str, Any]:
    """The caller's messages sent, files uploaded and searches per UTC day."""
    def query(conn: sqlite3.Connection) -> dict[str, Any]:
        return {
            "messages": daily_series(conn, "SELECT created_at FROM messages WHERE "
                                           "sender_id = ? AND deleted_at IS NULL",
                                     (user.id,), days),
            "files": daily_series(conn, "SELECT created_at FROM files WHERE owner_id = ?",
                                  (user.id,), days),
            "searches": daily_series(conn, "SELECT created_at FROM searches WHERE "
                                           "user_id = ?", (user.id,), days),
        }
    series = await api.store.read(query)
    return {"user_id": user.id, "days": days, "series": series, "generated_at": iso(now())}


@router.get("/status")
async def status(user: User, api: Api) -> dict[str, Any]:
    total = await api.store.read(lambda c: scalar(c, "SELECT COUNT(*) FROM searches"))
    return {"service": "search", "status": "online",
            "types": ["all", "messages", "users", "files", "groups"],
            "total_searches": total, "timestamp": iso(now())}
