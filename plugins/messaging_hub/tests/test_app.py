"""The plugin in the real app against the embedded v1 server, with two real users: the
harness's user (what ``ctx.api`` acts as, "ann" below) and a second one ("bob") who
talks to her through the v1 API directly.

One app serves the session (``app`` in conftest.py; starting it is the slow part); the
restart test runs last in this module, and test_outbox_clock.py goes on with the
restarted app. Nothing waits for a fixed time: every wait polls for the state it needs.
"""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from plexichat_desktop.testing.harness import USER_PASSWORD, PlexiChatApp


@dataclass
class Person:
    id: str
    username: str
    password: str
    v1: httpx.Client  # .../api/v1/ with the person's bearer token


def register(app: PlexiChatApp, name: str, display: str) -> Person:
    v1 = httpx.Client(base_url=f"{app.url}api/v1/", timeout=30.0)
    ok(v1.post("auth/register", json={"username": name, "email": f"{name}@example.org",
                                      "password": USER_PASSWORD, "terms_accepted": True}), 201)
    login = ok(v1.post("auth/login", json={"username": name, "password": USER_PASSWORD}))
    v1.headers["Authorization"] = f"Bearer {login['access_token']}"
    ok(v1.put("users/me", json={"display_name": display}))
    return Person(str(login["user_id"]), name, USER_PASSWORD, v1)


@pytest.fixture(scope="module")
def ann(app: PlexiChatApp) -> Person:
    assert app.user is not None
    return Person(app.user.user_id, app.user.username, app.user.password, app.user.client)


@pytest.fixture(scope="module")
def bob(app: PlexiChatApp) -> Iterator[Person]:
    person = register(app, f"bob{uuid.uuid4().hex[:6]}", "Bob Builder")
    yield person
    person.v1.close()


@pytest.fixture(scope="module")
def cat(app: PlexiChatApp) -> Iterator[Person]:
    person = register(app, f"cat{uuid.uuid4().hex[:6]}", "Cat Stevens")
    yield person
    person.v1.close()


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if "json" in response.headers.get("content-type", "") else \
        response.text


def until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy (no timing is asserted)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        time.sleep(0.05)


def say(person: Person, to: Person, content: str, **extra: Any) -> dict[str, Any]:
    return dict(ok(person.v1.post("messages/send", json={
        "recipient_id": to.id, "content": content, **extra}), 201))


def history(person: Person, other: Person) -> list[dict[str, Any]]:
    """The newest 100 messages between the two, oldest first."""
    page = ok(person.v1.get(f"messages/conversation/{other.id}",
                            params={"limit": 100, "mark_read": "false"}))
    return list(reversed(page["messages"]))


def inbox_row(app: PlexiChatApp, person: Person, which: str = "all") -> dict[str, Any] | None:
    rows = ok(app.client.get("api/inbox", params={"filter": which}))["conversations"]
    return next((r for r in rows if r["user_id"] == person.id), None)


def sent_item(app: PlexiChatApp, item_id: str) -> dict[str, Any] | None:
    items = ok(app.client.get("api/outbox", params={"state": "all"}))["items"]
    item = next(i for i in items if i["id"] == item_id)
    return item if item["state"] == "sent" else None


