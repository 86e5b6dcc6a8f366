"""``/webhooks``: register, list, update, test and delete webhooks; their delivery log.

A webhook belongs to the user who registered it and receives the events that concern that
user (see ``webhooks.EVENTS``; ``backup.completed`` and ``system.alert`` go to
administrators' webhooks). The signing secret is shown once, in the answer to
``/register`` (and to ``/rotate-secret``); afterwards only its first characters are.

Recovery in the manner of Svix: ``/deliveries/{id}/redeliver`` sends one delivery again,
``/{id}/recover`` every failed one since a time; both queue copies that point at the
delivery they repeat (``redelivery_of``). ``/{id}/rotate-secret`` keeps the previous secret
valid for a grace period (deliveries carry both signatures meanwhile).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import Field, field_validator

from plexichat_desktop.server.v1.common import (
    Body,
    Offset,
    conflict,
    done,
    invalid,
    iso,
    limit_query,
    new_id,
    not_found,
    now,
    or_404,
    page,
    sent_fields,
)
from plexichat_desktop.server.v1.deps import Api, User
from plexichat_desktop.server.v1.service import ApiV1
from plexichat_desktop.server.v1.store import one, rows, scalar
from plexichat_desktop.server.v1.webhooks import (
    ADMIN_EVENTS,
    EVENTS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TargetRefused,
    delivery_dict,
    enqueue_rows,
    redeliver_rows,
    resolve_target,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

MAX_PER_USER = 50
MAX_RECOVER = 1000
"""Deliveries one ``recover`` call queues at most (``remaining`` says how many are left)."""
MAX_GRACE_S = 7 * 86_400
DeliveryStatus = Literal["pending", "retrying", "delivered", "failed"]


def _check_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises for a port out of range ("http://h:99999/")
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise ValueError("must not carry a user name or password")
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        raise ValueError(f"the host name {parts.hostname[:80]!r} is not valid (an empty "
                         "label, or one over 63 characters)") from None
    return value


def _check_events(value: list[str]) -> list[str]:
    unknown = [e for e in value if e != "*" and e not in EVENTS]
    if unknown:
        raise ValueError(f"unknown event(s) {', '.join(unknown)}; known: * or "
                         f"{', '.join(EVENTS)}")
    return list(dict.fromkeys(value))


class RegisterBody(Body):
    url: str = Field(min_length=8, max_length=2000)
    events: list[str] = Field(min_length=1, max_length=len(EVENTS) + 1)
    secret: str | None = Field(None, min_length=16, max_length=256,
                               description="Default: a random 32-byte secret.")
    description: str | None = Field(None, max_length=500)
    active: bool = True
    disable_after: int = Field(0, ge=0, le=1000, description=(
        "Switch the webhook off after this many consecutive failed deliveries (0 = never)."))

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return _check_events(value)


class UpdateBody(Body):
    url: str | None = Field(None, min_length=8, max_length=2000)
    events: list[str] | None = Field(None, min_length=1, max_length=len(EVENTS) + 1)
    description: str | None = Field(None, max_length=500)
    active: bool | None = None
    disable_after: int | None = Field(None, ge=0, le=1000)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_events(value)


def webhook_dict(row: dict[str, Any], with_secret: bool = False) -> dict[str, Any]:
    """``Webhook``; the full secret only right after registration."""
    body = {
        "id": row["id"], "url": row["url"], "events": json.loads(row["events"]),
        "description": row["description"], "active": bool(row["active"]),
        "owner_id": row["owner_id"], "created_at": iso(row["created_at"]),
        "secret_hint": row["secret"][:4] + "…",
        "signature_header": SIGNATURE_HEADER, "timestamp_header": TIMESTAMP_HEADER,
        "disable_after": row.get("disable_after", 0),
        "consecutive_failures": row.get("consecutive_failures", 0),
        "disabled_reason": row.get("disabled_reason"),
        "disabled_at": iso(row.get("disabled_at")),
        "previous_secret_expires_at": iso(
            row.get("previous_secret_expires")
            if row.get("previous_secret") and (row.get("previous_secret_expires") or 0) > now()
            else None),
    }
    for key in ("deliveries_total", "deliveries_delivered", "deliveries_failed",
                "deliveries_pending"):
        if key in row:
            body[key] = row[key]
    if with_secret:
        body["secret"] = row["secret"]
    return body


STATS = ("(SELECT COUNT(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id) "
         "AS deliveries_total, (SELECT COUNT(*) FROM webhook_deliveries d WHERE "
         "d.webhook_id = w.id AND d.status = 'delivered') AS deliveries_delivered, "
         "(SELECT COUNT(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND "
         "d.status = 'failed') AS deliveries_failed, (SELECT COUNT(*) FROM webhook_deliveries "
         "d WHERE d.webhook_id = w.id AND d.status IN ('pending', 'retrying')) "
         "AS deliveries_pending")


def _own(conn: sqlite3.Connection, webhook_id: str, me: str) -> dict[str, Any] | None:
    return one(conn.execute(f"SELECT w.*, {STATS} FROM webhooks w WHERE w.id = ? AND "
                            f"w.owner_id = ?", (webhook_id, me)))


async def check_target(api: ApiV1, url: str) -> None:
    """422 naming ``url`` when it points at an address webhooks may not reach. A name
    that does not resolve now is accepted: every delivery resolves and checks it again."""
    try:
        await resolve_target(url, api.settings.webhook_allow_private,
                             frozenset(api.webhooks.local_ports))
    except TargetRefused as exc:
        raise invalid("url", str(exc), url) from None
    except OSError:
        pass


def _register(conn: sqlite3.Connection, me: str, body: RegisterBody, secret: str
              ) -> dict[str, Any]:
    if scalar(conn, "SELECT COUNT(*) FROM webhooks WHERE owner_id = ?", (me,)) >= MAX_PER_USER:
        raise HTTPException(409, f"at most {MAX_PER_USER} webhooks per user; delete one first")
    webhook_id = new_id()
    conn.execute("INSERT INTO webhooks (id, owner_id, url, events, secret, description, "
                 "active, created_at, disable_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (webhook_id, me, body.url, json.dumps(body.events), secret, body.description,
                  int(body.active), now(), body.disable_after))
    row = _own(conn, webhook_id, me)
    assert row is not None
    return row


@router.post("/register", status_code=201)
async def register(body: RegisterBody, user: User, api: Api) -> dict[str, Any]:
    """Register a webhook. The answer holds the signing ``secret`` (shown only here)."""
    await check_target(api, body.url)
    secret = body.secret or secrets.token_hex(32)
    row = await api.store.write(_register, user.id, body, secret)
    result = webhook_dict(row, with_secret=True)
    admin_only = sorted(set(body.events) & ADMIN_EVENTS)
    if admin_only and not user.is_admin:
        result["warnings"] = [f"{', '.join(admin_only)}: delivered to administrators only"]
    return result


@router.get("/events")
async def events(user: User) -> dict[str, Any]:
    """The events a webhook can subscribe to."""
    return {"events": list(EVENTS), "admin_only": sorted(ADMIN_EVENTS), "wildcard": "*"}


def _list(conn: sqlite3.Connection, me: str, limit: int, offset: int
          ) -> tuple[list[dict[str, Any]], int]:
    total = scalar(conn, "SELECT COUNT(*) FROM webhooks WHERE owner_id = ?", (me,))
    found = rows(conn.execute(f"SELECT w.*, {STATS} FROM webhooks w WHERE w.owner_id = ? "
                              f"ORDER BY w.seq DESC LIMIT ? OFFSET ?", (me, limit, offset)))
    return found, total


@router.get("/")
@router.get("", include_in_schema=False)
async def list_webhooks(user: User, api: Api, limit: Annotated[int, limit_query(50, 100)] = 50,
                        offset: Offset = 0) -> dict[str, Any]:
    """The caller's webhooks with delivery counts, newest first."""
    found, total = await api.store.read(_list, user.id, limit, offset)
    return page("webhooks", [webhook_dict(r) for r in found], total, limit, offset)


def _ts(value: datetime | None) -> float | None:
    """A query or body time as UNIX seconds; a time without a zone is UTC."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _check_event_filter(event: str | None) -> None:
    if event is not None and event not in EVENTS:
        raise invalid("event", f"unknown event {event!r}; known: {', '.join(EVENTS)}", event,
                      where="query")


def _filtered(conn: sqlite3.Connection, me: str, filters: dict[str, Any], limit: int,
              offset: int) -> tuple[list[dict[str, Any]], int]:
    """The caller's deliveries matching ``filters`` (each optional: webhook_id, status,
    event, since, until, updated_since), newest first."""
    where = ["w.owner_id = :me"]
    for key, sql in (("webhook_id", "d.webhook_id = :webhook_id"),
                     ("status", "d.status = :status"), ("event", "d.event = :event"),
                     ("since", "d.created_at >= :since"), ("until", "d.created_at <= :until"),
                     ("updated_since", "d.updated_at > :updated_since")):
        if filters.get(key) is not None:
            where.append(sql)
    args = {**filters, "me": me, "limit": limit, "offset": offset}
    joined = ("FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE "
              + " AND ".join(where))
    total = scalar(conn, f"SELECT COUNT(*) {joined}", args)
    found = rows(conn.execute(f"SELECT d.* {joined} ORDER BY d.seq DESC LIMIT :limit "
                              f"OFFSET :offset", args))
    return found, total


SinceQuery = Annotated[datetime | None, Query(
    description="Only deliveries created at or after this time (ISO 8601; UTC if no zone).")]
UntilQuery = Annotated[datetime | None, Query(
    description="Only deliveries created at or before this time.")]
UpdatedQuery = Annotated[datetime | None, Query(
    description="Only deliveries changed after this time (for following the log live).")]


@router.get("/deliveries")
async def all_deliveries(
    user: User, api: Api, webhook_id: str | None = None, status: DeliveryStatus | None = None,
    event: str | None = None, since: SinceQuery = None, until: UntilQuery = None,
    updated_since: UpdatedQuery = None, limit: Annotated[int, limit_query(50, 100)] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The delivery log of all the caller's webhooks, newest first, with filters."""
    _check_event_filter(event)
    filters = {"webhook_id": webhook_id, "status": status, "event": event,
               "since": _ts(since), "until": _ts(until), "updated_since": _ts(updated_since)}
    found, total = await api.store.read(_filtered, user.id, filters, limit, offset)
    return page("deliveries", [delivery_dict(r, user.is_admin) for r in found], total, limit,
                offset)