# -- the inbox --------------------------------------------------------------------------
def test_inbox_unread_waiting_on_you_and_filters(app: PlexiChatApp, ann: Person,
                                                 bob: Person, cat: Person) -> None:
    status = ok(app.client.get("api/status"))
    assert status["signed_in"] and status["user"]["id"] == ann.id
    assert status["undo_seconds"] == 2 and status["max_content"] == 10_000

    until(lambda: ok(app.client.get("api/status"))["live"] == "open", "the live socket")
    typo = say(bob, ann, "Can yuo")
    first = say(bob, ann, "Can you review my PR?")
    say(bob, ann, "It's the one about the parser")
    assert inbox_row(app, bob)["waiting_count"] == 3  # type: ignore[index]
    # Deleting an older message does not change the conversation's last message time;
    # the inbox hears of it on the realtime socket and counts again.
    ok(bob.v1.delete(f"messages/{typo['id']}"))
    until(lambda: inbox_row(app, bob)["waiting_count"] == 2,  # type: ignore[index]
          "the deletion counted")
    say(ann, cat, "Lunch on Friday?")  # ann wrote last: cat owes the answer, not ann

    row = inbox_row(app, bob)
    assert row is not None and row["waiting"] and row["waiting_count"] == 2
    assert row["unread_count"] == 2 and row["display_name"] == "Bob Builder"
    # the clock started at bob's first unanswered message, not his nudge
    assert datetime.fromisoformat(row["waiting_since"]) == \
        datetime.fromisoformat(first["timestamp"])
    cat_row = inbox_row(app, cat)
    assert cat_row is not None and not cat_row["waiting"] and cat_row["last_from"] == "me"

    waiting = ok(app.client.get("api/inbox", params={"filter": "waiting"}))
    assert [r["user_id"] for r in waiting["conversations"]] == [bob.id]
    assert waiting["counts"]["waiting"] == 1 and waiting["counts"]["all"] >= 2
    assert inbox_row(app, cat, "unread") is None and inbox_row(app, bob, "unread")
    named = ok(app.client.get("api/inbox", params={"q": "builder"}))["conversations"]
    assert [r["user_id"] for r in named] == [bob.id]
    refused = app.client.get("api/inbox", params={"filter": "starred"})
    assert refused.status_code == 422 and refused.json()["field"] == "filter"

    # opening the conversation marks it read; answering takes it off "waiting on you"
    page = ok(app.client.get(f"api/conversation/{bob.id}"))
    assert [m["content"] for m in page["messages"]][-1] == "It's the one about the parser"
    assert not page["messages"][-1]["mine"] and page["other_user"]["id"] == bob.id
    assert inbox_row(app, bob)["unread_count"] == 0  # type: ignore[index]
    item = ok(app.client.post("api/send", json={"recipient_id": bob.id, "content": "On it",
                                                "undo": False}), 202)
    until(lambda: sent_item(app, item["id"]), "the answer sent")
    assert not inbox_row(app, bob)["waiting"]  # type: ignore[index]


def test_markdown_is_rendered_sanitised(app: PlexiChatApp, ann: Person, bob: Person) -> None:
    say(bob, ann, "**bold** <script>alert(1)</script> <img src=x onerror=alert(1)> "
                  "[click](javascript:alert(1)) [docs](https://example.org)",
        message_type="markdown")
    page = ok(app.client.get(f"api/conversation/{bob.id}"))
    html = page["messages"][-1]["html"]
    assert "<strong>bold</strong>" in html
    assert "<script" not in html and "<img" not in html and "onerror" not in html.replace(
        "onerror=alert", "")  # the attribute is gone; its text is escaped into the paragraph
    assert 'href="javascript' not in html
    assert "&lt;script&gt;" in html  # shown as text, not run
    assert 'href="https://example.org"' in html and 'rel="noopener noreferrer nofollow"' in html
    preview = ok(app.client.post("api/render", json={"content": "# Title\n\n`x`"}))
    assert "<h1>Title</h1>" in preview["html"] and "<code>x</code>" in preview["html"]