def _delivery(conn: sqlite3.Connection, delivery_id: str, me: str) -> dict[str, Any] | None:
    return one(conn.execute(
        "SELECT d.* FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
        "WHERE d.id = ? AND w.owner_id = ?", (delivery_id, me)))


@router.get("/deliveries/{delivery_id}")
async def get_delivery(delivery_id: str, user: User, api: Api) -> dict[str, Any]:
    """One delivery of one of the caller's webhooks, with every attempt."""
    row = await api.store.read(_delivery, delivery_id, user.id)
    return delivery_dict(or_404(row, "delivery", delivery_id), user.is_admin)


@router.get("/{webhook_id}")
async def get_webhook(webhook_id: str, user: User, api: Api) -> dict[str, Any]:
    row = await api.store.read(_own, webhook_id, user.id)
    return webhook_dict(or_404(row, "webhook", webhook_id))


def _update(conn: sqlite3.Connection, webhook_id: str, me: str, changes: dict[str, Any]
            ) -> dict[str, Any] | None:
    if _own(conn, webhook_id, me) is None:
        return None
    if "events" in changes:
        changes["events"] = json.dumps(changes["events"])
    if "active" in changes:
        changes["active"] = int(changes["active"])
        if changes["active"]:  # switched on again: a fresh start for the failure count
            changes.update(disabled_reason=None, disabled_at=None, consecutive_failures=0)
    if changes:
        columns = ", ".join(f"{name} = :{name}" for name in changes)
        conn.execute(f"UPDATE webhooks SET {columns} WHERE id = :id",
                     {**changes, "id": webhook_id})
    return _own(conn, webhook_id, me)


@router.put("/{webhook_id}")
async def update(webhook_id: str, body: UpdateBody, user: User, api: Api) -> dict[str, Any]:
    """Change the URL, events, description or active flag; returns the webhook."""
    changes = sent_fields(body, not_null=("url", "events", "active", "disable_after"))
    if "url" in changes:
        await check_target(api, changes["url"])
    row = await api.store.write(_update, webhook_id, user.id, changes)
    return webhook_dict(or_404(row, "webhook", webhook_id))


@router.delete("/{webhook_id}")
async def delete(webhook_id: str, user: User, api: Api) -> dict[str, Any]:
    """Delete a webhook and its delivery log."""
    removed = await api.store.write(
        lambda conn: conn.execute("DELETE FROM webhooks WHERE id = ? AND owner_id = ?",
                                  (webhook_id, user.id)).rowcount)
    if not removed:
        raise not_found("webhook", webhook_id)
    return done("Webhook deleted", webhook_id=webhook_id)


@router.post("/{webhook_id}/test", status_code=202)
async def test(webhook_id: str, user: User, api: Api, response: Response,
               wait: bool = False) -> dict[str, Any]:
    """Queue a ``webhook.test`` delivery (even to an inactive webhook). 202 with the
    delivery; with ``?wait=true``, 200 once the first attempt is done (or timed out)."""
    or_404(await api.store.read(_own, webhook_id, user.id), "webhook", webhook_id)
    data = {"message": "This is a test delivery from PlexiChat Desktop.",
            "webhook_id": webhook_id, "user_id": user.id, "username": user.username}
    created = await api.store.write(_force_test, webhook_id, data)
    api.webhooks.wake()
    if wait:
        await api.webhooks.wait_first_attempt(created, api.settings.webhook_timeout + 5)
        response.status_code = 200
    delivery = await api.store.read(_delivery, created, user.id)
    assert delivery is not None
    return delivery_dict(delivery, user.is_admin)


def _force_test(conn: sqlite3.Connection, webhook_id: str, data: dict[str, Any]) -> str:
    # A test goes to the named webhook whatever its events and active flag say.
    active = scalar(conn, "SELECT active FROM webhooks WHERE id = ?", (webhook_id,))
    conn.execute("UPDATE webhooks SET active = 1 WHERE id = ?", (webhook_id,))
    created = enqueue_rows(conn, "webhook.test", data, None, webhook_id)
    conn.execute("UPDATE webhooks SET active = ? WHERE id = ?", (active, webhook_id))
    return created[0]


def _deliveries(conn: sqlite3.Connection, webhook_id: str, status: str | None, limit: int,
                offset: int) -> tuple[list[dict[str, Any]], int]:
    where = "webhook_id = :id" + (" AND status = :status" if status else "")
    args = {"id": webhook_id, "status": status, "limit": limit, "offset": offset}
    total = scalar(conn, f"SELECT COUNT(*) FROM webhook_deliveries WHERE {where}", args)
    found = rows(conn.execute(f"SELECT * FROM webhook_deliveries WHERE {where} ORDER BY seq "
                              f"DESC LIMIT :limit OFFSET :offset", args))
    return found, total


@router.get("/{webhook_id}/deliveries")
async def deliveries(
    webhook_id: str, user: User, api: Api, status: DeliveryStatus | None = None,
    event: str | None = None, since: SinceQuery = None, until: UntilQuery = None,
    limit: Annotated[int, limit_query(50, 100)] = 50, offset: Offset = 0,
) -> dict[str, Any]:
    """The delivery log of a webhook, newest first, optionally only one ``status`` or
    ``event``, or a time window."""
    or_404(await api.store.read(_own, webhook_id, user.id), "webhook", webhook_id)
    _check_event_filter(event)
    if event is None and since is None and until is None:
        found, total = await api.store.read(_deliveries, webhook_id, status, limit, offset)
    else:
        found, total = await api.store.read(_filtered, user.id, {
            "webhook_id": webhook_id, "status": status, "event": event, "since": _ts(since),
            "until": _ts(until)}, limit, offset)
    return page("deliveries", [delivery_dict(r, user.is_admin) for r in found], total, limit,
                offset,
                webhook_id=webhook_id)


@router.post("/deliveries/{delivery_id}/redeliver", status_code=202)
async def redeliver(delivery_id: str, user: User, api: Api, response: Response,
                    wait: bool = False) -> dict[str, Any]:
    """Send one delivery again, as a new delivery (``redelivery_of`` = this one) with the
    same body; even to an inactive webhook, as the caller asked for it. 409 while the
    delivery is still pending or retrying. ``?wait=true``: 200 after the first attempt."""
    original = or_404(await api.store.read(_delivery, delivery_id, user.id), "delivery",
                      delivery_id)
    if original["status"] in ("pending", "retrying"):
        raise conflict(f"delivery '{delivery_id}' is still {original['status']}; wait for "
                       f"its outcome before sending it again")
    [created] = await api.store.write(redeliver_rows, [delivery_id])
    api.webhooks.wake()
    if wait:
        await api.webhooks.wait_first_attempt(created, api.settings.webhook_timeout + 5)
        response.status_code = 200
    row = await api.store.read(_delivery, created, user.id)
    return delivery_dict(or_404(row, "delivery", created), user.is_admin)


class RecoverBody(Body):
    since: datetime = Field(description="Recover failed deliveries created at or after this "
                                        "time (ISO 8601; UTC if no zone).")
    until: datetime | None = Field(None, description="... and at or before this time "
                                                     "(default: now).")