# -- composer: limits, drafts, templates -------------------------------------------------
def test_a_rename_shows_without_a_restart(app: PlexiChatApp, ann: Person,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Names were remembered for the whole session: a rename never reached the page,
    templates or auto-replies until the app restarted."""
    import messaging_hub

    before = ok(app.client.get("api/status"))["user"]["display_name"]
    monkeypatch.setattr(messaging_hub, "PROFILE_TTL", 0.0)  # what a minute does
    ok(ann.v1.put("users/me", json={"display_name": "Ann Renamed"}))
    try:
        assert ok(app.client.get("api/status"))["user"]["display_name"] == "Ann Renamed"
    finally:
        ok(ann.v1.put("users/me", json={"display_name": before}))
        ok(app.client.get("api/status"))  # remembered as it was again


def test_composer_limits_drafts_and_bad_input(app: PlexiChatApp, ann: Person,
                                              bob: Person) -> None:
    long = app.client.post("api/send", json={"recipient_id": bob.id, "content": "x" * 10_001})
    assert long.status_code == 422 and long.json()["field"] == "content"
    assert "10000" in long.json()["detail"]
    blank = app.client.post("api/send", json={"recipient_id": bob.id, "content": "  \n"})
    assert blank.status_code == 422 and blank.json()["field"] == "content"
    me = app.client.post("api/send", json={"recipient_id": ann.id, "content": "hi"})
    assert me.status_code == 422 and me.json()["field"] == "recipient_id"
    nobody = app.client.post("api/send", json={"recipient_id": str(uuid.uuid4()),
                                               "content": "hi"})
    assert nobody.status_code == 422 and nobody.json()["field"] == "recipient_id"
    past = app.client.post("api/send", json={"recipient_id": bob.id, "content": "hi",
                                             "send_at": "2001-01-01T00:00:00Z"})
    assert past.status_code == 422 and past.json()["field"] == "send_at"
    zone = app.client.post("api/send", json={"recipient_id": bob.id, "content": "hi",
                                             "timezone": "Mars/Olympus"})
    assert zone.status_code == 422 and zone.json()["field"] == "timezone"

    # A draft to someone who does not exist is refused (it was kept, never shown, and
    # its recipient looked up at every inbox load).
    for ghost in ("nope", "x" * 5000):
        refused = app.client.put(f"api/drafts/{ghost}", json={"content": "x"})
        assert refused.status_code == 404 and refused.json()["field"] == "user_id", \
            refused.text
    assert all(d["recipient_id"] != "nope"
               for d in ok(app.client.get("api/drafts"))["drafts"])
    saved = ok(app.client.put(f"api/drafts/{bob.id}", json={
        "content": "Half a thought", "message_type": "markdown"}))["draft"]
    assert saved["content"] == "Half a thought"
    assert ok(app.client.get(f"api/drafts/{bob.id}"))["draft"]["message_type"] == "markdown"
    assert inbox_row(app, bob, "drafts") is not None
    assert ok(app.client.get(f"api/conversation/{bob.id}"))["draft"]["content"] == \
        "Half a thought"
    # sending to bob clears the draft (the text went out); the draft survives until then
    item = ok(app.client.post("api/send", json={"recipient_id": bob.id,
                                                "content": "Whole thought"}), 202)
    assert ok(app.client.get(f"api/drafts/{bob.id}"))["draft"] is None
    until(lambda: sent_item(app, item["id"]), "the message sent after the undo window")


def test_templates_are_checked_before_sending(app: PlexiChatApp, ann: Person,
                                              bob: Person) -> None:
    body = "Hi {{ first_name }}, your order {{ order_id }} ships {{ when }}."
    created = ok(app.client.post("api/templates", json={
        "name": "Shipping", "body": body, "description": "order updates"}), 201)
    assert created["variables"] == ["first_name", "order_id", "when"]
    assert created["needs"] == ["order_id", "when"]
    again = app.client.post("api/templates", json={"name": "shipping", "body": "x"})
    assert again.status_code == 409 and again.json()["field"] == "name"
    broken = app.client.post("api/templates", json={"name": "Broken", "body": "{{ oops"})
    assert broken.status_code == 422 and broken.json()["field"] == "body"
    assert "line 1" in broken.json()["detail"]
    # What the sandbox refuses is refused when saved (it was saved, then never sendable).
    escape = app.client.post("api/templates", json={
        "name": "Evil", "body": "Hi {{ first_name.__class__.__mro__ }}"})
    assert escape.status_code == 422 and escape.json()["field"] == "body", escape.text
    assert escape.json()["detail"].startswith("body: not allowed in a template")

    lint = ok(app.client.post("api/templates/check", json={
        "body": body, "variables": {"order_id": "A-17"}, "recipient_id": bob.id}))
    assert lint["missing"] == ["when"] and lint["preview"] is None
    assert lint["sample"] == "Hi Bob, your order A-17 ships [when]."
    lint = ok(app.client.post("api/templates/check", json={
        "body": body, "variables": {"order_id": "A-17", "when": "today"},
        "recipient_id": bob.id}))
    assert lint["preview"] == "Hi Bob, your order A-17 ships today."
    escape = ok(app.client.post("api/templates/check", json={
        "body": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}))
    assert escape["preview"] is None and "not allowed" in escape["problem"]

    # sending with a variable missing: 422 naming it, nothing queued
    before = len(ok(app.client.get("api/outbox", params={"state": "all"}))["items"])
    refused = app.client.post("api/send", json={
        "recipient_id": bob.id, "template_id": created["id"],
        "variables": {"order_id": "A-17"}})
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "variables.when" and refused.json()["missing"] == ["when"]
    assert "when" in refused.json()["detail"]
    assert len(ok(app.client.get("api/outbox", params={"state": "all"}))["items"]) == before
    # One saved before saving checked the sandbox (written to the store as it was then)
    # is still refused when sent.
    store = app.runtime.plugins.by_id["messaging_hub"].instance.store
    sandbox = store.save_template(None, "Escape", "{{ ''.__class__.__base__.__subclasses__() }}",
                                  "text", "")
    refused = app.client.post("api/send", json={"recipient_id": bob.id,
                                                "template_id": sandbox["id"]})
    assert refused.status_code == 422 and refused.json()["field"] == "body"

    # A template send leaves the draft typed before it (audit: it was deleted).
    ok(app.client.put(f"api/drafts/{bob.id}", json={"content": "half a reply"}))
    item = ok(app.client.post("api/send", json={
        "recipient_id": bob.id, "template_id": created["id"], "undo": False,
        "variables": {"order_id": "A-17", "when": "tomorrow"}}), 202)
    until(lambda: sent_item(app, item["id"]), "the template's message sent")
    drafts = ok(app.client.get("api/drafts"))["drafts"]
    assert [d["content"] for d in drafts if d["recipient_id"] == bob.id] == ["half a reply"]
    ok(app.client.put(f"api/drafts/{bob.id}", json={"content": ""}))
    assert history(bob, ann)[-1]["content"] == "Hi Bob, your order A-17 ships tomorrow."
    listed = ok(app.client.get("api/templates"))["templates"]
    assert next(t for t in listed if t["id"] == created["id"])["uses"] == 1
    ok(app.client.delete(f"api/templates/{sandbox['id']}"))
    assert app.client.delete(f"api/templates/{sandbox['id']}").status_code == 404


# -- the outbox: undo and send later ---------------------------------------------------
def test_undo_send_takes_it_back(app: PlexiChatApp, ann: Person, bob: Person) -> None:
    held = ok(app.client.post("api/send", json={"recipient_id": bob.id,
                                                "content": "Oops, wrong person"}), 202)
    assert held["state"] == "pending" and held["kind"] == "undo" and held["undo_seconds"] == 2
    undone = ok(app.client.post(f"api/outbox/{held['id']}/cancel"))
    assert undone["state"] == "cancelled" and undone["content"] == "Oops, wrong person"
    again = app.client.post(f"api/outbox/{held['id']}/cancel")
    assert again.status_code == 409 and again.json()["item"]["state"] == "cancelled"
    # a later message goes out; the cancelled one never does
    after = ok(app.client.post("api/send", json={"recipient_id": bob.id,
                                                 "content": "Right message"}), 202)
    ok(app.client.post(f"api/outbox/{after['id']}/send-now"))
    until(lambda: sent_item(app, after["id"]), "the next message sent")
    contents = [m["content"] for m in history(bob, ann)]
    assert "Right message" in contents and "Oops, wrong person" not in contents
    assert ok(app.client.get("api/outbox", params={"state": "cancelled"}))["items"][0][
        "id"] == held["id"]


def test_send_later_is_editable_cancellable_and_sent_once(app: PlexiChatApp, ann: Person,
                                                          cat: Person) -> None:
    later = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    item = ok(app.client.post("api/send", json={"recipient_id": cat.id, "content": "Draft 1",
                                                "send_at": later}), 202)
    assert item["kind"] == "scheduled" and item["state"] == "pending"
    assert inbox_row(app, cat, "scheduled")["scheduled"] == 1  # type: ignore[index]
    # A time without an offset is the given zone's wall clock (it was taken as UTC).
    from zoneinfo import ZoneInfo

    wall = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0, tzinfo=None)
    zoned = ok(app.client.post("api/send", json={
        "recipient_id": cat.id, "content": "At nine in New York", "send_at": wall.isoformat(),
        "timezone": "America/New_York"}), 202)
    assert zoned["send_at_unix"] == wall.replace(tzinfo=ZoneInfo("America/New_York")).timestamp()
    # A template's today and weekday are those of the sending (audit: of the queueing,
    # so a report queued on Monday for Thursday said "Monday").
    report = ok(app.client.post("api/templates", json={
        "name": "Weekly", "body": "Report for {{ weekday }} {{ today }}."}), 201)
    queued = ok(app.client.post("api/send", json={
        "recipient_id": cat.id, "template_id": report["id"], "send_at": wall.isoformat(),
        "timezone": "America/New_York"}), 202)
    local = wall.replace(tzinfo=ZoneInfo("America/New_York"))
    assert queued["content"] == f"Report for {local:%A} {local.date().isoformat()}."
    # Moved a day on, it says the new day (audit: it kept the day it was first set for);
    # once its text is edited by hand, a new time leaves the text alone.
    next_day = local + timedelta(days=1)
    moved = ok(app.client.patch(f"api/outbox/{queued['id']}", json={
        "send_at": next_day.isoformat()}))
    assert moved["content"] == f"Report for {next_day:%A} {next_day.date().isoformat()}."
    ok(app.client.patch(f"api/outbox/{queued['id']}", json={"content": "My own words."}))
    moved = ok(app.client.patch(f"api/outbox/{queued['id']}", json={
        "send_at": local.isoformat()}))
    assert moved["content"] == "My own words."
    ok(app.client.post(f"api/outbox/{queued['id']}/cancel"))
    # Moved the same way (a wall-clock time and its zone): read in that zone too.
    later_wall = wall + timedelta(hours=1)
    moved = ok(app.client.patch(f"api/outbox/{zoned['id']}", json={
        "send_at": later_wall.isoformat(), "timezone": "America/New_York"}))
    assert moved["send_at_unix"] == later_wall.replace(
        tzinfo=ZoneInfo("America/New_York")).timestamp()
    ok(app.client.post(f"api/outbox/{zoned['id']}/cancel"))
    edited = ok(app.client.patch(f"api/outbox/{item['id']}", json={
        "content": "Reminder: **standup** at 10", "message_type": "markdown"}))
    assert edited["content"].startswith("Reminder") and edited["state"] == "pending"
    too_long = app.client.patch(f"api/outbox/{item['id']}", json={"content": "y" * 10_001})
    assert too_long.status_code == 422 and too_long.json()["field"] == "content"
    dropped = ok(app.client.post("api/send", json={"recipient_id": cat.id,
                                                   "content": "Never mind", "send_at": later}),
                 202)
    ok(app.client.post(f"api/outbox/{dropped['id']}/cancel"))
    # bring the first forward: it leaves now, once
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    ok(app.client.patch(f"api/outbox/{item['id']}", json={"send_at": soon}))
    done = until(lambda: sent_item(app, item["id"]), "the scheduled message sent")
    late = app.client.patch(f"api/outbox/{item['id']}", json={"content": "too late"})
    assert late.status_code == 409 and late.json()["field"] == "state"
    sent = [m for m in history(cat, ann) if m["content"] == "Reminder: **standup** at 10"]
    assert len(sent) == 1 and sent[0]["id"] == done["message_id"]
    assert sent[0]["message_type"] == "markdown"
    assert not any(m["content"] == "Never mind" for m in history(cat, ann))
    assert app.client.post(f"api/outbox/{uuid.uuid4().hex}/cancel").status_code == 404


# -- threads, reactions, edits, search ----------------------------------------------------
def test_threads_reactions_edit_and_search_jump(app: PlexiChatApp, ann: Person,
                                                bob: Person) -> None:
    root = say(bob, ann, "Where is the budget sheet?")
    for i in range(120):  # enough newer messages that the found one is on a later page
        say(bob, ann, f"filler {i}")
    reply = ok(app.client.post("api/send", json={"recipient_id": bob.id, "undo": False,
                                                 "content": "In the shared drive",
                                                 "reply_to": root["id"]}), 202)
    done = until(lambda: sent_item(app, reply["id"]), "the reply sent")
    thread = ok(app.client.get(f"api/thread/{done['message_id']}"))
    assert thread["root"]["id"] == root["id"] and thread["thread_id"] == root["id"]
    assert [m["content"] for m in thread["messages"]] == ["In the shared drive"]

    reacted = ok(app.client.post(f"api/messages/{root['id']}/reactions", json={"emoji": "👍"}))
    assert reacted["reactions"] == [{"emoji": "👍", "count": 1, "me": True}]
    twice = ok(app.client.post(f"api/messages/{root['id']}/reactions", json={"emoji": "👍"}))
    assert twice["reactions"][0]["count"] == 1 and twice["changed"] is False
    bad = app.client.post(f"api/messages/{root['id']}/reactions", json={"emoji": "nope"})
    assert bad.status_code == 422 and bad.json()["field"] == "emoji"
    hidden = app.client.post(f"api/messages/{uuid.uuid4()}/reactions", json={"emoji": "👍"})
    assert hidden.status_code == 404
    orphan = app.client.post("api/send", json={"recipient_id": bob.id, "content": "x",
                                               "reply_to": str(uuid.uuid4()), "undo": False})
    # the reply's parent is checked when it leaves: the outbox keeps it as failed
    failed = until(lambda: next((i for i in ok(app.client.get(
        "api/outbox", params={"state": "failed"}))["items"] if i["id"] ==
        orphan.json()["id"]), None), "the orphan reply refused")
    assert "reply_to" in failed["error"]
    # ...and the owner hears of it on every client, as a v1 notification to themselves
    notes = ok(ann.v1.get("notifications/", params={"type": "error"}))["notifications"]
    note = next(n for n in notes if n["metadata"].get("item_id") == failed["id"])
    assert note["title"] == "A message was not sent" and "reply_to" in note["message"]
    assert note["action_url"] == "/plugins/messaging_hub/"
    undone = ok(app.client.request("DELETE", f"api/messages/{root['id']}/reactions",
                                   params={"emoji": "👍"}))
    assert undone["reactions"] == []

    edited = ok(app.client.patch(f"api/messages/{done['message_id']}",
                                 json={"content": "In the shared drive, folder Q3"}))
    assert edited["edited"] and edited["mine"]
    theirs = app.client.patch(f"api/messages/{root['id']}", json={"content": "mine now"})
    assert theirs.status_code == 403

    found = ok(app.client.get("api/search", params={"q": "budget sheet"}))
    hit = next(r for r in found["results"] if r["message_id"] == root["id"])
    assert hit["contact_id"] == bob.id and hit["contact"] == "Bob Builder" and not hit["mine"]
    page = ok(app.client.get(f"api/conversation/{bob.id}", params={"around": root["id"]}))
    ids = [m["id"] for m in page["messages"]]
    assert root["id"] in ids and len(ids) > 100  # loaded back far enough to show it
    assert page["has_more"] or ids[0] != root["id"]
    missing = app.client.get(f"api/conversation/{bob.id}", params={"around": str(uuid.uuid4())})
    assert missing.status_code == 404 and missing.json()["field"] == "around"


# -- analytics ----------------------------------------------------------------------------
def test_analytics_and_csv_export(app: PlexiChatApp, ann: Person, cat: Person) -> None:
    say(cat, ann, "Are we still on?")
    data = ok(app.client.get("api/analytics", params={"days": 7, "tz": "Europe/Berlin"}))
    assert data["period"]["timezone"] == "Europe/Berlin" and data["messages_read"] > 100
    cur = data["current"]
    assert cur["received"] >= 125 and cur["sent"] >= 5 and cur["replies"] >= 1
    assert cur["median_response_seconds"] is not None
    assert data["previous"]["received"] == 0 and data["change"]["received"] is None
    assert len(data["by_day"]) in (7, 8)
    assert sum(d["received"] for d in data["by_day"]) == cur["received"]
    assert sum(h["count"] for h in data["by_hour"]) == cur["received"] + cur["sent"]
    cat_row = next(c for c in data["contacts"] if c["contact_id"] == cat.id)
    assert cat_row["name"] == "Cat Stevens" and cat_row["waiting_since"] is not None
    assert any(w["contact_id"] == cat.id for w in data["waiting"])

    text = ok(app.client.get("api/analytics.csv", params={"days": 7}))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["contact", "contact_id", "received"]
    assert any(r[0] == "Bob Builder" for r in rows[1:])
    daily = list(csv.reader(io.StringIO(ok(app.client.get(
        "api/analytics.csv", params={"days": 7, "kind": "daily"})))))
    assert daily[0] == ["date", "sent", "received"]
    assert app.client.get("api/analytics", params={"tz": "Nowhere/City"}).json()["field"] \
        == "tz"
    assert app.client.get("api/analytics.csv", params={"kind": "xlsx"}).status_code == 422


# -- away: once per window, and two auto-responders do not loop ------------------------------
def decision_for(app: PlexiChatApp, message_id: str) -> dict[str, Any] | None:
    decisions = ok(app.client.get("api/away"))["decisions"]
    found = next((d for d in decisions if d["message_id"] == message_id), None)
    return found if found and found["decision"] != "replying" else None


def test_away_settings_are_validated(app: PlexiChatApp) -> None:
    for body, field in (({"quiet_start": "25:00"}, "quiet_start"),
                        ({"timezone": "Atlantis/Nope"}, "timezone"),
                        ({"timezone": "x" * 5000}, "timezone"),  # was a 500 (OSError)
                        ({"message": "Hi {{ boss }}"}, "message"),
                        ({"message": "Back {{ name.__class__ }}"}, "message"),  # sandbox
                        ({"window_hours": 0}, "window_hours"),
                        ({"colour": "red"}, "colour"),
                        # Audit: saved, and never away.
                        ({"quiet_start": "22:00"}, "quiet_end"),
                        ({"quiet_end": "07:00"}, "quiet_start"),
                        ({"quiet_start": "08:00", "quiet_end": "08:00"}, "quiet_end"),
                        ({"enabled": True, "until": "2020-01-01T00:00:00Z"}, "until")):
        refused = app.client.put("api/away", json=body)
        assert refused.status_code == 422, body
        assert refused.json()["field"] == field, refused.json()
    quiet = ok(app.client.put("api/away", json={"quiet_start": "22:00", "quiet_end": "07:00",
                                                "timezone": "Europe/Berlin"}))
    assert quiet["settings"]["quiet_start"] == "22:00" and quiet["next_change"] is not None
    assert quiet["preview"].startswith("[auto-reply] Hi Ada")
    # An "until" stored before and past since comes back from the page unchanged: kept.
    soon = datetime.now(UTC) + timedelta(seconds=1)
    ok(app.client.put("api/away", json={"enabled": True, "until": soon.isoformat()}))
    time.sleep(1.1)
    again = ok(app.client.put("api/away", json={"enabled": True, "until": soon.isoformat(),
                                                "message": "Back soon"}))
    assert again["away_now"] is False and again["settings"]["message"] == "Back soon"
    ok(app.client.put("api/away", json={}))


def test_two_auto_responders_do_not_loop(app: PlexiChatApp, ann: Person, tmp_path: Path
                                         ) -> None:
    from api_integration_layer.client import ApiClient
    from messaging_hub.autoreply import AutoResponder, AwaySettings, is_auto_reply
    from messaging_hub.store import Store

    dan = register(app, f"dan{uuid.uuid4().hex[:6]}", "Dan Away")
    until_iso = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    ok(app.client.put("api/away", json={"enabled": True, "until": until_iso,
                                        "window_hours": 12, "timezone": "UTC"}))
    assert ok(app.client.get("api/away"))["away_now"]
    until(lambda: ok(app.client.get("api/status"))["live"] == "open", "the live socket")

    async def scenario() -> list[dict[str, Any]]:
        # Dan is away too, with the same responder code on his own client and store.
        store = Store(tmp_path / "dan.sqlite3")
        store.save_away(dan.id, AwaySettings(enabled=True).model_dump(mode="json"))
        async with ApiClient(f"{app.url}api/v1") as client:
            await client.auth.login(dan.username, dan.password)

            async def send(to: str, content: str) -> dict[str, Any]:
                return dict((await client.messages.send(to, content)).model_dump(mode="json"))

            async def contact(user_id: str) -> dict[str, Any]:
                return dict((await client.users.get(user_id)).model_dump(mode="json"))

            responder = AutoResponder(store, {"id": dan.id, "username": dan.username,
                                              "display_name": "Dan Away"}, send, contact)
            decisions: list[dict[str, Any]] = []
            async with client.realtime.subscribe() as sub:
                await sub.wait_connected(20)

                def from_ann(auto: bool) -> Callable[[Any], bool]:
                    return lambda e: (e.data.get("sender_id") == ann.id
                                      and is_auto_reply(e.data["content"]) is auto)

                # 1. Dan writes; Ann (away) answers automatically; Dan's responder sees
                #    the marker and stays silent.
                hello = say(dan, ann, "Are you around?")
                answer = await sub.next("message", match=from_ann(True), timeout=30)
                decisions.append(await responder.consider(answer.data) or {})
                decisions.append(await asyncio.to_thread(
                    until, lambda: decision_for(app, hello["id"]), "ann's decision"))
                # 2. Ann writes by hand; Dan's responder answers once; Ann's stays silent.
                ok(app.client.post("api/send", json={"recipient_id": dan.id,
                                                     "content": "Back tomorrow", "undo": False}),
                   202)
                human = await sub.next("message", match=from_ann(False), timeout=30)
                reply = await responder.consider(human.data)
                assert reply is not None and reply["decision"] == "replied", reply
                decisions.append(reply)
                decisions.append(await asyncio.to_thread(
                    until, lambda: decision_for(app, reply["reply_id"]), "ann's decision"))
                # 3. Dan writes again inside Ann's window: no second auto-reply.
                again = say(dan, ann, "Ok, ping me")
                decisions.append(await asyncio.to_thread(
                    until, lambda: decision_for(app, again["id"]), "ann's decision"))
        store.close()
        return decisions

    dan_on_ann, ann_on_hello, dan_on_human, ann_on_dan_auto, ann_on_again = \
        asyncio.run(scenario())
    assert dan_on_ann["decision"] == "skipped" and "marker" in dan_on_ann["reason"]
    assert ann_on_hello["decision"] == "replied"
    assert dan_on_human["decision"] == "replied"
    assert ann_on_dan_auto["decision"] == "skipped" and "marker" in ann_on_dan_auto["reason"]
    assert ann_on_again["decision"] == "skipped" and "already" in ann_on_again["reason"]
    # Every message has been decided about by both sides: exactly these five exist.
    contents = [m["content"] for m in history(dan, ann)]
    assert len(contents) == 5, contents
    assert sum(is_auto_reply(c) for c in contents) == 2
    ok(app.client.put("api/away", json={}))
    dan.v1.close()


# -- restart: nothing lost, nothing sent twice (last: it restarts the shared app) ---------
def test_outbox_survives_a_restart_and_sends_exactly_once(app: PlexiChatApp, ann: Person,
                                                          bob: Person) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    kept = ok(app.client.post("api/send", json={"recipient_id": bob.id, "send_at": later,
                                                "content": "Scheduled before the restart"}),
              202)
    ok(app.client.put(f"api/drafts/{bob.id}", json={"content": "draft across restart"}))
    # Two sends interrupted by a crash between claim and answer, written as the app would
    # have left them: one reached the server (it must not go again), one did not.
    delivered = say(ann, bob, "Already delivered before the crash")
    db = app.plugin.store.path
    now = time.time()
    with sqlite3.connect(db) as conn:
        for content, claimed in (("Already delivered before the crash", now - 5),
                                 ("Lost in the crash", now - 5)):
            conn.execute(
                "INSERT INTO outbox (id, owner_id, recipient_id, content, message_type, kind, "
                "send_at, state, attempts, created_at, updated_at, claimed_at) VALUES "
                "(?, ?, ?, ?, 'text', 'undo', ?, 'sending', 1, ?, ?, ?)",
                (uuid.uuid4().hex, ann.id, bob.id, content, claimed, claimed, claimed,
                 claimed))
    app.restart()

    items = ok(app.client.get("api/outbox", params={"state": "all"}))["items"]
    assert next(i for i in items if i["id"] == kept["id"])["state"] == "pending"
    assert ok(app.client.get(f"api/drafts/{bob.id}"))["draft"]["content"] == \
        "draft across restart"

    def settled() -> bool:
        rows = ok(app.client.get("api/outbox", params={"state": "all"}))["items"]
        return not any(i["state"] == "sending" for i in rows) and all(
            i["state"] == "sent" for i in rows if i["content"] in (
                "Already delivered before the crash", "Lost in the crash"))

    until(settled, "the interrupted sends reconciled")
    contents = [m["content"] for m in history(bob, ann)]
    assert contents.count("Already delivered before the crash") == 1
    assert contents.count("Lost in the crash") == 1
    rows = ok(app.client.get("api/outbox", params={"state": "sent"}))["items"]
    assert any(i["message_id"] == delivered["id"] for i in rows)
    ok(app.client.post(f"api/outbox/{kept['id']}/cancel"))