def _recover(conn: sqlite3.Connection, webhook_id: str, since: float, until: float
             ) -> dict[str, Any]:
    # The failed deliveries nobody sent again yet: a failed redelivery is itself one of
    # them (and its original is not), so recovering twice never sends anything twice.
    where = ("FROM webhook_deliveries d WHERE d.webhook_id = ? AND d.status = 'failed' AND "
             "d.created_at >= ? AND d.created_at <= ? AND NOT EXISTS (SELECT 1 FROM "
             "webhook_deliveries r WHERE r.redelivery_of = d.id)")
    args = (webhook_id, since, until)
    total = scalar(conn, f"SELECT COUNT(*) {where}", args)
    ids = [r[0] for r in conn.execute(f"SELECT d.id {where} ORDER BY d.seq LIMIT ?",
                                      (*args, MAX_RECOVER))]
    return {"delivery_ids": redeliver_rows(conn, ids), "recovered_from": ids,
            "remaining": total - len(ids)}


@router.post("/{webhook_id}/recover", status_code=202)
async def recover(webhook_id: str, body: RecoverBody, user: User, api: Api
                  ) -> dict[str, Any]:
    """Send again every failed delivery of the webhook created in ``[since, until]`` that
    was not sent again already (at most 1000 per call; ``remaining`` counts the rest)."""
    or_404(await api.store.read(_own, webhook_id, user.id), "webhook", webhook_id)
    current = now()
    since = _ts(body.since)
    until = _ts(body.until) if body.until is not None else current
    assert since is not None and until is not None
    if since > current:
        raise invalid("since", "must not be in the future", body.since.isoformat())
    if until < since:
        raise invalid("until", "must not be before since", body.until and
                      body.until.isoformat())
    # No delivery is older than 1970 or newer than now; clamped, both ends can be echoed
    # (iso() of a time before the year 1 or after 9999 raised: a 500).
    since, until = max(since, 0.0), min(until, current)
    result = await api.store.write(_recover, webhook_id, since, until)
    if result["delivery_ids"]:
        api.webhooks.wake()
    return {"webhook_id": webhook_id, "since": iso(since), "until": iso(until),
            "recovered": len(result["delivery_ids"]), **result}


class RotateBody(Body):
    secret: str | None = Field(None, min_length=16, max_length=256,
                               description="Default: a random 32-byte secret.")
    grace_seconds: int = Field(86_400, ge=0, le=MAX_GRACE_S, description=(
        "How long deliveries stay signed with the previous secret too (0 = not at all)."))


def _rotate(conn: sqlite3.Connection, webhook_id: str, me: str, secret: str,
            grace_seconds: int) -> dict[str, Any] | None:
    if _own(conn, webhook_id, me) is None:
        return None
    # Rotating again during a grace drops the older previous secret: at most two in force.
    conn.execute("UPDATE webhooks SET previous_secret = CASE WHEN ? > 0 THEN secret END, "
                 "previous_secret_expires = CASE WHEN ? > 0 THEN ? END, secret = ? "
                 "WHERE id = ?", (grace_seconds, grace_seconds, now() + grace_seconds, secret,
                                  webhook_id))
    return _own(conn, webhook_id, me)


@router.post("/{webhook_id}/rotate-secret")
async def rotate_secret(webhook_id: str, user: User, api: Api,
                        body: RotateBody | None = None) -> dict[str, Any]:
    """Replace the signing secret. The answer holds the new ``secret`` (shown only here);
    the previous one stays valid for ``grace_seconds`` (deliveries carry both signatures
    until ``previous_secret_expires_at``)."""
    body = body or RotateBody()
    secret = body.secret or secrets.token_hex(32)
    row = await api.store.write(_rotate, webhook_id, user.id, secret, body.grace_seconds)
    return webhook_dict(or_404(row, "webhook", webhook_id), with_secret=True)


def _owner_only(request: Request, api: ApiV1) -> None:
    if not api.is_owner(request.headers):
        raise HTTPException(403, "only the app itself (with the app token in "
                                 "X-PlexiChat-App-Token) announces its own receivers")


@router.put("/local-receivers/{port}", include_in_schema=False)
async def add_local_receiver(port: Annotated[int, Path(ge=1, le=65535)], request: Request,
                             api: Api) -> dict[str, Any]:
    """The app's own receiver (the webhook manager's inspector) listens on 127.0.0.1:port:
    webhooks may target it even without ``webhook_allow_private``. App token only; in
    memory, so each receiver announces itself at every start."""
    _owner_only(request, api)
    api.webhooks.local_ports.add(port)
    return done("Local receiver allowed", port=port)


@router.delete("/local-receivers/{port}", include_in_schema=False)
async def remove_local_receiver(port: Annotated[int, Path(ge=1, le=65535)],
                                request: Request, api: Api) -> dict[str, Any]:
    """Withdraw :func:`add_local_receiver` (the receiver stopped)."""
    _owner_only(request, api)
    api.webhooks.local_ports.discard(port)
    return done("Local receiver withdrawn", port=port)
